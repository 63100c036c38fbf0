"""One archive array task: ``python -m froster_slurm.jobs archive RUN_DIR INDEX`` (job side).

The job script runs it; the folder is entry INDEX of ``RUN_DIR/folders.nul`` and never appears
in any script's text.  Exit codes:

* 0  done (or already done: a rerun of a finished task changes nothing)
* 75 a transient failure, or a stop requested by a signal: worth a requeue after the delay in
  state.json ``retry_after`` (``retry_delay * 2**(failures-1)``; 0 after a stop)
* 70 failed for good: a permanent failure (unreadable file, folder gone, a hash mismatch that
  repeats, a bad setting) or ``max_attempts`` transient failures; the reason is in
  state.json ``error`` and in the Comment

Helpers for the job script (same entry: ``python -m froster_slurm.jobs HELPER ...``):

* ``retry-delay RUN_DIR INDEX`` prints the seconds to wait before the next attempt;
* ``interrupted RUN_DIR INDEX CODE`` records that the task process died with exit CODE (killed,
  out of memory...) as a transient failure and exits 75 or 70 like ``archive`` would;
* ``status RUN_DIR INDEX TEXT`` sets the task's live status line.

Signals: SIGTERM, SIGUSR1 and SIGINT stop the task cleanly (rclone is stopped, the state says
where it was), exit 75.  A stop is not counted as a failure.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..archive.names import redact
from ..archive.settings import load_settings
from ..archive.steps import ArchiveTask, Stopped, log
from ..errors import (
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TEMPFAIL,
    FrosterError,
    TransientError,
)
from ..run.rundir import Run
from ..run.taskstate import (
    read_task_state,
    retry_delay_seconds,
    set_status,
    step_done,
    task_paths,
    write_task_state,
)
from ..scheduler.injob import slurm_task_id
from ..util.clock import now_iso
from ..util.paths import display, folder_at

_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.ESTALE, errno.EIO, errno.ETIMEDOUT,
                     errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE}

def one_line(text: str, limit: int = 500) -> str:
    text = " ".join(redact(str(text)).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextmanager
def task_lock(run_dir: Path, index: int) -> Iterator[bool]:
    """Hold ``tasks/<index>/lock`` (flock) while the task runs; yields False if it is busy.

    Two runs of one task at once (a resubmission while the old job still runs) would race on
    the same staging files; the second one backs off.
    """
    path = task_paths(run_dir, index).lock_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _install_signal_handlers() -> None:
    stopping = {"flag": False}

    def handler(signum: int, _frame: Any) -> None:
        if stopping["flag"]:
            return
        stopping["flag"] = True
        raise Stopped(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(sig, handler)


def _block_signals() -> None:
    """Once the outcome is known, a late signal must not interrupt writing it down."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1, signal.SIGINT})


def _fail_transient(run_dir: Path, index: int, state: dict[str, Any], message: str) -> int:
    """Count a transient failure; requeue with back-off, or give up after max_attempts."""
    failures = int(state.get("failures") or 0) + 1
    max_attempts = int(state.get("max_attempts") or 1)
    state.update(failures=failures, error=one_line(message), error_kind="transient")
    if failures >= max_attempts:
        state.update(state="failed", retry_after=None, finished_at=now_iso(),
                     error=one_line(f"gave up after {failures} failed attempts: {message}"))
        write_task_state(run_dir, index, state)
        set_status(run_dir, index, f"archive FAILED after {failures} attempts: "
                                   f"{one_line(message, 300)}")
        log(f"FAILED for good after {failures} attempts: {message}")
        return EXIT_PERMANENT
    delay = int(state.get("retry_delay") or 60) * 2 ** (failures - 1)
    state.update(state="retrying", retry_after=time.time() + delay)
    write_task_state(run_dir, index, state)
    set_status(run_dir, index, f"archive retry {failures + 1}/{max_attempts} in {delay}s "
                               f"(at {state.get('step')}): {one_line(message, 300)}")
    log(f"transient failure {failures}/{max_attempts}, retry in {delay}s: {message}")
    return EXIT_TEMPFAIL


def _fail_permanent(run_dir: Path, index: int, state: dict[str, Any], message: str) -> int:
    state.update(state="failed", error=one_line(message), error_kind="permanent",
                 retry_after=None, finished_at=now_iso())
    write_task_state(run_dir, index, state)
    set_status(run_dir, index, f"archive FAILED: {one_line(message, 300)}")
    log(f"FAILED: {message}")
    return EXIT_PERMANENT


def slot_mark(state: dict[str, Any]) -> list[int]:
    """What a time slot can achieve and keep: finished steps, stored hashes, objects on the
    remote (seen at the upload's precheck, so an upload shows up in the slot after it)."""
    return [len(state.get("steps_done") or []), int(state.get("hashes_stored") or 0),
            int(state.get("objects_on_remote") or 0)]


def _stopped_by_time_limit(run_dir: Path, index: int, state: dict[str, Any],
                           settings: Any) -> int | None:
    """Count time slots in a row that ended without progress; fail the task after
    ``max_idle_slots`` of them (it would requeue for ever).  None: requeue as usual."""
    idle = int(state.get("idle_slots") or 0)
    idle = idle + 1 if slot_mark(state) == state.get("slot_start_mark") else 0
    state["idle_slots"] = idle
    if idle < settings.max_idle_slots:
        return None
    return _fail_permanent(
        run_dir, index, state,
        f"no progress in {idle} time slots in a row (at step {state.get('step')}, "
        f"{settings.transfers} parallel transfers): the work does not fit in a time slot: "
        "raise slurm.archive.time or lower archive.transfers")


