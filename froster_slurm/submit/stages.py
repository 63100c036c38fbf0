"""Render one stage's sbatch script into a run directory.

A rendered script = the stage's template (the one skeleton ``templates/stage.sbatch``, or a
site's ``<stage>.sbatch`` / ``stage.sbatch``: see ``overrides``) with the ``#SBATCH`` block built
from config (``[slurm]`` + ``[slurm.<stage>]``), the site prologue, the stage's bash body
(``jobscripts/<stage>.sh``) and the helpers that body calls inlined, so it is self-contained and
an upgrade of froster-slurm never changes a job that is already queued.

Helpers: ``common.sh`` always (logging, the status line: the prologue's error trap uses them);
every other helper file (``requeue.sh``) only when the script calls a function it defines, so
crawl, rank and finalize carry no requeue code.  Exit codes: the ``FROSTER_EXIT_*`` names the
script uses are defined at its top from ``errors.EXIT_*``; no bash file spells the numbers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from ..errors import ConfigError, TemplateError, exit_codes
from ..run.rundir import Run
from .overrides import Resolved, report_stale, resolve
from .render import check_bash, parse_extra, render, sbatch_directives

# Sensible per-stage resources when the config leaves them empty.
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "crawl": {"cpus_per_task": 2},
    "rank": {"cpus_per_task": 2},
    "archive": {"cpus_per_task": 2},
    "chain": {"cpus_per_task": 1, "time": "00:10:00"},  # seconds of work: one sbatch call
    "finalize": {"cpus_per_task": 1},
    "restore": {"cpus_per_task": 1},
    "purge": {"cpus_per_task": 1},
}
_UNSAFE_IN_DIRECTIVE = re.compile(r"[\s%]")
# The jobscripts that are helpers rather than a stage's body, in the order they are inlined.
# common.sh goes into every script; the others only where a function of theirs is called.
HELPER_FILES = ("common.sh", "requeue.sh")
_FUNCTION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(\)\s*\{", re.M)
_EXIT_NAME = re.compile(r"\bFROSTER_EXIT_([A-Z][A-Z0-9_]*)\b")
# Directives the jobs cannot work without (logs, requeue before the time limit, arrays):
# `[slurm] skip` may not drop them.
NEEDED_DIRECTIVES = frozenset({"job_name", "output", "open_mode", "array", "requeue", "signal"})


def _option_key(name: str) -> str:
    return name.strip().lstrip("-").replace("-", "_")


def apply_skip(opts: dict[str, Any], skip: list[str]) -> dict[str, Any]:
    """Drop the directives a site forbids or its Slurm does not support (``[slurm] skip``)."""
    drop = {_option_key(n) for n in skip}
    needed = sorted(drop & NEEDED_DIRECTIVES)
    if needed:
        raise ConfigError(f"slurm.skip: --{needed[0].replace('_', '-')} is needed by "
                          "froster-slurm's jobs and cannot be skipped")
    return {k: v for k, v in opts.items() if _option_key(k) not in drop}


def prologue_block(stage: str, lines: list[str]) -> str:
    """The ``[slurm] prologue`` lines as bash, run after ``set -euo pipefail``.

    A failing line stops the job (strict mode) and an ERR trap first says which line failed
    and with what exit code, in the log and the job's Comment; the trap is removed before the
    stage body, which keeps its own error handling.
    """
    if not lines:
        return "# (no prologue configured)"
    trap = ('froster_prologue_rc=$?; froster_log "prologue failed (exit $froster_prologue_rc): '
            '$BASH_COMMAND"; froster_status "$FROSTER_STAGE prologue failed (exit '
            '$froster_prologue_rc): $BASH_COMMAND"; exit "$froster_prologue_rc"')
    return "\n".join(["set -E", "froster_prologue_rc=0", f"trap {shlex.quote(trap)} ERR", *lines,
                      "trap - ERR", "set +E"])


def _code(text: str) -> str:
    """``text`` without its comment lines: a helper named in a comment is not a call."""
    return "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))


def helpers_called(helpers: dict[str, str], *texts: str) -> list[str]:
    """The helper files a script needs: common.sh, plus each one whose functions it calls.

    ``helpers`` maps file name -> text in inlining order.  A helper pulled in may call
    another's functions, so this runs to a fixed point.
    """
    first, *rest = helpers
    chosen = [first]
    calling = [_code(t) for t in (*texts, helpers[first])]
    changed = True
    while changed:
        changed = False
        for name in rest:
            if name in chosen:
                continue
            defined = _FUNCTION.findall(helpers[name])
            if any(re.search(rf"\b{re.escape(f)}\b", t) for f in defined for t in calling):
                chosen.append(name)
                calling.append(_code(helpers[name]))
                changed = True
    return [n for n in helpers if n in chosen]


def _calls(helpers: str, text: str) -> bool:
    """True when ``text`` calls a function that ``helpers`` defines."""
    code = _code(text)
    return any(re.search(rf"\b{re.escape(f)}\b", code) for f in _FUNCTION.findall(helpers))


def exit_code_block(text: str, name: str) -> str:
    """``readonly FROSTER_EXIT_<NAME>=<code>`` for each exit code ``text`` uses.

    Only the used ones, so shellcheck finds no unused variable; an unknown name (a typo in a
    site override) is an error at submit time, not an unbound variable inside a job.
    """
    codes = exit_codes()
    used = sorted(set(_EXIT_NAME.findall(_code(text))))
    unknown = [u for u in used if u not in codes]
    if unknown:
        raise TemplateError(f"{name}: unknown exit code name(s) "
                            f"{', '.join('FROSTER_EXIT_' + u for u in unknown)}; known: "
                            f"{', '.join('FROSTER_EXIT_' + c for c in sorted(codes))}")
    if not used:
        return ""
    return "\n".join(["# exit codes this script uses (froster_slurm/errors.py EXIT_*)",
                      *(f"readonly FROSTER_EXIT_{u}={codes[u]}" for u in used)]) + "\n"


# The run-directory paths a job script's bash may use, each rendered from the Run contract
# only into a script that names it (``${NAME//@INDEX@/$i}`` for a task's path).
_RUN_PATHS: dict[str, Callable[[Run], str]] = {
    "FROSTER_TASK_STATUS_FILE": lambda run: run.task_pattern("status_path"),
}


def run_path_block(run: Run, text: str) -> str:
    """``readonly`` definitions of the run paths ``text`` uses (see ``_RUN_PATHS``)."""
    code = _code(text)
    used = [name for name in _RUN_PATHS if re.search(rf"\b{name}\b", code)]
    if not used:
        return ""
    return "\n".join(["# run-directory paths this script uses (froster_slurm/run/rundir.py)",
                      *(f"readonly {n}={shlex.quote(_RUN_PATHS[n](run))}" for n in used)]) + "\n"


def _shown(r: Resolved, folder: str) -> str:
    """Where a file came from, for the rendered script's comments."""
    return str(r.site_path) if r.origin == "site" else f"{folder}/{Path(r.builtin_path).name}"


