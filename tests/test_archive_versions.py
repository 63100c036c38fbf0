"""Archiving a folder again never overwrites its earlier archive (issue 12, item 1), and one
folder is archived by one task at a time (issue 20, item 6).

Real parts: the archive task as a subprocess, moto's S3 server on 127.0.0.1, real purge and
restore through the CLI (local backend: the restore job runs in the test process).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from archive_helpers import make_run, md5sum_check, run_task, state, task_cmd, task_env, write_file
from s3server import RCLONE_TEST_FLAGS, S3Server
from test_restore_support import THRESHOLD, cli, configure, data_files, snapshot

from froster_slurm.catalog import store as catalog
from froster_slurm.folder.layout import RECORD_NAME
from froster_slurm.run.taskstate import read_marker

pytestmark = pytest.mark.s3


def archive_once(tmp_path: Path, folder: bytes, s3: S3Server, **extra: Any
                 ) -> tuple[subprocess.CompletedProcess, Path]:
    """One archive task for real (a fresh run each time, like a second `archive` command)."""
    settings: dict[str, Any] = {"bundle_threshold": THRESHOLD, "storage_class": "STANDARD",
                                "rclone_config": str(s3.rclone_config),
                                "rclone_flags": RCLONE_TEST_FLAGS, "max_attempts": 3, **extra}
    run_dir = make_run(tmp_path / "state", [folder], s3.remote, **settings)
    return run_task(run_dir, 0), run_dir


def record_bytes(folder: bytes) -> bytes:
    return Path(os.fsdecode(folder + b"/" + RECORD_NAME)).read_bytes()


def remote_object(s3: S3Server, key: str) -> bytes:
    return s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def keys_with_etags(s3: S3Server, prefix: str) -> dict[str, tuple[str, str]]:
    out = {}
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket,
                                                                       Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = (o["ETag"], str(o["LastModified"]))
    return out


def make_folder(tmp_path: Path, name: bytes = b"proj") -> bytes:
    folder = os.fsencode(tmp_path / "src") + b"/" + name
    write_file(folder + b"/big.bin", os.urandom(40 * 1024), mtime=1_600_000_000)
    write_file(folder + b"/notes/small.txt", b"small\n", mtime=1_600_000_000)
    write_file(folder + b"/notes/tiny", b"t", mtime=1_600_000_000)
    return folder


def key_of(folder: bytes) -> str:
    return os.fsdecode(folder).lstrip("/")


def test_re_archiving_a_purged_folder_is_refused_and_the_archive_stays(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seen bug: archive, purge, archive again replaced record, manifest, remote copies
    with an empty archive and restore found nothing to restore."""
    folder = make_folder(tmp_path)
    original = snapshot(folder)
    p, _ = archive_once(tmp_path, folder, s3)
    assert p.returncode == 0, p.stderr[-2000:]
    configure(monkeypatch, s3, backend="local")
    rc, out = cli("purge", folder, "--yes")
    assert rc == 0, out
    assert data_files(folder) == []
    purged_record = record_bytes(folder)
    prefix = "froster/" + key_of(folder)
    remote_before = keys_with_etags(s3, prefix)
    remote_record = remote_object(s3, prefix + "/Froster.archive.json")

    # `archive` refuses it before anything is queued, saying what exists and what to do
    runs = Path(os.environ["FROSTER_SLURM_STATE_DIR"]) / "runs"
    before_runs = set(runs.iterdir()) if runs.exists() else set()
    rc, out = cli("archive", folder, "--to", s3.remote)
    assert rc != 0 and "was purged" in out and "froster-slurm restore" in out, out
    assert (set(runs.iterdir()) if runs.exists() else set()) == before_runs

    p, run_dir = archive_once(tmp_path, folder, s3)  # the task refuses it too (a queued run)
    assert p.returncode == 70, p.stderr[-2000:]
    st = state(run_dir, 0)
    assert st["state"] == "failed" and "was purged" in st["error"]
    assert "froster-slurm restore" in st["error"] and "version 1" in st["error"]
    assert record_bytes(folder) == purged_record  # the trace in the folder is untouched
    assert keys_with_etags(s3, prefix) == remote_before  # nothing added or replaced remotely
    assert remote_object(s3, prefix + "/Froster.archive.json") == remote_record

    rc, out = cli("restore", folder)
    assert rc == 0, out
    assert "nothing to restore" not in out
    assert snapshot(folder) == original
    assert md5sum_check(folder).returncode == 0


