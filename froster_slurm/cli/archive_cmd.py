"""`froster-slurm archive FOLDER... | --from SELECTION --to REMOTE`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..submit.pipeline import archive_folders
from ..util.paths import read_folder_list
from .app import app, get_config, out, print_submitted
from .options import BackendOpt, DryRunOpt, RecursiveOpt, StorageClassOpt, ThrottleOpt, ToOpt


@app.command("archive")
def archive(
    folders: Annotated[list[Path] | None, typer.Argument(help="Folders to archive.")] = None,
    from_: Annotated[Path | None, typer.Option("--from", help="Selection file (from `select` or "
                                               "`pick`): NUL-separated folders.")] = None,
    to: ToOpt = None,
    recursive: RecursiveOpt = None,
    storage_class: StorageClassOpt = None,
    throttle: ThrottleOpt = None,
    backend: BackendOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Archive folders with one Slurm array task per folder, then finalize."""
    paths: list[bytes] = [os.fsencode(f) for f in folders or []]
    if from_ is not None:
        paths += read_folder_list(from_)
    if not paths:
        raise UserError("nothing to archive: give FOLDER arguments or --from SELECTION")
    cfg = get_config({"archive.throttle": throttle})
    result = archive_folders(paths, to or cfg.get("default_remote"), cfg, recursive=recursive,
                             storage_class=storage_class, backend=backend, dry_run=dry_run)
    if dry_run:
        for script in result.scripts:
            out(f"# ===== {script} =====")
            out(script.read_text())
    print_submitted(result)
