"""Feed crawl CSVs to DuckDB through FIFOs, as UTF-8 that maps back to the exact bytes.

Why this exists: pwalk writes names as raw bytes, so a crawl is not UTF-8.  DuckDB's CSV reader
takes UTF-8, UTF-16 or "latin-1", and its latin-1 decoder (DuckDB 2.0) REFUSES the bytes
0x80-0x9F ("File is not latin-1 encoded") -- bytes that every UTF-8 name outside Latin-1 holds
(``€`` is E2 82 AC, most CJK names have them).  So each feeder reads the raw bytes and writes
them re-encoded as if they were Latin-1: byte 0xNN becomes the character U+00NN, in UTF-8.  That is
lossless and reversible (``text.encode("latin-1")`` gives the bytes back), unlike converting
the names for display.  ASCII chunks are passed through untouched.

Several feeders run as separate processes (the re-encoding holds the GIL), each writing one FIFO
that DuckDB reads as it is written.  A big file is cut into byte ranges at newlines.  A newline
inside a quoted name is not a row boundary, and a cut there would split a row: each feeder counts
the ``"`` in its range, and since quotes inside a field come in pairs (``""``) a range between
two true row boundaries always holds an even number.  An odd count makes the feeder exit with
``EXIT_UNSAFE_CUT`` and the caller reads again without cutting.

A ``dirs`` piece (the fast path, ``rank_inode``) streams only the rows ``grep`` keeps of a whole
file -- those not ending in ``,-1,0``, i.e. directory rows, headers left out -- and tallies
two counts the caller checks: the lines of the raw files (``wc -l``) and the lines fed.

Feeder protocol: ``python -m froster_slurm.rank.feed SPEC OUT``; SPEC holds NUL-separated
records ``kind, start, end, split, path``.  Exit 0: all written (and, for ``dirs`` pieces, the
tally ``raw_lines fed_lines`` written to ``OUT.tally``); ``EXIT_UNSAFE_CUT``; 65: the data is
malformed (one line on stderr); anything else: failure (e.g. DuckDB stopped reading).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..util.paths import display
from .inputs import DIRS, GZIP, PWALK_FIELDS, Piece

EXIT_UNSAFE_CUT = 3
EXIT_DATA = 65
CHUNK = 1 << 20
# Directory rows are those NOT ending in ",-1,0" (pwalk: files have pw_fcount -1, pw_dirsum 0).
# grep finds them at ~1.5 GB/s, 3x faster than Python reading every line; whatever else it keeps
# (a file row with another ending, a line of a multi-line name) is caught by rank_inode's checks.
# -h: no file name prefixes.  One pattern only: a second one (to drop headers) makes grep 2x
# slower, so the feeder drops header lines itself.
GREP_DIRS = ["grep", "-a", "-h", "-v", "-e", ",-1,0$", "--"]
HEADER_LINE = (",".join(PWALK_FIELDS[:3]) + ',"' + '","'.join(PWALK_FIELDS[3:5]) + '",'
               + ",".join(PWALK_FIELDS[5:11]) + ',"' + PWALK_FIELDS[11] + '",'
               + ",".join(PWALK_FIELDS[12:]) + "\n").encode()
DIRS_BATCH = 200  # files per grep/wc call (the argument list stays far below ARG_MAX)


# --- the feeder process -------------------------------------------------------------------------

def reencode(chunk: bytes) -> bytes:
    """Raw bytes to UTF-8 text whose characters are those bytes (Latin-1 view); ASCII as is."""
    return chunk if chunk.isascii() else chunk.decode("latin-1").encode("utf-8")


class BadData(Exception):
    """Malformed crawl data found while feeding (exit 65)."""


class UnsafeCut(Exception):
    """A cut fell inside a quoted name (exit EXIT_UNSAFE_CUT)."""


def _open_fifo(path: str) -> int:
    """Open the FIFO for writing once DuckDB opens it; give up if our parent is gone.

    A plain blocking open would wait forever when the reader never comes (DuckDB stopped on an
    error first), leaving an orphan; polling with O_NONBLOCK lets us notice.
    """
    parent = os.getppid()
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            if os.getppid() != parent:
                raise SystemExit(1) from None
            time.sleep(0.002)
            continue
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        with contextlib.suppress(OSError, AttributeError):
            # a 1 MiB pipe instead of 64 KiB: 16x fewer wake-ups of feeder and DuckDB
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, CHUNK)
        return fd


def _feed_plain(out, piece: Piece) -> None:
    quotes = 0
    with open(piece.path, "rb", buffering=0) as f:
        f.seek(piece.start)
        left = piece.end - piece.start
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise BadData(f"{display(piece.path)}: file shrank while being read")
            left -= len(chunk)
            quotes += chunk.count(b'"')
            out.write(reencode(chunk))
    if quotes % 2:
        if piece.split:
            raise UnsafeCut(display(piece.path))
        raise BadData(f"{display(piece.path)}: unbalanced quotes (a name is not closed)")


def _feed_gzip(out, piece: Piece) -> None:
    quotes = 0
    last = b"\n"
    name = display(piece.path)
    try:
        with gzip.open(piece.path, "rb") as f:
            first = f.readline(1 << 20)
            if first and not first.startswith(b"inode,"):
                quotes += first.count(b'"')
                out.write(reencode(first))
                last = first[-1:]
            while chunk := f.read(CHUNK):
                quotes += chunk.count(b'"')
                out.write(reencode(chunk))
                last = chunk[-1:]
    except (OSError, EOFError) as e:
        raise BadData(f"{name}: cannot decompress: {e}") from e
    if last != b"\n":
        raise BadData(f"{name}: the last line has no newline: the crawl file was cut off")
    if quotes % 2:
        raise BadData(f"{name}: unbalanced quotes (a name is not closed)")


def _wc_total(output: bytes, files: int) -> int:
    """The line count from wc's output: its only line for one file, else its last ("N total")
    -- the lines before it may hold file names with newlines."""
    lines = output.rstrip(b"\n").split(b"\n")
    return int((lines[0] if files == 1 else lines[-1]).split()[0])


def _feed_dirs(out, paths: Sequence[bytes]) -> tuple[int, int]:
    """Stream the rows grep keeps of whole files, header lines dropped; return (lines of the
    files, lines fed).  ``wc -l`` counts meanwhile, in its own process.
    One grep and one wc per batch of files, so a thousand small shards cost a few processes,
    not two thousand."""
    env = {"LC_ALL": "C", "PATH": os.environ.get("PATH", os.defpath)}  # bytes, not characters
    wc = subprocess.Popen(["wc", "-l", "--", *paths], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, env=env)
    grep = subprocess.Popen([*GREP_DIRS, *paths], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, env=env)
    fed = 0
    partial = b""  # the start of a line whose end is in the next block
    try:
        while block := grep.stdout.read(CHUNK):
            data = partial + block
            cut = data.rfind(b"\n") + 1
            # whole lines only, so no header is split; a header's bytes cannot occur inside a
            # row (quoted fields double every '"', the others are numbers), so a plain replace
            # removes exactly the header lines, several in a row too
            lines, partial = data[:cut].replace(HEADER_LINE, b""), data[cut:]
            fed += lines.count(b"\n")
            out.write(reencode(lines))
        if partial:  # grep ends every line it prints with a newline
            raise OSError(errno.EIO, "grep output ended inside a line", paths[0])
    finally:
        grep.stdout.close()
        code = grep.wait()
        raw, _ = wc.communicate()
    if code > 1 or wc.returncode:
        raise OSError(errno.EIO, f"grep exited {code}, wc {wc.returncode}", paths[0])
    return _wc_total(raw, len(paths)), fed


def read_spec(path: str | os.PathLike) -> list[Piece]:
    data = Path(path).read_bytes().split(b"\0")
    return [Piece(data[i + 4], data[i].decode(), int(data[i + 1]), int(data[i + 2]),
                  data[i + 3] == b"1") for i in range(0, len(data) - 4, 5)]


def write_spec(path: str | os.PathLike, pieces: Sequence[Piece]) -> None:
    Path(path).write_bytes(b"".join(
        b"%s\0%d\0%d\0%d\0%s\0" % (p.kind.encode(), p.start, p.end, p.split, p.path)
        for p in pieces))


def feeder_main(argv: Sequence[str]) -> int:
    """Stream every piece of SPEC into OUT (see module docstring for the exit codes)."""
    spec, dest = argv
    pieces = read_spec(spec)
    raw = fed = 0
    try:
        fd = _open_fifo(dest)
        with open(fd, "wb", buffering=CHUNK) as out:
            dirs = [p.path for p in pieces if p.kind == DIRS]
            for i in range(0, len(dirs), DIRS_BATCH):
                r, f = _feed_dirs(out, dirs[i:i + DIRS_BATCH])
                raw, fed = raw + r, fed + f
            for piece in pieces:
                if piece.kind != DIRS:
                    (_feed_gzip if piece.kind == GZIP else _feed_plain)(out, piece)
        if any(p.kind == DIRS for p in pieces):
            Path(dest + ".tally").write_text(f"{raw} {fed}\n")
    except UnsafeCut as e:
        print(f"cut inside a quoted name in {e}", file=sys.stderr)
        return EXIT_UNSAFE_CUT
    except BadData as e:
        print(e, file=sys.stderr)
        return EXIT_DATA
    except BrokenPipeError:
        return 1  # the reader stopped (DuckDB failed); the caller reports why
    except OSError as e:  # a crawl file vanished or became unreadable meanwhile
        print(f"{display(os.fsencode(e.filename or ''))}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


# --- the caller's side --------------------------------------------------------------------------

@dataclass(frozen=True)
class FeedOutcome:
    """How the feeders ended: all fine, a cut to redo without cutting, or a data error."""

    ok: bool
    unsafe_cut: bool = False
    error: str = ""


class Feed:
    """Start one feeder per piece list; ``paths`` are the FIFOs DuckDB reads (while the
    feeders run: the data never touches the disk).

    Use as a context manager: leaving it stops feeders still running (by their pid) and
    removes the FIFOs.  Call ``outcome()`` once DuckDB has finished reading.
    """

    def __init__(self, plan: Sequence[Sequence[Piece]], workdir: str | os.PathLike,
                 tag: str = ""):
        self.workdir = Path(workdir)
        self.paths: list[str] = []
        self._procs: list[tuple[subprocess.Popen, Path]] = []
        env = dict(os.environ)
        pkg_parent = str(Path(__file__).resolve().parents[2])  # the folder holding froster_slurm
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
        for i, pieces in enumerate(plan):
            path = self.workdir / f"feed{tag}-{i}.csv"
            spec = self.workdir / f"feed{tag}-{i}.spec"
            err = self.workdir / f"feed{tag}-{i}.err"
            os.mkfifo(path, 0o600)
            write_spec(spec, pieces)
            self.paths.append(str(path))
            with open(err, "wb") as errf:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "froster_slurm.rank.feed", str(spec), str(path)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf, env=env)
            self._procs.append((proc, err))

    def unblock_dead(self) -> None:
        """Give end-of-file to DuckDB on the FIFO of a feeder that died.

        A feeder that dies before opening its FIFO (a file vanished, Python failed to start)
        would leave DuckDB waiting in open() forever.  Opening the FIFO for a moment lets that
        open() return and read end-of-file; the feeder's exit code then reports the failure.
        Harmless for a feeder that finished normally (nothing is written).
        """
        for (proc, _), path in zip(self._procs, self.paths, strict=True):
            if proc.poll() is None:
                continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # ENXIO: nobody is waiting to read it (now)
            os.close(fd)

    def outcome(self, reader_ok: bool) -> FeedOutcome:
        """Wait for the feeders (stopping them if the reader failed) and judge their exits.

        A reader that finished has read every FIFO to its end, so waiting cannot hang."""
        for proc, _ in self._procs:
            if not reader_ok and proc.poll() is None:
                proc.terminate()
            proc.wait()
        unsafe = False
        for proc, err in self._procs:
            if proc.returncode == EXIT_DATA:
                return FeedOutcome(False, error=err.read_bytes().decode("utf-8", "replace")
                                   .strip())
            unsafe |= proc.returncode == EXIT_UNSAFE_CUT
        if unsafe:
            return FeedOutcome(False, unsafe_cut=True)
        bad = [(p.returncode, e) for p, e in self._procs if p.returncode != 0]
        if bad and reader_ok:
            code, err = bad[0]
            msg = err.read_bytes().decode("utf-8", "replace").strip().splitlines()
            return FeedOutcome(False, error=f"a feeder failed (exit {code}): "
                                            f"{msg[-1] if msg else 'no message'}")
        return FeedOutcome(not bad)

    def tallies(self) -> list[tuple[int, int]]:
        """(raw lines, fed lines) of each feeder of ``dirs`` pieces, once it has finished."""
        out = []
        for path in self.paths:
            raw, fed = Path(path + ".tally").read_text().split()
            out.append((int(raw), int(fed)))
        return out

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop feeders still running (by pid) and remove their files; safe to repeat."""
        for proc, _ in self._procs:
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        for path in self.paths:
            for name in (path, path + ".tally", path[:-4] + ".spec", path[:-4] + ".err"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)


if __name__ == "__main__":
    sys.exit(feeder_main(sys.argv[1:]))
