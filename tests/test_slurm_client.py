"""The Slurm client: job-id parsing, dependency strings, error paths with a fake sbatch."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from froster_slurm.errors import SlurmError
from froster_slurm.scheduler.slurm import (
    SlurmClient,
    _parse_kv,
    dependency,
    parse_job_id,
    scrubbed_env,
)


@pytest.mark.parametrize("stdout,expected", [
    ("123\n", "123"),
    ("123;cluster\n", "123"),
    ("Submitted to site queue; charging account lab\n4567\n", "4567"),
    ("4567;hpc2\nReminder: scratch is purged after 30 days\n", "4567"),
    ("  890  \n", "890"),
])
def test_parse_job_id(stdout: str, expected: str) -> None:
    assert parse_job_id(stdout) == expected


def test_parse_job_id_without_an_id_is_an_error() -> None:
    with pytest.raises(SlurmError, match="no job id"):
        parse_job_id("sbatch: queued\n")


def test_dependency_strings() -> None:
    assert dependency(afterok=["1"]) == "afterok:1"
    assert dependency(afterany=["1", "2"], singleton=True) == "afterany:1:2,singleton"
    assert dependency(afterok=["3"], afterany=["4"]) == "afterok:3,afterany:4"
    assert dependency() == ""


def test_scrubbed_env_drops_job_variables_but_keeps_slurm_conf() -> None:
    env = scrubbed_env({"SLURM_ARRAY_TASK_ID": "3", "SBATCH_ARRAY_INX": "1", "SRUN_X": "1",
                        "SLURM_CONF": "/etc/slurm/slurm.conf", "HOME": "/root"})
    assert env == {"SLURM_CONF": "/etc/slurm/slurm.conf", "HOME": "/root"}


def test_parse_scontrol_line_with_spaces_in_values() -> None:
    kv = _parse_kv("JobId=5 JobName=a b UserId=root(0) Comment=archive 1/2 upload 3% "
                   "JobState=RUNNING")
    assert kv["JobName"] == "a b"
    assert kv["Comment"] == "archive 1/2 upload 3%"
    assert kv["JobState"] == "RUNNING"


def fake_tool(bindir: Path, name: str, body: str) -> None:
    p = bindir / name
    p.write_text("#!/bin/bash\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)


def test_sbatch_failure_raises_typed_error(tmp_path: Path) -> None:
    fake_tool(tmp_path, "sbatch",
              'echo "sbatch: error: Batch job submission failed: Invalid partition" >&2\n'
              "exit 1\n")
    client = SlurmClient(env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    with pytest.raises(SlurmError) as e:
        client.submit(tmp_path / "job.sbatch", dependency="afterok:1")
    err = e.value
    assert err.returncode == 1
    assert err.cmd[:3] == ["sbatch", "--parsable", "--dependency=afterok:1"]
    assert "Invalid partition" in err.stderr and "Invalid partition" in str(err)


def test_sbatch_with_site_noise_and_missing_tools(tmp_path: Path) -> None:
    fake_tool(tmp_path, "sbatch", 'echo "Welcome to HPC"\necho "77;c1"\n')
    client = SlurmClient(env={**os.environ, "PATH": str(tmp_path)})
    assert client.submit(tmp_path / "job.sbatch") == "77"
    with pytest.raises(SlurmError, match="scancel: not found"):
        SlurmClient(runner=_missing).cancel(["1"])


def _missing(cmd, **kw):  # noqa: ANN001, ANN003, ANN202 - a runner that finds nothing
    raise FileNotFoundError(2, "No such file", cmd[0])


def test_squeue_with_only_finished_jobs_is_empty(tmp_path: Path) -> None:
    fake_tool(tmp_path, "squeue", 'echo "slurm_load_jobs error: Invalid job id specified" >&2\n'
                                  "exit 1\n")
    client = SlurmClient(env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert client.queue(["12"]) == {}


def test_job_comments_address_the_array_task_not_the_array(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A crawl shard's Comment goes to ARRAY_TASK: the bare job id would hit every shard."""
    import froster_slurm.scheduler.injob as injob

    seen: list[str] = []
    monkeypatch.setattr(injob.SlurmClient, "available", staticmethod(lambda: True))
    monkeypatch.setattr(injob.SlurmClient, "set_comment", lambda self, job, text: seen.append(job))
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "40")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.delenv("FROSTER_BACKEND", raising=False)
    injob.set_status("crawl shard 1")
    assert seen == ["40_1"]
