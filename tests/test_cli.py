"""The CLI shell: help, version, completion, and errors as one line with an exit code."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from froster_slurm import __version__
from froster_slurm.cli import main

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    return subprocess.run([sys.executable, "-m", "froster_slurm", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60, **kw)


def test_version_and_help() -> None:
    p = run_cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"froster-slurm {__version__}"
    p = run_cli("--help")
    assert p.returncode == 0
    for command in ("submit", "archive", "status", "retry", "catalog", "config", "templates"):
        assert command in p.stdout


def test_command_table_names_every_command_and_a_run_loads_only_its_own() -> None:
    """cli.COMMANDS maps each command to the module registering it (runs import only that)."""
    probe = ("import sys, typer; from froster_slurm import cli; cli.load_commands(sys.argv[1:]);"
             " c = typer.main.get_command(cli.app); print(' '.join(sorted(c.commands)));"
             " print(' '.join(sorted(m for m in sys.modules if m.startswith('froster_slurm.'))))")
    every = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True).stdout.split("\n")[0].split()
    from froster_slurm import cli
    assert sorted(cli.COMMANDS) == every
    out = subprocess.run([sys.executable, "-c", probe, "rank", "x.csv"], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[0].split() == ["rank"]
    assert "froster_slurm.purge.purger" not in out[1].split()


def test_shell_completion_is_offered() -> None:
    p = run_cli("--show-completion", env={**os.environ, "SHELL": "/bin/bash"})
    assert p.returncode == 0 and "complete" in p.stdout


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    p = run_cli("archive", "--from", str(tmp_path / "missing.nul"), "--to", str(tmp_path))
    assert p.returncode == 64
    assert p.stderr.strip().count("\n") == 0
    assert "folder list not found" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("status", "nosuchrun")
    assert p.returncode == 66 and "no run matching 'nosuchrun'" in p.stderr
    p = run_cli("no-such-command")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "--bogus"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_wheel_ships_templates_and_jobscripts(tmp_path: Path) -> None:
    """`pip install .` must give a working froster-slurm from any directory."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("froster_slurm-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "froster_slurm/templates/stage.sbatch" in names  # the one skeleton of every stage
    assert "froster_slurm/templates/index.html" in names
    assert "froster_slurm/jobscripts/common.sh" in names
    assert "froster_slurm/jobscripts/requeue.sh" in names
    assert "froster_slurm/jobscripts/archive.sh" in names
    for init in (REPO / "froster_slurm").rglob("__init__.py"):
        rel = init.relative_to(REPO).as_posix()
        assert rel in names, f"{rel} missing from the wheel: list it in pyproject.toml"
