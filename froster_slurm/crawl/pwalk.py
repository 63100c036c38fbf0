"""Adapter for the real ``pwalk`` binary (filesystem-reporting-tools), when a site has it.

pwalk writes the rows; we add the header, count rows while streaming them to the output and
turn its stderr into our errors file, because pwalk itself exits 0 whatever happened and only
its stderr says a crawl is incomplete.  Its stderr lines, by version::

    Locked Dir: <path>                              opendir failed: NO row for it
    ...lstat: '<strerror>' <path>                   3.x: lstat failed: no row
    msg=lstat error,threadID=..,rdepth=..,file=<path> 2.6.x
    Bad File: <path>                                control bytes deleted from the row's path

A path containing a newline makes a message span lines: a line that starts with none of the
known prefixes continues the previous message.

pwalk takes one root and no name globs, and reads a leading ``-`` as an option; ``crawl``
picks the builtin engine in those cases (``--engine auto``) or refuses (``--engine pwalk``).
``--one-file-system`` needs pwalk 3.x (2.6 ignores unknown flags).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from ..errors import ExternalCommandError, NotFoundError
from . import errorlog
from .builtin import Counts, CrawlOptions, OutputError

Progress = Callable[[int, int, int], None]

_LSTAT3 = re.compile(rb"lstat: '([^']*)' (.*)", re.DOTALL)
_LSTAT2 = re.compile(rb"msg=lstat error,.*?,file=(.*)", re.DOTALL)
_PREFIXES = (b"Locked Dir: ", b"Bad File: ", b"threadID=", b"msg=", b"lstat: ")
# Not a crawl problem: pwalk says it is not root (so it cannot read everything) but carries on;
# whatever it then cannot read is reported line by line anyway.
_IGNORED = (b"unable to setuid root",)


def find_pwalk() -> str | None:
    return shutil.which("pwalk")


def unsupported(roots: list[bytes], options: CrawlOptions) -> str:
    """Why pwalk cannot do this crawl exactly as asked ("" when it can)."""
    if options.excludes:
        return "--exclude takes globs; pwalk only takes a file of directory paths"
    if any(r.startswith(b"-") for r in roots):
        return "pwalk reads a root starting with '-' as an option"
    return ""


def under(path: bytes, root: bytes) -> bool:
    """Whether ``path`` is ``root`` or below it, as pwalk writes paths (root as typed)."""
    return path == root or path.startswith(root.rstrip(b"/") + b"/")


def _message_path(line: bytes) -> bytes | None:
    """The path a known pwalk message line names (its first line), else None."""
    for prefix in (b"Locked Dir: ", b"Bad File: "):
        if line.startswith(prefix):
            return line[len(prefix):]
    if m := _LSTAT3.search(line):
        return m.group(2)
    if m := _LSTAT2.search(line):
        return m.group(1)
    return None


class StderrParser:
    """pwalk's stderr, line by line -> our errors-file lines (see the module docstring).

    Streaming, so a crawl with millions of problems does not hold them in memory.  With
    ``root`` (what pwalk was given, as typed) only paths under it become records: pwalk writes
    paths raw, so a name holding ``\nLocked Dir: x`` looks like a second message.  A message
    line whose path is not under the root continues the one before (the name had a newline),
    and pwalk's second ``Bad File:`` that names only the extension of the file before is
    dropped.  This is best-effort: pwalk's stderr cannot be parsed exactly.
    """

    def __init__(self, root: bytes | None = None) -> None:
        self.root = root
        self.pending: bytes | None = None
        self.echo: list[bytes] = []  # lines still expected of an extension's "Bad File:" echo

    def _starts_message(self, line: bytes) -> bool:
        if not (line.startswith(_PREFIXES) or (b"lstat: '" in line and b"rdepth=" in line)):
            return False
        if self.root is None:
            return True
        path = _message_path(line)
        return path is None or under(path, self.root) or self.pending is None

    def _is_extension_echo(self, line: bytes) -> bool:
        """pwalk's csv_escape logs the file's extension too when it holds control bytes."""
        if self.root is None or self.pending is None or not line.startswith(b"Bad File: "):
            return False
        if not self.pending.startswith(b"Bad File: "):
            return False
        name = self.pending[self.pending.rfind(b"/") + 1:]
        dot = name.rfind(b".")
        if dot <= 0:
            return False
        ext_lines = name[dot + 1:].split(b"\n")
        if line[len(b"Bad File: "):] != ext_lines[0] or under(line[10:], self.root):
            return False
        self.echo = ext_lines[1:]
        return True

    def feed(self, line: bytes) -> list[bytes]:
        line = line[:-1] if line.endswith(b"\n") else line
        if self.echo:
            if line == self.echo[0]:
                self.echo.pop(0)
                return []
            self.echo = []
        if self._is_extension_echo(line):
            return []
        if self._starts_message(line):
            done, self.pending = self.pending, line
        elif line.startswith(_IGNORED):
            done, self.pending = self.pending, None
        elif self.pending is not None:
            self.pending += b"\n" + line  # a path with a newline in it
            return []
        elif line:
            return [errorlog.error_line(errorlog.PWALK, "", line)]
        else:
            return []
        return [] if done is None else [_convert(done)]

    def close(self) -> list[bytes]:
        done, self.pending = self.pending, None
        return [] if done is None else [_convert(done)]


def _convert(msg: bytes) -> bytes:
    if msg.startswith(b"Locked Dir: "):
        return errorlog.error_line(errorlog.UNREADABLE, "opendir failed (pwalk wrote no row "
                                   "for it)", msg[len(b"Locked Dir: "):])
    if msg.startswith(b"Bad File: "):
        return errorlog.error_line(errorlog.NAME_MANGLED, "control bytes deleted from the "
                                   "name by pwalk", msg[len(b"Bad File: "):])
    if m := _LSTAT3.search(msg):
        reason = m.group(1).decode("utf-8", "replace")
        kind = errorlog.VANISHED if reason == os.strerror(errno.ENOENT) else errorlog.LSTAT
        return errorlog.error_line(kind, reason, m.group(2))
    if m := _LSTAT2.search(msg):
        return errorlog.error_line(errorlog.LSTAT, "lstat failed", m.group(1))
    return errorlog.error_line(errorlog.PWALK, "", msg)


def stderr_to_errors(data: bytes, root: bytes | None = None) -> list[bytes]:
    """All of a pwalk stderr at once (tests, small runs)."""
    parser = StderrParser(root)
    out: list[bytes] = []
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the final newline ends the last line; it is not an empty line
    for line in lines:
        out += parser.feed(line + b"\n")
    return out + parser.close()


def _snapshot_filter(root: bytes) -> Callable[[bytes], bytes]:
    """Drops the rows of ``.zfs`` directories and everything below them from pwalk's output.

    pwalk's ``--NoSnap`` skips only ``.snapshot``; the builtin engine skips ``.zfs`` too, and
    both engines must give the same rows.  pwalk still walks ``.zfs`` (it is hidden, listed
    only with ``snapdir=visible``), we leave its rows out.  A row's head is
    ``ino,pino,depth,"PATH","EXT"`` and EXT never holds ``/``, so ``/.zfs/`` in the head lies in
    the path; a directory row ending ``/.zfs`` has EXT ``""`` (pwalk gives directories none).
    """
    qroot = root.replace(b'"', b'""')

    def keep(line: bytes) -> bool:
        head, *tail = line.rsplit(b",", 12)
        rel = head.split(b",", 3)[3][1 + len(qroot):]
        if b"/.zfs/" in rel:
            return False
        return not (rel.endswith(b'/.zfs",""') and tail[-2] != b"-1")

    def apply(block: bytes) -> bytes:
        if b"/.zfs" not in block:
            return block
        lines = block.split(b"\n")
        return b"".join(line + b"\n" for line in lines[:-1] if keep(line))

    return apply


def _in_snapshot(path: bytes, root: bytes) -> bool:
    rel = path[len(root):]
    return b"/.zfs/" in rel or rel.endswith(b"/.zfs")


def mount_points_below(root: bytes, root_dev: int, options: CrawlOptions) -> list[bytes]:
    """Mount points the builtin engine would meet (and not cross) under ``root`` with ``-x``.

    pwalk says nothing of the mount points ``--one-file-system`` leaves out; the builtin
    engine reports each.  Read off ``/proc/self/mountinfo``: a mount below the root whose
    parent directory is on the root's file system; paths are rewritten to the root as typed.
    """
    try:
        real = os.fsencode(os.path.realpath(root))
        with open("/proc/self/mountinfo", "rb") as f:
            table = f.read()
    except OSError:
        return []
    found = set()
    base = real.rstrip(b"/") + b"/"
    for line in table.split(b"\n"):
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        point = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4])
        if not point.startswith(base):
            continue
        path = root.rstrip(b"/") + b"/" + point[len(base):]
        if options.no_snapshots and (
                any(part in (b".snapshot", b".zfs") for part in path[len(root):].split(b"/"))):
            continue
        try:
            if (os.lstat(path).st_dev != root_dev
                    and os.lstat(os.path.dirname(path)).st_dev == root_dev):
                found.add(path)
        except OSError:
            continue
    return sorted(found)


def _count(block: bytes) -> tuple[int, int]:
    """(rows, directories) in complete lines: pwalk names never hold a newline, and a file
    row (only a file row) ends in ``,-1,0``."""
    rows = block.count(b"\n")
    return rows, rows - block.count(b",-1,0\n")


def run_pwalk(exe: str, root: bytes, out: BinaryIO, err: BinaryIO, options: CrawlOptions,
              progress: Progress | None = None, base: Counts | None = None) -> Counts:
    """Crawl ``root`` with pwalk, appending its rows to ``out`` and problems to ``err``."""
    cmd: list[str | bytes] = [exe]
    if options.no_snapshots:
        cmd.append("--NoSnap")  # pwalk skips only ".snapshot"
    if options.one_file_system:
        cmd.append("--one-file-system")
    cmd.append(root)
    counts = Counts()
    base = base or Counts()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as e:
        raise NotFoundError(f"pwalk not found: {exe}") from e
    problems = Counts()
    parser = StderrParser(root)
    snap = options.no_snapshots

    def write_record(rec: bytes) -> None:
        path = errorlog.record_path(rec)
        if snap and _in_snapshot(path, root):
            return
        err.write(rec)
        problems.record(rec)

    tail_of_stderr: list[bytes] = []

    write_failed: list[OSError] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:  # splits on b"\n" only
                tail_of_stderr[:] = [line]
                for rec in parser.feed(line):
                    write_record(rec)
            for rec in parser.close():
                write_record(rec)
        except OSError as e:
            write_failed.append(e)
            proc.kill()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    keep = _snapshot_filter(root) if snap else (lambda block: block)
    tail = b""
    next_report = time.monotonic() + 0.5
    assert proc.stdout is not None
    try:
        while True:
            chunk = proc.stdout.read1(1 << 20)
            if not chunk:
                break
            cut = chunk.rfind(b"\n") + 1
            block, rest = tail + chunk[:cut], chunk[cut:]
            if not cut:
                tail += chunk
                continue
            tail = rest
            block = keep(block)
            out.write(block)
            rows, dirs = _count(block)
            counts.entries += rows
            counts.directories += dirs
            if progress is not None and time.monotonic() >= next_report:
                progress(base.entries + counts.entries, base.directories + counts.directories,
                         base.errors)
                next_report = time.monotonic() + 0.5
        if tail and (block := keep(tail + b"\n")):  # a last line without newline: terminated
            out.write(block)
            counts.entries += 1
            counts.directories += 0 if tail.endswith(b",-1,0") else 1
    except OSError as e:
        write_failed.append(e)
        proc.kill()
    rc = proc.wait()
    reader.join()
    if write_failed:
        e = write_failed[0]
        raise OutputError(f"cannot write the crawl output: {e.strerror or e}") from e
    if rc != 0:
        raise ExternalCommandError(cmd, rc, b"".join(tail_of_stderr).decode("utf-8", "replace"))
    if options.one_file_system:
        for path in mount_points_below(root, os.lstat(root).st_dev, options):
            write_record(errorlog.error_line(errorlog.OTHER_FS,
                                             "not crossed (--one-file-system)", path))
    counts.errors, counts.skipped = problems.errors, problems.skipped
    return counts
