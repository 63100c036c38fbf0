"""How much work a folder is, and which folders share an array task (manager side).

A folder's expected seconds: ``archive.folder_seconds`` (the fixed cost of one folder:
inventory, record, manifest, index.html, a few rclone calls) + files / ``archive.files_per_second``
+ bytes / ``archive.rate``.  Folders are packed in order into batches of at most
``archive.task_minutes`` of expected work (``run.batches.pack``); a folder that alone reaches
the budget keeps a task of its own, which is the design card's one array task per folder where
it matters.  ``archive.task_minutes = 0`` is one folder per task.

The sizes come from the crawl when rank submits (the hotspot rows), else from a quick look at
each folder at submission that stops once the folder is known to be big (``SCAN_LIMIT``).
That look has a budget for the whole submission too (``archive.scan_entries`` entries,
``archive.scan_seconds`` seconds): 200,000 folders at 20,000 entries each would be 4 billion
entries walked on a login node before anything is queued.  Once it is spent, every folder
not looked at is a batch of its own, as a folder whose look did not finish already is.  An
estimate from the folders seen (their median, say) would pack an unseen folder of ten million
files with hundreds of small ones: that batch would run for days behind it, holding one slot
of the throttle, and its small folders would wait behind the big one.  A task each costs the
scheduler more, but the queue cap bounds what is queued, and a crawl (``froster-slurm
submit``, or ``archive.scan_*`` raised) gives every folder its size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..config import Config
from ..run.batches import pack
from ..util.units import parse_size

# A scan at submission stops after this many entries: the folder is big enough for a task of
# its own by then at any sensible rate, and the login node is not made to walk a huge tree.
SCAN_LIMIT = 20_000


class ScanBudget:
    """What is left of the submission's scan: entries, and seconds by ``clock`` (injectable,
    so a test spends the seconds without waiting)."""

    def __init__(self, entries: int, seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self.entries_left = int(entries)
        self.seconds = float(seconds)
        self.clock = clock
        self.deadline = clock() + self.seconds
        self.spent = ""  # what ran out: "" (nothing yet), "entries" or "seconds"

    def take(self) -> bool:
        """One more entry, if the budget has it (False from the first one it has not)."""
        if self.spent:
            return False
        if self.entries_left <= 0:
            self.spent = "entries"
        elif self.clock() >= self.deadline:
            self.spent = "seconds"
        else:
            self.entries_left -= 1
            return True
        return False

    def left(self) -> bool:
        """Whether another folder may be looked at (spends nothing)."""
        if not self.spent and self.entries_left <= 0:
            self.spent = "entries"
        if not self.spent and self.clock() >= self.deadline:
            self.spent = "seconds"
        return not self.spent


def scan_folder(folder: bytes, recursive: bool, limit: int = SCAN_LIMIT,
                budget: ScanBudget | None = None) -> tuple[int, int, bool]:
    """(bytes, files, complete) of what the archive of ``folder`` would read.

    Regular files directly inside (or in the whole subtree when ``recursive``), not following
    symbolic links; ``complete`` is False when the scan stopped at ``limit`` entries, ran out
    of the submission's ``budget`` or met an unreadable directory (the task will tell the
    truth; here it is only an estimate).
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
                if seen > limit or (budget is not None and not budget.take()):
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


@dataclass
class BatchPlan:
    """The batches of a submission, and the one line a person should read about them."""

    batches: list[list[int]]
    note: str = ""  # set when folders were not looked at (the scan budget ran out)
    unscanned: list[int] = field(default_factory=list)


def scan_budget(config: Config, clock: Callable[[], float] = time.monotonic) -> ScanBudget:
    return ScanBudget(int(config.get("archive.scan_entries")),
                      float(config.get("archive.scan_seconds")), clock)


def plan_batches(folders: list[bytes], indices: list[int], config: Config, *, recursive: bool,
                 sizes: Mapping[int, tuple[int, int]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> BatchPlan:
    """The batches for these folder indices of a run (``folders`` is the run's folder list).

    ``sizes`` maps an index to (bytes, files) where the caller knows them (rank has the
    crawl's numbers); the others are scanned within the submission's budget
    (``scan_budget``), and a folder whose scan did not finish, or that was not scanned once
    the budget was spent, is a batch of its own.
    """
    budget = float(config.get("archive.task_minutes")) * 60.0
    if budget <= 0:
        return BatchPlan([[i] for i in indices])
    scan = scan_budget(config, clock)
    costs: list[tuple[int, float]] = []
    unscanned: list[int] = []
    scanned = 0
    for i in indices:
        if sizes is not None and i in sizes:
            size, files = sizes[i]
            complete = True
        elif scan.left():
            size, files, complete = scan_folder(folders[i], recursive, budget=scan)
            scanned += 1
        else:
            unscanned.append(i)
            size, files, complete = 0, 0, False
        costs.append((i, folder_seconds(size, files, config) if complete else budget))
    plan = BatchPlan(pack(costs, budget, spread=int(config.get("archive.throttle"))),
                     unscanned=unscanned)
    if unscanned:
        limit = (f"archive.scan_entries = {int(config.get('archive.scan_entries')):,}"
                 if scan.spent == "entries" else
                 f"archive.scan_seconds = {float(config.get('archive.scan_seconds')):g}")
        plan.note = (f"sizes estimated: the scan at submission stopped at {limit} after "
                     f"{scanned:,} of {scanned + len(unscanned):,} folders; the other "
                     f"{len(unscanned):,} are a task each (their size is unknown and a big "
                     "one must not share a task); a crawl (froster-slurm submit) sizes them "
                     "all")
    return plan
