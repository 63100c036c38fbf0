"""The run's status index: one fixed-size slot per task in ``RUN_DIR/status.slots``.

``status`` of a 200,000-folder run must not open 200,000 state files (11.6 s and 0.6 GB on a
local disk before issue 16, far longer on a parallel file system).  Every time a task's state
is written (``taskstate.write_task_state``) its slot is rewritten too: the figures ``status``
totals (state, step, attempts, bytes, files, whether it has an error, was stopped by SIGTERM,
failed for good).  Reading the index is one sequential read of 64 bytes per folder; only the
folders a person needs to see (failing, running, stopped) have their state files opened.

Why slots and not a log the tasks append to: a slot is written in place (``pwrite`` at
``index * SLOT``), so tasks never contend on one byte range, the file never grows past 64
bytes per folder and needs no compaction; an append log grows with every progress update.

The state file stays the truth (``retry``, ``finalize`` and ``status --all``/``--json`` read
it); a slot only summarises it.  A slot whose checksum does not match (a torn write: the task
died mid-``pwrite``) is read from the state file instead.  The file is made by ``create_run``
for runs with archive tasks; a run made before it has none and ``status`` reads every state
file, as it did.  An all-zero slot is a task that never wrote its state: pending.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEADER = b"froster-slurm status slots v1\n".ljust(64, b"\0")
# magic, state, flags, attempts, failures, max_attempts, step, bytes_total, bytes_done, files,
# updated (epoch s), pad, crc32 of everything before it
_FMT = struct.Struct("<2sBBHHH14sQQQI8sI")
SLOT = _FMT.size
MAGIC = b"S1"
STATES = ("pending", "running", "retrying", "done", "failed")
STOPPED_BY_SIGTERM, HAS_ERROR, PERMANENT, HAS_WARNING = 1, 2, 4, 8

assert SLOT == 64


@dataclass(frozen=True, slots=True)
class Slot:
    """What the index knows of one task (see the module docstring)."""

    index: int
    state: str
    flags: int
    attempts: int
    failures: int
    max_attempts: int
    step: str | None
    bytes_total: int
    bytes_done: int
    files: int
    updated: int

    @property
    def stopped_by_sigterm(self) -> bool:
        return bool(self.flags & STOPPED_BY_SIGTERM)


def slots_path(run_dir: str | os.PathLike) -> Path:
    from .rundir import Run

    return Run(Path(run_dir)).status_slots_path


def create(run_dir: str | os.PathLike) -> None:
    """Start the index of a new run (before any task can write its state)."""
    path = slots_path(run_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, HEADER)
    finally:
        os.close(fd)


def pack(state: dict[str, Any], updated: int) -> bytes:
    """The slot of a task state (``taskstate`` keys)."""
    error = str(state.get("error") or "")
    flags = 0
    if state.get("stopped_by") == "SIGTERM" or error.startswith("stopped by SIGTERM"):
        flags |= STOPPED_BY_SIGTERM
    if error:
        flags |= HAS_ERROR
    if state.get("error_kind") == "permanent":
        flags |= PERMANENT
    if state.get("warning"):
        flags |= HAS_WARNING
    code = STATES.index(state["state"]) if state.get("state") in STATES else 1
    step = str(state.get("step") or "").encode("ascii", "replace")[:14]
    body = _FMT.pack(MAGIC, code, flags, _u16(state.get("attempts")),
                     _u16(state.get("failures")), _u16(state.get("max_attempts")), step,
                     _u64(state.get("bytes_total")), _u64(state.get("bytes_done")),
                     _u64(state.get("files")), updated & 0xFFFFFFFF, b"", 0)
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))


def _u16(v: Any) -> int:
    return max(0, min(0xFFFF, int(v or 0)))


def _u64(v: Any) -> int:
    return max(0, min(2**64 - 1, int(v or 0)))


def write(run_dir: str | os.PathLike, index: int, state: dict[str, Any], updated: int) -> None:
    """Rewrite task ``index``'s slot; nothing when the run has no index (an older run).

    Never fails the task: the index is a summary, the state file (already written) the truth.
    """
    try:
        fd = os.open(slots_path(run_dir), os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.pwrite(fd, pack(state, updated), len(HEADER) + int(index) * SLOT)
    except OSError:
        pass
    finally:
        os.close(fd)


def exists(run_dir: str | os.PathLike) -> bool:
    try:
        with open(slots_path(run_dir), "rb") as f:
            return f.read(len(HEADER)) == HEADER
    except OSError:
        return False


def read(run_dir: str | os.PathLike, count: int, chunk: int = 4096
         ) -> Iterator[Slot | None]:
    """The slots of tasks ``0..count-1`` in order, ``chunk`` at a time (bounded memory): a
    ``Slot``, or None where the slot is torn (read that task's state file instead).  A task
    that never wrote its state reads as pending."""
    with open(slots_path(run_dir), "rb") as f:
        f.seek(len(HEADER))
        index = 0
        while index < count:
            data = f.read(min(chunk, count - index) * SLOT)
            for k in range(0, len(data) - SLOT + 1, SLOT):
                yield _unpack(index, data[k:k + SLOT])
                index += 1
            if len(data) < chunk * SLOT:
                break
        while index < count:  # past the end of the file: never written
            yield _pending(index)
            index += 1


def _pending(index: int) -> Slot:
    return Slot(index, "pending", 0, 0, 0, 0, None, 0, 0, 0, 0)


_ZERO = bytes(SLOT)


def _unpack(index: int, raw: bytes) -> Slot | None:
    if raw == _ZERO:
        return _pending(index)
    (magic, code, flags, attempts, failures, max_attempts, step, total, done, files, updated,
     _pad, crc) = _FMT.unpack(raw)
    if magic != MAGIC or crc != zlib.crc32(raw[:-4]) or code >= len(STATES):
        return None
    return Slot(index, STATES[code], flags, attempts, failures, max_attempts,
                step.rstrip(b"\0").decode("ascii", "replace") or None, total, done, files,
                updated)
