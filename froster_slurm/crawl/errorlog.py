"""The crawl's errors file: every problem met, one line each, beside the output.

A crawl never stops for a problem; it writes it here instead, so "what is missing from this
crawl, and why" always has an answer.  Format, one record per line::

    <kind>: <detail>\t<path>\n

``kind`` is one of the ``KINDS`` tokens (stable: scripts may match on them), ``detail`` is the
OS error text (no tab, no newline).  ``path`` is the raw path bytes (not UTF-8 when the name is
not) with exactly two escapes so that a record stays on one line: a backslash is written ``\\\\``
and a newline ``\\n``.  ``read_errors`` undoes them and returns the path's exact bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

UNREADABLE = "unreadable-dir"  # opendir failed (EACCES, EIO...): row written, contents unknown
VANISHED = "vanished"  # listed, then gone before lstat/opendir (deleted or renamed mid-crawl)
LSTAT = "lstat-failed"  # listed but lstat failed for another reason: no row
READDIR = "readdir-failed"  # listing broke off part way: the directory's row counts what was read
OTHER_FS = "other-filesystem"  # --one-file-system: not crossed into (a mount point)
LOOP = "directory-loop"  # same directory as one of its ancestors (bind mount): not re-entered
NAME_MANGLED = "name-mangled"  # pwalk engine: control bytes deleted, the row's path is wrong
PWALK = "pwalk-stderr"  # pwalk engine: a stderr line we do not recognise, kept verbatim
KINDS = (UNREADABLE, VANISHED, LSTAT, READDIR, OTHER_FS, LOOP, NAME_MANGLED, PWALK)
# Kinds that record something left out on request: reported, but the crawl is still complete.
SKIP_KINDS = (OTHER_FS,)
_SKIP_PREFIXES = tuple(k.encode() + b":" for k in SKIP_KINDS)


def is_skip(line: bytes) -> bool:
    """Whether a record says "left out on request" rather than "something went wrong"."""
    return line.startswith(_SKIP_PREFIXES)


def escape_path(path: bytes) -> bytes:
    return path.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")


def unescape_path(field: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(field):
        c = field[i:i + 1]
        if c == b"\\" and i + 1 < len(field):
            nxt = field[i + 1:i + 2]
            out += b"\n" if nxt == b"n" else nxt
            i += 2
        else:
            out += c
            i += 1
    return bytes(out)


def error_line(kind: str, detail: str, path: bytes) -> bytes:
    """One record; ``detail`` is flattened so it can never break the line structure."""
    detail = " ".join(detail.replace("\t", " ").split())
    reason = f"{kind}: {detail}" if detail else kind
    return reason.encode("utf-8", "backslashreplace") + b"\t" + escape_path(path) + b"\n"


def os_error_line(kind: str, err: OSError, path: bytes) -> bytes:
    return error_line(kind, err.strerror or str(err), path)


def record_path(line: bytes) -> bytes:
    """The exact path bytes of one record."""
    return unescape_path(line.rstrip(b"\n").partition(b"\t")[2])


@dataclass(frozen=True)
class CrawlProblem:
    kind: str
    detail: str
    path: bytes


def read_errors(src: str | os.PathLike) -> list[CrawlProblem]:
    """Parse an errors file back; paths come back as their exact bytes."""
    problems = []
    for line in Path(src).read_bytes().split(b"\n"):  # not splitlines(): \r is path data
        if not line:
            continue
        reason, _, path = line.partition(b"\t")
        kind, _, detail = reason.decode("utf-8", "replace").partition(": ")
        problems.append(CrawlProblem(kind, detail, unescape_path(path)))
    return problems
