"""`froster-slurm templates list|show|export`: what admins tune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..render import builtin_files, is_builtin, load_template, template_names
from .app import app, get_config, out

templates_app = typer.Typer(help="List, show and export the job templates.",
                            no_args_is_help=True)
app.add_typer(templates_app, name="templates")


@templates_app.command("list")
def list_() -> None:
    """Each template and the file in effect (site override or built-in)."""
    tdir = get_config().get("templates_dir") or None
    for name, file in template_names(tdir).items():
        origin = "built-in" if is_builtin(file, "templates") else "site"
        out(f"{name:<20} {origin:<8} {file}")


@templates_app.command("show")
def show(name: str = typer.Argument(..., help="Template name, e.g. archive.sbatch.")) -> None:
    """Print a template as it will be used."""
    out(load_template(name, get_config().get("templates_dir") or None).rstrip("\n"))


@templates_app.command("export")
def export(dest: Annotated[Path, typer.Argument(help="Directory to copy the defaults into.")],
           force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")]
           = False) -> None:
    """Copy the built-in templates and job bodies for an admin to edit.

    Point the config key templates_dir at DEST afterwards; files you delete fall back to the
    built-in ones.
    """
    dest.mkdir(parents=True, exist_ok=True)
    sources = [*builtin_files("templates").values(), *builtin_files("jobscripts").values()]
    clash = [f.name for f in sources if (dest / f.name).exists()]
    if clash and not force:
        raise UserError(f"{dest} already has {', '.join(clash)}; use --force to overwrite")
    for f in sources:
        (dest / f.name).write_bytes(f.read_bytes())
    out(f"copied {len(sources)} files to {dest}; set templates_dir = \"{dest}\" in config")
