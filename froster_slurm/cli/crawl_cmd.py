"""`froster-slurm crawl`: pwalk-format CSV of folders, whole or as shards of a Slurm array."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ..crawl import CrawlOptions
from ..crawl.modes import ShardFlags, run_crawl
from ..errors import UserError
from .app import app, get_config, info, out, print_submitted
from .options import BackendOpt, DryRunOpt, ShardsOpt, SubmitOpt


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
    output: Annotated[str, typer.Option(
        "-o", "--output", show_default=False,
        help="CSV file to write (problems go to OUTPUT.errors). With --shards: a directory "
             "that gets plan.json and shard-NNNN.csv/.errors/.json.")],
    paths: Annotated[list[str] | None, typer.Argument(
        show_default=False,
        help="Folders to crawl. With --shard-index they may be left out (read from the plan)."
    )] = None,
    engine: Annotated[str | None, typer.Option(
        "--engine", help="auto (builtin; pwalk only without the compiled walker), builtin or "
                         "pwalk (config crawl.engine).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Crawler processes; 0 = one per CPU we may use "
                          "(config crawl.workers).")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", help="lstat threads per process; raise on network file systems "
                          "(config crawl.threads).")] = None,
    one_file_system: Annotated[bool | None, typer.Option(
        "--one-file-system/--cross-file-systems", "-x",
        help="Do not cross into other file systems; each mount point skipped is reported "
             "(config crawl.one_file_system).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", metavar="GLOB",
        help="Skip entries whose name (or, for a GLOB with '/', whole path) matches; "
             "repeatable; replaces config crawl.exclude.")] = None,
    no_snapshots: Annotated[bool | None, typer.Option(
        "--no-snapshots/--snapshots",
        help="Skip .snapshot and .zfs directories (config crawl.no_snapshots).")] = None,
    shards: ShardsOpt = None,
    shard_index: Annotated[int | None, typer.Option(
        "--shard-index", min=0,
        help="Crawl only this shard of OUTPUT/plan.json (what array task I runs).")] = None,
    replan: Annotated[bool, typer.Option(
        "--replan", help="With --shards: replace an existing plan for another crawl "
                         "(its shard files are removed).")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress line on stderr (default: when it "
                                         "is a terminal).")] = None,
    submit: SubmitOpt = False,
    backend: BackendOpt = None,
    dry_run: DryRunOpt = False,
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
    if submit:
        if shard_index is not None:
            raise UserError("--submit runs every shard as an array task; leave out "
                            "--shard-index")
        if not roots:
            raise UserError("nothing to crawl: give at least one folder")
        from ..submit.pipeline import submit_crawl

        print_submitted(submit_crawl(roots, Path(output), cfg, shards=shards or 1,
                                     backend=backend, dry_run=dry_run))
        return
    # The plan's options, unless a flag says otherwise for this task.
    run_crawl(roots, output, engine=cfg.get("crawl.engine"), workers=cfg.get("crawl.workers"),
              threads=cfg.get("crawl.threads"), options=options, shards=shards,
              shard_index=shard_index, replan=replan,
              shard_flags=ShardFlags(one_file_system, exclude, no_snapshots),
              progress=lambda label: _progress(progress, label), report=out, note=info)
