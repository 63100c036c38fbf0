"""Time slots (issue 20 item 5): a task that makes no progress over N slots fails instead of
requeueing for ever; progress made in a slot is kept.

The USR1 that ``--signal=B:USR1@grace`` sends before the time limit is sent by hand to the
task process in the first two tests (each slot is seconds, not minutes); the last one lets a
2-minute time limit on the real local cluster do it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from archive_helpers import make_run, md5sum_check, state, task_cmd, task_env, write_file

from froster_slurm.config import load_config
from froster_slurm.submit.pipeline import archive_folders

THRESHOLD = 64 * 1024


def copies_started(run_dir: Path) -> int:
    log = run_dir / "tasks" / "0" / "logs" / "upload.log"
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text().splitlines()
               if line.startswith("# ") and " copy " in line)


def slot(run_dir: Path, until, timeout: float = 60) -> int:
    """One time slot: run the task until ``until()`` holds, then USR1; returns its exit."""
    proc = subprocess.Popen(task_cmd(run_dir, 0), cwd="/", env=task_env(
        {"SLURM_ARRAY_TASK_ID": "0"}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while not until() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        time.sleep(0.3)
        proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)
    slot.stderr = err.decode(errors="replace")  # type: ignore[attr-defined]
    return proc.returncode


def test_no_progress_over_n_slots_fails_with_the_fix(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path / "big")
    write_file(folder + b"/huge.bin", os.urandom(2 * 1024 * 1024))  # 100 s at 20 kB/s
    run_dir = make_run(tmp_path / "state", [folder], str(tmp_path / "remote"),
                       bundle_threshold=THRESHOLD, transfers=1, max_idle_slots=2,
                       rclone_flags=["--bwlimit=20k"])
    codes = []
    for n in (1, 2, 3):
        codes.append(slot(run_dir, lambda n=n: copies_started(run_dir) >= n))
        st = state(run_dir, 0)
        if codes[-1] == 70:
            break
        assert st["state"] == "retrying", st
    # slot 1 finished inventory, bundle and hash; slots 2 and 3 finished nothing
    assert codes == [75, 75, 70], slot.stderr  # type: ignore[attr-defined]
    st = state(run_dir, 0)
    assert (st["state"], st["error_kind"], st["idle_slots"]) == ("failed", "permanent", 2)
    assert st["error"] == ("no progress in 2 time slots in a row (at step upload, 1 parallel "
                           "transfers): the work does not fit in a time slot: raise "
                           "slurm.archive.time or lower archive.transfers")
    assert "does not fit in a time slot" in (run_dir / "tasks" / "0" / "comment").read_text()


def test_progress_made_in_a_slot_is_kept(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path / "two")
    write_file(folder + b"/a.bin", os.urandom(1024 * 1024))
    write_file(folder + b"/b.bin", os.urandom(3 * 1024 * 1024))
    run_dir = make_run(tmp_path / "state", [folder], str(tmp_path / "remote"),
                       bundle_threshold=THRESHOLD, transfers=1, max_idle_slots=1,
                       rclone_flags=["--bwlimit=1M"])
    log = run_dir / "tasks" / "0" / "logs" / "upload.log"
    # slot 1: a.bin arrives, then the time limit stops the upload of b.bin
    assert slot(run_dir, lambda: log.exists() and any(
        '"object":"a.bin"' in line and "Copied" in line
        for line in log.read_text().splitlines())) == 75
    st = state(run_dir, 0)
    assert st["idle_slots"] == 0 and st["hashes_stored"] == 2
    # slot 2 stops as soon as its copy starts: it made no upload of its own, but its precheck
    # found a.bin from slot 1 on the remote (kept, not sent again), so it is not idle either
    assert slot(run_dir, lambda: copies_started(run_dir) >= 2) == 75
    st = state(run_dir, 0)
    assert (st["state"], st["idle_slots"], st["objects_on_remote"]) == ("retrying", 0, 1)
    proc = subprocess.run(task_cmd(run_dir, 0), cwd="/", env=task_env(
        {"SLURM_ARRAY_TASK_ID": "0"}), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 objects already on the remote with the right md5: not sent again" in proc.stderr
    assert md5sum_check(folder).returncode == 0


@pytest.mark.slurm
def test_livelock_with_a_tiny_time_limit_on_slurm(slurm_cluster: None, tmp_path: Path) -> None:
    """A 2-minute time limit, 50 s grace, an upload that needs ~7 minutes: the task stops at
    every time limit, and fails after 2 slots in a row without progress (not requeued for
    ever)."""
    folder = os.fsencode(tmp_path / "src" / "big")
    write_file(folder + b"/huge.bin", os.urandom(4 * 1024 * 1024))
    cfg = load_config({"state_dir": str(tmp_path / "state"), "archive.recursive": True,
                       "archive.bundle_threshold": "64KiB", "archive.transfers": 1,
                       "archive.rclone_flags": ["--bwlimit=10k"], "archive.requeue_grace": 50,
                       "archive.max_idle_slots": 2, "slurm.archive.time": "2",
                       "slurm.archive.cpus": 1})
    result = archive_folders([folder], str(tmp_path / "remote"), cfg, backend="slurm")
    job = result.job_ids["archive"][0]
    deadline = time.time() + 600
    st: dict = {}
    while time.time() < deadline:
        try:
            st = state(result.run_dir, 0)
        except (FileNotFoundError, ValueError):
            st = {}
        if st.get("state") in ("failed", "done"):
            break
        time.sleep(2)
    log = (result.run_dir / "logs" / f"archive-{job}_0.out").read_text()
    assert st.get("state") == "failed", (st, log[-3000:])
    assert "does not fit in a time slot: raise slurm.archive.time or lower " \
        "archive.transfers" in st["error"]
    assert st["attempts"] == 3 and st["idle_slots"] == 2
    assert log.count("got SIGUSR1") == 3 and "(restart 2)" in log
    gone = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout
    assert gone.strip() == ""  # not queued again
