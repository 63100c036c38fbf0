"""A froster-slurm installed the way users install it: a built wheel in a fresh venv.

The venv lives outside the source tree in a directory every account may enter (pytest's own
tmp dirs are private to root), so the non-root tests run the same installed copy.  Nothing
of the checkout is on its path: the wheel is built from the repository, installed with its
dependencies from the package index, and run from another directory with no PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Installed:
    """Where the installed copy is: its venv, its interpreter and its console script."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def exe(self) -> Path:
        return self.venv / "bin" / "froster-slurm"

    def env(self, base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
        """``base`` (default: this process's) without anything that could reach the checkout."""
        env = dict(os.environ if base is None else base)
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
            env.pop(name, None)
        env.update(extra)
        return env


def base_python() -> str:
    """An interpreter every account may run (a venv links to its base; root's own Python,
    e.g. under /root/.pyenv, is out of reach of the test accounts)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK) and _world_reachable(Path(candidate).resolve()):
            return candidate
    return getattr(sys, "_base_executable", sys.executable)


def _world_reachable(path: Path) -> bool:
    """Every directory above ``path`` lets others through (x for others)."""
    return all(p.stat().st_mode & 0o001 for p in path.parents)


def build_wheel(root: Path) -> Path:
    """The project's wheel, built from the repository into ``root/dist``."""
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(REPO)], check=True, capture_output=True,
                   cwd=root)
    return next(dist.glob("froster_slurm-*.whl"))


def build_and_install() -> Installed:
    """Build the wheel and install it (with its dependencies) into a fresh venv under /tmp."""
    root = Path(tempfile.mkdtemp(prefix="froster-installed-"))
    root.chmod(0o755)
    wheel = build_wheel(root)
    inst = Installed(root)
    subprocess.run([base_python(), "-m", "venv", "--without-pip", str(inst.venv)], check=True)
    # The test venv's pip installs into the new venv: no pip bootstrap, same package index.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(inst.python), "install", "-q",
                    str(wheel)], check=True, capture_output=True, cwd=root,
                   env=inst.env())
    return inst


def remove(inst: Installed) -> None:
    shutil.rmtree(inst.root, ignore_errors=True)


def wait_last_run(status_json: Callable[[], str], timeout: float, every: float = 1.0) -> dict:
    """Poll ``status last --json`` (``status_json`` runs it the way the test's user does) until
    the run says it is finished; its status, or an AssertionError with the last one seen."""
    deadline = time.time() + timeout
    st: dict = {}
    while time.time() < deadline:
        st = json.loads(status_json())
        if st["finished"]:
            return st
        time.sleep(every)
    raise AssertionError(f"run not finished after {timeout}s: {st}")
