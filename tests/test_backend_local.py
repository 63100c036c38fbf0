"""The local backend runs the same rendered scripts as Slurm would, without Slurm."""

from __future__ import annotations

import time
from pathlib import Path

from froster_slurm.scheduler.backends import LocalBackend, parse_array, read_script_options
from froster_slurm.scheduler.slurm import dependency


def script(tmp_path: Path, name: str, body: str, directives: str = "") -> Path:
    p = tmp_path / "scripts" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(f"#!/bin/bash\n{directives}#SBATCH --output {tmp_path}/logs/{name}-%A_%a.out\n"
                 f"#SBATCH --open-mode append\nset -euo pipefail\n{body}")
    return p


def test_parse_array_specs() -> None:
    assert parse_array("0-3%2") == ([0, 1, 2, 3], 2)
    assert parse_array("1,3,5-7") == ([1, 3, 5, 6, 7], 0)
    assert parse_array("0-6:3") == ([0, 3, 6], 0)


def test_array_runs_every_task_with_slurm_like_environment(tmp_path: Path) -> None:
    s = script(tmp_path, "a.sbatch",
               f'echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $FROSTER_BACKEND" '
               f'> {tmp_path}/task-$SLURM_ARRAY_TASK_ID\n',
               "#SBATCH --array 0-4%2\n#SBATCH --job-name t\n")
    assert read_script_options(s).throttle == 2
    be = LocalBackend(tmp_path / "state", parallel=4)
    job = be.submit(s)
    for i in range(5):
        assert (tmp_path / f"task-{i}").read_text() == f"{job} {i} local\n"
    assert be.queue([job])[job].state == "COMPLETED"
    assert (tmp_path / "logs").is_dir()


def test_afterok_on_a_failed_job_never_runs_but_afterany_does(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "state")
    bad = be.submit(script(tmp_path, "bad.sbatch", "exit 3\n"))
    assert be.queue([bad])[bad].state == "FAILED"
    ok_dep = be.submit(script(tmp_path, "x.sbatch", f"touch {tmp_path}/x\n"),
                       dependency=dependency(afterok=[bad]))
    any_dep = be.submit(script(tmp_path, "y.sbatch", f"touch {tmp_path}/y\n"),
                        dependency=dependency(afterany=[bad], singleton=True))
    assert be.queue([ok_dep])[ok_dep].state == "CANCELLED"
    assert not (tmp_path / "x").exists()
    assert (tmp_path / "y").exists()
    assert be.queue([any_dep])[any_dep].state == "COMPLETED"


def test_exit_75_is_a_requeue_after_the_recorded_delay(tmp_path: Path) -> None:
    """A task that asks for a retry (75) runs again when its requeue-after file says; which
    file is the submission's word (offset-aware), not the script's text."""
    due = tmp_path / "tasks" / "1000" / "requeue-after"
    due.parent.mkdir(parents=True)
    due.write_text(f"{time.time() + 1.5}\n")
    body = (f'n=$(cat {tmp_path}/count 2>/dev/null || echo 0); echo $((n+1)) > {tmp_path}/count\n'
            f'[ "$n" -ge 2 ] || exit 75\n')
    be = LocalBackend(tmp_path / "state")
    started = time.time()
    asked: list[int] = []

    def requeue_file(task: int) -> Path:
        asked.append(task)
        return tmp_path / "tasks" / str(1000 + task) / "requeue-after"

    job = be.submit(script(tmp_path, "r.sbatch", body, "#SBATCH --array 0\n"),
                    requeue_file=requeue_file)
    assert (tmp_path / "count").read_text() == "3\n"
    assert time.time() - started >= 1.0  # waited for task 1000's requeue-after
    assert asked == [0, 0]  # asked after each of the two exits 75, for array task 0
    assert be.queue([job])[job].state == "COMPLETED"
    log = (tmp_path / "logs" / f"r.sbatch-{job}_0.out")
    assert log.exists()


def test_the_job_runtime_writes_the_file_the_local_backend_waits_for(tmp_path: Path) -> None:
    """End to end: a payload that requeues through jobs.runtime (the requeue-after file, then
    EXIT_TEMPFAIL) is run again by the local backend no sooner than the delay it asked for."""
    import os
    import sys

    repo = Path(__file__).resolve().parents[1]
    marks, requeue = tmp_path / "runs.txt", tmp_path / "tasks" / "7" / "requeue-after"
    payload = tmp_path / "payload.py"
    payload.write_text(f"""import sys, time
from pathlib import Path
from froster_slurm.jobs import runtime
marks = Path({str(marks)!r})
runs = marks.read_text().split() if marks.exists() else []
marks.write_text(" ".join([*runs, repr(time.time())]))
sys.exit(runtime.requeue(Path({str(requeue)!r}), 2) if not runs else 0)
""")
    path = os.environ.get("PYTHONPATH") or str(repo)
    s = script(tmp_path, "p.sbatch", f"PYTHONPATH={path} {sys.executable} {payload}\n")
    be = LocalBackend(tmp_path / "state")
    job = be.submit(s, requeue_file=lambda task: tmp_path / "tasks" / str(7 + task) /
                    "requeue-after")
    first, second = (float(t) for t in marks.read_text().split())
    assert second - first >= 1.9, (first, second)
    assert float(requeue.read_text()) <= second  # it ran again once the file was due
    assert be.queue([job])[job].state == "COMPLETED"


def test_begin_holds_a_local_job_then_runs_it(tmp_path: Path) -> None:
    """The local backend has no queue to hold a job in: ``begin`` makes the submitting
    command wait (the job shows PENDING, BeginTime meanwhile), then the job runs."""
    be = LocalBackend(tmp_path / "state")
    started = time.time()
    job = be.submit(script(tmp_path, "b.sbatch", f"date +%s.%N > {tmp_path}/ran\n",
                           "#SBATCH --job-name froster-b\n"), begin=1)
    assert float((tmp_path / "ran").read_text()) - started >= 1.0
    assert be.queue([job])[job].state == "COMPLETED"
    assert be.named("froster-b") == []  # nothing is left queued once submit returns
