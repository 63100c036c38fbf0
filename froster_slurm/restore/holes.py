"""Sparse files come back sparse: holes punched over the zero blocks of a verified copy.

Why after the copy: rclone writes every byte it downloads (a 64 MiB file holding 4 KiB of
data comes back as 64 MiB on disk), and no remote keeps a file's hole map.  The archive
record marks a file ``sparse`` when it was (``st_blocks * 512 < st_size`` at inventory); once
the staged copy has the manifest's md5, each run of whole file-system blocks that reads as
zeros is given back to the file system with ``fallocate(FALLOC_FL_PUNCH_HOLE |
FALLOC_FL_KEEP_SIZE)``.  A punched range reads as zeros, so the bytes (and the md5) cannot
change; only blocks that are zero now are punched, so data written as explicit zeros in the
original also becomes a hole (the bytes are the same; the allocation is smaller).

A file system without hole support (``EOPNOTSUPP``: e.g. some network file systems) keeps the
file dense, as ``cp`` without ``--sparse`` would; the restore counts it and says so.  Only
files the record marks are scanned, so a restore of dense data reads nothing twice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from typing import Any

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
READ = 4 * 1024 * 1024  # bytes read at a time while looking for zero blocks

_libc: ctypes.CDLL | None = None


def _fallocate() -> Any:
    """libc's fallocate(2), or None where there is none (not glibc/musl on Linux)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fn = getattr(_libc, "fallocate", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        fn.restype = ctypes.c_int
    return fn


def zero_runs(fd: int, size: int, block: int) -> list[tuple[int, int]]:
    """(offset, length) of each run of whole ``block``-aligned blocks that read as zeros
    (a final partial block counts when it is the end of the file)."""
    runs: list[tuple[int, int]] = []
    zero_block = bytes(block)
    step = max(block, READ // block * block)  # every buffer starts on a block boundary
    start = -1
    offset = 0
    while offset < size:
        buf = os.pread(fd, step, offset)
        if not buf:
            break
        if buf.count(0) == len(buf):  # the common case in a sparse file: all zeros
            if start < 0:
                start = offset
            offset += len(buf)
            continue
        view = memoryview(buf)
        for i in range(0, len(buf), block):
            chunk = view[i:i + block]
            if chunk == zero_block[:len(chunk)]:
                if start < 0:
                    start = offset + i
            elif start >= 0:
                runs.append((start, offset + i - start))
                start = -1
        offset += len(buf)
    if start >= 0:
        runs.append((start, offset - start))
    return runs


def punch_zeros(fd: int) -> bool:
    """Punch holes over the zero blocks of the file open for writing at ``fd``.

    True when the file is sparse afterwards (or had nothing to punch), False when the file
    system cannot hold holes (the file is left as it was: dense, same bytes).
    """
    fallocate = _fallocate()
    if fallocate is None:
        return False
    st = os.fstat(fd)
    block = st.st_blksize or 4096
    for off, length in zero_runs(fd, st.st_size, block):
        if fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, length) != 0:
            err = ctypes.get_errno()
            if err in (errno.EOPNOTSUPP, errno.ENOSYS):
                return False
            raise OSError(err, os.strerror(err))
    return True
