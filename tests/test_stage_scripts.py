"""The one stage skeleton, the helpers each stage gets, exit codes rendered from errors.py, and
shellcheck on every rendered script (built-in templates and site overrides).

Every stage renders from ``templates/stage.sbatch``; a site overrides one stage with
``<stage>.sbatch`` or all of them with ``stage.sbatch``, and an ``archive.sbatch`` exported
before the skeleton existed keeps rendering and archiving.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from archive_helpers import state

from froster_slurm import errors
from froster_slurm.cli import main
from froster_slurm.config import STAGES, Config, load_config
from froster_slurm.errors import TemplateError
from froster_slurm.run.rundir import archive_settings, create_run
from froster_slurm.submit.overrides import STAMP_PREFIX, resolve
from froster_slurm.submit.pipeline import archive_folders
from froster_slurm.submit.stages import HELPER_FILES, render_stage, sbatch_options

REPO = Path(__file__).resolve().parent.parent
REQUEUEABLE = {"archive", "restore"}
REQUEUE_HELPERS = ("froster_run_payload", "froster_wait", "froster_requeue",
                   "froster_requeue_tail", "froster_on_signal")
# A bare 70 or 75 in code (not in a comment): an exit code typed by hand.
BARE_EXIT = re.compile(r"(?<![\w$.-])(70|75)(?![\w.])")

# templates/archive.sbatch as froster-slurm 0.1.0 shipped it before the skeleton: what a site
# that exported and edited it has in its templates_dir.
OLD_ARCHIVE_SBATCH = """#!/bin/bash
@@SBATCH@@
#
# froster-slurm @@VERSION@@: the @@STAGE@@ stage of run @@RUN_ID@@, one array task per folder.
# Rendered from templates/archive.sbatch.

set -euo pipefail
export FROSTER_RUN_DIR=@@RUN_DIR@@
export FROSTER_PYTHON=@@PYTHON@@
export FROSTER_STAGE=@@STAGE@@
export FROSTER_ARRAY_OFFSET=@@ARRAY_OFFSET@@

# --- common helpers (jobscripts/common.sh) ---
@@COMMON@@

# --- site prologue ([slurm] prologue, then [slurm.archive] prologue; strict mode is on) ---
@@PROLOGUE@@

