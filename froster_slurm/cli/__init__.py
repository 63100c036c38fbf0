"""Command-line entry point: registers the command modules and maps errors to exit codes."""

from __future__ import annotations

import importlib
import sys

import typer

try:  # typer >= 0.24 vendors click; older releases use the click package itself
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _click_exc

from ..errors import FrosterError
from .app import app

# Each module registers its commands on ``app`` when imported; a module that does not exist yet
# (a stage still being built) is simply not offered.
_COMMAND_MODULES = ("config_cmd", "templates_cmd", "crawl_cmd", "rank_cmd", "pick_cmd",
                    "archive_cmd", "run_cmd", "restore_cmd")
for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_name}":
            raise


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a ``FrosterError`` becomes one line on stderr and its exit code."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="froster-slurm", standalone_mode=False)
    except FrosterError as e:
        print(f"froster-slurm: error: {e}", file=sys.stderr)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except _click_exc.ClickException as e:
        e.show()
        return e.exit_code
    except typer.Abort:
        print("froster-slurm: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("froster-slurm: interrupted", file=sys.stderr)
        return 130
    return rv if isinstance(rv, int) else 0


def entry() -> None:
    sys.exit(main())
