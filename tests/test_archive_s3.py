"""The archive task against a real S3 server (moto on 127.0.0.1) with Glacier storage classes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from archive_helpers import (
    assert_same_tree,
    make_run,
    md5sum_check,
    need,
    restore_with_rclone,
    rich_tree,
    run_task,
    state,
    task_cmd,
    task_env,
    write_file,
)
from s3server import RCLONE_TEST_FLAGS, S3Server

pytestmark = pytest.mark.s3
THRESHOLD = 64 * 1024
MULTIPART = ["--s3-upload-cutoff=5M", "--s3-chunk-size=5M"]


def s3_run(tmp_path: Path, server: S3Server, folders: list[bytes], flags: list[str],
           **archive: object) -> Path:
    return make_run(tmp_path / "state", folders, server.remote,
                    rclone_config=str(server.rclone_config),
                    rclone_flags=[*RCLONE_TEST_FLAGS, *flags], bundle_threshold=THRESHOLD,
                    **archive)


def test_deep_archive_to_s3_with_odd_names_and_a_multipart_object(tmp_path: Path,
                                                                  s3: S3Server) -> None:
    src = os.fsencode(tmp_path / "src")
    folders = [src + b"/plain", src + b"/new\nline", src + b"/caf\xe9", src + b"/-rf"]
    for f in folders:
        rich_tree(f, big=100 * 1024)
    write_file(folders[0] + b"/multipart.bin", os.urandom(6 * 1024 * 1024 + 3))
    run_dir = s3_run(tmp_path, s3, folders, MULTIPART, storage_class="DEEP_ARCHIVE")
    for i, folder in enumerate(folders):
        p = run_task(run_dir, i)
        assert p.returncode == 0, p.stderr
        assert state(run_dir, i)["state"] == "done"
        assert md5sum_check(folder).returncode == 0
    client = s3.client()
    prefix = "froster" + os.fsdecode(src)  # the test's own objects only
    keys = s3.list_keys(prefix)
    trace_names = ("Froster.archive.json", "Froster.manifest.md5", "index.html")
    data = [k for k in keys if not k.endswith(trace_names)]
    trace = [k for k in keys if k.endswith(trace_names)]
    assert len(trace) == 3 * len(folders)
    assert any("\u240a" in k for k in keys)  # the newline folder: a control picture, no XML error
    for key in data:
        assert client.head_object(Bucket=s3.bucket, Key=key)["StorageClass"] == "DEEP_ARCHIVE"
    for key in trace:  # readable without a Glacier restore
        assert client.head_object(Bucket=s3.bucket, Key=key).get("StorageClass",
                                                                 "STANDARD") == "STANDARD"
    mp = client.head_object(Bucket=s3.bucket, Key=f"{prefix}/plain/multipart.bin")
    assert "-" in mp["ETag"] and mp["Metadata"].get("md5chksum")  # verified via stored md5
    # Restore one folder the way index.html says: Glacier restore request, copy, untar.
    record = json.loads(Path(os.fsdecode(folders[1]), "Froster.archive.json").read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    cfg = ["--config", str(s3.rclone_config)]
    dest = os.fsencode(record["destination"])
    blocked = subprocess.run(["rclone", "copy", "--retries=1", dest, tmp_path / "too-early",
                              *cfg], env=env, capture_output=True, text=True)
    assert "restore first" in blocked.stderr  # Deep Archive data is not readable as is
    subprocess.run(["rclone", "backend", "restore", dest, "-o", "priority=Bulk", "-o",
                    "lifetime=1", *cfg], env=env, check=True, capture_output=True)
    restored = os.fsencode(tmp_path / "restored")
    restore_with_rclone(record, restored, os.fsencode(tmp_path / "staging"),
                        str(s3.rclone_config))
    assert_same_tree(folders[1], restored, record)


def test_s3_outage_mid_upload_is_transient_and_the_rerun_finishes(tmp_path: Path) -> None:
    """The S3 server dies during the upload: exit 75 with a growing delay; it comes back (on
    the same port, empty, as moto keeps no state): the rerun finishes verified."""
    need("rclone")
    server = S3Server(tmp_path / "s3")
    server.start()
    try:
        folder = os.fsencode(tmp_path / "data")
        write_file(folder + b"/big.bin", os.urandom(12 * 1024 * 1024))
        write_file(folder + b"/small.txt", b"small")
        flags = [*MULTIPART, "--bwlimit=3M", "--retries=1", "--low-level-retries=1",
                 "--contimeout=2s", "--timeout=5s"]
        run_dir = s3_run(tmp_path, server, [folder], flags, retry_delay=3, max_attempts=5)
        log = run_dir / "tasks" / "0" / "logs" / "upload.log"
        proc = subprocess.Popen(task_cmd(run_dir, 0), cwd="/", env=task_env(
            {"SLURM_ARRAY_TASK_ID": "0"}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        deadline = time.time() + 60
        while not (log.exists() and "# " in log.read_text()) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the ~4 s transfer
        server.stop()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 75, err
        st = state(run_dir, 0)
        assert (st["state"], st["error_kind"], st["failures"], st["step"]) == \
            ("retrying", "transient", 1, "upload")
        first_wait = st["retry_after"] - time.time()
        assert 0 < first_wait <= 3
        assert "retry 2/5" in (run_dir / "tasks" / "0" / "comment").read_text()
        p = run_task(run_dir, 0)  # still down: the delay doubles
        assert p.returncode == 75, p.stderr
        st = state(run_dir, 0)
        assert st["failures"] == 2 and 3 < st["retry_after"] - time.time() <= 6
        server.start()  # back on the same port (and empty: moto keeps nothing)
        p = run_task(run_dir, 0)
        assert p.returncode == 0, p.stderr
        st = state(run_dir, 0)
        assert (st["state"], st["steps_done"][-1], st["attempts"]) == ("done", "record", 3)
        assert md5sum_check(folder).returncode == 0
        client = server.client()
        key = "froster" + os.fsdecode(folder) + "/big.bin"
        assert client.head_object(Bucket=server.bucket, Key=key)["StorageClass"] == \
            "DEEP_ARCHIVE"
    finally:
        server.stop()


def test_an_object_whose_md5_cannot_be_checked_fails_verification(tmp_path: Path,
                                                                  s3: S3Server) -> None:
    """A multipart object uploaded without rclone's md5 metadata (what --s3-disable-checksum
    does, which froster-slurm refuses) has no md5 the remote can tell: that is a failure."""
    from froster_slurm.archive.verify import Expect, check_remote
    from froster_slurm.remotes.rclone import Rclone

    data = os.urandom(6 * 1024 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    (src / "blind.bin").write_bytes(data)
    (src / "seen.bin").write_bytes(data[:1000])
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    subprocess.run(["rclone", "copy", str(src), f"{s3.remote}/nomd5", "--config",
                    str(s3.rclone_config), "--s3-disable-checksum", *MULTIPART,
                    *RCLONE_TEST_FLAGS], env=env, check=True, capture_output=True)
    rc = Rclone("rclone", str(s3.rclone_config), RCLONE_TEST_FLAGS, 1, tmp_path / "logs")
    md5 = __import__("hashlib").md5
    report = check_remote(rc, {"blind.bin": Expect(md5(data).hexdigest(), len(data)),
                               "seen.bin": Expect(md5(data[:1000]).hexdigest(), 1000),
                               "gone.bin": Expect("0" * 32, 1)}, f"{s3.remote}/nomd5",
                          tmp_path / "w", "verify")
    assert not report.ok
    assert report.errors == ["blind.bin"] and report.missing == ["gone.bin"]
    assert report.matched == {"seen.bin"}
    assert "whose md5 the remote could not tell (e.g. blind.bin)" in report.summary()
