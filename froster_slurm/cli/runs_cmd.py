"""`froster-slurm runs list | prune`: the run directories of the state dir, by state."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..config import Config
from ..status.collect import RUN_STATES, headline
from ..util.units import parse_age
from .app import app, get_config, info, out
from .options import DryRunOpt, JsonOpt

runs_app = typer.Typer(help="List old runs by state and prune the finished ones.",
                       no_args_is_help=True)
app.add_typer(runs_app, name="runs")

StateOpt = Annotated[list[str] | None, typer.Option(
    "--state", help=f"Only runs in this state (repeatable): {', '.join(RUN_STATES)}; prune's "
                    "default: every final state.")]


def _age(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:.0f}d" if days >= 1 else f"{seconds / 3600:.0f}h"


def print_runs(cfg: Config, states: list[str], as_json: bool = False) -> None:
    """One line per run: id, kind, state, age and its headline figures."""
    from ..run.history import entries

    found = entries(cfg, states)
    if as_json:
        out(json.dumps([{**e.status.to_json_obj(), "age_seconds": round(e.age_seconds)}
                        for e in found], ensure_ascii=True))
        return
    for e in found:
        line = headline(e.status).split(": ", 1)[-1]
        out(f"{e.run.run_id}  {e.status.kind:<8} {e.state:<13} {_age(e.age_seconds):>5}  {line}")
    if not found:
        info("no runs" + (f" in state {', '.join(states)}" if states else ""))


@runs_app.command("list")
def list_(
    state: StateOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every run of the state dir, oldest first, with its state."""
    print_runs(get_config(), state or [], as_json)


@runs_app.command("prune")
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help="e.g. 30d, 6mo, 12h.")],
    state: StateOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Delete run directories that can change no more (never active ones, never another
    account's); archived folders stay in the catalog."""
    from ..run.history import prune as do_prune

    gone = do_prune(get_config(), parse_age(older_than), state or [], dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for e in gone:
        out(f"{verb} {e.run.run_id}  {e.status.kind:<8} {e.state:<13} {_age(e.age_seconds)}")
    out(f"{verb} {len(gone)} run(s)")
