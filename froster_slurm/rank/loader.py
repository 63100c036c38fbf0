"""Get a crawl's rows into DuckDB as ``lvl1`` (rank_sql): the fast reader, else the path reader.

``Loader.aggregate()`` tries the fast reader (``rank_inode``: DuckDB parses the raw files in
parallel, names come from the directory rows only) and, when its inputs or its checks rule it
out, the path reader (``rank_feed``: every byte re-encoded by feeder processes, each feed read
by one DuckDB thread), which reads anything rank accepts.  ``reader`` then says which was used
and why, so the benchmark and an admin can see it.  Errors are turned into one sentence here
(``duckdb_error``), since only the loader sees the raw CSV.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from ..errors import ConfigError, DataError, FrosterError, PermanentError, UserError
from ..util.paths import display
from ..util.units import parse_size
from .feed import Feed, FeedOutcome
from .inode_reader import (
    CHECK_SQL,
    CLEANUP_SQL,
    JOIN_SQL,
    Tally,
    ineligible,
    lvl1i_sql,
    names_sql,
    names_view_sql,
    raw_relation,
)
from .inputs import DIRS, PARQUET, CrawlFile, Piece, deal, duckdb_path, plan_groups
from .sql import CRAWL_COLUMNS, PARQUET_KEY, PARQUET_VALUE, crawl_relation, lvl1_select

DUCKDB_SHARE = 0.7  # of rank.memory_limit (see Engine.duckdb_memory_limit)


@dataclass(frozen=True)
class Engine:
    """How DuckDB may use the machine (config keys rank.memory_limit, rank.temp_dir,
    rank.threads).  ``feeders``: processes re-encoding CSV for DuckDB, each read by one
    DuckDB statement (0: one per thread); ``piece_bytes``: the unit in which big CSVs are cut
    and shared among feeders (tests lower it to force cuts); ``fast``: try the fast reader
    (``rank_inode``) first -- off only to compare the two readers."""

    memory_limit: str = "1GB"
    temp_dir: str = ""
    threads: int = 0
    feeders: int = 0
    piece_bytes: int = 128 << 20
    fast: bool = True

    @property
    def thread_count(self) -> int:
        """rank.threads, or the CPUs this process may run on: inside a Slurm job that is the
        job's allocation, not the node's core count."""
        if self.threads > 0:
            return self.threads
        try:
            return len(os.sched_getaffinity(0)) or 1
        except AttributeError:  # not Linux
            return os.cpu_count() or 1

    @property
    def duckdb_memory_limit(self) -> str:
        """DuckDB's own limit: DUCKDB_SHARE of rank.memory_limit, which is the budget of the
        whole rank process.  DuckDB's limit covers its buffer pool only; its working memory
        outside it, the allocator and Python come on top (measured at 100M crawl rows:
        about 250 MB), and a Slurm job is killed on its total, not on DuckDB's part."""
        try:
            return f"{int(parse_size(self.memory_limit.replace(' ', '')) * DUCKDB_SHARE)}B"
        except UserError:
            return self.memory_limit  # a spelling DuckDB accepts and we do not: DuckDB judges

    def buffer_size(self, streams: int) -> int:
        """DuckDB's CSV read buffer per stream: 16 MiB, less when the memory limit is small
        (a few buffers per stream must fit beside the aggregates)."""
        try:
            limit = parse_size(self.duckdb_memory_limit)
        except UserError:
            limit = 1 << 30
        return max(2 << 20, min(16 << 20, limit // (16 * max(1, streams))))


def first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def duckdb_error(e: duckdb.Error, engine: Engine) -> FrosterError:
    """One clear sentence for what DuckDB refused."""
    if isinstance(e, duckdb.OutOfMemoryException):
        return ConfigError(f"DuckDB ran out of memory (rank.memory_limit={engine.memory_limit},"
                           f" {engine.thread_count} threads): raise rank.memory_limit or lower "
                           "rank.threads")
    text = str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "CSV Error" in text or isinstance(e, duckdb.ConversionException):
        original = next((ln[len("Original Line:"):].strip() for ln in lines
                         if ln.startswith("Original Line:")), "")
        reason = next((ln for ln in lines[1:] if not ln.startswith(("Original Line", "Possible",
                                                                     "file", "delimiter"))), "")
        shown = display(original.encode("latin-1", "replace"))[:200] if original else ""
        return DataError(f"not a valid pwalk row ({reason or lines[0]})"
                         + (f": {shown}" if shown else ""))
    if isinstance(e, duckdb.IOException):
        return PermanentError(f"DuckDB: {lines[0] if lines else text}")
    return DataError(f"DuckDB: {lines[0] if lines else text}")


def _check_parquet(con: duckdb.DuckDBPyConnection, f: CrawlFile) -> str:
    """A Parquet input must be ours: its filename column holds the Latin-1 view of the bytes."""
    path = duckdb_path(f.path)
    rows = con.execute("SELECT key, value FROM parquet_kv_metadata(?)", [path]).fetchall()
    meta = {bytes(k): bytes(v) for k, v in rows}
    if meta.get(PARQUET_KEY.encode()) != PARQUET_VALUE.encode():
        raise DataError(f"{display(f.path)}: not a crawl Parquet file written by "
                        "'froster-slurm rank --to-parquet' (its names would not be exact bytes)")
    return path


class _RetryUncut(Exception):
    """A cut fell inside a quoted name: read everything again with files whole."""


class Loader:
    """Gets the crawl rows into DuckDB through feeders (see ``rank_feed``).

    DuckDB reads a FIFO with one thread, even several FIFOs in one statement.  So
    ``aggregate()`` runs one statement per FIFO, each on its own cursor in its own Python
    thread (DuckDB releases the GIL), writing table ``lvl1_p<i>``; ``lvl1`` is their union.
    The parts need no merging: every later step sums, or groups hard links again (see
    ``sql.folders_sql``).  ``stream()`` runs a single statement over all FIFOs: enough for
    ``--to-parquet``, which DuckDB writes as it reads.
    """

    def __init__(self, files: list[CrawlFile], engine: Engine, con: duckdb.DuckDBPyConnection,
                 workdir: str):
        self.files, self.engine, self.con, self.workdir = files, engine, con, workdir
        self.parquets = [_check_parquet(con, f) for f in files if f.kind == PARQUET]
        self.feeders = engine.feeders or engine.thread_count
        self.parts = 0
        self.reader = ""

    def _relation_for(self, paths: list[str]) -> str:
        return crawl_relation(paths, [], self.engine.buffer_size(len(paths)))

    def _plan(self, cut: bool) -> list[list]:
        return deal(plan_groups(self.files, self.engine.piece_bytes, cut=cut), self.feeders)

    def _check(self, plan: list[list], outcome: FeedOutcome,
               failure: duckdb.Error | None) -> None:
        """Raise what went wrong, or _RetryUncut.

        A cut inside a quoted name shows as an odd quote count, but only if its feeder got
        to the end: DuckDB often trips first on the half-row after the cut, and then the
        feeders are stopped.  So any failure of a plan with cuts is retried with whole files;
        a real error then shows again and is reported from that reading.
        """
        had_cuts = any(p.split for pieces in plan for p in pieces)
        if outcome.unsafe_cut or (had_cuts and not outcome.error
                                  and (failure is not None or not outcome.ok)):
            raise _RetryUncut
        if outcome.error:
            raise DataError(outcome.error)
        if failure is not None:
            raise duckdb_error(failure, self.engine) from failure
        if not outcome.ok:
            raise DataError("reading the crawl failed (a feeder stopped early)")

    def stream(self, make_sql: Callable[[str], str]) -> None:
        for cut in (True, False):
            plan = self._plan(cut)
            with Feed(plan, self.workdir) as feed:
                failure = self._parallel([make_sql(self._relation(feed.paths))], feed)
                outcome = feed.outcome(reader_ok=failure is None)
            try:
                self._check(plan, outcome, failure)
                return
            except _RetryUncut:
                continue

    def aggregate(self) -> None:
        """Fill ``lvl1_p<i>`` (``parts`` of them) and the view ``lvl1`` over them: with the
        fast reader when the inputs and its checks allow, else with the path reader."""
        why = ineligible(self.files) if self.engine.fast else "turned off"
        if not why:
            why = self._aggregate_by_inode()
        if why:
            self.reader = f"path reader ({why})"
            self._aggregate_by_path()
        else:
            self.reader = "fast reader"
        self.con.execute("CREATE OR REPLACE TEMP VIEW lvl1 AS "
                         + " UNION ALL ".join(f"SELECT * FROM lvl1_p{i}"
                                              for i in range(self.parts)))

    def _aggregate_by_inode(self) -> str:
        """The fast reader (``rank_inode``): '' once ``lvl1_p0`` holds the crawl, else why
        it could not be used (its tables are gone again; the path reader starts afresh)."""
        files = [f for f in self.files if not f.empty]
        plan = deal([(f.size, [Piece(f.path, DIRS, 0, -1, False)]) for f in files],
                    self.feeders)
        scan = lvl1i_sql(raw_relation(files, self.engine.buffer_size(self.engine.thread_count)))
        try:
            with Feed(plan, self.workdir, tag="d") as feed:
                statements = [scan] + [names_sql(i, self._relation_for([path]))
                                       for i, path in enumerate(feed.paths)]
                failure = self._parallel(statements, feed)
                outcome = feed.outcome(reader_ok=failure is None)
                if failure is not None:
                    return f"the fast reading failed: {first_line(failure)}"
                if not outcome.ok:
                    return outcome.error or "a feeder failed"
                tallies = feed.tallies()
            self.con.execute(names_view_sql(len(plan)))
            counts = self.con.execute(CHECK_SQL).fetchone()
            headers = sum(1 for f in files if f.data_start > 0)
            tally = Tally(sum(raw for raw, _ in tallies) - headers,
                          sum(fed for _, fed in tallies), *(int(c) for c in counts))
            if why := tally.refusal():
                return why
            self.con.execute(JOIN_SQL)
            self.parts = 1
            return ""
        finally:
            self.con.execute(CLEANUP_SQL)
            for i in range(len(plan)):
                self.con.execute(f"DROP TABLE IF EXISTS names_p{i}")

    def _aggregate_by_path(self) -> None:
        """The path reader: every byte through the feeders (``rank_feed``); big files are cut
        among them, and read again whole if a cut fell inside a quoted name."""
        for cut in (True, False):
            plan = self._plan(cut)
            with Feed(plan, self.workdir) as feed:
                sources = [self._relation_for([path]) for path in feed.paths]
                if self.parquets or not sources:
                    sources.append(self._relation([]))
                failure = self._parallel(
                    [f"CREATE OR REPLACE TABLE lvl1_p{i} AS {lvl1_select(rel)}"
                     for i, rel in enumerate(sources)], feed)
                outcome = feed.outcome(reader_ok=failure is None)
            try:
                self._check(plan, outcome, failure)
                break
            except _RetryUncut:
                for i in range(len(sources)):
                    self.con.execute(f"DROP TABLE IF EXISTS lvl1_p{i}")
        self.parts = len(sources)

    def _parallel(self, statements: list[str], feed: Feed) -> duckdb.Error | None:
        """Run each statement on its own cursor and thread; the first failure stops the rest
        (their FIFOs then close and their feeders end).  Meanwhile, watch for feeders that
        died and would leave DuckDB waiting on their FIFO (``Feed.unblock_dead``)."""
        cursors = [self.con.cursor() for _ in statements]
        failures: list[duckdb.Error] = []

        def run(cur: duckdb.DuckDBPyConnection, sql: str) -> None:
            try:
                cur.execute(sql)
            except duckdb.Error as e:
                failures.append(e)
                for other in cursors:
                    with contextlib.suppress(duckdb.Error):
                        other.interrupt()

        threads = [threading.Thread(target=run, args=(c, q), daemon=True)
                   for c, q in zip(cursors, statements, strict=True)]
        try:
            for t in threads:
                t.start()
            while alive := [t for t in threads if t.is_alive()]:
                alive[0].join(0.1)
                feed.unblock_dead()
        except BaseException:  # Ctrl-C, a Slurm signal: stop DuckDB before the feeders go
            for c in cursors:
                with contextlib.suppress(duckdb.Error):
                    c.interrupt()
            raise
        for c in cursors:
            c.close()
        real = [f for f in failures if not isinstance(f, duckdb.InterruptException)]
        return (real or failures or [None])[0]

    def _relation(self, paths: list[str]) -> str:
        if not paths and not self.parquets:
            nulls = ", ".join(f"CAST(NULL AS {t}) AS {n}" for _, n, t in CRAWL_COLUMNS)
            return f"SELECT {nulls} WHERE false"
        return crawl_relation(paths, self.parquets, self.engine.buffer_size(len(paths)))


