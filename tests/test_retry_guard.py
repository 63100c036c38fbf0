"""``retry`` of a run that is still running refuses before anything is queued
(``submit/runguard.py``): a second chain beside the first would hold neither the throttle nor
the queue cap and would queue the first chain's pending folders twice.  A run that has ended
is retried as before: only its folders that are not done, in new batches.

The unit tests drive the real submission code against a fake backend (its queue says what
is running); the last test runs a chained run on the REAL local Slurm cluster and retries it
while its chain is alive, then after it ended.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest
from archive_helpers import md5sum_check, tiny_folders, write_file
from fake_backend import FakeBackend

from froster_slurm.config import Config, load_config, save_snapshot
from froster_slurm.errors import EXIT_TEMPFAIL, BusyError
from froster_slurm.run.batches import batch_count, batch_folders
from froster_slurm.run.rundir import Run, archive_settings, create_run
from froster_slurm.run.taskstate import (
    iter_task_states,
    new_state,
    read_task_state,
    write_task_state,
)
from froster_slurm.status.collect import collect
from froster_slurm.submit import pipeline
from froster_slurm.submit.pipeline import (
    SubmitResult,
    archive_folders,
    backend_for_run,
    dispatch_archive,
    retry_run,
)

FOLDERS = 5
# One folder per task, two tasks per array: five folders are a chain of three arrays.
CHAINED = {"slurm.max_queued": 2, "slurm.max_array_size": 2, "archive.task_minutes": 0,
           "archive.throttle": 1}


def _submitted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> tuple[Run, Config, FakeBackend]:
    """A run of five folders submitted through the fake: its first array and chain job are
    queued, two more arrays wait in the chain's plan."""
    cfg = load_config({"state_dir": str(tmp_path / "state"), **CHAINED})
    folders = [os.fsencode(tmp_path / f"src/f{i}") for i in range(FOLDERS)]
    run = create_run(cfg, "archive", folders=folders,
                     archive=archive_settings(cfg, str(tmp_path / "remote")), backend="slurm")
    save_snapshot(cfg, run.config_path)
    fake = FakeBackend()
    dispatch_archive(run, cfg, fake, SubmitResult(run))
    assert fake.submitted == ["archive-000.sbatch", "chain-000.sbatch"]
    monkeypatch.setattr(pipeline, "backend_for_run", lambda _run, _cfg: fake)
    return run, cfg, fake


def _set_states(run: Run, states: dict[int, str]) -> None:
    for i, state in states.items():
        s = new_state(i, run.folders()[i])
        s.update(state=state, attempts=1, failures=3 if state == "failed" else 0)
        write_task_state(run.run_dir, i, s)


def _snapshot(run: Run) -> tuple:
    """Everything a submission would change."""
    return (run.jobs_path.read_bytes(), run.batches_path.read_bytes(),
            sorted(p.name for p in run.scripts_dir.iterdir()))


@pytest.mark.unit
def test_retry_while_the_chain_runs_refuses_in_one_line_and_queues_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, cfg, fake = _submitted_run(tmp_path, monkeypatch)
    _set_states(run, {0: "done", 1: "failed", 2: "running"})
    fake.state.update({"100": "RUNNING", "101": "PENDING"})  # the array, its chain job
    before = _snapshot(run)
    with pytest.raises(BusyError) as e:
        retry_run(run, cfg)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"run {run.run_id} is still running: 3 folders queued/running;")
    assert "scancel 100 101" in msg
    assert e.value.exit_code == EXIT_TEMPFAIL
    assert fake.submitted == ["archive-000.sbatch", "chain-000.sbatch"]
    assert _snapshot(run) == before
    assert read_task_state(run.run_dir, 1)["failures"] == 3  # not reset either
    # A dry run is refused too: it would show a submission that cannot be made.
    with pytest.raises(BusyError):
        retry_run(run, cfg, dry_run=True)
    # Nor does a retry into a new run (--to) start while the old one runs.
    with pytest.raises(BusyError):
        retry_run(run, cfg, remote=str(tmp_path / "elsewhere"))
    assert fake.submitted == ["archive-000.sbatch", "chain-000.sbatch"]


