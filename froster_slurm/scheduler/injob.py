"""Inside a job: which task am I, what may I use, my live status line, and requeue me.

Job side only, and with ``slurm`` and ``backends`` the only code that reads Slurm's ``SLURM_*``
variables.  It knows which backend runs the job: the local backend sets
``FROSTER_BACKEND=local`` and the few Slurm variables a job reads, and has no Comment.  Every
function takes an optional ``env`` so tests need no real job.

The live status line is the job's Comment under Slurm (``squeue -o %k``): a view, not a record
(lost when the job leaves the queue, not settable after the job ended); what lasts is in the
run directory.  ``set_status`` is the one way to set it, and ``slurm.clip_comment`` the one
truncation rule.

A requeue is asked for in two halves.  The Python payload writes *when* it may run again into
its task's ``requeue-after`` file (``ask_requeue``: the epoch second, so a wait counts from the
request, not from whenever the file is read) and exits ``EXIT_TEMPFAIL``.  Whoever runs the
job acts on it: under Slurm the job script's requeue tail (``scontrol requeue``, then the
begin time ``requeue_delay`` seconds later), under the local backend the backend itself,
which runs the task again once ``requeue_delay`` is 0.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import FrosterError
from ..util.atomic import write_atomic, write_scratch
from .slurm import SlurmClient, clip_comment

LOCAL = "local"
SLURM = "slurm"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def backend(env: Mapping[str, str] | None = None) -> str | None:
    """``"local"`` under the local backend, ``"slurm"`` inside a Slurm job, None outside."""
    env = _env(env)
    if env.get("FROSTER_BACKEND") == LOCAL:
        return LOCAL
    return SLURM if env.get("SLURM_JOB_ID") else None


def job_ref(env: Mapping[str, str] | None = None) -> str | None:
    """The id this job answers to: ``ARRAYID_TASKID`` in an array task, the job id outside
    one, None outside a job.

    Never ``$SLURM_JOB_ID`` alone inside an array: for a task it names the whole array in
    some commands, and an update would hit every task.
    """
    env = _env(env)
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return env.get("SLURM_JOB_ID") or None


def job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The scheduler's id of this job (a requeue keeps it), None outside a job."""
    return _env(env).get("SLURM_JOB_ID") or None


def cpus(env: Mapping[str, str] | None = None) -> int | None:
    """CPUs the allocation grants each task (``--cpus-per-task``), None when not set."""
    value = _env(env).get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def memory_mb(env: Mapping[str, str] | None = None) -> int | None:
    """The job's memory in MB (``--mem``), None when the job asked for none."""
    value = _env(env).get("SLURM_MEM_PER_NODE", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def set_status(text: str, status_file: Path | None = None,
               env: Mapping[str, str] | None = None, *, comment: bool = True) -> str:
    """Show ``text`` as this job's live status line; never fails the job.  Returns the line.

    Under Slurm it becomes the Comment of this job, or of this array task (``job_ref``).
    ``status_file`` (a task's ``comment`` file) gets the same line under every backend, so
    status can show it without Slurm and a person can always ``cat`` it.  Setting a Comment
    fails once the job has ended: that is ignored.  ``comment=False``: the file only (a
    batch's folders; the batch sets its job's Comment itself, once per round).
    """
    text = clip_comment(text)
    if status_file is not None:
        try:
            status_file.parent.mkdir(parents=True, exist_ok=True)
            write_scratch(status_file, text + "\n")  # a status line: no disk flush
        except OSError:
            pass
    ref = job_ref(env)
    if comment and backend(env) == SLURM and ref and SlurmClient.available():
        try:
            SlurmClient().set_comment(ref, text)
        except FrosterError:
            pass
    return text


def ask_requeue(path: Path, delay: float, now: float | None = None) -> float:
    """Record that this task may run again no sooner than ``delay`` seconds from now (written
    atomically); returns that time.  The caller then exits ``EXIT_TEMPFAIL``."""
    due = (time.time() if now is None else now) + max(0.0, float(delay))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, f"{due!r}\n")
    return due


def requeue_delay(path: Path, now: float | None = None) -> int:
    """Whole seconds until the time in ``path`` (rounded up, a millisecond of slack): 0 when
    it is due, absent or unreadable."""
    try:
        due = float(path.read_text().strip())
    except (OSError, ValueError):
        return 0
    if not math.isfinite(due):
        return 0
    return max(0, int(due - (time.time() if now is None else now) + 0.999))
