"""Command-line entry point: registers the command modules and maps errors to exit codes.

Login node only: no job-side module imports this package (tests/test_module_isolation.py).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import typer

try:  # typer >= 0.24 vendors click; older releases use the click package itself
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _click_exc

from ..errors import FrosterError
from .app import app

# The module that registers each command.  A run imports only its command's module (every
# stage together costs ~0.2 s of imports, paid by each job step and each ``rank`` run); help, no
# command or an unknown one imports them all.  tests/test_cli.py checks this table is complete.
COMMANDS = {"config": "config_cmd", "templates": "templates_cmd", "crawl": "crawl_cmd",
            "rank": "rank_cmd", "pick": "pick_cmd", "select": "pick_cmd",
            "archive": "archive_cmd", "submit": "submit_cmd", "status": "status_cmd",
            "retry": "retry_cmd", "catalog": "catalog_cmd", "restore": "restore_cmd",
            "purge": "restore_cmd", "report": "report_cmd", "check": "check_cmd",
            "runs": "runs_cmd"}


def load_commands(argv: Sequence[str]) -> None:
    """Register the command ``argv`` runs (its first word), or every command."""
    words = [a for a in argv if not a.startswith("-")]
    wanted = COMMANDS.get(words[0]) if words else None
    for module in [wanted] if wanted else dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f"{__name__}.{module}")


EX_NOPERM = 77  # sysexits: permission denied


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a ``FrosterError`` becomes one line on stderr and its exit code."""
    load_commands(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="froster-slurm", standalone_mode=False)
    except FrosterError as e:
        for line in str(e).splitlines() or [""]:  # several failed checks: one line each
            print(f"froster-slurm: error: {line}", file=sys.stderr)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except PermissionError as e:
        # Another account's state_dir, run or folder: one line naming it, never a traceback.
        where = os.fsdecode(e.filename) if e.filename is not None else str(e)
        print(f"froster-slurm: error: permission denied: {where} (it belongs to another "
              "account, or its mode keeps you out)", file=sys.stderr)
        return EX_NOPERM
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
