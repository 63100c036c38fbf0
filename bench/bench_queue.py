#!/usr/bin/env python3
"""Benchmark a whole archive run of many tiny folders through the real local Slurm cluster.

    .venv/bin/python bench/bench_queue.py [OUT_DIR] [--folders 1000] [--baseline 1000]
        [--throttle 8] [--cap 0] [--cpus 1]

Makes N tiny folders (one 16-byte file each) under OUT_DIR (default bench/out/queue),
then, in the same run, archives them end to end (submit -> archive arrays -> finalize, status
polled until the run is finished) to a local-folder remote twice:

* baseline: ``archive.task_minutes = 0``, one array task per folder (the behaviour before
  batches), on the first ``--baseline`` folders;
* unpooled: batched as below, but each folder runs its own rclone calls
  (``archive.share_rclone = false``, the behaviour before pooling), on ``--unpooled`` folders;
* batched: the default ``archive.task_minutes`` (small folders travel together) and their
  rclone calls pooled (``archive.shared``), on all N, with ``slurm.max_queued = --cap`` when
  given (0: derived from the site).

For each: makespan and folders/s, array tasks, arrays, the peak number of the run's archive
tasks in squeue (sampled every 0.5 s) and the most running at once, and the run directory's
files and bytes per folder.  Results go to stdout and OUT_DIR/results.json.  A benchmark,
not a test: nothing asserts.  The machine's load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from froster_slurm.config import load_config  # noqa: E402
from froster_slurm.status.collect import collect  # noqa: E402
from froster_slurm.submit.pipeline import archive_folders, backend_for_run  # noqa: E402


def make_folders(root: Path, n: int) -> list[bytes]:
    """N tiny folders, made anew each run (an archived folder holds its record)."""
    shutil.rmtree(root, ignore_errors=True)
    for i in range(n):
        d = root / f"d{i // 1000:03d}" / f"f{i:06d}"
        d.mkdir(parents=True)
        (d / "data.txt").write_bytes(b"%015d\n" % i)
        os.utime(d / "data.txt", (1_500_000_000, 1_500_000_000))
    return [os.fsencode(root / f"d{i // 1000:03d}" / f"f{i:06d}") for i in range(n)]


def squeue_counts(run_id: str) -> tuple[int, int]:
    """(archive tasks of the run in the queue, of those running)."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%j|%T"], capture_output=True,
                         text=True).stdout
    rows = [ln.split("|") for ln in out.splitlines()
            if ln.startswith("froster-archive-") and ln.split("|")[0].endswith(run_id)]
    return len(rows), sum(1 for r in rows if r[1] == "RUNNING")


