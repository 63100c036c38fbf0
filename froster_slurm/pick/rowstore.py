"""The picker's rows in DuckDB: a hotspots file as a table, read a page at a time.

Why: the picker used to read the whole hotspots file into ``Hotspot`` objects (issue 16: 1M
rows took 9.8 s to the first frame and 0.93 GB).  Here DuckDB reads the file once into table
``h`` (its parallel reader keeps the file's order, so ``h.rowid`` is the row's index in the
file, the row id the picker selects by), under a fixed memory limit with a private spill
directory: DuckDB's buffer pool, not the number of rows, bounds the memory.  Sorting,
filtering and the tree are SQL; Python only holds the rows on screen (a small cache).

Names keep every byte: the file is read as Latin-1 (``rank.hotspots``), so a name's SQL text
is its bytes one character each, and byte order is character order.  The SQL rules
(``rules_where``) make the same decisions as ``selection.matcher``; the tree's parents
(``Tree``) are those of ``selection.parent_indices``; ``tests/test_pick_rowstore.py``
compares both on hostile names.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import overload

import duckdb

from ..errors import DataError
from ..rank.hotspots import (
    Hotspot,
    PrivateDuckDB,
    check_header,
    from_latin1_view,
    latin1_view,
    load_table,
    write_hotspots,
)
from ..util.paths import discard_tree
from .selection import Rules

MEMORY_LIMIT = "256MB"  # DuckDB's buffer pool; more rows spill to the private temp directory
PAGE = 256  # rows fetched per page of a view
HEAD = 1024  # rows of a fresh view fetched before it is sorted in full (the first frames)
ROW_CACHE = 4096  # rows kept as objects: a few pages around the cursor
BATCH = 10_000  # rows per fetch when a whole view is walked (select all)

_ROW = ('h.folder, h.bytes, h.files, h.total_bytes, h.total_files, h.allocated_bytes, '
        'h.avg_file_bytes, h.newest_mtime, h.newest_atime, h.owner, h."group", h.depth')
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _hotspot(r: Sequence) -> Hotspot:
    return Hotspot(r[0].encode("latin-1"), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                   from_latin1_view(r[9]), from_latin1_view(r[10]), r[11])


def size_sql(by: str) -> str:
    return "h.total_bytes" if by == "total" else "h.bytes"


def rules_where(rules: Rules, now: float) -> tuple[str, list]:
    """``selection.matcher`` as an SQL condition on ``h`` (and its parameters).

    The path text is matched ASCII-case-folded against the name's bytes, like the matcher's
    ``bytes.lower()`` (DuckDB's ``lower`` would fold Latin-1 letters too)."""
    where, params = ["TRUE"], []
    if rules.min_size:
        where.append(f"{size_sql(rules.by)} >= {int(rules.min_size)}")
    if rules.older_than:
        files = "h.total_files" if rules.by == "total" else "h.files"
        where.append(f"greatest(h.newest_mtime, h.newest_atime) <= ?::DOUBLE AND {files} > 0")
        params.append(float(now - rules.older_than))
    if rules.owners:
        where.append(f"h.owner IN ({', '.join('?' * len(rules.owners))})")
        params.extend(latin1_view(o) for o in sorted(rules.owners))
    if rules.text:
        # lower() first: a superset, 15x faster than translate(), which then only sees those
        needle = os.fsencode(rules.text).lower().decode("latin-1")
        where.append(f"contains(lower(h.folder), ?) AND "
                     f"contains(translate(h.folder, '{_UPPER}', '{_UPPER.lower()}'), ?)")
        params.extend([needle.lower(), needle])
    return " AND ".join(where), params


class HotspotStore(PrivateDuckDB):
    """A hotspots file in DuckDB (table ``h``, row id = index in the file).

    A context manager: closing it drops the connection and its spill directory."""

    def __init__(self, path: str | os.PathLike, *, temp_dir: str | None = None,
                 threads: int = 0):
        path = Path(path)
        check_header(path)
        self._workdir = tempfile.mkdtemp(prefix="froster-pick-", dir=temp_dir or None)
        # a store nobody closed (a test's, a crash) still leaves no spill directory behind
        weakref.finalize(self, discard_tree, self._workdir)
        self._rows: OrderedDict[int, Hotspot] = OrderedDict()
        self.tree: Tree | None = None
        self._views = 0
        try:
            self.con = duckdb.connect(":memory:", config={
                "memory_limit": MEMORY_LIMIT,
                "temp_directory": os.path.join(self._workdir, "duckdb"),
                "preserve_insertion_order": True,
                **({"threads": threads} if threads > 0 else {})})
            self.con.execute("SET enable_progress_bar = false")
            # The parallel reader with insertion order preserved: rowid is the file's order.
            load_table(self.con, path, numbered=False)
            n, top, top_total = self.con.execute(
                "SELECT count(*), max(bytes), max(total_bytes) FROM h").fetchone()
            self.count = int(n)
            self._max = {"direct": int(top or 0), "total": int(top_total or 0)}
        except duckdb.Error as e:
            self.close()
            raise DataError(f"{path}: cannot read the hotspots file: "
                            f"{str(e).splitlines()[0]}") from e
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_rows(cls, rows: Iterable[Hotspot], **kw: object) -> HotspotStore:
        """A store of rows given in Python (tests, small callers): written to a private
        hotspots file first, so they go through the same reader as a real one."""
        tmp = tempfile.mkdtemp(prefix="froster-pick-rows-")
        try:
            path = os.path.join(tmp, "hotspots.csv")
            write_hotspots(path, rows)
            return cls(path, **kw)  # type: ignore[arg-type]
        finally:
            discard_tree(tmp)

    # -- rows ---------------------------------------------------------------------------------

    def _remember(self, rn: int, h: Hotspot) -> None:
        rows = self._rows
        rows[rn] = h
        rows.move_to_end(rn)
        while len(rows) > ROW_CACHE:
            rows.popitem(last=False)

    def row(self, rn: int) -> Hotspot:
        """Row ``rn`` of the file (cached: the rows of recent pages are at hand)."""
        h = self._rows.get(rn)
        if h is None:
            if not 0 <= rn < self.count:
                raise IndexError(rn)
            h = _hotspot(self.con.execute(f"SELECT {_ROW} FROM h WHERE rowid = ?",
                                          [rn]).fetchone())
            self._remember(rn, h)
        return h

    def folders(self, start: int, stop: int, con: duckdb.DuckDBPyConnection | None = None
                ) -> list[bytes]:
        """The names of rows ``start`` to ``stop - 1`` (``con``: another thread's cursor)."""
        got = (con or self.con).execute(
            "SELECT folder FROM h WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
            [start, stop]).fetchall()
        return [f.encode("latin-1") for (f,) in got]

    def view(self, where: str, params: list, order: str, by: str,
             tree_parent: int | None = None) -> View:
        """The rows matching ``where``, in ``order`` (ties in file order)."""
        if tree_parent is not None:
            self.tree_table()
            where = f"{where} AND t.parent = {int(tree_parent)}"
        self._views += 1
        return View(self, where, params, order, by, tree_parent is not None,
                    f"v{self._views}")

    def tree_table(self) -> Tree:
        if self.tree is None:
            self.tree = Tree(self)
        return self.tree


class View(Sequence[int]):
    """Positions of a sorted, filtered view -> row ids, without a list of them in Python.

    Its length and largest size come from one aggregate; its first ``HEAD`` rows from a top-N
    query (DuckDB keeps only N rows while it scans), enough for the first frames; the whole
    order is put in a table (one sort) the first time a position beyond them, or a row's
    position, is asked for.  Pages of ``PAGE`` rows are fetched with their rows."""

    def __init__(self, store: HotspotStore, where: str, params: list, order: str, by: str,
                 tree: bool, name: str):
        self.store, self._params, self._name = store, params, name
        self._from = "h JOIN t ON t.rn = h.rowid" if tree else "h"
        self._where, self._order = where, f"{order}, h.rowid"
        if where == "TRUE" and not tree:  # every row: known since the file was read
            n, peak = store.count, store._max[by]
        else:
            n, peak = store.con.execute(f"SELECT count(*), max({size_sql(by)}) FROM "
                                        f"{self._from} WHERE {where}", params).fetchone()
        self._len, self.max = int(n), int(peak or 0)
        self._table = False
        self._pages: OrderedDict[int, list[int]] = OrderedDict()
        self._pages[-1] = self._fetch(f"SELECT h.rowid FROM {self._from} WHERE {where} "
                                      f"ORDER BY {self._order} LIMIT {HEAD}", params)

    def _fetch(self, sql: str, params: list) -> list[int]:
        """Row ids by ``sql``, then their rows in one query (a top-N of the ids alone is
        10x faster than one that carries every column along)."""
        ids = [int(r) for (r,) in self.store.con.execute(sql, params).fetchall()]
        if ids:
            for r in self.store.con.execute(f"SELECT h.rowid, {_ROW} FROM h WHERE h.rowid IN "
                                            "(SELECT unnest(?::BIGINT[]))", [ids]).fetchall():
                self.store._remember(r[0], _hotspot(r[1:]))
        return ids

    def _materialize(self) -> None:
        if not self._table:
            self.store.con.execute(f"CREATE OR REPLACE TABLE {self._name} AS SELECT "
                                   f"h.rowid AS rn FROM {self._from} WHERE {self._where} "
                                   f"ORDER BY {self._order}", self._params)
            self._table = True

    def close(self) -> None:
        """Drop the view's table (a new sort or filter made another view)."""
        if self._table and self.store.con is not None:
            self.store.con.execute(f"DROP TABLE IF EXISTS {self._name}")
            self._table = False

    def __len__(self) -> int:
        return self._len

    def _page(self, p: int) -> list[int]:
        page = self._pages.get(p)
        if page is None:
            self._materialize()
            page = self._fetch(f"SELECT rn FROM {self._name} WHERE rowid >= ? AND rowid < ? "
                               "ORDER BY rowid", [p * PAGE, (p + 1) * PAGE])
            self._pages[p] = page
            while len(self._pages) > 8:
                self._pages.popitem(last=False)
        return page

    @overload
    def __getitem__(self, pos: int) -> int: ...
    @overload
    def __getitem__(self, pos: slice) -> list[int]: ...

    def __getitem__(self, pos: int | slice) -> int | list[int]:
        if isinstance(pos, slice):
            return [self[i] for i in range(*pos.indices(self._len))]
        if pos < 0:
            pos += self._len
        if not 0 <= pos < self._len:
            raise IndexError(pos)
        head = self._pages[-1] if -1 in self._pages else []
        if pos < len(head):
            return head[pos]
        return self._page(pos // PAGE)[pos % PAGE]

    def index(self, rn: int, start: int = 0, stop: int | None = None) -> int:
        """The position of row ``rn`` in the view; ValueError when it is not shown."""
        head = self._pages.get(-1, [])
        if rn in head:
            pos = head.index(rn)
        else:
            self._materialize()
            got = self.store.con.execute(f"SELECT rowid FROM {self._name} WHERE rn = ?",
                                         [rn]).fetchone()
            if got is None:
                raise ValueError(f"row {rn} is not shown")
            pos = int(got[0])
        if pos < start or (stop is not None and pos >= stop):
            raise ValueError(f"row {rn} is not in that part of the view")
        return pos

    def __contains__(self, rn: object) -> bool:
        try:
            self.index(int(rn))  # type: ignore[call-overload]
        except (ValueError, TypeError):
            return False
        return True

    def among(self, rns: list[int]) -> list[int]:
        """Which of the rows ``rns`` the view shows (unselect the shown ones)."""
        if not rns:
            return []
        return [int(r) for (r,) in self.store.con.execute(
            f"SELECT h.rowid FROM {self._from} WHERE {self._where} AND h.rowid IN "
            "(SELECT unnest(?::BIGINT[])) ORDER BY h.rowid", [*self._params, rns]).fetchall()]

    def __iter__(self) -> Iterator[int]:
        for rn, _h in self.rows():
            yield rn

    def rows(self) -> Iterator[tuple[int, Hotspot]]:
        """Every shown row in order, fetched ``BATCH`` at a time and not kept (select all)."""
        cur = self.store.con.cursor()
        try:
            cur.execute(f"SELECT h.rowid, {_ROW} FROM {self._from} WHERE {self._where} "
                        f"ORDER BY {self._order}", self._params)
            while batch := cur.fetchmany(BATCH):
                for r in batch:
                    yield r[0], _hotspot(r[1:])
        finally:
            cur.close()


# Normalised name (``selection.folder_key``): repeated slashes as one, no trailing slash.
_KEY = ("CASE WHEN rtrim(regexp_replace(folder, '/+', '/', 'g'), '/') = '' AND "
        "starts_with(folder, '/') THEN '/' ELSE rtrim(regexp_replace(folder, '/+', '/', 'g'), "
        "'/') END")


class Tree:
    """Each row's nearest listed ancestor (``selection.parent_indices``) and how many rows
    have it as theirs, in table ``t`` (rn, parent, kids, key): one pass of SQL over every
    ancestor of every name, made the first time the tree is opened."""

    def __init__(self, store: HotspotStore):
        self.store = store
        con = store.con
        con.execute(f"CREATE TABLE tk AS SELECT rowid AS rn, {_KEY} AS key FROM h")
        con.execute("CREATE TABLE tf AS SELECT key, min(rn) AS rn FROM tk GROUP BY key")
        # ancestors of /a/b/c: the first 1, 2, ... parts of its split ('' is the root)
        con.execute("""
            CREATE TABLE tp AS
            WITH anc AS (
              SELECT rn, i, CASE WHEN a = '' THEN '/' ELSE a END AS key FROM (
                SELECT rn, i, array_to_string(list_slice(parts, 1, i), '/') AS a FROM (
                  SELECT rn, string_split(key, '/') AS parts FROM tk WHERE key <> '/')
                CROSS JOIN LATERAL (SELECT unnest(range(1, len(parts))) AS i)))
            SELECT anc.rn, arg_max(tf.rn, anc.i) AS parent
            FROM anc JOIN tf ON tf.key = anc.key GROUP BY anc.rn""")
        con.execute("""
            CREATE TABLE t AS
            SELECT tk.rn, coalesce(tp.parent, -1) AS parent, coalesce(k.kids, 0) AS kids,
                   tk.key
            FROM tk LEFT JOIN tp ON tp.rn = tk.rn
            LEFT JOIN (SELECT parent, count(*) AS kids FROM tp GROUP BY parent) k
              ON k.parent = tk.rn
            ORDER BY tk.rn""")
        for name in ("tk", "tf", "tp"):
            con.execute(f"DROP TABLE {name}")
        self._info: OrderedDict[int, tuple[int, int, bytes]] = OrderedDict()

    def info(self, rn: int) -> tuple[int, int, bytes]:
        """(parent row or -1, number of rows it is the parent of, normalised name)."""
        got = self._info.get(rn)
        if got is None:
            parent, kids, key = self.store.con.execute(
                "SELECT parent, kids, key FROM t WHERE rowid = ?", [rn]).fetchone()
            got = (int(parent), int(kids), key.encode("latin-1"))
            self._info[rn] = got
            while len(self._info) > ROW_CACHE:
                self._info.popitem(last=False)
        return got

    def children(self, rn: int) -> list[int]:
        """Rows whose nearest listed ancestor is ``rn`` (-1: the top level), in file order."""
        return [int(r) for (r,) in self.store.con.execute(
            "SELECT rn FROM t WHERE parent = ? ORDER BY rn", [rn]).fetchall()]

