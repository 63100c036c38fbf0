"""The scan at submission that sizes the batches (``submit/batching.py``) has one budget for
the whole submission, in entries and in seconds: past it, every folder not looked at is a
task of its own (a big one must not share a batch), and the submitter says so in one line.

Seconds are spent on a fake clock: nothing here waits or measures time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from archive_helpers import write_file
from fake_backend import FakeBackend

from froster_slurm.config import load_config, save_snapshot
from froster_slurm.run.rundir import archive_settings, create_run
from froster_slurm.submit.batching import ScanBudget, plan_batches, scan_folder
from froster_slurm.submit.pipeline import SubmitResult, dispatch_archive

pytestmark = pytest.mark.unit

FILES = 10  # entries per folder


def _folders(root: Path, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        f = os.fsencode(root / f"f{i}")
        for k in range(FILES):
            write_file(f + b"/%d.txt" % k, b"x")
        out.append(f)
    return out


def _cfg(**keys: object):  # noqa: ANN202 - a Config
    # throttle 1: no spreading, so the packing is what the sizes make it
    return load_config({"archive.throttle": 1, "archive.task_minutes": 10, **keys})


class Ticking:
    """A clock that moves one second every time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_the_entry_budget_is_shared_by_every_folder_and_the_rest_are_a_task_each(
        tmp_path: Path) -> None:
    folders = _folders(tmp_path, 5)
    plan = plan_batches(folders, list(range(5)), _cfg(**{"archive.scan_entries": 25}),
                        recursive=False)
    # 0 and 1 were scanned whole (20 entries) and share a batch; 2 ran out mid-way; 3 and 4
    # were not looked at: a batch each.
    assert plan.batches == [[2], [3], [4], [0, 1]]
    assert plan.unscanned == [3, 4]
    assert plan.note.startswith("sizes estimated: the scan at submission stopped at "
                                "archive.scan_entries = 25 after 3 of 5 folders; the other 2 "
                                "are a task each")
    assert "\n" not in plan.note


def test_within_the_budget_every_folder_is_sized_and_nothing_is_said(tmp_path: Path) -> None:
    folders = _folders(tmp_path, 5)
    plan = plan_batches(folders, list(range(5)), _cfg(**{"archive.scan_entries": 50}),
                        recursive=False, clock=lambda: 0.0)
    assert plan.batches == [[0, 1, 2, 3, 4]] and plan.note == "" and plan.unscanned == []


def test_the_seconds_budget_stops_the_scan_on_a_fake_clock(tmp_path: Path) -> None:
    folders = _folders(tmp_path, 8)
    # Every read of the clock is a second: 25 seconds last for about two folders.
    plan = plan_batches(folders, list(range(8)), _cfg(**{"archive.scan_seconds": 25}),
                        recursive=False, clock=Ticking())
    assert "archive.scan_seconds = 25" in plan.note
    assert plan.unscanned and plan.unscanned == list(range(8 - len(plan.unscanned), 8))
    # every folder not scanned is alone in its batch; every folder is in exactly one
    alone = {b[0] for b in plan.batches if len(b) == 1}
    assert set(plan.unscanned) <= alone
    assert sorted(i for b in plan.batches for i in b) == list(range(8))
    # the same folders on a clock that does not move are all sized and packed together
    still = plan_batches(folders, list(range(8)), _cfg(**{"archive.scan_seconds": 25}),
                         recursive=False, clock=lambda: 0.0)
    assert still.batches == [list(range(8))] and still.note == ""


def test_no_budget_means_no_scan_and_known_sizes_need_none(tmp_path: Path) -> None:
    folders = _folders(tmp_path, 3)
    cfg = _cfg(**{"archive.scan_entries": 0})
    plan = plan_batches(folders, [0, 1, 2], cfg, recursive=False)
    assert plan.batches == [[0], [1], [2]] and plan.unscanned == [0, 1, 2]
    assert "after 0 of 3 folders" in plan.note
    # rank knows every size from the crawl: nothing is scanned, nothing is estimated
    known = plan_batches(folders, [0, 1, 2], cfg, recursive=False,
                         sizes={i: (10, FILES) for i in range(3)})
    assert known.batches == [[0, 1, 2]] and known.note == ""


def test_a_budget_counts_entries_and_says_what_ran_out() -> None:
    budget = ScanBudget(3, 100, clock=lambda: 0.0)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    assert budget.spent == "entries" and not budget.left()
    late = ScanBudget(100, 10, clock=iter([0.0, 5.0, 10.0, 11.0]).__next__)
    assert late.take() and not late.take() and late.spent == "seconds"


def test_one_folder_still_stops_at_its_own_limit_without_spending_the_rest(
        tmp_path: Path) -> None:
    (folder,) = _folders(tmp_path, 1)
    budget = ScanBudget(100, 100, clock=lambda: 0.0)
    assert scan_folder(folder, False, limit=4, budget=budget)[2] is False
    assert budget.entries_left == 96 and budget.left()


def test_the_submitter_prints_the_estimate_as_one_note(tmp_path: Path) -> None:
    cfg = _cfg(**{"state_dir": str(tmp_path / "state"), "archive.scan_entries": 15})
    folders = _folders(tmp_path / "src", 4)
    run = create_run(cfg, "archive", folders=folders,
                     archive=archive_settings(cfg, str(tmp_path / "remote")), backend="slurm")
    save_snapshot(cfg, run.config_path)
    result = SubmitResult(run)
    dispatch_archive(run, cfg, FakeBackend(), result)
    notes = [n for n in result.notes if n.startswith("sizes estimated")]
    assert len(notes) == 1 and "the other 2 are a task each" in notes[0]
    assert run.batches_path.read_text().splitlines() == ["1", "2", "3", "0"]
