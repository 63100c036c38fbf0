"""Benchmark ``froster-slurm report``: generation time and file size for 10k, 100k and 1M
folders, and the first render of the 100k page in Chromium.

Whole processes, interleaved rounds, median and best, CPU beside wall (the children's rusage),
and the load average before each figure (other work on the machine shows there).

Baselines measured in the same run:
- generation: ``froster-slurm select`` on the same hotspots file (reads and rules the same
  rows, writes nothing big): what the report adds on top of reading the data;
- size: the hotspots CSV itself and ``gzip -6`` of it (the data a person could mail instead);
- render: the same new Chromium process opening an empty page (the browser's own start-up).
  Real time throughout (``--virtual-time-budget`` would make the page's clock virtual).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from report_testdata import generate  # noqa: E402

from froster_slurm.rank.hotspots import write_hotspots  # noqa: E402

PY = sys.executable
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def timed(cmd: list[str], **kw) -> tuple[float, float, str]:
    """(wall s, CPU s of the process tree, stdout) of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def fmt(xs: list[float]) -> str:
    return f"best {min(xs):6.2f}  median {statistics.median(xs):6.2f}"


def bench_generation(out: Path, sizes: list[int], repeat: int) -> Path:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print(f"\n== report generation ({repeat} interleaved rounds; {load()})")
    files = {}
    for n in sizes:
        hot = out / f"report-hot-{n}.csv"
        if not hot.exists():
            t0 = time.perf_counter()
            write_hotspots(hot, generate(n, seed=11))
            print(f"   generated {hot.name} ({n:,} folders) in {time.perf_counter() - t0:.1f} s")
        files[n] = hot
    res: dict[tuple[int, str], list[tuple[float, float]]] = {}
    sizes_out: dict[int, int] = {}
    for _ in range(repeat):
        for n, hot in files.items():
            page = out / f"report-{n}.html"
            w, c, _ = timed([PY, "-m", "froster_slurm", "report", str(hot), "-o", str(page)],
                            env=env)
            res.setdefault((n, "report"), []).append((w, c))
            sizes_out[n] = page.stat().st_size
            w, c, _ = timed([PY, "-m", "froster_slurm", "select", str(hot), "--top", "10",
                             "-o", str(out / "bench.sel")], env=env)
            res.setdefault((n, "select"), []).append((w, c))
    print(f"   {'folders':>9}  {'what':<22} {'wall s':<28} {'CPU s':<28}")
    for n in files:
        for what, label in (("report", "report"), ("select", "baseline: select")):
            xs = res[(n, what)]
            print(f"   {n:>9,}  {label:<22} {fmt([w for w, _ in xs]):<28} "
                  f"{fmt([c for _, c in xs]):<28}")
    print(f"\n   {'folders':>9}  {'report.html':>12}  {'hotspots.csv':>13}  {'gzip -6 csv':>12}"
          f"  {'per folder':>10}")
    for n, hot in files.items():
        gz = len(subprocess.run(["gzip", "-6", "-c", str(hot)], capture_output=True,
                                check=True).stdout)
        print(f"   {n:>9,}  {sizes_out[n] / 1e6:>9.1f} MB  {hot.stat().st_size / 1e6:>10.1f} MB"
              f"  {gz / 1e6:>9.1f} MB  {sizes_out[n] / n:>8.0f} B")
    return out / f"report-{100_000 if 100_000 in files else sizes[0]}.html"


def _open_once(page_path: Path, drawn: str) -> tuple[float, float | None]:
    """A new Chromium process (Debian's, driven by Playwright) opens the page: seconds from
    launching it until ``drawn`` matches, and the page's own time since navigation."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        t0 = time.perf_counter()
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(page_path.as_uri(), wait_until="commit")
            page.wait_for_selector(drawn, timeout=60_000)
            wall = time.perf_counter() - t0
            ms = page.get_attribute("body", "data-rendered-ms")
        finally:
            browser.close()
    return wall, int(ms) / 1000 if ms else None


def bench_render(page: Path, repeat: int) -> None:
    blank = page.with_name("blank.html")
    blank.write_text("<!DOCTYPE html><html><body id=blank>blank</body></html>")
    print(f"\n== first render in Chromium of {page.name} ({page.stat().st_size / 1e6:.1f} MB), "
          f"{repeat} interleaved rounds, a new browser process each ({load()})")
    walls: dict[str, list[float]] = {"report": [], "blank": []}
    inpage: list[float] = []
    for _ in range(repeat):
        w, ms = _open_once(page, "body[data-rendered-ms]")
        walls["report"].append(w)
        inpage.append(ms or 0.0)
        walls["blank"].append(_open_once(blank, "#blank")[0])
    print(f"   {'what':<44} {'s':<28}")
    print(f"   {'report: browser start to treemap+table drawn':<44} {fmt(walls['report'])}")
    print(f"   {'baseline: browser start to an empty page':<44} {fmt(walls['blank'])}")
    print(f"   {'report drawn, in page (since navigation)':<44} {fmt(inpage)}")
    print(f"   target: < 2 s to draw; {load()} after")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--render-repeat", type=int, default=5)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    page = bench_generation(a.out, [int(s) for s in a.sizes.split(",")], a.repeat)
    bench_render(page, a.render_repeat)


if __name__ == "__main__":
    main()
