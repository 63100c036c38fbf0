"""Benchmark ``froster-slurm rank`` against Froster's pipeline on a 10-million-row pwalk CSV.

Not a test: it prints figures.  Every figure comes from this run, on this machine, next to a
baseline measured in the same run:

- ``rank --by direct`` and ``rank --by total``: each in a child process (``python -m
  froster_slurm rank``), wall time -> rows/s, peak memory = the child's ru_maxrss (os.wait4).
  Thresholds are 0 so every folder is written: the worst case for the output side.  A third
  run under a small rank.memory_limit shows that memory follows the limit, not the crawl; a
  fourth uses the config thresholds (1 GiB, 10 MiB average): few folders listed, the usual
  case (its lost/garbled columns are not checked: the odd folders are filtered out).
- the baseline, Froster's way: ``grep -v ',-1,0$'`` keeps the directory rows, ``iconv -f
  ISO-8859-1 -t UTF-8`` makes the bytes "valid", DuckDB ``read_csv_auto(..., ignore_errors=1)``
  groups by folder on pw_dirsum.  Subprocess pipes with argument lists; timed in one child.
  Also run without iconv, where ignore_errors drops the rows that are not UTF-8.

Each pipeline runs ``--repeat`` times (3): the table shows the best and the median wall time
(this VM's speed varies by about 10% from run to run; rows/s is from the best).  rank's summary
names the reader that loaded the crawl (``rank_load``); the benchmark warns if it was not the
fast one.

For each, the non-ASCII folders of the generated tree (known from gen_pwalk's facts file) are
looked up by their exact bytes: "lost" = absent, "garbled" = present only as other bytes.
"size != recomputed" counts folders whose size differs from rank's direct bytes (pw_dirsum
counts subdirectory inodes).  The CSV is cached in bench/out/ (delete it to regenerate).

Usage: ``.venv/bin/python bench/bench_rank.py [--rows N] [--memory-limit 1GB] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from gen_pwalk import generate  # noqa: E402

from froster_slurm.rank.hotspots import iter_hotspots  # noqa: E402

BASELINE = r"""
import subprocess, sys, duckdb
src, dirs, out, use_iconv = sys.argv[1:5]
with open(dirs, "wb") as f:
    grep = subprocess.Popen(["grep", "-a", "-v", ",-1,0$", src],
                            stdout=subprocess.PIPE if use_iconv == "1" else f)
    if use_iconv == "1":
        iconv = subprocess.Popen(["iconv", "-f", "ISO-8859-1", "-t", "UTF-8"],
                                 stdin=grep.stdout, stdout=f)
        grep.stdout.close()
        if iconv.wait():
            sys.exit("iconv failed")
    if grep.wait() not in (0, 1):
        sys.exit("grep failed")
con = duckdb.connect()
con.execute("SET memory_limit = '1GB'")
con.execute(f'''COPY (SELECT filename AS folder, sum(pw_dirsum) AS bytes, sum(pw_fcount) AS n
    FROM read_csv_auto('{dirs}', ignore_errors=1) WHERE pw_fcount > -1 GROUP BY filename)
    TO '{out}' (FORMAT csv, HEADER)''')
