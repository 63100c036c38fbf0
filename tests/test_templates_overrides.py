"""Site overrides that survive upgrades: export one file, diff it against the built-in, list
templates and jobscripts with what overrides them, and a version stamp that makes an override
written for an older froster-slurm visible at submit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from froster_slurm.cli import main
from froster_slurm.config import load_config
from froster_slurm.run.rundir import archive_settings, create_run
from froster_slurm.submit.overrides import STAMP_PREFIX, builtin_names, resolve
from froster_slurm.submit.stages import render_stage


def render_finalize(site: Path) -> str:
    cfg = load_config({"templates_dir": str(site)})
    run = create_run(cfg, "archive", folders=[b"/x"], archive=archive_settings(cfg, "/tmp/r"))
    return render_stage("finalize", cfg, run, options={"job_name": "x"}).read_text()


def test_export_copies_only_the_named_files_with_a_stamp(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    site = tmp_path / "site"
    assert main(["templates", "export", str(site), "archive.sbatch", "common.sh"]) == 0
    assert sorted(p.name for p in site.iterdir()) == ["archive.sbatch", "common.sh"]
    text = (site / "archive.sbatch").read_text().splitlines()
    assert text[0] == "#!/bin/bash" and text[1].startswith(f"# {STAMP_PREFIX}")
    assert (site / "common.sh").read_text().startswith(f"# {STAMP_PREFIX}")
    capsys.readouterr()
    assert main(["templates", "export", str(site), "nope.sh"]) == 66
    assert "no template or jobscript named 'nope.sh'" in capsys.readouterr().err


def test_export_all_still_works_and_unedited_copies_do_not_shadow(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture
                                                                  ) -> None:
    site = tmp_path / "site"
    assert main(["templates", "export", str(site)]) == 0
    # stage.sbatch (the skeleton), one name per stage (seven, with chain), index.html; seven
    # stage bodies, common.sh and requeue.sh
    assert len(list(site.iterdir())) == len(builtin_names()) == 18
    # Not edited: the built-in (which a later upgrade may fix) is what renders.
    assert resolve("finalize.sbatch", site).origin == "built-in"
    (site / "common.sh").write_text((site / "common.sh").read_text() + "# site edit\n")
    assert resolve("common.sh", site).origin == "site"
    assert "# site edit" in render_finalize(site)


def test_list_shows_jobscripts_and_what_overrides_them(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    assert main(["templates", "export", str(site), "common.sh"]) == 0
    (site / "common.sh").write_text((site / "common.sh").read_text() + "# site edit\n")
    capsys.readouterr()
    assert main(["config", "set", "templates_dir", str(site)]) == 0
    capsys.readouterr()
    assert main(["templates", "list"]) == 0
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert {"archive.sbatch", "index.html", "common.sh", "archive.sh"} <= rows.keys()
    assert re.search(r"common\.sh\s+jobscript\s+site\b", rows["common.sh"])
    assert str(site / "common.sh") in rows["common.sh"]
    assert re.search(r"archive\.sh\s+jobscript\s+built-in\b", rows["archive.sh"])
    assert re.search(r"rank\.sbatch\s+template\s+built-in\b", rows["rank.sbatch"])


def test_diff_shows_the_site_change_against_the_built_in(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    site = tmp_path / "site"
    assert main(["templates", "export", str(site), "finalize.sbatch", "rank.sh"]) == 0
    path = site / "finalize.sbatch"
    path.write_text(path.read_text().replace("export FROSTER_STAGE=@@STAGE@@",
                                             "export FROSTER_STAGE=@@STAGE@@\numask 027"))
    main(["config", "set", "templates_dir", str(site)])
    capsys.readouterr()
    assert main(["templates", "diff", "finalize.sbatch"]) == 0
    diff = capsys.readouterr().out
    assert "+umask 027" in diff and "--- built-in finalize.sbatch" in diff
    assert STAMP_PREFIX not in diff
    assert main(["templates", "diff"]) == 0  # every override; the unedited rank.sh is the same
    every = capsys.readouterr().out
    assert "+umask 027" in every and "+++ " + str(site / "rank.sh") not in every


def test_an_override_from_an_older_version_is_reported_at_submit(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture
                                                                 ) -> None:
    site = tmp_path / "site"
    assert main(["templates", "export", str(site), "finalize.sbatch"]) == 0
    path = site / "finalize.sbatch"
    lines = path.read_text().splitlines()
    # What an export by froster-slurm 0.0.9 of an older built-in looks like, then edited.
    lines[1] = re.sub(r"froster-slurm \S+ \(built-in sha256 \w+\)",
                      "froster-slurm 0.0.9 (built-in sha256 0123456789abcdef)", lines[1])
    assert "0.0.9" in lines[1]
    path.write_text("\n".join(lines) + "\n# site edit\n")
    capsys.readouterr()
    text = render_finalize(site)
    err = capsys.readouterr().err
    assert "# site edit" in text
    assert "written for froster-slurm 0.0.9" in err
    assert "froster-slurm templates diff finalize.sbatch" in err
    # An override with no stamp at all (hand-written) is reported as such.
    path.write_text("#!/bin/bash\n@@SBATCH@@\nset -euo pipefail\n@@COMMON@@\n@@PROLOGUE@@\n"
                    "@@BODY@@\n")
    render_finalize(site)
    assert "no version stamp" in capsys.readouterr().err


def test_a_stale_index_html_is_reported_when_the_archive_stage_is_rendered(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    assert main(["templates", "export", str(site), "index.html"]) == 0
    path = site / "index.html"
    lines = path.read_text().splitlines()
    assert lines[0].lower().startswith("<!doctype") and STAMP_PREFIX in lines[1]
    lines[1] = re.sub(r"froster-slurm \S+ \(built-in sha256 \w+\)",
                      "froster-slurm 0.0.9 (built-in sha256 0123456789abcdef)", lines[1])
    path.write_text("\n".join(lines) + "\n<!-- site edit -->\n")
    cfg = load_config({"templates_dir": str(site)})
    run = create_run(cfg, "archive", folders=[b"/x"], archive=archive_settings(cfg, "/tmp/r"))
    capsys.readouterr()
    render_stage("archive", cfg, run, options={"job_name": "x", "array": "0-0"})
    err = capsys.readouterr().err
    assert "index.html" in err and "templates diff index.html" in err
