"""Installed means working (issue 13): the built wheel in a fresh venv, no checkout present.

Every command runs from the installed copy in a directory outside the source tree with no
PYTHONPATH; the rendered jobs call the venv's interpreter, and a folder is archived, purged
and restored through the real local Slurm cluster by that copy alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from installed import REPO, Installed, wait_last_run


def run(inst: Installed, *args: str, cwd: Path, env: dict[str, str],
        check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(inst.exe), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"{args}: rc {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture
def work(tmp_path: Path, installed: Installed) -> tuple[Path, dict[str, str]]:
    """A working directory outside the checkout and an environment pointing into it."""
    env = installed.env(XDG_CONFIG_HOME=str(tmp_path / "config"),
                        FROSTER_SLURM_STATE_DIR=str(tmp_path / "state"),
                        FROSTER_SLURM_SITE_CONFIG=str(tmp_path / "site.toml"))
    return tmp_path, env


def test_the_installed_copy_has_no_checkout_on_its_path(installed: Installed, work) -> None:
    cwd, env = work
    code = ("import froster_slurm, froster_slurm.templates as t, froster_slurm.jobscripts as j;"
            "print(froster_slurm.__file__); print(t.__file__); print(j.__file__)")
    proc = subprocess.run([str(installed.python), "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True)
    files = proc.stdout.split()
    assert len(files) == 3
    for f in files:  # real packages (no namespace package, whose __file__ is None) in the venv
        assert Path(f).is_relative_to(installed.venv) and not Path(f).is_relative_to(REPO)


def test_every_command_answers_and_templates_work(installed: Installed, work) -> None:
    cwd, env = work
    for cmd in ("archive", "submit", "restore", "purge", "status", "retry", "templates",
                "crawl", "rank", "select", "catalog", "config", "check", "report", "runs",
                "pick"):
        assert "Usage" in run(installed, cmd, "--help", cwd=cwd, env=env).stdout
    # crawl -> rank -> report from the installed copy (the report's assets are package data)
    (cwd / "tree" / "a").mkdir(parents=True)
    (cwd / "tree" / "a" / "f.bin").write_bytes(b"z" * 5000)
    run(installed, "crawl", "tree", "-o", "tree.csv", cwd=cwd, env=env)
    run(installed, "rank", "tree.csv", "-o", "hot.csv", "--min-size", "0", "--min-avg-size",
        "0", cwd=cwd, env=env)
    run(installed, "report", "hot.csv", "-o", "report.html", cwd=cwd, env=env)
    assert "<html" in (cwd / "report.html").read_text()
    listed = run(installed, "templates", "list", cwd=cwd, env=env).stdout.splitlines()
    names = {ln.split()[0] for ln in listed}
    assert {"archive.sbatch", "crawl.sbatch", "rank.sbatch", "finalize.sbatch",
            "restore.sbatch", "purge.sbatch", "index.html"} <= names
    assert {"common.sh", "archive.sh"} <= names  # jobscripts are listed too
    for ln in listed:
        name, kind, origin, path = ln.split(maxsplit=3)
        assert origin == "built-in" and Path(path).is_relative_to(installed.venv), ln
    shown = run(installed, "templates", "show", "archive.sbatch", cwd=cwd, env=env).stdout
    assert "@@SBATCH@@" in shown and "@@BODY@@" in shown
    run(installed, "templates", "export", str(cwd / "site"), cwd=cwd, env=env)
    exported = (cwd / "site" / "common.sh").read_text()  # stamped: line 1 names the version
    assert exported.split("\n", 1)[1] == (REPO / "jobscripts/common.sh").read_text()
    assert not (cwd / "site" / "__init__.py").exists()


def test_a_dry_run_renders_jobs_that_call_the_installed_interpreter(installed: Installed,
                                                                    work) -> None:
    cwd, env = work
    (cwd / "data").mkdir()
    (cwd / "data" / "f.txt").write_text("x")
    run(installed, "archive", "data", "--to", str(cwd / "dest"), "--backend", "slurm",
        "--dry-run", cwd=cwd, env=env)
    (script,) = (cwd / "state" / "runs").glob("*/scripts/archive*.sbatch")
    text = script.read_text()
    assert f"export FROSTER_PYTHON={installed.python}\n" in text
    assert "froster_status() {" in text  # common.sh inlined


def wait_run(inst: Installed, cwd: Path, env: dict[str, str], timeout: float = 240) -> dict:
    return wait_last_run(lambda: run(inst, "status", "last", "--json", cwd=cwd, env=env).stdout,
                         timeout)


@pytest.mark.slurm
def test_the_installed_wheel_archives_purges_and_restores_through_slurm(
        installed: Installed, work, slurm_cluster: None) -> None:
    cwd, env = work
    folder = cwd / "data" / "project"
    folder.mkdir(parents=True)
    (folder / "big.bin").write_bytes(bytes(range(256)) * 8000)
    (folder / "notes.txt").write_text("installed, not checked out\n")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    dest = cwd / "dest"
    out = run(installed, "archive", str(folder), "--to", str(dest), "--backend", "slurm",
              cwd=cwd, env=env).stdout
    assert "archive   job" in out, out
    st = wait_run(installed, cwd, env)
    assert [f["state"] for f in st["folders"]] == ["done"], st
    (script,) = (cwd / "state" / "runs").glob("*/scripts/archive*.sbatch")
    assert f"export FROSTER_PYTHON={installed.python}\n" in script.read_text()
    assert subprocess.run(["md5sum", "--quiet", "-c", "Froster.manifest.md5"], cwd=folder,
                          capture_output=True).returncode == 0
    run(installed, "purge", str(folder), "--yes", "--backend", "slurm", cwd=cwd, env=env)
    assert not (folder / "big.bin").exists()
    out = run(installed, "restore", str(folder), "--wait", "--backend", "slurm",
              cwd=cwd, env=env).stdout
    assert "restored: " in out, out
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in before} == before
