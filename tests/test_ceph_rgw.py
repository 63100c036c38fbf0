"""Ceph RGW (Debian 12's radosgw, started by scripts/ceph-rgw.sh) as a second real S3.

moto models Glacier; RGW is the real server for what moto cannot do well: large multipart
objects, a server's own ETags and sizes, a storage class the zone does not define, and "cold"
classes that read at once (RGW 16 answers a thaw request with 501).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from archive_helpers import make_run, run_task, state, write_file
from s3server import CephRGW
from test_restore_support import cli, configure, snapshot
from test_verify_proof import forge

from froster_slurm.archive.verify import Expect, check_remote
from froster_slurm.errors import EXIT_PERMANENT
from froster_slurm.remotes.rclone import Rclone

BIG = 210 * 1024 * 1024


@pytest.fixture(scope="module")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> CephRGW:
    server = CephRGW(tmp_path_factory.mktemp("rgw"), bucket="froster-tests")
    server.ensure_up()
    return server


def use_rgw(monkeypatch: pytest.MonkeyPatch, rgw: CephRGW, **env: str) -> None:
    configure(monkeypatch, None, backend="local", check_interval=1)
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(rgw.rclone_config))
    for key, value in env.items():
        monkeypatch.setenv(f"FROSTER_SLURM_{key}", value)


def archive_to_rgw(tmp_path: Path, rgw: CephRGW, folder: bytes, storage_class: str,
                   flags: tuple[str, ...] = (), expect: int = 0) -> Path:
    run_dir = make_run(tmp_path / "state", [folder], rgw.remote,
                       rclone_config=str(rgw.rclone_config), rclone_flags=list(flags),
                       bundle_threshold=4096, storage_class=storage_class)
    p = run_task(run_dir, 0, timeout=900)
    assert p.returncode == expect, p.stderr[-3000:]
    return run_dir


def random_file(path: bytes, size: int) -> str:
    """``size`` random bytes written in 8 MiB pieces; returns their md5."""
    md5 = hashlib.md5(usedforsecurity=False)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 8 * 1024 * 1024))
            md5.update(block)
            f.write(block)
            left -= len(block)
    return md5.hexdigest()


def test_archive_verify_restore_a_folder_with_a_multipart_file_over_200_mib(
        tmp_path: Path, rgw: CephRGW, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = os.fsencode(tmp_path / "src" / "big-proj")
    random_file(folder + b"/big.bin", BIG)
    write_file(folder + b"/notes.txt", b"small files travel in a bundle")
    write_file(folder + b"/sub/more.txt", b"more")
    run_dir = archive_to_rgw(tmp_path, rgw, folder, "STANDARD")
    assert state(run_dir, 0)["state"] == "done"
    rec = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    key = rec["destination"].split(":", 1)[1].split("/", 1)[1] + "/big.bin"
    head = rgw.client().head_object(Bucket=rgw.bucket, Key=key)
    assert head["ContentLength"] == BIG and "-" in head["ETag"]  # multipart, RGW's own ETag
    use_rgw(monkeypatch, rgw)
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc == 0, out
    assert snapshot(dest) == snapshot(folder)


def test_a_forged_multipart_object_on_rgw_fails_verify_and_stops_purge(
        tmp_path: Path, rgw: CephRGW, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = os.fsencode(tmp_path / "src" / "forged")
    md5 = random_file(folder + b"/big.bin", 6 * 1024 * 1024 + 5)
    archive_to_rgw(tmp_path, rgw, folder, "STANDARD",
                   ("--s3-upload-cutoff=5M", "--s3-chunk-size=5M"))
    rec = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    key = rec["destination"].split(":", 1)[1].split("/", 1)[1] + "/big.bin"
    forge(rgw, key)
    rc = Rclone("", str(rgw.rclone_config), (), 1, tmp_path / "logs")
    report = check_remote(rc, {"big.bin": Expect(md5, 6 * 1024 * 1024 + 5)},
                          rec["destination"], tmp_path / "w", "verify")
    assert report.wrong_size == ["big.bin"] and "1000 bytes on the remote" in report.summary()
    use_rgw(monkeypatch, rgw)
    code, out = cli("purge", folder, "--yes")
    assert code != 0 and "big.bin: 1000 bytes on the remote" in out, out
    assert os.path.getsize(folder + b"/big.bin") == 6 * 1024 * 1024 + 5


def test_a_storage_class_the_zone_does_not_define_fails_at_once(tmp_path: Path,
                                                                rgw: CephRGW) -> None:
    """Before: RGW's "400 InvalidArgument" was retried as transient for ~31 minutes."""
    folder = os.fsencode(tmp_path / "src" / "cls")
    write_file(folder + b"/a.bin", os.urandom(20 * 1024))
    run_dir = archive_to_rgw(tmp_path, rgw, folder, "DEEP_ARCHIVE", expect=EXIT_PERMANENT)
    st = state(run_dir, 0)
    assert (st["state"], st["error_kind"], st.get("failures", 0)) == ("failed", "permanent", 0)
    assert "storage class" in st["error"], st["error"]