"""


def run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes, stdout) of one child process, via os.wait4."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=REPO)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{argv[:4]} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_maxrss * 1024, out.decode(errors="replace")


def rank(src: Path, by: str, dest: Path, memory_limit: str, every_folder: bool = True
         ) -> tuple[float, int, int]:
    env = dict(os.environ, FROSTER_SLURM_RANK__MEMORY_LIMIT=memory_limit,
               PYTHONPATH=str(REPO))
    thresholds = ["--min-size", "0", "--min-avg-size", "0"] if every_folder else []
    wall, rss, out = run_child([sys.executable, "-m", "froster_slurm", "rank", str(src),
                                "-o", str(dest), "--by", by, *thresholds], env)
    line = next(line for line in out.splitlines() if line.startswith("crawl rows read"))
    rows = int(line.split()[3].replace(",", ""))
    reader = line.partition("(")[2].rstrip(")") or "?"
    if not reader.startswith("fast"):
        print(f"note: {by} read with the {reader}", file=sys.stderr)
    return wall, rss, rows


def baseline(src: Path, work: Path, use_iconv: bool) -> tuple[float, int, Path]:
    out = work / "baseline-folders.csv"
    wall, rss, _ = run_child([sys.executable, "-c", BASELINE, str(src),
                              str(work / "baseline-dirs.csv"), str(out), str(int(use_iconv))])
    return wall, rss, out


def check(folders: dict[bytes, int], special: list[bytes], truth: dict[bytes, int] | None
          ) -> tuple[int, int, int, int]:
    """(folders, lost, garbled, size != recomputed) against the generator's facts."""
    lost = garbled = 0
    for name in special:
        if name in folders:
            continue
        if name.decode("latin-1").encode("utf-8") in folders:  # what iconv makes of it
            garbled += 1
        else:
            lost += 1
    wrong = 0 if truth is None else sum(1 for f, b in folders.items() if truth.get(f) != b)
    return len(folders), lost, garbled, wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--small-limit", default="256MB",
                    help="a third run under this limit shows DuckDB spilling")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each pipeline: the best and the median are shown (this VM's "
                         "speed varies by +-10%% from run to run)")
    a = ap.parse_args(argv)
    work = HERE / "out"
    work.mkdir(exist_ok=True)
    src = work / f"pwalk-{a.rows}.csv"
    facts_path = src.with_name(src.name + ".facts.json")
    if not facts_path.exists():
        t0 = time.perf_counter()
        generate(src, a.rows)
        print(f"generated {src} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    facts = json.loads(facts_path.read_text())
    special = [bytes.fromhex(h) for h in facts["special_folders_hex"]]
    nrows = facts["rows"]
    load0 = os.getloadavg()[0]

    results = []
    medians: dict[tuple[str, str], float] = {}
    truth: dict[bytes, int] = {}
    for by, limit in (("direct", a.memory_limit), ("total", a.memory_limit),
                      ("total", a.small_limit)):
        dest = work / f"hotspots-{by}.csv"
        runs = [rank(src, by, dest, limit) for _ in range(a.repeat)]
        wall, rss, rows_read = min(runs, key=lambda r: r[0])
        medians[by, limit] = statistics.median(r[0] for r in runs)
        folders = {h.folder: h.bytes for h in iter_hotspots(dest)}
        if by == "direct":
            truth = dict(folders)
        name = f"rank --by {by}" + (f" ({limit})" if limit != a.memory_limit else "")
        results.append((name, wall, medians[by, limit], rss, rows_read,
                        check(folders, special, truth)))
    runs = [rank(src, "total", work / "hotspots-defaults.csv", a.memory_limit,
                 every_folder=False) for _ in range(a.repeat)]
    wall, rss, rows_read = min(runs, key=lambda r: r[0])
    listed = sum(1 for _ in iter_hotspots(work / "hotspots-defaults.csv"))
    results.append(("rank --by total, config min", wall,
                    statistics.median(r[0] for r in runs), rss, rows_read, (listed, 0, 0, 0)))
    for use_iconv, name in ((True, "baseline grep|iconv|duckdb"),
                            (False, "  same without iconv")):
        runs = [baseline(src, work, use_iconv) for _ in range(a.repeat)]
        wall, rss, out = min(runs, key=lambda r: r[0])
        with open(out, encoding="utf-8", newline="") as f:
            got = {r["folder"].encode("utf-8"): int(float(r["bytes"]))
                   for r in csv.DictReader(f)}
        results.append((name, wall, statistics.median(r[0] for r in runs), rss, None,
                        check(got, special, truth)))

    print(f"\ninput: {src.name}: {nrows:,} rows, {facts['size'] / 1e9:.2f} GB, "
          f"{facts['folders']:,} folders ({len(special):,} with non-ASCII or quoted names); "
          f"{os.cpu_count()} cores; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}; "
          f"rank.memory_limit={a.memory_limit}")
    head = (f"{'pipeline':<28} {'best s':>7} {'median':>7} {'rows/s':>10} {'peak RSS':>9} "
            f"{'rows read':>11} "
            f"{'folders':>8} {'lost':>5} {'garbled':>7} {'size!=':>7}")
    print(head)
    print("-" * len(head))
    for name, wall, median, rss, rows_read, (nf, lost, garbled, wrong) in results:
        read = f"{rows_read:,}" if rows_read is not None else "-"
        print(f"{name:<28} {wall:7.2f} {median:7.2f} {nrows / wall / 1e6:8.2f} M "
              f"{rss / 2**20:6.0f} MiB "
              f"{read:>11} {nf:>8,} {lost:>5} {garbled:>7} {wrong:>7}")
    both = results[0][1] + results[1][1]
    both_median = results[0][2] + results[1][2]
    print("(peak RSS is the rank process: Python + DuckDB; its feeder processes add ~20 MiB "
          "each)")
    print(f"\nrank direct + total together: {2 * nrows / both / 1e6:.2f} M rows/s best of "
          f"{a.repeat} ({both:.1f} s for 2 x {nrows:,} rows), "
          f"{2 * nrows / both_median / 1e6:.2f} M rows/s median; "
          f"expected folders {facts['folders']:,}; "
          f"'size!=' compares with rank's recomputed direct bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
