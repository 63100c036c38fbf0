"""Rank a crawl: one row per folder with its size, file count, age and owner (hotspots.csv).

Library entry points (explicit parameters; only the CLI reads config):

- ``RankedCrawl(inputs, engine)`` loads a crawl (CSV, .csv.gz, shard directories, globs,
  Parquet) into DuckDB as per-folder aggregates; ``.totals`` is the crawl-wide summary,
  ``.select(params)`` filters and orders, ``.hotspots()`` streams the selected rows.
- ``to_parquet(inputs, out, engine)`` converts a crawl once for repeated queries.

Decisions (documented here because the hotspots file does not say them):

- A folder is a directory row (pw_fcount >= 0).  Its owner and group are the DIRECTORY ROW's
  uid/gid (what ``ls -ld`` shows, and who can act on the folder), as names where this machine
  knows them, else the numbers.
- ``bytes``/``files``: regular files and symlinks directly inside, recomputed from the file rows
  (pwalk's pw_dirsum/pw_fcount count subdirectories); a folder with none has 0.  ``total_*``:
  the whole subtree.  A file with st_nlink > 1 counts once per (st_dev, inode) in each figure.
- ``allocated_bytes``, ``avg_file_bytes``, ``newest_mtime``, ``newest_atime`` describe the scope
  that was ranked: the folder's own files with ``by="direct"``, the subtree with ``by="total"``,
  so the age and size the picker shows are the ones the filters used (a subtree with one fresh
  file is not "old").  0 means "no files".
- ``older_than`` keeps folders whose newest mtime AND atime are older (data still read is not
  cold); ``min_avg_size`` applies to avg_file_bytes of the same scope.
- A folder's parent is found from its path, so shards crawled separately join up.
"""

from __future__ import annotations

import contextlib
import functools
import grp
import os
import pwd
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import duckdb

from ..errors import ConfigError, DataError, UserError
from ..pick.funnel import Funnel
from ..util.paths import discard_tree, display
from .hotspots import Hotspot, from_latin1_view, latin1_view, write_hotspots_from_view
from .inputs import duckdb_path, resolve_inputs
from .loader import Engine, Loader, duckdb_error, first_line
from .sql import (
    AGE_DAYS,
    CHECKS_SQL,
    LISTED_COUNT_SQL,
    LISTED_LINES_SQL,
    LISTED_OUTER_SIZE_SQL,
    LISTED_ROWS_SQL,
    MACROS,
    MIN_FOLDER_LENGTH_SQL,
    NAMES_SQL,
    PARQUET_KEY,
    PARQUET_VALUE,
    folders_sql,
    listed_copy_sql,
    listed_sql,
    scope_columns,
    sql_str,
    summary_sql,
)

__all__ = ["BY_CHOICES", "CrawlTotals", "Engine", "Listing", "RankParams", "RankedCrawl",
           "rank_to_file", "to_parquet"]

BY_CHOICES = ("direct", "total")


@dataclass(frozen=True)
class RankParams:
    """What to list.  Sizes in bytes, ``older_than`` in seconds; 0/None: no constraint."""

    by: str = "direct"
    min_size: int = 0
    min_avg_size: int = 0
    older_than: int = 0
    top: int | None = None
    owner_uid: int | None = None

    def __post_init__(self) -> None:
        if self.by not in BY_CHOICES:
            raise UserError(f"--by must be one of {', '.join(BY_CHOICES)}, not {self.by!r}")
        if min(self.min_size, self.min_avg_size, self.older_than) < 0:
            raise UserError("sizes and ages cannot be negative")
        if self.top is not None and self.top < 1:
            raise UserError(f"--top must be at least 1, not {self.top}")


@dataclass(frozen=True)
class CrawlTotals:
    """The whole crawl, before any filter (hard-linked files once)."""

    rows: int
    folders: int
    files: int
    bytes: int
    allocated_bytes: int
    # (days, bytes of the folders whose files were all last used longer ago; see summary_sql)
    not_accessed: tuple[tuple[int, int], ...]
    folder_bytes: int  # the same per-folder basis (a file hard-linked into 2 folders twice)
    orphan_files: int  # files whose folder has no directory row (a shard missing?)
    orphan_folders: int
    now: int
    reader: str = ""  # which reader loaded the crawl, and why not the fast one (rank_load)


@dataclass(frozen=True)
class Listing:
    """What ``select`` kept: how many folders and their size (nested ones counted once)."""

    params: RankParams
    folders: int
    size: Callable[[], int] = field(repr=False, compare=False)

    @property
    def bytes(self) -> int:
        """The size; with ``by="total"`` DuckDB works it out in the background while the
        hotspots are written (0.2 s of 10^6 folders), so the first read may wait for it."""
        return self.size()


