"""``restore --wait`` returns a finished restore only once its job has left the queue: a
command run right after it must not find the restore "already queued" (seen by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest

from froster_slurm.restore import submit
from froster_slurm.restore.restorestate import state_path, write_state
from froster_slurm.run.rundir import Run
from froster_slurm.scheduler.slurm import JobInfo

pytestmark = pytest.mark.unit


class LeavingQueue:
    """A queue in which the restore job is still listed for ``polls`` more questions."""

    def __init__(self, polls: int):
        self.polls = polls
        self.asked = 0

    def named(self, name: str) -> list[JobInfo]:
        self.asked += 1
        if self.asked <= self.polls:
            return [JobInfo("7", name, "COMPLETING")]
        return []


def _run(tmp_path: Path, phase: str) -> Run:
    run_dir = tmp_path / "run"
    state_path(run_dir).parent.mkdir(parents=True, exist_ok=True)
    write_state(run_dir, {"phase": phase})
    return Run(run_dir)


@pytest.mark.parametrize("phase", ["done", "failed"])
def test_a_finished_restore_is_returned_after_its_job_left_the_queue(
        tmp_path: Path, phase: str) -> None:
    queue = LeavingQueue(polls=3)
    state = submit.wait_for(_run(tmp_path, phase), b"/t", queue, poll=0.01)  # type: ignore[arg-type]
    assert state["phase"] == phase
    assert queue.asked == 4  # asked until the job was gone, not returned at the first "done"


def test_a_job_that_never_leaves_does_not_hold_the_command_for_ever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit, "LEAVE_SECONDS", 0.05)
    queue = LeavingQueue(polls=10**9)
    assert submit.wait_for(_run(tmp_path, "done"), b"/t", queue, poll=0.01)[  # type: ignore[arg-type]
        "phase"] == "done"
