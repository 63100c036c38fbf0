"""selection.py: rules, overlap detection, totals, cost and the selection file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pick_testdata import CAFE, DAY, NOW, PRICES, TiB, hs, sample_rows

from froster_slurm.errors import NotFoundError, UserError
from froster_slurm.pick.selection import (
    FolderSet,
    Rules,
    ancestors,
    check_writable,
    filter_rows,
    folder_key,
    format_cost,
    load_hotspots,
    monthly_cost,
    select_by_rules,
    totals,
    write_selection,
)
from froster_slurm.util.paths import read_folder_list


def folders(rows):
    return [h.folder for h in rows]


# --- rules ------------------------------------------------------------------------------------

def test_min_size_uses_the_chosen_measure():
    rows = sample_rows()
    direct = filter_rows(rows, Rules(min_size=3 * TiB), NOW)
    total = filter_rows(rows, Rules(min_size=6 * TiB, by="total"), NOW)
    assert folders(direct) == [b"/data/lab/a"]
    assert folders(total) == [b"/data/lab/a"]
    assert filter_rows(rows, Rules(min_size=6 * TiB, by="direct"), NOW) == []


def test_older_than_counts_the_newest_of_mtime_and_atime():
    old_write_recent_read = hs(b"/x/read", 1, mtime_days=900, atime_days=5)
    cold = hs(b"/x/cold", 1, mtime_days=900, atime_days=800)
    no_atime = hs(b"/x/noatime", 1, mtime_days=900, atime_days=NOW / DAY)  # atime 0
    rows = [old_write_recent_read, cold, no_atime]
    assert folders(filter_rows(rows, Rules(older_than=365 * DAY), NOW)) == [b"/x/cold",
                                                                           b"/x/noatime"]


def test_owner_and_path_text_filters():
    rows = sample_rows()
    assert folders(filter_rows(rows, Rules(owners=frozenset({"bob", "carol"})), NOW)) == [
        CAFE, b"/data/lab/new"]
    assert folders(filter_rows(rows, Rules(text="CAF"), NOW)) == [CAFE]  # ASCII case folded
    assert folders(filter_rows(rows, Rules(text="/a/"), NOW)) == [b"/data/lab/a/sub"]


def test_rules_reject_bad_values():
    with pytest.raises(UserError, match="--by"):
        Rules(by="biggest")
    with pytest.raises(UserError):
        Rules(min_size=-1)


# --- overlap ----------------------------------------------------------------------------------

def test_folder_key_and_ancestors():
    assert folder_key(b"/a//b/") == b"/a/b"
    assert folder_key(b"/") == b"/"
    assert list(ancestors(b"/a/b/c")) == [b"/a/b", b"/a", b"/"]
    assert list(ancestors(b"/")) == []
    assert list(ancestors(b"rel/x")) == [b"rel"]


def test_recursive_set_refuses_descendant_and_ancestor_and_names_the_other():
    s = FolderSet(recursive=True)
    assert s.add(b"/data/lab/a") is None
    inside = s.add(b"/data/lab/a/sub/deeper")
    assert inside and inside.kind == "inside" and inside.other == b"/data/lab/a"
    assert "/data/lab/a/sub/deeper is inside /data/lab/a" in inside.message()
    containing = s.add(b"/data")
    assert containing and containing.kind == "contains" and containing.other == b"/data/lab/a"
    assert s.add(b"/data/lab/a/") is not None  # same folder, other spelling
    assert s.add(b"/data/lab/ab") is None  # a sibling sharing a prefix is not inside
    assert len(s) == 2


def test_discard_releases_ancestors():
    s = FolderSet(recursive=True)
    s.add(b"/p/a/b")
    s.add(b"/p/c")
    assert s.add(b"/p") is not None
    s.discard(b"/p/a/b")
    assert s.add(b"/p") is not None  # /p/c still inside
    s.discard(b"/p/c")
    assert s.add(b"/p") is None
    assert list(s) == [b"/p"]


def test_non_recursive_allows_nesting_but_not_duplicates():
    s = FolderSet(recursive=False)
    assert s.add(b"/a") is None
    assert s.add(b"/a/b") is None
    dup = s.add(b"/a")
    assert dup and dup.kind == "same"


def test_non_utf8_names_are_compared_as_bytes():
    s = FolderSet(recursive=True)
    s.add(CAFE)
    c = s.add(CAFE + b"/x")
    assert c and c.other == CAFE
    assert "caf\\xe9" in c.message()


# --- totals and cost --------------------------------------------------------------------------

def test_totals_follow_recursive_mode():
    rows = sample_rows()[:2]
    assert totals(rows, recursive=True).bytes == 9 * TiB
    assert totals(rows, recursive=True).files == 200
    assert totals(rows, recursive=False).bytes == 7 * TiB
    assert totals(rows, recursive=False).files == 150


def test_monthly_cost_in_decimal_terabytes():
    assert monthly_cost(10**12, "DEEP_ARCHIVE", PRICES) == pytest.approx(0.99)
    assert monthly_cost(5 * 10**12, "GLACIER", PRICES) == pytest.approx(18.0)
    assert monthly_cost(10**12, "ONEZONE", PRICES) is None
    assert format_cost(1234.5, "GLACIER") == "~$1,234.50/month in GLACIER"
    assert "no price for ONEZONE" in format_cost(None, "ONEZONE")


# --- rule-based selection ---------------------------------------------------------------------

def test_select_ranks_and_drops_overlaps_in_recursive_mode():
    rows = sample_rows()
    r = select_by_rules(rows, Rules(), top=None, recursive=True, now=NOW)
    assert folders(r.chosen) == [b"/data/lab/a", b"/data/other/[bold]x", CAFE,
                                 b"/data/lab/new"]
    assert [(c.folder, c.other, c.kind) for c in r.dropped] == [
        (b"/data/lab/a/sub", b"/data/lab/a", "inside")]


def test_select_bigger_descendant_first_drops_the_containing_folder():
    rows = [hs(b"/p", 1, total=100), hs(b"/p/big", 50)]
    r = select_by_rules(rows, Rules(by="direct"), top=None, recursive=True, now=NOW)
    assert folders(r.chosen) == [b"/p/big"]
    assert r.dropped_count("contains") == 1


def test_select_top_counts_kept_folders():
    rows = sample_rows()
    r = select_by_rules(rows, Rules(), top=2, recursive=True, now=NOW)
    assert folders(r.chosen) == [b"/data/lab/a", b"/data/other/[bold]x"]
    r = select_by_rules(rows, Rules(), top=2, recursive=False, now=NOW)
    assert folders(r.chosen) == [b"/data/lab/a", b"/data/lab/a/sub"]
    with pytest.raises(UserError):
        select_by_rules(rows, Rules(), top=0, recursive=True, now=NOW)


# --- files ------------------------------------------------------------------------------------

def test_write_selection_is_exact_bytes(tmp_path: Path):
    dest = tmp_path / "sel"
    odd = [CAFE, b"/data/new\nline", b"/data/-dash $(x)"]
    assert write_selection(dest, odd) == 3
    assert dest.read_bytes() == b"\0".join(odd) + b"\0"
    assert read_folder_list(dest) == odd


def test_write_selection_into_missing_folder_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="cannot write"):
        write_selection(tmp_path / "nope" / "sel", [b"/a"])


def test_check_writable(tmp_path: Path):
    assert check_writable(tmp_path / "sel") == tmp_path / "sel"
    with pytest.raises(NotFoundError):
        check_writable(tmp_path / "missing" / "sel")
    with pytest.raises(UserError, match="directory"):
        check_writable(tmp_path)
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(UserError, match="not writable"):
            check_writable(ro / "sel")


def test_load_hotspots_errors(tmp_path: Path):
    with pytest.raises(NotFoundError):
        load_hotspots(tmp_path / "missing.csv")
    with pytest.raises(UserError, match="directory"):
        load_hotspots(tmp_path)