def sbatch_options(stage: str, config: Config, run: Run, *, job_name: str,
                   array: str | None = None, extra: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The #SBATCH options of one stage: defaults < config < what the caller needs."""
    if _UNSAFE_IN_DIRECTIVE.search(str(run.run_dir)):
        raise ConfigError(f"state_dir {run.run_dir.parent.parent} contains a space or '%', "
                          "which sbatch cannot take in --output; choose another state_dir")
    s = config.slurm_options(stage)
    opts: dict[str, Any] = dict(STAGE_DEFAULTS.get(stage, {}))
    for key, opt in (("partition", "partition"), ("account", "account"), ("qos", "qos"),
                     ("time", "time"), ("mem", "mem")):
        if s[key]:
            opts[opt] = s[key]
    if s["cpus"]:
        opts["cpus_per_task"] = s["cpus"]
    log = run.job_log_pattern(stage, array=bool(array))
    opts.update(job_name=job_name, output=str(log), open_mode="append")
    if array:
        opts["array"] = array
    opts.update(extra or {})
    for name, value in parse_extra(s["extra"]).items():
        opts[name] = value
    return apply_skip(opts, s["skip"])


def render_stage(stage: str, config: Config, run: Run, *, options: dict[str, Any],
                 script_name: str | None = None, array_offset: int = 0) -> Path:
    """Render stage ``stage`` into ``<run>/scripts/`` and return its path.

    The template is ``<stage>.sbatch`` as ``overrides.resolve`` finds it (a site override, else
    the built-in skeleton); its slots: SBATCH, COMMON (exit codes + the helpers called), PROLOGUE,
    BODY, and the words VERSION, STAGE, RUN_ID, RUN_DIR, PYTHON, ARRAY_OFFSET, TEMPLATE,
    HELPERS, BODY_FILE.
    """
    templates_dir = config.get("templates_dir") or None
    name = f"{stage}.sbatch"
    prologue = prologue_block(stage, config.slurm_options(stage)["prologue"])
    template_file = resolve(name, templates_dir, kind="template")
    body_file = resolve(f"{stage}.sh", templates_dir, kind="jobscript")
    helper_files = {h: resolve(h, templates_dir, kind="jobscript") for h in HELPER_FILES}
    template = template_file.text
    chosen = helpers_called({h: r.text for h, r in helper_files.items()}, template, prologue,
                            body_file.text)
    for r in (template_file, body_file, *(helper_files[h] for h in chosen)):
        report_stale(r)
    if stage == "archive":  # the archive task renders index.html inside the job: say it now
        report_stale(resolve("index.html", templates_dir))
    helpers = "\n".join(helper_files[h].text.rstrip("\n") for h in chosen) + "\n"
    exits = exit_code_block("\n".join([template, helpers, prologue, body_file.text]), name)
    if "@@COMMON@@" not in template and (exits or _calls(helpers, prologue + body_file.text)):
        raise TemplateError(f"template {name} (in {templates_dir}) has no @@COMMON@@ slot, but "
                            f"the {stage} stage calls the helpers or exit codes it inlines; add "
                            f"the slot after set -euo pipefail (see froster-slurm templates diff "
                            f"{name})")
    if config.slurm_options(stage)["prologue"] and "@@PROLOGUE@@" not in template:
        raise TemplateError(f"template {name} (in {templates_dir}) has no @@PROLOGUE@@ slot, "
                            "but a [slurm] prologue is set; add the slot after @@COMMON@@ "
                            f"(see froster-slurm templates diff {name})")
    values = {
        "SBATCH": sbatch_directives(options),
        "VERSION": __version__,
        "STAGE": stage,
        "RUN_ID": run.run_id,
        "RUN_DIR": shlex.quote(str(run.run_dir)),
        "PYTHON": shlex.quote(run.settings.python),
        "ARRAY_OFFSET": str(int(array_offset)),
        "PROLOGUE": prologue,
        "COMMON": exits + run_path_block(run, "\n".join([helpers, prologue, body_file.text]))
        + helpers,
        "BODY": body_file.text,
        "TEMPLATE": _shown(template_file, "templates"),
        "HELPERS": " + ".join(_shown(helper_files[h], "jobscripts") for h in chosen),
        "BODY_FILE": _shown(body_file, "jobscripts"),
    }
    text = render(template, values, name)
    check_bash(text, name)
    dest = run.script_path(script_name or name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    dest.chmod(0o755)
    return dest
