"""Sparse files stay sparse on restore (issue 15 item 5).

Before: rclone writes every byte it downloads, so a 64 MiB file holding 4 KiB of data came
back taking 64 MiB on disk.  Now inventory marks it ``sparse`` in the record and restore
punches its zero blocks out of the verified copy: the bytes (md5) are the manifest's, the
allocation is small again.  Archived for real to a local-folder remote and to moto S3 (Deep
Archive, thawed at once), restored through the CLI with the local backend.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from archive_helpers import write_file
from s3server import S3Server
from test_restore_support import archive, cli, configure, set_restore_transition

from froster_slurm.restore import holes

MiB = 1024**2
SIZE = 64 * MiB
DATA_AT = 40 * MiB  # one 4 KiB block of data in the middle; holes on both sides


def sparse_folder(root: Path) -> tuple[bytes, str]:
    """A folder with one 64 MiB file holding 4 KiB of data, and a small dense file."""
    folder = os.fsencode(root / "sparse-src")
    os.makedirs(folder)
    path = folder + b"/disk.img"
    with open(path, "wb") as f:
        f.truncate(SIZE)
        f.seek(DATA_AT)
        f.write(b"\xa5" * 4096)
    write_file(folder + b"/dense.txt", b"dense\n" * 1000)
    st = os.stat(path)
    if st.st_blocks * 512 >= SIZE:
        pytest.skip("the test file system cannot hold holes")
    return folder, md5_of(path)


def md5_of(path: bytes) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def check_restored(folder: bytes, dest: bytes, md5: str, out: str) -> None:
    record = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    entries = {e["path"]: e for e in record["entries"]}
    assert entries["disk.img"].get("sparse") is True and "sparse" not in entries["dense.txt"]
    back = dest + b"/disk.img"
    st = os.stat(back)
    assert st.st_size == SIZE
    assert st.st_blocks * 512 <= 64 * 1024, f"{st.st_blocks * 512} bytes allocated"
    assert md5_of(back) == md5 == entries["disk.img"]["md5"]
    assert md5_of(dest + b"/dense.txt") == md5_of(folder + b"/dense.txt")
    print(out)


def test_a_sparse_file_comes_back_sparse_from_a_local_folder_remote(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, md5 = sparse_folder(tmp_path)
    archive(tmp_path, folder, os.fsdecode(tmp_path / "cold"), storage_class="STANDARD")
    stored = next((tmp_path / "cold").rglob("disk.img")).stat()
    assert stored.st_size == SIZE  # the remote's copy is whatever rclone made of it
    configure(monkeypatch, None, backend="local", check_interval=1)
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc == 0, out
    check_restored(folder, dest, md5, out)


@pytest.mark.s3
def test_a_sparse_file_comes_back_sparse_from_s3_deep_archive(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    set_restore_transition(s3, {"progression": "immediate"})
    folder, md5 = sparse_folder(tmp_path)
    archive(tmp_path, folder, s3.remote + "/sparse", server=s3)
    configure(monkeypatch, s3, backend="local", check_interval=1)
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc == 0, out
    check_restored(folder, dest, md5, out)


def test_zero_runs_are_whole_blocks_and_punching_keeps_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "f"
    block = os.statvfs(tmp_path).f_bsize
    data = bytearray(10 * block + 100)
    data[3 * block + 5] = 1  # block 3 holds data; a byte in the partial tail block too
    data[10 * block + 99] = 2
    path.write_bytes(bytes(data))
    fd = os.open(path, os.O_RDWR)
    try:
        assert holes.zero_runs(fd, len(data), block) == [(0, 3 * block),
                                                          (4 * block, 6 * block)]
        assert holes.punch_zeros(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(data)
    assert os.stat(path).st_blocks * 512 <= 3 * block
