"""Bytes-safe folder paths: the folder-list file format and how a path is shown to a person.

A folder name may hold any byte but NUL and '/'. Everywhere inside the tool a path is ``bytes``
(or a ``str`` made by ``os.fsdecode``, which round-trips through surrogateescape). The folder
list that job scripts read is NUL-separated raw bytes, the only separator that cannot occur in a
path, so no quoting scheme can go wrong.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError, UserError
from .atomic import atomic_file, write_atomic


def to_bytes(path: str | bytes | os.PathLike) -> bytes:
    """Any path-like to raw bytes (str via surrogateescape, so nothing is lost)."""
    return os.fsencode(path)


def display(path: str | bytes) -> str:
    """Printable form: UTF-8 where valid, ``\\xNN`` for other bytes, control chars escaped.

    For people only; never feed it back to the file system.
    """
    b = to_bytes(path)
    text = b.decode("utf-8", errors="backslashreplace")
    out = []
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{ord(ch):02x}"))
        else:
            out.append(ch)
    return "".join(out)


def write_folder_list(dest: str | os.PathLike, folders: Iterable[bytes | str]) -> int:
    """Write folders NUL-terminated (one record each); returns how many were written.

    Written through ``atomic.atomic_file``, so a job never reads a half-written list.
    """
    n = 0
    with atomic_file(dest) as f:
        for folder in folders:
            b = to_bytes(folder)
            if not b or b"\0" in b:
                raise UserError(f"not a usable folder path: {display(b)!r}")
            f.write(b + b"\0")
            n += 1
    return n


def read_folder_list(src: str | os.PathLike) -> list[bytes]:
    """Read a NUL-separated folder list (a trailing NUL is optional)."""
    try:
        data = Path(src).read_bytes()
    except FileNotFoundError as e:
        raise UserError(f"folder list not found: {src}") from e
    if not data:
        return []
    if data.endswith(b"\0"):
        data = data[:-1]
    folders = data.split(b"\0")
    if any(not f for f in folders):
        raise DataError(f"{src}: empty record in folder list (is it NUL-separated?)")
    return folders


def folder_at(src: str | os.PathLike, index: int) -> bytes:
    """Entry ``index`` (0-based) of a folder list: what array task N archives."""
    folders = read_folder_list(src)
    if not 0 <= index < len(folders):
        raise DataError(f"{src}: no entry {index} (the list has {len(folders)})")
    return folders[index]


def discard_tree(path: str | bytes | os.PathLike) -> None:
    """Best-effort removal of one of OUR scratch directories (staging, DuckDB spill, work).

    Never used on a user's folder: purge has its own checked deletion. A failure here only
    leaves scratch space behind, which must not turn a finished job into a failed one.
    """

    def _leave(_func: object, _path: object, _exc: object) -> None:
        return None

    shutil.rmtree(path, onerror=_leave)


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """Replace a JSON state file so a reader never sees half of it (``atomic.write_atomic``).

    ASCII-escaped, so a path held as a surrogateescape str survives the round trip.
    """
    write_atomic(path, json.dumps(obj, indent=1, ensure_ascii=True, sort_keys=True) + "\n")
