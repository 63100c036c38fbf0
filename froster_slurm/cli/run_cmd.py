"""`froster-slurm submit | status | retry | catalog`: runs as a whole."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..catalog import store as cat
from ..errors import UserError
from ..run.rundir import catalog_path, open_run
from ..status.collect import collect, query_backend
from ..submit.pipeline import SubmitResult, retry_run, submit_archive, submit_pipeline
from ..util.paths import display
from ..util.units import format_size
from .app import app, get_config, info, out

catalog_app = typer.Typer(help="Every archived folder: where it went, when, by whom.",
                          invoke_without_command=True)
app.add_typer(catalog_app, name="catalog")


def print_submitted(result: SubmitResult) -> None:
    for note in result.notes:
        info(f"note: {note}")
    if result.dry_run:
        info(f"dry run: rendered {len(result.scripts)} script(s) in {result.run_dir}/scripts; "
             "nothing submitted")
        return
    out(f"run {result.run_id}  ({result.run_dir})")
    for stage, ids in result.job_ids.items():
        out(f"  {stage:<9} job {' '.join(ids)}")
    out(f"watch it:  {result.watch}")
    if result.backend == "slurm":
        out("or:        squeue --me -o '%.18i %.30j %.2t %.10M %k'")


@app.command("submit")
def submit(
    paths: Annotated[list[Path] | None, typer.Argument(help="Folders to crawl.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="rclone remote or local path.")] = None,
    selection: Annotated[Path | None, typer.Option("--selection", help="Archive the folders of "
                                                   "this file; no crawl or rank.")] = None,
    min_size: Annotated[str | None, typer.Option("--min-size", help="e.g. 500GiB.")] = None,
    min_avg_size: Annotated[str | None, typer.Option("--min-avg-size")] = None,
    older_than: Annotated[str | None, typer.Option("--older-than", help="e.g. 2y.")] = None,
    top: Annotated[int | None, typer.Option("--top", help="At most N folders.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="direct or total.")] = None,
    recursive: Annotated[bool | None, typer.Option("--recursive/--no-recursive")] = None,
    storage_class: Annotated[str | None, typer.Option("--storage-class")] = None,
    shards: Annotated[int, typer.Option("--shards", help="Crawl array tasks.")] = 1,
    backend: Annotated[str | None, typer.Option("--backend", help="auto, slurm, local.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Crawl -> rank -> archive (one task per folder) -> finalize, as chained jobs."""
    cfg = get_config()
    remote = to or cfg.get("default_remote")
    if selection is not None:
        if paths:
            raise UserError("give PATHs to crawl or --selection, not both")
        result = submit_archive(selection, remote, cfg, recursive=recursive,
                                storage_class=storage_class, backend=backend, dry_run=dry_run)
    else:
        rules = {"min_size": min_size, "min_avg_size": min_avg_size, "older_than": older_than,
                 "top": top, "owner": owner, "by": by}
        result = submit_pipeline([os.fsencode(p) for p in paths or []], remote, cfg,
                                 rules=rules, shards=shards, recursive=recursive,
                                 storage_class=storage_class, backend=backend, dry_run=dry_run)
    print_submitted(result)


@app.command("status")
def status(
    run: Annotated[str | None, typer.Argument(
        help="Run id (or a unique prefix, or 'last', the default).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every folder, as JSON.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until the run is over.")] = False,
    interval: Annotated[float, typer.Option("--interval")] = 5.0,
    every: Annotated[bool, typer.Option(
        "--all", help="With RUN: every folder (a run of more than 1,000 lists the failing, "
        "running and stopped ones otherwise). Without RUN: one line per run.")] = False,
) -> None:
    """Per run: totals; per folder: step, bytes, state, error (failing and running first).
    Works after jobs leave squeue."""
    cfg = get_config()
    if every and run is None:
        from .runs_cmd import print_runs

        print_runs(cfg, [])
        return
    r = open_run(cfg, run or "last")
    be = query_backend(r, cfg)
    from ..status.live import watch as watch_run

    watch_run(lambda: collect(r, be, every_folder=every or as_json), sys.stdout,
              interval=interval, as_json=as_json, once=not watch)


@app.command("retry")
def retry(
    run: Annotated[str, typer.Argument(help="Run id (or a unique prefix, or 'last').")],
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
    to: Annotated[str | None, typer.Option(
        "--to", help="Archive them to this remote instead (a new run).")] = None,
    storage_class: Annotated[str | None, typer.Option(
        "--storage-class", help="Use this storage class instead (a new run).")] = None,
) -> None:
    """Resubmit only the folders of RUN that are not archived yet (they resume); with --to or
    --storage-class they go into a new run with those settings."""
    cfg = get_config()
    print_submitted(retry_run(open_run(cfg, run), cfg, dry_run=dry_run, remote=to,
                              storage_class=storage_class))


@catalog_app.callback()
def catalog(
    ctx: typer.Context,
    path: Annotated[str | None, typer.Option("--path", help="Only folders under this.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List archived folders."""
    if ctx.invoked_subcommand:
        return
    cfg = get_config()
    problems: list[str] = []
    rows = cat.entries(catalog_path(cfg), os.fsencode(os.path.abspath(path)) if path else None,
                       problems)
    for line in problems:
        info(line)
    if as_json:
        out(json.dumps([e.to_json_obj() for e in rows], ensure_ascii=True, indent=1))
        return
    if not rows:
        info(f"the catalog ({catalog_path(cfg)}) has no archived folders"
             + (f" under {path}" if path else ""))
        return
    for e in rows:
        out(f"{e.archived_at or '?'}  {e.owner:<10} {format_size(e.bytes or 0):>10} "
            f"{e.files or 0:>8} files  {e.storage_class or '':<12} {display(e.folder)}\n"
            f"    -> v{e.version} {e.state}: {display(os.fsencode(e.destination))}")


@catalog_app.command("rebuild")
def rebuild(paths: Annotated[list[Path], typer.Argument(help="Trees to search for records.")]
            ) -> None:
    """Recreate the catalog from the JSON records left in archived folders."""
    from ..folder.layout import RECORD_NAME

    cfg = get_config()
    done = cat.rebuild(catalog_path(cfg), [os.fsencode(p) for p in paths], RECORD_NAME)
    for where, why in done.skipped:
        info(f"skipped {display(where)}: {why}")
    out(f"catalog rebuilt: {done.added} archived folders ({catalog_path(cfg)})"
        + (f"; {len(done.skipped)} records skipped (see above)" if done.skipped else ""))
