"""Verify is proof: size and md5 of every object from the remote's own listing (moto S3).

The forgery of issues 12 and 15: an S3 multipart object replaced on the server by a small
multipart object carrying the original's ``md5chksum`` metadata.  rclone reports the copied
md5, so an md5-only check passed it; the size check must catch it in the verify function,
in purge's remote check and in restore (there as a permanent failure, before any download).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from archive_helpers import make_run, run_task, state, write_file
from s3server import RCLONE_TEST_FLAGS, S3Server
from test_restore_support import cli, configure

from froster_slurm.archive.verify import Expect, check_remote
from froster_slurm.remotes.rclone import Rclone

pytestmark = pytest.mark.s3
MULTIPART = ["--s3-upload-cutoff=5M", "--s3-chunk-size=5M"]


def forge(server: S3Server, key: str, size: int = 1000) -> None:
    """Replace ``key`` by ``size`` bytes of other data as a multipart object that carries the
    original's md5 metadata (what anyone with write access to the bucket can do)."""
    c = server.client()
    head = c.head_object(Bucket=server.bucket, Key=key)
    assert "-" in head["ETag"] and head["Metadata"].get("md5chksum")
    up = c.create_multipart_upload(Bucket=server.bucket, Key=key, Metadata=head["Metadata"],
                                   StorageClass=head.get("StorageClass", "STANDARD"))
    part = c.upload_part(Bucket=server.bucket, Key=key, PartNumber=1,
                         UploadId=up["UploadId"], Body=b"forged" * (size // 6) + b"x" *
                         (size % 6))
    c.complete_multipart_upload(Bucket=server.bucket, Key=key, UploadId=up["UploadId"],
                                MultipartUpload={"Parts": [{"ETag": part["ETag"],
                                                            "PartNumber": 1}]})


def archived(tmp_path: Path, server: S3Server, storage_class: str = "DEEP_ARCHIVE"
             ) -> tuple[bytes, dict, str]:
    """A folder with one multipart object, archived for real; (folder, record, its key)."""
    folder = os.fsencode(tmp_path / "src" / "proj")
    write_file(folder + b"/big.bin", os.urandom(6 * 1024 * 1024 + 7))
    write_file(folder + b"/small.txt", b"small")
    run_dir = make_run(tmp_path / "state", [folder], server.remote,
                       rclone_config=str(server.rclone_config),
                       rclone_flags=[*RCLONE_TEST_FLAGS, *MULTIPART], bundle_threshold=1024,
                       storage_class=storage_class)
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr[-3000:]
    assert state(run_dir, 0)["state"] == "done"
    record = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    key = record["destination"].split(":", 1)[1].split("/", 1)[1] + "/big.bin"
    return folder, record, key


def test_verify_names_a_forged_multipart_object_by_its_size(tmp_path: Path,
                                                            s3: S3Server) -> None:
    folder, record, key = archived(tmp_path, s3, "STANDARD")
    rc = Rclone("rclone", str(s3.rclone_config), RCLONE_TEST_FLAGS, 1, tmp_path / "logs")
    data = Path(os.fsdecode(folder + b"/big.bin")).read_bytes()
    want = {"big.bin": Expect(__import__("hashlib").md5(data).hexdigest(), len(data))}
    assert check_remote(rc, want, record["destination"], tmp_path / "w", "before").ok
    forge(s3, key)
    report = check_remote(rc, want, record["destination"], tmp_path / "w", "after")
    assert not report.ok and report.wrong_size == ["big.bin"] and not report.matched
    assert (f"1 with another size (e.g. big.bin: 1000 bytes on the remote, {len(data)} "
            "archived)") in report.summary()


def test_purge_refuses_a_folder_whose_remote_object_was_forged(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _record, key = archived(tmp_path, s3)
    configure(monkeypatch, s3, backend="local")
    forge(s3, key)
    rc, out = cli("purge", folder, "--dry-run")
    assert rc != 0, out
    assert "verified, would free" not in out and "total would free: 0 B" in out
    assert "big.bin: 1000 bytes on the remote" in out
    rc, out = cli("purge", folder, "--yes")
    assert rc != 0 and os.path.exists(folder + b"/big.bin"), out


def test_restore_of_a_forged_object_fails_for_good_naming_it(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _record, key = archived(tmp_path, s3, "STANDARD")
    configure(monkeypatch, s3, backend="local")
    forge(s3, key)
    target = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", target, "--wait")
    assert rc != 0, out
    assert "another size" in out and "big.bin" in out, out
    assert not os.path.exists(target + b"/big.bin")
