"""`froster-slurm config show|init|set|path|keys`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..config import DEFAULTS, init_config_file, set_value, site_config_path, user_config_path
from ..config.keys import default_of, list_merge
from .app import app, get_config, out
from .options import ForceOpt, JsonOpt, SiteOpt

config_app = typer.Typer(help="Show and edit the layered configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")



def _target(site: bool) -> Path:
    return site_config_path() if site else user_config_path()


@config_app.command("show")
def show(as_json: JsonOpt = False) -> None:
    """Every effective value and the layer it came from (per table key and list item)."""
    cfg = get_config()
    if as_json:
        out(json.dumps({k: v for k, v, _ in cfg.items()}, indent=1))
        return
    rows = [(k, json.dumps(v), src) for k, v, src in cfg.elements()]
    rows += [(k, "(unusable)", "site file problem: see the warning above")
             for k in sorted(cfg.broken)]
    width = max(len(k) for k, _, _ in rows)
    vwidth = min(40, max(len(v) for _, v, _ in rows))
    for k, v, src in rows:
        out(f"{k:<{width}}  {v:<{vwidth}}  {src}")


@config_app.command("init")
def init(force: ForceOpt = False, site: SiteOpt = False) -> None:
    """Write a commented config file holding every default."""
    out(f"wrote {init_config_file(_target(site), force=force)}")


@config_app.command("set")
def set_(key: Annotated[str, typer.Argument(help="Dotted key, e.g. archive.storage_class.")],
         value: Annotated[str, typer.Argument(help="Value (TOML syntax for numbers, lists).")],
         site: SiteOpt = False) -> None:
    """Store one value in the user file, or with --site in the site file (validated first)."""
    path = _target(site)
    v = set_value(path, key, value)
    out(f"{key} = {json.dumps(v)}  ({path})")


@config_app.command("path")
def path() -> None:
    """Where the site and user files are looked for."""
    out(f"site: {site_config_path()}")
    out(f"user: {user_config_path()}")


@config_app.command("keys")
def keys() -> None:
    """Every key (per-stage Slurm keys included) with its default and what it does."""
    for k, (default, help_) in DEFAULTS.items():
        shown = "(unset: as [slurm])" if default is None else json.dumps(default)
        kind = type(default_of(k))
        note = ""
        if kind is list:
            note = f" [list: {list_merge(k)}s lower layers]"
        elif kind is dict:
            note = " [table: merges key by key]"
        out(f"{k} = {shown}\n    {help_}{note}")
