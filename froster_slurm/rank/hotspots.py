"""The hotspots file: rank's output, pick's and select's input. One row per folder.

CSV with a header. ``folder`` holds the path's exact bytes (quoted, ``"`` doubled), so the file
is not UTF-8 when a path is not; it is read and written as Latin-1, which maps every byte to one
character and back, and never through a lossy decoder.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TextIO

from ..errors import DataError, NotFoundError
from ..util.atomic import atomic_file, atomic_text

COLUMNS = ("folder", "bytes", "files", "total_bytes", "total_files", "allocated_bytes",
           "avg_file_bytes", "newest_mtime", "newest_atime", "owner", "group", "depth")


@dataclass(frozen=True)
class Hotspot:
    """One folder. Sizes in bytes, times in epoch seconds; owner/group are names or numbers."""

    folder: bytes
    bytes: int
    files: int
    total_bytes: int
    total_files: int
    allocated_bytes: int
    avg_file_bytes: int
    newest_mtime: int
    newest_atime: int
    owner: str
    group: str
    depth: int

    def to_json_obj(self) -> dict:
        """JSON-ready dict; ``folder`` is a surrogateescape str so ``os.fsencode`` restores it."""
        d = asdict(self)
        d["folder"] = os.fsdecode(self.folder)
        return d


def _to_latin1(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _from_latin1(text: str) -> str:
    return text.encode("latin-1").decode("utf-8", "surrogateescape")


def write_hotspots(dest: str | os.PathLike, rows: Iterable[Hotspot]) -> int:
    """Write rows (header first); returns the row count. Atomic rename at the end."""
    with atomic_text(dest, encoding="latin-1", newline="") as f:
        return write_hotspots_stream(f, rows)


def _field(text: str) -> str:
    """One text field, quoted when it holds a comma, a quote, LF or CR (quotes doubled).

    Python's csv writer (QUOTE_MINIMAL, lineterminator "\\n") leaves a bare CR unquoted, and
    its reader then splits the row there: a folder name with a CR could not be read back.
    """
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def write_hotspots_stream(f: TextIO, rows: Iterable[Hotspot]) -> int:
    """The same format to an open text stream made with ``encoding="latin-1", newline=""``
    (e.g. stdout re-wrapped), so ``rank`` can print hotspots to a pipe byte-exactly."""
    f.write(",".join(COLUMNS) + "\n")
    n = 0
    for r in rows:
        f.write(f"{_field(r.folder.decode('latin-1'))},{r.bytes},{r.files},{r.total_bytes},"
                f"{r.total_files},{r.allocated_bytes},{r.avg_file_bytes},{r.newest_mtime},"
                f"{r.newest_atime},{_field(_to_latin1(r.owner))},{_field(_to_latin1(r.group))},"
                f"{r.depth}\n")
        n += 1
    return n


def write_hotspot_lines(f: TextIO, batches: Iterable[Sequence[str]]) -> int:
    """Fast path for producers streaming ~10^6 folders (rank): header, then rows that arrive
    already formatted -- each a complete line (newline included) in its Latin-1 view
    (``raw_bytes.decode("latin-1")``), exactly as ``write_hotspots_stream`` would write it.
    rank builds them in SQL; its tests compare both writers byte for byte."""
    f.write(",".join(COLUMNS) + "\n")
    n = 0
    for batch in batches:
        f.write("".join(batch))
        n += len(batch)
    return n


def write_hotspots_from_view(dest: str | os.PathLike, view: str | os.PathLike) -> None:
    """Header plus the lines of ``view`` -- hotspots lines in their Latin-1 view, stored as
    UTF-8 (what DuckDB writes; see ``sql.listed_copy_sql``) -- turned back into their exact
    bytes in 8 MiB blocks; atomic like ``write_hotspots``.  rank's tests compare the result
    with ``write_hotspots`` byte for byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(view, "rb") as src, atomic_file(dest) as out:
        out.write((",".join(COLUMNS) + "\n").encode("latin-1"))
        while block := src.read(8 << 20):
            out.write(decoder.decode(block).encode("latin-1"))
        out.write(decoder.decode(b"", final=True).encode("latin-1"))


def iter_hotspots(src: str | os.PathLike) -> Iterator[Hotspot]:
    """Stream rows from a hotspots CSV; a malformed row is a DataError naming its line."""
    try:
        f = open(src, encoding="latin-1", newline="")
    except FileNotFoundError as e:
        raise NotFoundError(f"hotspots file not found: {src}") from e
    with f:
        r = csv.reader(f)
        header = next(r, None)
        if header is None or tuple(header) != COLUMNS:
            raise DataError(f"{src}: not a hotspots file (expected header {','.join(COLUMNS)})")
        for row in r:
            if len(row) != len(COLUMNS):
                raise DataError(f"{src}:{r.line_num}: expected {len(COLUMNS)} fields")
            try:
                yield Hotspot(row[0].encode("latin-1"), int(row[1]), int(row[2]), int(row[3]),
                              int(row[4]), int(row[5]), int(row[6]), int(row[7]), int(row[8]),
                              _from_latin1(row[9]), _from_latin1(row[10]), int(row[11]))
            except ValueError as e:
                raise DataError(f"{src}:{r.line_num}: {e}") from e


def read_hotspots(src: str | os.PathLike) -> list[Hotspot]:
    return list(iter_hotspots(src))