@pytest.mark.unit
def test_between_two_arrays_the_pending_chain_job_keeps_the_run_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, cfg, fake = _submitted_run(tmp_path, monkeypatch)
    _set_states(run, {0: "done", 1: "failed"})
    fake.state.update({"100": "COMPLETED", "101": "PENDING"})  # array over, next not queued
    with pytest.raises(BusyError, match=r"3 folders queued/running.*scancel 101`"):
        retry_run(run, cfg)


@pytest.mark.unit
def test_a_queue_that_cannot_be_asked_is_no_go_ahead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, cfg, fake = _submitted_run(tmp_path, monkeypatch)
    _set_states(run, {i: "failed" for i in range(FOLDERS)})
    fake.down = True
    before = _snapshot(run)
    with pytest.raises(BusyError, match="cannot tell whether its jobs still run"):
        retry_run(run, cfg)
    assert _snapshot(run) == before


@pytest.mark.unit
def test_a_second_command_submitting_into_the_run_is_refused_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, cfg, fake = _submitted_run(tmp_path, monkeypatch)
    _set_states(run, {i: "failed" for i in range(FOLDERS)})
    fake.state.clear()
    with open(run.submit_lock_path, "a") as other:  # what another retry would hold
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(BusyError, match="another command is submitting into it"):
            retry_run(run, cfg)
    assert fake.submitted == ["archive-000.sbatch", "chain-000.sbatch"]


@pytest.mark.unit
def test_retry_of_an_ended_run_resubmits_only_the_folders_not_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, cfg, fake = _submitted_run(tmp_path, monkeypatch)
    monkeypatch.setattr(pipeline.preflight, "before_archive", lambda *a, **k: None)
    _set_states(run, {0: "done", 1: "failed", 2: "done", 3: "failed", 4: "done"})
    # Every job ended; one that can never run (its dependency failed) keeps nothing going.
    fake.state = {j: "COMPLETED" for j in fake.state}
    fake.state["101"], fake.reason["101"] = "PENDING", "DependencyNeverSatisfied"
    first = batch_count(run.run_dir)
    again = retry_run(run, cfg)
    assert again.run_id == run.run_id
    assert [batch_folders(run.run_dir, b) for b in range(first, batch_count(run.run_dir))] \
        == [[1], [3]]
    # batches 5 and 6 fall in two arrays (task ids stay below the array size of 2): the
    # retry's own chain queues the first and a chain job behind it, as a first submission does
    assert fake.submitted[2:] == ["archive-003.sbatch", "chain-001.sbatch"]
    failed = read_task_state(run.run_dir, 1)
    assert (failed["state"], failed["failures"]) == ("pending", 0)  # counters start over


# --- the real local Slurm cluster ---------------------------------------------------------

def _running_tasks(run_id: str) -> int:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-o", "%j"],
                         capture_output=True, text=True).stdout.split()
    return sum(1 for name in out if name == f"froster-archive-{run_id}")


def _wait(run: Run, cfg: Config, peak: list[int], timeout: float = 300) -> dict:
    """Poll until finalize has written the summary; ``peak[0]``: most archive tasks of the
    run seen running at once."""
    be = backend_for_run(run, cfg)
    deadline = time.time() + timeout
    while time.time() < deadline:
        peak[0] = max(peak[0], _running_tasks(run.run_id))
        st = collect(run, be)
        if st.finished:
            return st.to_json_obj()
        time.sleep(0.3)
    raise AssertionError(f"run {run.run_id} not finished: {collect(run, be).to_json_obj()}")


