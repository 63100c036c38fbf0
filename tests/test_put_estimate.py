"""The one-time PUT-request cost in every estimate a person sees before archiving (issue 15
item 5): ``select``, the picker's status bar and confirmation, ``pick``'s last line, the rank
job of ``submit`` (its log, selection.json and ``status``) and the report's plan all come
from ``selection.put_estimate`` (per folder ``Uploads.folder``, priced by ``priced``).

Figures with the default config (``cost.put_per_1000`` DEEP_ARCHIVE $0.05, AWS S3's list
price; 64 MiB parts for the Glacier classes, larger when a file needs them to fit 10,000):
a 1 TB file is 9,937 requests (96 MiB parts: 9,935 parts + create + complete) plus the 3 trace
objects = 9,940, $0.50; with rclone's own 5 MiB parts and no 10,000-part rule it would have
been ~190,700 requests, $9.54.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pick_testdata import NOW, PRICES, hs, write_sample
from s3server import S3Server
from test_restore_support import configure

from froster_slurm.cli import main
from froster_slurm.config import load_config
from froster_slurm.pick.picker import PickApp
from froster_slurm.pick.selection import (
    PUT_PRICE_SOURCE,
    Rules,
    put_estimate,
    put_estimate_for,
    uploads_from_config,
)
from froster_slurm.report.plan import PlanSettings, make_plan

TB = 10**12
REPO = Path(__file__).resolve().parent.parent


def one_tb_file() -> list:
    return [hs(b"/data/lab/run1", TB, files=1)]


def test_one_terabyte_file_to_deep_archive_is_9940_puts_and_50_cents() -> None:
    est = put_estimate_for(one_tb_file(), True, "DEEP_ARCHIVE", load_config({}))
    assert (est.objects, est.requests) == (1 + 3, 9_937 + 3)
    assert est.price_per_1000 == 0.05 and est.usd == pytest.approx(0.497)
    assert est.text() == (
        "~9,940 PUT requests ~$0.50 once (DEEP_ARCHIVE $0.05 per 1,000, parts of 64.0 MiB or "
        f"larger; {PUT_PRICE_SOURCE})")
    assert "AWS S3 list prices" in PUT_PRICE_SOURCE and "cost.put_per_1000" in PUT_PRICE_SOURCE
    # 40 GB: 64 MiB parts (597 + 2); STANDARD keeps rclone's 5 MiB parts (7,630 + 2)
    forty = [hs(b"/data/lab/run2", 40 * 10**9, files=1)]
    assert put_estimate_for(forty, True, "DEEP_ARCHIVE", load_config({})).requests == 599 + 3
    std = put_estimate_for(forty, True, "STANDARD", load_config({}))
    assert std.requests == 7_632 + 3 and std.usd == pytest.approx(7_635 * 0.005 / 1000)


def test_a_class_without_a_put_price_says_so() -> None:
    est = put_estimate_for(one_tb_file(), True, "none", load_config({}))
    assert est.usd is None and "no PUT price for none in cost.put_per_1000" in est.text()


def test_select_prints_the_put_requests_and_their_price(tmp_path: Path, capsys) -> None:
    hot = write_sample(tmp_path / "hot.csv", one_tb_file())
    assert main(["select", str(hot), "-o", str(tmp_path / "sel")]) == 0
    out = capsys.readouterr().out
    assert "upload requests: ~9,940 PUT requests ~$0.50 once (DEEP_ARCHIVE $0.05" in out


def test_picker_status_bar_and_confirmation_show_the_same_estimate(tmp_path: Path) -> None:
    cfg = load_config({})
    app = PickApp(one_tb_file(), output=tmp_path / "sel", recursive=True, by="direct",
                  storage_class="DEEP_ARCHIVE", prices=PRICES, now=NOW, readable=None,
                  put_prices=cfg.get("cost.put_per_1000"),
                  uploads=uploads_from_config(cfg, "DEEP_ARCHIVE"))
    assert app.state.select(0) is None
    want = put_estimate_for(one_tb_file(), True, "DEEP_ARCHIVE", cfg)
    assert app.state.puts() == want
    _title, lines, _warnings = app._confirm_text(app.state.totals())
    assert f"upload requests: {want.text()}" in lines
    assert want.short() == "~9,940 PUTs ~$0.50"
    app.state.unselect(0)
    assert app.state.puts().requests == 0


def test_report_plan_uses_the_same_function() -> None:
    cfg = load_config({})
    rows = one_tb_file()
    settings = PlanSettings(rules=Rules(), min_avg_size=0, recursive=True,
                            storage_class="DEEP_ARCHIVE", prices=PRICES,
                            put_prices=cfg.get("cost.put_per_1000"),
                            uploads=uploads_from_config(cfg, "DEEP_ARCHIVE"))
    plan = make_plan(rows, settings, NOW)
    est = put_estimate(rows, True, "DEEP_ARCHIVE", cfg.get("cost.put_per_1000"),
                       settings.uploads)
    assert (plan.objects, plan.requests, plan.put) == (est.objects, est.requests, est.usd)


@pytest.mark.s3
def test_submit_rank_job_logs_and_status_shows_the_put_estimate(
        tmp_path: Path, capsys, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = tmp_path / "lab"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_tree.py"), str(lab)],
                   check=True, capture_output=True)
    configure(monkeypatch, s3, backend="local")
    code = main(["submit", str(lab), "--to", s3.remote + "/put-estimate", "--backend", "local",
                 "--min-avg-size", "1KiB", "--min-size", "1MiB", "--storage-class", "DEEP_ARCHIVE",
                 "--top", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    run_id = out.split()[1]
    run_dir = Path(os.environ["FROSTER_SLURM_STATE_DIR"]) / "runs" / run_id
    report = json.loads((run_dir / "selection.json").read_text())
    up = report["upload"]
    assert up["put_requests"] > 0 and up["price_source"] == PUT_PRICE_SOURCE
    assert up["put_usd"] == pytest.approx(up["put_requests"] * 0.05 / 1000)
    assert main(["status", run_id]) == 0
    status = capsys.readouterr().out
    assert f"~{up['put_requests']:,} PUT requests ~$" in status and "DEEP_ARCHIVE" in status
