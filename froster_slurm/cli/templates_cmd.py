"""`froster-slurm templates list|show|export|diff`: what admins tune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..submit.overrides import diff as diff_text
from ..submit.overrides import every, resolve, stale_message
from ..submit.overrides import export as export_files
from .app import app, get_config, out
from .options import ForceOpt

templates_app = typer.Typer(help="List, show, export and diff the job templates and jobscripts.",
                            no_args_is_help=True)
app.add_typer(templates_app, name="templates")


def _tdir() -> str | None:
    return get_config().get("templates_dir") or None


@templates_app.command("list")
def list_() -> None:
    """Each template and jobscript, and the file in effect (site override or built-in)."""
    for r in every(_tdir()):
        where = str(r.site_path) if r.origin == "site" else r.builtin_path
        note = {"unedited copy": f"  [unedited copy in {r.site_path}: built-in used]",
                "stale": "  [stale: see templates diff]",
                "no version stamp": "  [no version stamp: see templates diff]"}.get(r.note, "")
        out(f"{r.name:<16} {r.kind:<9} {r.origin:<8} {where}{note}")


@templates_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Template name, e.g. archive.sbatch.")]
         ) -> None:
    """Print a template or jobscript as it will be used (a stage's own or the skeleton)."""
    out(resolve(name, _tdir()).text.rstrip("\n"))


@templates_app.command("export")
def export(dest: Annotated[Path, typer.Argument(help="Directory to copy into.")],
           names: Annotated[list[str] | None, typer.Argument(
               help="Files to export, e.g. archive.sbatch common.sh (default: all).")] = None,
           force: ForceOpt = False) -> None:
    """Copy built-in templates/jobscripts for an admin to edit, each with a version stamp.

    Export only what you change: a file left unedited keeps following the installed version,
    an edited one is reported at submit once an upgrade changes its built-in. Every stage
    renders from one skeleton: export it as `archive.sbatch` to change that stage only, or as
    `stage.sbatch` to change every stage. Point templates_dir at DEST afterwards
    (`config set --site templates_dir DEST`).
    """
    written = export_files(dest, names or [], force=force)
    out(f"copied {len(written)} file(s) to {dest}: {', '.join(p.name for p in written)}; "
        f"set templates_dir = \"{dest}\" in the site config")


@templates_app.command("diff")
def diff(name: Annotated[str | None, typer.Argument(
        help="One template or jobscript (default: every site override).")] = None) -> None:
    """Unified diff of the built-in file against the site's override."""
    tdir = _tdir()
    chosen = [resolve(name, tdir)] if name else every(tdir)
    seen: set[Path] = set()  # a site stage.sbatch stands in for several stages: show it once
    for r in chosen:
        if r.site_path is None:
            if name:
                out(f"{r.name}: no site override (templates_dir = {tdir or 'unset'})")
            continue
        if r.site_path in seen:
            continue
        seen.add(r.site_path)
        if r.stale:
            out(f"# {stale_message(r)}")
        text = diff_text(r)
        if text:
            out(text.rstrip("\n"))
        elif name:
            out(f"{r.name}: the site file is the same as the built-in")
