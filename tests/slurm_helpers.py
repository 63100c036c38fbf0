"""What the real-Slurm tests share: waiting for a job to leave the queue."""

from __future__ import annotations

import time

from froster_slurm.scheduler.slurm import SlurmClient


def wait_gone(job: str, timeout: float = 120) -> None:
    """Return once no task of ``job`` is queued or alive; fail the test after ``timeout``."""
    client = SlurmClient()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(i.active for i in client.queue([job]).values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job} still queued after {timeout}s")
