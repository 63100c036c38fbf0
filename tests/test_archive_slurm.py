"""The archive array on the REAL local Slurm cluster: Comment, requeue from outside, USR1 trap.

Submitted through the manager's own ``froster_slurm.submit.pipeline.archive_folders`` so the
rendered ``templates/archive.sbatch`` (with ``jobscripts/common.sh`` + ``archive.sh`` inlined) is
what runs.  Task 0 is requeued with ``scontrol requeue`` while it uploads; task 1 gets the USR1 that
``--signal=B:USR1@grace`` sends before a time limit (``scancel --batch --signal=USR1`` delivers
exactly that signal to the batch shell, without waiting for a real time limit).  Both must end
verified, resuming where they stopped.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from archive_helpers import md5sum_check, need, state, write_file

from froster_slurm.config import Config, load_config
from froster_slurm.submit.pipeline import archive_folders

pytestmark = pytest.mark.slurm


def slurm_config(tmp_path: Path) -> Config:
    """One CPU per task so both tasks run at once on the 2-core test node; slow uploads so
    there is time to interrupt them."""
    return load_config({"state_dir": str(tmp_path / "state"), "archive.recursive": True,
                        "archive.bundle_threshold": "64KiB", "archive.transfers": 1,
                        "archive.rclone_flags": ["--bwlimit=1M"], "archive.retry_delay": 2,
                        "slurm.archive.cpus": 1})


def comments(job: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%i %k"], capture_output=True,
                         text=True).stdout
    rows = (line.split(" ", 1) for line in out.splitlines() if " " in line)
    return {jid: text for jid, text in rows}


def wait_for(what: str, predicate: Any, timeout: float) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_archive_array_requeue_and_usr1_trap_on_real_slurm(slurm_cluster: None,
                                                          tmp_path: Path) -> None:
    need("rclone")
    need("scontrol")
    folders = []
    for name in (b"first", b"second $(touch PWNED)"):
        f = os.fsencode(tmp_path / "src") + b"/" + name
        for k in range(6):
            write_file(f + b"/part%d.bin" % k, os.urandom(1024 * 1024))
        write_file(f + b"/small.txt", b"small")
        folders.append(f)
    result = archive_folders(folders, str(tmp_path / "remote"), slurm_config(tmp_path),
                             backend="slurm")
    job = result.job_ids["archive"][0]
    run_dir = result.run_dir
    t0, t1 = f"{job}_0", f"{job}_1"
    seen: dict[str, str] = {}

    def uploading(task: str) -> bool:
        c = comments(job)
        seen.update({k: v for k, v in c.items() if v and v != "(null)"})
        return "upload" in c.get(task, "")

    wait_for("task 0 to upload", lambda: uploading(t0), 120)
    assert seen[t0].startswith("archive step 4/6 upload")
    subprocess.run(["scontrol", "requeue", t0], check=True)
    wait_for("task 1 to upload", lambda: uploading(t1), 120)
    subprocess.run(["scancel", "--batch", "--signal=USR1", t1], check=True)

    def both_done() -> bool:
        states = []
        for i in (0, 1):
            try:
                states.append(state(run_dir, i)["state"])
            except FileNotFoundError:
                return False
        return states == ["done", "done"]

    wait_for("both tasks to finish", both_done, 240)
    for i, f in enumerate(folders):
        st = state(run_dir, i)
        assert st["attempts"] >= 2, st  # each was stopped once and resumed
        assert st["slurm_job"] == f"{job}_{i}"
        assert md5sum_check(f).returncode == 0
    log0 = (run_dir / "logs" / f"archive-{job}_0.out").read_text()
    log1 = (run_dir / "logs" / f"archive-{job}_1.out").read_text()
    assert "stopped by SIGTERM during step upload" in log0 and "(restart 1)" in log0
    assert "got SIGUSR1" in log1 and f"requeued {job}_1" in log1 and "(restart 1)" in log1
    assert not os.path.exists("/PWNED") and not os.path.exists(tmp_path / "PWNED")
    final = wait_for("the done Comments", lambda: all(
        "archive done" in comments(job).get(t, "archive done") for t in (t0, t1)), 30)
    assert final
