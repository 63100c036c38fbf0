"""One archive array task: ``python -m froster_slurm.jobs archive RUN_DIR INDEX`` (job side).

The job script runs it; the folder is entry INDEX of ``RUN_DIR/folders.nul`` and never appears
in any script's text.  Exit codes:

* ``EXIT_OK`` done (or already done: a rerun of a finished task changes nothing)
* ``EXIT_TEMPFAIL`` a transient failure, or a stop requested by a signal: worth a requeue
  after the delay in the task's ``requeue-after`` file (the runtime's back-off; 0 after a
  stop); state.json ``retry_after`` says the same for status
* ``EXIT_PERMANENT`` failed for good: a permanent failure (unreadable file, folder gone, a
  hash mismatch that repeats, a bad setting) or ``max_attempts`` transient failures; the
  reason is in state.json ``error`` and in the Comment

Helpers for the job script (same entry: ``python -m froster_slurm.jobs HELPER ...``):

* ``retry-delay RUN_DIR INDEX`` prints the seconds to wait before the next attempt;
* ``interrupted RUN_DIR INDEX CODE`` records that the task process died with exit CODE (killed,
  out of memory...) as a transient failure and ends like ``archive`` would;
* ``status RUN_DIR INDEX TEXT`` sets the task's live status line.

Signals, attempts and back-off are the job runtime's (``jobs.runtime``): SIGTERM, SIGUSR1 and
SIGINT stop the task cleanly (rclone is stopped, the state says where it was) with
``EXIT_TEMPFAIL``.  A stop is not counted as a failure.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..archive.names import redact
from ..archive.settings import ArchiveSettings, load_settings, rclone_of
from ..archive.shared import CallPool, Deferred, SharedRclone
from ..archive.steps import STEPS, ArchiveTask, folder_lock, log
from ..errors import (
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TEMPFAIL,
    FrosterError,
    TransientError,
)
from ..remotes.resolve import resolve_with
from ..run.batches import batch_folders
from ..run.rundir import Run
from ..run.taskstate import (
    read_task_state,
    step_done,
    task_paths,
    write_task_state,
)
from ..scheduler.injob import job_ref, set_status
from ..util.clock import now_iso
from ..util.paths import discard_tree, display, folder_at, read_folder_list
from . import runtime
from .runtime import RetryPolicy, Stopped

# Folders of a batch open at once when they pool their rclone calls: each holds its
# inventory in memory and its locks until it is done, so a batch of many folders goes in
# waves (a wave's pooled calls still replace 6 x WAVE rclone runs by about six).
WAVE = 64

_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.ESTALE, errno.EIO, errno.ETIMEDOUT,
                     errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE}


def _status(run_dir: Path, index: int, text: str, *, comment: bool = True) -> None:
    """The task's live status line: its Comment (unless ``comment=False``: a batch's folder
    that finished well leaves the Comment to the batch), and its ``comment`` file."""
    set_status(text, task_paths(run_dir, index).status_path, comment=comment)


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


def _fail_transient(run_dir: Path, index: int, state: dict[str, Any], message: str) -> int:
    """Count a transient failure; requeue with the runtime's back-off, or give up after
    max_attempts (the policy was copied into the state when the attempt started)."""
    retry = _policy(state, run_dir).failed(int(state.get("failures") or 0))
    failures, max_attempts, delay = retry.failures, retry.max_attempts, retry.delay
    state.update(failures=failures, error=one_line(message), error_kind="transient")
    if retry.final:
        state.update(state="failed", retry_after=None, finished_at=now_iso(),
                     error=one_line(f"gave up after {failures} failed attempts: {message}"))
        write_task_state(run_dir, index, state)
        _status(run_dir, index, f"archive FAILED after {failures} attempts: "
                                f"{one_line(message, 300)}")
        log(f"FAILED for good after {failures} attempts: {message}")
        return EXIT_PERMANENT
    state.update(state="retrying", retry_after=time.time() + delay)
    write_task_state(run_dir, index, state)
    _status(run_dir, index, f"archive retry {failures + 1}/{max_attempts} in {delay}s "
                            f"(at {state.get('step')}): {one_line(message, 300)}")
    log(f"transient failure {failures}/{max_attempts}, retry in {delay}s: {message}")
    return runtime.requeue(task_paths(run_dir, index).requeue_after, delay)


def _policy(state: dict[str, Any], run_dir: Path) -> RetryPolicy:
    """The back-off of the run's settings, as the task's state recorded it.

    A task killed before its first attempt wrote the policy into its state (kill -9 during
    start-up, a node lost) takes it from the run's settings: without them one kill would count
    as the last of a single attempt and fail the folder for good."""
    if state.get("max_attempts") is None:
        try:
            s = load_settings(run_dir)
        except FrosterError:
            pass
        else:
            state.update(max_attempts=s.max_attempts, retry_delay=s.retry_delay,
                         max_retry_delay=s.max_retry_delay)
    cap = state.get("max_retry_delay")
    return RetryPolicy(max_attempts=max(1, int(state.get("max_attempts") or 1)),
                       retry_delay=int(state.get("retry_delay") or 60),
                       max_retry_delay=runtime.DEFAULT_MAX_RETRY_DELAY if cap is None
                       else int(cap))


def _fail_permanent(run_dir: Path, index: int, state: dict[str, Any], message: str) -> int:
    state.update(state="failed", error=one_line(message), error_kind="permanent",
                 retry_after=None, finished_at=now_iso())
    write_task_state(run_dir, index, state)
    _status(run_dir, index, f"archive FAILED: {one_line(message, 300)}")
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


def archive(run_dir: Path, index: int, *, whole_slot: bool = True) -> int:
    """Run (or resume) the archive of folder ``index`` of the run; returns the exit code.

    ``whole_slot``: the folder had this job's time slot from its start (the first folder a
    batch works on); only then does a stop for the time limit count as a slot without
    progress for it.
    """
    state = read_task_state(run_dir, index)
    try:
        settings = load_settings(run_dir)
        folder = folder_at(Run(run_dir).folders_path, index)
    except FrosterError as e:
        return _fail_permanent(run_dir, index, state, str(e))
    with task_lock(run_dir, index) as mine:
        if not mine:
            log(f"another run of task {index} is active; backing off")
            return runtime.requeue(task_paths(run_dir, index).requeue_after, settings.retry_delay)
        opened = _begin(run_dir, index, folder, settings)
        if isinstance(opened, int):
            return opened
        state = opened
        try:
            with runtime.stop_signals():  # signals blocked once left: the outcome is known
                ArchiveTask(settings, index, folder, state).run()
        except BaseException as e:  # noqa: BLE001 - _outcome sorts them (and re-raises others)
            return _outcome(run_dir, index, state, settings, e, whole_slot=whole_slot)
        return _done(run_dir, index, state, settings)


def _begin(run_dir: Path, index: int, folder: bytes, settings: Any) -> dict[str, Any] | int:
    """Start an attempt at folder ``index`` (its task lock held): the state it runs with, or
    the exit code when there is nothing to run (already archived)."""
    state = read_task_state(run_dir, index)
    if state["state"] == "done" and step_done(run_dir, index, "record"):
        _status(run_dir, index, "archive done (already archived and verified)")
        log(f"{display(folder)} is already archived and verified; nothing to do")
        return EXIT_OK
    state.update(folder=os.fsdecode(folder), max_attempts=settings.max_attempts,
                 retry_delay=settings.retry_delay, max_retry_delay=settings.max_retry_delay)
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
                 slurm_job=job_ref(), started_at=now_iso(), retry_after=None,
                 stopped_by=None,
                 error=None, error_kind=None, finished_at=None,
                 slot_start_mark=slot_mark(state))
    write_task_state(run_dir, index, state)
    log(f"task {index} attempt {state['attempts']} (failures so far {state['failures']}/"
        f"{settings.max_attempts}) folder {display(folder)}")
    return state


def _outcome(run_dir: Path, index: int, state: dict[str, Any], settings: Any,
             e: BaseException, *, whole_slot: bool) -> int:
    """The exit code of an attempt that ended with ``e``, written into the folder's state."""
    if isinstance(e, Stopped):
        if e.by_time_limit and whole_slot:  # USR1: the time limit is near (B:USR1@grace)
            failed = _stopped_by_time_limit(run_dir, index, state, settings)
            if failed is not None:
                return failed
        # stopped_by tells status a cancel (the job then leaves the queue) from a requeue
        # (the job comes back and clears it when it starts again).
        state.update(state="retrying", retry_after=time.time(), error_kind=None,
                     stopped_by=str(e),
                     error=f"stopped by {e} during {state.get('step')}; resumes there")
        write_task_state(run_dir, index, state)
        _status(run_dir, index, f"archive stopped ({e}) at {state.get('step')}; "
                                "requeued, resumes there")
        log(f"stopped by {e} during step {state.get('step')}")
        return runtime.requeue(task_paths(run_dir, index).requeue_after, 0)
    if isinstance(e, TransientError):
        return _fail_transient(run_dir, index, state, str(e))
    if isinstance(e, FrosterError):
        return _fail_permanent(run_dir, index, state, str(e))
    if isinstance(e, OSError):
        if e.errno in _TRANSIENT_ERRNOS:
            return _fail_transient(run_dir, index, state, f"{e.strerror}: {e.filename}")
        traceback.print_exception(e)
        return _fail_permanent(run_dir, index, state, f"{type(e).__name__}: {e}")
    if isinstance(e, Exception):  # a bug: keep the traceback, fail this task only
        traceback.print_exception(e)
        return _fail_permanent(run_dir, index, state, f"internal error {type(e).__name__}: {e}")
    raise e


