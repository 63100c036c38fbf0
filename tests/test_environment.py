"""Environment namespaces that cannot collide (docs/environment.md): the config owns
FROSTER_SLURM_*, the job runtime FROSTER_<NAME> without SLURM_/TEST, the test scripts
FROSTER_TEST*. Exporting what a test script documents never breaks a froster-slurm command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from froster_slurm.config import DEFAULTS, ENV_PREFIX, ENV_SITE_CONFIG
from froster_slurm.errors import exit_codes

REPO = Path(__file__).resolve().parent.parent
# A whole name; a prefix (FROSTER_EXIT_*, FROSTER_SLURM_<KEY>, "FROSTER_EXIT_" + name) is not.
TOKEN = re.compile(r"\bFROSTER_[A-Z0-9_]++(?![*<])")  # possessive: no backing off


def names(text: str) -> set[str]:
    return {t for t in TOKEN.findall(text) if not t.endswith("_")}
DOC = (REPO / "docs" / "environment.md").read_text()


def names_in(*globs: str) -> dict[str, set[str]]:
    """FROSTER_* name -> the files (relative) that spell it."""
    found: dict[str, set[str]] = {}
    for pattern in globs:
        for path in REPO.glob(pattern):
            if path.is_file() and "__pycache__" not in path.parts:
                for name in names(path.read_text(errors="replace")):
                    found.setdefault(name, set()).add(path.relative_to(REPO).as_posix())
    return found


def script_variables() -> dict[str, str]:
    """Every FROSTER_* the two test-server scripts document in their header, or print."""
    out: dict[str, str] = {}
    for script in ("slurm-cluster.sh", "ceph-rgw.sh"):
        text = (REPO / "scripts" / script).read_text()
        for name in names(text):
            out[name] = "12"  # a number suits the timeouts and ports; paths are never opened
    return out


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "froster_slurm", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_name_belongs_to_one_namespace_and_the_doc_lists_it() -> None:
    product = names_in("froster_slurm/**/*.py", "jobscripts/*.sh", "templates/*")
    for name, where in sorted(product.items()):
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX):].lower().replace("__", ".")
            assert name == ENV_SITE_CONFIG or key in DEFAULTS, (
                f"{name} ({', '.join(sorted(where))}) is in the config's namespace but no key")
            continue
        assert not name.startswith("FROSTER_TEST"), f"froster-slurm reads test name {name}"
        if name.startswith("FROSTER_EXIT_"):
            assert name.removeprefix("FROSTER_EXIT_") in exit_codes(), name
            continue
        assert f"`{name}`" in DOC, f"job runtime name {name} ({', '.join(sorted(where))}) " \
                                   "is not in docs/environment.md"
    # The scripts and make use their own namespace, or set froster-slurm's config on purpose
    # (scripts/demo.sh sets FROSTER_SLURM_STATE_DIR); never the job runtime's.
    for name, where in sorted(names_in("scripts/*.sh", "Makefile").items()):
        if name.startswith(ENV_PREFIX):
            assert name[len(ENV_PREFIX):].lower().replace("__", ".") in DEFAULTS, name
            continue
        assert name.startswith("FROSTER_TEST"), f"{name} in {', '.join(sorted(where))}"
        short = "`_" + name.split("_", 2)[2] + "`"  # the doc lists FROSTER_TESTRGW_DIR, `_RUN`
        assert f"`{name}`" in DOC or short in DOC, f"{name} is not in docs/environment.md"


def test_exporting_the_test_scripts_variables_breaks_no_command() -> None:
    names = script_variables()
    assert {"FROSTER_TESTCLUSTER_UP_TIMEOUT", "FROSTER_TESTCLUSTER_STATE_DIR",
            "FROSTER_TESTCLUSTER_CRED_EXPIRE", "FROSTER_TESTRGW_PORT",
            "FROSTER_TESTRGW_ENDPOINT"} <= names.keys()
    assert not [n for n in names if n.startswith(ENV_PREFIX)]
    env = {**os.environ, **names}
    assert cli("--help", env=env).returncode == 0
    shown = cli("config", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    # and the job runtime's names, as a job exports them, do not reach the config either
    job = {**env, "FROSTER_RUN_DIR": "/tmp/x", "FROSTER_PYTHON": sys.executable,
           "FROSTER_STAGE": "archive", "FROSTER_ARRAY_OFFSET": "0", "FROSTER_BACKEND": "local"}
    again = cli("config", "show", env=job)
    assert again.returncode == 0, again.stderr
    assert again.stdout == shown.stdout


@pytest.mark.parametrize("name", ["FROSTER_SLURM_UP_TIMEOUT", "FROSTER_SLURM_CRED_EXPIRE"])
def test_the_old_cluster_names_are_config_typos_and_the_error_says_where_to_look(
        name: str) -> None:
    proc = cli("config", "show", env={**os.environ, name: "90"})
    assert proc.returncode == 78
    assert f"environment variable {name}" in proc.stderr
    assert "FROSTER_TESTCLUSTER_*" in proc.stderr and "docs/environment.md" in proc.stderr
    assert "Traceback" not in proc.stderr
