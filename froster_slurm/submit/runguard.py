"""One submission into a run at a time, and no ``retry`` into a run that is still running.

A run's archive chain (``chain.py``) is what makes ``archive.throttle`` and ``slurm.max_queued``
true: one array at a time, each ``%N``, the next queued by a chain job when it ends.  A retry
that queued its folders while that chain still runs would start a second chain beside it: the
throttle and the cap would hold within each chain, not across the two, and the folders still
pending in the first chain would be queued twice (their locks keep the data safe, not the
queue).  So ``retry`` refuses, before anything is written or queued, while any job of the run
can still run (``JobInfo.live``: the rule ``status`` counts a run active by), and says how many
folders are still to come and what to cancel to stop it.  Handing the failed folders to the
running chain instead is not done: there is a chain to hand them to only while a chain job is
still pending; a run of one array, or one on its last array, has no chain job left, only
finalize queued behind the array, and adding work then means cancelling or re-pointing a
queued job while it may be starting.

Two commands may also race: a retry typed twice, or a retry while the first submission is
still queueing its first array (its job ids are not in jobs.toml yet).  Each takes the run's
``submit_lock_path`` without waiting; the one that does not get it refuses at once.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import BusyError, FrosterError
from ..run.rundir import Run
from ..scheduler.backends import Backend
from ..scheduler.slurm import rows_of

SHOWN_JOBS = 8  # job ids named in the refusal at most


@contextmanager
def sole_submitter(run: Run) -> Iterator[None]:
    """Hold the run's submit lock for the body, or refuse at once if another command has it
    (never wait: under the local backend the holder runs the whole run)."""
    with open(run.submit_lock_path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(f"run {run.run_id}: another command is submitting into it right "
                            "now; retry after it returns") from None
        yield


def live_jobs(run: Run, be: Backend) -> list[str]:
    """The job ids of jobs.toml that are still queued or running and can still run.

    A queue that cannot be asked is no answer: the run may be running, so the caller must
    not go on as if it were not.
    """
    ids = list(dict.fromkeys(run.all_job_ids()))
    if not ids:
        return []
    try:
        queue = be.queue(ids)
    except FrosterError as e:
        raise BusyError(f"run {run.run_id}: cannot tell whether its jobs still run ({e}); "
                        f"retry once `froster-slurm status {run.run_id}` can ask the queue"
                        ) from e
    return [j for j in ids if any(r.live for r in rows_of(j, queue))]


def refuse_while_running(run: Run, be: Backend, unfinished: int, *,
                         doing: str | None = None) -> None:
    """Raise ``BusyError`` (one line) if a job of ``run`` can still run; ``unfinished`` is how
    many of its folders are neither done nor failed (queued, running or waiting to retry);
    ``doing`` says what it does instead, when it has no folders yet.  Call it holding
    ``sole_submitter(run)``."""
    if be.name == "local":
        # The local backend runs a run's jobs inside the command that submitted them, and
        # that command holds the submit lock the caller now holds (``sole_submitter``): no
        # job of the run runs.  A job record left RUNNING by a command that was killed is
        # stale, and must not block the retry that finishes its folders.
        return
    live = live_jobs(run, be)
    if not live:
        return
    shown = " ".join(live[:SHOWN_JOBS]) + (" ..." if len(live) > SHOWN_JOBS else "")
    doing = doing or f"{unfinished:,} folders queued/running"
    raise BusyError(f"run {run.run_id} is still running: {doing}; retry after it ends "
                    f"(`froster-slurm status {run.run_id} --watch`), or `scancel {shown}` to "
                    "stop it first")