def _done(run_dir: Path, index: int, state: dict[str, Any], settings: Any, *,
          comment: bool = True) -> int:
    """The folder is archived and verified: say so, and tidy its task directory."""
    state.update(state="done", step="done", error=None, error_kind=None,
                 retry_after=None, finished_at=now_iso(),
                 bytes_done=state.get("bytes_total") or 0)
    write_task_state(run_dir, index, state)
    _tidy(run_dir, index, keep_logs=settings.rclone_logs == "all")
    dest = display(os.fsencode(state.get("destination") or ""))
    _status(run_dir, index, f"archive done: {state.get('files')} files verified at {dest}",
            comment=comment)
    log(f"done: {display(os.fsencode(state.get('folder') or ''))} -> {dest}")
    return EXIT_OK


def _tidy(run_dir: Path, index: int, *, keep_logs: bool) -> None:
    """A done folder keeps its state, markers, record and status line; its staging (work/)
    and, unless asked to keep them, its rclone logs go: a run of 200,000 folders must not
    leave millions of files on the file system it is relieving."""
    paths = Run(run_dir).task(index)
    discard_tree(paths.work)
    if not keep_logs:
        discard_tree(paths.logs)


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
    """Seconds the job script waits before the requeue (the task's ``requeue-after``; longer
    while another run of this task holds its lock, so the two do not spin on it)."""
    delay = runtime.retry_delay(task_paths(run_dir, index).requeue_after)
    with task_lock(run_dir, index) as free:
        if not free:  # another run of this task is active: do not spin on the lock
            delay = max(delay, int(read_task_state(run_dir, index).get("retry_delay") or 60))
    return delay


