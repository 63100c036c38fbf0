"""Names rclone treats specially, and paths too long for a remote (issue 20).

rclone encodes control characters as the Unicode "control pictures" (U+2400-U+2421) and quotes a
literal look-alike with U+201B.  A folder or file whose own name holds ``␊`` (U+240A) or ``‛``
(U+201B) must come back byte for byte, not as a newline or with a quote lost.  A folder whose
path alone makes every object key longer than S3's 1,024 bytes cannot be archived there: that is
said at once, as a permanent failure naming the limit, not retried for a quarter of an hour.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from archive_helpers import make_run, run_task, state, write_file
from s3server import RCLONE_TEST_FLAGS, S3Server
from test_restore_support import cli, configure, data_files, snapshot

from froster_slurm.errors import EXIT_PERMANENT

LOOKALIKE = "\u240a".encode()   # SYMBOL FOR LINE FEED, what rclone writes for "\n"
QUOTE = "\u201b".encode()       # rclone's quote for a literal look-alike


def _tree(root: bytes) -> None:
    write_file(root + b"/plain.txt", b"plain\n")
    write_file(root + b"/plain-big.bin", os.urandom(200_000))  # an object of its own
    write_file(root + b"/f" + LOOKALIKE + QUOTE + b".txt", b"x" * 3000)
    write_file(root + b"/" + QUOTE + LOOKALIKE + b"/big.bin", os.urandom(300_000))
    write_file(root + b"/real\nnewline" + LOOKALIKE + b"/n.txt", b"newline and its picture")
    write_file(root + b"/" + QUOTE * 3 + b".bin", os.urandom(120_000))


@pytest.mark.s3
@pytest.mark.parametrize("kind", ["local", "s3"])
def test_folders_and_files_named_with_rclone_lookalikes_round_trip(
        kind: str, tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = os.fsencode(tmp_path / "src") + b"/lab " + LOOKALIKE + b" and " + QUOTE + b" q"
    _tree(folder)
    original = snapshot(folder)
    extra: dict = {"bundle_threshold": 64 * 1024, "storage_class": "STANDARD"}
    if kind == "s3":
        remote = s3.remote
        extra.update(rclone_config=str(s3.rclone_config), rclone_flags=RCLONE_TEST_FLAGS)
    else:
        remote = str(tmp_path / "cold")
        extra["storage_class"] = "none"
    run_dir = make_run(tmp_path / "state", [folder], remote, **extra)
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr[-3000:]
    assert state(run_dir, 0)["state"] == "done"
    record = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    assert os.fsencode(record["source"]) == folder
    assert any(o.endswith("plain-big.bin") for o in json.dumps(record).split('"'))

    configure(monkeypatch, s3 if kind == "s3" else None, backend="local")
    monkeypatch.setenv("FROSTER_SLURM_STATE_DIR", str(tmp_path / "state"))
    rc, out = cli("purge", folder, "--yes")
    assert rc == 0, out
    assert data_files(folder) == []
    rc, out = cli("restore", folder, "--wait")
    assert rc == 0, out
    assert snapshot(folder) == original  # the very bytes of every name and file


@pytest.mark.s3
def test_a_folder_whose_path_alone_exceeds_the_s3_key_limit_fails_at_once(
        tmp_path: Path, s3: S3Server) -> None:
    deep = os.fsencode(tmp_path / "src")
    while len(deep) < 1100:
        deep += b"/" + b"d" * 200
    write_file(deep + b"/data.bin", os.urandom(10_000))
    run_dir = make_run(tmp_path / "state", [deep], s3.remote, storage_class="STANDARD",
                       rclone_config=str(s3.rclone_config), rclone_flags=RCLONE_TEST_FLAGS)
    p = run_task(run_dir, 0, timeout=60)
    st = state(run_dir, 0)
    assert p.returncode == EXIT_PERMANENT, (p.returncode, p.stderr[-2000:])
    assert st["state"] == "failed", st
    text = json.dumps(st) + p.stderr
    assert "1,024" in text and "key" in text, text[-2000:]


def test_a_4kb_path_fails_at_once_on_a_local_remote(tmp_path: Path) -> None:
    """A folder path of ~4 KB archived into a local folder: its destination would pass the
    system's 4,096-byte PATH_MAX, a failure no retry can fix."""
    deep = os.fsencode(tmp_path / "src")
    while len(deep) < 3800:
        deep += b"/" + b"p" * 240
    deep += b"/" + b"q" * (4060 - len(deep) - 1)  # the source fits; its destination cannot
    write_file(deep + b"/data.bin", os.urandom(70_000))
    run_dir = make_run(tmp_path / "state", [deep], str(tmp_path / "cold"),
                       storage_class="none", bundle_threshold=1024)
    p = run_task(run_dir, 0, timeout=120)
    st = state(run_dir, 0)
    assert p.returncode == EXIT_PERMANENT, (p.returncode, p.stderr[-2000:])
    assert st["state"] == "failed", st
    assert st.get("attempts", 1) <= 1, st
