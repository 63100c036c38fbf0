"""Real unprivileged accounts for tests that must prove what an ordinary user can (not) do.

The tests run as root on the CI machine; a second account is a real ``useradd`` account, not
a mock, so file modes, Slurm's uid checks and munge credentials are the ones a user meets.
``ensure_account`` is idempotent and safe when several test processes create the same account
at once (useradd's lock is retried; "already exists" counts as success).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Names tests may use; prefix keeps them apart from real people on a shared machine.
PREFIX = "fstest"


def ensure_account(name: str) -> pwd.struct_passwd:
    """The account ``name`` (created with a home directory and its own group if missing).

    Needs root: a test that cannot create the account fails with the reason (it never skips,
    the non-root paths must run in CI).
    """
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if os.geteuid() != 0:
        pytest.fail(f"creating the test account {name!r} needs root (useradd)")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    deadline = time.time() + 60
    while True:
        proc = subprocess.run([useradd, "--create-home", "--user-group", "--shell",
                               "/bin/bash", name], capture_output=True, text=True)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        # exit 1: cannot update passwd (lock held by a concurrent useradd); retry a while.
        if proc.returncode not in (1, 9) or time.time() > deadline:
            pytest.fail(f"useradd {name} failed ({proc.returncode}): {proc.stderr.strip()}")
        time.sleep(0.5)


def account_env(user: pwd.struct_passwd, **extra: str) -> dict[str, str]:
    """A login-like environment for ``user``: no root's HOME, XDG or FROSTER_SLURM_* leak in."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "SLURM_CONF", "CI")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name,
               XDG_CONFIG_HOME=f"{user.pw_dir}/.config",
               XDG_STATE_HOME=f"{user.pw_dir}/.local/state")
    env.update(extra)
    return env


def run_as(user: pwd.struct_passwd, argv: Sequence[str | bytes | os.PathLike], *,
           env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
           timeout: float = 300, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` (uid, primary gid, no supplementary groups), output captured."""
    return subprocess.run(
        list(argv), user=user.pw_uid, group=user.pw_gid, extra_groups=[], umask=umask,
        env=env if env is not None else account_env(user), cwd=cwd or user.pw_dir,
        capture_output=True, text=True, timeout=timeout)


def as_user(account: pwd.struct_passwd) -> list[str]:
    """Command prefix (``setpriv``) running what follows as ``account``, for helpers that take
    a prefix (``archive_helpers.run_task``)."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv is missing (Debian package util-linux); the test needs it")
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
            "--clear-groups"]


def user_python() -> tuple[str, str]:
    """(interpreter, PYTHONPATH) another account can run this worktree's code with.

    The test's own interpreter may live where only root can go (pyenv under /root): then the
    system's python3 of the same minor version runs the repository with the test's
    site-packages.  Jobs the tool starts use it too (config ``python``).
    """
    here = os.path.realpath(sys.executable)
    site = sysconfig.get_paths()["purelib"]
    path = os.pathsep.join([str(REPO), site])
    if _others_can_reach(here):
        return sys.executable, path
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(minor, path="/usr/bin:/usr/local/bin")
    if system is None or not _others_can_reach(site):
        pytest.fail(f"no Python another account can run: {here} is not reachable and there "
                    f"is no /usr/bin/{minor} (or {site} is not reachable)")
    return system, path


def _others_can_reach(path: str) -> bool:
    """Every directory above ``path`` is searchable by others (mode o+x)."""
    return all(os.stat(d).st_mode & 0o001 for d in Path(path).parents if str(d) != "/")


@contextmanager
def shared_dir(prefix: str = "froster-shared-") -> Iterator[Path]:
    """A fresh directory under /tmp that every account can reach (mode 0755; pytest's tmp
    dirs are root's)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
