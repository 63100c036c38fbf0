"""Say why nothing was selected (issue 13 item 6): rank, select and submit name the rule that
removed how many folders and the next thing to try; a submit that selected nothing says so in
status and the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from froster_slurm.cli import main
from froster_slurm.pick.funnel import floor_age, floor_size
from froster_slurm.util.units import parse_age, parse_size

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo tree (scripts/make_demo_tree.py) and its crawl."""
    base = tmp_path_factory.mktemp("demo")
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_tree.py"),
                    str(base / "lab")], check=True, capture_output=True)
    assert main(["crawl", str(base / "lab"), "-o", str(base / "lab.csv")]) == 0
    return base / "lab", base / "lab.csv"


def test_floors_read_back_as_at_most_the_value():
    for n in (1, 1023, 1024, 1536 * 1024, 12 * 1024**2 + 1, 10**12 + 7):
        assert parse_size(floor_size(n)) <= n
        assert parse_size(floor_size(n)) >= n * 0.9
    assert parse_age(floor_age(86400 * 3.7)) == 3 * 86400


def test_rank_with_the_defaults_on_the_demo_tree_says_why(demo, capsys, tmp_path):
    _, crawl = demo
    assert main(["rank", str(crawl), "-o", str(tmp_path / "hot.csv")]) == 0
    err = capsys.readouterr().err
    assert ("0 of 9 folders selected: 'average file >= 10.0 MiB' removed 9; next: try "
            "--min-avg-size 2.4MiB (the largest average left)") in err
    assert main(["rank", str(crawl), "-o", str(tmp_path / "hot.csv"), "--min-avg-size",
                 "2.4MiB"]) == 0
    err = capsys.readouterr().err
    assert ("0 of 9 folders selected: 'average file >= 2.4 MiB' removed 8, 'size >= 1.0 GiB' "
            "removed 1; next: try --min-size 12MiB (the largest folder left)") in err
    # and the suggested values work: one folder listed
    assert main(["rank", str(crawl), "-o", str(tmp_path / "hot.csv"), "--min-avg-size",
                 "2.4MiB", "--min-size", "12MiB"]) == 0
    out = capsys.readouterr().out
    assert "folders listed           1" in out


def test_rank_age_rule(demo, capsys, tmp_path):
    _, crawl = demo
    assert main(["rank", str(crawl), "-q", "-o", str(tmp_path / "h.csv"), "--min-size", "1",
                 "--min-avg-size", "0", "--older-than", "10y"]) == 0
    err = capsys.readouterr().err
    assert ("0 of 9 folders selected: 'size >= 1 B' removed 4, 'unused for 3650 days' removed "
            "5; next: try --older-than 2000d (the longest unused folder left)") in err


def test_select_says_which_rule_removed_how_many(demo, capsys, tmp_path):
    _, crawl = demo
    hot = tmp_path / "hot.csv"
    assert main(["rank", str(crawl), "-q", "-o", str(hot), "--min-size", "0",
                 "--min-avg-size", "0"]) == 0
    code = main(["select", str(hot), "--min-size", "1TB", "--older-than", "30d", "-o",
                 str(tmp_path / "sel")])
    err = capsys.readouterr().err.strip()
    assert code == 64
    assert err == (f"froster-slurm: error: {hot}: 0 of 9 folders selected: 'size >= 931.3 GiB' "
                   "removed 9; next: try --min-size 12MiB (the largest folder left); nothing "
                   "written")
    assert not (tmp_path / "sel").exists()


def test_submit_that_selects_nothing_says_so_in_status_and_summary(demo, capsys, tmp_path):
    lab, _ = demo
    code = main(["submit", str(lab), "--to", str(tmp_path / "archive"), "--backend", "local"])
    out = capsys.readouterr().out
    assert code == 0
    run_id = out.split()[1]
    assert main(["status", run_id]) == 0
    status = capsys.readouterr().out
    why = ("0 of 9 folders selected: 'has files to archive' removed 4, 'average file >= "
           "10.0 MiB' removed 5; next: try --min-avg-size 2.4MiB (the largest average left)")
    assert f"nothing to archive: {why}" in status
    run_dir = Path(os.environ["FROSTER_SLURM_STATE_DIR"]) / "runs" / run_id
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["selection"]["selected"] == 0 and summary["selection"]["message"] == why
    assert "Nothing to archive: 0 of 9 folders selected" in (run_dir / "summary.html").read_text()
    assert main(["status", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == [f"nothing to archive: {why}"]
