"""`froster-slurm status [RUN]`: where a run is, per folder and in total."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..run.rundir import open_run
from ..status.collect import collect, query_backend
from .app import app, get_config
from .options import JsonOpt


@app.command("status")
def status(
    run: Annotated[str | None, typer.Argument(
        help="Run id (or a unique prefix, or 'last', the default).")] = None,
    as_json: JsonOpt = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until the run is over.")] = False,
    interval: Annotated[float, typer.Option("--interval")] = 5.0,
    every: Annotated[bool, typer.Option(
        "--all", help="With RUN: every folder (a run of more than 1,000 lists the failing, "
        "running and stopped ones otherwise). Without RUN: one line per run.")] = False,
) -> None:
    """Per run: totals; per folder: step, bytes, state, error (failing and running first).
    Works after jobs leave the queue."""
    cfg = get_config()
    if every and run is None:
        from .runs_cmd import print_runs

        print_runs(cfg, [])
        return
    r = open_run(cfg, run or "last")
    be = query_backend(r, cfg)
    from ..status.live import watch as watch_run

    watch_run(lambda: collect(r, be, every_folder=every or as_json), sys.stdout,
              interval=interval, as_json=as_json, once=not watch)
