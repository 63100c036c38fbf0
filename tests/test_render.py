"""Templates: strict @@NAME@@ placeholders, bash passes through, every stage renders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from froster_slurm.cli import main
from froster_slurm.config import STAGES, load_config
from froster_slurm.errors import ConfigError, TemplateError
from froster_slurm.run.rundir import archive_settings, create_run
from froster_slurm.submit.render import check_bash, render, sbatch_directives
from froster_slurm.submit.stages import render_stage, sbatch_options

BASH = 'echo "$HOME ${USER:-x} $(date) ${arr[@]} $@ $#" @x@'


def test_bash_syntax_passes_through_untouched() -> None:
    assert render(BASH + " @@A@@", {"A": "1"}) == BASH + " 1"


def test_unknown_missing_and_stray_placeholders_fail() -> None:
    with pytest.raises(TemplateError, match="unknown placeholder.*@@B@@"):
        render("@@A@@ @@B@@", {"A": 1}, "t.sbatch")
    with pytest.raises(TemplateError, match="no value for A"):
        render("@@A@@", {"A": None})
    with pytest.raises(TemplateError, match="stray '@@' on line 2"):
        render("ok\n@@ A", {})


def test_sbatch_block_is_built_and_validated_by_simple_slurm() -> None:
    block = sbatch_directives({"job-name": "x", "requeue": True, "array": "0-3%2",
                               "signal": "B:USR1@60", "mem": "", "partition": None})
    lines = block.splitlines()
    assert "#SBATCH --requeue" in lines
    assert any(ln.startswith("#SBATCH --array") and ln.endswith("0-3%2") for ln in lines)
    assert not any("--mem" in ln or "--partition" in ln for ln in lines)
    with pytest.raises(ConfigError, match="unknown sbatch option 'partitoin'"):
        sbatch_directives({"partitoin": "x"})


def test_bad_extra_directive_in_config_is_named() -> None:
    cfg = load_config({"slurm.extra": ["--constriant=nfs"]})
    run = create_run(cfg, "archive", folders=[b"/x"], archive=archive_settings(cfg, "/tmp/r"))
    with pytest.raises(ConfigError, match="constriant"):
        sbatch_directives(sbatch_options("finalize", cfg, run, job_name="j"))


def test_check_bash_rejects_broken_scripts() -> None:
    check_bash("echo ok\n")
    with pytest.raises(TemplateError):
        check_bash("if then fi\n")


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_template_renders_and_passes_bash_n(stage: str, tmp_path: Path) -> None:
    cfg = load_config({"slurm.partition": "debug", "slurm.extra": ["--mail-type=FAIL"]})
    run = create_run(cfg, "archive", folders=[b"/x"], archive=archive_settings(cfg, "/tmp/r"))
    opts = sbatch_options(stage, cfg, run, job_name=f"t-{stage}", array="0-2%1")
    script = render_stage(stage, cfg, run, options=opts)
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n#SBATCH")
    assert "@@" not in text.replace("B:USR1@", "")
    assert "--partition" in text and "--mail-type" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_site_template_overrides_by_name_and_typos_fail(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    site = tmp_path / "site"
    assert main(["templates", "export", str(site)]) == 0
    (site / "finalize.sbatch").write_text("#!/bin/bash\n@@SBATCH@@\n# SITE\n@@BODYY@@\n")
    cfg = load_config({"templates_dir": str(site)})
    run = create_run(cfg, "archive", folders=[b"/x"], archive=archive_settings(cfg, "/tmp/r"))
    with pytest.raises(TemplateError, match="@@BODYY@@"):
        render_stage("finalize", cfg, run, options={"job_name": "x"})
    (site / "finalize.sbatch").write_text("#!/bin/bash\n@@SBATCH@@\n# SITE\n@@BODY@@\n")
    text = render_stage("finalize", cfg, run, options={"job_name": "x"}).read_text()
    assert "# SITE" in text
    capsys.readouterr()
    assert main(["templates", "show", "nope.sbatch"]) == 66
    assert "no template or jobscript named 'nope.sbatch'" in capsys.readouterr().err
