"""The restore job's lifecycle: one run of ``restore.job.RestoreJob``, then an exit code.

Job side (``python -m froster_slurm.jobs restore RUN_DIR``; ``retry-delay RUN_DIR`` prints the
seconds the job script waits before the requeue).  Exit codes: ``EXIT_OK`` done;
``EXIT_TEMPFAIL`` not yet (objects still thawing: the next check ``restore.check_interval``
later) or a transient failure (the job runtime's back-off), requeue after ``retry-delay``;
``EXIT_PERMANENT`` failed for good (the reason is in restore.json).  Stop signals, back-off and
the requeue request are ``jobs.runtime``'s: TERM/USR1/INT stop the run where it is; the next
run resumes there.  The restore job is task 0 of its run (its ``requeue-after`` file).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

from ..errors import (
    EXIT_PERMANENT,
    DataError,
    FrosterError,
    PermanentError,
    TransientError,
    UserError,
)
from ..restore.job import RestoreJob, log, status
from ..restore.remote import NotReady
from ..restore.restorestate import read_state, write_state
from ..run.rundir import Run
from ..util.clock import now_iso
from ..util.paths import display
from . import runtime
from .runtime import RetryPolicy, Stopped

_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.ESTALE, errno.EIO, errno.ETIMEDOUT,
                     errno.EAGAIN, errno.EINTR, errno.ENOMEM, errno.EMFILE, errno.ENFILE,
                     errno.ENOLINK, errno.EBUSY}


def _os_message(e: OSError) -> str:
    name = e.filename if e.filename is not None else ""
    where = f" ({display(os.fsencode(name))[:200]})" if name != "" else ""
    return f"{e.strerror or e}{where}"


def retry_delay(run_dir: Path) -> int:
    """Seconds the job script should wait before the next run: the job's requeue-after; when
    it never asked for one (it crashed first), 0, or a minute with no restore.json at all."""
    path = Run(run_dir).task(0).requeue_after
    if path.exists():
        return runtime.retry_delay(path)
    try:
        read_state(run_dir)
    except FrosterError:
        return 60  # nothing recorded: do not spin on a job that cannot even start
    return 0


def _schedule(run_dir: Path, state: dict[str, Any], delay: int, why: str) -> int:
    """Record why and when in restore.json (for status), then ask for the requeue."""
    state.update(retry_after=time.time() + delay, next_check_in=delay, last_note=why)
    write_state(run_dir, state)
    status(run_dir, f"restore: {why}; next check in {delay}s")
    log(f"{why}; next check in {delay}s")
    return runtime.requeue(Run(run_dir).task(0).requeue_after, delay)


def run_restore(run_dir: Path) -> int:
    """Entry point of one run of the guarded job: returns EXIT_OK, EXIT_TEMPFAIL (requeue
    later) or EXIT_PERMANENT."""
    try:
        job = RestoreJob(run_dir)
    except FrosterError as e:
        log(f"cannot start: {e}")
        return EXIT_PERMANENT
    interval = int(job.opts.get("check_interval") or 1800)
    try:
        with runtime.stop_signals():  # signals blocked once left: the outcome is known
            code = job.run_once()
        job.save(failures=0)
        return code
    except Stopped as e:
        return _schedule(run_dir, job.state, 0, f"stopped by {e} in phase "
                                                f"{job.state.get('phase')}; resumes there")
    except NotReady as e:
        waited = _waited(job.state)
        limit = int(job.opts.get("max_wait") or 0)
        if limit and waited >= limit:
            shown = ", ".join(e.frozen[:10]) or str(e)
            more = f" and {len(e.frozen) - 10} more" if len(e.frozen) > 10 else ""
            return _fail(run_dir, job.state,
                         f"still frozen after {waited // 3600} h {waited % 3600 // 60} min "
                         f"(restore.max_wait is {limit} s): {shown}{more}; ask the storage "
                         "admin whether the thaw request reached the remote, then restore "
                         "again")
        return _schedule(run_dir, job.state, interval, f"objects are not readable yet ({e})")
    except OSError as e:
        if e.errno not in _TRANSIENT_ERRNOS:
            return _fail(run_dir, job.state, _os_message(e))
        return _retry(run_dir, job, _os_message(e))
    except TransientError as e:
        return _retry(run_dir, job, str(e))
    except (PermanentError, DataError, UserError) as e:
        return _fail(run_dir, job.state, str(e))


def _waited(state: dict[str, Any]) -> int:
    """Seconds since the thaw was asked for (or the restore created)."""
    from datetime import datetime

    for key in ("requested_at", "created_at"):
        try:
            start = datetime.fromisoformat(str(state[key]))
        except (KeyError, ValueError):
            continue
        now = datetime.now(start.tzinfo)
        return max(0, int((now - start).total_seconds()))
    return 0


def _retry(run_dir: Path, job: RestoreJob, e: str) -> int:
    """A transient failure: try again later, with the runtime's back-off, up to max_attempts."""
    retry = RetryPolicy.of(job.settings).failed(int(job.state.get("failures") or 0))
    job.state.update(failures=retry.failures, error=e)
    if retry.final:
        return _fail(run_dir, job.state, f"gave up after {retry.failures} attempts: {e}")
    return _schedule(run_dir, job.state, retry.delay, f"attempt {retry.failures} failed: {e}")


def _fail(run_dir: Path, state: dict[str, Any], message: str) -> int:
    state.update(phase="failed", error=message, failed_phase=state.get("phase"),
                 finished_at=now_iso())
    write_state(run_dir, state)
    status(run_dir, f"restore FAILED: {message}")
    log(f"FAILED: {message}")
    return EXIT_PERMANENT
