"""`froster-slurm submit`: crawl -> rank -> archive -> finalize as chained jobs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..submit.pipeline import submit_archive, submit_pipeline
from .app import app, get_config, print_submitted
from .options import (
    BackendOpt,
    ByOpt,
    DryRunOpt,
    MinAvgSizeOpt,
    MinSizeOpt,
    OlderThanOpt,
    OwnerOpt,
    RecursiveOpt,
    ShardsOpt,
    StorageClassOpt,
    ToOpt,
    TopOpt,
)


@app.command("submit")
def submit(
    paths: Annotated[list[Path] | None, typer.Argument(help="Folders to crawl.")] = None,
    to: ToOpt = None,
    selection: Annotated[Path | None, typer.Option("--selection", help="Archive the folders of "
                                                   "this file; no crawl or rank.")] = None,
    min_size: MinSizeOpt = None,
    min_avg_size: MinAvgSizeOpt = None,
    older_than: OlderThanOpt = None,
    top: TopOpt = None,
    owner: OwnerOpt = None,
    by: ByOpt = None,
    recursive: RecursiveOpt = None,
    storage_class: StorageClassOpt = None,
    shards: ShardsOpt = None,
    backend: BackendOpt = None,
    dry_run: DryRunOpt = False,
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
                                 rules=rules, shards=shards or 1, recursive=recursive,
                                 storage_class=storage_class, backend=backend, dry_run=dry_run)
    print_submitted(result)
