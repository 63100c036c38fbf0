"""What the rendered job scripts run: ``python -m froster_slurm.jobs STAGE RUN_DIR [INDEX]``.

Each function reads everything from the run directory (never from the script's text or the
submitter's environment) and uses the config frozen into the run at submission.  The archive
task itself is ``froster_slurm.task``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .errors import FrosterError, UserError
from .paths import read_folder_list, write_folder_list
from .pipeline import SubmitResult, backend_for_run, dispatch_archive, run_config
from .runs import Run
from .slurm import SlurmClient
from .taskstate import clip_comment, slurm_task_id
from .units import format_size, parse_age, parse_size


def set_comment(text: str) -> None:
    """The job's live status line in squeue (Slurm backend only; best effort).

    Addressed like the archive tasks (``taskstate.slurm_task_id``): a crawl shard is an array
    task, and its bare SLURM_JOB_ID would make scontrol update every shard at once.
    """
    job = slurm_task_id()
    if job and os.environ.get("FROSTER_BACKEND") != "local" and SlurmClient.available():
        try:
            SlurmClient().set_comment(job, clip_comment(text))
        except FrosterError:
            pass


def crawl_dir(run: Run) -> Path:
    """Where a run's crawl shards go: <run>/crawl, or the -o of `crawl --submit`."""
    return Path(run.settings.get("crawl", {}).get("out_dir") or run.run_dir / "crawl")


def plan_crawl(run: Run, shards: int) -> None:
    """Split the run's roots into ``shards`` balanced shares (at submit time, once)."""
    from .crawl import plan_shards
    from .crawl.builtin import CrawlOptions

    cfg = run_config(run)
    roots = read_folder_list(run.run_dir / "roots.nul")
    out = crawl_dir(run)
    out.mkdir(parents=True, exist_ok=True)
    options = CrawlOptions(one_file_system=cfg.get("crawl.one_file_system"),
                           excludes=tuple(cfg.get("crawl.exclude")),
                           no_snapshots=cfg.get("crawl.no_snapshots"))
    plan_shards(roots, shards, out, options)


def _crawl_comment(index: int, every: float = 30.0):
    """The shard's Comment while it walks: entries so far and the rate (a crawl has no total,
    so no ETA), at most every ``every`` seconds (each update is one scontrol call)."""
    from .progress import RateMeter, format_rate

    meter = RateMeter(window=120.0)
    last = [time.monotonic()]

    def progress(entries: int, _directories: int, errors: int) -> None:
        now = time.monotonic()
        meter.add(entries, now)
        if now - last[0] < every:
            return
        last[0] = now
        text = f"crawl shard {index}: {entries:,} entries, {format_rate(meter.rate(), 'entries')}"
        set_comment(text + (f", {errors:,} errors so far" if errors else ""))

    return progress


def crawl(run: Run, index: int) -> int:
    """Array task ``index``: crawl share ``index`` of the plan into crawl/shard-NNNN.csv."""
    from .crawl import crawl_shard

    cfg = run_config(run)
    set_comment(f"crawl shard {index}")
    summary = crawl_shard(crawl_dir(run), index, progress=_crawl_comment(index),
                          workers=cfg.get("crawl.workers"), threads=cfg.get("crawl.threads"),
                          one_file_system=cfg.get("crawl.one_file_system"),
                          exclude=cfg.get("crawl.exclude"),
                          no_snapshots=cfg.get("crawl.no_snapshots"))
    print(f"crawl shard {index}: {summary}", flush=True)
    # A shard with unreadable entries still feeds rank (what could be read is ranked); the
    # problems stay in its .errors file and the job log, and the Comment says so.
    if not summary.complete:
        set_comment(f"crawl shard {index}: incomplete, see its .errors file")
    return 0


