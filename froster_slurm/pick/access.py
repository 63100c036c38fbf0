"""Background readability checks for the picker's rows.

``os.access`` is one syscall, but 100k of them on a network file system take minutes, and a
hung mount blocks forever.  So the checks run on one daemon thread (never the UI thread, never
before the table is shown), visible rows first; the UI polls ``generation`` and repaints when
new answers arrived.  A daemon thread stuck on a dead mount cannot keep the program alive.

Memory: one byte per row (not checked / readable / not), and the pass over every row goes in
file order, fetching a batch of names at a time; nothing else is kept per row.
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
        self._known = bytearray(len(folders))  # per row: 0 not checked, 1 readable, 2 not
        self._passed = 0  # the pass in file order has reached this row
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
        known = self._known[index]
        return None if not known else known == 1

    def prioritize(self, indices: Iterable[int]) -> None:
        """Check these rows (the ones on screen) before the rest."""
        self._urgent.extend(i for i in indices if self.get(i) is None)

    def _ok(self, folder: bytes) -> bool:
        try:
            return bool(self._check(folder))
        except (OSError, ValueError):
            return False

    def _answer(self, index: int, folder: bytes) -> None:
        self._known[index] = 1 if self._ok(folder) else 2
        self.generation += 1

    def _run(self) -> None:
        total = len(self._folders)
        while not self._stop.is_set():
            if self._urgent:
                i = self._urgent.popleft()
                if not self._known[i]:
                    self._answer(i, self._folders[i])
                continue
            if self._passed >= total:
                break
            start = self._passed
            for offset, folder in enumerate(self._folders[start:start + BATCH]):
                if self._stop.is_set() or self._urgent:
                    break
                if not self._known[start + offset]:
                    self._answer(start + offset, folder)
                self._passed = start + offset + 1
        self._done.set()
