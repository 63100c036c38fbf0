"""Which line of a TOML file sets a key, so a config problem names its file *and* line.

``tomllib`` keeps no positions, so this reads the text the way an admin does: ``[table]``
headers set the current table and ``key = value`` lines add a key to it.  It is a locator for
messages only (values always come from ``tomllib``): a key it cannot place is reported at the
nearest enclosing table it found, or without a line.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
                     r"(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")
_DECODE_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _dotted(text: str) -> str:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", text)
    return ".".join(next(p for p in groups if p) for groups in parts)


def key_lines(text: str) -> dict[str, int]:
    """Dotted key (and table) -> the first line (1-based) that sets it."""
    table = ""
    found: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            found.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = _dotted(assign.group(1))
            found.setdefault(f"{table}.{key}" if table else key, number)
    return found


def line_of(lines: dict[str, int], key: str) -> int | None:
    """The line of ``key``, else of its nearest enclosing table."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        hit = lines.get(".".join(parts[:n]))
        if hit:
            return hit
    return None


def key_on_line(text: str, number: int) -> str | None:
    """The dotted key a given line assigns (for a line that does not parse as TOML)."""
    table = ""
    for n, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header and n < number:
            table = _dotted(header.group(1))
        if n == number:
            assign = _ASSIGN.match(line)
            if not assign:
                return None
            key = _dotted(assign.group(1))
            return f"{table}.{key}" if table else key
    return None


def decode_error_line(message: str) -> int | None:
    """The line number in a ``tomllib.TOMLDecodeError`` message."""
    m = _DECODE_LINE.search(message)
    return int(m.group(1)) if m else None