# --- a batch: the folders one array task archives (run.batches) ------------------------------


def _settled(run_dir: Path, index: int) -> str | None:
    """'done' or 'failed' when folder ``index`` needs nothing from this batch, else None.

    A failed folder stays failed inside its batch (a requeue of the batch for another folder
    must not start it over); ``retry`` resets it to pending, and then it runs again.
    """
    st = read_task_state(run_dir, index)
    if st["state"] == "done" and step_done(run_dir, index, "record"):
        return "done"
    return "failed" if st["state"] == "failed" else None


def _batch_code(codes: list[int]) -> int:
    """One exit code for a batch: any folder to retry -> EXIT_TEMPFAIL (the batch requeues and
    skips the finished ones), else any failed -> EXIT_PERMANENT, else EXIT_OK."""
    if EXIT_TEMPFAIL in codes:
        return EXIT_TEMPFAIL
    return EXIT_PERMANENT if EXIT_PERMANENT in codes else EXIT_OK


def archive_batch(run_dir: Path, number: int) -> int:
    """Archive (or resume) every folder of batch ``number``, one after another.

    Finished folders are skipped (a requeued batch resumes at the first unfinished one); a
    folder whose back-off has not yet passed waits for the batch's next run; a stop signal
    ends the batch at once (``EXIT_TEMPFAIL``).  Each folder keeps its own lock, state and
    attempts, so one that fails fails alone.  An ``EXIT_TEMPFAIL`` leaves the batch's own
    requeue time (``_batch_requeue``).
    """
    return _batch_requeue(run_dir, number, _archive_batch(run_dir, number))


