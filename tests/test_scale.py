"""Issue 16 at scale, on synthetic runs (tests/scale_runs.py): finalize's memory is flat in the
number of files archived; status of a large run answers with totals and failures first."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scale_runs import make_scale_run

from froster_slurm.catalog import store as catalog

PEAK = """
import json, resource, sys
from pathlib import Path
from froster_slurm.jobs.finalize_stage import finalize
from froster_slurm.run.rundir import Run
s = finalize(Run(Path(sys.argv[1])))
print(json.dumps({"totals": s["totals"], "catalog_error": s["catalog_error"],
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def finalize_peak(run_dir: Path) -> dict:
    """finalize in a process of its own; its peak RSS (KiB) beside its totals."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(run_dir)], capture_output=True,
                         text=True, timeout=300, cwd=run_dir, check=True)
    return json.loads(out.stdout)


def test_finalize_memory_is_flat_in_the_number_of_files(tmp_path: Path) -> None:
    """30 folders of 100 files, then of 2,000: 57,000 more files archived.  Before issue 16
    finalize held every record (~1.2 KB per file: 67 MiB more here); now each record is read
    as its head and dropped, rows reach the catalog in batches."""
    small = make_scale_run(tmp_path / "small", 30, files=100, mix={"failed": 2})
    large = make_scale_run(tmp_path / "large", 30, files=2000, mix={"failed": 2})
    a, b = finalize_peak(small), finalize_peak(large)
    for got, files in ((a, 100), (b, 2000)):
        assert got["catalog_error"] is None
        assert (got["totals"]["done"], got["totals"]["catalog_added"]) == (28, 28)
        assert got["totals"]["files"] == 28 * files
    growth_mib = (b["peak_kib"] - a["peak_kib"]) / 1024
    assert growth_mib < 12, (a, b)
    entries = catalog.entries(tmp_path / "large" / "catalog.duckdb")
    assert len(entries) == 28 and {e.files for e in entries} == {2000}


def status_cli(capsys, *args: str) -> str:  # noqa: ANN001
    from froster_slurm.cli import main

    assert main(["status", *args]) == 0
    return capsys.readouterr().out


def test_status_of_a_large_run_totals_then_failing_and_running_first(
        tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """20,000 folders: the default status totals every folder from the status index and lists
    only the failed, retrying and running ones, failed first, opening only their state files;
    ``--all`` and ``--json`` list every folder.  A torn slot is read from its state file."""
    import os

    from froster_slurm.run import taskslots, taskstate

    monkeypatch.setenv("FROSTER_SLURM_STATE_DIR", str(tmp_path / "st"))
    monkeypatch.setenv("FROSTER_BACKEND", "local")
    run_dir = make_scale_run(tmp_path / "st", 20_000, mix={
        "failed": 30, "retrying": 5, "running": 20, "pending": 945}, fast=True)
    # tear task 0's slot (a done task): status must take its figures from its state file
    with open(taskslots.slots_path(run_dir), "r+b") as f:
        f.seek(len(taskslots.HEADER) + 10)
        f.write(b"\xff\xff")
    opened: list[int] = []
    real = taskstate.load_task

    def counting(rd, index, folder=None):  # noqa: ANN001, ANN202
        opened.append(index)
        return real(rd, index, folder)

    monkeypatch.setattr(taskstate, "load_task", counting)
    out = status_cli(capsys, run_dir.name)
    head = out.splitlines()[0]
    assert "19000/20000 folders archived, 30 failed, 25 running, 945 pending" in head, head
    rows = [line.split() for line in out.splitlines() if line[:6].strip().isdigit()]
    states = [r[1] for r in rows]
    assert states == ["failed"] * 30 + ["retrying"] * 5 + ["running"] * 20, states
    assert "19,000 done, 945 pending" in out and f"status {run_dir.name} --all" in out
    assert set(opened) == {0, *(int(r[0]) for r in rows)}  # only those (+ the torn 0)
    assert out.count("error: rclone copy failed") == 30
    # one folder's name, exactly (a newline, bytes that are not UTF-8)
    failed0 = int(rows[0][0])
    assert os.fsencode(json.loads((run_dir / "tasks" / str(failed0) / "state.json")
                                  .read_text())["folder"]).endswith(b"-%d" % failed0)

    every = status_cli(capsys, run_dir.name, "--all")
    every_rows = [line for line in every.splitlines() if line[:6].strip().isdigit()]
    assert len(every_rows) == 20_000 and "not listed" not in every
    assert every.splitlines()[0] == head
    data = json.loads(status_cli(capsys, run_dir.name, "--json"))
    assert len(data["folders"]) == 20_000 and data["partial"] is False
    assert data["totals"]["failed"] == 30 and data["totals"]["done"] == 19_000


@pytest.mark.unit
def test_the_summary_page_lists_every_folder_not_done_first_and_caps_the_done_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from froster_slurm.report import summary as page

    monkeypatch.setattr(page, "MAX_DONE_ROWS", 3)
    rows = [{"index": i, "folder": f"/d/f{i}", "state": "failed" if i % 4 == 1 else "done",
             "bytes": 1, "files": 1, "objects": 1, "seconds": 1.0, "attempts": 1}
            for i in range(12)]
    done = sum(r["state"] == "done" for r in rows)
    html = page.summary_html({
        "run_id": "r", "finalized": "now", "folders": rows, "storage_classes": {},
        "totals": {"folders": 12, "done": done, "not_done": 12 - done, "bytes": done,
                   "files": done, "objects": done, "run_seconds": 1, "monthly_cost": None}})
    listed = [int(x) for x in re.findall(r"<tr class='(?:ok|bad)'><td class='num'>(\d+)", html)]
    assert listed == [1, 5, 9, 0, 2, 3]  # the three failed, then the first three done
    assert f"the other {done - 3:,} done folders are in summary.json" in html
    assert "froster-slurm status r --all" in html
