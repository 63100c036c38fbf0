"""What rank reads: turn INPUT arguments into checked crawl files, and cut them into feed pieces.

An INPUT is a pwalk CSV, a ``.csv.gz``, a directory of shards (``*.csv``, ``*.csv.gz``,
``*.parquet`` inside), a glob, or a Parquet file written by ``rank --to-parquet``.  The kind is
decided by the file's first bytes (gzip and Parquet magic), not by its name, so a renamed file
is still read right.

Every CSV is checked before DuckDB sees it, so a wrong file fails with a sentence instead of a
parser trace: the first line must be pwalk's header (``pwalk --header``) or a pwalk row (17
fields, numbers where pwalk prints numbers), and the file must end with a newline (a crawl cut
off mid-row would otherwise lose or mangle its last row).

Plain CSVs are cut into byte ranges so several feeders (``rank_feed``) can re-encode them for
DuckDB at once.  A cut is placed just after a newline; whether that newline ends a row or sits
inside a quoted name (the builtin crawler keeps raw newlines in names) is proven afterwards by
the feeders, which count the quotes of their range: see ``rank_feed``.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import DataError, NotFoundError, UserError
from ..util.paths import display

PWALK_FIELDS = ("inode", "parent-inode", "directory-depth", "filename", "fileExtension", "UID",
                "GID", "st_size", "st_dev", "st_blocks", "st_nlink", "st_mode", "st_atime",
                "st_mtime", "st_ctime", "pw_fcount", "pw_dirsum")
CSV, GZIP, PARQUET = "csv", "gzip", "parquet"
DIRS = "dirs"  # a feed piece: a whole plain CSV, only the rows grep keeps (see rank_inode)
SHARD_SUFFIXES = (b".csv", b".csv.gz", b".parquet")
_GLOB_CHARS = re.compile(rb"[*?\[]")
_INT = re.compile(r"^-?[0-9]+$")
_MODE = re.compile(r"^[0-7]{7}$")
_TEXT_FIELDS = (3, 4, 11)  # filename, fileExtension, st_mode: the quoted ones


@dataclass(frozen=True)
class CrawlFile:
    """One input file: its path (bytes), kind, and where its rows start.

    ``data_start`` is the byte offset after the header line (0 without a header); ``size`` is
    the file's size on disk (compressed size for gzip).
    """

    path: bytes
    kind: str
    size: int
    data_start: int = 0

    @property
    def empty(self) -> bool:
        """No data rows at all (an empty shard, or a header alone)."""
        return self.kind == CSV and self.data_start >= self.size


@dataclass(frozen=True)
class Piece:
    """A byte range of one CSV file that one feeder streams; ``end`` -1 means to the end."""

    path: bytes
    kind: str
    start: int
    end: int
    split: bool  # True when the range does not cover the whole file (a cut we must verify)


def resolve_inputs(args: Sequence[str | bytes | os.PathLike]) -> list[CrawlFile]:
    """Expand INPUT arguments into checked crawl files, each listed once.

    Raises NotFoundError for a missing path, an empty directory or a glob matching nothing, and
    DataError for a file that is not a pwalk crawl.
    """
    if not args:
        raise UserError("no INPUT given (a pwalk CSV, a .csv.gz, a shards directory, a glob "
                        "or a Parquet file)")
    seen: set[bytes] = set()
    out: list[CrawlFile] = []
    for arg in args:
        for path in _expand(os.fsencode(arg)):
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            out.append(inspect_file(path))
    return out


def _expand(arg: bytes) -> list[bytes]:
    """One argument to file paths: a file, the shards in a directory, or a glob's matches."""
    if os.path.isdir(arg):
        names = sorted(n for n in os.listdir(arg) if n.endswith(SHARD_SUFFIXES))
        found = [os.path.join(arg, n) for n in names if os.path.isfile(os.path.join(arg, n))]
        if not found:
            raise NotFoundError(f"no crawl files (*.csv, *.csv.gz, *.parquet) in {display(arg)}")
        return found
    if os.path.exists(arg):
        return [arg]
    if _GLOB_CHARS.search(arg):
        matches = sorted(m for m in glob.glob(arg) if os.path.isfile(m))
        if not matches:
            raise NotFoundError(f"no file matches {display(arg)}")
        return matches
    raise NotFoundError(f"input not found: {display(arg)}")


