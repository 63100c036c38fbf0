#!/usr/bin/env python3
"""Benchmark the builtin crawl engine next to ``find -printf`` (and ``pwalk`` when on PATH).

    .venv/bin/python bench/bench_crawl.py [CACHE_DIR] [--repeat N] [--entries N]

Builds (once; reused while its stamp matches) a tree of ~505,000 entries under CACHE_DIR
(default bench/out/), warms the cache, then runs each contender ``--repeat`` times in the same
run and prints entries/s (best and median), peak RSS of the largest process and the ratio
to ``find``.  Every contender writes its output to a file on the same disk.

``find`` prints the same fields pwalk needs (inode, size, blocks, mode, three times, uid, gid,
nlink, dev, path), so it is the floor a C crawler sets on this machine; pwalk 3.x needed
about 520k entries/s warm on 2 cores where it was measured (not installable here).

The builtin engine is timed around the ``crawl()`` call in a fresh interpreter (``rate``); the
``wall`` column includes starting Python and importing froster_slurm.  This is a benchmark,
not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIND_FORMAT = "%i,%s,%b,%m,%A@,%T@,%C@,%U,%G,%n,%D,%p\n"
PWALK_TARGET = 520_000  # entries/s, from the issue (pwalk, warm cache, 2 cores)

RUNNER = """
import json, sys, time
from froster_slurm.crawl import crawl
t = time.perf_counter()
s = crawl([sys.argv[1]], sys.argv[2], engine="builtin", workers=int(sys.argv[3]),
          threads=int(sys.argv[4]))
print(json.dumps({"entries": s.entries, "seconds": time.perf_counter() - t,
                  "errors": s.errors}))
"""


def build_tree(root: Path, files_per_dir: int) -> int:
    """50 x 10 x 10 leaf directories of ``files_per_dir`` sparse files each (+ the dirs)."""
    stamp = root / ".stamp"
    want = f"v1 50x10x10x{files_per_dir}"
    if stamp.exists() and stamp.read_text() == want:
        return int((root / ".entries").read_text())
    if root.exists():
        shutil.rmtree(root)
    for a in range(50):
        for b in range(10):
            for c in range(10):
                d = root / "tree" / f"top{a:02d}" / f"mid{b}" / f"leaf{c}"
                d.mkdir(parents=True)
                for f in range(files_per_dir):
                    fd = os.open(d / f"file{f:04d}.dat", os.O_CREAT | os.O_WRONLY, 0o644)
                    os.ftruncate(fd, (a * 7919 + f * 104729) % 1_000_000)  # sparse, varied
                    os.close(fd)
    n = 1 + 50 + 500 + 5000 + 5000 * files_per_dir
    (root / ".entries").write_text(str(n))
    stamp.write_text(want)
    return n


def run(cmd: list[str], stdout_path: Path | None = None) -> tuple[float, int, bytes]:
    """(wall seconds, peak RSS KiB of the largest process, stdout) of one child."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    data = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stdout_path:
        out.close()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err.decode()[-500:]}")
    return wall, usage.ru_maxrss, data


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache_dir", nargs="?", default=str(REPO / "bench" / "out"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--files-per-dir", type=int, default=100)
    args = ap.parse_args()
    cache = Path(args.cache_dir).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    expected = build_tree(cache / "crawl-tree", args.files_per_dir)
    tree = cache / "crawl-tree" / "tree"
    print(f"tree: {tree} ({expected:,} entries, built/checked in "
          f"{time.perf_counter() - t:.1f} s); cpus: {len(os.sched_getaffinity(0))}")
    out_dir = cache / "crawl-out"
    out_dir.mkdir(exist_ok=True)

    contenders: list[tuple[str, list[str], Path | None]] = [
        ("find -printf", ["find", str(tree), "-printf", FIND_FORMAT], out_dir / "find.txt")]
    if shutil.which("pwalk"):
        contenders.append(("pwalk", ["pwalk", "--header", str(tree)], out_dir / "pwalk.csv"))
    for workers, threads in ((1, 1), (2, 1), (2, 2)):
        contenders.append((f"builtin w={workers} t={threads}",
                           [sys.executable, "-c", RUNNER, str(tree),
                            str(out_dir / f"builtin-{workers}-{threads}.csv"), str(workers),
                            str(threads)], None))

    run(["find", str(tree), "-printf", FIND_FORMAT], out_dir / "warm.txt")  # warm the cache
    load_before = os.getloadavg()[0]
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _, _ in contenders}
    for _ in range(args.repeat):  # interleaved, so background load hits everyone alike
        for name, cmd, dest in contenders:
            wall, rss, data = run(cmd, dest)
            if dest is not None:
                entries = count_lines(dest) - (1 if name == "pwalk" else 0)
                rate = entries / wall
            else:
                info = json.loads(data)
                entries, rate = info["entries"], info["entries"] / info["seconds"]
                assert info["errors"] == 0
            if entries != expected:
                raise SystemExit(f"{name}: {entries} entries, expected {expected}")
            results[name].append((rate, wall, rss))

    find_best = max(r for r, _, _ in results["find -printf"])
    print(f"\n{'contender':<22} {'best/s':>10} {'median/s':>10} {'wall s':>7} "
          f"{'peak RSS':>9} {'vs find':>8} {'vs 520k':>8}")
    for name, runs in results.items():
        rates = [r for r, _, _ in runs]
        best = max(rates)
        print(f"{name:<22} {best:>10,.0f} {statistics.median(rates):>10,.0f} "
              f"{min(w for _, w, _ in runs):>7.2f} {max(m for _, _, m in runs) / 1024:>6.0f} MiB "
              f"{best / find_best:>7.2f}x {best / PWALK_TARGET:>7.2f}x")
    print(f"\nload average (1 min) before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f} "
          f"on {len(os.sched_getaffinity(0))} CPUs: figures are only meaningful on a quiet "
          "machine.")
    print(f"{args.repeat} runs each, interleaved; rate = entries / crawl time (builtin: inside "
          "the interpreter; find/pwalk: wall). 'vs 520k' = pwalk's published warm rate.")


if __name__ == "__main__":
    main()
