"""Benchmark recursive selection (``select_by_rules``) against the member scan it replaced.

Not a test: it prints figures.  Each measurement is a whole child process (this script with
``--child``) that builds a synthetic tree of N hotspot rows (seeded: the same tree for both),
then times ``select_by_rules(..., recursive=True, by="direct")`` with either today's
``FolderSet`` (sorted prefix index, O(log N) per "contains" check) or the old one (``--old``:
a scan of every selected folder per "contains" check, as before issue 16).  Ranking by the
folders' own files puts many sub-folders before their parents, so "contains" is checked often.

Rounds alternate old and new; the table shows median and best wall and CPU seconds (the
child's user+sys from os.wait4) and checks both chose exactly the same folders.  The old scan
is quadratic: by default it runs up to ``--old-max`` rows (20,000); ``--old-max 100000`` adds
it at 100k (minutes of CPU).  Other work on the machine shows in wall time: the load average
is printed.

Usage: ``.venv/bin/python bench/bench_select.py [--rows 5000,20000,100000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from froster_slurm.pick import selection  # noqa: E402
from froster_slurm.rank.hotspots import Hotspot  # noqa: E402

NOW = 1_750_000_000


class ScanFolderSet(selection.FolderSet):
    """The pre-issue-16 algorithm: ancestor counts, then a scan of the members for a witness."""

    def __init__(self, recursive: bool):
        super().__init__(recursive)
        self._below: dict[bytes, int] = {}

    def conflict(self, folder: bytes) -> selection.Conflict | None:
        key = selection.folder_key(folder)
        if key in self._members:
            return selection.Conflict(folder, self._members[key], "same")
        if not self.recursive:
            return None
        for anc in selection.ancestors(key):
            if anc in self._members:
                return selection.Conflict(folder, self._members[anc], "inside")
        if self._below.get(key):
            prefix = key if key.endswith(b"/") else key + b"/"
            inner = next(k for k in self._members if k.startswith(prefix))
            return selection.Conflict(folder, self._members[inner], "contains")
        return None

    def add(self, folder: bytes) -> selection.Conflict | None:
        found = self.conflict(folder)
        if found:
            return found
        key = selection.folder_key(folder)
        self._members[key] = folder
        for anc in selection.ancestors(key):
            self._below[anc] = self._below.get(anc, 0) + 1
        return None


def tree(n: int, seed: int = 16) -> Iterator[Hotspot]:
    """n folders of a random tree (each a child of an earlier one), random own sizes."""
    rng = random.Random(seed)
    paths = [b"/data"]
    for i in range(1, n):
        parent = paths[rng.randrange(max(0, i - 2000), i)]  # bushy, depth grows slowly
        name = b"d%d" % i + (b"\xe9" if i % 997 == 0 else b"") + (b"c" if i % 7 == 0 else b"")
        paths.append(parent + b"/" + name)
    for i, p in enumerate(paths):
        size = rng.randrange(1, 1 << 40)
        yield Hotspot(folder=p, bytes=size, files=1 + i % 50, total_bytes=size,
                      total_files=1 + i % 50, allocated_bytes=size, avg_file_bytes=size,
                      newest_mtime=NOW - 400 * 86400, newest_atime=NOW - 400 * 86400,
                      owner="u", group="g", depth=p.count(b"/"))


def child(rows: int, old: bool) -> None:
    data = list(tree(rows))
    if old:
        selection.FolderSet = ScanFolderSet  # select_by_rules looks the name up at call time
    t0, c0 = time.perf_counter(), time.process_time()
    sel = selection.select_by_rules(data, selection.Rules(by="direct"), top=None,
                                    recursive=True, now=NOW)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    digest = hashlib.sha256(b"\0".join(h.folder for h in sel.chosen)).hexdigest()[:16]
    print(json.dumps({"wall": wall, "cpu": cpu, "chosen": len(sel.chosen),
                      "contains": sel.dropped_count("contains"),
                      "inside": sel.dropped_count("inside"), "digest": digest}))


def run(rows: int, old: bool) -> dict:
    argv = [sys.executable, __file__, "--child", str(rows)] + (["--old"] if old else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=REPO)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        sys.exit(f"child failed: {argv}")
    got = json.loads(out)
    got["proc_wall"] = time.perf_counter() - t0
    got["proc_cpu"] = usage.ru_utime + usage.ru_stime
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="5000,20000,100000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--old-max", type=int, default=20000)
    ap.add_argument("--child", type=int)
    ap.add_argument("--old", action="store_true")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.old)
        return
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs; other work shares them)")
    print(f"{'rows':>8} {'algorithm':<14} {'select wall med/best s':>23} "
          f"{'select CPU med/best s':>22} {'process CPU med s':>18}  chosen / contains-drops")
    for rows in [int(x) for x in a.rows.split(",")]:
        kinds = [False, True] if rows <= a.old_max else [False]
        results: dict[bool, list[dict]] = {k: [] for k in kinds}
        for _ in range(a.repeat):
            for old in kinds:  # interleaved rounds
                results[old].append(run(rows, old))
        digests = {r["digest"] for rs in results.values() for r in rs}
        for old in kinds:
            rs = results[old]
            walls, cpus = [r["wall"] for r in rs], [r["cpu"] for r in rs]
            name = "scan (old)" if old else "prefix index"
            print(f"{rows:>8} {name:<14} {statistics.median(walls):>12.2f} / {min(walls):<8.2f}"
                  f" {statistics.median(cpus):>11.2f} / {min(cpus):<8.2f}"
                  f" {statistics.median(r['proc_cpu'] for r in rs):>18.2f}"
                  f"  {rs[0]['chosen']} / {rs[0]['contains']}")
        print(f"{'':>8} same folders chosen by both: {'yes' if len(digests) == 1 else 'NO'}"
              if len(kinds) == 2 else f"{'':>8} (old scan not run above --old-max "
              f"{a.old_max})")
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
