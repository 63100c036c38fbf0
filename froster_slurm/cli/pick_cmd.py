"""`froster-slurm pick` (interactive table) and `froster-slurm select` (the same file by rules).

Both write the selection file: one folder per NUL-terminated record, exact bytes.  `pick`
refuses to start without a terminal (a batch job would hang on it) and points to `select`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import FrosterError, UserError
from ..pick.selection import (
    BY_CHOICES,
    Rules,
    check_writable,
    format_cost,
    is_readable,
    load_hotspots,
    monthly_cost,
    put_estimate_for,
    select_by_rules,
    totals,
    uploads_from_config,
    why_none,
    write_selection,
)
from ..util.paths import display
from ..util.units import format_size, parse_age, parse_size
from .app import app, get_config, info, out
from .options import (
    BackendOpt,
    ByOpt,
    DryRunOpt,
    MinSizeOpt,
    OlderThanOpt,
    OwnersOpt,
    RecursiveOpt,
    StorageClassOpt,
    SubmitOpt,
    ToOpt,
    TopOpt,
)

if TYPE_CHECKING:
    from ..submit.pipeline import SubmitResult

HotspotsArg = Annotated[Path, typer.Argument(help="Hotspots file written by `rank`.",
                                             metavar="HOTSPOTS", show_default=False)]


def _check_by(by: str) -> str:
    if by not in BY_CHOICES:
        raise UserError(f"--by must be one of {', '.join(BY_CHOICES)}, not {by!r}")
    return by


def _require_terminal() -> None:
    """A batch job has no terminal: fail at once instead of hanging on a full-screen app."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UserError("pick needs an interactive terminal (stdin and stdout must be a TTY); "
                        "in scripts and batch jobs use `froster-slurm select HOTSPOTS --top N "
                        "--min-size SIZE --older-than AGE -o SELECTION` instead")