def test_a_remote_marked_no_thaw_restores_its_cold_class_at_once(
        tmp_path: Path, rgw: CephRGW, monkeypatch: pytest.MonkeyPatch) -> None:
    """GLACIER is a class this zone defines, and RGW reads it at once (no thaw, 501 to a
    request): with remotes.no_thaw = ["rgw"] the restore goes straight to the download."""
    folder = os.fsencode(tmp_path / "src" / "glacier")
    write_file(folder + b"/a.bin", os.urandom(20 * 1024))
    write_file(folder + b"/b.txt", b"bee")
    archive_to_rgw(tmp_path, rgw, folder, "GLACIER")
    rec = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    key = rec["destination"].split(":", 1)[1].split("/", 1)[1] + "/a.bin"
    assert rgw.client().head_object(Bucket=rgw.bucket, Key=key)["StorageClass"] == "GLACIER"
    use_rgw(monkeypatch, rgw)
    code, out = cli("restore", folder, "--to", os.fsencode(tmp_path / "asked"), "--wait")
    assert code != 0 and "remotes.no_thaw" in out, out  # RGW: 501 to the thaw request
    use_rgw(monkeypatch, rgw, REMOTES__NO_THAW='["rgw"]')
    dest = os.fsencode(tmp_path / "back")
    code, out = cli("restore", folder, "--to", dest, "--wait")
    assert code == 0, out
    assert snapshot(dest) == snapshot(folder)


def test_a_rejected_class_says_what_to_change_and_retry_can_change_it(
        tmp_path: Path, rgw: CephRGW, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permanent is permanent: the run does not just advise `retry`; `retry --storage-class`
    archives the failed folders again with a class the remote accepts (a new run)."""
    from test_pipeline import wait_finished

    from froster_slurm.config import load_config
    from froster_slurm.submit.pipeline import archive_folders, retry_run

    folder = os.fsencode(tmp_path / "src" / "retry-me")
    write_file(folder + b"/a.bin", os.urandom(20 * 1024))
    use_rgw(monkeypatch, rgw)
    cfg = load_config({"archive.retry_delay": 1})
    result = archive_folders([folder], rgw.remote, cfg, storage_class="DEEP_ARCHIVE",
                             backend="local")
    st = wait_finished(result.run, cfg)
    assert [f["state"] for f in st["folders"]] == ["failed"]
    assert st["folders"][0]["failures"] == 0  # failed at once, no back-off
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert "--storage-class CLASS" in summary["retry_note"]
    again = retry_run(result.run, cfg, storage_class="STANDARD")
    assert again.run_id != result.run_id
    st = wait_finished(again.run, cfg)
    assert [f["state"] for f in st["folders"]] == ["done"]
    rec = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    assert rec["storage_class"] == "STANDARD"
