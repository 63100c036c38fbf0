"""The job runtime (jobs/runtime.py) and the in-job scheduler helpers (scheduler/injob.py):
back-off and its one cap, attempt counting, stop signals, the requeue-after file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from froster_slurm.errors import EXIT_TEMPFAIL
from froster_slurm.jobs.runtime import RetryPolicy, requeue, retry_delay
from froster_slurm.scheduler import injob
from froster_slurm.scheduler.slurm import COMMENT_MAX, clip_comment


def test_back_off_doubles_from_retry_delay_up_to_the_one_cap() -> None:
    policy = RetryPolicy(max_attempts=10, retry_delay=60, max_retry_delay=3600)
    assert [policy.delay(n) for n in range(1, 10)] == [60, 120, 240, 480, 960, 1920, 3600,
                                                      3600, 3600]
    assert policy.delay(0) == 0
    assert RetryPolicy(retry_delay=60, max_retry_delay=100).delay(10**6) == 100  # no 2**10**6
    assert RetryPolicy(retry_delay=0, max_retry_delay=3600).delay(5) == 0
    assert RetryPolicy(retry_delay=60, max_retry_delay=0).delay(1) == 0


def test_attempts_are_counted_until_max_attempts_is_final() -> None:
    policy = RetryPolicy(max_attempts=3, retry_delay=10, max_retry_delay=3600)
    first = policy.failed(0)
    assert (first.failures, first.delay, first.final) == (1, 10, False)
    second = policy.failed(first.failures)
    assert (second.failures, second.delay, second.final) == (2, 20, False)
    third = policy.failed(second.failures)
    assert (third.failures, third.final) == (3, True)
    assert RetryPolicy(max_attempts=1).failed(0).final  # one attempt: the first failure is final


def test_policy_reads_the_run_settings(tmp_path: Path) -> None:
    from froster_slurm.archive.settings import ArchiveSettings

    s = ArchiveSettings(run_id="r", run_dir=tmp_path, remote="x:", max_attempts=4, retry_delay=7,
                        max_retry_delay=50)
    assert RetryPolicy.of(s) == RetryPolicy(4, 7, 50)


_SIGNALS = """
import os, signal, sys, time
from froster_slurm.jobs.runtime import Stopped, stop_signals
sig = getattr(signal, sys.argv[1])
try:
    with stop_signals():
        os.kill(os.getpid(), sig)
        time.sleep(5)
        print("not stopped")
except Stopped as e:
    print(f"stopped by {e} time_limit={e.by_time_limit}")
    os.kill(os.getpid(), signal.SIGTERM)  # blocked now: writing the outcome is never cut short
    os.kill(os.getpid(), signal.SIGUSR1)
    print("still here")
"""


@pytest.mark.parametrize("name, time_limit", [("SIGUSR1", True), ("SIGTERM", False),
                                              ("SIGINT", False)])
def test_a_stop_signal_raises_stopped_once_then_signals_are_blocked(name: str,
                                                                     time_limit: bool) -> None:
    proc = subprocess.run([sys.executable, "-c", _SIGNALS, name], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"stopped by {name} time_limit={time_limit}",
                                        "still here"]


_SECOND = """
import os, signal, time
from froster_slurm.jobs.runtime import Stopped, stop_signals
try:
    with stop_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Stopped:
            os.kill(os.getpid(), signal.SIGUSR1)  # a second signal while cleaning up: ignored
            time.sleep(0.2)
            print("cleaned up")
            raise
except Stopped as e:
    print(f"stopped by {e}")
"""


def test_a_second_stop_signal_does_not_interrupt_the_clean_up() -> None:
    proc = subprocess.run([sys.executable, "-c", _SECOND], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["cleaned up", "stopped by SIGTERM"]


def test_requeue_after_file_says_when_and_retry_delay_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "tasks" / "3" / "requeue-after"
    assert retry_delay(path) == 0  # never asked: due now
    assert requeue(path, 30) == EXIT_TEMPFAIL
    assert 29 <= retry_delay(path) <= 30
    assert injob.requeue_delay(path, now=time.time() + 100) == 0  # overdue is due
    requeue(path, 0)
    assert retry_delay(path) == 0
    path.write_text("not a time\n")
    assert retry_delay(path) == 0
    assert not [p for p in path.parent.iterdir() if p.name != "requeue-after"]  # no tmp left


def test_in_job_identity_cpus_memory_and_backend() -> None:
    array = {"SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "1",
             "SLURM_CPUS_PER_TASK": "4", "SLURM_MEM_PER_NODE": "2048"}
    assert injob.job_ref(array) == "40_1"  # never the bare id: it names the whole array
    assert injob.job_ref({"SLURM_JOB_ID": "7"}) == "7"
    assert injob.job_ref({}) is None
    assert (injob.cpus(array), injob.memory_mb(array)) == (4, 2048)
    assert (injob.cpus({}), injob.memory_mb({"SLURM_MEM_PER_NODE": "0"})) == (None, None)
    assert injob.backend(array) == "slurm"
    assert injob.backend({**array, "FROSTER_BACKEND": "local"}) == "local"
    assert injob.backend({}) is None


def test_one_comment_rule_one_line_at_most_comment_max_bytes(tmp_path: Path) -> None:
    text = clip_comment("a\nb\t c " + "\u00e9" * 2000)
    assert text.startswith("a b c ") and text.endswith("...")
    assert len(text.encode()) <= COMMENT_MAX
    assert clip_comment("caf" + b"\xe9".decode("utf-8", "surrogateescape")) == "caf\\xe9"
    status = tmp_path / "tasks" / "0" / "comment"
    shown = injob.set_status("restore: check 2\nnext", status, env={"FROSTER_BACKEND": "local",
                                                                 "SLURM_JOB_ID": "local3"})
    assert shown == "restore: check 2 next" and status.read_text() == shown + "\n"
