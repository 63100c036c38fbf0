"""Background readability checks for the picker's rows.

``os.access`` is one syscall, but 100k of them on a network file system take minutes, and a
hung mount blocks forever.  So the checks run on one daemon thread (never the UI thread, never
before the table is shown), visible rows first; the UI polls ``generation`` and repaints when
new answers arrived.  A daemon thread stuck on a dead mount cannot keep the program alive.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from .selection import is_readable


class AccessChecker:
    """Answers "can this user read folder i?" for every row, eventually."""

    def __init__(self, folders: Sequence[bytes],
                 check: Callable[[bytes], bool] = is_readable):
        self._folders = folders
        self._check = check
        self._results: dict[int, bool] = {}
        self._urgent: deque[int] = deque()
        self._next = 0
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
        return self._results.get(index)

    def prioritize(self, indices: Iterable[int]) -> None:
        """Check these rows (the ones on screen) before the rest."""
        results = self._results
        self._urgent.extend(i for i in indices if i not in results)

    def _take(self) -> int | None:
        if self._urgent:
            return self._urgent.popleft()
        if self._next < len(self._folders):
            self._next += 1
            return self._next - 1
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            i = self._take()
            if i is None:
                break
            if i in self._results:
                continue
            try:
                ok = bool(self._check(self._folders[i]))
            except (OSError, ValueError):
                ok = False
            self._results[i] = ok
            self.generation += 1
        self._done.set()
