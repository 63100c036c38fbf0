"""The manifest, ``Froster.manifest.md5``: one GNU md5sum line per regular file.

Written by the archive stage, read by restore and purge (both through this module, so the
writer and the readers cannot disagree on a name).  ``cd FOLDER && md5sum -c
Froster.manifest.md5`` checks the folder with nothing but coreutils, so a line is exactly what
GNU md5sum 9 prints: ``<32 hex>  <name>\\n``.  A name holding a backslash, newline or CR is
escaped the way md5sum does it (``\\\\``, ``\\n``, ``\\r``) and the line then starts with a
backslash; every other byte, non-UTF-8 ones included, is written raw.  Lines are sorted by the
names' raw bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ..errors import DataError

_ESCAPES = {b"\\": b"\\", b"n": b"\n", b"r": b"\r"}


def md5_hex(data: bytes) -> str:
    """The md5 of ``data`` as lower-case hex (the manifest's and the record's spelling)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def line(md5: str, rel: bytes) -> bytes:
    """One manifest line for a name relative to the manifest's folder (module docstring)."""
    if b"\\" in rel or b"\n" in rel or b"\r" in rel:
        esc = rel.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        return b"\\" + md5.encode() + b"  " + esc + b"\n"
    return md5.encode() + b"  " + rel + b"\n"


def unescape(name: bytes) -> bytes:
    """Undo ``line``'s escaping of a name (the line's leading backslash already gone)."""
    out = bytearray()
    i = 0
    while i < len(name):
        c = name[i:i + 1]
        if c == b"\\" and i + 1 < len(name):
            nxt = name[i + 1:i + 2]
            out += _ESCAPES.get(nxt, b"\\" + nxt)
            i += 2
        else:
            out += c
            i += 1
    return bytes(out)


def build(rows: Iterable[tuple[bytes, str]]) -> bytes:
    """The manifest of ``(relative name, md5)`` rows, sorted by raw name bytes."""
    return b"".join(line(md5, rel) for rel, md5 in sorted(rows))


def parse(data: bytes) -> dict[bytes, str]:
    """Manifest bytes -> {relative name: md5 (lower case)}; a malformed line is a DataError."""
    out: dict[bytes, str] = {}
    for n, raw in enumerate(data.split(b"\n"), 1):
        if not raw:
            continue
        escaped = raw.startswith(b"\\")
        if escaped:
            raw = raw[1:]
        md5, sep, name = raw.partition(b"  ")
        if not sep or len(md5) != 32:
            raise DataError(f"manifest line {n} is not '<md5>  <name>'")
        if escaped:
            name = unescape(name)
        out[name] = md5.decode("ascii").lower()
    return out
