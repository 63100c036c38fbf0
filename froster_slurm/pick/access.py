"""Background readability checks for the picker's rows.

``os.access`` is one syscall, but 100k of them on a network file system take minutes, and a
hung mount blocks forever.  So the checks run on one daemon thread (never the UI thread, never
before the table is shown), visible rows first; the UI polls ``generation`` and repaints when
new answers arrived.  A daemon thread stuck on a dead mount cannot keep the program alive.

Memory does not grow with the rows: the pass over every row goes in file order, a batch of
names at a time, and keeps only how far it got and the rows that failed; a row checked out of
order (it was on screen) keeps its own answer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from .selection import is_readable

BATCH = 1000  # names fetched at a time for the pass in file order


class AccessChecker:
    """Answers "can this user read folder i?" for every row, eventually.

    ``folders``: the names by row, sliceable (a list, or ``pickstate.Folders`` over DuckDB)."""

    def __init__(self, folders: Sequence[bytes],
                 check: Callable[[bytes], bool] = is_readable):
        self._folders = folders
        self._check = check
        self._answers: dict[int, bool] = {}  # rows checked ahead of the pass (on screen)
        self._unreadable: set[int] = set()  # rows of the pass that failed
        self._passed = 0  # every row below this was checked by the pass
        self._urgent: deque[int] = deque()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="froster-pick-access",
                                        daemon=True)
        self.generation = 0  # bumped after each answer; cheap for the UI to poll

    def start(self) -> AccessChecker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every row was checked (tests and benchmarks only)."""
        return self._done.wait(timeout)

    def get(self, index: int) -> bool | None:
        """True/False once known, None while not yet checked."""
        got = self._answers.get(index)
        if got is not None:
            return got
        if index < self._passed:
            return index not in self._unreadable
        return None

    def prioritize(self, indices: Iterable[int]) -> None:
        """Check these rows (the ones on screen) before the rest."""
        self._urgent.extend(i for i in indices if self.get(i) is None)

    def _ok(self, folder: bytes) -> bool:
        try:
            return bool(self._check(folder))
        except (OSError, ValueError):
            return False

    def _run(self) -> None:
        total = len(self._folders)
        while not self._stop.is_set():
            if self._urgent:
                i = self._urgent.popleft()
                if self.get(i) is None:
                    self._answers[i] = self._ok(self._folders[i])
                    self.generation += 1
                continue
            if self._passed >= total:
                break
            start = self._passed
            for offset, folder in enumerate(self._folders[start:start + BATCH]):
                if self._stop.is_set() or self._urgent:
                    break
                i = start + offset
                if i not in self._answers and not self._ok(folder):
                    self._unreadable.add(i)
                self._passed = i + 1
                self.generation += 1
        self._done.set()
