"""The rank job's selection rules inside DuckDB: the same folders as ``selection``'s Python
rules, without every hotspots row becoming a Python object.

Why: the rank job used to load the whole hotspots file into Python (``load_hotspots``) to
filter and sort it: ~3.4 GB for 5M folders, three times ``rank.memory_limit``, the budget the
rank job documents.  Here DuckDB reads the file (Latin-1, so every byte of a name survives:
``hotspots``), filters it by ``archive_units`` and ``Rules`` and sorts it, spilling to
``rank.temp_dir`` under the same memory limit as the rank itself; Python then walks the
candidates in rank order a batch at a time, keeping only the chosen ones (a recursive
selection must check each against those chosen before it: ``FolderSet``).  When nothing is
selected, the funnel (``funnel``) is computed by SQL counts, rule by rule, with the same words
and values as ``selection.why_none``.

Same decisions as the Python rules, tie for tie: Python's sort is stable, so folders of equal
size keep the file's order; the file is read on one thread into a table numbered in file
order, and the sort is (size descending, file order).  ``tests/test_rules_sql.py`` compares
both on generated files with hostile names and ties.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ..errors import UserError
from ..rank.hotspots import (
    Hotspot,
    PrivateDuckDB,
    check_header,
    from_latin1_view,
    latin1_view,
    load_table,
)
from ..rank.loader import Engine, duckdb_error
from .funnel import Funnel, Step, floor_age, floor_size
from .selection import Rules, RuleSelection, take_safe

BATCH = 10_000  # candidate rows fetched from DuckDB at a time

class HotspotsTable(PrivateDuckDB):
    """A hotspots file loaded into DuckDB as table ``h`` (numbered ``rn`` in file order).

    A context manager: closing it drops the connection and its spill directory."""

    def __init__(self, path: str | os.PathLike, engine: Engine):
        path = Path(path)
        check_header(path)
        self.engine = engine
        self._workdir = tempfile.mkdtemp(prefix="froster-select-", dir=engine.temp_dir or None)
        try:
            self.con = duckdb.connect(":memory:", config={
                "memory_limit": engine.duckdb_memory_limit, "threads": 1,
                "temp_directory": os.path.join(self._workdir, "duckdb"),
                "preserve_insertion_order": True})
            self.con.execute("SET enable_progress_bar = false")
            load_table(self.con, path, numbered=True)
            self.con.execute(f"SET threads = {int(engine.thread_count)}")
        except duckdb.Error as e:
            self.close()
            raise duckdb_error(e, engine) from e
        except BaseException:
            self.close()
            raise

    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM h").fetchone()[0])

    def rows(self, where: str, params: list, order: str) -> Iterator[Hotspot]:
        """Rows of ``h`` matching ``where``, in ``order``, streamed a batch at a time."""
        cur = self.con.execute(f"SELECT folder, bytes, files, total_bytes, total_files, "
                               f"allocated_bytes, avg_file_bytes, newest_mtime, newest_atime, "
                               f'owner, "group", depth FROM h WHERE {where} ORDER BY {order}',
                               params)
        while batch := cur.fetchmany(BATCH):
            for (folder, b, f, tb, tf, alloc, avg, mt, at, owner, group, depth) in batch:
                yield Hotspot(folder.encode("latin-1"), b, f, tb, tf, alloc, avg, mt, at,
                              from_latin1_view(owner or ""), from_latin1_view(group or ""), depth)


def _size(by: str) -> str:
    return "total_bytes" if by == "total" else "bytes"


def _scope_files(by_total: bool) -> str:
    return "total_files" if by_total else "files"


def candidates_where(rules: Rules, *, min_avg: int, recursive: bool, now: float
                     ) -> tuple[str, list]:
    """``archive_units`` and ``selection.matcher`` as one SQL condition (and its params)."""
    if rules.text:
        raise UserError("a path text rule is not applied in SQL (the rank job has none)")
    where = [f"avg_file_bytes >= {int(min_avg)}", f"{_scope_files(recursive)} > 0"]
    params: list = []
    if rules.min_size:
        where.append(f"{_size(rules.by)} >= {int(rules.min_size)}")
    if rules.older_than:
        # no files in the measured scope: no age, an age rule never keeps it
        where.append(f"greatest(newest_mtime, newest_atime) <= ?::DOUBLE AND "
                     f"{_scope_files(rules.by == 'total')} > 0")
        params.append(float(now - rules.older_than))
    if rules.owners:
        where.append(f"owner IN ({', '.join('?' * len(rules.owners))})")
        params.extend(latin1_view(o) for o in sorted(rules.owners))
    return " AND ".join(where), params


def select(table: HotspotsTable, rules: Rules, *, min_avg: int, top: int | None,
           recursive: bool, now: float) -> RuleSelection:
    """``archive_units`` then ``select_by_rules``, decided in DuckDB (module docstring)."""
    if top is not None and top < 1:
        raise UserError(f"--top must be at least 1, not {top}")
    where, params = candidates_where(rules, min_avg=min_avg, recursive=recursive, now=now)
    try:
        matched = int(table.con.execute(f"SELECT count(*) FROM h WHERE {where}",
                                        params).fetchone()[0])
        chosen, dropped = take_safe(table.rows(where, params, f"{_size(rules.by)} DESC, rn"),
                                    top, recursive)
    except duckdb.Error as e:
        raise duckdb_error(e, table.engine) from e
    return RuleSelection(chosen=chosen, matched=matched, dropped=dropped)


def funnel(table: HotspotsTable, rules: Rules, *, now: float, min_avg: int = 0,
           recursive: bool | None = None) -> Funnel:
    """``selection.why_none`` by SQL counts: folders left after each rule in force, and the
    loosest value of the rule that removed the last ones."""
    from ..util.units import format_size

    size = _size(rules.by)
    steps: list[tuple[str, str, str, list, str | None, str]] = []  # words, option, cond, ...
    if recursive is not None:
        steps.append(("'has files to archive'", "--recursive",
                      f"{_scope_files(recursive)} > 0", [], None, ""))
    if min_avg:
        steps.append((f"'average file >= {format_size(min_avg)}'", "--min-avg-size",
                      f"avg_file_bytes >= {int(min_avg)}", [], "max(avg_file_bytes)",
                      "the largest average left"))
    if rules.min_size:
        steps.append((f"'size >= {format_size(rules.min_size)}'", "--min-size",
                      f"{size} >= {int(rules.min_size)}", [], f"max({size})",
                      "the largest folder left"))
    if rules.older_than:
        steps.append((f"'unused for {rules.older_than // 86400} days'", "--older-than",
                      "greatest(newest_mtime, newest_atime) <= ?::DOUBLE",
                      [float(now - rules.older_than)],
                      "min(greatest(newest_mtime, newest_atime))",
                      "the longest unused folder left"))
    if rules.owners:
        owners = sorted(rules.owners)
        steps.append((f"'owner {','.join(owners)}'", "--owner",
                      f"owner IN ({', '.join('?' * len(owners))})",
                      [latin1_view(o) for o in owners], "owner", "an owner left"))
    try:
        out = Funnel(table.count())
        where, params = ["TRUE"], []
        for words, option, cond, cond_params, best, why in steps:
            left = int(table.con.execute(
                f"SELECT count(*) FROM h WHERE {' AND '.join([*where, cond])}",
                [*params, *cond_params]).fetchone()[0])
            value = ""
            before = f"FROM h WHERE {' AND '.join(where)}"
            if left == 0 and best is not None:
                if option == "--owner":  # the first name left, sorted as Python sorts it
                    names = {from_latin1_view(o or "") for (o,) in table.con.execute(
                        f"SELECT DISTINCT owner {before}", params).fetchall()}
                    value = sorted(names)[0] if names else ""
                else:
                    got = table.con.execute(f"SELECT {best} {before}", params).fetchone()[0]
                    if got is not None:
                        value = (floor_age(now - got) if option == "--older-than"
                                 else floor_size(int(got)))
            out.steps.append(Step(words, option, left, value, why if value else ""))
            where.append(cond)
            params.extend(cond_params)
    except duckdb.Error as e:
        raise duckdb_error(e, table.engine) from e
    return out
