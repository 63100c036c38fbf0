"""`froster-slurm check [--to REMOTE] [FOLDER...]`: every check made before a submission."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..submit.preflight import report
from .app import app, get_config, out
from .options import StorageClassOpt, ToOpt


@app.command("check")
def check(
    folders: Annotated[list[Path] | None, typer.Argument(help="Folders you mean to archive.")
                       ] = None,
    to: ToOpt = None,
    storage_class: StorageClassOpt = None,
) -> None:
    """rclone, Slurm, state_dir, the remote (configured, answers, md5, storage class), the
    time limit and each folder: one OK or FAIL line each; exit 1 if any failed."""
    cfg = get_config()
    paths = [os.fsencode(os.path.abspath(f)) for f in folders or []]
    checks = report(cfg, to or str(cfg.get("default_remote")), paths,
                    storage_class=storage_class)
    for c in checks:
        out(c.line())
    failed = [c for c in checks if not c.ok]
    out(f"{len(checks) - len(failed)} OK, {len(failed)} FAIL")
    if failed:
        raise typer.Exit(1)
