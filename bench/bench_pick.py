"""Benchmark the picker on large hotspots files (not a test: prints figures, asserts nothing).

    .venv/bin/python bench/bench_pick.py [--rows 1000000,5000000] [--repeat 3] [--no-ops]

1. First frame, whole processes (issue 16: "pick opens 5M folders in < 5 s without holding
   every row as a Python object").  New: ``froster-slurm pick HOTSPOTS`` as the CLI runs it
   (config, the DuckDB row store, the Textual app), headless through Textual's ``run_test``
   (the terminal check and ``App.run`` replaced, nothing else); the first frame is the moment
   the table draws its first folder row.  Baseline: what the picker did before it could draw
   anything, every row read into a ``Hotspot`` (``read_hotspots``) and the view's index list
   sorted by size (the old ``PickState``): a lower bound of the old first frame, which then
   also started Textual.  Rounds alternate the two (interleaved); the table shows median and
   best of the wall seconds from spawning the process to the first frame, the CPU seconds
   of the process to that point, its peak RSS then, and the whole process (until exit: wall,
   CPU from ``os.wait4``, peak RSS from GNU time).  The load average is printed.
2. In-process figures at the largest size (``--no-ops`` skips them): page down, jump to the
   end, sorts, a filter, the tree, select-all of a filtered view.

Files are made in DuckDB (``tests/pick_testdata.synthetic_hotspots``) and cached under
``bench/out/pick`` (delete it to regenerate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

OUT = REPO / "bench" / "out" / "pick"
TIME = "/usr/bin/time"  # GNU time: the child's own peak RSS
NOW = 1_700_000_000

# The real command, headless.  argv: hotspots, result file, spawn time (epoch seconds).
NEW = r"""
import asyncio, json, os, resource, sys, time
t_spawn = float(sys.argv[3])
from froster_slurm.cli import main, pick_cmd
from froster_slurm.pick.picker import PickApp
from froster_slurm.pick.table import FolderTable
seen = {}
draw = FolderTable.render_line
def render_line(self, y):
    strip = draw(self, y)
    if y >= 1 and "first_frame" not in seen and strip.text.strip():
        t = os.times()
        seen.update(first_frame=time.time() - t_spawn, cpu=t.user + t.system,
                    rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    row=strip.text.strip()[:40])
    return strip
FolderTable.render_line = render_line
def run(self):
    async def go():
        async with self.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            await pilot.press("q")
    asyncio.run(go())
    return None
PickApp.run = run
pick_cmd._require_terminal = lambda: None
rc = main(["pick", sys.argv[1], "-o", sys.argv[2] + ".selection"])
open(sys.argv[2], "w").write(json.dumps(seen))
"""

# The old picker's work before its first frame: every row an object, the view sorted.
BASELINE = r"""
import json, os, resource, sys, time
t_spawn = float(sys.argv[3])
from froster_slurm.pick.selection import load_hotspots
rows = load_hotspots(sys.argv[1])
view = list(range(len(rows)))
view.sort(key=lambda i: rows[i].bytes, reverse=True)
t = os.times()
seen = dict(first_frame=time.time() - t_spawn, cpu=t.user + t.system,
            rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rows=len(rows))
