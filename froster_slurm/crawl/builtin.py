"""The builtin crawl engine: pwalk's rows from pure Python, one process per core.

How it gets near pwalk's speed (figures: bench/bench_crawl.py, docs/crawl.md):
- One ``lstat`` per entry, which pwalk needs anyway (size, blocks, times), done as
  ``fstatat(dirfd, name)`` on a descriptor of the directory: the kernel resolves one name
  instead of the whole path again (10-15% on deep trees).  Each directory is opened once and
  listed from that descriptor (``os.scandir(fd)``); a path of PATH_MAX or more is opened piece
  by piece (``open_dir``), so depth has no limit.
- Rows are formatted with one ``bytes %`` per entry from a per-directory prefix (parent inode,
  depth and the quoted directory path are formatted once per directory), collected in a list
  and written in ~1 MB blocks.  Formatting is about half of the CPU time, lstat the other half.
- Parallelism comes from processes, not threads: the GIL makes threads slower than one on a
  warm local disk.  Threads inside each process (``threads``) only pay off where each ``lstat``
  waits on the network (NFS, Lustre, GPFS).

Work sharing: every walker (a thread of a worker process) walks depth-first from a private
stack.  When some walker is idle, the busy ones hand the older (shallower, so usually bigger)
half of their stack to a shared queue.  A shared "outstanding batches" count tells the last
walker to finish that the crawl is over.  Walkers ``pwrite`` their blocks straight into the
output at offsets reserved under a lock: no merge at the end, no copy through the parent (which
would take CPU from the walkers), no reliance on O_APPEND (not atomic on NFS).  Problems go to
the parent through a pipe and it writes the errors file.  Memory stays bounded: a walker holds
the pending subdirectories along its current path, never the tree.

Done better than pwalk (see docs/crawl.md): names keep their control bytes; an unreadable
directory still gets its row (pw_fcount 0, pw_dirsum 0) and an errors-file record; every
skipped or failed entry is reported instead of silently missing; below a root no symlink is
ever followed, even one swapped in for a directory mid-crawl.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import re
import stat
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # multiprocessing is imported only by the parallel Python walker
    import multiprocessing
    from multiprocessing.connection import Connection

from ..errors import PermanentError
from . import errorlog
from .pwalkcsv import ROW, quote

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_SUBDIR_FLAGS = _DIR_FLAGS | os.O_NOFOLLOW
S_IFMT = 0o170000
S_IFDIR = 0o040000
SNAPSHOT_NAMES = frozenset({b".snapshot", b".zfs"})
FLUSH_ROWS = 8192  # rows per block sent/written (~1.2 MB)
# A path at least this long is opened piece by piece (openat from the descriptor of a prefix):
# the kernel refuses a path of PATH_MAX (4096) bytes or more, the crawl must not.
LONG_PATH = 4000

# pwalk's row with the per-directory constant part pre-formatted: (ino, head, qname, qext,
# uid, gid, size, dev, blocks, nlink, mode, atime, mtime, ctime) where head is
# ',<parent-inode>,<depth>,"<quoted dir path>/'; files end in ",-1,0".
_FILE_ROW = b'%d%s%s","%s",%d,%d,%d,%d,%d,%d,"%07o",%d,%d,%d,-1,0\n'

Scandir = Callable[[int, bytes], Any]  # (descriptor of the directory, its path) -> listing


def scandir_fd(fd: int, path: bytes) -> Any:
    """The listing of an open directory; ``path`` is only for seams that want to know it."""
    return os.scandir(fd)
Progress = Callable[[int, int, int], None]  # (entries, directories, errors)


class OutputError(PermanentError):
    """Writing the crawl's own output failed (disk full, quota, parent gone).

    Not an ``OSError`` on purpose: the engine records OSErrors of the *crawled* tree as
    problems and carries on; a failure to write must stop the crawl instead.
    """


def _output_failed(e: OSError) -> OutputError:
    return OutputError(f"cannot write the crawl output: {e.strerror or e}")


@dataclass(frozen=True)
class CrawlOptions:
    """What to leave out.  Shared by the engine and the shard planner so both agree."""

    one_file_system: bool = False
    excludes: tuple[str, ...] = ()
    no_snapshots: bool = True

    def name_matcher(self) -> Callable[[bytes], Any] | None:
        """Patterns without ``/`` match a name; used for entries of every kind."""
        pats = [p for p in self.excludes if "/" not in p]
        return _compile(pats)

    def path_matcher(self) -> Callable[[bytes], Any] | None:
        """Patterns with ``/`` match the whole path as written in the output."""
        pats = [p for p in self.excludes if "/" in p]
        return _compile(pats)

    def to_json(self) -> dict[str, Any]:
        return {"one_file_system": self.one_file_system, "excludes": list(self.excludes),
                "no_snapshots": self.no_snapshots}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrawlOptions:
        return cls(bool(data["one_file_system"]), tuple(data["excludes"]),
                   bool(data["no_snapshots"]))


def _compile(patterns: list[str]) -> Callable[[bytes], Any] | None:
    if not patterns:
        return None
    regex = "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)
    return re.compile(os.fsencode(regex), re.DOTALL).match


@dataclass(slots=True)
class ScanItem:
    """One directory to read.

    ``depth`` is the directory-depth of its entries (0 for a crawl root's entries), ``st`` its
    own lstat (taken when its parent was read, as pwalk does), ``parent_inode`` 0 for a root.
    ``ancestors`` are the (dev, ino) of the directories above it, to refuse bind-mount loops.
    ``skip`` names subdirectories someone else crawls (a shard's shallow unit), else None.
    """

    path: bytes
    depth: int
    parent_inode: int
    st: os.stat_result
    root_dev: int
    ancestors: tuple[tuple[int, int], ...] = ()
    skip: frozenset[bytes] | None = None


@dataclass
class Counts:
    """Rows written, and records of the errors file: ``errors`` are problems (the crawl is
    incomplete), ``skipped`` are mount points left out on request (``--one-file-system``):
    reported, but the crawl is what was asked for."""

    entries: int = 0
    directories: int = 0
    errors: int = 0
    skipped: int = 0

    def add(self, other: Counts) -> None:
        self.entries += other.entries
        self.directories += other.directories
        self.errors += other.errors
        self.skipped += other.skipped

    def record(self, line: bytes) -> None:
        """Count one errors-file record under the right heading."""
        if errorlog.is_skip(line):
            self.skipped += 1
        else:
            self.errors += 1


def open_dir(path: bytes, flags: int) -> int:
    """``os.open(path, flags)`` for a path of any length.

    A path of PATH_MAX bytes or more is opened piece by piece: each prefix of under
    ``LONG_PATH`` bytes (cut at a ``/``) relative to the descriptor of the one before, so
    depth has no limit.  ``flags`` apply to the last component, as with one ``open``.
    """
    if len(path) < LONG_PATH:
        return os.open(path, flags)
    fd: int | None = None
    start = 0
    try:
        while len(path) - start >= LONG_PATH:
            cut = path.rfind(b"/", start + 1, start + LONG_PATH)
            if cut < 0:
                raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)
            nfd = os.open(path[start:cut], _DIR_FLAGS, dir_fd=fd)
            if fd is not None:
                os.close(fd)
            fd = nfd
            start = cut + 1
        return os.open(path[start:], flags, dir_fd=fd)
    finally:
        if fd is not None:
            os.close(fd)


class Walker:
    """Reads one directory at a time: writes its rows, returns its subdirectories to read.

    ``emit_rows(block, n_entries, n_dirs)`` and ``emit_error(line)`` are where output goes
    (a file, or the pipe to the parent).  ``scandir(fd, path)`` is the seam tests use to make
    a file vanish between listing and lstat, deterministically.
    """

    def __init__(self, options: CrawlOptions, emit_rows: Callable[[bytes, int, int], None],
                 emit_error: Callable[[bytes], None], scandir: Scandir = scandir_fd):
        self.options = options
        self.emit_rows = emit_rows
        self.emit_error = emit_error
        self.scandir = scandir
        self.match_name = options.name_matcher()
        self.match_path = options.path_matcher()
        self.buf: list[bytes] = []
        self.buf_dirs = 0

    def flush(self) -> None:
        if self.buf:
            rows = self.buf
            self.buf = []
            dirs, self.buf_dirs = self.buf_dirs, 0
            self.emit_rows(b"".join(rows), len(rows), dirs)

    def error(self, kind: str, err: OSError | str, path: bytes) -> None:
        if isinstance(err, OSError):
            self.emit_error(errorlog.os_error_line(kind, err, path))
        else:
            self.emit_error(errorlog.error_line(kind, err, path))

    def _dir_row(self, item: ScanItem, fcount: int, dirsum: int) -> None:
        st = item.st
        mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime = st
        # pwalk never gives a directory (or a root) an extension: "v1.2/" has "".
        self.buf.append(ROW % (
            ino, item.parent_inode, item.depth - 1, quote(item.path), b"", uid, gid, size,
            dev, st.st_blocks, nlink, mode, atime, mtime, ctime, fcount, dirsum))
        self.buf_dirs += 1

    def scan(self, item: ScanItem) -> list[ScanItem]:
        """Read ``item``: one row per entry, then its own row with pw_fcount/pw_dirsum."""
        path = item.path
        # The directory is opened once and listed from that descriptor (``scandir(fd)``);
        # each entry is lstat'ed relative to it (fstatat): the kernel resolves one name instead
        # of the whole path again, and no path length limit applies below the open.  Below the
        # root, O_NOFOLLOW: a directory swapped for a symlink since its parent was read is
        # reported, never followed.
        try:
            fd = open_dir(path, _DIR_FLAGS if item.depth == 0 else _SUBDIR_FLAGS)
            try:
                it = self.scandir(fd, path)
            except BaseException:
                os.close(fd)
                raise
        except OSError as e:
            if item.depth and e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(path):
                self.error(errorlog.VANISHED, "replaced by a symlink, not followed", path)
                return []
            if isinstance(e, (FileNotFoundError, NotADirectoryError)):
                self.error(errorlog.VANISHED, e, path)  # gone since its parent was read
                return []
            self.error(errorlog.UNREADABLE, e, path)
            self._dir_row(item, 0, 0)  # pwalk writes no row at all; we keep it visible
            return []
        try:
            return self._read(item, it)
        finally:
            os.close(fd)

    def _read(self, item: ScanItem, it: Any) -> list[ScanItem]:
        path = item.path
        fsencode = os.fsencode
        buf = self.buf
        append = buf.append
        ino = item.st.st_ino
        depth = item.depth
        pre = path + b"/"
        head = b',%d,%d,"%s' % (ino, depth, quote(pre))
        onefs = self.options.one_file_system
        root_dev = item.root_dev
        nosnap = self.options.no_snapshots
        match_name = self.match_name
        match_path = self.match_path
        skip = item.skip
        ancestors = item.ancestors + ((item.st.st_dev, ino),)
        subdirs: list[ScanItem] = []
        count = 0
        total = 0
        with it:
            try:
                for entry in it:
                    count += 1
                    # scandir(fd) names are str (surrogate-escaped): back to the exact bytes.
                    name = fsencode(entry.name)
                    try:
                        st = entry.stat(follow_symlinks=False)  # fstatat(fd, name), cached
                    except (FileNotFoundError, NotADirectoryError) as e:
                        self.error(errorlog.VANISHED, e, pre + name)
                        continue
                    except OSError as e:
                        self.error(errorlog.LSTAT, e, pre + name)
                        continue
                    mode, eino, dev, nlink, uid, gid, size, atime, mtime, ctime = st
                    if onefs and dev != root_dev:
                        self.error(errorlog.OTHER_FS, "not crossed (--one-file-system)",
                                   pre + name)
                        continue
                    total += size
                    if match_name is not None and match_name(name):
                        continue
                    if match_path is not None and match_path(pre + name):
                        continue
                    if mode & S_IFMT == S_IFDIR:
                        if nosnap and name in SNAPSHOT_NAMES:
                            continue
                        if skip is not None and name in skip:
                            continue
                        if (dev, eino) in ancestors:
                            self.error(errorlog.LOOP, "same directory as an ancestor",
                                       pre + name)
                            continue
                        subdirs.append(ScanItem(pre + name, depth + 1, ino, st, root_dev,
                                                ancestors))
                        continue
                    qname = name.replace(b'"', b'""') if b'"' in name else name
                    dot = qname.rfind(b".")
                    append(_FILE_ROW % (
                        eino, head, qname, qname[dot + 1:] if dot > 0 else b"", uid, gid,
                        size, dev, st.st_blocks, nlink, mode, atime, mtime, ctime))
                    if len(buf) >= FLUSH_ROWS:
                        self.flush()
                        buf = self.buf
                        append = buf.append
            except OSError as e:  # the listing itself broke off (EIO, stale NFS handle...)
                self.error(errorlog.READDIR, e, path)
        self._dir_row(item, count, total)
        if len(self.buf) >= FLUSH_ROWS:
            self.flush()
        return subdirs


def _is_link(path: bytes) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# One walker in this process (workers=1, threads=1): no pipes, no pickling.


def walk_inline(items: Iterable[ScanItem], out: BinaryIO, err: BinaryIO, options: CrawlOptions,
                progress: Progress | None = None, scandir: Scandir = scandir_fd,
                progress_every: float = 0.5) -> Counts:
    counts = Counts()

    def emit_rows(block: bytes, n: int, dirs: int) -> None:
        try:
            out.write(block)
        except OSError as e:
            raise _output_failed(e) from e
        counts.entries += n
        counts.directories += dirs

    def emit_error(line: bytes) -> None:
        try:
            err.write(line)
        except OSError as e:
            raise _output_failed(e) from e
        counts.record(line)

    walker = Walker(options, emit_rows, emit_error, scandir)
    stack = list(items)
    stack.reverse()
    next_report = time.monotonic() + progress_every
    while stack:
        stack.extend(walker.scan(stack.pop()))
        if progress is not None and time.monotonic() >= next_report:
            walker.flush()
            progress(counts.entries, counts.directories, counts.errors)
            next_report = time.monotonic() + progress_every
    walker.flush()
    return counts


# ---------------------------------------------------------------------------------------------
# Many walkers: `processes` worker processes x `threads` walker threads each.

_ERR, _DONE, _CRASH, _FAILED = b"E", b"D", b"X", b"F"


@dataclass
class _Shared:
    """Work-sharing state, created before the workers fork."""

    queue: Any
    lock: Any
    outstanding: Any  # batches put on the queue and not yet finished
    queued: Any  # batches on the queue not yet taken
    idle: Any  # walkers waiting on the queue
    walkers: int
    out_fd: int  # the output, inherited: workers pwrite blocks at offsets reserved under lock
    out_pos: Any  # next free offset in the output
    entries: Any  # rows written (for progress and the summary)
    directories: Any


def _walker_loop(shared: _Shared, walker: Walker) -> None:
    q, lock = shared.queue, shared.lock
    outstanding, queued, idle = shared.outstanding, shared.queued, shared.idle
    while True:
        with lock:
            idle.value += 1
        batch = q.get()
        with lock:
            idle.value -= 1
            if batch is not None:
                queued.value -= 1
        if batch is None:
            return
        stack: list[ScanItem] = batch
        while stack:
            stack.extend(walker.scan(stack.pop()))
            if len(stack) > 1 and idle.value > queued.value:
                k = (len(stack) + 1) // 2
                give = stack[:k]
                del stack[:k]
                with lock:
                    outstanding.value += 1
                    queued.value += 1
                q.put(give)
        walker.flush()
        with lock:
            outstanding.value -= 1
            finished = outstanding.value == 0
        if finished:
            for _ in range(shared.walkers):
                q.put(None)


def _worker_main(conn: Connection, shared: _Shared, options: CrawlOptions, threads: int,
                 scandir: Scandir) -> None:
    send_lock = threading.Lock()
    lock, fd, pos = shared.lock, shared.out_fd, shared.out_pos
    entries, directories = shared.entries, shared.directories

    def send(msg: bytes) -> None:
        try:
            with send_lock:
                conn.send_bytes(msg)
        except OSError as e:
            raise _output_failed(e) from e

    def emit_rows(block: bytes, n: int, dirs: int) -> None:
        # Reserve a disjoint byte range, then write it without the lock.  pwrite at distinct
        # offsets needs no O_APPEND (which NFS does not make atomic) and no copy through the
        # parent, which on 2 cores would take CPU from the walkers.
        with lock:
            offset = pos.value
            pos.value += len(block)
            entries.value += n
            directories.value += dirs
        view = memoryview(block)
        try:
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as e:
            raise _output_failed(e) from e

    def emit_error(line: bytes) -> None:
        send(_ERR + line)

    crashed: list[str] = []

    def run() -> None:
        try:
            _walker_loop(shared, Walker(options, emit_rows, emit_error, scandir))
        except OutputError as e:
            crashed.append(str(e))
            with contextlib.suppress(OSError, OutputError):
                send(_FAILED + str(e).encode("utf-8", "replace"))
        except BaseException:  # a bug: report it, the parent stops everyone
            crashed.append(traceback.format_exc())
            with contextlib.suppress(OSError, OutputError):
                send(_CRASH + crashed[-1].encode("utf-8", "replace"))

    pool = [threading.Thread(target=run, daemon=True) for _ in range(threads - 1)]
    for t in pool:
        t.start()
    run()
    for t in pool:
        t.join()
    if not crashed:
        send(_DONE)
    conn.close()


def _context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it: workers start in milliseconds and inherit the seams."""
    import multiprocessing
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def walk_parallel(items: Iterable[ScanItem], out: BinaryIO, err: BinaryIO,
                  options: CrawlOptions, processes: int, threads: int = 1,
                  progress: Progress | None = None, scandir: Scandir = scandir_fd,
                  progress_every: float = 0.5) -> Counts:
    """Crawl ``items`` with ``processes`` x ``threads`` walkers; this process writes."""
    import multiprocessing
    from multiprocessing.connection import wait

    items = list(items)
    counts = Counts()
    if not items:
        return counts
    ctx = _context()
    walkers = processes * threads
    out.flush()
    shared = _Shared(queue=ctx.Queue(), lock=ctx.Lock(), outstanding=ctx.RawValue("q", 0),
                     queued=ctx.RawValue("q", 0), idle=ctx.RawValue("q", 0), walkers=walkers,
                     out_fd=out.fileno(), out_pos=ctx.RawValue("q", out.tell()),
                     entries=ctx.RawValue("q", 0), directories=ctx.RawValue("q", 0))
    shared.outstanding.value = len(items)
    shared.queued.value = len(items)
    procs = []
    conns: dict[Connection, multiprocessing.process.BaseProcess] = {}
    try:
        for _ in range(processes):
            parent_end, child_end = ctx.Pipe(duplex=False)
            # daemon: never outlive this process; impossible when we are a daemon ourselves.
            p = ctx.Process(target=_worker_main,
                            args=(child_end, shared, options, threads, scandir),
                            daemon=not multiprocessing.current_process().daemon)
            p.start()
            child_end.close()
            procs.append(p)
            conns[parent_end] = p
        for item in items:  # after the forks: no fork while this process has a feeder thread
            shared.queue.put([item])
        done: set[Connection] = set()
        next_report = time.monotonic() + progress_every
        while conns:
            for conn in wait(list(conns), timeout=progress_every):
                try:
                    msg = conn.recv_bytes()
                except EOFError:
                    proc = conns.pop(conn)
                    if conn not in done:
                        proc.join(5)
                        raise PermanentError(
                            f"crawl worker {proc.pid} died (exit code {proc.exitcode}); "
                            "the output is incomplete") from None
                    continue
                tag = msg[:1]
                if tag == _ERR:
                    try:
                        err.write(memoryview(msg)[1:])
                    except OSError as e:
                        raise _output_failed(e) from e
                    counts.record(msg[1:])
                elif tag == _DONE:
                    done.add(conn)
                elif tag == _CRASH:
                    raise RuntimeError("crawl worker failed:\n" + msg[1:].decode())
                elif tag == _FAILED:
                    raise OutputError(msg[1:].decode())
            if progress is not None and time.monotonic() >= next_report:
                progress(shared.entries.value, shared.directories.value, counts.errors)
                next_report = time.monotonic() + progress_every
        for p in procs:
            p.join()
        counts.entries = shared.entries.value
        counts.directories = shared.directories.value
        out.seek(shared.out_pos.value)  # the file object's position: after the last block
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        shared.queue.cancel_join_thread()  # on failure nobody reads what is left
        shared.queue.close()
    return counts


def walk(items: Iterable[ScanItem], out: BinaryIO, err: BinaryIO, options: CrawlOptions,
         processes: int = 1, threads: int = 1, progress: Progress | None = None,
         scandir: Scandir = scandir_fd) -> Counts:
    """Crawl with one walker inline, or with worker processes when more are asked for."""
    if processes <= 1 and threads <= 1:
        return walk_inline(items, out, err, options, progress, scandir)
    return walk_parallel(items, out, err, options, max(1, processes), max(1, threads),
                         progress, scandir)


def default_workers() -> int:
    """CPUs this process may run on (a Slurm allocation's cpuset, not the whole node)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