def _batch_requeue(run_dir: Path, number: int, code: int) -> int:
    """The batch ends with ``code``; for ``EXIT_TEMPFAIL`` it writes when it may run again:
    the soonest back-off among its unfinished folders (``Run.batch_requeue_after``, what the
    local backend waits for; under Slurm the job script asks ``retry-delay``)."""
    if code != EXIT_TEMPFAIL:
        return code
    return runtime.requeue(Run(run_dir).batch_requeue_after(number),
                           retry_delay_batch(run_dir, number))


def _archive_batch(run_dir: Path, number: int) -> int:
    folders = batch_folders(run_dir, number)
    if len(folders) == 1:
        return archive(run_dir, folders[0])
    log(f"batch {number}: {len(folders)} folders")
    codes: dict[int, int] = {}
    todo: list[int] = []
    for index in folders:
        settled = _settled(run_dir, index)
        if settled is not None:
            codes[index] = EXIT_OK if settled == "done" else EXIT_PERMANENT
        elif runtime.retry_delay(task_paths(run_dir, index).requeue_after) > 0:
            codes[index] = EXIT_TEMPFAIL  # its back-off: the batch's requeue waits for it
        else:
            todo.append(index)
    stop = runtime.stopped()
    if stop:
        log(f"batch {number}: stopped by {stop} before it started")
        return EXIT_TEMPFAIL
    settings = _pooling(run_dir) if len(todo) > 1 else None
    if settings is not None:
        names = read_folder_list(Run(run_dir).folders_path)  # once for all the waves
        for start in range(0, len(todo), WAVE):
            if runtime.stopped():
                return EXIT_TEMPFAIL
            codes.update(_archive_together(run_dir, number, todo[start:start + WAVE],
                                           Progress(len(folders), codes), settings, names))
        _tidy_batch(run_dir, number, codes, settings)
    else:
        first = True
        for index in todo:
            stop = runtime.stopped()
            if stop:
                log(f"batch {number}: stopped by {stop} before folder {index}")
                return EXIT_TEMPFAIL
            codes[index] = archive(run_dir, index, whole_slot=first)
            first = False
    if runtime.stopped():
        return EXIT_TEMPFAIL
    got = list(codes.values())
    summary = (f"{got.count(EXIT_OK)} of {len(folders)} folders done, "
               f"{got.count(EXIT_PERMANENT)} failed, {got.count(EXIT_TEMPFAIL)} to retry")
    log(f"batch {number}: {summary}")
    set_status(f"archive batch {number}: {summary}")
    return _batch_code(got)


def _pooling(run_dir: Path) -> ArchiveSettings | None:
    """The run's settings if the batch's folders may pool their rclone calls
    (``archive.shared``), else None: not for an encrypted remote, whose proof (``cryptcheck``,
    ``settier``) runs beside the listings, and not when ``archive.share_rclone`` is off."""
    try:
        settings = load_settings(run_dir)
        if not settings.share_rclone:
            return None
        if resolve_with(rclone_of(settings, None), settings.remote).encrypted:
            return None
        return settings
    except FrosterError:
        return None  # each folder alone reports what is wrong


def _tidy_batch(run_dir: Path, number: int, codes: dict[int, int],
                settings: ArchiveSettings) -> None:
    """The batch's pooled calls' scratch and logs (``Run.batch_work``) go when no folder of it
    failed, unless ``archive.rclone_logs = all``: like a folder's own rclone logs, they stay
    while they explain a failure."""
    if EXIT_PERMANENT in codes.values() or settings.rclone_logs == "all":
        return
    discard_tree(Run(run_dir).batch_work(number))


@dataclass(frozen=True)
class Progress:
    """The whole batch, for its job's Comment: how many folders, and the outcomes so far."""

    total: int
    codes: dict[int, int]

    def done(self, more: dict[int, int]) -> int:
        return sum(1 for c in (*self.codes.values(), *more.values()) if c == EXIT_OK)


