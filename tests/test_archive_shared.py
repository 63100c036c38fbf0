"""A batch's folders pool their rclone calls (froster_slurm.archive.shared), with real rclone.

What must hold: every folder is archived exactly as it would be alone (record, manifest,
index.html, verified objects), the batch starts a handful of rclone processes instead of six
per folder, a pooled call that fails is made again per folder so only the folder at fault
fails, a name rclone spells differently travels alone, and a stop signal stops every open
folder where it was, to resume on the next run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from archive_helpers import make_run as _make_run
from archive_helpers import (
    md5sum_check,
    need,
    restore_with_rclone,
    run_task,
    state,
    task_cmd,
    task_env,
    write_file,
)
from s3server import RCLONE_TEST_FLAGS, S3Server

from froster_slurm.archive.shared import (
    CallPool,
    Deferred,
    SharedRclone,
    _prefixes_of,
    common_root,
    split_remote_path,
)
from froster_slurm.errors import EXIT_OK, EXIT_TEMPFAIL
from froster_slurm.jobs.archive_stage import WAVE
from froster_slurm.remotes.rclone import Rclone
from froster_slurm.run.batches import append_batches

POOLED = re.compile(rb"batch 0: (\d+) rclone calls of its folders made as (\d+) rclone runs")


def make_run(state_dir: Path, folders: list[bytes], remote: str, **archive: object) -> Path:
    """A run whose folders are all one batch (batch 0: array task 0 archives every one)."""
    run_dir = _make_run(state_dir, folders, remote, **archive)
    append_batches(run_dir, [list(range(len(folders)))])
    return run_dir


def tiny_folders(root: Path, names: list[bytes]) -> list[bytes]:
    out = []
    for k, name in enumerate(names):
        folder = os.path.join(os.fsencode(root), b"lab", name)
        write_file(folder + b"/data.txt", b"%06d\n" % k, mtime=1_500_000_000)
        write_file(folder + b"/sub/more.txt", b"more %d\n" % k, mtime=1_500_000_000)
        out.append(folder)
    return out


def pooled(proc: subprocess.CompletedProcess) -> tuple[int, int]:
    m = POOLED.search(proc.stderr.encode() if isinstance(proc.stderr, str) else proc.stderr)
    assert m, proc.stderr[-3000:]
    return int(m.group(1)), int(m.group(2))


# --- pure logic ------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_common_root_is_the_deepest_shared_folder_and_never_a_bare_remote() -> None:
    assert split_remote_path("s3:b/x/y/") == ("s3:", ["b", "x", "y"], False)
    assert split_remote_path("/mnt/a/b") == ("", ["mnt", "a", "b"], True)
    assert common_root(["s3:b/p/lab/a/", "s3:b/p/lab/b/c/"]) == ("s3:b/p/lab/", ["a", "b/c"])
    assert common_root(["/r/x/a", "/r/x/a"]) == ("/r/x/a/", ["", ""])
    assert common_root(["/r/x/a", "/r/y"]) == ("/r/", ["x/a", "y"])
    assert common_root(["s3:a/x", "s3:b/x"]) is None  # only the remote's root in common
    assert common_root(["s3:b/x", "other:b/x"]) is None
    assert common_root(["/r/x", "r/x"]) is None  # absolute and relative never mix
    assert _prefixes_of(b"a/b/c") == [(b"", b"a/b/c"), (b"a/", b"b/c"), (b"a/b/", b"c")]


@pytest.mark.unit
def test_a_step_replays_its_journal_and_asks_again_when_it_asks_otherwise(
        tmp_path: Path) -> None:
    need("rclone")
    remote = tmp_path / "remote"
    for name in ("a", "b"):
        write_file(os.fsencode(remote / name / "x.txt"), b"x")
    pool = CallPool(Rclone(""), tmp_path / "pool")
    members = [SharedRclone(pool, tmp_path, "") for _ in range(2)]
    lists = []
    for k, m in enumerate(members):
        m.begin_step("verify")
        lst = tmp_path / f"names-{k}.lst"
        lst.write_bytes(b"x.txt\nmissing.txt\n")
        lists.append(lst)
    for k, m in enumerate(members):
        with pytest.raises(Deferred):
            m.lsf(f"{remote}/{'ab'[k]}/", lists[k], tmp_path / f"out-{k}", "v")
    pool.flush()
    assert pool.calls == 1  # both listings in one rclone run
    for k, m in enumerate(members):
        m.begin_step("verify")  # the next round runs the step again from its start
        res = m.lsf(f"{remote}/{'ab'[k]}/", lists[k], tmp_path / f"out-{k}", "v")
        assert res.returncode == 0
        lines = (tmp_path / f"out-{k}").read_bytes().splitlines()
        assert [ln.rsplit(b"|", 1)[1] for ln in lines] == [b"x.txt"]
    # the same step now asks for something else: the old answer is not reused
    m = members[0]
    m.begin_step("verify")
    lists[0].write_bytes(b"y.txt\n")
    with pytest.raises(Deferred):
        m.lsf(f"{remote}/a/", lists[0], tmp_path / "out-0", "v")
    # a new step starts with an empty journal
    m.begin_step("record")
    lists[0].write_bytes(b"x.txt\nmissing.txt\n")
    with pytest.raises(Deferred):
        m.lsf(f"{remote}/a/", lists[0], tmp_path / "out-0", "v")


# --- whole batches, real rclone, the task as a subprocess -------------------------------------


def test_a_batch_of_tiny_folders_pools_its_rclone_calls_and_archives_each_exactly(
        tmp_path: Path) -> None:
    need("rclone")
    names = [b"p%02d" % k for k in range(12)] + [b"with spaces", b"new\nline",
                                                 b"caf\xe9-latin1", b"odd\xe2\x90\x8aname"]
    folders = tiny_folders(tmp_path / "src", names)
    remote = str(tmp_path / "remote")
    run_dir = make_run(tmp_path / "state", folders, remote, rclone_logs="failed")
    proc = run_task(run_dir, 0)
    assert proc.returncode == EXIT_OK, proc.stderr[-3000:]
    asked, runs = pooled(proc)
    assert asked == 6 * len(folders)  # six calls per folder, as alone
    # pooled: 6 kinds of call; the names rclone spells otherwise copy alone (2 copies each)
    assert runs <= 6 + 2 * 2, proc.stderr[-3000:]
    for k, folder in enumerate(folders):
        st = state(run_dir, k)
        assert st["state"] == "done" and st["steps_done"][-1] == "record", st
        assert st["attempts"] == 1 and not st.get("failures")
        assert md5sum_check(folder).returncode == 0
        record = json.loads(open(folder + b"/Froster.archive.json", "rb").read())
        out = os.fsencode(tmp_path / "restored" / str(k))
        restore_with_rclone(record, out, os.fsencode(tmp_path / "staging" / str(k)))
        assert open(out + b"/data.txt", "rb").read() == b"%06d\n" % k
        assert open(out + b"/sub/more.txt", "rb").read() == b"more %d\n" % k
    assert not (run_dir / "batches" / "0.work").exists()  # the batch's scratch is gone


def test_a_failing_pooled_call_is_made_again_per_folder_so_only_that_folder_fails(
        tmp_path: Path) -> None:
    need("rclone")
    folders = tiny_folders(tmp_path / "src", [b"f%d" % k for k in range(5)])
    remote = tmp_path / "remote"
    # The destination of folder 2 is a file: anything written below it fails.
    blocked = os.fsencode(remote) + b"/froster" + folders[2]
    write_file(blocked, b"in the way")
    run_dir = make_run(tmp_path / "state", folders, str(remote), max_attempts=1,
                       rclone_logs="failed")
    proc = run_task(run_dir, 0)
    assert proc.returncode != EXIT_OK
    states = [state(run_dir, k) for k in range(5)]
    assert [s["state"] for s in states] == ["done", "done", "failed", "done", "done"], states
    assert states[2]["error"]
    assert all(md5sum_check(f).returncode == 0 for k, f in enumerate(folders) if k != 2)
    assert not os.path.exists(folders[2] + b"/Froster.archive.json")
    logs = run_dir / "batches" / "0.work" / "logs"  # the pooled calls' logs explain it
    assert any(b"not a directory" in p.read_bytes() for p in logs.iterdir()), list(logs.iterdir())


def test_a_stop_signal_stops_every_open_folder_and_the_next_run_finishes_them(
        tmp_path: Path) -> None:
    real = need("rclone")
    folders = tiny_folders(tmp_path / "src", [b"s%d" % k for k in range(6)])
    # an rclone that hangs on its first copy while the flag file exists
    flag, seen = tmp_path / "hang", tmp_path / "hanging"
    shim = tmp_path / "rclone-shim"
    shim.write_text(f"#!/bin/bash\nif [ \"$1\" = copy ] && [ -e {flag} ]; then\n"
                    f"  touch {seen}; sleep 60\nfi\nexec {real} \"$@\"\n")
    shim.chmod(0o755)
    flag.touch()
    run_dir = make_run(tmp_path / "state", folders, str(tmp_path / "remote"),
                       rclone=str(shim))
    env = task_env({"SLURM_ARRAY_TASK_ID": "0"})
    proc = subprocess.Popen(task_cmd(run_dir, 0), cwd="/", env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not seen.exists():
        assert time.time() < deadline and proc.poll() is None, "the copy never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_TEMPFAIL, err[-3000:]
    for k in range(6):
        st = state(run_dir, k)
        assert st["state"] == "retrying" and st["stopped_by"] == "SIGTERM", st
        assert not st.get("failures")  # a stop is no failure
    flag.unlink()
    again = run_task(run_dir, 0)
    assert again.returncode == EXIT_OK, again.stderr[-3000:]
    for k, folder in enumerate(folders):
        st = state(run_dir, k)
        assert st["state"] == "done" and st["attempts"] == 2 and not st.get("failures"), st
        assert md5sum_check(folder).returncode == 0


def test_a_batch_larger_than_a_wave_goes_in_waves_and_archives_every_folder(
        tmp_path: Path) -> None:
    need("rclone")
    n = WAVE + 6
    folders = tiny_folders(tmp_path / "src", [b"w%03d" % k for k in range(n)])
    run_dir = make_run(tmp_path / "state", folders, str(tmp_path / "remote"))
    proc = run_task(run_dir, 0, timeout=300)
    assert proc.returncode == EXIT_OK, proc.stderr[-3000:]
    waves = [(int(a), int(b)) for a, b in POOLED.findall(proc.stderr.encode())]
    assert [a for a, _ in waves] == [6 * WAVE, 6 * 6]  # two waves: 64 folders, then 6
    assert all(b <= 6 for _, b in waves), waves
    assert all(state(run_dir, k)["state"] == "done" for k in range(n))


@pytest.mark.s3
def test_a_pooled_batch_to_s3_stores_each_folder_in_its_class_and_verifies_it(
        tmp_path: Path, s3: S3Server) -> None:
    """The same through moto's S3: pooled listings answer from the S3 listing (ETags), the
    pooled copy carries the storage class, the trace stays STANDARD, and the folder whose
    name S3 stores encoded travels alone."""
    names = [b"g%d" % k for k in range(5)] + [b"new\nline"]
    folders = tiny_folders(tmp_path / "src", names)
    run_dir = make_run(tmp_path / "state", folders, s3.remote,
                       rclone_config=str(s3.rclone_config), rclone_flags=RCLONE_TEST_FLAGS,
                       storage_class="DEEP_ARCHIVE")
    proc = run_task(run_dir, 0, timeout=300)
    assert proc.returncode == EXIT_OK, proc.stderr[-3000:]
    asked, runs = pooled(proc)
    assert asked == 6 * len(folders) and runs <= 6 + 2, proc.stderr[-3000:]
    for k, folder in enumerate(folders):
        assert state(run_dir, k)["state"] == "done"
        assert md5sum_check(folder).returncode == 0
    client = s3.client()
    keys = s3.list_keys("froster" + os.fsdecode(os.fsencode(tmp_path / "src")))
    trace = [k for k in keys if k.endswith(("Froster.archive.json", "Froster.manifest.md5",
                                            "index.html"))]
    data = [k for k in keys if k not in trace]
    assert len(trace) == 3 * len(folders) and len(data) == len(folders)  # one bundle each
    for key in data:
        assert client.head_object(Bucket=s3.bucket, Key=key)["StorageClass"] == "DEEP_ARCHIVE"
    for key in trace:
        assert client.head_object(Bucket=s3.bucket, Key=key).get(
            "StorageClass", "STANDARD") == "STANDARD"
