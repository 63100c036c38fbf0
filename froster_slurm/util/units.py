"""Parse and format the sizes and ages people type and read ("500GiB", "2TB", "180d", "2y")."""

from __future__ import annotations

import re

from ..errors import UserError

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4, "p": 1000**5, "pb": 1000**5,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "pib": 1024**5,
}
_AGE_UNITS = {
    "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400,
    "mo": 30 * 86400, "y": 365 * 86400,
}
_NUM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Return bytes for '500GiB', '2TB', '10M' or a plain number of bytes.

    Decimal units (KB, MB, GB, TB) are powers of 1000 and binary ones (KiB...) powers of 1024,
    as storage vendors bill in decimal and file systems report in binary.
    """
    if isinstance(text, int):
        return text
    m = _NUM.match(str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise UserError(f"not a size: {text!r} (examples: 500GiB, 2TB, 10MB, 4096)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_age(text: str | int) -> int:
    """Return seconds for '180d', '2y', '6mo', '12h' or a plain number of days."""
    if isinstance(text, int):
        return text * 86400
    m = _NUM.match(str(text))
    unit = m.group(2).lower() if m else None
    if not m or (unit and unit not in _AGE_UNITS):
        raise UserError(f"not an age: {text!r} (examples: 180d, 2y, 6mo, 12h)")
    return int(float(m.group(1)) * (_AGE_UNITS[unit] if unit else 86400))


def format_size(n: int | float) -> str:
    """Binary units with one decimal, the way `du -h` users read them."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_age(seconds: int | float) -> str:
    """'3.2 years ago', '5 days ago', 'just now'."""
    s = max(0.0, float(seconds))
    if s < 60:
        return "just now"
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if s >= size:
            v = s / size
            txt = f"{v:.1f}" if unit in ("year", "month") and v < 10 else f"{v:.0f}"
            return f"{txt} {unit}{'' if txt == '1' else 's'} ago"
    return "just now"


_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_slurm_time(text: str) -> int | None:
    """Seconds in a Slurm time limit, or None for no limit ('', UNLIMITED, INFINITE).

    Slurm's forms: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``.
    """
    text = str(text).strip()
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A"):
        return None
    m = _SLURM_TIME.match(text)
    if not m:
        raise UserError(f"not a Slurm time limit: {text!r} (examples: 90, 2:00:00, 3-00:00:00)")
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    if days is not None:  # D-H, D-H:M, D-H:M:S
        return days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:  # H:M:S
        return a * 3600 + b * 60 + c
    if b is not None:  # M:S
        return a * 60 + b
    return a * 60  # M
