#!/usr/bin/env python3
"""Benchmark the archive task engine next to plain ``md5sum`` + ``rclone copy`` of the same data.

    .venv/bin/python bench/bench_archive.py [OUT_DIR] [--large N] [--large-size SIZE]
        [--small N] [--no-s3] [--transfers N]

Builds (once; reused while its stamp matches) a folder of a few large files and a folder of
many small ones (default 4 x 512 MiB and 100,000 files of 1-8 KiB in 100 subfolders) under
OUT_DIR (default bench/out/archive), warms the page cache, then in the same run:

* measures single-core ``md5sum`` on one large file, and our hash step (bounded thread pool)
  on the large folder: target >= 90% of (cores x the single-core rate);
* archives each folder with the task engine (every step of ``froster_slurm.archive.steps``,
  timed one by one, in process) and, as the baseline, runs ``md5sum`` over the same files
  then ``rclone copy --checksum`` of the folder;
* does both against a local remote and against moto's S3 server on 127.0.0.1 (``--no-s3``
  skips it), reporting throughput, remote object counts and the overhead ratio.

Targets from the issue: large files within 1.25x of the baseline; small files bundled so the
remote holds >= 100x fewer objects and the upload is faster than the baseline's copy.  Results
go to stdout and OUT_DIR/results.json.  This is a benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from froster_slurm.archive.settings import load_settings  # noqa: E402
from froster_slurm.archive.steps import STEPS, ArchiveTask  # noqa: E402
from froster_slurm.run.taskstate import mark_step_done, read_task_state  # noqa: E402
from froster_slurm.util.units import format_size, parse_size  # noqa: E402

MiB = 1024 * 1024


def rclone_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


def build_data(root: Path, large: int, large_size: int, small: int) -> tuple[Path, Path]:
    """The two source folders (regenerated only when the parameters change)."""
    stamp = root / ".stamp"
    want = f"v1 {large}x{large_size} {small}"
    big, tiny = root / "large", root / "small"
    if stamp.exists() and stamp.read_text() == want:
        return big, tiny
    shutil.rmtree(root, ignore_errors=True)
    big.mkdir(parents=True)
    block = os.urandom(MiB)
    for i in range(large):
        with open(big / f"large{i}.bin", "wb") as f:
            for k in range(large_size // MiB):
                f.write(block[k % 97:] + block[:k % 97])  # distinct content per MiB
            f.write(os.urandom(large_size % MiB))
    rng = random.Random(42)
    pool = os.urandom(8192 * 2)
    for i in range(small):
        d = tiny / f"dir{i % 100:03d}"
        if i < 100:
            d.mkdir(parents=True)
        n = rng.randint(1024, 8192)
        off = rng.randint(0, 8192)
        (d / f"f{i:06d}.dat").write_bytes(pool[off:off + n] + i.to_bytes(4, "little"))
    stamp.write_text(want)
    return big, tiny


def warm(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                while f.read(8 * MiB):
                    pass


def timed(cmd: list[Any], **kw: Any) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def md5sum_all(folder: Path) -> float:
    """``find FOLDER -type f -print0 | xargs -0 md5sum``: one md5sum process at a time."""
    t = time.perf_counter()
    find = subprocess.Popen(["find", str(folder), "-type", "f", "-print0"],
                            stdout=subprocess.PIPE)
    subprocess.run(["xargs", "-0", "md5sum"], stdin=find.stdout, check=True,
                   stdout=subprocess.DEVNULL)
    find.wait()
    return time.perf_counter() - t


def count_objects(remote: str, config: str | None) -> int:
    cmd = ["rclone", "size", "--json", remote] + (["--config", config] if config else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=rclone_env(), check=True)
    return int(json.loads(out.stdout)["count"])


SETTLE = {"seconds": 30.0}


def settle(folder: Path) -> None:
    """Flush, let the disk settle and re-warm the source, so both contenders start equal.

    rclone drops the files it reads from the page cache (fadvise DONTNEED), so whoever runs
    after an ``rclone copy`` would otherwise read cold data: bundling 100,000 small files
    took 3.5 s warm and 12.7 s right after the baseline's copy.
    """
    os.sync()
    time.sleep(SETTLE["seconds"])
    warm(folder)


def drop_trace(folder: Path) -> None:
    """Remove the trace an earlier engine run left, so both contenders move the same data."""
    for name in ("Froster.archive.json", "Froster.manifest.md5", "index.html"):
        (folder / name).unlink(missing_ok=True)


def baseline(folder: Path, dest: str, config: str | None, flags: list[str],
             transfers: int) -> dict[str, Any]:
    drop_trace(folder)
    settle(folder)
    hash_s = md5sum_all(folder)
    cmd = ["rclone", "copy", "--checksum", "--transfers", str(transfers), str(folder), dest,
           *flags] + (["--config", config] if config else [])
    copy_s = timed(cmd, env=rclone_env())
    return {"md5sum_s": hash_s, "copy_s": copy_s, "total_s": hash_s + copy_s,
            "objects": count_objects(dest, config)}


def engine(run_dir: Path, folder: Path, config: str | None) -> dict[str, Any]:
    """Every step of the archive task, timed (what ``python -m froster_slurm.jobs archive``
    runs)."""
    drop_trace(folder)
    settle(folder)
    settings = load_settings(run_dir)
    task = ArchiveTask(settings, 0, os.fsencode(folder), read_task_state(run_dir, 0))
    task.work.mkdir(parents=True, exist_ok=True)
    steps: dict[str, float] = {}
    for step in STEPS:
        t = time.perf_counter()
        summary = getattr(task, f"step_{step}")()
        steps[step] = time.perf_counter() - t
        mark_step_done(run_dir, 0, step, summary)
    plan = task.the_plan()
    objects = count_objects(task.dest, config)
    return {"steps_s": steps, "total_s": sum(steps.values()), "objects": objects,
            "data_objects": len(plan.objects) + len(plan.bundles),
            "bundles": len(plan.bundles), "hash_workers": settings.workers()}


def make_run(state: Path, folder: Path, remote: str, config: str | None, flags: list[str],
             transfers: int) -> Path:
    from froster_slurm.config import load_config
    from froster_slurm.run.rundir import archive_settings, create_run

    cfg = load_config({"state_dir": str(state)})
    s = archive_settings(cfg, remote)
    s.update(recursive=True, rclone_flags=flags, transfers=transfers,
             rclone_config=config or "", storage_class="DEEP_ARCHIVE")
    return create_run(cfg, "archive", folders=[os.fsencode(folder)], archive=s,
                      backend="local").run_dir


def rate(nbytes: int, seconds: float) -> str:
    return f"{format_size(nbytes / seconds)}/s" if seconds > 0 else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(REPO / "bench" / "out" / "archive"))
    ap.add_argument("--large", type=int, default=4)
    ap.add_argument("--large-size", default="512MiB")
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--transfers", type=int, default=4)
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--settle", type=float, default=SETTLE["seconds"],
                    help="seconds to let the disk settle before each contender (default 30)")
    args = ap.parse_args()
    SETTLE["seconds"] = args.settle
    out = Path(args.out)
    large_size = parse_size(args.large_size)
    big, tiny = build_data(out / "data", args.large, large_size, args.small)
    drop_trace(big)
    drop_trace(tiny)
    big_bytes = sum(p.stat().st_size for p in big.iterdir())
    tiny_bytes = sum(p.stat().st_size for p in tiny.rglob("*") if p.is_file())
    cores = len(os.sched_getaffinity(0))
    print(f"data: {args.large} x {format_size(large_size)} large ({format_size(big_bytes)}), "
          f"{args.small:,} small files ({format_size(tiny_bytes)}); {cores} cores", flush=True)
    drop_trace(big)
    drop_trace(tiny)
    warm(big)
    warm(tiny)
    one = big / "large0.bin"
    single = one.stat().st_size / min(timed(["md5sum", str(one)]) for _ in range(3))
    print(f"md5sum, one core, warm (best of 3): "
          f"{rate(one.stat().st_size, one.stat().st_size / single)}", flush=True)
    results: dict[str, Any] = {"cores": cores, "md5sum_single_Bps": single,
                               "large_bytes": big_bytes, "small_bytes": tiny_bytes,
                               "small_files": args.small, "remotes": {}}
    targets = [("local", None)]
    server = None
    if not args.no_s3:
        from s3server import RCLONE_TEST_FLAGS, S3Server

        server = S3Server(out / "s3")
        server.start()
        targets.append(("s3", server))
    try:
        for kind, srv in targets:
            work = out / "runs" / kind
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            remote = srv.remote if srv else str(work / "remote")
            config = str(srv.rclone_config) if srv else None
            flags = list(RCLONE_TEST_FLAGS) if srv else []
            res: dict[str, Any] = {}
            for label, folder, nbytes in (("large", big, big_bytes), ("small", tiny,
                                                                       tiny_bytes)):
                base_dest = f"{remote}/baseline/{label}"
                print(f"[{kind}/{label}] baseline md5sum + rclone copy ...", flush=True)
                b = baseline(folder, base_dest, config, flags, args.transfers)
                print(f"[{kind}/{label}] froster-slurm task engine ...", flush=True)
                run_dir = make_run(work / f"state-{label}", folder, remote, config, flags,
                                   args.transfers)
                e = engine(run_dir, folder, config)
                res[label] = {"baseline": b, "engine": e,
                              "ratio": e["total_s"] / b["total_s"],
                              "objects_fewer_x": b["objects"] / max(1, e["objects"]),
                              "upload_vs_copy": e["steps_s"]["upload"] / b["copy_s"]}
                hashed = e["steps_s"]["hash"] if label == "large" else e["steps_s"]["bundle"]
                print(f"[{kind}/{label}] baseline {b['total_s']:.1f}s (md5sum "
                      f"{b['md5sum_s']:.1f}s + copy {b['copy_s']:.1f}s, {b['objects']:,} "
                      f"objects); engine {e['total_s']:.1f}s "
                      + " ".join(f"{k}={v:.1f}" for k, v in e["steps_s"].items())
                      + f", {e['objects']:,} objects; ratio {res[label]['ratio']:.2f}x; "
                      f"end to end {rate(nbytes, e['total_s'])}; "
                      f"{'hash' if label == 'large' else 'bundle+hash'} "
                      f"{rate(nbytes, hashed)}", flush=True)
            hash_rate = big_bytes / res["large"]["engine"]["steps_s"]["hash"]
            res["hash_rate_Bps"] = hash_rate
            res["hash_vs_cores_x_md5sum"] = hash_rate / (cores * single)
            results["remotes"][kind] = res
    finally:
        if server is not None:
            server.stop()
    print("\nsummary (targets: hash >= 0.90 of cores x md5sum; large ratio <= 1.25; "
          "small: >= 100x fewer objects, upload faster than the baseline copy)")
    for kind, res in results["remotes"].items():
        print(f"  {kind:5} hash {res['hash_vs_cores_x_md5sum']:.2f} of {cores} x md5sum | "
              f"large ratio {res['large']['ratio']:.2f}x | small ratio "
              f"{res['small']['ratio']:.2f}x, {res['small']['objects_fewer_x']:.0f}x fewer "
              f"objects, upload/copy {res['small']['upload_vs_copy']:.2f}")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
