"""util/atomic.py and util/clock.py: the one writer every state file goes through, and the
one timestamp in them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from froster_slurm.util import atomic
from froster_slurm.util.atomic import atomic_file, atomic_text, write_atomic
from froster_slurm.util.clock import now_iso, parse_iso, seconds_between


def _synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Record every fsync as (what the descriptor is, whether it is a directory)."""
    seen: list[tuple[str, bool]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.append((os.readlink(f"/proc/self/fd/{fd}"), stat.S_ISDIR(st.st_mode)))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    return seen


def test_write_syncs_the_file_then_its_directory(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _synced(monkeypatch)
    dest = tmp_path / "state.json"
    write_atomic(dest, b'{"a": 1}')
    assert dest.read_bytes() == b'{"a": 1}'
    assert len(seen) == 2
    (file_path, file_is_dir), (dir_path, dir_is_dir) = seen
    assert not file_is_dir and os.path.dirname(file_path) == str(tmp_path)
    assert os.path.basename(file_path).startswith(".state.json.")  # the tmp, before rename
    assert dir_is_dir and dir_path == str(tmp_path)
    assert os.listdir(tmp_path) == ["state.json"]


def test_crash_between_write_and_rename_keeps_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "jobs.toml"
    dest.write_text("old = 1\n")

    def crash(src: object, dst: object) -> None:
        raise OSError(5, "node lost")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError, match="node lost"):
        write_atomic(dest, "new = 2\n")
    assert dest.read_text() == "old = 1\n"
    assert os.listdir(tmp_path) == ["jobs.toml"]  # the temporary file is gone too


def test_exception_while_writing_keeps_the_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "folders.nul"
    dest.write_bytes(b"a\0")
    with pytest.raises(ValueError), atomic_file(dest) as f:
        f.write(b"half")
        raise ValueError("bad record")
    assert dest.read_bytes() == b"a\0"
    assert os.listdir(tmp_path) == ["folders.nul"]


def test_killed_writer_leaves_old_file_and_only_a_hidden_tmp(tmp_path: Path) -> None:
    """A process killed between write and rename (SIGKILL: no cleanup runs)."""
    dest = tmp_path / "run.toml"
    dest.write_text("kind = 'archive'\n")
    pid = os.fork()
    if pid == 0:  # the child writes, then dies before the block ends
        with atomic_file(dest) as f:
            f.write(b"kind = 'cut")
            f.flush()
            os._exit(9)
    os.waitpid(pid, 0)
    assert dest.read_text() == "kind = 'archive'\n"
    left = sorted(os.listdir(tmp_path))
    assert left[1:] == ["run.toml"] and left[0].startswith(".run.toml.")
    assert left[0].endswith(".tmp")


def test_mode_is_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "secrets.json", "{}", mode=0o600)
        write_atomic(tmp_path / "plain", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o666
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "plain", "y")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o600


def test_text_and_bytes_paths(tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/caf\xe9.csv"  # not UTF-8: paths are bytes
    with atomic_text(name, encoding="latin-1", newline="") as f:
        f.write("a,\xe9\r\n")
    assert Path(os.fsdecode(name)).read_bytes() == b"a,\xe9\r\n"
    write_atomic(tmp_path / "t.txt", "h\u00e9")
    assert (tmp_path / "t.txt").read_bytes() == "h\u00e9".encode()


def test_replaces_a_symlink_never_writes_through_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "link").symlink_to(target)
    write_atomic(tmp_path / "link", "new")
    assert target.read_text() == "keep"
    assert not (tmp_path / "link").is_symlink()
    assert (tmp_path / "link").read_text() == "new"


def test_clock_round_trip() -> None:
    stamp = now_iso()
    assert len(stamp) == 20 and stamp.endswith("Z") and stamp[10] == "T"
    assert parse_iso(stamp) is not None and parse_iso(stamp).utcoffset().total_seconds() == 0
    assert parse_iso("yesterday") is None and parse_iso(None) is None
    assert seconds_between("2026-01-01T00:00:00Z", "2026-01-01T00:01:30Z") == 90.0
    assert seconds_between("2026-01-01T00:01:30Z", "2026-01-01T00:00:00Z") == 0.0
    assert seconds_between(None, "2026-01-01T00:00:00Z") is None
