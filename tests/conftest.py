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

# `make test-fast` runs the tests marked `unit`: no Slurm cluster, no S3 server, no installed
# copy, no network, no job run through a backend, no browser, no Textual screen, no scale run.
# pytest_collection_modifyitems marks the tests of UNIT_MODULES that need none of
# NOT_UNIT_FIXTURES, carry none of the markers slurm, s3 and jobs and are not in
# NOT_UNIT_TESTS; a test elsewhere may be marked `unit` by hand. A new module is not a unit
# module until it is listed: test-fast stays fast when someone adds a slow test.
UNIT_MODULES = frozenset({
    "test_array_chunks", "test_catalog", "test_cli", "test_cli_options", "test_config",
    "test_config_layers", "test_folder_format", "test_rclone_boundary",
    "test_fast_selection",
    "test_job_runtime",
    "test_crawl_cli", "test_crawl_compiled", "test_crawl_modes", "test_crawl_fidelity",
    "test_crawl_format",
    "test_crawl_problems", "test_crawl_shards", "test_environment", "test_funnel",
    "test_pick_rowstore", "test_pick_state", "test_prefix_index", "test_rank", "test_rank_cli",
    "test_rank_fast",
    "test_render", "test_report", "test_restore_place", "test_selection", "test_selection_cli",
    "test_slurm_client", "test_stage_scripts", "test_storage_classes",
    "test_templates_overrides",
})
NOT_UNIT_FIXTURES = frozenset({"slurm_cluster", "s3", "installed", "rgw", "account", "pipx_kit",
                               "site_install", "shared", "archived", "victim", "make_archived",
                               "immediate_restores"})
# Single tests of unit modules that drive Chromium, build a wheel or run a job.
NOT_UNIT_TESTS = frozenset({
    "test_report.py::test_page_in_chromium_shows_every_part_and_escapes_names",
    "test_report.py::test_page_drills_down_and_back_and_sorts",
    "test_report.py::test_page_of_100k_folders_draws_within_2_seconds",
    "test_cli.py::test_wheel_ships_templates_and_jobscripts",
    "test_crawl_cli.py::test_submit_runs_the_shards_as_an_array_on_the_local_backend",
    "test_crawl_shards.py::test_cli_shards_then_one_array_task",
    "test_funnel.py::test_submit_that_selects_nothing_says_so_in_status_and_summary",
    "test_selection_cli.py::test_pick_submit_hands_the_confirmed_selection_to_the_archive_stage",
    "test_selection_cli.py::test_pick_submit_failure_keeps_the_selection_and_says_how_to_retry",
    "test_storage_classes.py::test_a_remote_without_classes_is_recorded_as_such",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the unit tests (see UNIT_MODULES); a test marked `unit` by hand must be one."""
    for item in items:
        needs = NOT_UNIT_FIXTURES & set(getattr(item, "fixturenames", ()))
        test = item.nodeid.split("/")[-1].split("[")[0]
        heavy = (any(item.get_closest_marker(m) for m in ("slurm", "s3", "jobs")) or needs
                 or test in NOT_UNIT_TESTS)
        if item.get_closest_marker("unit"):
            if heavy:
                raise pytest.UsageError(f"{item.nodeid} is marked unit but needs "
                                        f"{', '.join(sorted(needs)) or 'a cluster, S3 or jobs'}")
        elif not heavy and item.module is not None and item.module.__name__ in UNIT_MODULES:
            item.add_marker(pytest.mark.unit)


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
