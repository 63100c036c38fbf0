"""pick.rowstore: the picker's rows in DuckDB make the decisions the Python rules make (filters,
sort order, tree parents), on names with every hostile byte, and hold only a page of rows."""

from __future__ import annotations

import gc
import os
from dataclasses import replace

import pytest
from pick_testdata import CAFE, DAY, NOW, PRICES, drive, hs, sample_rows, synthetic_hotspots

from froster_slurm.errors import DataError, NotFoundError
from froster_slurm.pick import rowstore as store_mod
from froster_slurm.pick.pickstate import COLUMNS, PickState
from froster_slurm.pick.rowstore import HotspotStore, rules_where
from froster_slurm.pick.selection import Rules, filter_rows, parent_indices, write_selection
from froster_slurm.rank.hotspots import COLUMNS as HOTSPOT_COLUMNS
from froster_slurm.rank.hotspots import Hotspot, read_hotspots
from froster_slurm.util.paths import read_folder_list


def hostile_rows() -> list[Hotspot]:
    names = [b"/", b"/data", b"/data//lab/", b"/data/lab/a", b"/data/lab/a", b"/data/lab-b",
             b"/data/lab/a/x/y", CAFE, b"/data/lab/CAF\xc9", b"/data/lab/Caf\xe9/in",
             b'/data/q"uo,te\nnew\rline', b"rel/a", b"rel/a/b", b"rel", b"/data/lab/a b",
             b"/data/\xff\xfe/x", b"/data/lab/A/sub"]
    owners = ["alice", "bob", "caf\udce9", "carol"]
    rows = [hs(n, (i * 7919) % 13 * 2**30, total=(i * 31) % 11 * 2**30 + 1,
               files=i % 4 + 1, owner=owners[i % 4], mtime_days=(i * 97) % 900,
               atime_days=(i * 53) % 700) for i, n in enumerate(names)]
    # some without files of their own: no age, an age rule never keeps them
    return [replace(h, files=0, avg_file_bytes=0) if i % 5 == 0 else h
            for i, h in enumerate(rows)]


@pytest.fixture
def hostile():
    rows = hostile_rows()
    with HotspotStore.from_rows(rows) as s:
        yield rows, s


def test_rows_come_back_with_their_exact_bytes(hostile):
    rows, s = hostile
    assert s.count == len(rows)
    assert [s.row(i) for i in range(len(rows))] == rows
    assert s.folders(3, 9) == [h.folder for h in rows[3:9]]


@pytest.mark.parametrize("rules", [
    Rules(), Rules(text="caf"), Rules(text="CAF"), Rules(text="é"), Rules(text="\udcc9"),
    Rules(text="a,te\nn"), Rules(text="lab/a"), Rules(min_size=5 * 2**30),
    Rules(min_size=3 * 2**30, by="total"), Rules(older_than=300 * DAY),
    Rules(older_than=300 * DAY, by="total"), Rules(owners=frozenset({"bob", "caf\udce9"})),
    Rules(text="data", owners=frozenset({"alice"}), min_size=1, older_than=10 * DAY),
])
def test_sql_rules_keep_what_the_python_matcher_keeps(hostile, rules):
    rows, s = hostile
    where, params = rules_where(rules, NOW)
    got = [r for (r,) in s.con.execute(f"SELECT rowid FROM h WHERE {where} ORDER BY rowid",
                                       params).fetchall()]
    want = {id(h) for h in filter_rows(rows, rules, NOW)}
    assert got == [i for i, h in enumerate(rows) if id(h) in want]


@pytest.mark.parametrize("column", [c.id for c in COLUMNS])
def test_every_sort_is_pythons_stable_sort_both_ways(hostile, column):
    rows, s = hostile
    state = PickState(s, recursive=True, by="direct", now=NOW, storage_class="DEEP_ARCHIVE",
                      prices=PRICES)
    attr = {"folder": "folder", "size": "bytes", "files": "files", "avg": "avg_file_bytes",
            "total": "total_bytes", "mtime": "newest_mtime", "atime": "newest_atime",
            "owner": "owner"}[column]

    def key(i: int):  # noqa: ANN202
        v = getattr(rows[i], attr)
        return os.fsencode(v) if isinstance(v, str) else v  # owners compare as bytes

    for _ in range(2):
        state.sort_by(column)
        want = sorted(range(len(rows)), key=key, reverse=state.sort_descending)
        assert list(state.view) == want
        assert [state.view[p] for p in range(len(rows))] == want
        assert state.view.index(want[-1]) == len(rows) - 1


