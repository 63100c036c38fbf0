"""The fault campaign (issue 12, item 4): archive folders through the real Slurm cluster while
faults hit at random moments, then purge and restore, and check the invariants.

Faults (``tests/faults.py``): kill -9 of a task, ``scontrol requeue``, the S3 endpoint down
and back, a source file changed, the state directory full (a small tmpfs).  After the faults,
what is not done is retried (``retry_run``, as a person would), and folders whose content
changed after they were archived are archived again (a new version).  Invariants:

1. every folder marked done has every object in the remote with the recorded size and md5
   (downloaded and hashed);
2. nothing was uploaded twice once verified (per task, from rclone's own log);
3. purge deleted only files that were archived and unchanged (one folder gets a changed file,
   another a new file just before the purge: nothing may be deleted in those two);
4. a restored folder equals its source byte for byte (content, modes, mtimes, links).

CI: fixed seed, a short fault window (< 3 minutes in all on an idle node).  ``make soak``:
a random seed (printed), a longer window and more folders, through the environment:
``FROSTER_TESTCAMPAIGN_SEED``, ``FROSTER_TESTCAMPAIGN_SECONDS``, ``FROSTER_TESTCAMPAIGN_FOLDERS``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from archive_helpers import need, write_file
from faults import (
    FAULTS,
    Injector,
    Tally,
    TcpProxy,
    check_no_double_upload,
    check_remote_complete,
    md5_path,
    record_of,
)
from s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, free_port
from test_restore_support import cli, snapshot

from froster_slurm.config import load_config
from froster_slurm.run.rundir import open_run
from froster_slurm.scheduler.slurm import SlurmClient
from froster_slurm.submit.pipeline import archive_folders, retry_run

pytestmark = [pytest.mark.slurm, pytest.mark.s3]

SEED = int(os.environ.get("FROSTER_TESTCAMPAIGN_SEED") or 20261202)
SECONDS = float(os.environ.get("FROSTER_TESTCAMPAIGN_SECONDS") or 40)
FOLDERS = int(os.environ.get("FROSTER_TESTCAMPAIGN_FOLDERS") or 5)
STATE_FS_SIZE = "48m"
FLAGS = ["--s3-no-head", "--bwlimit=600k", "--retries=1", "--low-level-retries=2",
         "--contimeout=2s", "--timeout=5s"]


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} campaign: {text}", flush=True)


@pytest.fixture
def small_state_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory on its own small tmpfs, so it can really be filled up.

    Outside pytest's numbered tmp dirs: another pytest process on the machine may clean those
    up while the campaign's jobs still run in them.
    """
    base = Path(tempfile.mkdtemp(prefix="froster-campaign-"))
    d = base / "state"
    d.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={STATE_FS_SIZE},mode=0755",
                        "tmpfs", str(d)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"the campaign needs a small tmpfs for its state dir (root, mount): "
                    f"{p.stderr.strip()}")
    try:
        yield d
    finally:  # keep the run directories (logs, states) for a look after a failure
        subprocess.run(["cp", "-a", str(d), str(tmp_path / "state-kept")], capture_output=True)
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def rclone_conf(path: Path, port: int) -> Path:
    path.write_text(f"[s3c]\ntype = s3\nprovider = Other\nenv_auth = false\n"
                    f"access_key_id = {ACCESS_KEY}\nsecret_access_key = {SECRET_KEY}\n"
                    f"region = {REGION}\nendpoint = http://127.0.0.1:{port}\n"
                    "force_path_style = true\n")
    return path


