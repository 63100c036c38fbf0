"""PickState: the picker's model without a terminal."""

from __future__ import annotations

from pick_testdata import CAFE, NOW, PRICES, TiB, hs, sample_rows

from froster_slurm.pick.access import AccessChecker
from froster_slurm.pick.pickstate import PickState
from froster_slurm.pick.selection import Rules


def state(recursive: bool = True, by: str = "direct", rows=None) -> PickState:
    return PickState(sample_rows() if rows is None else rows, recursive=recursive, by=by,
                     now=NOW, storage_class="DEEP_ARCHIVE", prices=PRICES)


def view(s: PickState) -> list[bytes]:
    return [s.rows[i].folder for i in s.view]


def test_default_sort_follows_by():
    rows = [hs(b"/x", 10, total=10), hs(b"/y", 5, total=50)]
    assert view(state(by="direct", rows=rows)) == [b"/x", b"/y"]
    assert view(state(by="total", rows=rows)) == [b"/y", b"/x"]


def test_sort_is_stable_both_ways():
    rows = [hs(b"/a", 1), hs(b"/b", 1), hs(b"/c", 2)]
    s = state(rows=rows)
    assert view(s) == [b"/c", b"/a", b"/b"]
    s.sort_by("size")
    assert view(s) == [b"/a", b"/b", b"/c"]


def test_running_totals_and_cost():
    s = state()
    assert s.select(0) is None  # /data/lab/a: 7 TiB subtree, 150 files
    assert s.select(2) is None  # cafe
    t = s.totals()
    assert (t.folders, t.files) == (2, 153)
    assert t.bytes == 7 * TiB + 3 * 2**30
    assert abs(s.cost() - t.bytes / 1e12 * 0.99) < 1e-9
    s.unselect(0)
    assert s.totals().bytes == 3 * 2**30
    assert s.chosen_folders() == [CAFE]


def test_filter_keeps_selection_of_hidden_rows():
    s = state()
    s.select(0)
    s.set_rules(Rules(text="caf"))
    assert view(s) == [CAFE]
    assert s.unselect_shown() == 0  # /data/lab/a is hidden, stays selected
    assert s.chosen_folders() == [b"/data/lab/a"]
    conflict = s.select_shown()
    assert conflict.added == 1 and not conflict.skipped


def test_access_checker_checks_everything_and_survives_errors():
    folders = [b"/ok", b"/bad\0nul", b"/no"]

    def check(p: bytes) -> bool:
        if b"\0" in p:
            raise ValueError("embedded null byte")
        return p == b"/ok"

    c = AccessChecker(folders, check).start()
    assert c.wait(10)
    assert [c.get(i) for i in range(3)] == [True, False, False]
    assert c.generation == 3
