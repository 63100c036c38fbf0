"""`froster-slurm catalog [rebuild]`: every archived folder, where it went, when, by whom."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ..catalog import store as cat
from ..run.rundir import catalog_path
from ..util.paths import display
from ..util.units import format_size
from .app import app, get_config, info, out
from .options import JsonOpt

catalog_app = typer.Typer(help="Every archived folder: where it went, when, by whom.",
                          invoke_without_command=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.callback()
def catalog(
    ctx: typer.Context,
    path: Annotated[str | None, typer.Option("--path", help="Only folders under this.")] = None,
    as_json: JsonOpt = False,
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
    cfg = get_config()
    done = cat.rebuild(catalog_path(cfg), [os.fsencode(p) for p in paths])
    for where, why in done.skipped:
        info(f"skipped {display(where)}: {why}")
    out(f"catalog rebuilt: {done.added} archived folders ({catalog_path(cfg)})"
        + (f"; {len(done.skipped)} records skipped (see above)" if done.skipped else ""))
