"""Runs tell the truth (issue 13, item 5): failed submissions, dry runs, cancelled jobs, the
words of each run kind, status without sbatch, and listing/pruning old runs by state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w
from archive_helpers import write_file
from slurm_helpers import wait_gone

from froster_slurm.cli import main
from froster_slurm.config import load_config
from froster_slurm.errors import FrosterError
from froster_slurm.run.rundir import Run, list_runs
from froster_slurm.status.collect import collect, format_status, query_backend
from froster_slurm.submit.pipeline import archive_folders, retry_run, submit_crawl

REPO = Path(__file__).resolve().parent.parent


def folder(tmp_path: Path, name: str = "proj", size: int = 200_000) -> bytes:
    f = os.fsencode(tmp_path / "lab" / name)
    write_file(f + b"/big.bin", os.urandom(size), mtime=1_500_000_000)
    write_file(f + b"/small.txt", b"x" * 10, mtime=1_500_000_000)
    return f


def status_of(run: Run, cfg) -> dict:
    return collect(run, query_backend(run, cfg)).to_json_obj()


def queue_names() -> str:
    return subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout


@pytest.mark.slurm
def test_a_failed_submission_says_so_and_is_never_active(
        tmp_path: Path, slurm_cluster: None, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config({"slurm.partition": "no-such-partition"})
    with pytest.raises(FrosterError):
        archive_folders([folder(tmp_path)], str(tmp_path / "dest"), cfg, backend="slurm")
    [run] = list_runs(cfg)
    assert run.run_id not in queue_names()
    st = status_of(run, cfg)
    assert st["state"] == "submit-failed" and "partition" in st["submission"]["error"].lower()
    assert main(["status", run.run_id]) == 0
    out = capsys.readouterr().out
    assert "(archive, submit-failed)" in out and "submission failed (" in out
    assert main(["runs", "list", "--state", "submit-failed"]) == 0
    assert run.run_id in capsys.readouterr().out
    assert main(["runs", "list", "--state", "active"]) == 0
    assert run.run_id not in capsys.readouterr().out


def test_a_dry_run_is_marked_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config()
    res = archive_folders([folder(tmp_path)], str(tmp_path / "dest"), cfg, backend="local",
                          dry_run=True)
    st = status_of(res.run, cfg)
    assert st["state"] == "dry-run" and st["submission"]["state"] == "dry-run"
    assert main(["status", res.run_id]) == 0
    out = capsys.readouterr().out
    assert "(archive, dry-run)" in out and "nothing was submitted" in out


def test_status_reads_the_state_files_on_a_host_without_sbatch(tmp_path: Path) -> None:
    """A login node without Slurm's commands: the state files answer, Slurm was not asked."""
    cfg = load_config()
    res = archive_folders([folder(tmp_path)], str(tmp_path / "dest"), cfg, backend="local")
    deadline = time.time() + 120
    while not collect(res.run, query_backend(res.run, cfg)).finished:
        assert time.time() < deadline, "local archive did not finish"
        time.sleep(0.5)
    # The same run, recorded as a Slurm run, read where no sbatch/squeue exists.
    settings = dict(res.run.settings.to_toml(), backend="slurm")
    (res.run.run_dir / "run.toml").write_text(tomli_w.dumps(settings))
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env.update(PATH=str(tmp_path / "empty-bin"), PYTHONPATH=str(REPO))
    (tmp_path / "empty-bin").mkdir()
    proc = subprocess.run([sys.executable, "-m", "froster_slurm", "status", res.run_id],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Slurm was not queried" in proc.stdout and "1/1 folders archived" in proc.stdout
    assert "(archive, finished)" in proc.stdout
    assert "NOT QUERIED" in proc.stdout and "Traceback" not in proc.stderr


def test_each_kind_speaks_its_own_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    cfg = load_config()
    folder(tmp_path, "a")
    folder(tmp_path, "b")
    res = submit_crawl([os.fsencode(tmp_path / "lab")], tmp_path / "crawl-out", cfg, shards=2,
                       backend="local")
    deadline = time.time() + 120
    while not collect(res.run, query_backend(res.run, cfg)).finished:
        assert time.time() < deadline, "local crawl did not finish"
        time.sleep(0.5)
    assert main(["status", res.run_id]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert "(crawl, finished): 2/2 shards crawled" in first and " entries" in first, out
    assert "folders archived" not in out
    # A restore run speaks in phases (its state file is restore/restorestate.py's restore.json).
    run_dir = Path(os.environ["FROSTER_SLURM_STATE_DIR"]) / "runs" / "20200101-000000-abcdef"
    (run_dir / "tasks").mkdir(parents=True)
    (run_dir / "run.toml").write_text(tomli_w.dumps({"kind": "restore", "backend": "local",
                                                     "created": "2020-01-01T00:00:00Z"}))
    (run_dir / "restore.json").write_text(json.dumps(
        {"phase": "downloading", "folder": "/data/x", "target": "/data/x"}))
    text = format_status(collect(Run(run_dir), None))
    assert "restore of /data/x: phase downloading" in text and "folders archived" not in text


@pytest.mark.slurm
def test_a_cancelled_archive_shows_cancelled_and_how_to_resume(
        tmp_path: Path, slurm_cluster: None, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config({"archive.rclone_flags": ["--bwlimit", "100k"],
                       "archive.bundle_threshold": "1KiB", "archive.retry_delay": 1})
    res = archive_folders([folder(tmp_path, size=3_000_000)], str(tmp_path / "dest"), cfg,
                          backend="slurm")
    job = res.job_ids["archive"][0]
    deadline = time.time() + 300
    while True:
        fol = status_of(res.run, cfg)["folders"][0]
        if fol["step"] == "upload" and fol["state"] == "running":
            break
        assert time.time() < deadline, f"never reached upload: {fol}"
        time.sleep(0.5)
    subprocess.run(["scancel", job], check=True)
    wait_gone(job, timeout=180)
    wait_gone(res.job_ids["finalize"][0], timeout=300)  # afterany: finalize still runs
    st = status_of(res.run, cfg)
    assert st["state"] == "cancelled", st
    assert st["folders"][0]["state"] == "cancelled" and st["totals"]["cancelled"] == 1
    assert main(["status", res.run_id]) == 0
    out = capsys.readouterr().out
    assert "cancelled during upload; steps done: inventory, bundle, hash" in out, out
    assert f"froster-slurm retry {res.run_id}" in out and "resumes there" not in out.split(
        "\n")[0]
    summary = json.loads((res.run.run_dir / "summary.json").read_text())
    assert summary["folders"][0]["state"] == "cancelled" and summary["totals"]["cancelled"] == 1
    # and retry really resumes it
    cfg2 = load_config()
    again = retry_run(res.run, cfg2)
    for j in again.job_ids["archive"] + again.job_ids["finalize"]:
        wait_gone(j, timeout=300)
    st = status_of(res.run, cfg2)
    assert st["state"] == "finished" and st["folders"][0]["state"] == "done", st


@pytest.mark.slurm
def test_runs_prune_removes_old_final_runs_and_never_an_active_one(
        tmp_path: Path, slurm_cluster: None, capsys: pytest.CaptureFixture[str]) -> None:
    f = folder(tmp_path)
    old_dry = archive_folders([f], str(tmp_path / "d"), load_config(), backend="local",
                              dry_run=True).run
    new_dry = archive_folders([f], str(tmp_path / "d"), load_config(), backend="local",
                              dry_run=True).run
    settings = dict(old_dry.settings.to_toml(), created="2020-01-01T00:00:00Z")
    (old_dry.run_dir / "run.toml").write_text(tomli_w.dumps(settings))
    held_cfg = load_config({"slurm.extra": ["--hold"]})
    held = archive_folders([f], str(tmp_path / "d"), held_cfg, backend="slurm")
    try:
        settings = dict(held.run.settings.to_toml(), created="2020-01-01T00:00:00Z")
        (held.run.run_dir / "run.toml").write_text(tomli_w.dumps(settings))
        assert main(["runs", "list", "--state", "active"]) == 0
        assert held.run_id in capsys.readouterr().out
        assert main(["runs", "prune", "--older-than", "30d", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"would remove {old_dry.run_id}" in out and held.run_id not in out
        assert old_dry.run_dir.exists()
        assert main(["runs", "prune", "--older-than", "30d"]) == 0
        assert "removed 1 run(s)" in capsys.readouterr().out
        assert not old_dry.run_dir.exists()
        assert new_dry.run_dir.exists() and held.run.run_dir.exists()
        assert main(["runs", "prune", "--older-than", "1d", "--state", "active"]) == 64
    finally:
        for j in held.job_ids["archive"] + held.job_ids["finalize"]:
            subprocess.run(["scancel", j], capture_output=True)
