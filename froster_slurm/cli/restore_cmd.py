"""`froster-slurm restore FOLDER` and `froster-slurm purge FOLDER...`: parse, call, print."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DataError, IncompleteError, NotFoundError, UserError
from ..purge.manager import Candidate, describe, purge_folders
from ..restore.submit import start_restore, wait_for
from ..util.paths import display
from ..util.units import format_size
from .app import app, get_config, info, out
from .options import BackendOpt, DryRunOpt, ForceOpt


@app.command("restore")
def restore(
    folder: Annotated[Path, typer.Argument(help="The archived folder (its record, or the "
                                                "catalog, says where the data is).")],
    to: Annotated[Path | None, typer.Option("--to", help="Restore into this folder instead "
                                            "of the original place.")] = None,
    tier: Annotated[str | None, typer.Option("--tier", help="Bulk or Standard (Glacier/Deep "
                                             "Archive; default: config restore.tier).")] = None,
    days: Annotated[int | None, typer.Option("--days", help="Days the thawed copy stays "
                                             "readable (default: config restore.days).")] = None,
    force: ForceOpt = False,
    wait: Annotated[bool | None, typer.Option("--wait/--no-wait", help="Wait for the job to "
                                              "finish (default: wait unless the objects must "
                                              "thaw first).")] = None,
    backend: BackendOpt = None,
    version: Annotated[int | None, typer.Option("--version", help="Which version of the "
                                                "folder's archive (default: the latest).")
                       ] = None,
    owners_from_record: Annotated[bool, typer.Option(
        "--owners-from-record", help="Root only: give restored entries the uid/gid the record "
        "lists (the record is writable by the folder's owner: use only for records you "
        "trust). Default as root: the archived folder's owner. Set-id bits are never "
        "restored.")] = False,
) -> None:
    """Bring an archived folder back (thaw, download, verify, unpack) in one guarded job."""
    cfg = get_config()
    started = start_restore(os.fsencode(folder), cfg, to=os.fsencode(to) if to else None,
                            tier=tier, days=days, force=force, backend=backend,
                            version=version, owners_from_record=owners_from_record)
    for line in started.messages:
        out(line)
    if started.already_queued or started.job_id is None:
        return  # a restore is already under way, or there is nothing to restore
    if started.estimate:
        for line in started.estimate.lines():
            out(line)
    if started.requested:
        out(f"restore requested for {started.requested} object(s)")
    assert started.run is not None and started.scheduler is not None
    what = "resumed" if started.resumed else "submitted"
    out(f"restore of {display(started.folder)} into {display(started.target)}: {what} job "
        f"{started.job_id} ({started.backend}); run {started.run.run_dir}")
    thaw = bool(started.estimate and started.estimate.thaw)
    if wait is None:
        wait = not thaw
    if not wait or started.backend == "local":
        if thaw:
            out("the job checks again every restore.check_interval seconds until the objects "
                "are readable; run the same command to see where it is")
        state = None if started.backend != "local" else wait_for(
            started.run, started.target, started.scheduler, timeout=0)
    else:
        info("waiting for the job (Ctrl-C stops waiting, not the restore) ...")
        state = wait_for(started.run, started.target, started.scheduler)
    if state is not None:
        phase = state.get("phase")
        if phase == "done":
            placed = state.get("placed", {})
            out(f"restored: {placed.get('files', 0)} files, {placed.get('links', 0)} symlinks "
                f"placed; {placed.get('already', 0)} were already there")
        else:
            raise IncompleteError(f"restore not finished: phase {phase}"
                                  f"{': ' + state['error'] if state.get('error') else ''}")


def _confirm(yes: bool) -> Callable[[list[Candidate]], bool]:
    def ask(ready: list[Candidate]) -> bool:
        out("will delete the archived data of:")
        for c in ready:
            out("  " + describe(c))
        out("(every file is re-hashed against the manifest and the remote is checked first; "
            "the trace files stay)")
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UserError("purge deletes data: confirm with --yes when not at a terminal")
        return typer.confirm("delete them?", default=False)
    return ask


@app.command("purge")
def purge(
    folders: Annotated[list[Path], typer.Argument(help="Archived folders to free.")],
    dry_run: DryRunOpt = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
                   ] = False,
    backend: BackendOpt = None,
) -> None:
    """Free the disk of archived folders, each only once re-hashed and checked remotely."""
    cfg = get_config()
    outcome = purge_folders([os.fsencode(f) for f in folders], cfg, dry_run=dry_run,
                            confirm=_confirm(yes), backend=backend)
    for res in outcome.results:
        for line in res.lines():
            out(line)
    total = sum(r.bytes_freed for r in outcome.results if r.ok)
    verb = "would free" if dry_run else "freed"
    out(f"total {verb}: {format_size(total)} ({total:,} bytes allocated)")
    if outcome.job_id:
        assert outcome.run is not None
        out(f"{len(outcome.queued)} large folder(s) go to Slurm job {outcome.job_id}; results "
            f"in {outcome.run.purge_results_path} and logs/")
    bad = [r for r in outcome.results if not r.ok]
    if bad:
        if len(outcome.results) == 1 and bad[0].error:
            kind = {66: NotFoundError, 65: DataError}.get(bad[0].error_code, UserError)
            raise kind(bad[0].error)
        raise IncompleteError(f"{len(bad)} of {len(outcome.results)} folder(s) not purged "
                              "(see above); nothing was deleted in those")
