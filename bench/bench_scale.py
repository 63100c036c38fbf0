"""Benchmark issue 16's memory and status figures: status of large runs, finalize's peak
memory, a catalog query at 1M rows; each beside a baseline measured in the same run.

Not a test: it prints figures.  Every measurement is a whole child process; rounds alternate
the new code and the baseline (interleaved), the table shows median and best wall seconds,
CPU seconds (user+sys of the child, from ``os.wait4``) and peak RSS (GNU time's, the
child's own), and the load average is printed (other work on the machine shows in wall time).

* status: synthetic runs of 10k/100k/200k folders (``tests/scale_runs.py``: states written by
  the project's own format, 1% failed, 0.2% running, 5% pending).  New: ``froster-slurm status
  RUN`` (totals from ``status.slots``, only failing and running folders listed).  Baseline:
  ``froster-slurm status RUN --all``, which is what ``status`` did before issue 16: open
  every task's state file and print every folder.
* finalize: 1,000 folders of 1,000 files (synthetic records written by
  ``archive.trace.record_bytes``).  New: the finalize job's function.  Baseline: what the
  pre-issue-16 finalize held, every record parsed and kept with its JSON for the catalog row
  (that list-building only: a lower bound on its old peak).
* rank select: the rank job's selection of a 1M-row hotspots file (min size 1 GiB, which 4%
  of the folders pass, recursive).  New: ``pick.rules_sql`` under a 1 GB limit.  Baseline:
  every row loaded into Python, then ``archive_units`` + ``select_by_rules`` (the rank job
  before issue 16).
* catalog: 1M rows (made in DuckDB).  New: ``catalog.store.lookup`` of one folder and
  ``entries`` of one subtree, timed inside the child.  Baseline: the pre-issue-16 query,
  every row into Python as an Entry, then filtered.

Usage: ``.venv/bin/python bench/bench_scale.py [--status 10000,100000,200000] [--repeat 3]``
Generated runs are cached under ``bench/out/scale`` (delete it to regenerate).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

OUT = REPO / "bench" / "out" / "scale"
TIME = "/usr/bin/time"  # GNU time (Debian package time): the child's own peak RSS


def child_env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "FROSTER_"))}
    env.update(PYTHONPATH=str(REPO), FROSTER_SLURM_STATE_DIR=str(state_dir),
               FROSTER_BACKEND="local")
    return env


def run_child(argv: list[str], env: dict[str, str]) -> dict:
    """Wall, CPU and peak RSS of one whole child process (rusage of exactly this child, from
    ``os.wait4``), with its stdout's JSON figures if it printed some."""
    t0 = time.perf_counter()
    out_path = OUT / f".out.{os.getpid()}"
    rss_path = OUT / f".rss.{os.getpid()}"
    # Peak RSS through /usr/bin/time: a child's ru_maxrss as wait4 reports it also counts the
    # pages it shared with this (larger) process when it was forked.
    argv = [TIME, "-f", "%M", "-o", str(rss_path), *argv]
    with open(out_path, "wb") as out, open(os.devnull, "wb") as err:
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    data = out_path.read_bytes()
    out_path.unlink()
    peak_kib = int(rss_path.read_text().split()[-1])
    rss_path.unlink()
    if status:
        sys.exit(f"child failed (status {status}): {argv}")
    try:  # the last line: DuckDB may draw a progress bar before it
        got = json.loads(data.strip().rsplit(b"\n", 1)[-1] or b"{}")
        if not isinstance(got, dict):
            got = {}
    except ValueError:
        got = {}
    got.update(wall=wall, cpu=usage.ru_utime + usage.ru_stime, peak_mib=peak_kib / 1024,
               stdout_bytes=len(data))
    return got


def table(title: str, results: dict[str, list[dict]], extra: str = "") -> None:
    for name, rs in results.items():
        walls = [r["wall"] for r in rs]
        cpus = [r["cpu"] for r in rs]
        peaks = [r["peak_mib"] for r in rs]
        print(f"{title:<22} {name:<34} {statistics.median(walls):>8.2f} / {min(walls):<7.2f}"
              f" {statistics.median(cpus):>8.2f} / {min(cpus):<7.2f}"
              f" {statistics.median(peaks):>9.0f}  {extra_of(rs, extra)}")


