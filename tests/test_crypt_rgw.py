"""crypt + a cold class on S3 providers other than AWS (issue 15 item 3).

The proof under crypt is ``rclone cryptcheck``, which must read each object; a class that must
be thawed forbids that, so the archive uploads in STANDARD, proves, then changes the tier on
the server (``rclone settier``).  rclone 1.75 changes tiers only with ``provider = AWS``
(Ceph RGW here: "remote rgw does not support settier").  So:

* on a non-AWS provider the archive is refused by preflight, in one line naming the provider
  and the two ways out, before anything is queued (before: every task failed, one by one,
  inside its job);
* Ceph RGW's "cold" classes read at once: with the remote in ``remotes.no_thaw`` the data is
  uploaded straight into GLACIER (a class this zone defines), proven by cryptcheck, and
  restored without a thaw request.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from archive_helpers import rich_tree, write_file
from s3server import CephRGW, S3Server
from test_restore_support import cli, configure, snapshot

from froster_slurm.errors import EXIT_CONFIG

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> CephRGW:
    server = CephRGW(tmp_path_factory.mktemp("rgw"), bucket="froster-tests")
    server.ensure_up()
    return server


def obscured(secret: str) -> str:
    return subprocess.run(["rclone", "obscure", secret], capture_output=True, text=True,
                          check=True).stdout.strip()


def with_crypt(base_conf: str, name: str, over: str, path: Path) -> Path:
    path.write_text(f"{base_conf}\n[{name}]\ntype = crypt\nremote = {over}\n"
                    f"password = {obscured('froster-crypt-rgw')}\n")
    return path


def use(monkeypatch: pytest.MonkeyPatch, conf: Path, **env: str) -> None:
    configure(monkeypatch, None, backend="local", check_interval=1)
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))
    for key, value in env.items():
        monkeypatch.setenv(f"FROSTER_SLURM_{key}", value)


def runs() -> list[Path]:
    base = Path(os.environ["FROSTER_SLURM_STATE_DIR"]) / "runs"
    return sorted(base.glob("*")) if base.is_dir() else []


def test_crypt_with_a_cold_class_on_ceph_is_refused_before_anything_is_queued(
        tmp_path: Path, rgw: CephRGW, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = with_crypt(rgw.rclone_config.read_text(), "crrgw", f"rgw:{rgw.bucket}/refused",
                      tmp_path / "rclone.conf")
    use(monkeypatch, conf)
    folder = os.fsencode(tmp_path / "src" / "secret")
    write_file(folder + b"/a.bin", os.urandom(10 * 1024))
    before = runs()
    code, out = cli("archive", folder, "--to", "crrgw:", "--storage-class", "GLACIER",
                    "--backend", "local")
    assert code == EXIT_CONFIG, out
    line = ("crrgw:: GLACIER under crypt cannot be proven: cryptcheck must read every object "
            "before it goes cold and rclone moves objects to GLACIER afterwards only with "
            "provider AWS (this remote's S3 provider: Ceph); archive in STANDARD, or, if "
            "GLACIER reads at once there (Ceph RGW), add rgw to remotes.no_thaw")
    assert line in out, out
    assert runs() == before  # nothing queued, nothing written
    assert not rgw.list_keys("refused/")


def test_crypt_on_another_provider_is_refused_too_and_aws_passes(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """provider = Other (what Minio and most S3 servers use) over moto: refused; the same
    server as provider AWS passes the check (test_crypt_remotes archives through it)."""
    base = (f"[other]\ntype = s3\nprovider = Other\nenv_auth = false\n"
            f"access_key_id = froster-test-access\nsecret_access_key = froster-test-secret\n"
            f"endpoint = {s3.endpoint}\nforce_path_style = true\n"
            f"[aws]\ntype = s3\nprovider = AWS\nenv_auth = false\nregion = us-east-1\n"
            f"access_key_id = froster-test-access\nsecret_access_key = froster-test-secret\n"
            f"endpoint = {s3.endpoint}\nforce_path_style = true\n"
            f"[craws]\ntype = crypt\nremote = aws:{s3.bucket}/enc-aws\n"
            f"password = {obscured('x')}\n")
    conf = with_crypt(base, "crother", f"other:{s3.bucket}/enc-other", tmp_path / "r.conf")
    use(monkeypatch, conf)
    folder = os.fsencode(tmp_path / "src" / "p")
    write_file(folder + b"/a.bin", b"a" * 1000)
    code, out = cli("archive", folder, "--to", "crother:", "--storage-class", "DEEP_ARCHIVE",
                    "--dry-run", "--backend", "local")
    assert code == EXIT_CONFIG and "(this remote's S3 provider: Other)" in out, out
    code, out = cli("check", "--to", "craws:", "--storage-class", "DEEP_ARCHIVE")
    assert "crypt proof" in out and "moved to DEEP_ARCHIVE on the server" in out, out


def test_crypt_on_ceph_marked_no_thaw_stores_glacier_proves_and_restores(
        tmp_path: Path, rgw: CephRGW, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = with_crypt(rgw.rclone_config.read_text(), "crrgw", f"rgw:{rgw.bucket}/enc-cold",
                      tmp_path / "rclone.conf")
    use(monkeypatch, conf, REMOTES__NO_THAW='["rgw"]')
    folder = os.fsencode(tmp_path / "src" / "genomes")
    rich_tree(folder, big=20 * 1024)
    write_file(folder + b"/big.bin", os.urandom(300 * 1024))
    code, out = cli("archive", folder, "--to", "crrgw:", "--storage-class", "GLACIER",
                    "--recursive", "--backend", "local")
    assert code == 0, out
    rec = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    assert rec["storage_class"] == "GLACIER" and rec["remote"]["encrypted"] is True
    assert rec.get("stored"), "cryptcheck's proof of every ciphertext is in the record"
    client = rgw.client()
    keys = rgw.list_keys("enc-cold/")
    assert keys and not any("genomes" in k for k in keys)  # names are encrypted
    classes = {client.head_object(Bucket=rgw.bucket, Key=k).get("StorageClass", "STANDARD")
               for k in keys}
    assert "GLACIER" in classes
    dest = os.fsencode(tmp_path / "back")
    code, out = cli("restore", folder, "--to", dest, "--wait")
    assert code == 0, out
    assert "restore requested" not in out
    assert snapshot(dest) == snapshot(folder)
