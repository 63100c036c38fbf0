"""The compiled walker (``_fastwalk``, C): when it is used, and the thin layer that runs it.

The builtin engine has two walkers that write the same rows and records: this one, POSIX
threads in C that never take the GIL (``_fastwalk.c``), and the pure-Python one in
``builtin.py``, which is the fallback where the extension did not build (no compiler or Python
headers where the package was installed) and the reference the tests compare it with.

``FROSTER_CRAWL_WALKER`` = ``auto`` (default: compiled when it can do the crawl), ``c``
(compiled or an error) or ``python``, for benchmarks and comparisons.  The compiled walker
does not take ``--exclude`` globs (their fnmatch semantics live in Python) nor the tests'
``scandir`` seam; those crawls use the Python walker.

Threads: the walkers are real parallelism, so one process does what the Python walker needs
one process per core for.  By default there are ``THREADS_PER_CPU`` threads per CPU we may
run on (at least ``MIN_THREADS``): more threads than cores cost ~nothing on a warm cache and
keep the disk (or the NFS server) busy on a cold one, where each ``fstatat`` waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import BinaryIO

from ..errors import UserError
from .builtin import Counts, CrawlOptions, OutputError, Progress, ScanItem, default_workers

try:
    from . import _fastwalk
except ImportError:  # not built: the Python walker does everything
    _fastwalk = None

WALKERS = ("auto", "c", "python")
THREADS_PER_CPU = 16
MIN_THREADS = 32
MAX_THREADS = 128


def available() -> bool:
    return _fastwalk is not None


def chosen_walker(options: CrawlOptions, seam: bool) -> str:
    """``c`` or ``python`` for this crawl (``seam``: a test replaced ``scandir``)."""
    want = os.environ.get("FROSTER_CRAWL_WALKER", "auto") or "auto"
    if want not in WALKERS:
        raise UserError(f"FROSTER_CRAWL_WALKER={want!r}: choose one of {', '.join(WALKERS)}")
    can = available() and not options.excludes and not seam
    if want == "c" and not can:
        why = ("the compiled walker was not built" if not available()
               else "--exclude globs need the Python walker" if options.excludes
               else "a scandir seam needs the Python walker")
        raise UserError(f"FROSTER_CRAWL_WALKER=c: {why}")
    return "c" if want != "python" and can else "python"


def default_threads(workers: int, threads: int) -> int:
    """Walker threads for ``--workers``/``--threads`` as given (0 workers: the default)."""
    if workers == 0 and threads <= 1:
        return min(MAX_THREADS, max(MIN_THREADS, THREADS_PER_CPU * default_workers()))
    return max(1, min(MAX_THREADS * 4, (workers or default_workers()) * max(1, threads)))


def _stat_tuple(st: os.stat_result) -> tuple[int, ...]:
    mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime = st
    return (mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime, st.st_blocks)


def walk_compiled(items: Iterable[ScanItem], out: BinaryIO, err: BinaryIO,
                  options: CrawlOptions, threads: int, progress: Progress | None = None,
                  progress_every: float = 0.5) -> Counts:
    """Crawl ``items`` with the C walker, ``threads`` POSIX threads, into ``out``/``err``."""
    assert _fastwalk is not None
    try:
        out.flush()
        err.flush()
    except OSError as e:
        raise OutputError(f"cannot write the crawl output: {e.strerror or e}") from e
    specs = [(i.path, i.depth, i.parent_inode, _stat_tuple(i.st), i.root_dev,
              list(i.ancestors), None if i.skip is None else sorted(i.skip)) for i in items]
    w = _fastwalk.Walk(specs, out.fileno(), out.tell(), err.fileno(), threads,
                       options.one_file_system, options.no_snapshots)
    try:
        next_report = time.monotonic() + progress_every
        while not w.wait(0.1 if progress is None else min(0.1, progress_every)):
            if progress is not None and time.monotonic() >= next_report:
                entries, dirs, errors, _ = w.counts()
                progress(entries, dirs, errors)
                next_report = time.monotonic() + progress_every
    except BaseException:
        w.cancel()
        raise
    end, write_errno = w.result()
    if write_errno:
        raise OutputError(f"cannot write the crawl output: {os.strerror(write_errno)}")
    entries, dirs, errors, skipped = w.counts()
    out.seek(end)
    err.seek(0, os.SEEK_END)
    return Counts(entries, dirs, errors, skipped)
