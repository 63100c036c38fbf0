"""The whole pipeline as chained jobs (issue 7): real local Slurm, moto S3, and the local
backend running the very same rendered scripts."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from archive_helpers import md5sum_check, write_file
from s3server import RCLONE_TEST_FLAGS, S3Server

from froster_slurm.catalog import store as catalog
from froster_slurm.cli import main
from froster_slurm.config import Config, load_config
from froster_slurm.run.rundir import Run, catalog_path
from froster_slurm.status.collect import collect
from froster_slurm.submit.pipeline import (
    archive_folders,
    backend_for_run,
    retry_run,
    submit_pipeline,
)

RULES = {"min_size": "0", "min_avg_size": "0", "older_than": None, "top": None,
         "owner": None, "by": None}


def s3_config(server: S3Server, **extra: object) -> Config:
    return load_config({"archive.rclone_config": str(server.rclone_config),
                        "archive.rclone_flags": RCLONE_TEST_FLAGS, "archive.retry_delay": 1,
                        "archive.throttle": 4, **extra})


def make_tree(root: Path) -> list[bytes]:
    """Three project folders with files of a few sizes; one name is not UTF-8."""
    base = os.fsencode(root)
    folders = [base + b"/proj-a", base + b"/proj-b", base + b"/caf\xe9 data"]
    for n, f in enumerate(folders):
        write_file(f + b"/big.bin", os.urandom(300_000 + n), mtime=1_500_000_000)
        for i in range(5):
            write_file(f + b"/small-%d.txt" % i, b"x" * (100 + i), mtime=1_500_000_000)
    return folders


def wait_finished(run: Run, cfg: Config, timeout: float = 240) -> dict:
    be = backend_for_run(run, cfg)
    deadline = time.time() + timeout
    idle = 0
    while time.time() < deadline:
        st = collect(run, be)
        if st.finished:
            return st.to_json_obj()
        idle = idle + 1 if st.idle else 0
        if idle >= 3:
            logs = "\n".join(p.read_text()[-1500:] for p in (run.run_dir / "logs").glob("*"))
            raise AssertionError(f"run {run.run_id} stopped unfinished: {st.to_json_obj()}\n"
                                 f"{logs}")
        time.sleep(1)
    raise AssertionError(f"run {run.run_id} not finished after {timeout}s: "
                         f"{collect(run, be).to_json_obj()}")


def assert_archived(run: Run, folders: list[bytes], st: dict) -> None:
    by_folder = {os.fsencode(f["folder"]): f for f in st["folders"]}
    for folder in folders:
        assert by_folder[folder]["state"] == "done", by_folder[folder]
        assert md5sum_check(folder).returncode == 0
        assert os.path.exists(folder + b"/index.html")
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["totals"]["done"] == len(folders)
    assert (run.run_dir / "summary.html").read_text().count("<tr class='ok'>") == len(folders)


@pytest.mark.slurm
def test_submit_end_to_end_to_s3_deep_archive(slurm_cluster: None, s3: S3Server,
                                              tmp_path: Path) -> None:
    folders = make_tree(tmp_path / "lab")
    cfg = s3_config(s3)
    result = submit_pipeline([os.fsencode(tmp_path / "lab")], s3.remote, cfg, rules=RULES,
                             shards=2, storage_class="DEEP_ARCHIVE", backend="slurm")
    assert set(result.job_ids) == {"crawl", "rank"}
    st = wait_finished(result.run, cfg)
    assert_archived(result.run, folders, st)
    assert sorted(st["jobs"]) == ["archive", "crawl", "finalize", "rank"]
    # two shards of the builtin crawler: consistent parent-inodes, so the fast reader ranks
    [rank_log] = (result.run.run_dir / "logs").glob("rank-*")
    assert "(fast reader)" in rank_log.read_text()
    # Every data object is in DEEP_ARCHIVE; the trace copies are readable without a restore.
    client = s3.client()
    keys = s3.list_keys("froster" + os.fsdecode(tmp_path))
    assert keys
    for key in keys:
        sc = client.head_object(Bucket=s3.bucket, Key=key).get("StorageClass", "STANDARD")
        trace = key.endswith(("Froster.archive.json", "Froster.manifest.md5", "index.html"))
        assert sc == ("STANDARD" if trace else "DEEP_ARCHIVE"), key
    entries = catalog.entries(catalog_path(cfg))
    assert sorted(e.folder for e in entries) == sorted(folders)
    assert {e.storage_class for e in entries} == {"DEEP_ARCHIVE"}


@pytest.mark.slurm
def test_one_failed_folder_does_not_stop_the_others_and_retry_finishes_it(
        slurm_cluster: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = make_tree(tmp_path / "lab")
    # A folder holding a record froster-slurm did not write fails for good at its record
    # step (it is never overwritten); a folder that does not exist is refused before
    # anything is queued (tests/test_preflight.py).
    missing = os.fsencode(tmp_path / "lab" / "foreign-record")
    write_file(missing + b"/data.bin", b"some data")
    write_file(missing + b"/Froster.archive.json", b"{}")
    cfg = load_config({"archive.retry_delay": 1})
    result = archive_folders([*folders, missing], str(tmp_path / "remote"), cfg,
                             backend="slurm")
    st = wait_finished(result.run, cfg)
    states = {os.fsencode(f["folder"]): f for f in st["folders"]}
    assert states[missing]["state"] == "failed" and states[missing]["error"]
    assert all(states[f]["state"] == "done" for f in folders)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["retry_command"] == f"froster-slurm retry {result.run_id}"
    # The foreign file goes; retry resubmits only that folder, inside the same run.
    os.unlink(missing + b"/Froster.archive.json")
    again = retry_run(result.run, cfg)
    assert again.run_id == result.run_id
    archive_jobs = result.run.jobs()["archive"]
    assert archive_jobs[-1]["count"] == 1
    (result.run_dir / "summary.json").unlink()  # wait for the new finalize
    st = wait_finished(result.run, cfg)
    assert all(f["state"] == "done" for f in st["folders"])
    assert md5sum_check(missing).returncode == 0
    assert main(["retry", result.run_id]) == 64
    assert "nothing to retry" in capsys.readouterr().err


@pytest.mark.slurm
def test_two_runs_at_once_keep_the_catalog_intact(slurm_cluster: None, tmp_path: Path) -> None:
    cfg = load_config()
    a = make_tree(tmp_path / "one")
    b = make_tree(tmp_path / "two")
    results = []
    threads = [threading.Thread(target=lambda fs=fs: results.append(
        archive_folders(fs, str(tmp_path / "remote"), cfg, backend="slurm"))) for fs in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        wait_finished(r.run, cfg)
    entries = catalog.entries(catalog_path(cfg))
    assert sorted(e.folder for e in entries) == sorted(a + b)
    assert len({e.run_id for e in entries}) == 2


@pytest.mark.slurm
def test_a_waiting_finalize_never_holds_back_another_runs(slurm_cluster: None,
                                                          tmp_path: Path) -> None:
    """One run's finalize still waiting (here: held, as if its archive ran for days) must not
    keep a later run of the same user from finishing: singleton is per run, not shared."""
    cfg = load_config()
    first = archive_folders(make_tree(tmp_path / "one"), str(tmp_path / "remote"), cfg,
                            backend="slurm")
    [held] = first.job_ids["finalize"]
    subprocess.run(["scontrol", "hold", held], check=True)
    try:
        second = archive_folders(make_tree(tmp_path / "two"), str(tmp_path / "remote"), cfg,
                                 backend="slurm")
        wait_finished(second.run, cfg)
        assert (second.run_dir / "summary.json").exists()
        assert not (first.run_dir / "summary.json").exists()
    finally:
        subprocess.run(["scontrol", "release", held], check=True)
    wait_finished(first.run, cfg)


@pytest.mark.slurm
def test_dry_run_submits_nothing(slurm_cluster: None, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path / "lab")
    rc = main(["submit", str(tmp_path / "lab"), "--to", str(tmp_path / "remote"),
               "--dry-run", "--backend", "slurm", "--shards", "3"])
    assert rc == 0
    runs = list((Path(os.environ["FROSTER_SLURM_STATE_DIR"]) / "runs").iterdir())
    [run_dir] = runs
    assert not (run_dir / "jobs.toml").exists()
    assert sorted(p.name for p in (run_dir / "scripts").iterdir()) == ["crawl.sbatch",
                                                                       "rank.sbatch"]
    queue = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
    assert run_dir.name not in queue
    rc = main(["archive", str(tmp_path / "lab" / "proj-a"), "--to", str(tmp_path / "r"),
               "--dry-run", "--backend", "slurm"])
    out = capsys.readouterr().out
    assert rc == 0 and "#SBATCH --array" in out and "--requeue" in out
    assert "proj-a" not in out.split("=====", 2)[-1]  # the path never enters a script


def test_the_same_pipeline_under_the_local_backend(s3: S3Server, tmp_path: Path) -> None:
    folders = make_tree(tmp_path / "lab")
    cfg = s3_config(s3)
    result = submit_pipeline([os.fsencode(tmp_path / "lab")], s3.remote, cfg, rules=RULES,
                             shards=2, storage_class="DEEP_ARCHIVE", backend="local")
    st = wait_finished(result.run, cfg, timeout=5)  # local runs synchronously
    assert_archived(result.run, folders, st)
    assert [j["states"] for j in st["jobs"]["archive"]] == [["COMPLETED"]]
    assert sorted(e.folder for e in catalog.entries(catalog_path(cfg))) == sorted(folders)
