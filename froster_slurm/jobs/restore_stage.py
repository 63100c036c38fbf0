"""The restore job's lifecycle: one run of ``restore.job.RestoreJob``, then 0, 75 or 70.

Job side (``python -m froster_slurm.jobs restore RUN_DIR``; ``retry-delay RUN_DIR`` prints the
seconds the job script waits before the requeue).  Exit codes: 0 done; 75 not yet (objects still
thawing) or a transient failure, requeue after ``retry-delay``; 70 failed for good (the reason
is in restore.json).  TERM/USR1 stop the run where it is; the next run resumes there.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

from ..errors import (
    EXIT_PERMANENT,
    EXIT_TEMPFAIL,
    DataError,
    FrosterError,
    PermanentError,
    TransientError,
    UserError,
)
from ..restore.job import RestoreJob, log, status
from ..restore.remote import NotReady
from ..restore.restorestate import read_state, write_state
from ..run.taskstate import update_task_state
from ..util.clock import now_iso
from ..util.paths import display

_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.ESTALE, errno.EIO, errno.ETIMEDOUT,
                     errno.EAGAIN, errno.EINTR, errno.ENOMEM, errno.EMFILE, errno.ENFILE,
                     errno.ENOLINK, errno.EBUSY}


def _os_message(e: OSError) -> str:
    name = e.filename if e.filename is not None else ""
    where = f" ({display(os.fsencode(name))[:200]})" if name != "" else ""
    return f"{e.strerror or e}{where}"


def retry_delay(run_dir: Path) -> int:
    """Seconds the job script should wait before the next run (state's retry_after)."""
    try:
        after = float(read_state(run_dir).get("retry_after") or 0)
    except FrosterError:
        return 60
    return max(0, int(after - time.time() + 0.999))


def _schedule(run_dir: Path, state: dict[str, Any], delay: int, why: str) -> int:
    state.update(retry_after=time.time() + delay, next_check_in=delay, last_note=why)
    write_state(run_dir, state)
    update_task_state(run_dir, 0, retry_after=time.time() + delay)  # the local backend reads it
    status(run_dir, f"restore: {why}; next check in {delay}s")
    log(f"{why}; next check in {delay}s")
    return EXIT_TEMPFAIL


class Stopped(BaseException):  # noqa: N818 - like KeyboardInterrupt: nothing may swallow it
    """TERM/USR1: stop now (rclone is stopped by its wrapper on the way out); resume later."""


def _on_signal(signum: int, _frame: Any) -> None:
    signal.signal(signum, signal.SIG_IGN)  # once is enough
    raise Stopped(signal.Signals(signum).name)


def run_restore(run_dir: Path) -> int:
    """Entry point of one run of the guarded job: returns 0, 75 (requeue later) or 70."""
    try:
        job = RestoreJob(run_dir)
    except FrosterError as e:
        log(f"cannot start: {e}")
        return EXIT_PERMANENT
    interval = int(job.opts.get("check_interval") or 1800)
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, _on_signal)
    try:
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
        return _retry(run_dir, job, interval, _os_message(e))
    except TransientError as e:
        return _retry(run_dir, job, interval, str(e))
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


def _retry(run_dir: Path, job: RestoreJob, interval: int, e: str) -> int:
    """A transient failure: try again later, with a growing delay, up to max_attempts."""
    failures = int(job.state.get("failures") or 0) + 1
    job.state.update(failures=failures, error=e)
    if failures >= job.settings.max_attempts:
        return _fail(run_dir, job.state, f"gave up after {failures} attempts: {e}")
    delay = min(interval, job.settings.retry_delay * 2 ** (failures - 1))
    return _schedule(run_dir, job.state, delay, f"attempt {failures} failed: {e}")


def _fail(run_dir: Path, state: dict[str, Any], message: str) -> int:
    state.update(phase="failed", error=message, failed_phase=state.get("phase"),
                 finished_at=now_iso())
    write_state(run_dir, state)
    status(run_dir, f"restore FAILED: {message}")
    log(f"FAILED: {message}")
    return EXIT_PERMANENT
