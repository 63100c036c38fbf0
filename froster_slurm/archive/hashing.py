"""md5 of files: safe opening, a bounded thread pool, and a resumable store of results.

Why threads: ``hashlib``'s md5 and ``readinto`` both release the GIL on large buffers, so N
threads hash N files at (nearly) N cores' speed without the cost of processes.  The pool is
fed only by the calling thread and its jobs never submit jobs or wait on each other, so it
cannot deadlock on itself; at most ``2 x workers`` jobs are queued, so memory stays flat for a
million files.  Every read loop checks a cancel event, so a time-limit stop does not wait for
a 100 GB file to finish.

Every file is opened with ``O_NOFOLLOW`` and ``fstat``'ed against the inventory before a byte
is read: what we hash is the object the inventory saw, not whatever a symlink swapped in.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

from ..errors import PermanentError, TransientError
from ..util.paths import display
from .inventory import Entry, SourceChanged

CHUNK = 4 * 1024 * 1024
T = TypeVar("T")
R = TypeVar("R")
_TRANSIENT_ERRNOS = {errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR, errno.EIO,
                     errno.ENOLINK, errno.ECONNRESET, errno.EHOSTDOWN, errno.EHOSTUNREACH}


class Cancelled(Exception):
    """The pool was told to stop (another job failed, or the task is being stopped)."""


def os_error(path: bytes, e: OSError) -> Exception:
    """Classify a read error on a source file: permanent, transient, or the source changed."""
    if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
        return SourceChanged(f"{display(path)} vanished or changed type since the inventory")
    if e.errno in (errno.EACCES, errno.EPERM):
        return PermanentError(f"cannot read {display(path)}: permission denied")
    if e.errno in _TRANSIENT_ERRNOS:
        return TransientError(f"reading {display(path)} failed: {e.strerror} (will retry)")
    return PermanentError(f"cannot read {display(path)}: {e.strerror or e}")


def open_checked(path: bytes, entry: Entry) -> int:
    """Open a source file read-only without following links; it must match the inventory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise os_error(path, e) from e
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise os_error(path, e) from e
    if not entry.matches(st):
        os.close(fd)
        raise SourceChanged(f"{display(path)} changed since the inventory")
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except (AttributeError, OSError):
        pass
    return fd


def md5_file(path: bytes, entry: Entry, cancel: threading.Event | None = None,
             progress: Callable[[int], None] | None = None, chunk: int = CHUNK) -> str:
    """md5 hex digest of one regular file; its length must be what the inventory said."""
    fd = open_checked(path, entry)
    h = hashlib.md5(usedforsecurity=False)
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    try:
        with os.fdopen(fd, "rb", buffering=0) as f:
            while True:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                try:
                    n = f.readinto(buf)
                except OSError as e:
                    raise os_error(path, e) from e
                if not n:
                    break
                h.update(view[:n])
                total += n
                if progress is not None:
                    progress(n)
    finally:
        view.release()
    if total != entry.size:
        raise SourceChanged(f"{display(path)} changed size while it was read")
    return h.hexdigest()


def run_bounded(items: Iterable[T], fn: Callable[[T, threading.Event], R], workers: int,
                on_result: Callable[[T, R], None], tick: Callable[[], None] | None = None,
                tick_every: float = 2.0) -> None:
    """Run ``fn(item, cancel)`` over ``items`` on ``workers`` threads, results in the caller.

    ``on_result`` and ``tick`` run in the calling thread only (so they may write state files
    without locks).  The first error cancels the rest and is re-raised once every running job
    has stopped; so is an exception raised in the caller while waiting (e.g. a signal).
    """
    cancel = threading.Event()
    pending: dict[Future, T] = {}
    it = iter(items)
    exhausted = False
    last_tick = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="froster-hash")
    try:
        while True:
            while not exhausted and len(pending) < 2 * max(1, workers):
                try:
                    item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending[pool.submit(fn, item, cancel)] = item
            if not pending:
                break
            done, _ = wait(list(pending), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                on_result(item, fut.result())
            if tick is not None and time.monotonic() - last_tick >= tick_every:
                tick()
                last_tick = time.monotonic()
    finally:
        cancel.set()
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
    if tick is not None:
        tick()


class HashStore:
    """Append-only record of finished hashes, so a stopped task does not re-read its data.

    One JSON line per file: its name, the stat stamp it had when hashed, and the md5.  A line
    whose stamp no longer matches the inventory is ignored, so a changed file is hashed again.
    Lines are flushed but not fsync'ed: losing the last few after a crash only costs a re-hash.
    """

    def __init__(self, path: Path):
        self.path = path

    @staticmethod
    def stamp(entry: Entry) -> list[int]:
        return [entry.size, entry.mtime_ns, entry.ctime_ns, entry.ino]

    def load(self) -> dict[bytes, tuple[list[int], str]]:
        out: dict[bytes, tuple[list[int], str]] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return out
        for line in data.splitlines():
            try:
                d = json.loads(line)
                out[os.fsencode(d["p"])] = (d["s"], d["m"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash
        return out

    def known(self, entries: Iterable[Entry]) -> dict[bytes, str]:
        """md5 of every entry whose stored stamp still matches it."""
        stored = self.load()
        out = {}
        for e in entries:
            got = stored.get(e.rel)
            if got and got[0] == self.stamp(e):
                out[e.rel] = got[1]
        return out

    def add_many(self, items: Iterable[tuple[Entry, str]]) -> None:
        lines = [json.dumps({"p": os.fsdecode(e.rel), "s": self.stamp(e), "m": md5},
                            ensure_ascii=True) + "\n" for e, md5 in items]
        if lines:
            with open(self.path, "a") as f:
                f.write("".join(lines))
