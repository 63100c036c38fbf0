"""Rates, ETAs and one-line progress for people who wait: the archive task's Comment, the live
``status --watch`` view, and ``crawl``/``rank`` on a terminal.

A rate is measured over a sliding window of samples (not since the start), so a stall or a
speed-up shows within the window; no rate is claimed before two samples a second apart.
Progress lines go to a terminal only: in a batch job (or any pipe) ``TermLine`` writes
nothing, so job logs stay free of carriage returns.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from ..util.units import format_size


class RateMeter:
    """Units per second over the last ``window`` seconds of (time, amount done) samples."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, done: float, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()  # the count went back (a restart): measure afresh
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 1.0:
            return None
        return (d1 - d0) / (t1 - t0)

    def eta(self, total: float) -> float | None:
        """Seconds until ``total`` at the current rate; None when unknown or stalled."""
        r = self.rate()
        if not r or r <= 0 or not self._samples:
            return None
        return max(0.0, (total - self._samples[-1][1]) / r)


def format_rate(per_second: float | None, unit: str = "bytes") -> str:
    if per_second is None:
        return "-"
    if unit == "bytes":
        return f"{format_size(per_second)}/s"
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M {unit}/s"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k {unit}/s"
    return f"{per_second:.0f} {unit}/s"


def format_eta(seconds: float | None) -> str:
    """'45s', '12m05s', '3h12m', '2d04h'; '-' when unknown."""
    if seconds is None:
        return "-"
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def interactive(stream: TextIO) -> bool:
    """A person is watching ``stream``: it is a terminal and TERM is not 'dumb'."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


class TermLine:
    """One progress line redrawn in place on a terminal (``\\r`` + clear), at most every
    ``every`` seconds; on anything that is not a terminal it writes nothing at all."""

    def __init__(self, what: str, unit: str, stream: TextIO | None = None, every: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, force: bool | None = None):
        self.what, self.unit = what, unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = interactive(self.stream) if force is None else force
        self.every = every
        self.clock = clock
        self.meter = RateMeter(window=10.0, clock=clock)
        self._start = clock()
        self._last = -1e9
        self._shown = False

    def update(self, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        now = self.clock()
        self.meter.add(done, now)
        if now - self._last < self.every:
            return
        self._last = now
        rate = self.meter.rate()
        if rate is None and now - self._start >= 1.0:
            rate = done / (now - self._start)
        text = f"{self.what}: {done:,} {self.unit}, {format_rate(rate, self.unit)}"
        if extra:
            text += f", {extra}"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._shown = True

    def show(self, text: str) -> None:
        """Any text as the line (rate-limited like ``update``)."""
        if not self.enabled:
            return
        now = self.clock()
        if now - self._last < self.every:
            return
        self._last = now
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._shown = True

    def elapsed(self) -> float:
        return self.clock() - self._start

    def close(self) -> None:
        """Remove the line, so what is printed next starts on a clean line."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._shown = False
