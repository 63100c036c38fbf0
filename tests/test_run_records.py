"""The run directory as one typed contract (run/rundir.py, run/taskstate.py,
restore/restorestate.py): every path a property of the run or its task, run.toml and
state.json as typed records with their states as enumerations, and a run written by an older
version still readable."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import tomli_w

from froster_slurm.errors import DataError
from froster_slurm.jobs.finalize_stage import finalize
from froster_slurm.restore.restorestate import ACTIVE, RestorePhase, read_state
from froster_slurm.run.rundir import RUN_SCHEMA, Run, RunKind, RunSettings, crawl_dir
from froster_slurm.run.taskstate import (
    ErrorKind,
    TaskState,
    TaskStatus,
    iter_tasks,
    load_task,
    read_task_state,
    reset_attempts,
    write_task_state,
)
from froster_slurm.status.collect import collect, folder_rows
from froster_slurm.submit.stages import run_path_block
from froster_slurm.util.paths import write_folder_list

# A run.toml and a state.json as an older version wrote them: no schema, backend, catalog or
# python in run.toml; none of the counters added later in state.json.
OLD_RUN_TOML = {"run_id": "20240101-000000-abcdef", "kind": "archive",
                "created": "2024-01-01T00:00:00Z", "user": "alice", "host": "login1",
                "version": "0.1.0", "archive": {"remote": "/dest", "storage_class": "STANDARD"}}
OLD_STATE = {"index": 0, "folder": "/data/a", "state": "done", "step": "done",
             "steps_done": ["inventory", "upload"], "attempts": 1, "failures": 0,
             "error": None, "bytes_total": 10, "bytes_done": 10, "files": 2,
             "destination": "/dest/froster/data/a", "updated_at": "2024-01-01T00:05:00Z",
             "started_at": "2024-01-01T00:01:00Z", "finished_at": "2024-01-01T00:05:00Z"}


def _old_run(tmp_path: Path) -> Run:
    run = Run(tmp_path / OLD_RUN_TOML["run_id"])
    run.run_dir.mkdir()
    run.settings_path.write_text(tomli_w.dumps(OLD_RUN_TOML))
    write_folder_list(run.folders_path, [b"/data/a", b"/data/b\xff"])
    run.task(0).dir.mkdir(parents=True)
    run.task(0).state_path.write_text(json.dumps(OLD_STATE))
    return run


def test_task_state_round_trips_and_keeps_unknown_keys() -> None:
    state = TaskState(3, "/data/caf\udce9", TaskStatus.RETRYING, step="upload",
                      steps_done=["inventory"], failures=2, max_attempts=5,
                      error="timeout", error_kind=ErrorKind.TRANSIENT, retry_after=1.5e9,
                      slot_start_mark=[1, 2, 3], extra={"from_a_newer_version": {"x": 1}})
    data = json.loads(json.dumps(state.to_json()))
    assert data["state"] == "retrying" and data["error_kind"] == "transient"
    assert data["from_a_newer_version"] == {"x": 1}
    assert TaskState.from_json(data) == state


def test_an_old_state_file_reads_with_defaults(tmp_path: Path) -> None:
    run = _old_run(tmp_path)
    task = load_task(run.run_dir, 0)
    assert task.state is TaskStatus.DONE and task.files == 2
    assert (task.verify_failures, task.idle_slots, task.stopped_by, task.retry_after) == \
        (0, 0, None, None)
    assert read_task_state(run.run_dir, 0)["source_changes"] == 0
    # the task without a state file is pending, with its folder from the folder list
    tasks = list(iter_tasks(run.run_dir))
    assert [t.state for t in tasks] == [TaskStatus.DONE, TaskStatus.PENDING]
    assert os.fsencode(tasks[1].folder) == b"/data/b\xff"


def test_an_unknown_state_is_refused_with_the_file_named(tmp_path: Path) -> None:
    run = _old_run(tmp_path)
    run.task(0).state_path.write_text(json.dumps(OLD_STATE | {"state": "paused"}))
    with pytest.raises(DataError, match=r"state\.json.*'paused'.*pending, running"):
        load_task(run.run_dir, 0)
    before = run.task(0).state_path.read_bytes()
    with pytest.raises(DataError, match="paused"):
        write_task_state(run.run_dir, 0, OLD_STATE | {"state": "paused"})
    assert run.task(0).state_path.read_bytes() == before  # nothing unknown reaches the file
    with pytest.raises(DataError, match="'fatal'"):
        TaskState.from_json({"index": 1, "error_kind": "fatal"})


def test_reset_attempts_goes_through_the_record(tmp_path: Path) -> None:
    run = _old_run(tmp_path)
    write_task_state(run.run_dir, 1, TaskState(1, "/data/b", TaskStatus.FAILED, failures=5,
                                               error="boom", error_kind=ErrorKind.PERMANENT))
    reset_attempts(run.run_dir, 1)
    reset_attempts(run.run_dir, 0)  # done: left alone
    t1, t0 = load_task(run.run_dir, 1), load_task(run.run_dir, 0)
    assert (t1.state, t1.failures, t1.error, t1.error_kind) == (TaskStatus.PENDING, 0, None, None)
    assert t0.state is TaskStatus.DONE


def test_run_settings_round_trip_and_schema() -> None:
    s = RunSettings("r1", RunKind.PIPELINE, "2026-01-01T00:00:00Z", backend="local",
                    schema=RUN_SCHEMA, archive={"remote": "s3:b"}, crawl={"shards": 2},
                    extra={"future_table": {"a": 1}})
    data = s.to_toml()
    assert data["kind"] == "pipeline" and data["schema"] == RUN_SCHEMA
    assert RunSettings.from_toml(data) == s
    with pytest.raises(DataError, match=r"run\.toml.*'backup'.*archive, crawl"):
        RunSettings.from_toml({"run_id": "r", "kind": "backup"})
    with pytest.raises(DataError, match=r"\[archive\] is not a table"):
        RunSettings.from_toml({"run_id": "r", "archive": "s3:b"})


def test_an_old_run_opens_shows_status_and_keeps_its_paths(tmp_path: Path) -> None:
    run = _old_run(tmp_path)
    s = run.settings
    assert (s.kind, s.schema, s.backend, s.catalog, s.python) == \
        (RunKind.ARCHIVE, 0, "", "", "python3")
    assert s.archive == OLD_RUN_TOML["archive"] and crawl_dir(run) == run.run_dir / "crawl"
    st = collect(run, None)  # no queue to ask: the state files alone answer
    assert [f["state"] for f in st.folders] == ["done", "pending"]
    assert st.totals["done"] == 1 and st.kind == "archive" and not st.slurm_queried


def test_every_task_path_is_a_property_and_bash_gets_the_pattern(tmp_path: Path) -> None:
    run = Run(tmp_path / "run with 'quote' $x")
    t = run.task(7)
    assert t.dir == run.tasks_dir / "7" and t.state_path.parent == t.dir
    assert {p.parent for p in (t.work, t.logs, t.record_path, t.status_path, t.lock_path)} \
        == {t.dir} and t.marker_path("upload").parent == t.steps_dir
    use = 'froster_use_task() { F=${FROSTER_TASK_STATUS_FILE//@INDEX@/$1}; }'
    block = run_path_block(run, use)
    assert "readonly FROSTER_TASK_STATUS_FILE=" in block
    assert run_path_block(run, "# FROSTER_TASK_STATUS_FILE only in a comment\necho hi") == ""
    show = 'printf %s "${FROSTER_TASK_STATUS_FILE//@INDEX@/7}"'
    out = subprocess.run(["bash", "-c", block + show], capture_output=True, text=True,
                         check=True).stdout
    assert out == str(t.status_path)


def test_restore_phases_are_an_enumeration(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.restore_state_path.write_text(json.dumps({"phase": "verified", "folder": "/a"}))
    assert read_state(tmp_path)["phase"] is RestorePhase.VERIFIED
    # every phase before done/failed is one a new restore of the target resumes
    assert {RestorePhase.DOWNLOADED, RestorePhase.VERIFIED, RestorePhase.PLACED} <= ACTIVE
    assert not {RestorePhase.DONE, RestorePhase.FAILED} & ACTIVE
    run.restore_state_path.write_text(json.dumps({"phase": "placing"}))
    with pytest.raises(DataError, match=r"restore\.json.*'placing'"):
        read_state(tmp_path)


def test_an_old_run_finalizes_with_the_rows_status_shows(tmp_path: Path) -> None:
    run = _old_run(tmp_path)
    summary = finalize(run)
    # one function builds both: folder 1 has no state file and no job is left to start it
    assert [r["state"] for r in summary["folders"]] == ["done", "stopped"]
    assert [r.state for r in folder_rows(run, over=True)] == ["done", "stopped"]
    assert [r.state for r in folder_rows(run, over=False)] == ["done", "pending"]
    assert summary["kind"] == "archive" and summary["created"] == OLD_RUN_TOML["created"]
    assert json.loads(run.summary_path.read_text())["totals"]["done"] == 1
    assert run.summary_html_path.is_file()
