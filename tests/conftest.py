"""Shared fixtures: an isolated config/state dir per test, and the real local Slurm cluster.

Slurm tests need the cluster that `scripts/slurm-cluster.sh up` starts (make test does that).
Outside CI a missing cluster skips them with the reason; under CI=true it FAILS them: CI must
never pass by skipping the parts that matter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                 ) -> Path:
    """No test reads the real user's or site's config, or writes into their state dir."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("FROSTER_SLURM_SITE_CONFIG", str(home / "site.toml"))
    monkeypatch.setenv("FROSTER_SLURM_STATE_DIR", str(home / "state"))
    for name in list(os.environ):
        if name.startswith("FROSTER_SLURM_") and name not in (
                "FROSTER_SLURM_SITE_CONFIG", "FROSTER_SLURM_STATE_DIR"):
            monkeypatch.delenv(name)
    return home


def _cluster_usable() -> str | None:
    """None when sbatch works against a live controller, else the reason."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (make setup installs slurm-wlm)"
    proc = subprocess.run(["bash", str(REPO / "scripts" / "slurm-cluster.sh"), "status"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"no usable Slurm cluster (make cluster-up): {proc.stdout.strip()[-200:]}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Require the real local Slurm cluster: skip locally, fail in CI."""
    reason = _cluster_usable()
    if reason:
        if IN_CI:
            pytest.fail(f"CI needs the local Slurm cluster: {reason}")
        pytest.skip(reason)


def require_tool(name: str) -> str:
    """Path of an external tool a test needs; missing fails in CI, skips elsewhere."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed (make setup installs it)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path
