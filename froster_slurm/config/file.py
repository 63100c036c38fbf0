"""Writing config files: `config init` (every default, commented) and `config set` (one value).

The init file follows one rule so that it can be used as is: a line that starts with ``# `` is
a setting (or the table header it belongs under) at its default, and removing those two
characters from *every* such line still gives valid TOML holding exactly the defaults; prose
starts with ``##``.  So scalars come before a section's sub-tables, and nested tables get their
full header (``[cost.per_tb_month]``, ``[restore.price_per_gb.DEEP_ARCHIVE]``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import ConfigError
from ..util.atomic import write_atomic
from .keys import DEFAULTS, STAGES, list_merge


def _toml_line(name: str, value: Any) -> str:
    return tomli_w.dumps({name: value}).strip()


def _prose(text: str) -> list[str]:
    return [f"## {text}"]


def _table_lines(header: str, table: dict[str, Any]) -> list[str]:
    """A (possibly nested) table as '# [header]' blocks, scalars before sub-tables."""
    lines = [f"# [{header}]"]
    subs = {k: v for k, v in table.items() if isinstance(v, dict)}
    lines += [f"# {_toml_line(k, v)}" for k, v in table.items() if k not in subs]
    for k, v in subs.items():
        lines += _table_lines(f"{header}.{k}", v)
    return lines


def init_text() -> str:
    """The text of `config init`: every key at its default, commented."""
    sections: dict[str, list[tuple[str, Any, str]]] = {}
    for key, (default, help_) in DEFAULTS.items():
        if default is None:  # per-stage Slurm keys: unset means "as [slurm]"
            continue
        section, _, name = key.rpartition(".")
        sections.setdefault(section, []).append((name, default, help_))
    lines = _prose("froster-slurm configuration (a site file or a user file).") + _prose(
        "Lines starting with '# ' are settings at their default: remove the '# ' to change "
        "one.") + _prose("Precedence: defaults < site file < user file < FROSTER_SLURM_* "
                         "environment < command-line flags.") + _prose(
        "Tables merge key by key across layers; lists marked 'extends' add to the layers "
        "below.") + [""]
    for section, entries in sections.items():
        scalars = [e for e in entries if not isinstance(e[1], dict)]
        tables = [e for e in entries if isinstance(e[1], dict)]
        if section and scalars:
            lines.append(f"# [{section}]")
        for name, default, help_ in scalars:
            note = f" (list: {list_merge(f'{section}.{name}' if section else name)}s)" \
                if isinstance(default, list) else ""
            lines += _prose(help_ + note)
            lines.append(f"# {_toml_line(name, default)}")
        for name, default, help_ in tables:
            lines += _prose(help_ + " (merges key by key)")
            lines += _table_lines(f"{section}.{name}" if section else name, default)
        lines.append("")
    lines += _prose("Per-stage Slurm settings: " + " ".join(f"[slurm.{s}]" for s in STAGES)
                    + " take the keys of [slurm];")
    lines += _prose("a stage's scalar replaces the [slurm] one, its extra/prologue/skip add to "
                    "them.")
    return "\n".join(lines) + "\n"


def write_init_file(path: Path, force: bool = False) -> Path:
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; use --force to overwrite it")
    _write(path, init_text())
    return path


def store_value(path: Path, key: str, value: Any) -> Any:
    """Store one (already validated) value in the TOML file at ``path``, keeping its comments
    (an init file stays readable after `config set`) whenever a line edit can do it."""
    try:
        text = path.read_text() if path.exists() else ""
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix it before `config set`") from e
    except PermissionError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: {'.'.join(parts[:-1])} is not a table")
    node[parts[-1]] = value
    edited = _edit_lines(text, key, value)
    try:
        if edited is not None and tomllib.loads(edited) == data:
            _write(path, edited)
            return value
    except tomllib.TOMLDecodeError:
        pass
    _write(path, tomli_w.dumps(data))  # a layout a line edit cannot handle: rewrite it
    return value


def _edit_lines(text: str, key: str, value: Any) -> str | None:
    """``text`` with ``key`` set by replacing its line or adding one under its table."""
    from .lines import key_lines

    section, _, name = key.rpartition(".")
    line = _toml_line(name, value)
    if isinstance(value, dict):
        return None
    lines = text.split("\n") if text else []
    where = key_lines(text)
    if key in where:
        lines[where[key] - 1] = line
        return "\n".join(lines)
    if not section:  # a top-level key goes before the first table
        first = min((n for k, n in where.items() if "." not in k and k not in DEFAULTS
                     and _is_header(lines[n - 1])), default=None)
        if first is None:
            lines.append(line)
        else:
            lines.insert(first - 1, line)
        return "\n".join(lines).rstrip("\n") + "\n"
    if section in where and _is_header(lines[where[section] - 1]):
        lines.insert(where[section], line)
        return "\n".join(lines)
    return "\n".join(lines).rstrip("\n") + f"\n\n[{section}]\n{line}\n"


def _is_header(line: str) -> bool:
    return line.lstrip().startswith("[")


def _write(path: Path, text: str) -> None:
    """Write a config file; a user's own is 0600 (its remote may carry keys), the site file
    stays readable by every user of the cluster."""
    from ..util.private import private_dir, write_private
    from .layers import site_config_path

    try:
        if path.resolve() == site_config_path().resolve():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, text)
        else:
            private_dir(path.parent)
            write_private(path, text)
    except PermissionError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror} (the site file is for admins; "
                          "use `config set` without --site for your own file)") from e