def _archive_together(run_dir: Path, number: int, todo: list[int], progress: Progress,
                      settings: ArchiveSettings, folders: list[bytes]) -> dict[int, int]:
    """Archive the folders ``todo`` of batch ``number`` side by side, their rclone calls
    pooled (``archive.shared``): each folder's steps run in rounds, and between two rounds
    one rclone call per kind serves every folder that asked.

    Each folder keeps everything of its own: task lock, folder lock (all held until the batch
    is done with it), state, attempts, markers, record, and its outcome (``_outcome``): one
    that fails fails alone.  A stop signal stops them all where they are.
    """
    run = Run(run_dir)
    work = run.batch_work(number)
    pool = CallPool(rclone_of(settings, work / "logs"), work)
    codes: dict[int, int] = {}
    tasks: dict[int, ArchiveTask] = {}
    try:
        with ExitStack() as held:
            for index in todo:
                if not held.enter_context(task_lock(run_dir, index)):
                    log(f"another run of task {index} is active; backing off")
                    codes[index] = runtime.requeue(task_paths(run_dir, index).requeue_after,
                                                   settings.retry_delay)
                    continue
                folder = folders[index]
                opened = _begin(run_dir, index, folder, settings)
                if isinstance(opened, int):
                    codes[index] = opened
                    continue
                shared = rclone_of(settings, run.task(index).logs,
                                   functools.partial(SharedRclone, pool, run_dir))
                task = ArchiveTask(settings, index, folder, opened, rclone=shared,
                                   comment=False)
                try:
                    held.enter_context(folder_lock(task.folder))
                except TransientError as e:
                    codes[index] = _fail_transient(run_dir, index, opened, str(e))
                    continue
                tasks[index] = task
            _rounds(run_dir, number, progress, tasks, pool, settings, codes)
    finally:
        log(f"batch {number}: {pool.asked} rclone calls of its folders made as "
            f"{pool.calls} rclone runs")
    return codes


def _rounds(run_dir: Path, number: int, progress: Progress, tasks: dict[int, ArchiveTask],
            pool: CallPool, settings: Any, codes: dict[int, int]) -> None:
    """Run the open folders' steps round after round until each has an outcome."""
    rounds = 0
    while tasks:
        rounds += 1
        stop: Stopped | None = None
        for index, task in list(tasks.items()):
            try:
                with runtime.stop_signals():
                    task.run_locked()
            except Deferred:
                continue
            except Stopped as e:
                stop = e
                break
            except BaseException as e:  # noqa: BLE001 - _outcome sorts them
                codes[index] = _outcome(run_dir, index, task.state, settings, e,
                                        whole_slot=True)
            else:
                codes[index] = _done(run_dir, index, task.state, settings, comment=False)
            del tasks[index]
        if stop is None and pool.pending:
            steps = sorted({str(t.state.get("step")) for t in tasks.values()},
                           key=lambda x: STEPS.index(x) if x in STEPS else 0)
            set_status(f"archive batch {number}: {progress.done(codes)}/{progress.total} "
                       f"folders done; {len(tasks)} at {'/'.join(steps)}, their "
                       f"{len(pool.pending)} rclone calls pooled (round {rounds})")
            try:
                with runtime.stop_signals():
                    pool.flush()
            except Stopped as e:
                stop = e
        if stop is not None:
            for index, task in tasks.items():
                codes[index] = _outcome(run_dir, index, task.state, settings, stop,
                                        whole_slot=True)
            tasks.clear()
            return


def interrupted_batch(run_dir: Path, number: int, code: int) -> int:
    """The batch's process ended with ``code``: count it for the folder it was working on."""
    folders = batch_folders(run_dir, number)
    if len(folders) == 1:
        return _batch_requeue(run_dir, number, interrupted(run_dir, folders[0], code))
    codes = []
    for index in folders:
        if read_task_state(run_dir, index)["state"] == "running":
            codes.append(interrupted(run_dir, index, code))
        else:
            settled = _settled(run_dir, index)
            codes.append({"done": EXIT_OK, "failed": EXIT_PERMANENT}.get(settled or "",
                                                                         EXIT_TEMPFAIL))
    return _batch_requeue(run_dir, number, _batch_code(codes))


def retry_delay_batch(run_dir: Path, number: int) -> int:
    """Seconds before the batch's requeue: the soonest back-off among its unfinished folders."""
    delays = [retry_delay(run_dir, i) for i in batch_folders(run_dir, number)
              if _settled(run_dir, i) is None]
    return min(delays, default=0)
