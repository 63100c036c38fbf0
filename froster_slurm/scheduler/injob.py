"""Inside a job: which task am I, what may I use, and my live status line.

Job side only, and with ``slurm`` and ``backends`` the only code that reads Slurm's ``SLURM_*``
variables.  It knows which backend runs the job: the local backend sets
``FROSTER_BACKEND=local`` and the few Slurm variables a job reads, and has no Comment.  Every
function takes an optional ``env`` so tests need no real job.

The live status line is the job's Comment under Slurm (``squeue -o %k``): a view, not a record
(lost when the job leaves the queue, not settable after the job ended); what lasts is in the
run directory.  ``set_status`` is the one way to set it, and ``slurm.clip_comment`` the one
truncation rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import FrosterError
from ..util.atomic import write_atomic
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
               env: Mapping[str, str] | None = None) -> str:
    """Show ``text`` as this job's live status line; never fails the job.  Returns the line.

    Under Slurm it becomes the Comment of this job, or of this array task (``job_ref``).
    ``status_file`` (a task's ``comment`` file) gets the same line under every backend, so
    status can show it without Slurm and a person can always ``cat`` it.  Setting a Comment
    fails once the job has ended: that is ignored.
    """
    text = clip_comment(text)
    if status_file is not None:
        try:
            status_file.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(status_file, text + "\n")
        except OSError:
            pass
    ref = job_ref(env)
    if backend(env) == SLURM and ref and SlurmClient.available():
        try:
            SlurmClient().set_comment(ref, text)
        except FrosterError:
            pass
    return text
