"""`froster-slurm crawl`: pwalk-format CSV of folders, whole or as shards of a Slurm array."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ..crawl import CrawlOptions, CrawlSummary, crawl_shard, plan_shards
from ..crawl import crawl as crawl_folders
from ..crawl.shards import PLAN_NAME, describe_plan, load_plan
from ..errors import IncompleteError, UserError
from .app import app, get_config, info, out


class _ProgressLine:
    """``\\r``-rewritten line on a terminal; callers only build one when stderr is a tty."""

    def __init__(self, label: str = "") -> None:
        self.start = time.monotonic()
        self.label = label
        self.shown = False

    def __call__(self, entries: int, directories: int, errors: int) -> None:
        rate = entries / max(time.monotonic() - self.start, 1e-9)
        text = f"{self.label}{entries:,} entries, {directories:,} dirs, {rate:,.0f}/s"
        if errors:
            text += f", {errors:,} errors"
        sys.stderr.write("\r\x1b[K" + text)
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _progress(enabled: bool | None, label: str = "") -> _ProgressLine | None:
    show = sys.stderr.isatty() if enabled is None else enabled
    return _ProgressLine(label) if show else None


@app.command()
def crawl(
    paths: Annotated[list[str] | None, typer.Argument(
        show_default=False,
        help="Folders to crawl. With --shard-index they may be left out (read from the plan)."
    )] = None,
    output: str = typer.Option(
        ..., "-o", "--output",
        help="CSV file to write (problems go to OUTPUT.errors). With --shards: a directory "
             "that gets plan.json and shard-NNNN.csv/.errors/.json."),
    engine: str | None = typer.Option(
        None, "--engine", help="auto (pwalk when on PATH and able), builtin or pwalk "
                               "(config crawl.engine)."),
    workers: int | None = typer.Option(
        None, "--workers", help="Crawler processes; 0 = one per CPU we may use "
                                "(config crawl.workers)."),
    threads: int | None = typer.Option(
        None, "--threads", help="lstat threads per process; raise on network file systems "
                                "(config crawl.threads)."),
    one_file_system: bool | None = typer.Option(
        None, "--one-file-system/--cross-file-systems", "-x",
        help="Do not cross into other file systems; each mount point skipped is reported "
             "(config crawl.one_file_system)."),
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", metavar="GLOB",
        help="Skip entries whose name (or, for a GLOB with '/', whole path) matches; "
             "repeatable; replaces config crawl.exclude.")] = None,
    no_snapshots: bool | None = typer.Option(
        None, "--no-snapshots/--snapshots",
        help="Skip .snapshot and .zfs directories (config crawl.no_snapshots)."),
    shards: int | None = typer.Option(
        None, "--shards", min=1,
        help="Split into N balanced shards (top-level subtrees). Without --shard-index all "
             "shards run here, one after another."),
    shard_index: int | None = typer.Option(
        None, "--shard-index", min=0,
        help="Crawl only this shard of OUTPUT/plan.json (what array task I runs)."),
    replan: bool = typer.Option(
        False, "--replan", help="With --shards: replace an existing plan for another crawl "
                                "(its shard files are removed)."),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress line on stderr (default: when it "
                                               "is a terminal)."),
    submit: bool = typer.Option(
        False, "--submit", help="Plan here, then crawl the shards as an array job (Slurm, or "
                                "the local backend); OUTPUT is the shard directory."),
    backend: str | None = typer.Option(
        None, "--backend", metavar="BACKEND", help="With --submit: auto, slurm or local."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="With --submit: render the job script, submit nothing."),
) -> None:
    """Crawl folders into pwalk's CSV format (every problem reported; exit 3 if any)."""
    if not submit and (backend or dry_run):
        raise UserError("--backend and --dry-run only apply with --submit")
    cfg = get_config({
        "crawl.engine": engine, "crawl.workers": workers, "crawl.threads": threads,
        "crawl.one_file_system": one_file_system,
        "crawl.exclude": list(exclude) if exclude else None,
        "crawl.no_snapshots": no_snapshots,
    })
    options = CrawlOptions(one_file_system=cfg.get("crawl.one_file_system"),
                           excludes=tuple(cfg.get("crawl.exclude")),
                           no_snapshots=cfg.get("crawl.no_snapshots"))
    roots = [os.fsencode(p) for p in paths or []]
    n_workers, n_threads = cfg.get("crawl.workers"), cfg.get("crawl.threads")

    if submit:
        if shard_index is not None:
            raise UserError("--submit runs every shard as an array task; leave out "
                            "--shard-index")
        if not roots:
            raise UserError("nothing to crawl: give at least one folder")
        from ..submit.pipeline import submit_crawl
        from .run_cmd import print_submitted

        print_submitted(submit_crawl(roots, Path(output), cfg, shards=shards or 1,
                                     backend=backend, dry_run=dry_run))
        return

    if shard_index is not None:
        out_dir = Path(output)
        if roots:
            if shards is None:
                raise UserError("give --shards N with folders and --shard-index, or leave the "
                                "folders out to use the existing plan")
            plan_shards(roots, shards, out_dir, options, replace=replan)
        elif shards is not None and load_plan(out_dir / PLAN_NAME)["shards"] != shards:
            raise UserError(f"{out_dir / PLAN_NAME} has a different number of shards")
        line = _progress(progress, f"shard {shard_index}: ")
        try:  # the plan's options, unless a flag says otherwise for this task
            summary = crawl_shard(out_dir, shard_index, workers=n_workers, threads=n_threads,
                                  one_file_system=one_file_system,
                                  exclude=list(exclude) if exclude else None,
                                  no_snapshots=no_snapshots, progress=line)
        finally:
            if line:
                line.done()
        out(summary.line())
        summary.raise_if_incomplete()
        return

    if not roots:
        raise UserError("nothing to crawl: give at least one folder")

    if shards is not None:
        plan = plan_shards(roots, shards, output, options, replace=replan)
        info(describe_plan(plan))
        summaries: list[CrawlSummary] = []
        for i in range(shards):
            line = _progress(progress, f"shard {i}/{shards}: ")
            try:
                summaries.append(crawl_shard(plan, i, workers=n_workers, threads=n_threads,
                                             progress=line))
            finally:
                if line:
                    line.done()
            out(summaries[-1].line())
        errors = sum(s.errors for s in summaries)
        out(f"all {shards} shards: {sum(s.entries for s in summaries):,} entries, "
            f"{sum(s.directories for s in summaries):,} directories, {errors:,} errors, "
            f"{sum(s.seconds for s in summaries):.1f} s")
        if errors:
            raise IncompleteError(f"crawl incomplete: {errors:,} problem(s), listed in "
                                  f"{output}/shard-*.errors")
        return

    line = _progress(progress)
    try:
        summary = crawl_folders(roots, output, engine=cfg.get("crawl.engine"),
                                workers=n_workers, threads=n_threads, options=options,
                                progress=line)
    finally:
        if line:
            line.done()
    out(summary.line())
    summary.raise_if_incomplete()