def extra_of(rs: list[dict], key: str) -> str:
    if not key:
        return ""
    vals = [r[key] for r in rs if key in r]
    return f"{key} {statistics.median(vals):.1f} / best {min(vals):.1f}" if vals else ""


def header() -> None:
    print(f"{'measure':<22} {'code':<34} {'wall med/best s':>17} {'CPU med/best s':>17}"
          f" {'peak MiB':>9}")


# --- status -----------------------------------------------------------------------------------

def status_run(n: int) -> Path:
    from scale_runs import make_scale_run

    base = OUT / f"status-{n}"
    done = base / "ready"
    if not done.exists():
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        run_dir = make_scale_run(base / "state", n, fast=True, mix={
            "failed": n // 100, "running": n // 500, "pending": n // 20})
        done.write_text(run_dir.name)
        print(f"  (made a synthetic run of {n:,} folders in {time.perf_counter() - t0:.0f} s)")
    return base / "state" / "runs" / done.read_text()


def bench_status(sizes: list[int], repeat: int) -> None:
    exe = str(Path(sys.executable))
    for n in sizes:
        run_dir = status_run(n)
        env = child_env(run_dir.parent.parent)
        cmds = {"new: status RUN": [exe, "-m", "froster_slurm", "status", run_dir.name],
                "old path: status RUN --all": [exe, "-m", "froster_slurm", "status",
                                               run_dir.name, "--all"]}
        results: dict[str, list[dict]] = {k: [] for k in cmds}
        for _ in range(repeat):
            for k, argv in cmds.items():
                results[k].append(run_child(argv, env))
        table(f"status {n:,} folders", results)
        out = {k: statistics.median(r["stdout_bytes"] for r in rs) for k, rs in results.items()}
        print(f"{'':<22} output: {', '.join(f'{k}: {v / 1e6:.2f} MB' for k, v in out.items())}")


# --- finalize ---------------------------------------------------------------------------------

FINALIZE = """
import json, sys
from pathlib import Path
from froster_slurm.jobs.finalize_stage import finalize
from froster_slurm.run.rundir import Run
s = finalize(Run(Path(sys.argv[1])))
print(json.dumps({"done": s["totals"]["done"], "files": s["totals"]["files"],
                  "catalog": s["totals"]["catalog_added"], "error": s["catalog_error"]}))
"""

BASELINE_FINALIZE = """
import json, sys
from pathlib import Path
run_dir = Path(sys.argv[1])
records, rows = [], []
for task in sorted((run_dir / "tasks").iterdir(), key=lambda p: int(p.name)):
    try:
        rec = json.loads((task / "record.json").read_bytes())
    except FileNotFoundError:
        continue
    records.append(rec)              # finalize kept every record ...
    rows.append(json.dumps(rec, ensure_ascii=True))  # ... and its JSON for the catalog row
print(json.dumps({"done": len(records), "files": sum(r["files"] for r in records)}))
"""


def finalize_run(folders: int, files: int) -> Path:
    from scale_runs import make_scale_run

    base = OUT / f"finalize-{folders}x{files}"
    done = base / "ready"
    if not done.exists():
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        run_dir = make_scale_run(base / "state", folders, files=files, fast=True)
        done.write_text(run_dir.name)
        print(f"  (made {folders:,} records of {files:,} files in "
              f"{time.perf_counter() - t0:.0f} s)")
    return base / "state" / "runs" / done.read_text()


def bench_finalize(folders: int, files: int, repeat: int) -> None:
    run_dir = finalize_run(folders, files)
    env = child_env(run_dir.parent.parent)
    exe = sys.executable
    cat = run_dir.parent.parent / "catalog.duckdb"
    cmds = {"new: finalize": [exe, "-c", FINALIZE, str(run_dir)],
            "baseline: records held (old)": [exe, "-c", BASELINE_FINALIZE, str(run_dir)]}
    results: dict[str, list[dict]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for k, argv in cmds.items():
            for p in (cat, Path(str(cat) + ".lock")):
                p.unlink(missing_ok=True)
            results[k].append(run_child(argv, env))
    table(f"finalize {folders:,}x{files:,}", results)
    new = results["new: finalize"][0]
    print(f"{'':<22} new: {new.get('done')} folders, {new.get('files'):,} files, "
          f"{new.get('catalog')} catalog rows, catalog error: {new.get('error')}")


# --- catalog ----------------------------------------------------------------------------------

QUERY = """
import json, os, sys, time
from pathlib import Path
from froster_slurm.catalog import store
db, mode, rows = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
one, tree = b"/data/g7/f%d" % (7 + 1000 * (rows // 2000)), b"/data/g7"

def old_entries(prefix):
    # the pre-issue-16 entries(): every row into Python, then filtered
    files, _ = store.readable_files(db)
    out = []
    for f, uid in files:
        with store._locked(f, exclusive=False) as con:
            rows = con.execute("SELECT folder, destination, archived_at, archived_by, host, "
                               "storage_class, bytes, files, run_id, state, version "
                               "FROM archives").fetchall()
        out.extend(store.Entry(bytes(r[0]), os.fsdecode(bytes(r[1])), *r[2:10],
                               version=int(r[10] or 1), owner_uid=uid) for r in rows)
    out.sort(key=lambda e: (e.archived_at or "", e.version), reverse=True)
    p = prefix.rstrip(b"/")
    return [e for e in out if e.folder == p or e.folder.startswith(p + b"/")]

t0, c0 = time.perf_counter(), time.process_time()
if mode == "new":
    hit = store.lookup(db, one)
    t1, c1 = time.perf_counter(), time.process_time()
    sub = store.entries(db, tree)
else:
    hit = [e for e in old_entries(one) if e.folder == one][0]
    t1, c1 = time.perf_counter(), time.process_time()
    sub = old_entries(tree)
t2, c2 = time.perf_counter(), time.process_time()
assert hit is not None and hit.folder == one and len(sub) == rows // 1000, (hit, len(sub))
print(json.dumps({"lookup_ms": (t1 - t0) * 1000, "subtree_ms": (t2 - t1) * 1000,
                  "lookup_cpu_ms": (c1 - c0) * 1000, "subtree_cpu_ms": (c2 - c1) * 1000}))
"""


def catalog_file(rows: int) -> Path:
    import duckdb

    from froster_slurm.catalog import store

    db = OUT / f"catalog-{rows}.duckdb"
    if not db.exists():
        t0 = time.perf_counter()
        with store.writer(db) as w:  # the schema, migrations and index, as finalize makes them
            w.add({"source": "/seed", "destination": "s3:b/seed"})
        con = duckdb.connect(str(db))
        con.execute(
            "INSERT INTO archives (folder, folder_text, destination, archived_at, archived_by, "
            "host, storage_class, bytes, files, run_id, state, version, objects, record_path) "
            "SELECT ('/data/g' || (i % 1000) || '/f' || i)::BLOB, '/data/g' || (i % 1000) || "
            "'/f' || i, ('s3:b/froster/data/g' || (i % 1000) || '/f' || i)::BLOB, "
            "'2026-12-01T10:00:00Z', 'alice', 'n1', 'DEEP_ARCHIVE', i * 4096, i % 5000, "
            "'r1', 'archived', 1, 3, NULL FROM range(?) t(i)", [rows])
        con.close()
        print(f"  (made a catalog of {rows:,} rows in {time.perf_counter() - t0:.0f} s, "
              f"{db.stat().st_size / 2**20:.0f} MiB)")
    return db


def bench_catalog(rows: int, repeat: int) -> None:
    db = catalog_file(rows)
    env = child_env(OUT)
    exe = sys.executable
    cmds = {"new: index + SQL filter": [exe, "-c", QUERY, str(db), "new", str(rows)],
            "baseline: every row in Python": [exe, "-c", QUERY, str(db), "old", str(rows)]}
    results: dict[str, list[dict]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for k, argv in cmds.items():
            results[k].append(run_child(argv, env))
    table(f"catalog {rows:,} rows", results)
    for k, rs in results.items():
        med = {m: statistics.median(r[m] for r in rs) for m in rs[0] if m.endswith("_ms")}
        best = {m: min(r[m] for r in rs) for m in med}
        print(f"{'':<22} {k:<34} one folder {med['lookup_ms']:.1f} ms wall (best "
              f"{best['lookup_ms']:.1f}), {med['lookup_cpu_ms']:.1f} ms CPU; a "
              f"{rows // 1000:,}-folder subtree {med['subtree_ms']:.1f} ms wall (best "
              f"{best['subtree_ms']:.1f}), {med['subtree_cpu_ms']:.1f} ms CPU")


# --- the rank job's selection ------------------------------------------------------------------

SELECT = """
import json, sys, time
from froster_slurm.pick import rules_sql
from froster_slurm.pick.selection import Rules, archive_units, load_hotspots, select_by_rules
from froster_slurm.rank.loader import Engine
path, mode = sys.argv[1], sys.argv[2]
rules, now = Rules(min_size=1 << 30), 1_750_000_000
if mode == "new":
    with rules_sql.HotspotsTable(path, Engine(memory_limit="1GB")) as table:
        sel = rules_sql.select(table, rules, min_avg=0, top=None, recursive=True, now=now)
else:  # the rank job before issue 16: every row a Python object
    sel = select_by_rules(archive_units(load_hotspots(path), 0, True), rules, top=None,
                          recursive=True, now=now)
print(json.dumps({"chosen": len(sel.chosen), "first": sel.chosen[0].folder.hex()}))
"""


def hotspots_file(rows: int) -> Path:
    import random

    from froster_slurm.rank.hotspots import Hotspot, write_hotspots

    path = OUT / f"hotspots-{rows}.csv"
    if not path.exists():
        rng = random.Random(16)

        def gen():  # noqa: ANN202
            for i in range(rows):
                # 4% big enough: 200,000 of 5M, as a department's pick
                size = (1 << 30) if rng.random() < 0.04 else rng.choice([4096, 1 << 20])
                yield Hotspot(b"/data/p%d/d%d\xe9" % (i % 5000, i), size, 10, size, 10, size,
                              size // 10, 1_700_000_000, 1_700_000_000, "alice", "g", 3)
        write_hotspots(path, gen())
    return path


def bench_select(rows: int, repeat: int) -> None:
    path = hotspots_file(rows)
    env = child_env(OUT)
    exe = sys.executable
    cmds = {"new: rules in DuckDB (1GB limit)": [exe, "-c", SELECT, str(path), "new"],
            "old: every row in Python": [exe, "-c", SELECT, str(path), "old"]}
    results: dict[str, list[dict]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for k, argv in cmds.items():
            results[k].append(run_child(argv, env))
    table(f"rank select {rows:,}", results)
    same = len({(r["chosen"], r["first"]) for rs in results.values() for r in rs}) == 1
    print(f"{'':<22} chosen: {results[next(iter(cmds))][0]['chosen']:,} folders; "
          f"the same in both: {'yes' if same else 'NO'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--status", default="10000,100000,200000")
    ap.add_argument("--finalize", default="1000x1000")
    ap.add_argument("--catalog", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--select", type=int, default=1_000_000)
    ap.add_argument("--only", choices=("status", "finalize", "catalog", "select"))
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs; other work shares them)")
    header()
    if a.only in (None, "status"):
        bench_status([int(x) for x in a.status.split(",") if x], a.repeat)
    if a.only in (None, "finalize"):
        folders, files = (int(x) for x in a.finalize.split("x"))
        bench_finalize(folders, files, a.repeat)
    if a.only in (None, "catalog"):
        bench_catalog(a.catalog, a.repeat)
    if a.only in (None, "select"):
        bench_select(a.select, a.repeat)
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