# --- stage body (jobscripts/archive.sh) ---
@@BODY@@
"""


def render_all(cfg: Config) -> dict[str, str]:
    """Every stage rendered with ``cfg``: stage -> script text."""
    run = create_run(cfg, "archive", folders=[b"/x"], archive=archive_settings(cfg, "/tmp/r"))
    out = {}
    for stage in STAGES:
        array = "0-3%2" if stage in ("archive", "crawl") else None
        extra = {"requeue": True, "signal": "B:USR1@60"} if stage in REQUEUEABLE else None
        opts = sbatch_options(stage, cfg, run, job_name=f"t-{stage}", array=array, extra=extra)
        out[stage] = render_stage(stage, cfg, run, options=opts).read_text()
    return out


def code_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def run_shellcheck(shellcheck: str, text: str, tmp_path: Path, name: str) -> None:
    script = tmp_path / name
    script.write_text(text)
    proc = subprocess.run([shellcheck, "-S", "warning", "-f", "gcc", str(script)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"shellcheck on rendered {name}:\n{proc.stdout}{proc.stderr}"


def site_with_overrides(tmp_path: Path) -> Path:
    """A site dir: an edited skeleton for every stage, an edited archive.sbatch of its own."""
    site = tmp_path / "site"
    assert main(["templates", "export", str(site), "stage.sbatch", "archive.sbatch"]) == 0
    for name, mark in (("stage.sbatch", "site-skeleton"), ("archive.sbatch", "site-archive")):
        path = site / name
        path.write_text(path.read_text().replace(
            "@@PROLOGUE@@\n", f'@@PROLOGUE@@\nfroster_log "{mark} ran"\n'))
    return site


def test_every_stage_renders_from_the_one_skeleton() -> None:
    assert sorted(p.name for p in (REPO / "templates").glob("*.sbatch")) == ["stage.sbatch"]
    scripts = render_all(load_config())
    for stage, text in scripts.items():
        assert f"the {stage} stage of run" in text
        assert "rendered from templates/stage.sbatch" in text
        assert f"# --- stage body (jobscripts/{stage}.sh) ---" in text
        assert f"export FROSTER_STAGE={stage}\n" in text
    # The code of the skeleton part is one text for all six (the SBATCH block aside).
    skeletons = set()
    for stage, text in scripts.items():
        head = text.split("# --- helpers this stage calls")[0]
        skeletons.add("\n".join(code_lines(head.replace(f"FROSTER_STAGE={stage}\n",
                                                         "FROSTER_STAGE=STAGE\n"))))
    assert len(skeletons) == 1, "\n=====\n".join(skeletons)


def test_requeue_helpers_only_in_the_stages_that_call_them() -> None:
    scripts = render_all(load_config())
    for stage, text in scripts.items():
        defined = set(re.findall(r"^(\w+)\(\) \{", text, re.M))
        assert {"froster_log", "froster_status", "froster_step"} <= defined, stage
        if stage in REQUEUEABLE:
            assert set(REQUEUE_HELPERS) <= defined, stage
            # the one shared tail: defined once, called once, nothing retyped in the body
            assert text.count("froster_requeue_tail() {") == 1
            body = text.split(f"# --- stage body (jobscripts/{stage}.sh) ---")[1]
            assert len(re.findall(r"^froster_requeue_tail \d+ ", body, re.M)) == 1
            assert "scontrol" not in "\n".join(code_lines(body))
        else:
            assert not defined & set(REQUEUE_HELPERS), stage
            assert "requeue.sh" not in text.split("# --- helpers this stage calls")[1][:80]


def test_exit_codes_are_rendered_from_errors_py_never_typed_in_bash() -> None:
    codes = {f"FROSTER_EXIT_{k}": v for k, v in errors.exit_codes().items()}
    assert codes["FROSTER_EXIT_TEMPFAIL"] == errors.EXIT_TEMPFAIL == 75
    assert codes["FROSTER_EXIT_PERMANENT"] == errors.EXIT_PERMANENT == 70
    sources = {p.relative_to(REPO).as_posix(): p.read_text()
               for folder in ("jobscripts", "templates") for p in (REPO / folder).iterdir()
               if p.suffix in (".sh", ".sbatch")}
    rendered = render_all(load_config({"slurm.prologue": ["umask 027"]}))
    sources.update({f"rendered {s}": t for s, t in rendered.items()})
    for name, text in sources.items():
        for ln in code_lines(text):
            if ln.startswith("readonly FROSTER_EXIT_"):
                var, _, value = ln.removeprefix("readonly ").partition("=")
                assert codes[var] == int(value), ln
                continue
            assert not BARE_EXIT.search(ln), f"{name}: a bare exit code in: {ln}"
    for stage in REQUEUEABLE:
        text = rendered[stage]
        assert "readonly FROSTER_EXIT_TEMPFAIL=75\n" in text
        assert "readonly FROSTER_EXIT_PERMANENT=70\n" in text
        # only what the script uses is defined (shellcheck: no unused variables)
        used = {m for ln in code_lines(text) if not ln.startswith("readonly ")
                for m in re.findall(r"\bFROSTER_EXIT_\w+", ln)}
        assert set(re.findall(r"^readonly (FROSTER_EXIT_\w+)=", text, re.M)) == used


def test_an_unknown_exit_code_name_in_a_site_body_fails_at_submit(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "finalize.sh").write_text('"$FROSTER_PYTHON" -m froster_slurm.jobs finalize '
                                      '"$FROSTER_RUN_DIR" || exit "$FROSTER_EXIT_TRANSIENT"\n')
    cfg = load_config({"templates_dir": str(site)})
    run = create_run(cfg, "archive", folders=[b"/x"], archive=archive_settings(cfg, "/tmp/r"))
    with pytest.raises(TemplateError,
                       match="FROSTER_EXIT_TRANSIENT.*known: .*FROSTER_EXIT_TEMPFAIL"):
        render_stage("finalize", cfg, run, options={"job_name": "x"})


def test_every_jobscript_is_a_stage_body_or_a_helper() -> None:
    names = {p.name for p in (REPO / "jobscripts").glob("*.sh")}
    assert names == {f"{s}.sh" for s in STAGES} | set(HELPER_FILES)


def test_a_site_skeleton_overrides_every_stage_and_a_stage_file_wins_for_its_stage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = site_with_overrides(tmp_path)
    # An unedited exported crawl.sbatch is passed over: the site skeleton still applies.
    assert main(["templates", "export", str(site), "crawl.sbatch"]) == 0
    scripts = render_all(load_config({"templates_dir": str(site)}))
    assert 'froster_log "site-archive ran"' in scripts["archive"]
    assert "site-skeleton" not in scripts["archive"]
    for stage in set(STAGES) - {"archive"}:
        assert 'froster_log "site-skeleton ran"' in scripts[stage], stage
        assert f"rendered from {site / 'stage.sbatch'}" in scripts[stage]
    assert resolve("crawl.sbatch", site).site_path == site / "stage.sbatch"
    assert main(["config", "set", "templates_dir", str(site)]) == 0
    capsys.readouterr()
    assert main(["templates", "list"]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert re.search(r"archive\.sbatch\s+template\s+site\s+" + re.escape(str(site)), rows[
        "archive.sbatch"])
    assert str(site / "stage.sbatch") in rows["rank.sbatch"] and " site " in rows["rank.sbatch"]
    assert main(["templates", "show", "rank.sbatch"]) == 0
    assert "site-skeleton ran" in capsys.readouterr().out
    assert main(["templates", "diff"]) == 0  # every override once, the skeleton's not per stage
    diff = capsys.readouterr().out
    assert diff.count("site-skeleton ran") == 1 and diff.count("site-archive ran") == 1


@pytest.mark.jobs
def test_an_archive_sbatch_exported_before_the_skeleton_still_archives(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    old = OLD_ARCHIVE_SBATCH.split("\n")
    old.insert(1, f"# {STAMP_PREFIX} archive.sbatch from froster-slurm 0.1.0 "
                  "(built-in sha256 0123456789abcdef)")
    text = "\n".join(old).replace("@@PROLOGUE@@\n", "@@PROLOGUE@@\necho old-site-template-ran\n")
    (site / "archive.sbatch").write_text(text)
    folder = os.fsencode(tmp_path / "src" / "data")
    os.makedirs(folder)
    with open(folder + b"/a.bin", "wb") as f:
        f.write(os.urandom(4096))
    cfg = load_config({"state_dir": str(tmp_path / "state"), "templates_dir": str(site)})
    result = archive_folders([folder], str(tmp_path / "remote"), cfg, backend="local")
    assert "written for froster-slurm 0.1.0" in capsys.readouterr().err  # stale, still used
    script = next(p for p in result.scripts if p.name.startswith("archive"))
    assert "echo old-site-template-ran" in script.read_text()
    assert "froster_requeue_tail() {" in script.read_text()  # the helpers it needs came along
    logs = "".join(p.read_text(errors="replace")
                   for p in sorted((result.run.run_dir / "logs").iterdir()))
    assert "old-site-template-ran" in logs
    assert state(result.run.run_dir, 0)["state"] == "done", logs


def test_shellcheck_passes_on_every_rendered_script(shellcheck: str, tmp_path: Path) -> None:
    """Built-in skeleton, a prologue, a site skeleton + stage file, an old-style override."""
    variants = {
        "builtin": load_config(),
        "prologue": load_config({"slurm.prologue": ["export HTTPS_PROXY=http://proxy:3128"],
                                 "slurm.archive.prologue": ["umask 027"]}),
        "site": load_config({"templates_dir": str(site_with_overrides(tmp_path))}),
    }
    old_site = tmp_path / "old-site"
    old_site.mkdir()
    (old_site / "archive.sbatch").write_text(OLD_ARCHIVE_SBATCH)
    variants["old-site"] = load_config({"templates_dir": str(old_site)})
    for label, cfg in variants.items():
        for stage, text in render_all(cfg).items():
            run_shellcheck(shellcheck, text, tmp_path, f"{label}-{stage}.sbatch")


def test_shellcheck_catches_a_warning_so_the_test_above_can_fail(shellcheck: str,
                                                                 tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="SC2034"):
        run_shellcheck(shellcheck, "#!/bin/bash\nunused=1\n", tmp_path, "bad.sbatch")


def test_the_jobscripts_and_scripts_pass_shellcheck_as_make_lint_runs_it(shellcheck: str
                                                                         ) -> None:
    bodies = sorted(str(p) for p in (REPO / "jobscripts").glob("*.sh"))
    scripts = sorted(str(p) for p in (REPO / "scripts").glob("*.sh"))
    for args in (["-s", "bash", *bodies], scripts):
        proc = subprocess.run([shellcheck, "-S", "warning", "-f", "gcc", *args],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
