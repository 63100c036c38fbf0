"""summary.html as a person opens it: real archive tasks to the S3 server, finalize, then the
page in Debian's Chromium: figures, links that lead somewhere, a hostile name shown as text."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote

import pytest
from archive_helpers import make_run, run_task, write_file
from browser import browser_page
from s3server import RCLONE_TEST_FLAGS, S3Server

from froster_slurm.jobs.finalize_stage import finalize
from froster_slurm.run.rundir import Run

pytestmark = pytest.mark.s3
HOSTILE = b"<script>alert(1)</script> caf\xe9"


def test_summary_links_index_and_log_and_shows_time_bytes_by_class_and_cost(
        tmp_path: Path, s3: S3Server) -> None:
    src = os.fsencode(tmp_path / "src")
    good, odd, missing = src + b"/plain", src + b"/" + HOSTILE, src + b"/gone"
    for f in (good, odd):
        write_file(f + b"/big.bin", os.urandom(300 * 1024))
        write_file(f + b"/small.txt", b"small")
    run_dir = make_run(tmp_path / "state", [good, odd, missing], s3.remote,
                       rclone_config=str(s3.rclone_config), rclone_flags=[*RCLONE_TEST_FLAGS],
                       bundle_threshold=64 * 1024, storage_class="DEEP_ARCHIVE",
                       max_attempts=1)
    for i in range(3):
        run_task(run_dir, i)
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "archive-local9_0.out").write_text("task 0 log\n")
    summary = finalize(Run(run_dir))
    t = summary["totals"]
    assert (t["done"], t["not_done"]) == (2, 1)
    deep = summary["storage_classes"]["DEEP_ARCHIVE"]
    assert deep["folders"] == 2 and deep["bytes"] == 2 * (300 * 1024 + 5)
    assert deep["monthly_cost"] == pytest.approx(deep["bytes"] / 1e12 * 0.99)
    rows = summary["folders"]
    assert rows[0]["log"] == "logs/archive-local9_0.out" and rows[0]["seconds"] is not None
    assert json.loads((run_dir / "summary.json").read_text())["totals"]["objects"] > 0

    with browser_page(1300, 900) as page:
        page.goto((run_dir / "summary.html").as_uri())
        assert page.errors_seen == [] and page.dialogs_seen == []
        for sel in ("#done", "#bytes", "#throughput", "#cost", "#classes", "#folders", ".retry"):
            assert page.locator(sel).is_visible(), sel
        assert "2 of 3" in page.inner_text("#done")
        assert "DEEP_ARCHIVE" in page.inner_text("#classes")
        assert "$0.00" in page.inner_text("#cost")
        assert "froster-slurm retry" in page.inner_text(".retry")
        paths = page.locator("#folders td.path").all_inner_texts()
        assert any("<script>alert(1)</script> caf\\xe9" in p for p in paths)
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        # Every index.html link opens the folder's own page; the log link its log.
        hrefs = [page.locator("a.index").nth(i).get_attribute("href") for i in range(2)]
        for href in hrefs:
            target = os.fsencode(unquote(href.removeprefix("file://"), errors="surrogateescape"))
            assert os.path.isfile(target), href
        assert os.fsencode(unquote(hrefs[1].removeprefix("file://"),
                                   errors="surrogateescape")).startswith(odd + b"/")
        page.click("a.index >> nth=0")
        assert "froster" in page.title().lower() or page.url.endswith("index.html")
        page.go_back()
        page.click("a.log >> nth=0")
        assert "task 0 log" in page.content()
        page.go_back()
        page.screenshot(path=str(tmp_path / "summary.png"), full_page=True)