class _Pending:
    """One number DuckDB computes on its own cursor, in a thread; ``result()`` waits for it.
    The cursor sees the crawl's tables (not TEMP ones: those belong to one connection)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sql: str, engine: Engine):
        self._cur = con.cursor()
        self._engine = engine
        self._value = 0
        self._error: duckdb.Error | None = None
        self._thread = threading.Thread(target=self._run, args=(sql,), daemon=True)
        self._thread.start()

    def _run(self, sql: str) -> None:
        try:
            self._value = int(self._cur.execute(sql).fetchone()[0])
        except duckdb.Error as e:
            self._error = e
        finally:
            self._cur.close()

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> int:
        self.wait()
        if self._error is not None:
            raise duckdb_error(self._error, self._engine) from self._error
        return self._value


class _ProgressWatch:
    """Polls ``query_progress`` of a connection from a thread (DuckDB allows that call while
    another thread runs a query on it) and passes the percentage on."""

    def __init__(self, con: duckdb.DuckDBPyConnection, progress: Callable[[float], None]):
        con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
        self._con, self._progress = con, progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                pct = float(self._con.query_progress())
            except (duckdb.Error, RuntimeError):
                continue
            if pct >= 0:
                self._progress(pct)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(duckdb.Error):
            self._con.execute("SET enable_progress_bar = false")


@functools.cache
def user_name(uid: int) -> str:
    """The user's name on this machine, or the number when it does not know it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


@functools.cache
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return str(gid)


