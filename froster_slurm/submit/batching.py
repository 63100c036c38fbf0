"""How much work a folder is, and which folders share an array task (manager side).

A folder's expected seconds: ``archive.folder_seconds`` (the fixed cost of one folder:
inventory, record, manifest, index.html, a few rclone calls) + files / ``archive.files_per_second``
+ bytes / ``archive.rate``.  Folders are packed in order into batches of at most
``archive.task_minutes`` of expected work (``run.batches.pack``); a folder that alone reaches
the budget keeps a task of its own, which is the design card's one array task per folder where
it matters.  ``archive.task_minutes = 0`` is one folder per task.

The sizes come from the crawl when rank submits (the hotspot rows), else from a quick look at
each folder at submission that stops once the folder is known to be big.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..config import Config
from ..run.batches import pack
from ..util.units import parse_size

# A scan at submission stops after this many entries: the folder is big enough for a task of
# its own by then at any sensible rate, and the login node is not made to walk a huge tree.
SCAN_LIMIT = 20_000


def scan_folder(folder: bytes, recursive: bool, limit: int = SCAN_LIMIT
                ) -> tuple[int, int, bool]:
    """(bytes, files, complete) of what the archive of ``folder`` would read.

    Regular files directly inside (or in the whole subtree when ``recursive``), not following
    symbolic links; ``complete`` is False when the scan stopped at ``limit`` entries or met
    an unreadable directory (the task will tell the truth; here it is only an estimate).
    """
    size = files = seen = 0
    stack = [folder]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            return size, files, False
        with it:
            for entry in it:
                seen += 1
                if seen > limit:
                    return size, files, False
                try:
                    if entry.is_file(follow_symlinks=False):
                        files += 1
                        size += entry.stat(follow_symlinks=False).st_size
                    elif recursive and entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                except OSError:
                    continue
    return size, files, True


def folder_seconds(size: int, files: int, config: Config) -> float:
    """Expected seconds of work to archive a folder of ``size`` bytes in ``files`` files."""
    rate = max(1, parse_size(config.get("archive.rate")))
    return (float(config.get("archive.folder_seconds")) + files
            / max(1e-9, float(config.get("archive.files_per_second"))) + size / rate)


def plan_batches(folders: list[bytes], indices: list[int], config: Config, *, recursive: bool,
                 sizes: Mapping[int, tuple[int, int]] | None = None) -> list[list[int]]:
    """The batches for these folder indices of a run (``folders`` is the run's folder list).

    ``sizes`` maps an index to (bytes, files) where the caller knows them (rank has the
    crawl's numbers); the others are scanned, and a scan that did not finish makes the folder
    a batch of its own.
    """
    budget = float(config.get("archive.task_minutes")) * 60.0
    if budget <= 0:
        return [[i] for i in indices]
    costs: list[tuple[int, float]] = []
    for i in indices:
        if sizes is not None and i in sizes:
            size, files = sizes[i]
            complete = True
        else:
            size, files, complete = scan_folder(folders[i], recursive)
        costs.append((i, folder_seconds(size, files, config) if complete else budget))
    return pack(costs, budget, spread=int(config.get("archive.throttle")))
