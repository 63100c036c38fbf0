#!/usr/bin/env python3
"""Benchmark the crawl: our CLI next to real pwalk, find and a minimal C walker, as processes.

    .venv/bin/python bench/bench_crawl.py [CACHE_DIR] [--repeat N] [--cold] [--shards]

Builds (once; reused while its stamp matches) a tree of 505,551 entries under CACHE_DIR
(default bench/out/), then runs every contender ``--repeat`` times (default 5), interleaved
(run 1 of each, then run 2 of each, ...), each as a whole process writing its output to a file
on the same disk:

- ``ours``: ``froster-slurm crawl --engine builtin`` with default settings (compiled walker);
- ``ours python``: the same with ``FROSTER_CRAWL_WALKER=python`` (the fallback);
- ``pwalk``: the real pwalk, when ``pwalk`` is on PATH (not packaged: build it from its public
  source yourself; this script never downloads anything), with its default settings;
- ``find -printf`` of the same fields (inode, size, blocks, mode, times, ids, nlink, dev);
- ``cwalk -t 2``: ``bench/cwalk.c``, the minimal C walker writing the same rows (``make bench``
  builds ``bench/out/cwalk``), the floor a crawler writing these rows sets here.

For each: entries/s (median and best of the runs), wall seconds, CPU seconds (user + system of
the process and all its children, from wait4), peak RSS of the whole process tree (the sum of
the peak RSS, VmHWM, of the process and each descendant, sampled every 20 ms), and the 1-minute
load average when the runs started.  ``--cold`` drops the page
cache before every run (``/proc/sys/vm/drop_caches``, needs root; says so when refused).
``--shards`` also times a crawl split in 1 and 2 shards run as parallel processes, one CPU
each (as array tasks of ``--cpus-per-task 1``).

Other jobs on the machine (other users' tests) show in the load column: compare figures only
within one run.  This is a benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIND_FORMAT = "%i,%s,%b,%m,%A@,%T@,%C@,%U,%G,%n,%D,%p\n"
CWALK = REPO / "bench" / "out" / "cwalk"


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


def sample_tree(pid: int, cmdline: bytes, peaks: dict[int, int]) -> None:
    """Record the peak RSS (VmHWM, KiB) of ``pid`` and each of its descendants in ``peaks``.

    ``pid`` counts only once it runs ``cmdline``: between fork and exec it is a copy of this
    script, whose pages are not the contender's (wait4's ru_maxrss keeps that pre-exec peak,
    so it is not used).  The sum of the per-process peaks bounds the tree's peak from above.
    """
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
            if p == pid and pid not in peaks and _cmdline(p, tasks) != cmdline:
                return
            for task in tasks:  # a live thread: pwalk's main thread exits early
                with open(f"/proc/{p}/task/{task}/status", "rb") as f:
                    hwm = [int(ln.split()[1]) for ln in f if ln.startswith(b"VmHWM:")]
                if hwm:
                    peaks[p] = max(peaks.get(p, 0), hwm[0])
                    break
            for task in tasks:
                with open(f"/proc/{p}/task/{task}/children", "rb") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue


def _cmdline(pid: int, tasks: list[str]) -> bytes:
    """The command line of ``pid`` from any live thread (pwalk's main thread exits early and
    then its own ``/proc/PID/cmdline`` reads empty)."""
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/cmdline", "rb") as f:
                if line := f.read():
                    return line
        except OSError:
            continue
    return b""


class Run:
    """One whole process: wall, CPU of it and its children, peak RSS of its process tree."""

    def __init__(self, cmd: list[str], stdout_path: Path | None, env: dict[str, str]):
        out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        self.load = os.getloadavg()[0]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        peaks: dict[int, int] = {}
        stop = threading.Event()
        cmdline = b"".join(os.fsencode(c) + b"\0" for c in cmd)

        def sample() -> None:
            while not stop.wait(0.02):
                sample_tree(proc.pid, cmdline, peaks)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        err = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
        self.wall = time.perf_counter() - t
        stop.set()
        sampler.join()
        if stdout_path:
            out.close()
        self.cpu = usage.ru_utime + usage.ru_stime
        self.rss_kib = sum(peaks.values())
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise SystemExit(f"{cmd[0]} failed ({code}): {err.decode()[-500:]}")


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def contenders(tree: Path, out_dir: Path) -> list[tuple[str, list[str], Path, dict, int]]:
    """(name, command, output file, extra env, header lines in the output)."""
    cli = [sys.executable, "-m", "froster_slurm", "crawl", "--engine", "builtin",
           "--no-progress"]
    found: list[tuple[str, list[str], Path, dict, int]] = [
        ("ours", [*cli, "-o", str(out_dir / "ours.csv"), str(tree)], out_dir / "ours.csv",
         {}, 1),
        ("ours python", [*cli, "-o", str(out_dir / "py.csv"), str(tree)], out_dir / "py.csv",
         {"FROSTER_CRAWL_WALKER": "python"}, 1),
    ]
    if shutil.which("pwalk"):
        found.append(("pwalk", ["pwalk", str(tree)], out_dir / "pwalk.csv", {}, 0))
    found.append(("find -printf", ["find", str(tree), "-printf", FIND_FORMAT],
                  out_dir / "find.txt", {}, 0))
    if CWALK.exists():
        found.append(("cwalk -t 2", [str(CWALK), "-t", "2", str(tree)], out_dir / "cwalk.csv",
                      {}, 0))
    return found


# What a crawl array task runs once the job entry has read its run: crawl_shard of the plan
# (no CLI, no typer: the job side never imports them).
SHARD_TASK = ("import sys; from froster_slurm.crawl import crawl_shard; "
              "crawl_shard(sys.argv[1], int(sys.argv[2]))")


def plan_for(tree: Path, out_dir: Path, env: dict[str, str], n: int) -> Path:
    """Plan ``n`` shards of ``tree`` once (as submit does, before the array starts)."""
    shard_dir = out_dir / f"shards-{n}"
    subprocess.run([sys.executable, "-m", "froster_slurm", "crawl", str(tree), "-o",
                    str(shard_dir), "--shards", str(n), "--replan", "--shard-index", "0",
                    "--no-progress"], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # plans and crawls shard 0 once (warm-up)
    return shard_dir


def shard_runs(shard_dir: Path, env: dict[str, str], n: int) -> tuple[float, float]:
    """The ``n`` array tasks of a planned crawl as parallel processes, task ``i`` pinned to
    CPU ``i`` (``taskset``: what a Slurm cpuset of one CPU per task does), default settings:
    (wall, cpu) of the whole set, from the first start to the last exit."""
    t = time.perf_counter()
    cpus = sorted(os.sched_getaffinity(0))
    procs = [subprocess.Popen(["taskset", "-c", str(cpus[i % len(cpus)]), sys.executable,
                               "-c", SHARD_TASK, str(shard_dir), str(i)],
                              env=env, stdout=subprocess.DEVNULL) for i in range(n)]
    cpu = 0.0
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        cpu += usage.ru_utime + usage.ru_stime
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"shard task failed ({status})")
    return time.perf_counter() - t, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache_dir", nargs="?", default=str(REPO / "bench" / "out"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--files-per-dir", type=int, default=100)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each run")
    ap.add_argument("--shards", action="store_true", help="also time 1 vs 2 parallel shards")
    ap.add_argument("--only", action="append", help="only contenders with this name prefix")
    args = ap.parse_args()
    cache = Path(args.cache_dir).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    expected = build_tree(cache / "crawl-tree", args.files_per_dir)
    tree = cache / "crawl-tree" / "tree"
    cpus = len(os.sched_getaffinity(0))
    print(f"tree: {tree} ({expected:,} entries, built/checked in "
          f"{time.perf_counter() - t:.1f} s); cpus: {cpus}; cache: "
          f"{'dropped before every run' if args.cold else 'warm'}")
    out_dir = cache / "crawl-out"
    out_dir.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    todo = contenders(tree, out_dir)
    if args.only:
        todo = [c for c in todo if any(c[0].startswith(o) for o in args.only)]
    if not shutil.which("pwalk"):
        print("pwalk: not on PATH, not measured (build it from its public source and put it "
              "on PATH to include it)")
    if not CWALK.exists():
        print(f"cwalk: {CWALK} missing (make bench builds it), not measured")
    if args.cold and not drop_caches():
        print("--cold: cannot drop the page cache here (needs root): the runs are warm")
        args.cold = False
    if not args.cold:
        Run(["find", str(tree), "-printf", FIND_FORMAT], out_dir / "warm.txt", env)
    results: dict[str, list[Run]] = {name: [] for name, *_ in todo}
    for _ in range(args.repeat):  # interleaved, so background load hits everyone alike
        for name, cmd, dest, extra, header in todo:
            if args.cold:
                drop_caches()
            run = Run(cmd, dest, {**env, **extra})
            entries = count_lines(dest) - header
            if entries != expected:
                raise SystemExit(f"{name}: {entries} entries, expected {expected}")
            results[name].append(run)

    print(f"\n{'contender':<13} {'median/s':>10} {'best/s':>10} {'wall med':>8} "
          f"{'CPU med':>8} {'peak RSS':>9} {'load':>9}")
    for name, runs in results.items():
        rates = [expected / r.wall for r in runs]
        loads = [r.load for r in runs]
        print(f"{name:<13} {statistics.median(rates):>10,.0f} {max(rates):>10,.0f} "
              f"{statistics.median(r.wall for r in runs):>7.2f}s "
              f"{statistics.median(r.cpu for r in runs):>7.2f}s "
              f"{max(r.rss_kib for r in runs) / 1024:>5.0f} MiB "
              f"{min(loads):>4.1f}-{max(loads):<4.1f}")
    med = {name: statistics.median(expected / r.wall for r in runs)
           for name, runs in results.items()}
    if "ours" in med:
        for other in ("pwalk", "cwalk -t 2", "find -printf", "ours python"):
            if other in med:
                print(f"ours / {other}: {med['ours'] / med[other]:.2f}x (medians)")
    print(f"\n{args.repeat} runs each, interleaved; rate = {expected:,} entries / wall time of "
          "the whole process; CPU = user + system of it and its children; load = 1-minute "
          f"load average at the start of the runs (min-max) on {cpus} CPUs.")

    if args.shards:
        print("\nshards (array tasks as parallel processes, task i pinned to CPU i; "
              "1 and 2 interleaved):")
        dirs = {n: plan_for(tree, out_dir, env, n) for n in (1, 2)}
        walls: dict[int, list[float]] = {1: [], 2: []}
        used: dict[int, list[float]] = {1: [], 2: []}
        loads: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeat):
            for n in (1, 2):
                loads[n].append(os.getloadavg()[0])
                wall, cpu = shard_runs(dirs[n], env, n)
                walls[n].append(wall)
                used[n].append(cpu)
        for n in (1, 2):
            print(f"  {n} shard(s): wall median {statistics.median(walls[n]):.2f} s best "
                  f"{min(walls[n]):.2f} s, CPU median {statistics.median(used[n]):.2f} s, "
                  f"{expected / statistics.median(walls[n]):,.0f} entries/s, load "
                  f"{min(loads[n]):.1f}-{max(loads[n]):.1f}")
        med = statistics.median(walls[1]) / statistics.median(walls[2])
        print(f"  2 shards / 1 shard: {med:.2f}x (medians), "
              f"{min(walls[1]) / min(walls[2]):.2f}x (best)")


if __name__ == "__main__":
    main()
