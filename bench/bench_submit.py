"""Benchmark: submit an archive of 10,000 folders to the real local Slurm cluster.

Prints the wall time of the whole submission (run directory, rendering, bash -n, sbatch) and
the number of sbatch calls, beside the target ceil(N / MaxArraySize) + 2 and a baseline
measured in the same run: one plain `sbatch --wrap true` per folder for the first 200 folders,
extrapolated (what a tool without array jobs would pay). Jobs are submitted held (--hold) and
cancelled at once, so nothing runs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time

from froster_slurm.config import load_config
from froster_slurm.run.rundir import archive_settings, create_run
from froster_slurm.scheduler.backends import SlurmBackend
from froster_slurm.scheduler.slurm import SlurmClient, scrubbed_env
from froster_slurm.submit.pipeline import SubmitResult, dispatch_archive

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000


def main() -> None:
    calls: list[list[str]] = []

    def counting_runner(cmd, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append(cmd)
        return subprocess.run(cmd, **kw)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FROSTER_SLURM_STATE_DIR"] = os.path.join(tmp, "state")
        cfg = load_config({"slurm.extra": ["--hold"]})
        folders = [f"/data/lab/project-{i:05d}".encode() for i in range(N)]
        be = SlurmBackend(SlurmClient(runner=counting_runner, env=scrubbed_env()))
        t0 = time.perf_counter()
        run = create_run(cfg, "archive", folders=folders,
                         archive=archive_settings(cfg, os.path.join(tmp, "remote")))
        from froster_slurm.config import save_snapshot

        save_snapshot(cfg, run.run_dir / "config.toml")
        result = SubmitResult(run)
        dispatch_archive(run, cfg, be, result)
        wall = time.perf_counter() - t0
        sbatch_calls = sum(1 for c in calls if c[0] == "sbatch")
        limit = be.max_array_size()
        SlurmClient().cancel(run.all_job_ids())

        # Baseline: one job per folder (200 of them, extrapolated), also held and cancelled.
        script = os.path.join(tmp, "one.sbatch")
        with open(script, "w") as f:
            f.write("#!/bin/bash\n#SBATCH --hold\n#SBATCH --output=/dev/null\ntrue\n")
        client = SlurmClient()
        sample = min(200, N)
        t0 = time.perf_counter()
        ids = [client.submit(script) for _ in range(sample)]
        base = (time.perf_counter() - t0) * N / sample
        client.cancel(ids)

    target_calls = math.ceil(N / limit) + 2
    print(f"submit {N} folders (MaxArraySize {limit})")
    print(f"{'':28}{'wall s':>10}{'sbatch calls':>14}")
    print(f"{'froster-slurm (arrays)':28}{wall:>10.2f}{sbatch_calls:>14}")
    print(f"{'baseline: 1 job per folder':28}{base:>10.2f}{N:>14}   (extrapolated from {sample})")
    print(f"target: < 3 s and <= {target_calls} sbatch calls -> "
          f"{'MET' if wall < 3 and sbatch_calls <= target_calls else 'NOT MET'}; "
          f"speed-up vs baseline {base / wall:.0f}x")


if __name__ == "__main__":
    main()