def display_cut(latin1_view: str, keep: int = 120) -> str:
    """A folder from DuckDB (latin-1 view of its bytes) for an error line, cut when long."""
    text = display(latin1_view.encode("latin-1"))
    return text if len(text) <= keep else text[:keep // 2] + "..." + text[-keep // 2:]


def resolve_owner(owner: str) -> int:
    """``--owner``: a user name known here, or a numeric uid (crawls come from other hosts)."""
    if owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise UserError(f"unknown user {owner!r}: give a user name this machine knows or a "
                        "numeric uid") from None


def _connect(engine: Engine, workdir: str) -> duckdb.DuckDBPyConnection:
    config = {"memory_limit": engine.duckdb_memory_limit, "threads": engine.thread_count,
              "temp_directory": os.path.join(workdir, "duckdb"),
              "preserve_insertion_order": False}
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as e:
        raise ConfigError(f"rank.memory_limit / rank.threads: {first_line(e)}") from e
    con.execute("SET enable_progress_bar = false")  # it would write into our output
    con.execute(MACROS)
    return con


class RankedCrawl:
    """A crawl reduced to per-folder figures inside DuckDB (see module docstring).

    A context manager: closing it drops the DuckDB connection and its spill directory.
    """

    def __init__(self, inputs: Sequence[str | bytes | os.PathLike], engine: Engine,
                 now: int | None = None, progress: Callable[[float], None] | None = None):
        """``progress(percent)``: called about 4 times a second while the crawl loads, with
        DuckDB's progress through the statement running (each statement starts again at 0);
        for a person's terminal, so its calls are never an error."""
        self.engine = engine
        self.now = int(time.time()) if now is None else int(now)
        files = resolve_inputs(inputs)
        self._workdir = tempfile.mkdtemp(prefix="froster-rank-", dir=engine.temp_dir or None)
        watcher: _ProgressWatch | None = None
        try:
            self._con = _connect(engine, self._workdir)
            if progress is not None:
                watcher = _ProgressWatch(self._con, progress)
            loader = Loader(files, engine, self._con, self._workdir)
            loader.aggregate()
            min_length = self._con.execute(MIN_FOLDER_LENGTH_SQL).fetchone()[0]
            self._con.execute(folders_sql(min_length))
            self.totals = self._totals(loader.reader)
            self._con.execute("DROP VIEW lvl1; DROP TABLE fdirect; DROP TABLE ftotal")
            for i in range(loader.parts):
                self._con.execute(f"DROP TABLE lvl1_p{i}")
        except duckdb.Error as e:
            if watcher is not None:
                watcher.stop()
            self.close()
            raise duckdb_error(e, engine) from e
        except BaseException:
            if watcher is not None:
                watcher.stop()
            self.close()
            raise
        if watcher is not None:
            watcher.stop()
        self._selected: RankParams | None = None
        self._pending: _Pending | None = None

    def _totals(self, reader: str) -> CrawlTotals:
        (dup, example, orphan_files, orphan_folders, impossible, bad,
         bad_depth) = self._con.execute(CHECKS_SQL).fetchone()
        if impossible:
            raise DataError(
                f"{impossible} directory row(s) cannot be real, e.g. {display_cut(bad)} at "
                f"directory-depth {bad_depth}, deeper than the crawl's directories allow: a "
                "corrupt crawl (pwalk writes such rows when a path is longer than PATH_MAX); "
                "crawl again with --engine builtin")
        if dup:
            raise DataError(f"{dup} folder(s) appear more than once in the input, e.g. "
                            f"{display(example.encode('latin-1'))}: overlapping shards or the "
                            "same crawl given twice; sizes would be counted twice")
        (nrows, ndir, files1, bytes1, blk1, files2, bytes2, blk2, folder_bytes,
         *old) = (int(v or 0) for v in self._con.execute(summary_sql(self.now)).fetchone())
        return CrawlTotals(
            rows=nrows, folders=ndir, files=files1 + files2, bytes=bytes1 + bytes2,
            allocated_bytes=(blk1 + blk2) * 512,
            not_accessed=tuple(zip(AGE_DAYS, old, strict=True)), folder_bytes=folder_bytes,
            orphan_files=int(orphan_files), orphan_folders=int(orphan_folders), now=self.now,
            reader=reader)

    def select(self, params: RankParams) -> Listing:
        """Filter and order the folders; ``hotspots()`` then streams them."""
        newest_before = self.now - params.older_than if params.older_than > 0 else None
        try:
            self._settle()
            self._con.execute(listed_sql(params.by, params.min_size, params.min_avg_size,
                                         newest_before, params.owner_uid, params.top))
            folders, size = self._con.execute(LISTED_COUNT_SQL).fetchone()
            self._name_tables()
        except duckdb.Error as e:
            raise duckdb_error(e, self.engine) from e
        self._selected = params
        if params.by == "total":  # subtrees nest: their sizes overlap (LISTED_OUTER_SIZE_SQL)
            self._pending = _Pending(self._con, LISTED_OUTER_SIZE_SQL, self.engine)
            return Listing(params, int(folders), self._pending.result)
        return Listing(params, int(folders), functools.partial(int, size))

    def funnel(self, params: RankParams) -> Funnel:
        """Which of ``params``' rules removed how many folders (asked when none is listed)."""
        from ..pick.funnel import Step, floor_age, floor_size
        from ..util.units import format_size

        c = scope_columns(params.by)
        rules: list[tuple[str, str, str, str, str]] = []  # words, option, cond, best, why
        if params.min_avg_size:
            rules.append((f"'average file >= {format_size(params.min_avg_size)}'",
                          "--min-avg-size", f"{c['avg']} >= {int(params.min_avg_size)}",
                          f"max({c['avg']})", "the largest average left"))
        if params.min_size:
            rules.append((f"'size >= {format_size(params.min_size)}'", "--min-size",
                          f"{c['size']} >= {int(params.min_size)}", f"max({c['size']})",
                          "the largest folder left"))
        if params.older_than:
            before = int(self.now - params.older_than)
            rules.append((f"'unused for {params.older_than // 86400} days'", "--older-than",
                          f"greatest({c['mt']}, {c['at']}) <= {before}",
                          f"min(greatest({c['mt']}, {c['at']}))",
                          "the longest unused folder left"))
        if params.owner_uid is not None:
            rules.append((f"'owner uid {params.owner_uid}'", "--owner",
                          f"uid = {int(params.owner_uid)}", "min(uid)", "an owner left"))
        try:
            self._settle()
            total = self._con.execute("SELECT count(*) FROM folders").fetchone()[0]
            out = Funnel(int(total))
            where = ["TRUE"]
            for words, option, cond, best, why in rules:
                left, value = self._con.execute(
                    f"SELECT count(*) FILTER (WHERE {cond}), {best} FROM folders "
                    f"WHERE {' AND '.join(where)}").fetchone()
                where.append(cond)
                try_value = ""
                if left == 0 and value is not None:
                    try_value = (floor_age(self.now - value) if option == "--older-than"
                                 else str(value) if option == "--owner"
                                 else floor_size(int(value)))
                out.steps.append(Step(words, option, int(left), try_value,
                                      why if try_value else ""))
        except duckdb.Error as e:
            raise duckdb_error(e, self.engine) from e
        return out

    def _settle(self) -> None:
        """Let a background computation on ``listed`` finish before it changes or goes."""
        if self._pending is not None:
            self._pending.wait()

    def _name_tables(self) -> None:
        """user_names/group_names for the ids of the listed folders, as Latin-1 views."""
        for table, column, lookup in (("user_names", "uid", user_name),
                                      ("group_names", "gid", group_name)):
            ids = [i for (i,) in self._con.execute(
                f"SELECT DISTINCT {column} FROM listed WHERE {column} IS NOT NULL").fetchall()]
            names = [latin1_view(lookup(i)) for i in ids]
            self._con.execute(NAMES_SQL.format(table=table), [ids, names])

    def _fetch(self, sql: str, batch: int) -> Iterator[list[tuple]]:
        if self._selected is None:
            raise UserError("select() first")
        cur = self._con.execute(sql)  # temp tables live in this connection only
        while rows := cur.fetchmany(batch):
            yield rows

    def hotspot_lines(self, batch: int = 50_000) -> Iterator[list[str]]:
        """The selected folders, largest first, as finished hotspots CSV lines in their
        Latin-1 view, in batches: what ``hotspots.write_hotspot_lines`` takes."""
        for rows in self._fetch(LISTED_LINES_SQL, batch):
            yield [line for (line,) in rows]

    def write_hotspots(self, dest: str | os.PathLike) -> None:
        """The selected folders into the hotspots file ``dest``: DuckDB writes the lines
        (its threads, no row passes through Python), then they get their exact bytes back
        (``hotspots.write_hotspots_from_view``).  2x faster than ``hotspot_lines`` for 10^6
        folders, which streams instead (for stdout)."""
        if self._selected is None:
            raise UserError("select() first")
        view = os.path.join(self._workdir, "hotspots.view")
        try:
            self._con.execute("SET preserve_insertion_order = true")
            self._con.execute(listed_copy_sql(view))
            self._con.execute("SET preserve_insertion_order = false")
            write_hotspots_from_view(dest, view)
        except duckdb.Error as e:
            raise duckdb_error(e, self.engine) from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(view)

    def hotspots(self) -> Iterator[Hotspot]:
        """The selected folders, largest first, as exact-bytes Hotspot rows (streamed)."""
        for rows in self._fetch(LISTED_ROWS_SQL, 10_000):
            for (folder, b, f, tb, tf, alloc, avg, mt, at, owner, group, depth) in rows:
                yield Hotspot(folder.encode("latin-1"), b, f, tb, tf, alloc, avg, mt, at,
                              from_latin1_view(owner), from_latin1_view(group), depth)

    def close(self) -> None:
        if getattr(self, "_pending", None) is not None:
            self._settle()
        con = getattr(self, "_con", None)
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()
            self._con = None
        discard_tree(self._workdir)

    def __enter__(self) -> RankedCrawl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_parquet(inputs: Sequence[str | bytes | os.PathLike], out: str | bytes | os.PathLike,
               engine: Engine) -> int:
    """Convert a crawl to one Parquet file; returns its row count.

    ``filename`` (and ``extension``) are stored as the Latin-1 view of the bytes -- one
    character U+0000-U+00FF per byte, so ``value.encode("latin-1")`` is the exact path -- and
    the file carries the key-value metadata ``froster_slurm.filename = latin-1`` that ``rank``
    requires of a Parquet input.  Written under a temporary name and renamed.
    """
    out_b = os.fsencode(out)
    out_s = duckdb_path(out_b)
    tmp = out_s + ".tmp"
    files = resolve_inputs(inputs)
    workdir = tempfile.mkdtemp(prefix="froster-rank-", dir=engine.temp_dir or None)
    con = None
    try:
        con = _connect(engine, workdir)
        meta = f"{{{sql_str(PARQUET_KEY)}: {sql_str(PARQUET_VALUE)}}}"
        Loader(files, engine, con, workdir).stream(
            lambda rel: f"COPY ({rel}) TO {sql_str(tmp)} "
                        f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {meta})")
        rows = con.execute("SELECT count(*) FROM read_parquet(?)", [tmp]).fetchone()[0]
        os.replace(tmp, out_s)
        return int(rows)
    except duckdb.Error as e:
        raise duckdb_error(e, engine) from e
    finally:
        if con is not None:
            con.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        discard_tree(workdir)


def rank_to_file(inputs: Sequence[str | bytes | os.PathLike], dest: str | os.PathLike, *,
                 memory_limit: str = "1GB", temp_dir: str | None = None, threads: int = 0,
                 params: RankParams | None = None, now: int | None = None
                 ) -> tuple[CrawlTotals, Listing]:
    """The rank stage of a pipeline run (``jobs.rank_stage``): every folder, unless ``params`` says
    otherwise, into a hotspots file; the run's selection rules are applied afterwards."""
    engine = Engine(memory_limit=memory_limit, temp_dir=temp_dir or "", threads=threads)
    with RankedCrawl(inputs, engine, now=now) as crawl:
        listing = crawl.select(params or RankParams())
        crawl.write_hotspots(dest)
        return crawl.totals, listing
