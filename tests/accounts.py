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
import time
from collections.abc import Sequence

import pytest

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
