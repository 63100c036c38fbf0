"""The archive queue is a good citizen: at most ``slurm.max_queued`` tasks of a run queued, the
next array queued by a chain job when the last one ended, the throttle held across arrays.

The cap's arithmetic is unit-tested; the chain runs on the REAL local Slurm cluster with a
per-run cap (``slurm.max_queued``) and a small ``slurm.max_array_size``, so the shared
cluster's slurm.conf is never touched while other tests use it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from archive_helpers import md5sum_check, tiny_folders, write_file

from froster_slurm.config import Config, load_config
from froster_slurm.run.batches import (
    append_batches,
    batch_count,
    batch_folders,
    pack,
    parse_spec,
    spec,
)
from froster_slurm.run.rundir import Run
from froster_slurm.run.taskstate import iter_task_states, read_task_state
from froster_slurm.scheduler.slurm import QueueLimits, SlurmClient
from froster_slurm.status.collect import collect
from froster_slurm.submit.chain import derive_cap
from froster_slurm.submit.pipeline import archive_folders, backend_for_run, retry_run


@pytest.mark.unit
def test_the_cap_is_a_tenth_of_max_job_count_and_half_the_users_submit_limit() -> None:
    assert derive_cap(QueueLimits(1001, 10000)).max_queued == 1000
    assert derive_cap(QueueLimits(1001, 10000)).chunk == 1000
    assert derive_cap(QueueLimits(1001, 100000)).chunk == 1001  # MaxArraySize bounds an array
    assert derive_cap(QueueLimits(1001, 100000)).max_queued == 10000
    limited = derive_cap(QueueLimits(1001, 10000, max_submit_jobs=500))
    assert limited.max_queued == 248 and limited.chunk == 248
    assert derive_cap(QueueLimits(1001, 5, max_submit_jobs=1)).max_queued == 1


@pytest.mark.unit
def test_a_configured_cap_wins_but_never_passes_the_submit_limit() -> None:
    assert derive_cap(QueueLimits(1001, 10000), config_cap=50).chunk == 50
    capped = derive_cap(QueueLimits(1001, 10000, max_submit_jobs=20), config_cap=50)
    assert capped.max_queued == 18 and "MaxSubmitJobs" in capped.notes[0]
    assert derive_cap(QueueLimits(1001, 10000), config_array=7).chunk == 7
    assert derive_cap(QueueLimits(100, 10000), config_array=700).chunk == 100  # smaller wins


def _run_rows(run_id: str) -> list[tuple[str, str, str]]:
    """(job id, name, state) of every task of the run in the queue (squeue -r: one per task)."""
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%j|%T"], capture_output=True,
                         text=True).stdout
    rows = [tuple(line.split("|")) for line in out.splitlines() if line.count("|") == 2]
    return [r for r in rows if r[1].endswith(run_id)]  # type: ignore[misc]


@pytest.mark.slurm
def test_a_capped_run_queues_one_array_at_a_time_and_archives_every_folder(
        slurm_cluster: None, tmp_path: Path) -> None:
    folders = tiny_folders(tmp_path / "src", 7)
    cfg = load_config({"slurm.max_queued": 3, "slurm.max_array_size": 3, "archive.throttle": 2,
                       "slurm.archive.cpus": 1, "archive.retry_delay": 1,
                       "archive.task_minutes": 0})
    result = archive_folders(folders, str(tmp_path / "remote"), cfg, backend="slurm")
    run = result.run
    # Only the first array (3 tasks) and its chain job are queued; finalize comes at the end.
    assert len(result.job_ids["archive"]) == 1 and len(result.job_ids["chain"]) == 1
    assert "finalize" not in result.job_ids
    be = backend_for_run(run, cfg)
    peak_queued = peak_running = 0
    deadline = time.time() + 300
    while time.time() < deadline:
        rows = _run_rows(run.run_id)
        tasks = [r for r in rows if r[1].startswith("froster-archive-")]
        peak_queued = max(peak_queued, len(tasks))
        peak_running = max(peak_running, sum(1 for r in tasks if r[2] == "RUNNING"))
        if not rows and collect(run, be).finished:
            break
        time.sleep(0.3)
    st = collect(run, be)
    assert st.finished, st.to_json_obj()
    assert all(f["state"] == "done" for f in st.to_json_obj()["folders"])
    assert all(md5sum_check(f).returncode == 0 for f in folders)
    print(f"peak queued archive tasks {peak_queued} (cap 3), peak running {peak_running} "
          "(throttle 2)")
    assert peak_queued <= 3, peak_queued
    assert peak_running <= 2, peak_running
    jobs = run.jobs()
    assert [e["count"] for e in jobs["archive"]] == [3, 3, 1]
    assert len(jobs["chain"]) == 2 and len(jobs["finalize"]) == 1
    # The arrays ran one after another: no task of a later array started before every task
    # of the earlier one had finished (second resolution, so equal stamps are allowed).
    states = sorted(iter_task_states(run.run_dir), key=lambda s: s["index"])
    for k in (3, 6):
        assert max(s["finished_at"] for s in states[k - 3:k]) <= min(
            s["started_at"] for s in states[k:k + 3])


@pytest.mark.unit
def test_small_folders_share_a_batch_and_a_big_one_keeps_its_own() -> None:
    costs = [(0, 10.0), (1, 10.0), (2, 500.0), (3, 10.0), (4, 10.0), (5, 10.0)]
    assert pack(costs, 25.0) == [[2], [0, 1], [3, 4], [5]]  # a big one is queued at once
    assert pack(costs, 0) == [[i] for i in range(6)]  # 0: one folder per task, as before
    assert pack(costs, 1000.0, max_folders=4) == [[0, 1, 2, 3], [4, 5]]
    # spread: at least as many batches as the throttle's slots when there are folders enough
    tiny = [(i, 1.0) for i in range(100)]
    assert len(pack(tiny, 600.0, spread=8)) >= 8
    assert sorted(i for b in pack(tiny, 600.0, spread=8) for i in b) == list(range(100))
    # equal folders spread over the throttle fill its slots evenly: no batch of one left over
    uneven = [(i, 1.0 + 0.001 * (len(str(i + 1)) - 1)) for i in range(200)]  # 1-3 byte files
    assert [len(b) for b in pack(uneven, 600.0, spread=2)] == [101, 99]
    assert [len(b) for b in pack([(i, 1.0) for i in range(1000)], 600.0, spread=8)] == \
        [126] * 7 + [118]


@pytest.mark.unit
def test_batch_specs_round_trip_and_a_run_without_batches_is_one_folder_per_task(
        tmp_path: Path) -> None:
    assert spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8" and parse_spec("0-2,5,7-8") == [
        0, 1, 2, 5, 7, 8]
    assert batch_folders(tmp_path, 7) == [7]
    assert append_batches(tmp_path, [[0, 1, 2], [3]]) == 0
    assert append_batches(tmp_path, [[2]]) == 2  # a retry's batches come after
    assert [batch_folders(tmp_path, b) for b in range(3)] == [[0, 1, 2], [3], [2]]


@pytest.mark.slurm
def test_a_batch_with_one_failing_folder_fails_it_alone_and_retry_redoes_only_it(
        slurm_cluster: None, tmp_path: Path) -> None:
    folders = tiny_folders(tmp_path / "src", 5)
    bad = folders[2]
    write_file(bad + b"/Froster.archive.json", b"{}")  # not ours: its record step fails
    cfg = load_config({"archive.task_minutes": 60, "archive.throttle": 1,
                       "slurm.archive.cpus": 1, "archive.retry_delay": 1})
    result = archive_folders(folders, str(tmp_path / "remote"), cfg, backend="slurm")
    run = result.run
    assert batch_count(run.run_dir) == 1 and batch_folders(run.run_dir, 0) == list(range(5))
    st = _wait(run, cfg)
    by = {os.fsencode(f["folder"]): f for f in st["folders"]}
    assert by[bad]["state"] == "failed" and by[bad]["error"]
    assert all(by[f]["state"] == "done" for f in folders if f != bad)
    assert [e["count"] for e in run.jobs()["archive"]] == [1]  # one array task for all five
    attempts = {i: read_task_state(run.run_dir, i)["attempts"] for i in (0, 1, 3, 4)}
    assert attempts == {0: 1, 1: 1, 3: 1, 4: 1}
    os.unlink(bad + b"/Froster.archive.json")
    (run.run_dir / "summary.json").unlink()
    again = retry_run(run, cfg)
    assert again.run_id == run.run_id
    assert batch_folders(run.run_dir, 1) == [2]  # the retry's batch holds only the failed one
    st = _wait(run, cfg)
    assert all(f["state"] == "done" for f in st["folders"])
    # the others were not started again
    assert {i: read_task_state(run.run_dir, i)["attempts"] for i in attempts} == attempts
    assert [e["count"] for e in run.jobs()["archive"]] == [1, 1]
    assert all(md5sum_check(f).returncode == 0 for f in folders)


def _wait(run: Run, cfg: Config, timeout: float = 300) -> dict:
    be = backend_for_run(run, cfg)
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = collect(run, be)
        if st.finished:
            return st.to_json_obj()
        time.sleep(1)
    raise AssertionError(f"run {run.run_id} not finished: {collect(run, be).to_json_obj()}")


@pytest.mark.unit
def test_queue_limits_read_scontrol_and_the_smallest_sacctmgr_limit() -> None:
    answers = {
        "scontrol": "MaxArraySize            = 2001\nMaxJobCount             = 50000\n",
        "assoc": "|40|normal,long\n300|||\n",
        "qos": "normal|200|\nlong|||\nother|5|1\n",
    }

    def runner(cmd, **_kw):  # noqa: ANN001, ANN003, ANN202
        key = "scontrol" if cmd[0] == "scontrol" else cmd[3]
        return subprocess.CompletedProcess(cmd, 0, answers[key], "")

    limits = SlurmClient(runner=runner).queue_limits(user="alice")
    assert (limits.max_array_size, limits.max_job_count) == (2001, 50000)
    assert (limits.max_submit_jobs, limits.max_jobs) == (200, 40)  # QOS "other" is not hers
    assert derive_cap(limits).max_queued == 98  # half of 200, less chain and finalize


@pytest.mark.unit
def test_without_accounting_the_limits_are_the_cluster_ones() -> None:
    def runner(cmd, **_kw):  # noqa: ANN001, ANN003, ANN202
        if cmd[0] == "scontrol":
            return subprocess.CompletedProcess(cmd, 0, "MaxJobCount = 10000\n", "")
        return subprocess.CompletedProcess(cmd, 1, "", "Only 'accounting_storage/slurmdbd'")

    limits = SlurmClient(runner=runner).queue_limits(user="alice")
    assert limits.max_submit_jobs is None and limits.max_array_size == 1001
    assert "sacctmgr" in limits.notes[0]
    assert derive_cap(limits).max_queued == 1000