def make_folders(root: bytes, rng: random.Random, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        f = root + b"/folder-%02d" % i
        for k in range(2):
            write_file(f + b"/big-%d.bin" % k, rng.randbytes(rng.randrange(300_000, 900_000)))
        for k in range(6):
            write_file(f + b"/notes/small-%d.txt" % k, rng.randbytes(rng.randrange(10, 5000)))
        os.symlink(b"big-0.bin", f + b"/link")
        out.append(f)
    return out


def task_state(run_dir: Path, i: int) -> str:
    try:
        return json.loads((run_dir / "tasks" / str(i) / "state.json").read_text())["state"]
    except (FileNotFoundError, ValueError, KeyError):
        return "not started"


def wait_idle(job_ids: list[str], timeout: float) -> None:
    client = SlurmClient()
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if not any(j.active for j in client.queue(job_ids).values()):
                return
        except Exception:  # noqa: BLE001 - a busy controller: ask again
            pass
        time.sleep(1)
    raise AssertionError(f"jobs {job_ids} still active after {timeout}s")


def files_with_md5(folder: bytes) -> dict[bytes, str]:
    out = {}
    for dirpath, _dirs, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            if stat.S_ISREG(os.lstat(p).st_mode):
                out[os.path.relpath(p, folder)] = md5_path(p)
    return out


def test_fault_campaign_archive_purge_restore(slurm_cluster: None,
                                              small_state_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    need("rclone")
    need("scontrol")
    started = time.time()
    rng = random.Random(SEED)
    tally = Tally(seed=SEED)
    work = small_state_dir.parent  # everything outside pytest's shared tmp dirs (fixture)
    server = S3Server(work / "s3")
    server.start()
    proxy = TcpProxy(server.port, free_port())
    proxy.start()
    submitted: list[str] = []
    try:
        conf = rclone_conf(work / "rclone.conf", proxy.port)
        folders = make_folders(os.fsencode(work / "src"), rng, FOLDERS)
        tally.folders = len(folders)
        catalog = work / "catalog.duckdb"
        cfg = load_config({"state_dir": str(small_state_dir), "catalog": str(catalog),
                           "archive.recursive": True, "archive.bundle_threshold": "64KiB",
                           "archive.transfers": 2, "archive.rclone_flags": FLAGS,
                           "archive.rclone_config": str(conf), "archive.retry_delay": 1,
                           "archive.max_attempts": 25, "archive.storage_class": "STANDARD",
                           "slurm.archive.cpus": 1,
                           # invariant 2 reads every done folder's upload log
                           "archive.rclone_logs": "all"})
        remote = f"s3c:{server.bucket}"
        result = archive_folders(folders, remote, cfg, backend="slurm")
        job, run_dir = result.job_ids["archive"][0], result.run_dir
        submitted += [j for ids in result.job_ids.values() for j in ids]
        say(f"seed {SEED}: {len(folders)} folders, array {job}, fault window {SECONDS:.0f}s")
        injector = Injector(rng, tally, run_dir, job, proxy, small_state_dir, folders,
                            lambda i: task_state(run_dir, i) == "done", say)
        todo = list(FAULTS)
        rng.shuffle(todo)  # every kind at least once, in a random order
        deadline = time.time() + SECONDS
        while time.time() < deadline:
            if all(task_state(run_dir, i) == "done" for i in range(len(folders))):
                break
            time.sleep(rng.uniform(1.0, 3.0))
            kind = todo.pop(0) if todo else rng.choice(FAULTS)
            if not injector.inject(kind) and kind not in todo:
                todo.append(kind)  # no target right now: try that kind again later
        say(f"faults over: {tally.injected}")

        # The faults are over; what is not done is retried, as a person would.
        runs = [run_dir]
        jobs = [j for ids in result.job_ids.values() for j in ids]
        for _ in range(4):
            wait_idle(jobs, 300)
            left = [i for i in range(len(folders)) if task_state(run_dir, i) != "done"]
            if not left:
                break
            for i in left:
                try:
                    st = json.loads((run_dir / "tasks" / str(i) / "state.json").read_text())
                except (FileNotFoundError, ValueError):
                    st = {"state": "no state file (its job ended before the task started)"}
                say(f"folder {i} not done: {st.get('state')} at {st.get('step')}: "
                    f"{st.get('error')}")
            say(f"retrying folders {left}")
            again = retry_run(open_run(cfg, result.run.run_id), cfg)
            jobs = [j for ids in again.job_ids.values() for j in ids]
            submitted += jobs
        assert all(task_state(run_dir, i) == "done" for i in range(len(folders))), \
            [task_state(run_dir, i) for i in range(len(folders))]

        # A change that raced a task's end leaves a folder that differs from its archive:
        # archive it again (a new version), as the next cron run would.
        stale = [f for f in folders if {os.fsencode(e["path"]): e["md5"]
                 for e in record_of(f)["entries"] if e["type"] == "file"} !=
                 {k: v for k, v in files_with_md5(f).items()
                  if not k.startswith(b"Froster.") and k != b"index.html"}]
        if stale:
            say(f"{len(stale)} folders changed after they were archived: archiving again")
            again = archive_folders(stale, remote, cfg, backend="slurm")
            submitted += [j for ids in again.job_ids.values() for j in ids]
            wait_idle([j for ids in again.job_ids.values() for j in ids], 300)
            runs.append(again.run_dir)
            for i in range(len(stale)):
                assert task_state(again.run_dir, i) == "done"

        # Invariant 1: every byte of every done folder is in the remote.
        client = server.client()
        for f in folders:
            rec = record_of(f)
            tally.bytes += int(rec["bytes"])
            check_remote_complete(client, server.bucket, rec, tally)
        # Invariant 2: nothing uploaded twice once verified.
        for rd in runs:
            for tdir in sorted((rd / "tasks").iterdir()):
                check_no_double_upload(tdir, tally)
        assert tally.uploads_seen >= len(folders)  # the check read real upload logs

        # Purge, with one folder changed and one with a new file just before it.
        monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))
        monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_FLAGS", '["--s3-no-head"]')
        monkeypatch.setenv("FROSTER_SLURM_BACKEND", "local")
        monkeypatch.setenv("FROSTER_SLURM_PURGE__INLINE_MAX", "10GiB")
        monkeypatch.setenv("FROSTER_SLURM_CATALOG", str(catalog))
        before = {f: snapshot(f) for f in folders}
        hashes = {f: files_with_md5(f) for f in folders}
        changed, grown = folders[0], folders[1]
        with open(changed + b"/big-1.bin", "r+b") as fh:
            fh.write(b"changed after the archive")
        write_file(grown + b"/appeared.txt", b"new since the archive")
        rc, out = cli("purge", *folders, "--yes")
        assert rc != 0  # two folders were refused
        for f in folders:
            files = {os.fsencode(e["path"]): e["md5"] for e in record_of(f)["entries"]
                     if e["type"] == "file"}
            now = files_with_md5(f)
            gone = set(hashes[f]) - set(now)
            tally.purged_files += len(gone)
            for rel in sorted(gone):
                if rel not in files or files[rel] != hashes[f][rel]:
                    tally.violations.append(f"purge deleted {rel!r} of {f!r}, which was not "
                                            "archived as it was")
            if f in (changed, grown) and gone:
                tally.violations.append(f"purge deleted {len(gone)} files of {f!r}, which had "
                                        "a changed or new file")
        # Restore every purged folder: byte for byte what it was.
        for f in folders:
            if f in (changed, grown):
                continue
            rc, out = cli("restore", f)
            if rc != 0:
                tally.violations.append(f"restore of {f!r} failed: {out[-500:]}")
                continue
            tally.restored_folders += 1
            if snapshot(f) != before[f]:
                tally.violations.append(f"restored {f!r} differs from its source")
    finally:
        if submitted:  # a failed campaign leaves no job of its own cycling in the cluster
            subprocess.run(["scancel", *submitted], capture_output=True)
        proxy.stop()
        server.stop()
    say(f"{tally.line()}; {time.time() - started:.0f}s")
    print(tally.line())
    for v in tally.violations:
        print("violation:", v)
    assert not tally.violations