def rank(run: Run) -> int:
    """Rank the crawl, select folders by the run's rules, submit archive + finalize."""
    from .rank import rank_to_file
    from .selection import Rules, archive_units, load_hotspots, select_by_rules, why_none

    cfg = run_config(run)
    sel = run.settings.get("select", {})
    set_comment("rank")
    hotspots = run.run_dir / "hotspots.csv"
    totals, _ = rank_to_file([crawl_dir(run)], hotspots,
                             memory_limit=cfg.get("rank.memory_limit"),
                             temp_dir=cfg.get("rank.temp_dir") or None,
                             threads=cfg.get("rank.threads"))
    print(f"rank: {totals.rows:,} crawl rows, {totals.folders:,} folders ({totals.reader})",
          flush=True)
    rules = Rules(min_size=parse_size(sel.get("min_size") or cfg.get("rank.min_size")),
                  older_than=parse_age(sel.get("older_than") or cfg.get("rank.older_than")),
                  owners=frozenset([sel["owner"]]) if sel.get("owner") else frozenset(),
                  by=sel.get("by") or cfg.get("rank.by"))
    min_avg = parse_size(sel.get("min_avg_size") or cfg.get("rank.min_avg_size"))
    recursive = bool(run.settings["archive"]["recursive"])
    # A folder with nothing to archive (no files directly inside, or in its subtree when
    # recursive) is never an archive unit, whatever the thresholds.
    ranked = load_hotspots(hotspots)
    rows = archive_units(ranked, min_avg, recursive)
    now = time.time()
    chosen = select_by_rules(rows, rules, top=sel.get("top"), recursive=recursive, now=now)
    folders = [h.folder for h in chosen.chosen]
    write_folder_list(run.folders_path, folders)
    report = {"selected": len(folders), "ranked": len(ranked),
              "rules": f"{rules.describe()}, average file >= {format_size(min_avg)}"}
    if folders:
        print(f"rank: {len(folders)} of {len(ranked)} folders selected ({report['rules']})",
              flush=True)
    else:  # say which rule removed what, in status and the summary too (selection.json)
        why = why_none(ranked, rules, now=now, min_avg=min_avg, recursive=recursive)
        report.update(why.to_json_obj())
        print(f"rank: {why.message()}", flush=True)
        set_comment("rank: 0 folders selected")
    run.write_selection_report(report)
    result = SubmitResult(run, backend=run.settings.get("backend", "slurm"))
    dispatch_archive(run, cfg, backend_for_run(run, cfg), result)
    jobs = "; ".join(f"{stage} job {' '.join(ids)}" for stage, ids in result.job_ids.items())
    print(f"submitted: {jobs}", flush=True)
    return 0


def finalize(run: Run) -> int:
    from .finalize import finalize as do_finalize

    set_comment("finalize")
    s = do_finalize(run)
    t = s["totals"]
    print(f"finalize: {t['done']}/{t['folders']} folders archived; "
          f"{t['catalog_added']} catalog entries", flush=True)
    if s.get("catalog_error"):
        print(f"finalize: {s['catalog_error']}", flush=True)
    if s.get("selection") and not s["selection"].get("selected"):
        print(f"finalize: nothing to archive: {s['selection'].get('message')}", flush=True)
    if s["retry_command"]:
        print(f"retry the others with: {s['retry_command']}", flush=True)
    if s.get("retry_note"):
        print(s["retry_note"], flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) < 2:
            raise UserError("usage: python -m froster_slurm.jobs crawl|rank|finalize RUN_DIR "
                            "[INDEX]")
        stage, run = args[0], Run(Path(args[1]))
        if stage == "crawl":
            return crawl(run, int(args[2]) if len(args) > 2 else 0)
        if stage == "rank":
            return rank(run)
        if stage == "finalize":
            return finalize(run)
        raise UserError(f"unknown job stage {stage!r}")
    except FrosterError as e:
        print(f"froster-slurm: error: {e}", file=sys.stderr, flush=True)
        set_comment(f"failed: {e}"[:200])
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
