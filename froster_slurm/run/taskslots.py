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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .taskstate import TaskStatus

HEADER = b"froster-slurm status slots v1\n".ljust(64, b"\0")
# magic, state, flags, attempts, failures, max_attempts, step, bytes_total, bytes_done, files,
# updated (epoch s), pad, crc32 of everything before it
_FMT = struct.Struct("<2sBBHHH14sQQQI8sI")
SLOT = _FMT.size
MAGIC = b"S1"
# A slot stores the state as its index here: TaskStatus's order is the encoding (append only).
STATES = tuple(TaskStatus)
STOPPED_BY_SIGTERM, HAS_ERROR, PERMANENT, HAS_WARNING = 1, 2, 4, 8

assert SLOT == 64
_ZERO = bytes(SLOT)


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


@dataclass
class Tally:
    """``tally``'s answer: per (state, stopped by SIGTERM) the folders, bytes and files; how
    many failed for good; the first ``cap`` indices of each kind; the torn slots."""

    groups: dict[tuple[str, bool], list[int]]  # -> [folders, bytes_total, bytes_done, files]
    permanent: int
    first: dict[tuple[str, bool], list[int]]
    torn: list[int]


def tally(run_dir: str | os.PathLike, count: int, cap: int, chunk: int = 8192) -> Tally:
    """The index of tasks ``0..count-1`` summed in one pass, a chunk at a time: what ``status``
    prints for a large run without a Python object per folder (~1 µs a slot)."""
    crc32, n_states = zlib.crc32, len(STATES)
    acc: dict[tuple[int, int], list[int]] = {}
    first: dict[tuple[int, int], list[int]] = {}
    torn: list[int] = []
    permanent = 0
    index = 0
    with open(slots_path(run_dir), "rb") as f:
        f.seek(len(HEADER))
        while index < count:
            data = f.read(min(chunk, count - index) * SLOT)
            whole = len(data) - len(data) % SLOT
            view = memoryview(data)
            for k, t in enumerate(_FMT.iter_unpack(view[:whole])):
                at = k * SLOT
                if t[0] == MAGIC:
                    if t[12] != crc32(view[at:at + SLOT - 4]) or t[1] >= n_states:
                        torn.append(index)
                        index += 1
                        continue
                    key = (t[1], t[2] & STOPPED_BY_SIGTERM)
                    if t[1] == 4 and t[2] & PERMANENT:
                        permanent += 1
                elif view[at:at + SLOT] == _ZERO:
                    key = (0, 0)  # never written: pending
                else:
                    torn.append(index)
                    index += 1
                    continue
                a = acc.get(key)
                if a is None:
                    a = acc[key] = [0, 0, 0, 0]
                    first[key] = []
                a[0] += 1
                a[1] += t[7]
                a[2] += t[8]
                a[3] += t[9]
                if a[0] <= cap:
                    first[key].append(index)
                index += 1
            if len(data) < chunk * SLOT:
                break
    if index < count:  # past the end of the file: never written
        a = acc.setdefault((0, 0), [0, 0, 0, 0])
        first.setdefault((0, 0), [])
        need = max(0, cap - a[0])
        first[(0, 0)].extend(range(index, min(count, index + need)))
        a[0] += count - index
    return Tally({(STATES[c], bool(s)): v for (c, s), v in acc.items()}, permanent,
                 {(STATES[c], bool(s)): v for (c, s), v in first.items()}, torn)
