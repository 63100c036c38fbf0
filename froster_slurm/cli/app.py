"""The Typer application object and the few helpers every command module shares.

Command modules (``froster_slurm/cli/*_cmd.py``) only parse arguments, call the library and
print.  Errors are raised as ``FrosterError`` subclasses and turned into one line on stderr and
an exit code by ``froster_slurm.cli.main``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import __version__
from ..config import Config, load_config

if TYPE_CHECKING:
    from ..submit.pipeline import SubmitResult

app = typer.Typer(
    name="froster-slurm",
    help="Find the folders worth archiving, pick them, and archive them to cold storage "
         "with resumable Slurm jobs.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"froster-slurm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """froster-slurm: crawl -> rank -> pick -> archive -> finalize."""


_WARNED: set[str] = set()


def get_config(overrides: dict[str, Any] | None = None) -> Config:
    """Effective config with this command's flags on top (flags left at None are ignored).

    A broken site file is a warning (once per problem and process), not an error: commands
    that do not need the broken key go on (see ``froster_slurm.config``).
    """
    cfg = load_config(overrides or {})
    for problem in cfg.problems:
        if problem not in _WARNED:
            _WARNED.add(problem)
            print(f"froster-slurm: warning: site config: {problem}", file=sys.stderr,
                  flush=True)
    return cfg


def info(message: str) -> None:
    """Progress and notes go to stderr so stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


def out(message: str = "") -> None:
    print(message, flush=True)


def print_submitted(result: SubmitResult) -> None:
    """Run id, jobs and how to follow the run: what every submitting command prints."""
    for note in result.notes:
        info(f"note: {note}")
    if result.dry_run:
        info(f"dry run: rendered {len(result.scripts)} script(s) in {result.run_dir}/scripts; "
             "nothing submitted")
        return
    out(f"run {result.run_id}  ({result.run_dir})")
    for stage, ids in result.job_ids.items():
        out(f"  {stage:<9} job {' '.join(ids)}")
    out(f"watch it:  {result.watch}")
    if result.backend == "slurm":
        out("or:        squeue --me -o '%.18i %.30j %.2t %.10M %k'")
