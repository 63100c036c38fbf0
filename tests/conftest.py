"""Shared fixtures: an isolated config/state dir per test, and the real local Slurm cluster.

Slurm tests need the cluster that `scripts/slurm-cluster.sh up` starts (make test does that).
Outside CI a missing cluster skips them with the reason; under CI=true it FAILS them: CI must
never pass by skipping the parts that matter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from installed import Installed, build_and_install, remove
from s3server import S3Server

from froster_slurm.remotes.exe import packaged_rclone

REPO = Path(__file__).resolve().parent.parent
# Tests that call `rclone` themselves run the same (packaged, tested) rclone as the tool.
_RCLONE = packaged_rclone()
if _RCLONE:
    os.environ["PATH"] = os.path.dirname(_RCLONE) + os.pathsep + os.environ.get("PATH", "")
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


@pytest.fixture(scope="session")
def shellcheck() -> str:
    """The shellcheck binary (Debian's `shellcheck`, which make setup installs).

    Missing: skipped with the reason locally, a failure under CI=true, like the cluster.
    """
    found = shutil.which("shellcheck")
    if found is None:
        reason = "shellcheck is not installed (make setup installs Debian's shellcheck)"
        if IN_CI:
            pytest.fail(f"CI needs shellcheck: {reason}")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 with a bucket and an rclone remote, one per test module.

    rclone is installed by `make setup`; without it these tests fail, they never skip.
    """
    if shutil.which("rclone") is None:
        pytest.fail("rclone is not installed; the S3 tests need it (make setup)")
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    """froster-slurm built as a wheel and installed into a fresh venv outside the checkout."""
    inst = build_and_install()
    try:
        yield inst
    finally:
        remove(inst)
