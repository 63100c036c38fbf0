"""`froster-slurm config show|init|set|path`."""

from __future__ import annotations

import json

import typer

from ..config import DEFAULTS, init_user_file, set_user_value, site_config_path, user_config_path
from .app import app, get_config, out

config_app = typer.Typer(help="Show and edit the layered configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="JSON object of key: value.")
         ) -> None:
    """Every effective value and the layer it came from."""
    cfg = get_config()
    if as_json:
        out(json.dumps({k: v for k, v, _ in cfg.items()}, indent=1))
        return
    rows = [(k, json.dumps(v), src) for k, v, src in cfg.items()]
    width = max(len(k) for k, _, _ in rows)
    vwidth = min(40, max(len(v) for _, v, _ in rows))
    for k, v, src in rows:
        out(f"{k:<{width}}  {v:<{vwidth}}  {src}")


@config_app.command("init")
def init(force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")
         ) -> None:
    """Write a commented user config file holding every default."""
    path = init_user_file(user_config_path(), force=force)
    out(f"wrote {path}")


@config_app.command("set")
def set_(key: str = typer.Argument(..., help="Dotted key, e.g. archive.storage_class."),
         value: str = typer.Argument(..., help="Value (TOML syntax for numbers, lists).")) -> None:
    """Store one value in the user config file (validated first)."""
    v = set_user_value(user_config_path(), key, value)
    out(f"{key} = {json.dumps(v)}  ({user_config_path()})")


@config_app.command("path")
def path() -> None:
    """Where the site and user files are looked for."""
    out(f"site: {site_config_path()}")
    out(f"user: {user_config_path()}")


@config_app.command("keys")
def keys() -> None:
    """Every key with its default and what it does."""
    for k, (default, help_) in DEFAULTS.items():
        if default is not None:
            out(f"{k} = {json.dumps(default)}\n    {help_}")