def test_a_changed_folder_gets_a_new_version_and_every_version_restores(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_folder(tmp_path, b"proj two")
    v1_tree = snapshot(folder)
    p, _ = archive_once(tmp_path, folder, s3)
    assert p.returncode == 0, p.stderr[-2000:]
    v1 = json.loads(record_bytes(folder))
    assert (v1["version"], v1["previous"]) == (1, [])
    prefix = "froster/" + key_of(folder)
    v1_remote = keys_with_etags(s3, prefix)
    v1_remote_record = remote_object(s3, prefix + "/Froster.archive.json")

    write_file(folder + b"/big.bin", os.urandom(40 * 1024), mtime=1_700_000_000)  # changed
    write_file(folder + b"/notes/new.txt", b"new\n")
    os.unlink(folder + b"/notes/tiny")  # a deletion by hand is a legitimate new version
    v2_tree = snapshot(folder)
    p, run_dir = archive_once(tmp_path, folder, s3)
    assert p.returncode == 0, p.stderr[-2000:]
    v2 = json.loads(record_bytes(folder))
    assert v2["version"] == 2 and state(run_dir, 0)["version"] == 2
    assert v2["destination"] == v1["destination"] + "/Froster.versions/2"
    [link] = v2["previous"]
    assert (link["version"], link["destination"], link["run_id"]) == \
        (1, v1["destination"], v1["run_id"])
    assert link["manifest_md5"] == v1["manifest"]["md5"]
    after = keys_with_etags(s3, prefix)
    assert {k: v for k, v in after.items() if k in v1_remote} == v1_remote  # v1 untouched
    assert remote_object(s3, prefix + "/Froster.archive.json") == v1_remote_record
    assert all(k.startswith(prefix + "/Froster.versions/2/") for k in set(after) - set(v1_remote))

    # the catalog keeps both; a catalog rebuilt from the folder too (v1 through the link)
    configure(monkeypatch, s3, backend="local")
    cat_path = tmp_path / "cat.duckdb"
    monkeypatch.setenv("FROSTER_SLURM_CATALOG", str(cat_path))
    catalog.add_records(cat_path, [v1])
    catalog.add_records(cat_path, [v2])
    assert sorted(e.version for e in catalog.entries(cat_path)) == [1, 2]
    catalog.rebuild(cat_path, [os.fsencode(tmp_path / "src")], RECORD_NAME)
    assert sorted((e.version, e.destination) for e in catalog.entries(cat_path)) == \
        [(1, v1["destination"]), (2, v2["destination"])]

    # restore: the latest by default, any version with --version
    latest = os.fsencode(tmp_path / "latest")
    rc, out = cli("restore", folder, "--to", latest)
    assert rc == 0, out
    assert snapshot(latest) == v2_tree
    old = os.fsencode(tmp_path / "old")
    rc, out = cli("restore", folder, "--to", old, "--version", "1")
    assert rc == 0, out
    assert snapshot(old) == v1_tree
    rc, out = cli("restore", folder, "--to", os.fsencode(tmp_path / "x"), "--version", "7")
    assert rc != 0 and "no archive version 7" in out and "1, 2" in out

    # the folder gone whole: the catalog leads to either version
    shutil.rmtree(os.fsdecode(folder))
    rc, out = cli("restore", folder, "--version", "1")
    assert rc == 0, out
    assert snapshot(folder) == v1_tree


def test_an_unchanged_folder_uploads_nothing_and_makes_no_new_version(
        tmp_path: Path, s3: S3Server) -> None:
    folder = make_folder(tmp_path)
    p, _ = archive_once(tmp_path, folder, s3)
    assert p.returncode == 0, p.stderr[-2000:]
    before_record = record_bytes(folder)
    prefix = "froster/" + key_of(folder)
    before = keys_with_etags(s3, prefix)
    p, run_dir = archive_once(tmp_path, folder, s3)
    assert p.returncode == 0, p.stderr[-2000:]
    st = state(run_dir, 0)
    assert (st["state"], st["unchanged_since"], st["version"]) == ("done", 1, 1)
    assert "nothing uploaded, no new version" in p.stderr
    assert keys_with_etags(s3, prefix) == before
    assert record_bytes(folder) == before_record
    assert (run_dir / "tasks" / "0" / "record.json").read_bytes() == before_record


def test_a_remote_version_is_never_overwritten_even_without_the_folders_trace(
        tmp_path: Path, s3: S3Server) -> None:
    """Someone deleted the trace files by hand: the remote still holds version 1's record,
    so the new archive goes to version 2."""
    folder = make_folder(tmp_path)
    p, _ = archive_once(tmp_path, folder, s3)
    assert p.returncode == 0, p.stderr[-2000:]
    prefix = "froster/" + key_of(folder)
    v1_record = remote_object(s3, prefix + "/Froster.archive.json")
    for name in (b"Froster.archive.json", b"Froster.manifest.md5", b"index.html"):
        os.unlink(folder + b"/" + name)
    write_file(folder + b"/big.bin", os.urandom(1000))
    p, run_dir = archive_once(tmp_path, folder, s3)
    assert p.returncode == 0, p.stderr[-2000:]
    assert state(run_dir, 0)["version"] == 2
    assert remote_object(s3, prefix + "/Froster.archive.json") == v1_record
    assert json.loads(record_bytes(folder))["destination"].endswith("/Froster.versions/2")


def test_two_archives_of_one_folder_at_once_upload_it_once(tmp_path: Path, s3: S3Server
                                                           ) -> None:
    """One lock per folder: the second task backs off (transient, retried later) while the
    first runs, and its retry finds the folder archived and unchanged: nothing sent twice."""
    folder = make_folder(tmp_path)
    write_file(folder + b"/large.bin", os.urandom(3 * 1024 * 1024))
    slow = {"rclone_flags": [*RCLONE_TEST_FLAGS, "--bwlimit=1M"], "retry_delay": 1}
    run_a = make_run(tmp_path / "state", [folder], s3.remote, bundle_threshold=THRESHOLD,
                     rclone_config=str(s3.rclone_config), max_attempts=3, **slow)
    first = subprocess.Popen(task_cmd(run_a, 0), cwd="/", env=task_env(
        {"SLURM_ARRAY_TASK_ID": "0"}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.time() + 60
        while state_or_none(run_a) != "upload" and time.time() < deadline:
            time.sleep(0.1)
        p, run_b = archive_once(tmp_path, folder, s3, **slow)
        assert p.returncode == 75, p.stderr[-2000:]
        st = state(run_b, 0)
        assert st["state"] == "retrying" and "being archived, purged or restored" in st["error"]
        assert first.wait(timeout=120) == 0, first.stderr.read() if first.stderr else ""
    finally:
        if first.poll() is None:
            first.kill()
    assert read_marker(run_a, 0, "upload")["sent"] > 0
    p = run_task(run_b, 0)  # the retry
    assert p.returncode == 0, p.stderr[-2000:]
    assert state(run_b, 0)["unchanged_since"] == 1
    upload_log = run_b / "tasks" / "0" / "logs" / "upload.log"
    assert not upload_log.exists()  # the second run never ran an upload


def state_or_none(run_dir: Path) -> str | None:
    try:
        return state(run_dir, 0).get("step")
    except (FileNotFoundError, ValueError):
        return None


def test_a_purge_holding_the_folder_makes_the_archive_wait(tmp_path: Path, s3: S3Server
                                                           ) -> None:
    folder = make_folder(tmp_path)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what purge and restore hold while they work
        p, run_dir = archive_once(tmp_path, folder, s3)
        assert p.returncode == 75 and state(run_dir, 0)["state"] == "retrying"
    finally:
        os.close(fd)
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr[-2000:]
