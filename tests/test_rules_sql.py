"""The rank job's rules in DuckDB (pick.rules_sql) choose exactly what the Python rules choose
(selection.archive_units + select_by_rules), and explain an empty selection with the same
funnel as selection.why_none, on generated hotspots files with hostile names and ties."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from froster_slurm.pick import rules_sql
from froster_slurm.pick.selection import (
    Rules,
    archive_units,
    load_hotspots,
    select_by_rules,
    why_none,
)
from froster_slurm.rank.hotspots import Hotspot, write_hotspots
from froster_slurm.rank.loader import Engine

NOW = 1_750_000_000.5
DAY = 86400
HOSTILE = [b"plain", b"caf\xe9", b"new\nline", b'q"uote', b"com,ma", b"cr\rx", b"\xff\xfe",
           b"sp ace", b"-rf", b"$(touch PWNED)", b"a/b", "ü".encode()]
OWNERS = ["alice", "bob", "caf\udce9", "ü", "1002"]


def tree(n: int, seed: int) -> list[Hotspot]:
    """n folders of a random tree, sizes drawn from few values (many ties), hostile names."""
    rng = random.Random(seed)
    paths = [b"/data"]
    for i in range(1, n):
        parent = paths[rng.randrange(max(0, i - 300), i)]
        paths.append(parent + b"/" + rng.choice(HOSTILE) + b"%d" % i)
    rng.shuffle(paths)
    rows = []
    for p in paths:
        files = rng.choice([0, 0, 1, 3, 50])
        size = rng.choice([0, 10, 4096, 1 << 20, 1 << 30]) if files else 0
        total_files = files + rng.choice([0, 2, 100])
        total = size + rng.choice([0, 4096, 1 << 30]) * (total_files > files)
        t = int(NOW) - rng.choice([0, 10, 400, 4000]) * DAY if total_files else 0
        rows.append(Hotspot(p, size, files, total, total_files, size,
                            size // files if files else 0, t, t - rng.choice([0, DAY]),
                            rng.choice(OWNERS), "g", p.count(b"/")))
    return rows


def python_select(rows: list[Hotspot], rules: Rules, min_avg: int, top: int | None,
                  recursive: bool) -> tuple[list[Hotspot], int]:
    units = archive_units(rows, min_avg, recursive)
    sel = select_by_rules(units, rules, top=top, recursive=recursive, now=NOW)
    return sel.chosen, sel.matched


CASES = [
    (Rules(), 0, None, True),
    (Rules(), 0, None, False),
    (Rules(by="total"), 0, 50, True),
    (Rules(min_size=4096), 1024, None, True),
    (Rules(min_size=1 << 20, by="total"), 0, 30, False),
    (Rules(older_than=300 * DAY), 0, None, True),
    (Rules(older_than=300 * DAY, by="total"), 4096, 20, True),
    (Rules(owners=frozenset({"caf\udce9", "ü"})), 0, None, True),
    (Rules(owners=frozenset({"bob"}), min_size=10, older_than=5 * DAY), 10, 7, False),
]


@pytest.mark.parametrize("seed", [1, 2])
def test_sql_rules_choose_what_python_rules_choose(tmp_path: Path, seed: int) -> None:
    rows = tree(3000, seed)
    path = tmp_path / "hotspots.csv"
    write_hotspots(path, rows)
    assert load_hotspots(path) == rows  # the file holds every byte of every name
    engine = Engine(memory_limit="256MB", temp_dir=str(tmp_path), threads=2)
    with rules_sql.HotspotsTable(path, engine) as table:
        assert table.count() == len(rows)
        for rules, min_avg, top, recursive in CASES:
            want, matched = python_select(rows, rules, min_avg, top, recursive)
            got = rules_sql.select(table, rules, min_avg=min_avg, top=top,
                                   recursive=recursive, now=NOW)
            # the same rows (every field, exact bytes), in the same order
            assert got.chosen == want, (rules, min_avg, top, recursive)
            assert got.matched == matched
            assert len(want) > 5


FUNNELS = [
    (Rules(min_size=1 << 50), 0, True),
    (Rules(min_size=4096, older_than=100_000 * DAY), 0, False),
    (Rules(older_than=5 * DAY, owners=frozenset({"nobody"})), 10, True),
    (Rules(by="total", min_size=1 << 20), 1 << 40, True),
    (Rules(owners=frozenset({"zed"})), 0, None),
]


def test_sql_funnel_says_what_python_funnel_says(tmp_path: Path) -> None:
    rows = tree(2000, 3)
    path = tmp_path / "hotspots.csv"
    write_hotspots(path, rows)
    with rules_sql.HotspotsTable(path, Engine(memory_limit="256MB")) as table:
        for rules, min_avg, recursive in FUNNELS:
            want = why_none(rows, rules, now=NOW, min_avg=min_avg, recursive=recursive)
            got = rules_sql.funnel(table, rules, now=NOW, min_avg=min_avg, recursive=recursive)
            assert got.to_json_obj() == want.to_json_obj(), rules
            assert got.selected == 0 and "next:" in got.message()


def test_empty_and_foreign_files(tmp_path: Path) -> None:
    from froster_slurm.errors import DataError, NotFoundError

    empty = tmp_path / "empty.csv"
    write_hotspots(empty, [])
    with rules_sql.HotspotsTable(empty, Engine()) as table:
        assert table.count() == 0
        assert rules_sql.select(table, Rules(), min_avg=0, top=None, recursive=True,
                                now=NOW).chosen == []
        assert rules_sql.funnel(table, Rules(), now=NOW, recursive=True).total == 0
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError):
        rules_sql.HotspotsTable(tmp_path / "x.csv", Engine())
    with pytest.raises(NotFoundError):
        rules_sql.HotspotsTable(tmp_path / "missing.csv", Engine())
