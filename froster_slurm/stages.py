"""Render one stage's sbatch script into a run directory.

A rendered script = the stage template (``templates/<stage>.sbatch``, admin-tunable) with the
``#SBATCH`` block built from config (``[slurm]`` + ``[slurm.<stage>]``) and the stage's bash
body (``jobscripts/common.sh`` + ``jobscripts/<stage>.sh``) inlined, so it is self-contained and
an upgrade of froster-slurm never changes a job that is already queued.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config
from .errors import ConfigError, TemplateError
from .overrides import report_stale, resolve
from .render import check_bash, parse_extra, render, sbatch_directives
from .runs import Run

# Sensible per-stage resources when the config leaves them empty.
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "crawl": {"cpus_per_task": 2},
    "rank": {"cpus_per_task": 2},
    "archive": {"cpus_per_task": 2},
    "finalize": {"cpus_per_task": 1},
    "restore": {"cpus_per_task": 1},
    "purge": {"cpus_per_task": 1},
}
_UNSAFE_IN_DIRECTIVE = re.compile(r"[\s%]")
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
    return "\n".join(["set -E", f"trap {shlex.quote(trap)} ERR", *lines, "trap - ERR", "set +E"])


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
    log = run.run_dir / "logs" / (f"{stage}-%A_%a.out" if array else f"{stage}-%j.out")
    opts.update(job_name=job_name, output=str(log), open_mode="append")
    if array:
        opts["array"] = array
    opts.update(extra or {})
    for name, value in parse_extra(s["extra"]).items():
        opts[name] = value
    return apply_skip(opts, s["skip"])


def render_stage(stage: str, config: Config, run: Run, *, options: dict[str, Any],
                 script_name: str | None = None, array_offset: int = 0) -> Path:
    """Render ``templates/<stage>.sbatch`` into ``<run>/scripts/`` and return its path."""
    templates_dir = config.get("templates_dir") or None
    name = f"{stage}.sbatch"
    values = {
        "SBATCH": sbatch_directives(options),
        "VERSION": __version__,
        "STAGE": stage,
        "RUN_ID": run.run_id,
        "RUN_DIR": shlex.quote(str(run.run_dir)),
        "PYTHON": shlex.quote(run.settings.get("python", "python3")),
        "ARRAY_OFFSET": str(int(array_offset)),
        "PROLOGUE": prologue_block(stage, config.slurm_options(stage)["prologue"]),
    }
    files = {slot: resolve(file, templates_dir) for slot, file in
             (("TEMPLATE", name), ("COMMON", "common.sh"), ("BODY", f"{stage}.sh"))}
    for r in files.values():
        report_stale(r)
    if stage == "archive":  # the archive task renders index.html inside the job: say it now
        report_stale(resolve("index.html", templates_dir))
    values.update(COMMON=files["COMMON"].text, BODY=files["BODY"].text)
    template = files["TEMPLATE"].text
    if config.slurm_options(stage)["prologue"] and "@@PROLOGUE@@" not in template:
        raise TemplateError(f"template {name} (in {templates_dir}) has no @@PROLOGUE@@ slot, "
                            "but a [slurm] prologue is set; add the slot after @@COMMON@@ "
                            f"(see froster-slurm templates diff {name})")
    text = render(template, values, name)
    check_bash(text, name)
    dest = run.script_path(script_name or name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    dest.chmod(0o755)
    return dest
