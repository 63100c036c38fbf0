"""Round trips through the REAL local Slurm cluster (make test starts it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from slurm_helpers import wait_gone

from froster_slurm.scheduler.slurm import SlurmClient, dependency

pytestmark = pytest.mark.slurm




def test_submit_wait_and_read_back_the_comment(slurm_cluster: None, tmp_path: Path) -> None:
    """The job sets its own Comment with scontrol; we read it back from squeue and scontrol."""
    out = tmp_path / "out.txt"
    script = tmp_path / "job.sbatch"
    script.write_text(f"""#!/bin/bash
#SBATCH --job-name=froster-test-comment
#SBATCH --output={tmp_path}/slurm-%j.out
scontrol update job="$SLURM_JOB_ID" Comment="step 2/3 upload 41%"
echo ran > {out}
sleep 20
""")
    client = SlurmClient()
    job = client.submit(script)
    deadline = time.time() + 30
    comment = ""
    while time.time() < deadline and comment != "step 2/3 upload 41%":
        comment = client.queue([job]).get(job, None).comment if job in client.queue([job]) else ""
        time.sleep(0.3)
    assert comment == "step 2/3 upload 41%"
    assert client.show_job(job)["Comment"] == "step 2/3 upload 41%"
    client.set_comment(job, "set from the manager")
    assert client.queue([job])[job].comment == "set from the manager"
    client.cancel([job])
    wait_gone(job, 60)
    assert out.read_text() == "ran\n"


def test_begin_holds_the_job_and_jobs_named_finds_it(slurm_cluster: None, tmp_path: Path
                                                      ) -> None:
    """``begin`` is sbatch's --begin (the restore job's first check waits for the thaw), and
    ``jobs_named`` is the one-job-per-target check: it sees the held job by its name."""
    from froster_slurm.scheduler.backends import SlurmBackend

    script = tmp_path / "held.sbatch"
    script.write_text(f"#!/bin/bash\n#SBATCH --job-name=froster-test-begin-{tmp_path.name}\n"
                      "#SBATCH --output=/dev/null\ntrue\n")
    be = SlurmBackend()
    job = be.submit(script, dependency=dependency(singleton=True), begin=600)
    try:
        found = be.named(f"froster-test-begin-{tmp_path.name}")
        assert [(j.job_id, j.state) for j in found] == [(job, "PENDING")]
        assert found[0].reason == "BeginTime"
        assert be.named("froster-test-no-such-job") == []
    finally:
        SlurmClient().cancel([job])
    wait_gone(job, 60)
    assert be.named(f"froster-test-begin-{tmp_path.name}") == []


def test_dependency_chain_and_array(slurm_cluster: None, tmp_path: Path) -> None:
    """afterok + an array with a throttle: the second job runs only after every task."""
    log = tmp_path / "order.log"
    first = tmp_path / "a.sbatch"
    first.write_text(f"""#!/bin/bash
#SBATCH --array=0-2%2
#SBATCH --output=/dev/null
echo "task $SLURM_ARRAY_TASK_ID" >> {log}
""")
    second = tmp_path / "b.sbatch"
    second.write_text(f"#!/bin/bash\n#SBATCH --output=/dev/null\necho done >> {log}\n")
    client = SlurmClient()
    a = client.submit(first)
    b = client.submit(second, dependency=dependency(afterok=[a]))
    wait_gone(b, 90)
    lines = log.read_text().splitlines()
    assert sorted(lines[:3]) == ["task 0", "task 1", "task 2"]
    assert lines[3:] == ["done"]
    assert client.max_array_size() >= 1000
