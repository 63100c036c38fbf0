"""`[slurm] prologue` / `[slurm.<stage>] prologue` and `skip`, beside `extra`.

The prologue runs after strict mode (`set -euo pipefail`) and before the stage body, so a
failing `module load` fails the job with its message instead of archiving anyway; proven on the
real Slurm cluster and under the local backend.  `skip` drops directives a site forbids.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from archive_helpers import write_file
from slurm_helpers import wait_gone

from froster_slurm.config import Config, load_config
from froster_slurm.errors import ConfigError, TemplateError
from froster_slurm.run.rundir import Run, archive_settings, create_run
from froster_slurm.submit.pipeline import archive_folders
from froster_slurm.submit.stages import render_stage, sbatch_options

FAILING = "froster_no_such_module load rclone/1.60"


def rendered(stage: str, cfg: Config) -> str:
    run = create_run(cfg, "archive", folders=[b"/x"], archive=archive_settings(cfg, "/tmp/r"))
    opts = sbatch_options(stage, cfg, run, job_name="t")
    return render_stage(stage, cfg, run, options=opts).read_text()


def test_prologue_lines_sit_after_strict_mode_and_before_the_body() -> None:
    cfg = load_config({"slurm.prologue": ["export HTTPS_PROXY=http://proxy:3128"],
                       "slurm.archive.prologue": ["umask 027"]})
    text = rendered("archive", cfg)
    strict = text.index("set -euo pipefail")
    proxy = text.index("export HTTPS_PROXY=http://proxy:3128")
    umask = text.index("umask 027")
    body = text.index("froster_run_payload \"$FROSTER_PYTHON\" -m froster_slurm.jobs archive")
    assert strict < proxy < umask < body
    assert "umask 027" not in rendered("rank", cfg)
    assert "HTTPS_PROXY" in rendered("rank", cfg)


def test_skip_drops_directives_from_config_and_extra() -> None:
    cfg = load_config({"slurm.mem": "4G", "slurm.qos": "normal",
                       "slurm.archive.extra": ["--qos=high", "--mail-type=FAIL"],
                       "slurm.skip": ["--mem", "qos"]})
    text = rendered("archive", cfg)
    directives = [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]
    assert not any("--mem" in d or "--qos" in d for d in directives)
    assert any("--mail-type" in d for d in directives)
    assert any("--mem" in d for d in rendered("rank", load_config({"slurm.mem": "4G"}))
               .splitlines() if d.startswith("#SBATCH"))


def test_skip_cannot_remove_what_the_jobs_need() -> None:
    with pytest.raises(ConfigError, match="--output"):
        rendered("archive", load_config({"slurm.skip": ["--output"]}))


def test_a_site_template_without_the_prologue_slot_is_an_error_when_one_is_set(
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "finalize.sbatch").write_text("#!/bin/bash\n@@SBATCH@@\n@@COMMON@@\n@@BODY@@\n")
    cfg = load_config({"templates_dir": str(site)})
    rendered("finalize", cfg)  # no prologue configured: an older override still works
    with pytest.raises(TemplateError, match="@@PROLOGUE@@"):
        rendered("finalize", cfg.with_overrides({"slurm.prologue": ["umask 027"]}))


def tree(tmp_path: Path) -> bytes:
    folder = os.fsencode(tmp_path / "src" / "data")
    write_file(folder + b"/a.bin", os.urandom(2048))
    return folder


def uploaded(remote: Path) -> list[Path]:
    """Files in the remote (the small test file travels inside a tar bundle)."""
    return [p for p in remote.rglob("*") if p.is_file()] if remote.exists() else []


def logs(run: Run) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((run.run_dir / "logs").iterdir()))


def test_failing_prologue_fails_the_local_job_before_archiving(tmp_path: Path) -> None:
    cfg = load_config({"state_dir": str(tmp_path / "state"),
                       "slurm.archive.prologue": ["echo prologue-ran flags=$-", FAILING]})
    result = archive_folders([tree(tmp_path)], str(tmp_path / "remote"), cfg, backend="local")
    text = logs(result.run)
    assert "prologue-ran flags=" in text and "e" in text.split("flags=")[1].split()[0]
    assert "froster_no_such_module: command not found" in text
    assert f"prologue failed (exit 127): {FAILING}" in text
    assert not uploaded(tmp_path / "remote")


@pytest.mark.slurm
def test_failing_prologue_fails_the_slurm_job_with_its_message(slurm_cluster: None,
                                                               tmp_path: Path) -> None:
    cfg = load_config({"state_dir": str(tmp_path / "state"), "slurm.archive.cpus": 1,
                       "slurm.prologue": ["echo site-prologue-ran flags=$-"],
                       "slurm.archive.prologue": [FAILING]})
    result = archive_folders([tree(tmp_path)], str(tmp_path / "remote"), cfg, backend="slurm")
    for job in result.job_ids["archive"] + result.job_ids["finalize"]:
        wait_gone(job, 180)
    text = logs(result.run)
    flags = text.split("site-prologue-ran flags=")[1].split()[0]
    assert "e" in flags and "u" in flags  # strict mode was on when the prologue ran
    assert "froster_no_such_module: command not found" in text
    assert f"prologue failed (exit 127): {FAILING}" in text
    assert "archive task 0" not in text  # the stage body never started
    assert not uploaded(tmp_path / "remote")
    # The same run with a prologue that works archives the folder.
    ok = cfg.with_overrides({"slurm.archive.prologue": ["export FROSTER_SITE_OK=1"]})
    result = archive_folders([tree(tmp_path)], str(tmp_path / "remote2"), ok, backend="slurm")
    for job in result.job_ids["archive"] + result.job_ids["finalize"]:
        wait_gone(job, 180)
    assert uploaded(tmp_path / "remote2"), logs(result.run)
