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

state.json keys: ``index``, ``folder`` (``os.fsdecode`` text: surrogateescape round-trips any
byte), ``state`` (pending|running|retrying|done|failed), ``step``, ``steps_done``, ``attempts``
(runs started), ``failures`` (transient failures counted against ``max_attempts``; a stop for
the time limit is not one), ``max_attempts``, ``error`` (one line or null), ``error_kind``
(transient|permanent|null), ``bytes_total``, ``bytes_done``, ``files``, ``objects``,
``destination``, ``updated_at`` (ISO 8601 UTC), ``slurm_job`` ("ARRAYID_TASKID" or null),
``retry_after`` (epoch seconds or null), plus ``verify_failures``, ``source_changes``,
``started_at``, ``finished_at``, ``record_path``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError, FrosterError
from ..util.clock import now_iso
from ..util.paths import read_folder_list, write_json_atomic
from .rundir import Run, TaskPaths


def task_paths(run_dir: str | os.PathLike, index: int) -> TaskPaths:
    return Run(Path(run_dir)).task(index)


def task_dir(run_dir: str | os.PathLike, index: int) -> Path:
    return task_paths(run_dir, index).dir


def state_path(run_dir: str | os.PathLike, index: int) -> Path:
    return task_paths(run_dir, index).state_path


def new_state(index: int, folder: bytes | str | None) -> dict[str, Any]:
    """The state of a task that has not started yet."""
    return {
        "index": int(index),
        "folder": os.fsdecode(folder) if folder is not None else None,
        "state": "pending", "step": None, "steps_done": [],
        "attempts": 0, "failures": 0, "max_attempts": None,
        "error": None, "error_kind": None,
        "bytes_total": 0, "bytes_done": 0, "files": 0, "objects": 0,
        "destination": None, "updated_at": None, "slurm_job": None, "retry_after": None,
        "verify_failures": 0, "source_changes": 0,
        "started_at": None, "finished_at": None, "record_path": None,
    }


def _folder_of(run_dir: Path, index: int) -> bytes | None:
    try:
        folders = read_folder_list(Run(run_dir).folders_path)
    except FrosterError:
        return None
    return folders[index] if 0 <= index < len(folders) else None


def read_task_state(run_dir: str | os.PathLike, index: int) -> dict[str, Any]:
    """The task's state; a task that never started reads as ``pending``.

    A state file that is not valid JSON is a ``DataError`` (it is only ever replaced whole, so
    this means someone edited it), never silently treated as pending.
    """
    run_dir = Path(run_dir)
    path = state_path(run_dir, index)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return new_state(index, _folder_of(run_dir, index))
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    state = new_state(index, None)
    state.update(data)
    return state


def iter_task_states(run_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every task of the run in index order, one per folder-list entry (pending if unstarted).

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
        if state_path(run_dir, i).exists():
            yield read_task_state(run_dir, i)
        else:
            yield new_state(i, folders[i] if i < len(folders) else None)


def write_task_state(run_dir: str | os.PathLike, index: int, state: dict[str, Any]) -> None:
    """Atomically replace state.json (tmp + fsync + rename: a reader never sees half a file)."""
    path = state_path(run_dir, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    state["updated_at"] = now_iso()
    write_json_atomic(path, state)
    from .taskslots import write as write_slot

    write_slot(run_dir, index, state, int(time.time()))  # status's index (taskslots)


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
    state = read_task_state(run_dir, index)
    if state["state"] == "done":
        return
    state.update(failures=0, verify_failures=0, source_changes=0, idle_slots=0, retry_after=None,
                 state="pending", error=None, error_kind=None)
    write_task_state(run_dir, index, state)


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