def test_tree_parents_are_those_of_parent_indices(hostile):
    rows, s = hostile
    tree = s.tree_table()
    want = parent_indices([h.folder for h in rows])
    assert [tree.info(i)[0] for i in range(len(rows))] == want
    assert [tree.info(i)[1] for i in range(len(rows))] == [want.count(i)
                                                           for i in range(len(rows))]
    assert tree.children(-1) == [i for i, p in enumerate(want) if p == -1]


def test_not_a_hotspots_file_or_missing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a hotspots file"):
        HotspotStore(bad)
    with pytest.raises(NotFoundError):
        HotspotStore(tmp_path / "nope.csv")
    broken = tmp_path / "broken.csv"
    broken.write_text(",".join(HOTSPOT_COLUMNS) + "\n/a,x,1,1,1,1,1,1,1,o,g,1\n")
    with pytest.raises(DataError, match="cannot read"):
        HotspotStore(broken)


def test_closing_removes_the_spill_directory():
    s = HotspotStore.from_rows(sample_rows())
    workdir = s._workdir
    assert os.path.isdir(workdir)
    s.close()
    assert not os.path.exists(workdir)


def hotspot_objects() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Hotspot)


N = 200_000


def test_picker_over_200k_rows_holds_a_page_not_the_rows(tmp_path):
    """Sort, search, scroll, select and save over 200k folders: the Hotspot objects alive
    stay within the store's cache (a few pages), whatever the number of rows."""
    path = synthetic_hotspots(tmp_path / "hot.csv", N)
    before = hotspot_objects()
    bound = store_mod.ROW_CACHE + store_mod.HEAD + 64
    state = PickState(HotspotStore(path), recursive=True, by="direct", now=NOW,
                      storage_class="DEEP_ARCHIVE", prices=PRICES)
    assert len(state.rows) == N and len(state.view) == N
    for position in (0, 5_000, N // 2, N - 1):
        state.view[position]
        state.rows[state.view[position]]
    state.sort_by("folder")
    last = state.rows[state.view[N - 1]].folder
    state.set_rules(Rules(text="RUN1999"))  # run1999, run19990..19999, run199900..199999
    searched = list(state.view)
    assert len(searched) == 111
    picked = state.select_shown()
    assert picked.added == 111 and not picked.skipped
    state.set_rules(Rules())
    assert state.is_selected(searched[0]) and state.view.index(searched[0]) > 0
    state.set_rules(Rules(text="run19990"))  # run19990, run199900..199909
    assert state.unselect_shown() == 11 and state.totals().folders == 100
    state.set_rules(Rules(text="run19990"))
    assert state.select_shown().added == 11
    alive = hotspot_objects() - before
    assert alive <= bound, f"{alive} rows held as objects for {N:,} rows"
    out = tmp_path / "sel"
    write_selection(out, state.chosen_folders())
    state.close()

    # the same answers from every row in Python (checked after counting)
    rows = read_hotspots(path)
    assert last == max(h.folder for h in rows)
    want = [i for i, h in enumerate(rows) if b"run1999" in h.folder.lower()]
    assert sorted(searched) == want
    assert read_folder_list(out) == [rows[i].folder for i in want]  # the file's order


def test_app_over_200k_rows_draws_pages_and_saves(tmp_path):
    from froster_slurm.pick.picker import PickApp

    path = synthetic_hotspots(tmp_path / "hot.csv", N)
    before = hotspot_objects()
    with HotspotStore(path) as rows:
        app = PickApp(rows, output=tmp_path / "sel", recursive=False, by="direct",
                      storage_class="DEEP_ARCHIVE", prices=PRICES, now=NOW, readable=None)

        async def script(pilot):
            for key in ("end", "space", "1", "home", "pagedown", "pagedown"):
                await pilot.press(key)
                await pilot.pause()
            seen["position"] = app.table.cursor
            for key in ("space", "c", "y"):
                assert hotspot_objects() - before <= store_mod.ROW_CACHE + store_mod.HEAD + 64
                await pilot.press(key)
                await pilot.pause()

        seen: dict = {}
        drive(app, script)
        assert app.return_code == 0
        chosen = read_folder_list(tmp_path / "sel")
    full = read_hotspots(path)
    smallest = min(range(N), key=lambda i: (full[i].bytes, -i))  # last by size, descending
    by_name = sorted(range(N), key=lambda i: full[i].folder)
    assert seen["position"] > 20
    assert chosen == [full[i].folder for i in sorted([smallest, by_name[seen["position"]]])]
