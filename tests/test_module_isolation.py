"""Every module of froster_slurm imports alone, with no import cycle, and library code never
pulls in the user interface.

Each module is imported by itself in a fresh interpreter (a few at a time), with an import hook
that notes every import of a froster_slurm module whose own body is still running (the module
is ``_initializing``): that is an import cycle, even where it happens to work today.  After the
import, ``sys.modules`` must hold none of ``froster_slurm.cli``, ``typer`` or ``textual`` unless
the module is user interface itself (the CLI, the picker's Textual screens): the job side
(jobs/ and every stage it loads) runs inside Slurm with the recorded interpreter and must stay
free of them, and manager-side library code is called by the CLI, never the reverse.

A second check reads every ``import`` statement, including the ones inside functions, and
requires each cycle of the module graph to stay inside one package: a lazy import that closes a
loop between two rooms (the old ``jobs.py`` -> ``pipeline.py`` -> ``jobs.py``) is refused too.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "froster_slurm"

# Modules that are the user interface (allowed to import typer/textual and the CLI).
UI_MODULES = ("froster_slurm.__main__", "froster_slurm.cli", "froster_slurm.pick.picker",
              "froster_slurm.pick.screens", "froster_slurm.pick.table")
UI_IMPORTS = ("froster_slurm.cli", "typer", "textual")
# Not imported: ``python -m froster_slurm`` runs the CLI when its __main__ is imported.
NOT_IMPORTED = ("froster_slurm.__main__",)

CHILD = r"""
import builtins, json, sys, traceback

target, forbidden = sys.argv[1], tuple(sys.argv[2].split(","))
cycles = []
real_import = builtins.__import__


def absolute(name, globals, level):
    if not level:
        return name
    package = (globals or {}).get("__package__") or ""
    parts = package.split(".")
    parts = parts[:len(parts) - level + 1]
    return ".".join(parts + ([name] if name else []))


def initializing(name):
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def hook(name, globals=None, locals=None, fromlist=(), level=0):
    try:
        return real_import(name, globals, locals, fromlist, level)
    finally:
        wanted = absolute(name, globals, level)
        if wanted.startswith("froster_slurm"):
            importer = (globals or {}).get("__name__", "?")
            # "from PKG import sub" needs PKG.sub when sub is a module, else PKG itself
            targets = [f"{wanted}.{n}" if f"{wanted}.{n}" in sys.modules else wanted
                       for n in (fromlist or ())] or [wanted]
            for t in targets:
                if t != importer and initializing(t):
                    cycles.append(f"{importer} imports {t} while {t} is being imported")


builtins.__import__ = hook
error = None
try:
    __import__(target)
except BaseException:
    error = traceback.format_exc()
builtins.__import__ = real_import
ui = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
print(json.dumps({"error": error, "cycles": sorted(set(cycles)), "ui": ui}))
"""


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def all_modules() -> list[str]:
    return sorted(module_name(p) for p in PACKAGE.rglob("*.py"))


def is_ui(module: str) -> bool:
    return any(module == u or module.startswith(u + ".") for u in UI_MODULES)


@cache
def import_reports() -> dict[str, dict]:
    """Import every module alone, four interpreters at a time."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    def one(module: str) -> tuple[str, dict]:
        p = subprocess.run([sys.executable, "-c", CHILD, module, ",".join(UI_IMPORTS)],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
        try:
            return module, json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return module, {"error": f"exit {p.returncode}: {p.stderr}", "cycles": [], "ui": []}

    wanted = [m for m in all_modules() if m not in NOT_IMPORTED]
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, wanted))


IMPORTED = [m for m in all_modules() if m not in NOT_IMPORTED]


def test_the_walk_finds_the_package() -> None:
    mods = all_modules()
    assert "froster_slurm.jobs.__main__" in mods and "froster_slurm.scheduler.injob" in mods
    assert len(mods) > 80


@pytest.mark.parametrize("module", IMPORTED)
def test_module_imports_alone_without_a_cycle(module: str) -> None:
    report = import_reports()[module]
    assert report["error"] is None, report["error"]
    assert report["cycles"] == []


@pytest.mark.parametrize("module", [m for m in IMPORTED if not is_ui(m)])
def test_library_module_never_imports_the_user_interface(module: str) -> None:
    """Jobs load these inside Slurm: no CLI, no Typer, no Textual."""
    assert import_reports()[module]["ui"] == []


def test_the_job_entry_loads_no_stage_at_import() -> None:
    """``python -m froster_slurm.jobs`` imports a stage module only when that stage runs."""
    code = ("import json, sys, froster_slurm.jobs.__main__; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('froster_slurm'))))")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert json.loads(out) == ["froster_slurm", "froster_slurm.errors", "froster_slurm.jobs",
                               "froster_slurm.jobs.__main__"]


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    parts = package.split(".")
    parts = parts[:len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the froster_slurm modules it names in any import statement (lazy ones too)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m, path in modules.items():
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(m, path, node)
                if base not in modules:
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    graph[m].add(sub if sub in modules else base)
    return graph


def top_level_names(path: Path) -> set[str]:
    """What a module defines or imports at its top level (inside if/try blocks too)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_bytes()).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                body.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            body.extend(node.body)
    return names


def test_every_import_names_a_module_and_a_name_that_exist() -> None:
    """Lazy imports inside functions too: after a move, a stale ``from .old import x`` fails
    here, not in a job on a compute node."""
    modules = package_modules()
    extension = {"froster_slurm.crawl._fastwalk"}  # the C walker (optional, built in place)
    bad = []
    for m, path in modules.items():
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Import):
                bad += [f"{m}: import {a.name}" for a in node.names
                        if a.name.startswith("froster_slurm.") and a.name not in modules]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(m, path, node)
                if not base.startswith("froster_slurm") or base in extension:
                    continue
                if base in ("froster_slurm.templates", "froster_slurm.jobscripts"):
                    continue  # mapped from the top-level folders by pyproject.toml
                if base not in modules:
                    bad.append(f"{m}: from {base} import ...")
                    continue
                defined = top_level_names(modules[base])
                bad += [f"{m}: from {base} import {a.name}" for a in node.names
                        if a.name != "*" and f"{base}.{a.name}" not in modules
                        and f"{base}.{a.name}" not in extension and a.name not in defined]
    assert bad == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            for w in edges:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def room(module: str) -> str:
    """The package a module lives in; a module at the package root is a room of its own."""
    parts = module.split(".")
    if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir():
        return parts[1]
    return module


def test_cycles_finds_a_loop() -> None:
    graph = {"a.x": {"a.y"}, "a.y": {"b.z"}, "b.z": {"a.x"}, "c": {"a.x"}}
    assert cycles(graph) == [["a.x", "a.y", "b.z"]]


def test_no_import_cycle_crosses_a_package() -> None:
    """Lazy imports included: a loop between two rooms means one of them is in the wrong one."""
    crossing = [c for c in cycles(import_graph()) if len({room(m) for m in c}) > 1]
    assert crossing == []


def test_no_two_modules_share_a_name() -> None:
    """A name says which module it is (``grep``, tracebacks, job logs): no two ``task.py``."""
    seen: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name not in ("__init__.py", "__main__.py"):
            seen.setdefault(path.name, []).append(str(path.relative_to(PACKAGE)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}