def _never_overlapping(states: list[dict]) -> bool:
    """Throttle 1: no folder started before the one before it had finished (second stamps,
    so equal ones are allowed)."""
    spans = sorted((s["started_at"], s["finished_at"]) for s in states)
    return all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


@pytest.mark.slurm
def test_retry_during_a_chained_run_on_slurm_queues_no_folder_twice(
        slurm_cluster: None, tmp_path: Path) -> None:
    folders = tiny_folders(tmp_path / "src", 6)
    bad = folders[1]
    write_file(bad + b"/Froster.archive.json", b"{}")  # not ours: it fails for good
    cfg = load_config({**CHAINED, "slurm.archive.cpus": 1, "archive.retry_delay": 1})
    result = archive_folders(folders, str(tmp_path / "remote"), cfg, backend="slurm")
    run = result.run
    assert "chain" in result.job_ids  # three arrays: the chain is alive
    jobs_before = run.jobs_path.read_bytes()
    with pytest.raises(BusyError, match=f"run {run.run_id} is still running"):
        retry_run(run, cfg)
    assert run.jobs_path.read_bytes() == jobs_before  # nothing was queued by the retry
    peak = [0]
    st = _wait(run, cfg, peak)
    by = {os.fsencode(f["folder"]): f["state"] for f in st["folders"]}
    assert by[bad] == "failed" and all(by[f] == "done" for f in folders if f != bad)
    jobs = run.jobs()
    # every folder was queued once: one batch each, three arrays, one chain of them
    assert [batch_folders(run.run_dir, b) for b in range(batch_count(run.run_dir))] == [
        [i] for i in range(6)]
    assert [e["count"] for e in jobs["archive"]] == [2, 2, 2]
    assert len(jobs["finalize"]) == 1
    states = list(iter_task_states(run.run_dir))
    assert all(s["attempts"] == 1 for s in states if s["index"] != 1)
    assert _never_overlapping(states) and peak[0] <= 1, peak

    # Once it ended, retry works as always: only the failed folder, in a batch of its own.
    os.unlink(bad + b"/Froster.archive.json")
    run.summary_path.unlink()  # so the wait below waits for the retry's finalize
    again = retry_run(run, cfg)
    assert again.run_id == run.run_id and batch_folders(run.run_dir, 6) == [1]
    st = _wait(run, cfg, peak)
    assert all(f["state"] == "done" for f in st["folders"])
    assert [e["count"] for e in run.jobs()["archive"]] == [2, 2, 2, 1]
    assert {s["index"]: s["attempts"] for s in iter_task_states(run.run_dir)
            if s["index"] != 1} == {i: 1 for i in (0, 2, 3, 4, 5)}
    assert _never_overlapping(list(iter_task_states(run.run_dir))) and peak[0] <= 1, peak
    assert all(md5sum_check(f).returncode == 0 for f in folders)


@pytest.mark.unit
@pytest.mark.parametrize("kind,live,says", [
    ("pipeline", True, "is still running: its crawl and rank have not chosen the folders yet"),
    ("pipeline", False, "chose no folders to archive: its crawl or rank ended first"),
    ("crawl", False, "is a crawl run: it archives nothing to retry"),
])
def test_retry_of_a_run_without_its_folders_says_why_instead_of_every_folder_archived(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, live: bool,
        says: str) -> None:
    cfg = load_config({"state_dir": str(tmp_path / "state")})
    run = create_run(cfg, kind, backend="slurm")
    save_snapshot(cfg, run.config_path)
    run.record_jobs("crawl", ["41"])
    fake = FakeBackend()
    fake.state["41"] = "RUNNING" if live else ""
    monkeypatch.setattr(pipeline, "backend_for_run", lambda _run, _cfg: fake)
    with pytest.raises(Exception, match=says) as got:
        retry_run(run, cfg)
    assert isinstance(got.value, BusyError) == live
    assert "every folder is archived" not in str(got.value)
    assert fake.submitted == []