def inspect_file(path: bytes) -> CrawlFile:
    """Decide a file's kind from its first bytes and check that it is a pwalk crawl."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{display(path)} is not a regular file (rank reads crawl files, "
                            "not pipes or devices: it cuts them and reads them in parallel)")
        size = st.st_size
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError as e:
        raise NotFoundError(f"input not found: {display(path)}") from e
    except OSError as e:
        raise UserError(f"cannot read {display(path)}: {e.strerror}") from e
    if magic == b"PAR1":
        return CrawlFile(path, PARQUET, size)
    kind = GZIP if magic[:2] == b"\x1f\x8b" else CSV
    first = _first_line(path, kind)
    if not first:
        return CrawlFile(path, kind, size, size if kind == CSV else 0)
    header = first.startswith(b"inode,")
    _check_first_line(path, first, header)
    if kind == CSV:
        with open(path, "rb") as f:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                raise DataError(f"{display(path)}: the last line has no newline: the crawl file "
                                "was cut off (remove the partial last line or crawl again)")
    return CrawlFile(path, kind, size, len(first) if header and kind == CSV else 0)


def _first_line(path: bytes, kind: str) -> bytes:
    """The first record with its newline: lines are joined while a quote is open, since the
    builtin crawler keeps raw newlines inside quoted names (at most 1 MiB is read)."""
    try:
        opener = gzip.open if kind == GZIP else open
        with opener(path, "rb") as f:
            record = f.readline(1 << 20)
            while record.count(b'"') % 2 and len(record) < 1 << 20:
                more = f.readline(1 << 20)
                if not more:
                    break
                record += more
            return record
    except (OSError, EOFError) as e:
        raise DataError(f"{display(path)}: cannot read: {e}") from e


def _check_first_line(path: bytes, line: bytes, header: bool) -> None:
    """Header or first row must look like pwalk's; the message says what was expected."""
    expected = ",".join(PWALK_FIELDS)
    text = line.decode("latin-1")[:-1] if line.endswith(b"\n") else line.decode("latin-1")
    if text.endswith("\r"):
        raise DataError(f"{display(path)}: lines end with CR LF; pwalk writes LF only")
    fields = next(csv.reader(io.StringIO(text, newline="")), [])
    if header:
        if tuple(fields) != PWALK_FIELDS:
            raise DataError(f"{display(path)}: not a pwalk CSV: its header is not {expected}")
        return
    if len(fields) != len(PWALK_FIELDS):
        raise DataError(f"{display(path)}: not a pwalk CSV: the first line has {len(fields)} "
                        f"fields, pwalk writes {len(PWALK_FIELDS)} ({expected})")
    for i, value in enumerate(fields):
        if i == 11 and not _MODE.match(value) or i not in _TEXT_FIELDS and not _INT.match(value):
            raise DataError(f"{display(path)}: not a pwalk CSV: field {i + 1} "
                            f"({PWALK_FIELDS[i]}) of the first line is {value[:40]!r}")


def plan_groups(files: Iterable[CrawlFile], piece_bytes: int, *, cut: bool = True
                ) -> list[tuple[int, list[Piece]]]:
    """The CSV data as work groups of about ``piece_bytes`` each: (weight, pieces), in order.

    A plain file larger than that is cut into ranges (at newlines, checked later by the
    feeders); small files are packed together; a gzip file cannot be entered mid-way and is a
    group of its own (weighted at 6x its compressed size).  Empty files are left out.
    ``cut=False`` keeps every file whole: the fallback when a cut fell inside a quoted name.
    """
    groups: list[tuple[int, list[Piece]]] = []
    packed: list[Piece] = []
    packed_size = 0
    for f in files:
        if f.kind not in (CSV, GZIP) or f.empty:
            continue
        if f.kind == GZIP:
            groups.append((f.size * 6, [Piece(f.path, GZIP, 0, -1, False)]))
            continue
        ranges = _cuts(f, piece_bytes) if cut else [(f.data_start, f.size)]
        for start, end in ranges:
            piece = Piece(f.path, CSV, start, end, len(ranges) > 1)
            if end - start >= piece_bytes // 2:
                groups.append((end - start, [piece]))
                continue
            packed.append(piece)
            packed_size += end - start
            if packed_size >= piece_bytes:
                groups.append((packed_size, packed))
                packed, packed_size = [], 0
    if packed:
        groups.append((packed_size, packed))
    return groups


def deal(groups: Sequence[tuple[int, list[Piece]]], streams: int) -> list[list[Piece]]:
    """Groups shared among ``streams`` feeders: heaviest first to the least loaded."""
    n = min(max(1, streams), len(groups))
    loads = [0] * n
    out: list[list[Piece]] = [[] for _ in range(n)]
    for weight, pieces in sorted(groups, key=lambda g: -g[0]):
        i = loads.index(min(loads))
        loads[i] += weight
        out[i].extend(pieces)
    return out


def _cuts(f: CrawlFile, share: int) -> list[tuple[int, int]]:
    """Byte ranges of about ``share`` bytes, each ending just after a newline."""
    ranges = []
    start = f.data_start
    with open(f.path, "rb") as fh:
        while f.size - start > share + share // 2:
            fh.seek(start + share)
            fh.readline()
            end = fh.tell()
            if end >= f.size:
                break
            ranges.append((start, end))
            start = end
    ranges.append((start, f.size))
    return ranges


def duckdb_path(path: bytes) -> str:
    """A path DuckDB can open: DuckDB takes UTF-8 text, so a non-UTF-8 path is refused."""
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{display(path)}: DuckDB cannot open a file whose own path is not "
                        "UTF-8; rename it or link it under a UTF-8 name") from None
