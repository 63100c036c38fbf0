"""Inside a Slurm job: which task am I, and my live status line (the job's Comment).

Job side only.  A job's Comment (``squeue -o %k``) is a live view: short, lost when the job
leaves the queue, not settable after the job ends; what lasts is in the run directory.  Every
Comment goes through ``clip_comment``, the one truncation rule.
"""

from __future__ import annotations

import os

from ..errors import FrosterError
from .slurm import SlurmClient

COMMENT_MAX = 1000  # Slurm's limit is 1024 bytes; keep a margin for multi-byte characters


def slurm_task_id(env: dict[str, str] | None = None) -> str | None:
    """``ARRAYID_TASKID`` inside an array task, the job id outside one, else None.

    Never ``$SLURM_JOB_ID`` alone inside an array: for a task it names the whole array in
    some commands, and an update would hit every task.
    """
    env = os.environ if env is None else env
    array, task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return env.get("SLURM_JOB_ID") or None


def clip_comment(text: str) -> str:
    """One printable line, at most COMMENT_MAX bytes of UTF-8 (Slurm rejects longer comments).

    Bytes that are not UTF-8 (surrogateescape in paths) are shown as ``\\xNN``.
    """
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = " ".join(text.split())
    data = text.encode("utf-8", "replace")
    if len(data) <= COMMENT_MAX:
        return text
    return data[:COMMENT_MAX - 3].decode("utf-8", "ignore") + "..."


def set_comment(text: str) -> None:
    """The job's live status line in squeue (Slurm backend only; best effort).

    Addressed like the archive tasks (``slurm_task_id``): a crawl shard is an array task, and
    its bare SLURM_JOB_ID would make scontrol update every shard at once.
    """
    job = slurm_task_id()
    if job and os.environ.get("FROSTER_BACKEND") != "local" and SlurmClient.available():
        try:
            SlurmClient().set_comment(job, clip_comment(text))
        except FrosterError:
            pass
