"""Shared CLI options are declared once (froster_slurm/cli/options.py): one flag, one help text,
whichever command takes it; commands use one Typer style (Annotated)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Any

import typer

from froster_slurm import cli
from froster_slurm.cli import options

CLI_DIR = Path(cli.__file__).resolve().parent


def every_option() -> dict[str, dict[str, set[str]]]:
    """flag -> help text -> the commands declaring it with that text (every command loaded)."""
    cli.load_commands([])
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))

    def walk(cmd: Any, path: str) -> None:  # noqa: ANN401 - click's or typer's vendored copy
        for p in cmd.params:
            if p.param_type_name == "option":
                for flag in (*p.opts, *p.secondary_opts):
                    found[flag][p.help or ""].add(path)
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(cli.app), "")
    return found


def test_two_commands_never_give_one_flag_different_help() -> None:
    found = every_option()
    differ = {flag: {h: sorted(c) for h, c in helps.items()} for flag, helps in found.items()
              if len(helps) > 1 and flag not in options.PER_COMMAND}
    assert differ == {}, "declare these once in froster_slurm/cli/options.py"
    # The exceptions are real: each is declared by several commands with their own meaning.
    for flag in options.PER_COMMAND:
        assert len(found[flag]) > 1, f"{flag} needs no exception in options.PER_COMMAND"


def test_shared_flags_are_used_where_declared() -> None:
    """Every command taking --to/--backend/--dry-run/... spells the shared help (sanity check
    that the comparison above sees the commands at all)."""
    found = every_option()
    for flag, commands in (("--backend", {"archive", "crawl", "pick", "purge", "restore",
                                          "submit"}),
                           ("--dry-run", {"archive", "crawl", "pick", "purge", "retry",
                                          "runs prune", "submit"}),
                           ("--json", {"catalog", "config show", "rank", "runs list",
                                       "status"})):
        [(_help, users)] = found[flag].items()
        assert users == commands, flag


def test_one_typer_style_and_a_light_options_module() -> None:
    """Parameters are declared as ``Annotated[..., typer.Option(...)]`` everywhere (no
    ``x: int = typer.Option(...)`` defaults), and options.py imports nothing heavy: every
    command imports it, and ``froster-slurm --help`` stays fast."""
    for path in sorted(CLI_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                defaults = node.args.defaults + [d for d in node.args.kw_defaults if d]
                for d in defaults:
                    call = d.func if isinstance(d, ast.Call) else None
                    name = call.attr if isinstance(call, ast.Attribute) else None
                    assert name not in ("Option", "Argument"), \
                        f"{path.name}:{d.lineno}: use Annotated[..., typer.{name}(...)]"
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                func = node.value.func
                assert not (isinstance(func, ast.Attribute) and func.attr == "Option"), \
                    f"{path.name}:{node.lineno}: a bare typer.Option value; use Annotated"
    imports = set()
    for node in ast.walk(ast.parse((CLI_DIR / "options.py").read_text())):
        if isinstance(node, ast.ImportFrom):
            imports.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            imports.update(a.name for a in node.names)
    assert imports <= {"__future__", "typing", "typer"}, imports
