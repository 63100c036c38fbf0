"""The crawl job: array task N walks share N of the plan made at submit time.

Job side (``python -m froster_slurm.jobs crawl RUN_DIR INDEX``).  Everything is read from the
run directory (never from the script's text or the submitter's environment), with the config
frozen into the run at submission.  The plan itself is made by ``submit.pipeline.plan_crawl``.
"""

from __future__ import annotations

import time

from ..run.rundir import Run, crawl_dir, run_config
from ..scheduler.injob import set_status


def _crawl_comment(index: int, every: float = 30.0):
    """The shard's Comment while it walks: entries so far and the rate (a crawl has no total,
    so no ETA), at most every ``every`` seconds (each update is one call to the scheduler)."""
    from ..status.progress import RateMeter, format_rate

    meter = RateMeter(window=120.0)
    last = [time.monotonic()]

    def progress(entries: int, _directories: int, errors: int) -> None:
        now = time.monotonic()
        meter.add(entries, now)
        if now - last[0] < every:
            return
        last[0] = now
        text = f"crawl shard {index}: {entries:,} entries, {format_rate(meter.rate(), 'entries')}"
        set_status(text + (f", {errors:,} errors so far" if errors else ""))

    return progress


def crawl(run: Run, index: int) -> int:
    """Array task ``index``: crawl share ``index`` of the plan into crawl/shard-NNNN.csv."""
    from ..crawl import crawl_shard

    cfg = run_config(run)
    set_status(f"crawl shard {index}")
    summary = crawl_shard(crawl_dir(run), index, progress=_crawl_comment(index),
                          workers=cfg.get("crawl.workers"), threads=cfg.get("crawl.threads"),
                          one_file_system=cfg.get("crawl.one_file_system"),
                          exclude=cfg.get("crawl.exclude"),
                          no_snapshots=cfg.get("crawl.no_snapshots"))
    print(f"crawl shard {index}: {summary}", flush=True)
    # A shard with unreadable entries still feeds rank (what could be read is ranked); the
    # problems stay in its .errors file and the job log, and the Comment says so.
    if not summary.complete:
        set_status(f"crawl shard {index}: incomplete, see its .errors file")
    return 0
