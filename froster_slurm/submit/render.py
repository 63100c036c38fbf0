"""Jinja-free templates: ``@@NAME@@`` placeholders that cannot collide with bash.

Bash never writes two ``@`` in a row, so ``$VAR``, ``${VAR}``, ``$(...)`` and ``"${a[@]}"`` pass
through untouched.  Rendering is strict: a placeholder the stage does not know, a known one with
no value, or a stray ``@@`` is a ``TemplateError`` naming the template, so an admin's typo fails
at submit time instead of inside a job three days later.  Values are inserted verbatim: callers
shell-quote what needs quoting (``shlex.quote``), and folder paths never become values at all.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from simple_slurm import Slurm

from ..errors import ConfigError, TemplateError

PLACEHOLDER = re.compile(r"@@([A-Za-z_][A-Za-z0-9_]*)@@")
_STRAY = re.compile(r"@@")


# Which built-in files each kind holds (the package's templates/ and jobscripts/ folders).
_KIND_SUFFIXES = {"templates": (".sbatch", ".html"), "jobscripts": (".sh",)}


def _builtin_root(kind: str) -> Traversable:
    """The built-in ``templates/`` or ``jobscripts/`` folder, in a checkout or installed.

    Both are real packages (each has an ``__init__.py``; pyproject.toml maps the top-level
    folders into ``froster_slurm``), so an installed wheel, a pipx venv or a zip import all
    answer through ``importlib.resources``.  A checkout run with the repository on
    ``sys.path`` (``python -m froster_slurm`` from the source tree) has no
    ``froster_slurm.templates`` package beside the code, so it reads the folders beside the
    package; the ``pyproject.toml`` check keeps an unrelated ``site-packages/templates`` from
    ever being taken for ours.
    """
    top = Path(__file__).resolve().parents[2]  # the checkout: froster_slurm/submit/render.py
    source_tree = top / kind
    if (top / "pyproject.toml").is_file() and (source_tree / "__init__.py").is_file():
        return source_tree
    return resources.files(f"froster_slurm.{kind}")


def builtin_files(kind: str) -> dict[str, Traversable]:
    """Every built-in file of ``kind`` ("templates" or "jobscripts") by name.

    Values are ``importlib.resources`` traversables: read them with ``read_text()``; never
    turn one into a path with ``str()`` (a namespace package's is not a path at all).
    """
    suffixes = _KIND_SUFFIXES[kind]
    return {f.name: f for f in sorted(_builtin_root(kind).iterdir(), key=lambda f: f.name)
            if f.is_file() and f.name.endswith(suffixes)}


def load_template(name: str, templates_dir: str | Path | None = None) -> str:
    """Text of template ``name``: an edited site override, else the built-in.

    Which file wins (and when an exported but unedited copy does not) is ``overrides.resolve``;
    imported here because that module reads this one's built-ins.
    """
    from .overrides import resolve

    return resolve(name, templates_dir, kind="template").text


def render(text: str, values: dict[str, Any], name: str = "<template>") -> str:
    """Replace every ``@@NAME@@``; strict about unknown, missing and stray placeholders."""
    used = set(PLACEHOLDER.findall(text))
    unknown = sorted(used - values.keys())
    if unknown:
        raise TemplateError(f"template {name}: unknown placeholder(s) "
                            f"{', '.join('@@' + u + '@@' for u in unknown)}; "
                            f"this template may use: {', '.join(sorted(values))}")
    missing = sorted(u for u in used if values[u] is None)
    if missing:
        raise TemplateError(f"template {name}: no value for {', '.join(missing)}")
    out = PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
    # A stray @@ left in the *template* (not in inserted values) is an admin typo.
    if _STRAY.search(PLACEHOLDER.sub("", text)):
        line = next(i for i, ln in enumerate(PLACEHOLDER.sub("", text).splitlines(), 1)
                    if "@@" in ln)
        raise TemplateError(f"template {name}: stray '@@' on line {line} "
                            "(placeholders look like @@NAME@@)")
    return out


def check_bash(script: str, name: str = "<script>") -> None:
    """``bash -n``: a rendered script that does not parse is never written or submitted."""
    bash = shutil.which("bash") or "/bin/bash"
    proc = subprocess.run([bash, "-n"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TemplateError(f"rendered {name} is not valid bash: {proc.stderr.strip()}")


_SLURM_OPTION_NAMES: set[str] | None = None


def _slurm_option_names() -> set[str]:
    global _SLURM_OPTION_NAMES
    if _SLURM_OPTION_NAMES is None:
        text = (resources.files("simple_slurm") / "arguments.txt").read_text()
        _SLURM_OPTION_NAMES = {ln.split(",")[0].strip() for ln in text.splitlines() if ln.strip()}
    return _SLURM_OPTION_NAMES


def parse_extra(extra: list[str]) -> dict[str, str | bool]:
    """['--constraint=nfs', '--exclusive', '--mail-type FAIL'] -> option dict."""
    out: dict[str, str | bool] = {}
    for item in extra:
        item = item.strip()
        if not item.startswith("--"):
            raise ConfigError(f"extra sbatch option {item!r} must be a long option "
                              "like --name=value")
        name, sep, value = item[2:].partition("=")
        if not sep and " " in name:
            name, _, value = name.partition(" ")
            sep = " "
        out[name.strip()] = value.strip() if sep else True
    return out


def sbatch_directives(options: dict[str, Any]) -> str:
    """The ``#SBATCH`` block, built and validated by simple-slurm's ``Slurm`` object.

    Option names take dashes or underscores.  ``None``/``""``/``False`` values are dropped;
    ``True`` is a flag.  An unknown option raises ``ConfigError`` naming it (simple-slurm's
    argparse would otherwise call ``SystemExit``).
    """
    valid = _slurm_option_names()
    kwargs: dict[str, Any] = {}
    for raw, value in options.items():
        key = raw.lstrip("-").replace("-", "_")
        if key not in valid:
            raise ConfigError(f"unknown sbatch option {raw!r} (see `man sbatch` for valid ones)")
        if value is None or value == "" or value is False:
            continue
        kwargs[key] = "" if value is True else str(value)
    try:
        block = Slurm(**kwargs).script(shell="/bin/bash", convert=False)
    except SystemExit as e:  # pragma: no cover - names were checked above
        raise ConfigError(f"sbatch options rejected: {sorted(kwargs)}") from e
    lines = [ln.rstrip() for ln in block.splitlines() if ln.startswith("#SBATCH")]
    for ln in lines:
        if "\n" in ln or "\r" in ln:
            raise ConfigError("sbatch option values cannot contain newlines")
    return "\n".join(lines)
