"""``rank`` and ``crawl`` on a terminal show progress; in a batch job (stderr a file) they
print none of it."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rank_testdata import tree_rows, write_csv

from froster_slurm.cli.rank_cmd import _load_progress
from froster_slurm.status.progress import TermLine


def test_rank_load_progress_numbers_its_passes() -> None:
    s = io.StringIO()
    line = TermLine("rank", "rows", stream=s, force=True, every=0)
    show = _load_progress(line)
    for pct in (10.0, 60.0, 99.0, 3.0, 50.0):
        show(pct)
    out = s.getvalue()
    assert "pass 1:  60%" in out and "pass 2:  50%" in out


def _tmux(sock: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                          check=True).stdout


def _on_terminal(tmp_path: Path, argv: list[str]) -> str:
    """Run argv in a real terminal (tmux) and return the screen once it exited."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (make setup installs it)")
    sock = f"froster-test-{uuid.uuid4().hex[:8]}"
    env = {k: os.environ[k] for k in ("XDG_CONFIG_HOME", "FROSTER_SLURM_SITE_CONFIG",
                                      "FROSTER_SLURM_STATE_DIR") if k in os.environ}
    cmd = ["env", *[f"{k}={v}" for k, v in env.items()], "TERM=xterm",
           f"PYTHONPATH={Path.cwd()}", sys.executable, "-m", "froster_slurm", *argv]
    shell = (f"cd '{tmp_path}'; stty size; " + " ".join(f"'{c}'" for c in cmd)
             + "; echo EXIT=$?; sleep 120")
    _tmux(sock, "new-session", "-d", "-s", "w", "-x", "150", "-y", "30", shell)
    try:
        deadline = time.monotonic() + 120
        while "EXIT=" not in (text := _tmux(sock, "capture-pane", "-p", "-t", "w")):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        return text
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)


def test_rank_on_a_terminal_and_in_a_batch_job(tmp_path: Path) -> None:
    crawl = write_csv(tmp_path / "crawl.csv", tree_rows())
    screen = _on_terminal(tmp_path, ["rank", str(crawl), "-o", "hot.csv", "-q"])
    assert "EXIT=0" in screen
    assert "rank: 14 crawl rows loaded in" in screen and "rows/s)" in screen
    # As in a batch job: stderr is a file, so no progress at all.
    with open(tmp_path / "job.log", "w+b") as log:
        p = subprocess.run([sys.executable, "-m", "froster_slurm", "rank", str(crawl), "-o",
                            str(tmp_path / "hot2.csv"), "-q"], stderr=log,
                           stdout=subprocess.PIPE, timeout=120)
        log.seek(0)
        err = log.read()
    assert p.returncode == 0 and b"loaded in" not in err and b"\r" not in err


def test_crawl_on_a_terminal_and_in_a_batch_job(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for i in range(50):
        (tree / f"d{i}").mkdir(parents=True)
        (tree / f"d{i}" / "f").write_bytes(b"x")
    screen = _on_terminal(tmp_path, ["crawl", str(tree), "-o", "c.csv", "--engine",
                                     "builtin"])
    assert "EXIT=0" in screen and "crawled 101 entries" in screen and "entries/s" in screen
    with open(tmp_path / "job.log", "w+b") as log:
        p = subprocess.run([sys.executable, "-m", "froster_slurm", "crawl", str(tree), "-o",
                            str(tmp_path / "c2.csv"), "--engine", "builtin"], stderr=log,
                           stdout=subprocess.PIPE, timeout=120)
        log.seek(0)
        err = log.read()
    assert p.returncode == 0 and b"\r" not in err and b"\x1b" not in err
