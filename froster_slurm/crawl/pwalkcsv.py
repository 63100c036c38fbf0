"""pwalk's CSV row format, as bytes.

One place knows the format (``docs/pwalk-format.md`` describes it): the header, the row
template, how a name is quoted and where its extension starts.  The engine inlines the same
template for speed (formatting is most of its CPU time); ``format_row`` is the readable
reference that tests and the planner use, and the tests prove the two agree.

Deliberate difference from pwalk: pwalk deletes control bytes (0x01-0x1F) from names, so the
path it writes does not exist on disk.  We keep every byte; a newline or tab then sits inside a
quoted field, which is legal CSV (RFC 4180) and what a real CSV parser reads back.  Only ``"``
needs escaping (doubled), exactly as pwalk does.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator

from ..errors import DataError

HEADER = (b'inode,parent-inode,directory-depth,"filename","fileExtension",UID,GID,st_size,'
          b'st_dev,st_blocks,st_nlink,"st_mode",st_atime,st_mtime,st_ctime,pw_fcount,pw_dirsum\n')

# pwalk: "%ju,%ju,%ld,\"%s\",\"%s\",%ld,%ld,%ld,%ld,%ld,%d,\"%07o\",%ld,%ld,%ld,%ld,%ld\n"
ROW = b'%d,%d,%d,"%s","%s",%d,%d,%d,%d,%d,%d,"%07o",%d,%d,%d,%d,%d\n'

COLUMNS = ("inode", "parent-inode", "directory-depth", "filename", "fileExtension", "UID", "GID",
           "st_size", "st_dev", "st_blocks", "st_nlink", "st_mode", "st_atime", "st_mtime",
           "st_ctime", "pw_fcount", "pw_dirsum")

FILE_FCOUNT = -1  # pw_fcount of anything that is not a directory (pw_dirsum is then 0)


def extension(name: bytes) -> bytes:
    """pwalk's extension of one path component: the bytes after its last ``.``.

    A leading dot is not an extension (``.bashrc`` -> ``b""``) and a trailing dot gives an
    empty one.  Only for names of non-directories: pwalk writes ``""`` as the extension of
    every directory row and of the root (``v1.2/`` -> ``b""``), and so do we (``format_row``).
    """
    dot = name.rfind(b".")
    return name[dot + 1:] if dot > 0 else b""


def basename(path: bytes) -> bytes:
    """Last component as pwalk sees it (after the last ``/``; ``b""`` for ``/data/``)."""
    return path[path.rfind(b"/") + 1:]


def quote(field: bytes) -> bytes:
    """Inside a quoted CSV field only ``"`` needs escaping: it is doubled."""
    return field.replace(b'"', b'""') if b'"' in field else field


def format_row(st: os.stat_result, path: bytes, parent_inode: int, depth: int,
               fcount: int = FILE_FCOUNT, dirsum: int = 0) -> bytes:
    """One pwalk row for ``path`` described by its ``lstat`` result.

    ``depth`` is pwalk's directory-depth of the row (-1 for a crawl root).  Times are whole
    seconds taken from the stat tuple's integer fields, which are ``tv_sec`` exactly as pwalk
    prints them (``int(st.st_mtime)`` would round pre-1970 times the wrong way).  A directory
    row (``fcount >= 0``) has no extension, as in pwalk.
    """
    mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime = st
    ext = b"" if fcount >= 0 else quote(extension(basename(path)))
    return ROW % (ino, parent_inode, depth, quote(path), ext,
                  uid, gid, size, dev, st.st_blocks, nlink, mode, atime, mtime, ctime,
                  fcount, dirsum)


def iter_rows(src: str | os.PathLike | bytes, header: bool = True) -> Iterator[list[bytes]]:
    """Read a pwalk CSV back as rows of raw-bytes fields (for tests and tools).

    Latin-1 maps every byte to one character and back, so names that are not UTF-8, and the
    control bytes we keep inside quotes, come back byte for byte.
    """
    with open(src, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="latin-1", newline="")
        reader = csv.reader(text, strict=True)
        if header:
            first = next(reader, None)
            if first is not None and first != list(COLUMNS):
                raise DataError(f"{os.fsdecode(src)}: not a pwalk header: {first!r}")
        for row in reader:
            yield [field.encode("latin-1") for field in row]
