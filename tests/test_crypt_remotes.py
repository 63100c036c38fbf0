"""Encrypted remotes (rclone crypt) archive, verify and restore: over a local folder, and over
moto S3 with Deep Archive (uploaded STANDARD, proven by cryptcheck, then moved to the cold
class on the server; restored through a thaw request with the encrypted names).

Before: ``rclone md5sum`` said "hash unsupported" under crypt, classed transient: 5 attempts
over ~15 minutes and no record; a 579-byte name became a key longer than S3's 1,024 bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from archive_helpers import make_run, rich_tree, run_task, state, write_file
from s3server import RCLONE_TEST_FLAGS, S3Server
from test_restore_support import cli, configure, set_restore_transition, snapshot

pytestmark = pytest.mark.s3


def obscured(secret: str) -> str:
    return subprocess.run(["rclone", "obscure", secret], capture_output=True, text=True,
                          check=True).stdout.strip()


def crypt_config(tmp_path: Path, server: S3Server | None) -> Path:
    """``crloc:`` crypt over a local folder; with a server also ``crs3:`` crypt over an S3
    remote with provider AWS (path style on 127.0.0.1: rclone's tier change needs AWS)."""
    conf = tmp_path / "crypt.conf"
    text = (f"[crloc]\ntype = crypt\nremote = {tmp_path / 'cold'}\n"
            f"password = {obscured('froster-crypt-test')}\n")
    if server is not None:
        text += (f"\n[s3aws]\ntype = s3\nprovider = AWS\nenv_auth = false\n"
                 f"access_key_id = froster-test-access\nsecret_access_key = froster-test-secret\n"
                 f"region = us-east-1\nendpoint = {server.endpoint}\nforce_path_style = true\n"
                 # plain http on 127.0.0.1: the AWS SDK cannot sign a crypt stream
                 "use_unsigned_payload = true\n"
                 f"\n[crs3]\ntype = crypt\nremote = s3aws:{server.bucket}/encrypted\n"
                 f"password = {obscured('froster-crypt-test')}\n")
    conf.write_text(text)
    return conf


def archive_to(tmp_path: Path, folder: bytes, remote: str, conf: Path, storage_class: str
               ) -> dict:
    run_dir = make_run(tmp_path / "archive-state", [folder], remote, rclone_config=str(conf),
                       rclone_flags=RCLONE_TEST_FLAGS, bundle_threshold=4096,
                       storage_class=storage_class)
    p = run_task(run_dir, 0, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    st = state(run_dir, 0)
    assert st["state"] == "done" and st.get("failures", 0) == 0, st
    return json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())


def use(monkeypatch: pytest.MonkeyPatch, server: S3Server | None, conf: Path) -> None:
    configure(monkeypatch, server, backend="local", check_interval=1)
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))


def test_crypt_over_a_local_folder_archives_verifies_and_restores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = crypt_config(tmp_path, None)
    folder = os.fsencode(tmp_path / "src" / "secret")
    rich_tree(folder, big=20 * 1024)
    long_name = b"n" * 240  # a legal local name whose encrypted form is longer than 255
    write_file(folder + b"/" + long_name, b"long" * 2000)
    record = archive_to(tmp_path, folder, "crloc:", conf, "STANDARD")
    stored = [p for p in (tmp_path / "cold").rglob("*") if p.is_file()]
    assert stored and not any(b"secret" in os.fsencode(p.name) for p in stored)
    assert record["files"] > 3
    use(monkeypatch, None, conf)
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc == 0, out
    assert snapshot(dest) == snapshot(folder)


def test_crypt_over_s3_deep_archive_is_proven_then_cold_and_restores(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    set_restore_transition(s3, {"progression": "immediate"})
    conf = crypt_config(tmp_path, s3)
    folder = os.fsencode(tmp_path / "src" / "genomes")
    rich_tree(folder, big=20 * 1024)
    write_file(folder + b"/big.bin", os.urandom(300 * 1024))
    long_name = b"L" * 579  # S3 keys are at most 1,024 bytes; encrypted this one is longer
    write_file(folder + b"/deep/" + long_name[:200] + b"/" + long_name[200:400] + b"/"
               + long_name[400:], os.urandom(50 * 1024))
    archive_to(tmp_path, folder, "crs3:", conf, "DEEP_ARCHIVE")
    client = s3.client()
    keys = s3.list_keys("encrypted/")
    assert keys and all(len(k.encode()) <= 1024 for k in keys)
    classes = {client.head_object(Bucket=s3.bucket, Key=k).get("StorageClass", "STANDARD")
               for k in keys}
    assert "DEEP_ARCHIVE" in classes  # the data went cold after the proof
    use(monkeypatch, s3, conf)
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc == 0, out
    assert "restore requested for" in out
    assert snapshot(dest) == snapshot(folder)


def test_purge_refuses_when_a_ciphertext_changed_even_at_the_same_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under crypt the remote has no md5 of the plain data; the record keeps each object's
    ciphertext size and md5 as cryptcheck proved them, and purge compares the backend with
    that (a same-size change passed a sizes-only check)."""
    conf = crypt_config(tmp_path, None)
    folder = os.fsencode(tmp_path / "src" / "secret")
    write_file(folder + b"/big.bin", os.urandom(300 * 1024))
    write_file(folder + b"/small.txt", b"small")
    record = archive_to(tmp_path, folder, "crloc:", conf, "STANDARD")
    assert "big.bin" in record["stored"] and len(record["stored"]["big.bin"][1]) == 32
    use(monkeypatch, None, conf)
    rc, out = cli("purge", folder, "--dry-run")
    assert rc == 0 and "verified, would free" in out, out
    victim = max((p for p in (tmp_path / "cold").rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    rc, out = cli("purge", folder, "--yes")
    assert rc != 0 and "ciphertext md5" in out and "big.bin" in out, out
    assert os.path.exists(folder + b"/big.bin")
