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


class StderrParser:
    """pwalk's stderr, line by line -> our errors-file lines (see the module docstring).

    Streaming, so a crawl with millions of problems does not hold them in memory.
    """

    def __init__(self) -> None:
        self.pending: bytes | None = None

    def feed(self, line: bytes) -> list[bytes]:
        line = line[:-1] if line.endswith(b"\n") else line
        if line.startswith(_PREFIXES) or (b"lstat: '" in line and b"rdepth=" in line):
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


def stderr_to_errors(data: bytes) -> list[bytes]:
    """All of a pwalk stderr at once (tests, small runs)."""
    parser = StderrParser()
    out: list[bytes] = []
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the final newline ends the last line; it is not an empty line
    for line in lines:
        out += parser.feed(line + b"\n")
    return out + parser.close()


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
    parser = StderrParser()
    tail_of_stderr: list[bytes] = []

    write_failed: list[OSError] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:  # splits on b"\n" only
                tail_of_stderr[:] = [line]
                for rec in parser.feed(line):
                    err.write(rec)
                    problems.errors += 1
            for rec in parser.close():
                err.write(rec)
                problems.errors += 1
        except OSError as e:
            write_failed.append(e)
            proc.kill()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
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
            out.write(block)
            rows, dirs = _count(block)
            counts.entries += rows
            counts.directories += dirs
            if progress is not None and time.monotonic() >= next_report:
                progress(base.entries + counts.entries, base.directories + counts.directories,
                         base.errors)
                next_report = time.monotonic() + 0.5
        if tail:  # a last line without newline: keep it, terminated
            out.write(tail + b"\n")
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
    counts.errors = problems.errors
    if rc != 0:
        raise ExternalCommandError(cmd, rc, b"".join(tail_of_stderr).decode("utf-8", "replace"))
    return counts