@app.command("pick")
def pick(
    hotspots: HotspotsArg,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", metavar="SELECTION",
        help="Selection file to write; default: HOTSPOTS with the suffix .selection.")] = None,
    recursive: RecursiveOpt = None,
    by: ByOpt = None,
    storage_class: StorageClassOpt = None,
    submit: SubmitOpt = False,
    to: ToOpt = None,
    backend: BackendOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Choose folders to archive in an interactive table (press ? inside for the keys)."""
    _require_terminal()
    if not submit and (to or backend or dry_run):
        raise UserError("--to, --backend and --dry-run only apply with --submit")
    cfg = get_config({"archive.recursive": recursive, "archive.storage_class": storage_class})
    rec = bool(cfg.get("archive.recursive"))
    sclass = str(cfg.get("archive.storage_class"))
    by = _check_by(by or cfg.get("rank.by"))
    try:
        dest = check_writable(output or hotspots.with_name(hotspots.name + ".selection"))
    except UserError as e:
        raise type(e)(f"{e} (choose another file with -o)") from e
    submit_archive = None
    remote = ""
    if submit:
        # Imported before the app starts so a broken install fails before any picking is done.
        try:
            from ..submit.pipeline import submit_archive
        except ImportError as e:
            raise UserError(f"--submit is not available in this installation: {e}") from e
        remote = to or str(cfg.get("default_remote"))
        # The destination is checked before a person spends time picking; the folders are
        # checked again with it when the selection is submitted.
        from ..submit.preflight import check_destination, require

        require(check_destination(cfg, remote, storage_class)[0])
    from ..pick.rowstore import HotspotStore  # DuckDB: the rows stay there, not in Python

    with HotspotStore(hotspots, temp_dir=str(cfg.get("rank.temp_dir") or "") or None) as rows:
        if not rows.count:
            raise UserError(f"{hotspots} lists no folders: nothing to pick")

        from ..pick.picker import PickApp, SubmitPlan  # Textual only after the terminal check

        picker = PickApp(rows, output=dest, recursive=rec, by=by, storage_class=sclass,
                         prices=cfg.get("cost.per_tb_month"),
                         put_prices=cfg.get("cost.put_per_1000"),
                         uploads=uploads_from_config(cfg, sclass),
                         submit=SubmitPlan(remote) if submit else None,
                         source=display(str(hotspots)))
        result = picker.run()
    if result is None:
        if not picker.quit_by_user:
            raise FrosterError("the picker stopped unexpectedly (see above); nothing written")
        info("pick: quit without confirming; nothing written")
        raise typer.Exit(1)
    info(f"wrote {result.totals.folders:,} folders ({format_size(result.totals.bytes)}, "
         f"{format_cost(result.cost, sclass)}) to {display(str(result.output))}")
    if result.puts is not None:
        info(f"upload requests: {result.puts.text()}")
    if submit_archive is not None:
        try:
            sub = submit_archive(result.output, remote, cfg, recursive=rec,
                                 storage_class=sclass, backend=backend, dry_run=dry_run)
        except FrosterError:
            info(f"the selection is saved; submit it later with: froster-slurm archive --from "
                 f"{display(str(result.output))} --to {display(remote)}")
            raise
        _print_submitted(sub)


def _print_submitted(sub: SubmitResult) -> None:
    """Run id, jobs and the command to follow the run (what a person needs next)."""
    for note in getattr(sub, "notes", None) or []:
        info(f"note: {note}")
    out(f"run {sub.run_id}  ({sub.run_dir})")
    jobs = sub.job_ids or {}
    items = jobs.items() if isinstance(jobs, dict) else [("jobs", jobs)]
    for stage, ids in items:
        ids = ids if isinstance(ids, list | tuple) else [ids]
        out(f"  {stage:<9} job {' '.join(map(str, ids))}")
    if getattr(sub, "dry_run", False):
        info("dry run: scripts rendered, nothing submitted")
    out(f"watch it:  {sub.watch}")


@app.command("select")
def select(
    hotspots: HotspotsArg,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="SELECTION",
                                         help="Selection file to write.",
                                         show_default=False)],
    top: TopOpt = None,
    min_size: MinSizeOpt = None,
    older_than: OlderThanOpt = None,
    owner: OwnersOpt = None,
    by: ByOpt = None,
    recursive: RecursiveOpt = None,
    storage_class: StorageClassOpt = None,
) -> None:
    """Write a selection file by rules, without a terminal (for scripts and batch jobs)."""
    cfg = get_config({"archive.recursive": recursive, "archive.storage_class": storage_class})
    rec = bool(cfg.get("archive.recursive"))
    sclass = str(cfg.get("archive.storage_class"))
    rules = Rules(min_size=parse_size(min_size) if min_size else 0,
                  older_than=parse_age(older_than) if older_than else 0,
                  owners=frozenset(owner or ()), by=_check_by(by or cfg.get("rank.by")))
    dest = check_writable(output)
    rows = load_hotspots(hotspots)
    picked = select_by_rules(rows, rules, top=top, recursive=rec, now=time.time())
    if not picked.chosen:
        why = why_none(rows, rules, now=time.time())
        raise UserError(f"{hotspots}: {why.message()}; nothing written")
    write_selection(dest, [h.folder for h in picked.chosen])

    t = totals(picked.chosen, rec)
    scope = "whole subtrees" if rec else "own files only"
    out(f"selected {t.folders:,} of {len(rows):,} folders: {format_size(t.bytes)} in "
        f"{t.files:,} files ({scope})")
    cost = monthly_cost(t.bytes, sclass, cfg.get("cost.per_tb_month"))
    out(f"estimated cost: {format_cost(cost, sclass)}")
    out(f"upload requests: {put_estimate_for(picked.chosen, rec, sclass, cfg).text()}")
    inside, contains = picked.dropped_count("inside"), picked.dropped_count("contains")
    if inside or contains:
        out(f"dropped {inside + contains:,} overlapping folders (recursive mode): {inside:,} "
            f"inside a selected folder, {contains:,} containing one")
    if picked.dropped_count("same"):
        out(f"dropped {picked.dropped_count('same'):,} duplicate rows")
    unreadable = [h.folder for h in picked.chosen if not is_readable(h.folder)]
    if unreadable:
        info(f"warning: {len(unreadable):,} selected folders are not readable by you "
             f"(their archive tasks will fail), e.g. {display(unreadable[0])}")
    out(f"wrote {display(str(dest))}")
