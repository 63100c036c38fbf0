"""The one UTC timestamp of every file the tool writes (state, run settings, records, jobs).

``2026-12-02T13:05:09Z``: ISO 8601, seconds, UTC with a ``Z``; sorts as text and parses
back with ``parse_iso``.  Log lines keep the node's local time: they are read beside the
scheduler's own logs.
"""

from __future__ import annotations

from datetime import UTC, datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now_iso() -> str:
    """Now, as stored in every state file."""
    return datetime.now(UTC).strftime(ISO_FORMAT)


def parse_iso(text: str | None) -> datetime | None:
    """A stamp written by ``now_iso`` back to an aware datetime (None if it is not one)."""
    try:
        return datetime.strptime(text or "", ISO_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one stamp to a later one (never negative), or None if either is not one."""
    a, b = parse_iso(start), parse_iso(end)
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds())
