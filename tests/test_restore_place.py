"""place: staging -> target, raced by someone who can write the target (issue 12 item 3).

The person whose folder is restored can rename, replace and symlink inside it while the
restore runs (a root restore into a user's folder is the case that matters).  These tests run
``place_all`` on a real archive's record with a real staging tree, and make the swap happen
at the worst moment: right after a file is linked into place (before its mode and mtime were
set, in the old order), and right after the conflict check.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from archive_helpers import write_file
from test_restore_support import archive

from froster_slurm.restore import place
from froster_slurm.restore.place import Owners, place_all
from froster_slurm.restore.record import read_local
from froster_slurm.restore.safefs import DirCache, UnsafePathError, open_root


@pytest.fixture
def setup(tmp_path: Path):
    folder = os.fsencode(tmp_path / "proj")
    write_file(folder + b"/x", b"the archived x", mtime=1_500_000_000)
    os.chmod(folder + b"/x", 0o777)
    write_file(folder + b"/sub/y", b"the archived y")
    archive(tmp_path, folder, os.fsdecode(tmp_path / "cold"))
    arch = read_local(folder)
    stage = os.fsencode(tmp_path / "stage")
    shutil.copytree(folder, stage, symlinks=True)
    for name in (b"Froster.archive.json", b"Froster.manifest.md5", b"index.html"):
        os.unlink(stage + b"/" + name)
    os.chmod(stage + b"/x", 0o600)  # as unpack leaves a staged file
    victim = os.fsencode(tmp_path / "victim")
    write_file(victim, b"someone else's", mtime=1_400_000_000)
    os.chmod(victim, 0o600)
    target = os.fsencode(tmp_path / "target")
    os.mkdir(target)
    return arch, stage, target, victim


def _place(arch, stage: bytes, target: bytes):
    sfd, tfd = open_root(stage), open_root(target)
    try:
        with DirCache(sfd) as staged, DirCache(tfd) as placed:
            return place_all(arch, staged, placed, force=False, owners=Owners())
    finally:
        os.close(sfd)
        os.close(tfd)


def test_a_placed_file_swapped_for_a_symlink_never_passes_its_mode_on(
        setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: the record's mode and mtime were set by name after placing, so a symlink put
    there in between carried them to its target."""
    arch, stage, target, victim = setup
    real_link = os.link

    def link_then_swap(src, dst, *a, **k):
        real_link(src, dst, *a, **k)
        if os.fsencode(dst) == b"x" and k.get("dst_dir_fd") is not None:
            os.unlink(target + b"/x")
            os.symlink(victim, target + b"/x")

    monkeypatch.setattr(os, "link", link_then_swap)
    _place(arch, stage, target)
    monkeypatch.undo()
    st = os.stat(victim)
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o600, 1_400_000_000 * 10**9)
    assert open(victim, "rb").read() == b"someone else's"


def test_a_folder_swapped_for_a_symlink_after_the_check_is_never_entered(
        setup, monkeypatch: pytest.MonkeyPatch) -> None:
    arch, stage, target, victim = setup
    outside = os.path.dirname(victim) + b"/outside"
    os.mkdir(outside)
    real = place.find_conflicts

    def check_then_swap(*a, **k):
        got = real(*a, **k)
        os.symlink(outside, target + b"/sub")
        return got

    monkeypatch.setattr(place, "find_conflicts", check_then_swap)
    with pytest.raises(UnsafePathError, match="sub"):
        _place(arch, stage, target)
    assert os.listdir(outside) == []


def test_modes_and_times_come_from_the_record_without_set_id_bits(setup) -> None:
    arch, stage, target, _victim = setup
    entry = next(e for e in arch.record.entries if e.path == b"x")
    arch.files[b"x"] = arch.files[b"x"].__class__(
        **{**arch.files[b"x"].__dict__, "mode": stat.S_IFREG | 0o6755})
    entry.mode = stat.S_IFREG | 0o6755
    out = _place(arch, stage, target)
    st = os.lstat(target + b"/x")
    assert stat.S_IMODE(st.st_mode) == 0o755 and out.setid_dropped == 1
    assert st.st_mtime_ns == 1_500_000_000 * 10**9
    assert open(target + b"/sub/y", "rb").read() == b"the archived y"
