"""crawl.modes.run_crawl, the library side of `froster-slurm crawl`: which mode the arguments
choose, which combinations are refused, what is reported and shown (the incomplete
verdict, exit 3, is pinned through the command in test_crawl_cli.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from froster_slurm.crawl import COLUMNS, CrawlOptions, iter_rows
from froster_slurm.crawl.modes import ShardFlags, run_crawl
from froster_slurm.errors import UserError


class Line:
    def __init__(self, label: str, shown: list[str]) -> None:
        self.label, self.shown, self.closed = label, shown, False
        shown.append(label)

    def __call__(self, entries: int, directories: int, errors: int) -> None:
        pass

    def done(self) -> None:
        self.closed = True


def tree(tmp_path: Path) -> bytes:
    root = tmp_path / "data"
    for top in ("a", "b", "c"):
        (root / top / "sub").mkdir(parents=True)
        for i in range(3):
            (root / top / "sub" / f"f{i}").write_bytes(b"x" * i)
    (root / "odd\nname \xe9".encode("utf-8", "surrogateescape").decode()).write_bytes(b"1")
    return os.fsencode(root)


def call(roots: list[bytes], out: Path, **kw) -> tuple[list, list[str], list[str], list[Line]]:  # noqa: ANN003
    reports: list[str] = []
    notes: list[str] = []
    lines: list[Line] = []
    labels: list[str] = []

    def progress(label: str) -> Line:
        lines.append(Line(label, labels))
        return lines[-1]

    got = run_crawl(roots, out, engine="builtin", workers=1, threads=1,
                    options=CrawlOptions(), progress=progress, report=reports.append,
                    note=notes.append, **kw)
    return got, reports, notes, lines


def test_a_whole_crawl_writes_one_csv_and_reports_its_summary(tmp_path: Path) -> None:
    root = tree(tmp_path)
    out = tmp_path / "c.csv"
    got, reports, notes, lines = call([root], out)
    assert len(got) == 1 and reports == [got[0].line()] and notes == []
    assert [ln.label for ln in lines] == [""] and all(ln.closed for ln in lines)
    paths = {row[COLUMNS.index("filename")] for row in iter_rows(out)}
    assert any(b"odd\nname" in p for p in paths)


def test_shards_here_plan_then_crawl_each_in_turn(tmp_path: Path) -> None:
    root = tree(tmp_path)
    out = tmp_path / "shards"
    got, reports, notes, lines = call([root], out, shards=2)
    assert len(got) == 2 and len(notes) == 1 and (out / "plan.json").exists()
    assert reports[:2] == [s.line() for s in got] and reports[2].startswith("all 2 shards:")
    assert [ln.label for ln in lines] == ["shard 0/2: ", "shard 1/2: "]
    # one array task's view of the same plan, with a flag over the plan's options
    one, reports, _notes, lines = call([], out, shard_index=1,
                                       shard_flags=ShardFlags(no_snapshots=False))
    assert len(one) == 1 and reports == [one[0].line()] and lines[0].label == "shard 1: "
    with pytest.raises(UserError, match="different number of shards"):
        call([], out, shard_index=0, shards=3)


def test_combinations_that_cannot_work_are_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    root = tree(tmp_path)
    with pytest.raises(UserError, match="nothing to crawl"):
        call([], tmp_path / "x.csv")
    with pytest.raises(UserError, match="give --shards N"):
        call([root], tmp_path / "s", shard_index=0)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "s").exists()
