"""Per-task state files: the record of truth that ``status``, ``retry`` and ``finalize`` read.

Each folder of an archive run owns ``RUN_DIR/tasks/<index>/``::

    state.json      what the task is doing (schema below), rewritten atomically (tmp + rename)
    steps.json      the markers of the finished steps: step -> a small JSON summary of what
                    it produced (one file, rewritten atomically; runs made before it kept one
                    file per step in steps/, still read)
    work/           staging: inventory, bundles, hash results, lists for rclone; removed
                    once the folder is done
    logs/           rclone's own logs, one file per step, each bounded to its last
                    ``RCLONE_LOG_KEEP`` bytes; removed once the folder is done unless
                    ``archive.rclone_logs`` is ``all``
    record.json     a copy of the archive record left in the folder (finalize reads it)
    comment         the live status line under the local backend (Slurm keeps it as Comment)
    lock            flock'ed while a run of the task is active

and every write of state.json also rewrites the task's 64-byte slot in ``RUN_DIR/status.slots``
(``taskslots``: what ``status`` totals a large run from without opening every state file).

A folder that is done keeps state.json, steps.json, record.json, comment and lock: five files.
Those of one array task (a batch of folders) share the task's job log, logs/archive-A_a.out.

The job's Comment (``scheduler.injob``) is only a live view: it is short, lost when the job
leaves the queue and not settable after the job ends.  ``state.json`` is what lasts.

``state.json`` is one ``TaskState`` as JSON: its fields below are its keys, and its state and
error kind are the enumerations ``TaskStatus`` and ``ErrorKind``.  A file written by an older
version (fields missing) reads with the defaults; a key this version does not know is kept
as it was (``extra``) and written back; a state that is not a ``TaskStatus`` is a
``DataError`` that names the file, never a task silently taken for pending.  The job side still
hands the state around as the dict ``to_json`` makes (``read_task_state``), and every write
goes through ``TaskState.from_json`` first, so nothing unknown reaches the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import DataError, FrosterError
from ..util.clock import now_iso
from ..util.paths import read_folder_list, write_json_atomic
from .rundir import Run, TaskPaths


class TaskStatus(StrEnum):
    """What an archive task is doing (``state`` in state.json).  The order is the encoding of
    ``taskslots`` (a slot stores the position): a new state goes at the end."""

    PENDING = "pending"    # not started, or reset by ``retry``
    RUNNING = "running"    # a job is working on it (or died without a word: the next start says)
    RETRYING = "retrying"  # stopped or failed transiently; a requeue resumes it
    DONE = "done"          # archived and verified
    FAILED = "failed"      # for good: permanent, or out of attempts


TERMINAL = frozenset({TaskStatus.DONE, TaskStatus.FAILED})


class ErrorKind(StrEnum):
    """Whether the last error is worth another attempt (``error_kind``)."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass
class TaskState:
    """One task's ``state.json``."""

    index: int
    folder: str | None = None  # os.fsdecode text: surrogateescape round-trips any byte
    state: TaskStatus = TaskStatus.PENDING
    step: str | None = None  # the step running or last run (archive/steps.py STEPS)
    steps_done: list[str] = field(default_factory=list)
    attempts: int = 0  # runs started
    # transient failures counted against max_attempts (a stop for the time limit is not one)
    failures: int = 0
    max_attempts: int | None = None
    retry_delay: int | None = None  # seconds before the first retry (doubles per failure)
    error: str | None = None  # one line
    error_kind: ErrorKind | None = None
    bytes_total: int = 0
    bytes_done: int = 0
    files: int = 0
    objects: int = 0
    destination: str | None = None  # the remote folder of this archive version
    version: int | None = None  # which archive version of the folder this task writes
    updated_at: str | None = None  # util.clock stamps (ISO 8601 UTC)
    started_at: str | None = None
    finished_at: str | None = None
    slurm_job: str | None = None  # "ARRAYID_TASKID"
    retry_after: float | None = None  # epoch seconds
    stopped_by: str | None = None  # the signal of the last clean stop (SIGTERM: a cancel)
    verify_failures: int = 0
    source_changes: int = 0
    idle_slots: int = 0  # time-limit slots in a row without progress
    slot_start_mark: list[int] | None = None  # progress counters when this slot started
    hashes_stored: int = 0
    objects_on_remote: int = 0
    record_path: str | None = None  # the record left in the folder (surrogateescape text)
    warning: str | None = None  # done, with something a person should know
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "task state") -> TaskState:
        """The record of a state.json (its dict); ``DataError`` naming ``where`` if a value
        cannot be this record's (an unknown state or error kind, a count that is no number)."""
        if not isinstance(data, Mapping):
            raise DataError(f"{where}: not a JSON object")
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        if "index" not in data:
            raise DataError(f"{where}: no index")
        values: dict[str, Any] = {}
        extra = {k: v for k, v in data.items() if k not in known}
        try:
            for name, v in data.items():
                if name not in known:
                    continue
                if name == "state":
                    values[name] = TaskStatus(v) if v is not None else TaskStatus.PENDING
                elif name == "error_kind":
                    values[name] = ErrorKind(v) if v else None
                elif name in _COUNTS:
                    values[name] = int(v or 0)
                elif name in ("max_attempts", "retry_delay", "version"):
                    values[name] = None if v is None else int(v)
                elif name == "retry_after":
                    values[name] = None if v in (None, "") else float(v)
                elif name == "steps_done":
                    values[name] = [str(x) for x in (v or [])]
                elif name == "slot_start_mark":
                    values[name] = None if v is None else [int(x) for x in v]
                else:
                    values[name] = v
        except ValueError as e:
            raise DataError(f"{where}: {e} (states: {', '.join(TaskStatus)}; error kinds: "
                            f"{', '.join(ErrorKind)})") from e
        except TypeError as e:
            raise DataError(f"{where}: a value of the wrong type ({e})") from e
        return cls(**values, extra=extra)

    def to_json(self) -> dict[str, Any]:
        """The dict written as state.json: every field (enumerations as their text), then the
        keys this version did not know, as they were read."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extra"}
        out["state"] = str(self.state)
        out["error_kind"] = str(self.error_kind) if self.error_kind else None
        out["steps_done"] = list(self.steps_done)
        return {**self.extra, **out}


_COUNTS = frozenset({"index", "attempts", "failures", "bytes_total", "bytes_done", "files",
                     "objects", "verify_failures", "source_changes", "idle_slots",
                     "hashes_stored", "objects_on_remote"})


def task_paths(run_dir: str | os.PathLike, index: int) -> TaskPaths:
    return Run(Path(run_dir)).task(index)


def task_dir(run_dir: str | os.PathLike, index: int) -> Path:
    return task_paths(run_dir, index).dir


def state_path(run_dir: str | os.PathLike, index: int) -> Path:
    return task_paths(run_dir, index).state_path


def new_state(index: int, folder: bytes | str | None) -> dict[str, Any]:
    """The state (as its dict) of a task that has not started yet."""
    return TaskState(int(index), os.fsdecode(folder) if folder is not None else None).to_json()


def _folder_of(run_dir: Path, index: int) -> bytes | None:
    try:
        folders = read_folder_list(Run(run_dir).folders_path)
    except FrosterError:
        return None
    return folders[index] if 0 <= index < len(folders) else None


def load_task(run_dir: str | os.PathLike, index: int,
              folder: bytes | None = None) -> TaskState:
    """The task's state; a task that never started reads as pending (of ``folder``, else of
    its folder-list entry).

    A state file that is not valid JSON, or holds a state that is not a ``TaskStatus``, is a
    ``DataError`` (it is only ever replaced whole, so this means someone edited it), never
    silently treated as pending.
    """
    run_dir = Path(run_dir)
    path = state_path(run_dir, index)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if folder is None:
            folder = _folder_of(run_dir, index)
        return TaskState(int(index), os.fsdecode(folder) if folder is not None else None)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if isinstance(data, dict):
        data.setdefault("index", int(index))
    return TaskState.from_json(data, str(path))


def read_task_state(run_dir: str | os.PathLike, index: int) -> dict[str, Any]:
    """``load_task`` as the dict the job side updates (``TaskState.to_json``)."""
    return load_task(run_dir, index).to_json()


def iter_tasks(run_dir: str | os.PathLike) -> Iterator[TaskState]:
    """Every task of the run in index order, one per folder-list entry (pending if unstarted),
    read one at a time.

    Task directories beyond the folder list (none in a well-formed run) are included too.
    """
    run_dir = Path(run_dir)
    try:
        folders = read_folder_list(Run(run_dir).folders_path)
    except FrosterError:
        folders = []
    indices = set(range(len(folders)))
    indices.update(Run(run_dir).task_indices())
    for i in sorted(indices):
        yield load_task(run_dir, i, folders[i] if i < len(folders) else None)


def iter_task_states(run_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """``iter_tasks`` as dicts."""
    for task in iter_tasks(run_dir):
        yield task.to_json()


def write_task_state(run_dir: str | os.PathLike, index: int,
                     state: dict[str, Any] | TaskState) -> None:
    """Atomically replace state.json (``util.atomic``: a reader never sees half a file).

    A dict is checked as a ``TaskState`` first: an unknown state is refused before it is
    written.  ``updated_at`` is set on the dict (or record) passed in.
    """
    path = state_path(run_dir, index)
    task = state if isinstance(state, TaskState) else TaskState.from_json(
        {"index": int(index), **state}, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    task.updated_at = now_iso()
    if isinstance(state, dict):
        state["updated_at"] = task.updated_at
    data = task.to_json()
    write_json_atomic(path, data)
    from .taskslots import write as write_slot

    write_slot(run_dir, index, data, int(time.time()))  # status's index (taskslots)


def update_task_state(run_dir: str | os.PathLike, index: int, **changes: Any) -> dict[str, Any]:
    """Read, change some keys, write back; returns the new state."""
    state = read_task_state(run_dir, index)
    state.update(changes)
    write_task_state(run_dir, index, state)
    return state


def reset_attempts(run_dir: str | os.PathLike, index: int) -> None:
    """A person resubmits the task (``retry``): its failure counters start over.

    Step markers are kept, so the task resumes where it stopped and never re-uploads verified
    data.  A task that is done is left alone.
    """
    if not state_path(run_dir, index).exists():
        return
    task = load_task(run_dir, index)
    if task.state == TaskStatus.DONE:
        return
    task = dataclasses.replace(task, failures=0, verify_failures=0, source_changes=0,
                               idle_slots=0, retry_after=None, state=TaskStatus.PENDING,
                               error=None, error_kind=None)
    write_task_state(run_dir, index, task)


# --- step markers ---------------------------------------------------------------------------


def markers_path(run_dir: str | os.PathLike, index: int) -> Path:
    return task_paths(run_dir, index).markers_path


def read_markers(run_dir: str | os.PathLike, index: int) -> dict[str, dict[str, Any]]:
    """Every finished step's marker: step -> its summary (with ``done_at``).

    A run made before steps.json kept one file per step in ``steps/``: those are read too.
    """
    paths = task_paths(run_dir, index)
    try:
        data = json.loads(paths.markers_path.read_bytes())
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    if paths.steps_dir.is_dir():
        for p in paths.steps_dir.iterdir():
            if not p.name.startswith(".") and p.name not in data:
                try:
                    data[p.name] = json.loads(p.read_bytes())
                except (OSError, json.JSONDecodeError):
                    data[p.name] = {}
    return data


def step_done(run_dir: str | os.PathLike, index: int, step: str) -> bool:
    return step in read_markers(run_dir, index)


def read_marker(run_dir: str | os.PathLike, index: int, step: str) -> dict[str, Any]:
    return read_markers(run_dir, index).get(step) or {}


def _write_markers(run_dir: str | os.PathLike, index: int,
                   markers: dict[str, dict[str, Any]]) -> None:
    paths = task_paths(run_dir, index)
    paths.dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths.markers_path, markers)
    if paths.steps_dir.is_dir():  # an old run's markers: folded into steps.json now
        for p in paths.steps_dir.iterdir():
            p.unlink(missing_ok=True)
        paths.steps_dir.rmdir()


def mark_step_done(run_dir: str | os.PathLike, index: int, step: str,
                   summary: dict[str, Any] | None = None) -> None:
    """Leave the marker of a finished step (written atomically, after the step's outputs).

    All of a folder's markers are one file, ``steps.json`` (tmp + fsync + rename): a folder
    costs the run directory a few files, not one per step.  Only the folder's own task writes
    it, under the folder's task lock.
    """
    markers = read_markers(run_dir, index)
    markers[step] = {"done_at": now_iso(), **(summary or {})}
    _write_markers(run_dir, index, markers)


def clear_steps(run_dir: str | os.PathLike, index: int, steps: list[str] | tuple[str, ...]
                ) -> None:
    """Remove markers so those steps run again (e.g. the source changed under us)."""
    markers = read_markers(run_dir, index)
    if any(s in markers for s in steps) or task_paths(run_dir, index).steps_dir.is_dir():
        _write_markers(run_dir, index, {k: v for k, v in markers.items() if k not in steps})

