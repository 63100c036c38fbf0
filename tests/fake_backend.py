"""A fake scheduler for the submission code's unit tests: it records what it is given, and
its queue answers what the test says (``Backend`` protocol, ``scheduler/backends.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from froster_slurm.errors import SlurmError
from froster_slurm.scheduler.backends import RequeueFile
from froster_slurm.scheduler.slurm import JobInfo, QueueLimits


class FakeBackend:
    """A scheduler that records what it is given and whose queue the test sets."""

    name = "slurm"

    def __init__(self) -> None:
        self.submitted: list[str] = []  # script names, in order
        self.state: dict[str, str] = {}  # job id -> state ('' : gone from the queue)
        self.reason: dict[str, str] = {}
        self.down = False

    def submit(self, script: Path, *, dependency: str = "", begin: int = 0,
               requeue_file: RequeueFile | None = None) -> str:
        job = str(100 + len(self.submitted))
        self.submitted.append(script.name)
        self.state[job] = "PENDING"
        return job

    def queue(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        if self.down:
            raise SlurmError(["squeue"], 1, "slurm_load_jobs error: Unable to contact "
                             "slurm controller")
        return {j: JobInfo(j, "froster", self.state[j], reason=self.reason.get(j, ""))
                for j in job_ids if self.state.get(j)}

    def named(self, name: str) -> list[JobInfo]:
        return []

    def max_array_size(self) -> int:
        return 1001

    def queue_limits(self, qos: str = "") -> QueueLimits:
        return QueueLimits(max_array_size=1001, max_job_count=10000)
