"""``python -m froster_slurm.jobs``: the one job entry refuses bad arguments with the usage
text and exit 64, and routes ``retry-delay`` by whether an INDEX is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from froster_slurm.errors import EXIT_USAGE
from froster_slurm.jobs.__main__ import STAGES, USAGE, main

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]


def test_usage_names_every_stage() -> None:
    listed = {line.split()[0] for line in USAGE.splitlines()[1:]}
    assert listed == set(STAGES)


@pytest.mark.parametrize("argv", [[], ["crawl"], ["nosuch", "/tmp"], ["archive", "/tmp"],
                                  ["archive", "/tmp", "x"], ["interrupted", "/tmp"]])
def test_bad_arguments_print_the_usage_and_exit_64(argv: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    assert "usage: python -m froster_slurm.jobs STAGE RUN_DIR [INDEX]" in capsys.readouterr().err


def test_retry_delay_without_index_is_the_restore_jobs(tmp_path: Path) -> None:
    """No restore.json (nothing recorded): the restore job waits its default minute."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    p = subprocess.run([sys.executable, "-m", "froster_slurm.jobs", "retry-delay", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert (p.returncode, p.stdout.strip()) == (0, "60")


@pytest.mark.parametrize("module,argv,out", [
    ("froster_slurm.task", ["retry-delay", "{run}", "0"], "0"),
    ("froster_slurm.restore", ["retry-delay", "{run}"], "60"),
])
def test_the_entries_older_scripts_call_still_answer(tmp_path: Path, module: str,
                                                     argv: list[str], out: str) -> None:
    """A run submitted before the one job entry keeps its rendered scripts, which call these
    modules on every requeue (an upgrade must not stall it)."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    args = [a.format(run=tmp_path) for a in argv]
    p = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                       env=env, timeout=60)
    assert (p.returncode, p.stdout.strip()) == (0, out), p.stderr