def archive(run_dir: Path, index: int) -> int:
    """Run (or resume) the archive of folder ``index`` of the run; returns the exit code."""
    state = read_task_state(run_dir, index)
    try:
        settings = load_settings(run_dir)
        folder = folder_at(Run(run_dir).folders_path, index)
    except FrosterError as e:
        return _fail_permanent(run_dir, index, state, str(e))
    with task_lock(run_dir, index) as mine:
        if not mine:
            log(f"another run of task {index} is active; backing off")
            return EXIT_TEMPFAIL
        state = read_task_state(run_dir, index)
        if state["state"] == "done" and step_done(run_dir, index, "record"):
            set_status(run_dir, index, "archive done (already archived and verified)")
            log(f"{display(folder)} is already archived and verified; nothing to do")
            return EXIT_OK
        state.update(folder=os.fsdecode(folder), max_attempts=settings.max_attempts,
                     retry_delay=settings.retry_delay)
        if state["state"] == "failed":  # a person resubmitted it: a fresh set of attempts
            state.update(failures=0, verify_failures=0, source_changes=0, idle_slots=0)
        if state["state"] == "running":  # the last run died without a word (node lost, OOM)
            state["failures"] = int(state.get("failures") or 0) + 1
            log("the previous attempt ended without a result (node lost or process killed)")
            if state["failures"] >= settings.max_attempts:
                state["failures"] -= 1  # _fail_transient counts this one
                return _fail_transient(run_dir, index, state, "the previous attempt ended "
                                       "without a result (node lost or process killed)")
        state.update(state="running", attempts=int(state.get("attempts") or 0) + 1,
                     slurm_job=slurm_task_id(), started_at=now_iso(), retry_after=None,
                     stopped_by=None,
                     error=None, error_kind=None, finished_at=None,
                     slot_start_mark=slot_mark(state))
        write_task_state(run_dir, index, state)
        log(f"task {index} attempt {state['attempts']} (failures so far {state['failures']}/"
            f"{settings.max_attempts}) folder {display(folder)}")
        try:
            _install_signal_handlers()
            ArchiveTask(settings, index, folder, state).run()
            _block_signals()
        except Stopped as e:
            _block_signals()
            if str(e) == "SIGUSR1":  # the time limit is near (--signal=B:USR1@grace)
                failed = _stopped_by_time_limit(run_dir, index, state, settings)
                if failed is not None:
                    return failed
            # stopped_by tells status a cancel (the job then leaves the queue) from a requeue
            # (the job comes back and clears it when it starts again).
            state.update(state="retrying", retry_after=time.time(), error_kind=None,
                         stopped_by=str(e),
                         error=f"stopped by {e} during {state.get('step')}; resumes there")
            write_task_state(run_dir, index, state)
            set_status(run_dir, index, f"archive stopped ({e}) at {state.get('step')}; "
                                       "requeued, resumes there")
            log(f"stopped by {e} during step {state.get('step')}")
            return EXIT_TEMPFAIL
        except TransientError as e:
            _block_signals()
            return _fail_transient(run_dir, index, state, str(e))
        except FrosterError as e:
            _block_signals()
            return _fail_permanent(run_dir, index, state, str(e))
        except OSError as e:
            _block_signals()
            if e.errno in _TRANSIENT_ERRNOS:
                return _fail_transient(run_dir, index, state, f"{e.strerror}: {e.filename}")
            traceback.print_exc()
            return _fail_permanent(run_dir, index, state, f"{type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - a bug: keep the traceback, fail this task only
            _block_signals()
            traceback.print_exc()
            return _fail_permanent(run_dir, index, state,
                                   f"internal error {type(e).__name__}: {e}")
        state.update(state="done", step="done", error=None, error_kind=None,
                     retry_after=None, finished_at=now_iso(),
                     bytes_done=state.get("bytes_total") or 0)
        write_task_state(run_dir, index, state)
        dest = display(os.fsencode(state.get("destination") or ""))
        set_status(run_dir, index, f"archive done: {state.get('files')} files verified at {dest}")
        log(f"done: {display(folder)} -> {dest}")
        return EXIT_OK


def interrupted(run_dir: Path, index: int, code: int) -> int:
    """The job script saw the task process end with an unexpected code: count a failure."""
    state = read_task_state(run_dir, index)
    if state["state"] == "done":
        return EXIT_OK
    if state["state"] == "failed":
        return EXIT_PERMANENT
    how = f"killed by signal {code - 128}" if code > 128 else f"exit code {code}"
    return _fail_transient(run_dir, index, state, f"the task process ended unexpectedly "
                                                  f"({how}) during {state.get('step')}")


def retry_delay(run_dir: Path, index: int) -> int:
    """Seconds the job script waits before the requeue (``retry_after``; longer while another
    run of this task holds its lock, so the two do not spin on it)."""
    st = read_task_state(run_dir, index)
    delay = retry_delay_seconds(st)
    with task_lock(run_dir, index) as free:
        if not free:  # another run of this task is active: do not spin on the lock
            delay = max(delay, int(st.get("retry_delay") or 60))
    return delay
