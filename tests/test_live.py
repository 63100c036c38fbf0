"""Live progress: rates and ETAs, the ``status --watch`` frame, records for pipes, and the
real command on a real terminal (tmux), redrawn in place."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from archive_helpers import make_run

from froster_slurm.run.taskstate import new_state, write_task_state
from froster_slurm.status.collect import RunStatus
from froster_slurm.status.live import Screen, Tracker, changed_records, frame, retry_text, watch
from froster_slurm.status.progress import RateMeter, TermLine, format_eta, format_rate

MiB = 1024**2


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_rate_is_measured_over_a_window_and_restarts_when_the_count_goes_back() -> None:
    clock = Clock()
    m = RateMeter(window=10, clock=clock)
    m.add(0)
    assert m.rate() is None  # one sample claims nothing
    for _ in range(20):
        clock.t += 1
        m.add(m._samples[-1][1] + 10 * MiB)
    assert m.rate() == pytest.approx(10 * MiB)
    assert m.eta(m._samples[-1][1] + 100 * MiB) == pytest.approx(10)
    clock.t += 1
    m.add(5)  # a restart: the old samples do not make a negative rate
    assert m.rate() is None
    assert format_rate(10 * MiB) == "10.0 MiB/s" and format_rate(None) == "-"
    assert format_rate(2_500_000, "rows") == "2.50M rows/s"
    assert [format_eta(s) for s in (None, 45, 725, 11520, 190000)] == [
        "-", "45s", "12m05s", "3h12m", "2d04h"]


def test_term_line_writes_nothing_when_not_a_terminal() -> None:
    s = io.StringIO()
    line = TermLine("crawl", "entries", stream=s)
    line.update(10)
    line.close()
    assert s.getvalue() == ""
    clock = Clock()
    line = TermLine("crawl", "entries", stream=s, force=True, clock=clock, every=0)
    clock.t += 2
    line.update(1000)
    clock.t += 2
    line.update(3000)
    line.close()
    assert "\r\x1b[Kcrawl: 3,000 entries, 1.0k entries/s" in s.getvalue()
    assert s.getvalue().endswith("\r\x1b[K")


def folder(i: int, state: str, done: int = 0, total: int = 0, **kw) -> dict:
    return {"index": i, "folder": f"/data/f{i}", "state": state, "step": kw.pop("step", None),
            "attempts": 1, "failures": kw.pop("failures", 0), "max_attempts": 5,
            "bytes_total": total, "bytes_done": done, "error": kw.pop("error", None),
            "destination": None, "retry_after": kw.pop("retry_after", None),
            "slurm_job": kw.pop("slurm_job", None)}


def status(folders: list[dict], jobs: dict | None = None) -> RunStatus:
    st = RunStatus("r1", "archive", jobs=jobs or {}, folders=folders)
    st.totals = {"folders": len(folders), "bytes_done": sum(f["bytes_done"] for f in folders),
                 "bytes_total": sum(f["bytes_total"] for f in folders), "jobs_active": 1,
                 "finalized": 0}
    return st


def test_frame_shows_rates_etas_pending_reason_and_the_retry_error() -> None:
    clock = Clock()
    tracker = Tracker(clock)
    jobs = {"archive": [{"job_id": "77", "states": ["PENDING", "RUNNING"],
                         "comments": {"77_0": "archive step 4/6 upload 50%"},
                         "reasons": {"77_2": "Resources", "77_3": "Resources"}}]}
    now = 5000.0
    for k in range(3):
        st = status([folder(0, "running", (k + 1) * 100 * MiB, 1000 * MiB, step="upload",
                            slurm_job="77_0"),
                     folder(1, "retrying", 0, 50 * MiB, step="upload", failures=1,
                            error="connection refused", retry_after=now + 120),
                     folder(2, "pending"), folder(3, "done", 10, 10)], jobs)
        tracker.feed(st)
        clock.t += 10
    lines = frame(st, tracker, width=200, height=40, now=now)
    text = "\n".join(lines)
    assert lines[0].startswith("run r1 (archive): 1/4 folders done, 1 running, 1 retrying")
    assert "10.0 MiB/s" in lines[0] and "ETA " in lines[0]
    assert "waiting: Resources" in text
    assert "connection refused, retry 2/5 in 120 s" in text
    row = next(line for line in lines if "/data/f0" in line)
    assert "30%" in row and "10.0 MiB/s" in row and "ETA  1m10s" in row
    assert "(archive step 4/6 upload 50%)" in row
    assert all(len(line) <= 60 for line in frame(st, tracker, width=60, height=40, now=now))
    short = frame(st, tracker, width=200, height=6, now=now)
    assert len(short) <= 6 and "more folders (pending or done) not shown" in short[-1]


def test_retry_text_when_due() -> None:
    f = folder(1, "retrying", failures=2, error="timeout", retry_after=10)
    assert retry_text(f, now=20) == "timeout, retry 3/5 due now"


def test_screen_redraws_in_place_and_erases_a_longer_frame() -> None:
    s = io.StringIO()
    screen = Screen(s)
    screen.draw(["a", "b", "c"])
    screen.draw(["d"])
    out = s.getvalue()
    assert out.startswith("\x1b[2Ka\n\x1b[2Kb\n\x1b[2Kc\n\x1b[J")
    assert out.endswith("\x1b[3F\x1b[2Kd\n\x1b[J")


def test_watch_on_a_pipe_prints_records_of_what_changed_and_stops_when_idle() -> None:
    polls = [status([folder(0, "running", 1, 10, step="hash")]),
             status([folder(0, "running", 5, 10, step="hash")]),
             status([folder(0, "running", 6, 10, step="upload")]),
             status([folder(0, "done", 10, 10, step="record")])]
    for st in polls[2:]:
        st.totals["jobs_active"] = 0
    it = iter(polls)
    s = io.StringIO()
    watch(lambda: next(it), s, interval=0, sleep=lambda _: None, tty=False)
    lines = s.getvalue().splitlines()
    assert len([line for line in lines if " run r1 " in line]) == 4
    folder_lines = [line for line in lines if "/data/f0" in line]
    assert len(folder_lines) == 3  # hash, upload, done: unchanged polls print no folder line
    assert "\x1b" not in s.getvalue() and "\r" not in s.getvalue()
    seen: dict = {}
    assert len(changed_records(polls[0], Tracker(), seen, 0)) == 2


def test_watch_json_prints_one_object_per_poll() -> None:
    import json

    st = status([folder(0, "done", 10, 10)])
    st.totals["jobs_active"] = 0
    s = io.StringIO()
    watch(lambda: st, s, as_json=True, sleep=lambda _: None, tty=True)
    objs = [json.loads(line) for line in s.getvalue().splitlines()]
    assert len(objs) == 2 and objs[0]["run_id"] == "r1" and "rate" in objs[0]


def _tmux(sock: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                          check=True).stdout


def test_status_watch_redraws_in_place_on_a_real_terminal(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (make setup installs it)")
    state_dir = tmp_path / "state"
    folders = [b"/data/lab/a", b"/data/lab/b \xe9", b"/data/lab/c"]
    run_dir = make_run(state_dir, folders, str(tmp_path / "remote"))
    s0 = new_state(0, folders[0]) | {"state": "running", "step": "upload",
                                     "bytes_total": 100 * MiB, "bytes_done": 30 * MiB}
    s1 = new_state(1, folders[1]) | {"state": "retrying", "step": "upload", "failures": 1,
                                     "max_attempts": 5, "error": "connection refused",
                                     "retry_after": time.time() + 600, "bytes_total": MiB}
    write_task_state(run_dir, 0, s0)
    write_task_state(run_dir, 1, s1)
    sock = f"froster-test-{uuid.uuid4().hex[:8]}"
    env = {"FROSTER_SLURM_STATE_DIR": str(state_dir), "PYTHONPATH": str(Path.cwd()),
           "XDG_CONFIG_HOME": os.environ.get("XDG_CONFIG_HOME", ""), "TERM": "xterm"}
    cmd = ["env", *[f"{k}={v}" for k, v in env.items()], sys.executable, "-m", "froster_slurm",
           "status", run_dir.name, "--watch", "--interval", "3"]
    shell = "stty size; " + " ".join(f"'{c}'" for c in cmd) + "; echo EXIT=$?; sleep 120"
    _tmux(sock, "new-session", "-d", "-s", "w", "-x", "150", "-y", "30", shell)
    try:
        def screen() -> str:
            return _tmux(sock, "capture-pane", "-p", "-t", "w")

        deadline = time.monotonic() + 60
        while " 30% " not in screen():
            assert time.monotonic() < deadline, screen()
            time.sleep(0.2)
        write_task_state(run_dir, 0, s0 | {"bytes_done": 60 * MiB})
        while "EXIT=" not in screen():
            assert time.monotonic() < deadline, screen()
            time.sleep(0.2)
        text = screen()
        (tmp_path / "screen.txt").write_text(text)
        assert text.count("run " + run_dir.name) == 1, text  # two frames, one on screen
        assert " 60% " in text and " 30% " not in text
        assert "connection refused, retry 2/5 in" in text
        assert "/data/lab/b \\xe9" in text
        assert "EXIT=0" in text
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)


def test_crawl_shard_comment_carries_entries_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    from froster_slurm.jobs import crawl_stage as jobs

    said: list[str] = []
    monkeypatch.setattr(jobs, "set_status", said.append)
    progress = jobs._crawl_comment(3, every=0)
    progress(1000, 10, 0)
    time.sleep(1.1)
    progress(5000, 50, 2)
    assert said[-1].startswith("crawl shard 3: 5,000 entries, ")
    assert "entries/s" in said[-1] and said[-1].endswith("2 errors so far")


def test_pending_folder_says_it_waits() -> None:
    line = frame(status([folder(0, "pending")]), Tracker(), width=200, height=40)[1]
    assert "waiting to start" in line and "[" not in line