open(sys.argv[2], "w").write(json.dumps(seen))
"""


def hotspots_file(rows: int) -> Path:
    from pick_testdata import synthetic_hotspots

    path = OUT / f"hotspots-{rows}.csv"
    if not path.exists():
        t0 = time.perf_counter()
        synthetic_hotspots(path, rows)
        print(f"made {path} ({rows:,} rows) in {time.perf_counter() - t0:.1f} s")
    return path


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "FROSTER_"))}
    home = OUT / "home"  # no user's or site's config
    home.mkdir(parents=True, exist_ok=True)
    env.update(PYTHONPATH=str(REPO), HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               FROSTER_SLURM_STATE_DIR=str(home / "state"), TERM="xterm-256color")
    return env


def run_child(code: str, path: Path) -> dict:
    """One whole process: its first-frame figures plus wall, CPU and peak RSS until exit."""
    result = OUT / f".result.{os.getpid()}"
    rss = OUT / f".rss.{os.getpid()}"
    argv = [TIME, "-f", "%M", "-o", str(rss), sys.executable, "-c", code, str(path),
            str(result), ""]
    with open(os.devnull, "wb") as null:
        t0 = time.perf_counter()
        argv[-1] = repr(time.time())
        pid = os.posix_spawn(argv[0], argv, child_env(), file_actions=[
            (os.POSIX_SPAWN_DUP2, null.fileno(), 1), (os.POSIX_SPAWN_DUP2, null.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    if status:
        sys.exit(f"child failed (status {status}): {code[:60]!r} {path}")
    got = json.loads(result.read_text())
    result.unlink()
    for extra in (Path(f"{result}.selection"),):
        extra.unlink(missing_ok=True)
    got.update(wall=wall, total_cpu=usage.ru_utime + usage.ru_stime,
               peak_mb=int(rss.read_text().split()[-1]) / 1024)
    rss.unlink()
    return got


def show(name: str, rs: list[dict]) -> None:
    def mb(key: str) -> str:
        return f"{statistics.median(r[key] for r in rs):6.0f}"

    ff = [r["first_frame"] for r in rs]
    print(f"  {name:<26} {statistics.median(ff):6.2f} {min(ff):6.2f} "
          f"{statistics.median(r['cpu'] for r in rs):6.2f} {mb('rss_mb')}   "
          f"{statistics.median(r['wall'] for r in rs):6.2f} "
          f"{statistics.median(r['total_cpu'] for r in rs):6.2f} {mb('peak_mb')}")


def bench_first_frame(sizes: list[int], repeat: int, baseline_max: int) -> None:
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; {repeat} interleaved rounds")
    print(f"  {'':<26} {'first frame (s)':>13} {'CPU':>6} {'RSS':>6}   "
          f"{'whole process':>20}")
    print(f"  {'':<26} {'median':>6} {'best':>6} {'s':>6} {'MiB':>6}   "
          f"{'wall s':>6} {'CPU s':>6} {'MiB':>6}")
    for n in sizes:
        path = hotspots_file(n)
        contenders = {"pick (DuckDB rows)": NEW}
        if n <= baseline_max:
            contenders["baseline (rows as objects)"] = BASELINE
        results: dict[str, list[dict]] = {k: [] for k in contenders}
        for _ in range(repeat):
            for name, code in contenders.items():
                results[name].append(run_child(code, path))
        print(f"{n:,} folders ({path.stat().st_size / 1e6:,.0f} MB hotspots file); first row "
              f"drawn: {results['pick (DuckDB rows)'][0].get('row', '?')!r}")
        for name, rs in results.items():
            show(name, rs)
        if len(results) == 2:
            new = statistics.median(r["first_frame"] for r in results["pick (DuckDB rows)"])
            old = statistics.median(r["first_frame"]
                                    for r in results["baseline (rows as objects)"])
            print(f"  first frame: {old / new:.1f}x sooner than the baseline's rows alone")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def timed(label: str, t0: float) -> float:
    t = time.perf_counter() - t0
    print(f"  {label:<52} {t * 1000:9.1f} ms")
    return t


async def bench_ops(path: Path) -> None:
    """Interactive operations in one process, on the app as the person drives it."""
    from froster_slurm.pick.picker import PickApp
    from froster_slurm.pick.rowstore import HotspotStore
    from froster_slurm.pick.selection import Rules

    with HotspotStore(path) as rows:
        app = PickApp(rows, output=path.with_suffix(".sel"), recursive=True, by="direct",
                      storage_class="DEEP_ARCHIVE", prices={"DEEP_ARCHIVE": 0.99}, now=NOW,
                      readable=None)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            table = app.table
            t0 = time.perf_counter()
            for _ in range(100):
                table.action_page(1)
                for y in range(table.size.height):
                    table.render_line(y)
            t = time.perf_counter() - t0
            print(f"  {'page down + draw a page (widget only), per page':<52} "
                  f"{t * 10:9.1f} ms")
            t0 = time.perf_counter()
            await pilot.press("end")
            await pilot.pause()
            timed("jump to the last row (the first whole sort)", t0)
            for key, name in (("1", "folder"), ("6", "newest mtime"), ("2", "size")):
                t0 = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                timed(f"sort by {name} (key {key}), cursor kept", t0)
            t0 = time.perf_counter()
            app.state.set_rules(Rules(text="lab7", min_size=2**30, older_than=180 * 86400))
            app.table.reload()
            await pilot.pause()
            timed(f"filter path+size+age -> {len(app.state.view):,} shown", t0)
            t0 = time.perf_counter()
            await pilot.press("a")
            await pilot.pause()
            timed(f"select all shown ({len(app.state.selected):,} selected)", t0)
            app.state.set_rules(Rules())
            app.table.reload()
            t0 = time.perf_counter()
            await pilot.press("t")
            await pilot.pause()
            timed(f"open the tree (parents of every row) -> {len(app.state.view):,} shown", t0)
            await pilot.press("q", "q")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000000",
                    help="comma-separated sizes (e.g. 1000000,5000000)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-max", type=int, default=5_000_000,
                    help="no baseline above this many rows (it needs ~1 GB per 1M rows)")
    ap.add_argument("--no-ops", action="store_true", help="skip the in-process figures")
    args = ap.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    print("== first frame of `froster-slurm pick`, whole processes ==")
    bench_first_frame(sizes, args.repeat, args.baseline_max)
    if not args.no_ops:
        print(f"\n== in-process operations at {max(sizes):,} folders ==")
        asyncio.run(bench_ops(hotspots_file(max(sizes))))


if __name__ == "__main__":
    main()
