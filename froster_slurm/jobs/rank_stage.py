"""The rank job: rank the crawl, select the folders by the run's rules, submit the archive.

Job side (``python -m froster_slurm.jobs rank RUN_DIR``).  The archive array's size is only
known here, so this job submits the archive array(s) and the finalize job: the one job that
imports the submission side (``submit.pipeline``'s dispatch; a one-way import).
"""

from __future__ import annotations

import time

from ..run.rundir import Run, crawl_dir, run_config
from ..scheduler.injob import set_status
from ..submit.pipeline import SubmitResult, backend_for_run, dispatch_archive
from ..util.paths import write_folder_list
from ..util.units import format_size, parse_age, parse_size


def rank(run: Run) -> int:
    """Rank the crawl, select folders by the run's rules, submit archive + finalize."""
    from ..pick import rules_sql
    from ..pick.selection import Rules, put_estimate_for
    from ..rank.loader import Engine
    from ..rank.ranking import rank_to_file

    cfg = run_config(run)
    sel = run.settings.select
    set_status("rank")
    hotspots = run.hotspots_path
    engine = Engine(memory_limit=cfg.get("rank.memory_limit"),
                    temp_dir=cfg.get("rank.temp_dir") or "", threads=cfg.get("rank.threads"))
    totals, _ = rank_to_file([crawl_dir(run)], hotspots,
                             memory_limit=engine.memory_limit,
                             temp_dir=engine.temp_dir or None, threads=engine.threads)
    print(f"rank: {totals.rows:,} crawl rows, {totals.folders:,} folders ({totals.reader})",
          flush=True)
    rules = Rules(min_size=parse_size(sel.get("min_size") or cfg.get("rank.min_size")),
                  older_than=parse_age(sel.get("older_than") or cfg.get("rank.older_than")),
                  owners=frozenset([sel["owner"]]) if sel.get("owner") else frozenset(),
                  by=sel.get("by") or cfg.get("rank.by"))
    min_avg = parse_size(sel.get("min_avg_size") or cfg.get("rank.min_avg_size"))
    recursive = bool(run.archive_table["recursive"])
    # A folder with nothing to archive (no files directly inside, or in its subtree when
    # recursive) is never an archive unit, whatever the thresholds.  The rules run inside
    # DuckDB under rank.memory_limit (pick.rules_sql): the hotspots rows never all become
    # Python objects, only the chosen folders do.
    now = time.time()
    with rules_sql.HotspotsTable(hotspots, engine) as table:
        ranked = table.count()
        chosen = rules_sql.select(table, rules, min_avg=min_avg, top=sel.get("top"),
                                  recursive=recursive, now=now)
        why = None if chosen.chosen else rules_sql.funnel(
            table, rules, now=now, min_avg=min_avg, recursive=recursive)
    folders = [h.folder for h in chosen.chosen]
    write_folder_list(run.folders_path, folders)
    report = {"selected": len(folders), "ranked": ranked,
              "rules": f"{rules.describe()}, average file >= {format_size(min_avg)}"}
    if why is None:
        print(f"rank: {len(folders)} of {ranked} folders selected ({report['rules']})",
              flush=True)
        sclass = str(run.archive_table.get("storage_class") or "")
        est = put_estimate_for(chosen.chosen, recursive, sclass, cfg)
        report["upload"] = est.to_json_obj()
        print(f"rank: upload requests: {est.text()}", flush=True)
    else:  # say which rule removed what, in status and the summary too (selection.json)
        report.update(why.to_json_obj())
        print(f"rank: {why.message()}", flush=True)
        set_status("rank: 0 folders selected")
    run.write_selection_report(report)
    result = SubmitResult(run, backend=run.settings.backend or "slurm")
    # The crawl already knows each folder's size and files: the batches are sized from them.
    sizes = {i: (h.total_bytes, h.total_files) if recursive else (h.bytes, h.files)
             for i, h in enumerate(chosen.chosen)}
    dispatch_archive(run, cfg, backend_for_run(run, cfg), result, sizes=sizes)
    jobs = "; ".join(f"{stage} job {' '.join(ids)}" for stage, ids in result.job_ids.items())
    print(f"submitted: {jobs}", flush=True)
    return 0
