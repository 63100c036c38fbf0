"""sftp to a real OpenSSH server on 127.0.0.1 (issue 15 item 8): archive -> verify -> purge ->
restore of a folder through the CLI, with the md5 proof computed by the server (``md5sum``
over ssh) and storage class ``none`` in the record (sftp has no storage classes; the record
must not claim DEEP_ARCHIVE).  The server is private (``sshserver.SSHServer``: its own host
key, one authorized key, a free high port); the system's sshd is never touched.  Without sshd
the tests skip with the reason, under CI=true they fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from archive_helpers import rich_tree, write_file
from sshserver import SSHServer, sshd_missing
from test_restore_support import cli, configure, data_files, snapshot

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    reason = sshd_missing()
    if reason:
        if IN_CI:
            pytest.fail(f"CI needs a local sshd for the sftp tests: {reason}")
        pytest.skip(reason)
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sftp(sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The remote ``sftptest:`` (absolute path under this test's tmp) as the user's config."""
    conf = sshd.rclone_config(tmp_path / "rclone.conf")
    configure(monkeypatch, None, backend="local", check_interval=1)
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))
    return f"sftptest:{tmp_path / 'over-ssh'}"


def record_of(folder: bytes) -> dict:
    return json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())


def test_sftp_archive_verify_purge_restore_with_no_storage_class(
        sftp: str, sshd: SSHServer, tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path / "lab" / "proj")
    rich_tree(folder, big=300 * 1024)
    write_file(folder + b"/big.bin", os.urandom(3 * 1024 * 1024))
    original = snapshot(folder)
    rc, out = cli("archive", folder, "--to", sftp, "--storage-class", "DEEP_ARCHIVE",
                  "--backend", "local")
    assert rc == 64 and "(sftp) has no storage classes" in out, out  # asked for: refused
    rc, out = cli("archive", folder, "--to", sftp, "--recursive", "--backend", "local")
    assert rc == 0, out
    assert "has no storage classes" in out and "storage class 'none'" in out
    record = record_of(folder)
    assert (record["storage_class"], record["trace_storage_class"]) == ("none", "none")
    assert record["remote"]["type"] == "sftp" and record["remote"]["host"] == "127.0.0.1"
    assert record["remote"]["port"] == str(sshd.port)
    page = Path(os.fsdecode(folder + b"/index.html")).read_text()
    assert "DEEP_ARCHIVE" not in page and '<td id="storage-class">none</td>' in page
    stored = sorted(p for p in (tmp_path / "over-ssh").rglob("*") if p.is_file())
    assert any(p.name == "big.bin" for p in stored)  # the data really went over ssh
    assert "Accepted publickey" in sshd.log.read_text()
    # purge proves the remote again (size + md5 from the server's listing) before deleting
    rc, out = cli("purge", folder, "--yes")
    assert rc == 0, out
    assert data_files(folder) == []
    rc, out = cli("restore", folder, "--wait")
    assert rc == 0, out
    assert "Glacier" not in out and "restore requested" not in out
    assert snapshot(folder) == original


def test_sftp_purge_refuses_a_same_size_object_changed_on_the_server(
        sftp: str, tmp_path: Path) -> None:
    """The proof is the server's md5, not the size: a changed byte stops the purge."""
    folder = os.fsencode(tmp_path / "lab" / "other")
    write_file(folder + b"/data.bin", os.urandom(2 * 1024 * 1024))
    rc, out = cli("archive", folder, "--to", sftp, "--backend", "local")
    assert rc == 0, out
    [remote_copy] = [p for p in (tmp_path / "over-ssh").rglob("data.bin")]
    body = bytearray(remote_copy.read_bytes())
    body[1000] ^= 0xFF
    remote_copy.write_bytes(bytes(body))
    rc, out = cli("purge", folder, "--yes")
    assert rc != 0, out
    assert "data.bin" in out
    assert (tmp_path / "lab" / "other" / "data.bin").exists()


def test_sftp_without_a_hash_command_is_refused_before_queueing(
        sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that runs no commands (shell_type = none) cannot give md5: no proof, so the
    archive is refused in one line before anything is queued (not 5 transient attempts)."""
    conf = sshd.rclone_config(tmp_path / "rclone.conf")
    conf.write_text(conf.read_text().replace("shell_type = unix", "shell_type = none")
                    .replace("md5sum_command = md5sum", "md5sum_command = none")
                    .replace("sha1sum_command = sha1sum", "sha1sum_command = none"))
    configure(monkeypatch, None, backend="local")
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))
    folder = os.fsencode(tmp_path / "lab" / "nohash")
    write_file(folder + b"/a.bin", b"a" * 100)
    rc, out = cli("archive", folder, "--to", f"sftptest:{tmp_path / 'nohash'}",
                  "--backend", "local")
    assert rc == 78, out
    assert "cannot give the md5 hashes verify needs" in out
    assert not (tmp_path / "nohash").exists()