def footprint(run_dir: Path) -> tuple[int, int]:
    """(files, allocated bytes) under the run directory."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(run_dir):
        for n in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, n)).st_blocks * 512
    return files, size


def _when(text: str | None) -> float | None:
    from datetime import UTC, datetime

    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def active_span(run_dir: Path, n: int) -> tuple[float, float]:
    """(first folder started, last folder finished), epoch seconds (1 s resolution)."""
    from froster_slurm.run.taskstate import read_task_state

    st = [read_task_state(run_dir, i) for i in range(n)]
    starts = [t for t in (_when(s.get("started_at")) for s in st) if t]
    ends = [t for t in (_when(s.get("finished_at")) for s in st) if t]
    return (min(starts), max(ends)) if starts and ends else (0.0, 0.0)


def chain_hops(run_dir: Path, jobs: dict[str, Any]) -> list[float]:
    """Seconds from the last folder of each array finishing to the first of the next starting
    (the chain job's cost: its scheduling, start-up and sbatch, then the new array's)."""
    from froster_slurm.run.batches import batch_folders
    from froster_slurm.run.taskstate import read_task_state

    spans = []
    for e in jobs.get("archive", []):
        folders = [i for b in range(e["offset"], e["offset"] + e["count"])
                   for i in batch_folders(run_dir, b)]
        st = [read_task_state(run_dir, i) for i in folders]
        starts = [t for t in (_when(s.get("started_at")) for s in st) if t]
        ends = [t for t in (_when(s.get("finished_at")) for s in st) if t]
        if starts and ends:
            spans.append((min(starts), max(ends)))
    return [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]


def one_run(label: str, folders: list[bytes], remote: Path, state: Path,
            settings: dict[str, Any]) -> dict[str, Any]:
    shutil.rmtree(remote, ignore_errors=True)
    cfg = load_config({"state_dir": str(state), **settings})
    t0 = time.monotonic()
    result = archive_folders(folders, str(remote), cfg, backend="slurm")
    submit_s = time.monotonic() - t0
    run = result.run
    be = backend_for_run(run, cfg)
    peak_q = peak_r = 0
    last_status = 0.0
    while True:
        q, r = squeue_counts(run.run_id)
        peak_q, peak_r = max(peak_q, q), max(peak_r, r)
        now = time.monotonic()
        if now - last_status > 5 or q == 0:
            last_status = now
            st = collect(run, be)
            if st.finished:
                break
        time.sleep(0.5)
    wall = time.monotonic() - t0
    t = st.totals
    files, size = footprint(run.run_dir)
    jobs = run.jobs()
    first, last = active_span(run.run_dir, len(folders))
    out = {"label": label, "folders": len(folders), "done": t.get("done"),
           "failed": t.get("failed"), "makespan_s": round(wall, 1),
           "submit_s": round(submit_s, 2), "folders_per_s": round(len(folders) / wall, 2),
           "array_tasks": sum(int(e.get("count", 0)) for e in jobs.get("archive", [])),
           "arrays": len(jobs.get("archive", [])), "chain_jobs": len(jobs.get("chain", [])),
           "peak_queued_tasks": peak_q, "peak_running_tasks": peak_r,
           "run_dir_files_per_folder": round(files / len(folders), 2),
           "run_dir_bytes_per_folder": round(size / len(folders)),
           "chain_hops_s": chain_hops(run.run_dir, jobs),
           # from the first folder started to the last one finished: without the time the
           # run waited in a queue shared with other users
           "active_s": round(last - first), "folders_per_s_active":
               round(len(folders) / max(1.0, last - first), 2),
           "settings": settings, "run_id": run.run_id}
    print(f"{label:10} {len(folders):>7} folders  {wall:>8.1f} s  "
          f"{out['folders_per_s']:>7.2f} folders/s  tasks {out['array_tasks']:>6}  arrays "
          f"{out['arrays']:>3}  peak queued {peak_q:>5} running {peak_r:>2}  run dir "
          f"{out['run_dir_files_per_folder']:>5.2f} files "
          f"{out['run_dir_bytes_per_folder'] / 1024:>6.1f} KiB per folder", flush=True)
    print(f"{'':10} first folder started to last finished: {out['active_s']} s, "
          f"{out['folders_per_s_active']} folders/s (the rest: waiting in the shared queue)",
          flush=True)
    if out["chain_hops_s"]:
        hops = sorted(out["chain_hops_s"])
        print(f"{'':10} chain hops between arrays (s, 1 s resolution): median "
              f"{hops[len(hops) // 2]:.0f}, max {hops[-1]:.0f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=str(REPO / "bench" / "out" / "queue"))
    ap.add_argument("--folders", type=int, default=1000)
    ap.add_argument("--baseline", type=int, default=1000,
                    help="folders of the one-task-per-folder run (0: skip it)")
    ap.add_argument("--unpooled", type=int, default=0,
                    help="folders of a batched run whose folders do not pool their rclone "
                         "calls (0: skip it)")
    ap.add_argument("--throttle", type=int, default=8)
    ap.add_argument("--cap", type=int, default=0, help="slurm.max_queued of the batched run")
    ap.add_argument("--cpus", type=int, default=1, help="CPUs per archive task")
    ap.add_argument("--task-minutes", type=int, default=None,
                    help="archive.task_minutes of the batched run (default: the config's)")
    ap.add_argument("--folder-seconds", type=float, default=None,
                    help="archive.folder_seconds of the batched run (default: the config's); "
                         "with a small --task-minutes: many small batches, to see the cap "
                         "at work")
    ap.add_argument("--chained", type=int, default=0,
                    help="folders of a third run, one per task, slurm.max_queued 5: the cost "
                         "of queueing one array after another (0: skip it)")
    args = ap.parse_args()
    out = Path(args.out)
    # Each run archives its own copy: a folder archived once already carries a record, and a
    # second archive of it would be a new version (more work than the first).
    folders = make_folders(out / "src-batched", args.folders)
    base_folders = make_folders(out / "src-baseline", args.baseline) if args.baseline else []
    base = {"archive.throttle": args.throttle, "slurm.archive.cpus": args.cpus,
            "archive.recursive": False}
    print(f"load average before: {os.getloadavg()[0]:.2f} (2-CPU node, throttle "
          f"{args.throttle}, {args.cpus} CPU per task)", flush=True)
    results = []
    if args.baseline:
        results.append(one_run("baseline", base_folders, out / "remote",
                               out / "state", {**base, "archive.task_minutes": 0}))
    if args.unpooled:
        results.append(one_run("unpooled", make_folders(out / "src-unpooled", args.unpooled),
                               out / "remote", out / "state",
                               {**base, "archive.share_rclone": False}))
    batched = {**base, **({"slurm.max_queued": args.cap} if args.cap else {}),
               **({"archive.task_minutes": args.task_minutes}
                  if args.task_minutes is not None else {}),
               **({"archive.folder_seconds": args.folder_seconds}
                  if args.folder_seconds is not None else {})}
    results.append(one_run("batched", folders, out / "remote", out / "state", batched))
    if args.chained:
        results.append(one_run("chained", make_folders(out / "src-chained", args.chained),
                               out / "remote", out / "state",
                               {**base, "archive.task_minutes": 0, "slurm.max_queued": 5}))
    print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)
    last = results[-1] if not args.chained else results[-2]
    for r in results:
        if r is not last and r["folders_per_s"]:
            print(f"batched+pooled vs {r['label']}: "
                  f"{last['folders_per_s'] / r['folders_per_s']:.1f}x folders/s; run dir files "
                  f"per folder {r['run_dir_files_per_folder']} -> "
                  f"{last['run_dir_files_per_folder']}")
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
