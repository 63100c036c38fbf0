"""The hotspots file: rank's output, pick's and select's input. One row per folder.

CSV with a header. ``folder`` holds the path's exact bytes (quoted, ``"`` doubled), so the file
is not UTF-8 when a path is not; it is read and written as Latin-1, which maps every byte to one
character and back, and never through a lossy decoder.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self, TextIO

from ..errors import DataError, NotFoundError, UserError
from ..util.atomic import atomic_file, atomic_text
from ..util.paths import discard_tree

if TYPE_CHECKING:  # DuckDB is imported by the callers that use it, not by every reader
    import duckdb

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


def latin1_view(text: str) -> str:
    """A name's bytes (UTF-8, surrogateescape) as one character per byte: how names travel
    inside DuckDB and in the hotspots file, so byte order is character order."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def from_latin1_view(view: str | None) -> str:
    return (view or "").encode("latin-1").decode("utf-8", "surrogateescape")


# --- the file in DuckDB: table ``h`` (rank's selection, pick's rows) -------------------------

SQL_TYPES = {c: "BIGINT" for c in COLUMNS}
SQL_TYPES.update(folder="VARCHAR", owner="VARCHAR", group="VARCHAR")


def check_header(path: Path) -> None:
    """Refuse, in one line, what is not a hotspots file, before DuckDB reads it."""
    try:
        with open(path, encoding="latin-1", newline="") as f:
            header = f.readline().rstrip("\r\n")
    except FileNotFoundError as e:
        raise NotFoundError(f"hotspots file not found: {path}") from e
    except IsADirectoryError as e:
        raise UserError(f"{path} is a directory, not a hotspots file") from e
    except PermissionError as e:
        raise UserError(f"cannot read hotspots file {path}: permission denied") from e
    if tuple(header.split(",")) != COLUMNS:
        raise DataError(f"{path}: not a hotspots file (expected header {','.join(COLUMNS)})")


class PrivateDuckDB:
    """A DuckDB connection ``con`` holding table ``h``, with its own spill directory
    ``_workdir``, closed as one (rank's selection table, pick's rows): a context manager."""

    con: duckdb.DuckDBPyConnection | None
    _workdir: str

    def close(self) -> None:
        import duckdb  # the subclasses have imported it already: no cost at start-up

        con = getattr(self, "con", None)
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()
            self.con = None
        discard_tree(self._workdir)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_table(con: duckdb.DuckDBPyConnection, path: Path, *, numbered: bool) -> None:
    """Read the hotspots file ``path`` into table ``h`` of ``con``, names as Latin-1 views.

    ``numbered``: a column ``rn`` (1, 2, ... in file order), read by one thread so that
    ``row_number()`` counts in file order; else the parallel reader, whose ``rowid`` is the
    file's order as long as the connection preserves insertion order."""
    columns = ", ".join(f"'{c}': '{t}'" for c, t in SQL_TYPES.items())
    read = ("read_csv(?, header = true, encoding = 'latin-1', quote = '\"', escape = '\"', "
            f"delim = ',', new_line = '\\n', columns = {{{columns}}}, strict_mode = true"
            + (", parallel = false)" if numbered else ")"))
    select = "row_number() OVER () AS rn, *" if numbered else "*"
    con.execute(f"CREATE TABLE h AS SELECT {select} FROM {read}", [str(path)])


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
                f"{r.newest_atime},{_field(latin1_view(r.owner))},{_field(latin1_view(r.group))},"
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
                              from_latin1_view(row[9]), from_latin1_view(row[10]), int(row[11]))
            except ValueError as e:
                raise DataError(f"{src}:{r.line_num}: {e}") from e


def read_hotspots(src: str | os.PathLike) -> list[Hotspot]:
    return list(iter_hotspots(src))
