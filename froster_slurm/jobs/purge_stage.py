"""The purge job: purge the run's folders that have no result yet, with the same proof as an
inline purge (``purge.purger.purge_folder``).

Job side (``python -m froster_slurm.jobs purge RUN_DIR``).  Exit 0 when every folder was purged,
3 when some were not (each one's reason is in purge.json and the job log).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..purge.purger import PurgeResult, purge_folder, write_results
from ..restore.remote import rclone_from_config
from ..run.rundir import Run, run_config


def run_purge_job(run_dir: Path) -> int:
    """The Slurm job: purge the run's folders that have no result yet; 0 when all purged."""
    run = Run(run_dir)
    cfg = run_config(run)
    results_path = run.purge_results_path
    have: list[dict] = json.loads(results_path.read_text()) if results_path.exists() else []
    finished = {r["folder"] for r in have}
    rclone = rclone_from_config(cfg, run.rclone_logs_dir)
    results = [PurgeResult(**r) for r in have]
    ok = True
    for folder in run.folders():
        if os.fsdecode(folder) in finished:
            continue
        res = purge_folder(folder, rclone=rclone, work=run.work_dir, dry_run=False,
                           workers=max(1, len(os.sched_getaffinity(0))), run_id=run.run_id,
                           catalog_file=run.settings.catalog,
                           templates_dir=cfg.get("templates_dir") or None)
        results.append(res)
        write_results(results_path, results)
        for line in res.lines():
            print(line, flush=True)
        ok = ok and res.ok
    return 0 if ok else 3
