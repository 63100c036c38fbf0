"""``froster-slurm report``: the tree, the plan's figures worked out by hand, the page's
escaping, and the page in headless Chromium as a person uses it (drill down, back, sort)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import browser_page
from rank_testdata import tree_rows, write_csv
from report_testdata import generate

from froster_slurm.pick.selection import Rules, Uploads
from froster_slurm.rank.hotspots import Hotspot, write_hotspots
from froster_slurm.report.model import breakdown, build_tree
from froster_slurm.report.plan import PlanSettings, make_plan

GiB, MiB, DAY = 1024**3, 1024**2, 86400
NOW = 1_780_000_000


def hs(folder: bytes, nbytes: int, files: int, used_days_ago: int, owner: str = "ann",
       total: tuple[int, int] | None = None) -> Hotspot:
    t = NOW - used_days_ago * DAY if files else 0
    tb, tf = total or (nbytes, files)
    return Hotspot(folder, nbytes, files, tb, tf, nbytes, nbytes // files if files else 0, t, t,
                   owner, "lab", folder.count(b"/") - 2)


def settings(**kw) -> PlanSettings:
    base = dict(rules=Rules(min_size=GiB, older_than=365 * DAY), min_avg_size=10 * MiB,
                recursive=False, storage_class="DEEP_ARCHIVE",
                prices={"DEEP_ARCHIVE": 0.99}, put_prices={"DEEP_ARCHIVE": 0.05},
                uploads=Uploads(bundle_threshold=MiB, bundle_size=4 * GiB))
    base.update(kw)
    return PlanSettings(**base)


# --- the model -----------------------------------------------------------------------------

def test_tree_links_each_folder_to_its_nearest_listed_ancestor() -> None:
    rows = [hs(b"/d/a/b/c", 1, 1, 1), hs(b"/d/a", 1, 1, 1), hs(b"/d/caf\xe9", 1, 1, 1),
            hs(b"/d/caf\xe9/x", 1, 1, 1), hs(b"/e", 1, 1, 1), hs(b"/d/a2", 1, 1, 1)]
    t = build_tree(rows)
    by_name = {h.folder: i for i, h in enumerate(t.rows)}
    a, c = by_name[b"/d/a"], by_name[b"/d/a/b/c"]
    assert t.parent[a] == -1 and t.names[a] == "/d/a"
    assert t.parent[c] == a and t.names[c] == "b/c"  # the unlisted level stays in the name
    cafe, x = by_name[b"/d/caf\xe9"], by_name[b"/d/caf\xe9/x"]
    assert t.names[cafe] == "/d/caf\\xe9" and t.parent[x] == cafe and t.names[x] == "x"
    assert t.parent[by_name[b"/d/a2"]] == -1  # a prefix of the name is not a parent
    assert all(p < i for i, p in enumerate(t.parent))  # parents first: the page relies on it


def test_breakdown_counts_each_folders_own_bytes_once_by_age_owner_and_group() -> None:
    rows = [hs(b"/d/a", 100, 1, 10, "ann"), hs(b"/d/a/b", 50, 1, 100, "bob"),
            hs(b"/d/c", 7, 1, 3000, "ann"), hs(b"/d/empty", 0, 0, 0, "bob")]
    b = breakdown(rows, NOW)
    assert b.by_age["used"] == [100, 0, 50, 0, 0, 7]
    assert b.by_owner == {"ann": 107, "bob": 50} and b.by_group == {"lab": 157}


# --- the plan: selection's rules and cost code, figures by hand -----------------------------

def test_plan_picks_what_the_rules_pass_and_prices_it() -> None:
    rows = [hs(b"/d/a", 2 * GiB, 2, 400),            # picked: 2 objects of 1 GiB
            hs(b"/d/b", 5 * GiB, 5000, 400),         # average 1 MiB < 10 MiB
            hs(b"/d/c", 3 * GiB, 3, 10),             # used 10 days ago
            hs(b"/d/a/x", 3 * GiB // 2, 1, 500),     # picked: inside /d/a is fine (direct)
            hs(b"/d/e", GiB // 2, 1, 900)]           # too small
    plan = make_plan(build_tree(rows).rows, settings(), NOW)
    assert sorted(h.folder for h in plan.chosen) == [b"/d/a", b"/d/a/x"]
    assert plan.totals.bytes == 2 * GiB + 3 * GiB // 2 and plan.totals.files == 3
    assert plan.monthly == pytest.approx((2 * GiB + 3 * GiB // 2) / 1e12 * 0.99)
    # /d/a: 2 multipart objects of 205 parts + create/complete; /d/a/x: 308 parts + 2;
    # plus 3 trace copies each
    assert plan.objects == (2 + 3) + (1 + 3)
    assert plan.requests == 2 * (205 + 2) + 3 + (308 + 2) + 3
    assert plan.put == pytest.approx(plan.requests / 1000 * 0.05)


def test_plan_recursive_drops_folders_inside_a_picked_one() -> None:
    rows = [hs(b"/d/a", 2 * GiB, 2, 400, total=(4 * GiB, 3)), hs(b"/d/a/x", 2 * GiB, 1, 500)]
    plan = make_plan(rows, settings(recursive=True), NOW)
    assert [h.folder for h in plan.chosen] == [b"/d/a"]
    assert plan.totals.bytes == 4 * GiB and plan.matched == 2


def test_upload_estimate_bundles_small_files_and_reads_rclone_flags() -> None:
    u = Uploads(bundle_threshold=MiB, bundle_size=4 * GiB)
    small = hs(b"/d/s", 9 * GiB, 90_000, 1)  # ~100 KiB files: two full bundles and a rest
    objects, requests = u.folder(small, recursive=False)
    assert objects == 3 + 3
    assert requests == 2 * (-(-4 * GiB // (5 * MiB)) + 2) + (-(-GiB // (5 * MiB)) + 2) + 3
    assert u.folder(hs(b"/d/none", 0, 0, 0), recursive=False) == (0, 0)
    flags = Uploads.from_flags(MiB, 4 * GiB, ["--s3-chunk-size=64M", "--s3-upload-cutoff",
                                              "1Gi", "--transfers=8"])
    assert (flags.chunk_size, flags.upload_cutoff) == (64 * MiB, GiB)


# --- the file ------------------------------------------------------------------------------

class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.external: list[str] = []
        self.handlers: list[str] = []
        self.data_block = ""
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        d = dict(attrs)
        self._in_data = d.get("id") == "data"
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.external.append(value)
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_block += data

    def handle_endtag(self, tag: str) -> None:
        self._in_data = False


def report(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The command as a user runs it: a whole process."""
    return subprocess.run([sys.executable, "-m", "froster_slurm", "report", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_report_from_a_crawl_and_from_its_hotspots_file(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROSTER_SLURM_RANK__THREADS", "1")
    crawl = write_csv(tmp_path / "crawl.csv", tree_rows())
    p = report([str(crawl), "-o", "from-crawl.html", "--min-size", "0", "--min-avg-size", "0"],
               tmp_path)
    assert p.returncode == 0, p.stderr
    assert "wrote from-crawl.html" in p.stdout and "5 folders" in p.stdout
    page = (tmp_path / "from-crawl.html").read_text()
    scan = _Scan()
    scan.feed(page)
    assert scan.tags["script"] == 2 and not scan.external and not scan.handlers
    assert "default-src 'none'" in page
    data = json.loads(gzip.decompress(base64.b64decode(scan.data_block)))
    assert sorted(data["names"]) == sorted(["/r", "caf\\xe9", "empty", "sub", "deep"])
    assert "caf\xe9" not in page  # non-UTF-8 bytes are shown as \xNN, never raw

    hot = tmp_path / "hot.csv"
    assert subprocess.run([sys.executable, "-m", "froster_slurm", "rank", str(crawl), "-o",
                           str(hot), "--min-size", "0", "--min-avg-size", "0", "-q"],
                          capture_output=True, timeout=300).returncode == 0
    p = report([str(hot), "-o", "from-hot.html", "--min-size", "0", "--min-avg-size", "0"],
               tmp_path)
    assert p.returncode == 0, p.stderr
    assert "hotspots file" in (tmp_path / "from-hot.html").read_text()


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    p = report([str(tmp_path / "missing.csv"), "-o", "x.html"], tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.startswith("froster-slurm: error:") and p.stderr.count("\n") == 1
    p = report([str(tmp_path / "missing.csv"), "-o", str(tmp_path / "no" / "x.html")], tmp_path)
    assert "Traceback" not in p.stderr


# --- in the browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report")
    write_hotspots(d / "hot.csv", generate(3000, seed=7))
    p = report([str(d / "hot.csv"), "-o", "r.html", "--older-than", "2y"], d)
    assert p.returncode == 0, p.stderr
    return d / "r.html"


def test_page_in_chromium_shows_every_part_and_escapes_names(big_page: Path) -> None:
    with browser_page(1280, 1000) as page:
        page.goto(big_page.as_uri())
        page.wait_for_selector("body[data-rendered-ms]", timeout=20_000)
        assert page.errors_seen == []
        assert all(u.startswith("file://") for u in page.requests_seen), page.requests_seen
        for sel in ("#plan-folders", "#plan-bytes", "#plan-monthly", "#plan-put",
                    "table.rules", "#treemap svg", "#crumbs button", ".legend",
                    "#chart-age svg", "#chart-owner svg", "#chart-group svg", "#folders"):
            assert page.locator(sel).first.is_visible(), sel
        assert page.locator("#treemap g.node").count() > 20
        assert page.locator("#folders tbody tr").count() == 200
        assert "DEEP_ARCHIVE" in page.inner_text("#plan")
        assert "730 days" in page.inner_text("table.rules")
        # The hostile names are text, in the table and the treemap, and injected nothing.
        page.select_option("#limit", "5000")
        cells = page.locator("#folders td.path").all_inner_texts()
        shown = [c for c in cells if "<script>alert(1)</script>" in c]
        assert shown, "the <script> folder is listed as text"
        assert any("caf\\xe9-latin1" in c for c in cells)
        assert any('it\'s "quoted" & <b>bold</b>' in c for c in cells)
        assert page.evaluate("document.querySelectorAll('script').length") == 2
        assert page.evaluate("document.querySelectorAll('img, b').length") == 0
        assert page.dialogs_seen == []  # no alert() ran
        page.select_option("#limit", "100")
        page.screenshot(path=str(big_page.with_name("report.png")))
        shot = big_page.with_name("report.png")
        assert shot.stat().st_size > 50_000  # a drawn page, not a blank one


def test_page_drills_down_and_back_and_sorts(big_page: Path) -> None:
    with browser_page(1280, 1000) as page:
        page.goto(big_page.as_uri())
        page.wait_for_selector("body[data-rendered-ms]", timeout=20_000)
        crumbs = page.locator("#crumbs button")
        assert crumbs.all_inner_texts() == ["all folders", "/data/lab"]
        first = page.locator("#treemap g.node").first
        name = first.locator("text").first.text_content()
        first.click()
        trail = crumbs.all_inner_texts()
        assert len(trail) == 3 and trail[-1].startswith(name.rstrip("\u2026"))
        page.keyboard.press("Escape")
        assert crumbs.all_inner_texts() == ["all folders", "/data/lab"]
        first.click()
        crumbs.first.click()  # "all folders"
        assert crumbs.all_inner_texts() == ["all folders"]
        # A table row's folder opens it in the treemap.
        page.locator("#folders td.path").nth(3).click()
        assert len(crumbs.all_inner_texts()) >= 2
        # Sort by files, largest first, then flip.
        page.check("#exact")
        page.click("#folders th[data-key=files]")
        files = [int(t) for t in page.locator("#folders tbody tr td:nth-child(3)")
                 .all_inner_texts()]
        assert files == sorted(files, reverse=True) and files[0] > files[-1]
        page.click("#folders th[data-key=files]")
        files = [int(t) for t in page.locator("#folders tbody tr td:nth-child(3)")
                 .all_inner_texts()]
        assert files == sorted(files)
        # Colour by atime: the age chart follows.
        page.check("input[name=basis][value=atime]")
        assert page.locator(".age-chart[data-basis=atime]").is_visible()
        assert not page.locator(".age-chart[data-basis=used]").is_visible()


def test_page_of_100k_folders_draws_within_2_seconds(tmp_path: Path) -> None:
    write_hotspots(tmp_path / "hot.csv", generate(100_000, seed=3))
    p = report([str(tmp_path / "hot.csv"), "-o", "r.html"], tmp_path)
    assert p.returncode == 0, p.stderr
    size = (tmp_path / "r.html").stat().st_size
    assert size < 8e6, f"{size:,} bytes: too big to mail"
    times = []
    with browser_page() as page:
        for _ in range(2):  # the second load shows the page without first-start costs
            t0 = time.monotonic()
            page.goto((tmp_path / "r.html").as_uri())
            page.wait_for_selector("body[data-rendered-ms]", timeout=30_000)
            times.append((time.monotonic() - t0, int(page.get_attribute("body",
                                                                           "data-rendered-ms"))))
        assert re.search(r"100,000 folders", page.inner_text("#source"))
    assert min(ms for _, ms in times) < 2000, times
