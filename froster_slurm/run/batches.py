"""Which folders each archive array task archives: ``RUN_DIR/batches.txt``.

An array task is a *batch* of folders: small folders travel together (each Slurm task costs
the scheduler, prolog/epilog and accounting far more than a tiny folder's own work), a big
folder keeps a batch, and so a task, of its own.  The folder stays the unit of everything
else: state, markers, record, manifest, index.html, retry and status are per folder.

Line B of ``batches.txt`` lists the folder indices of batch B as a compact spec (``0-4,9``);
array task t of the array at offset O runs batch O + t.  Batches are numbered across the run's
submissions (a retry appends its own), so a batch number never changes meaning.  A run without
the file (made before batches existed) has one folder per task: batch B is folder B.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from ..util.atomic import write_atomic
from .rundir import Run


def _path(run_dir: str | os.PathLike) -> Path:
    return Run(Path(run_dir)).batches_path


def spec(indices: list[int]) -> str:
    """[0,1,2,5,7,8] -> '0-2,5,7-8'."""
    parts: list[str] = []
    i = 0
    while i < len(indices):
        j = i
        while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
            j += 1
        parts.append(str(indices[i]) if i == j else f"{indices[i]}-{indices[j]}")
        i = j + 1
    return ",".join(parts)


def parse_spec(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.strip().split(",")):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def batch_count(run_dir: str | os.PathLike) -> int:
    try:
        with open(_path(run_dir), "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def append_batches(run_dir: str | os.PathLike, batches: list[list[int]]) -> int:
    """Add batches to the run's plan (tmp + fsync + rename); returns the first new number.

    Written before any job that reads them is queued, by the one process that submits.
    """
    path = _path(run_dir)
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = b""
    first = old.count(b"\n")
    write_atomic(path, old + b"".join(spec(b).encode() + b"\n" for b in batches))
    return first


def batch_folders(run_dir: str | os.PathLike, number: int) -> list[int]:
    """The folder indices of batch ``number`` (a run without batches.txt: [number])."""
    path = _path(run_dir)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; a missing file is the old layout
    except FileNotFoundError:
        return [int(number)]
    with f:
        for n, line in enumerate(f):
            if n == number:
                return parse_spec(line.decode())
    raise DataError(f"{path}: no batch {number} (the run has {batch_count(run_dir)})")


def pack(costs: list[tuple[int, float]], budget: float, *, spread: int = 1,
         max_folders: int = 1000) -> list[list[int]]:
    """Folders (index, expected seconds) -> batches, in order (pure: unit-tested).

    A folder whose cost reaches the budget is a batch of its own; smaller ones fill a batch
    up to the budget (and ``max_folders``).  ``spread``: the budget shrinks so there are at
    least that many batches when there are that many folders (the throttle's slots all work).
    A budget of 0 or less is one folder per batch (the per-folder layout of old).
    """
    if budget <= 0:
        return [[i] for i, _ in costs]
    total = sum(c for _, c in costs)
    if spread > 1 and total / spread < budget:
        # 1% slack: filled greedily, folders of uneven cost would leave a last batch of one
        # or two (200 folders, throttle 2: 99 + 100 + 1); with it, still ``spread`` batches
        budget = total / spread * 1.01
    out: list[list[int]] = []
    current: list[int] = []
    used = 0.0
    for index, cost in costs:
        if cost >= budget:
            out.append([index])
            continue
        if current and (used + cost > budget or len(current) >= max_folders):
            out.append(current)
            current, used = [], 0.0
        current.append(index)
        used += cost
    if current:
        out.append(current)
    return out
