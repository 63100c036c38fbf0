"""purge against real archives on a real S3 server (moto on 127.0.0.1, DEEP_ARCHIVE objects).

Every refusal test also proves that NOTHING was deleted: the folder's full snapshot (content,
modes, mtimes, links, trace files) is the same before and after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from archive_helpers import rich_tree, write_file
from s3server import S3Server
from slurm_helpers import wait_gone
from test_restore_support import archive, cli, configure, data_files, snapshot

pytestmark = pytest.mark.s3
ODD = b"proj caf\xe9"  # a folder name that is not UTF-8


@pytest.fixture
def make_archived(tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch
                  ) -> Callable[..., bytes]:
    """Build a rich folder (odd names, links, hard links, empty dirs), archive it for real."""
    configure(monkeypatch, s3, backend="local")

    def make(extra: Callable[[bytes], None] | None = None) -> bytes:
        folder = os.fsencode(tmp_path / "src") + b"/" + ODD
        rich_tree(folder, big=20 * 1024)
        if extra:
            extra(folder)
        archive(tmp_path, folder, s3.remote, server=s3)
        return folder

    return make


def record_of(folder: bytes) -> dict:
    return json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())


def test_dry_run_deletes_nothing_and_reports_what_would_be_freed(make_archived) -> None:
    folder = make_archived()
    before = snapshot(folder, skip_trace=False)
    rc, out = cli("purge", folder, "--dry-run")
    assert rc == 0, out
    assert "verified, would free" in out and "total would free" in out
    assert snapshot(folder, skip_trace=False) == before
    assert record_of(folder)["state"] == "archived"


def test_purge_frees_the_data_and_keeps_trace_skeleton_and_the_outside(
        make_archived, tmp_path: Path) -> None:
    outside = os.fsencode(tmp_path / "outside")
    write_file(outside + b"/precious.txt", b"outside the folder: never touched")

    def link_out(folder: bytes) -> None:
        os.symlink(outside, folder + b"/sub/link-out")
        os.symlink(outside + b"/precious.txt", folder + b"/link-out-file")

    folder = make_archived(link_out)
    manifest = Path(os.fsdecode(folder + b"/Froster.manifest.md5")).read_bytes()
    inodes = {(st.st_ino, st.st_blocks) for st in
              (os.lstat(os.path.join(folder, r)) for r in data_files(folder))}
    allocated = sum(blocks * 512 for _ino, blocks in inodes)  # hard links count once
    rc, out = cli("purge", folder, "--yes")
    assert rc == 0, out
    assert f"({allocated:,} bytes allocated)" in out  # st_blocks of what was removed
    assert data_files(folder) == []
    for d in (b"sub", b"sub/deep", b"empty/nested-empty", b"odd"):  # skeleton kept
        assert os.path.isdir(os.path.join(folder, d)), d
    assert Path(os.fsdecode(outside + b"/precious.txt")).read_bytes().startswith(b"outside")
    # the trace stays: same manifest, record and page say what happened and how to undo it
    assert Path(os.fsdecode(folder + b"/Froster.manifest.md5")).read_bytes() == manifest
    rec = record_of(folder)
    assert rec["state"] == "purged" and rec["purge"]["completed"]
    assert rec["purge"]["by"] and rec["purge"]["at"] and rec["purge"]["bytes_freed"] == allocated
    page = Path(os.fsdecode(folder + b"/index.html")).read_text()
    assert "The data was removed from this disk" in page
    assert "froster-slurm restore" in page and rec["purge"]["at"] in page
    rc, out = cli("purge", folder, "--yes")  # again: nothing left, says so
    assert rc == 0 and "already purged" in out


def test_one_changed_file_stops_the_purge_and_nothing_is_deleted(make_archived) -> None:
    folder = make_archived()
    path = folder + b"/sub/big2.bin"
    st = os.stat(path)
    data = bytearray(Path(os.fsdecode(path)).read_bytes())
    data[100] ^= 0xFF  # same size, same mtime: only the md5 can tell
    Path(os.fsdecode(path)).write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = snapshot(folder, skip_trace=False)
    rc, out = cli("purge", folder, "--yes")
    assert rc != 0
    assert "NOT purged, nothing deleted there" in out
    assert "changed since archiving: sub/big2.bin (md5" in out
    assert snapshot(folder, skip_trace=False) == before


def test_one_new_file_stops_the_purge_and_nothing_is_deleted(make_archived) -> None:
    folder = make_archived()
    write_file(folder + b"/sub/deep/written-later.txt", b"new data nobody archived")
    before = snapshot(folder, skip_trace=False)
    rc, out = cli("purge", folder, "--yes")
    assert rc != 0
    assert "appeared since archiving: sub/deep/written-later.txt" in out
    assert snapshot(folder, skip_trace=False) == before


def test_a_folder_swapped_for_a_symlink_is_never_followed(make_archived,
                                                          tmp_path: Path) -> None:
    """After archiving, sub/ is replaced by a link to an identical copy elsewhere: purge must
    not go through the link (the copy's files match the manifest, so hashing alone would
    not notice)."""
    folder = make_archived()
    elsewhere = os.fsencode(tmp_path / "elsewhere")
    os.rename(folder + b"/sub", elsewhere)
    os.symlink(elsewhere, folder + b"/sub")
    outside_before = snapshot(elsewhere)
    before = snapshot(folder, skip_trace=False)
    rc, out = cli("purge", folder, "--yes")
    assert rc != 0
    assert "sub is now a symlink, was a folder" in out
    assert snapshot(elsewhere) == outside_before
    assert snapshot(folder, skip_trace=False) == before


def _race_at_last_check(monkeypatch: pytest.MonkeyPatch, folder: bytes, rel: bytes,
                        race: Callable[[bytes], None]) -> list[int]:
    """Run ``race(path)`` once, right after purge's last lstat of ``rel`` (once deleting has
    begun: the record says a purge started), the moment a concurrent writer would hit."""
    from froster_slurm.restore import tracefiles

    armed, fired = [False], []
    name = os.path.basename(rel)
    real_stat, real_write = os.stat, tracefiles.write_trace

    def write_trace(*a, **k):
        armed[0] = True
        return real_write(*a, **k)

    def stat_then_race(path, *a, **k):
        st = real_stat(path, *a, **k)
        if armed[0] and not fired and k.get("dir_fd") is not None and \
                os.fsencode(path) == name:
            fired.append(1)
            race(folder + b"/" + rel)
        return st

    monkeypatch.setattr(tracefiles, "write_trace", write_trace)
    monkeypatch.setattr(os, "stat", stat_then_race)
    return fired


def _save_by_rename(path: bytes, data: bytes) -> None:
    """How editors save: write a temp file beside it, rename it over the name."""
    tmp = path + b".swp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def test_a_file_renamed_over_between_the_last_check_and_the_delete_is_kept(
        make_archived, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: a file saved by "write temp, rename over" between purge's last lstat and its
    unlinkat was deleted although its content was never archived."""
    folder = make_archived()
    new = b"saved by an editor while purge ran: never archived"
    fired = _race_at_last_check(monkeypatch, folder, b"sub/big2.bin",
                                lambda p: _save_by_rename(p, new))
    rc, out = cli("purge", folder, "--yes")
    monkeypatch.undo()
    assert fired, "the race never ran: purge did not lstat sub/big2.bin while deleting"
    assert Path(os.fsdecode(folder + b"/sub/big2.bin")).read_bytes() == new
    assert rc != 0 and "changed after it was verified: sub/big2.bin" in out, out
    assert "left in place" in out
    assert not [n for n in os.listdir(folder) if n.startswith(b".Froster-purge-")]
    assert record_of(folder)["state"] != "purged"


def test_a_symlink_retargeted_at_the_last_moment_is_kept(
        make_archived, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_archived()

    def retarget(path: bytes) -> None:
        os.symlink(b"somewhere-new", path + b".new")
        os.rename(path + b".new", path)

    fired = _race_at_last_check(monkeypatch, folder, b"link-to-file", retarget)
    rc, out = cli("purge", folder, "--yes")
    monkeypatch.undo()
    assert fired
    assert os.readlink(folder + b"/link-to-file") == b"somewhere-new"
    assert rc != 0 and "changed after it was verified: link-to-file" in out, out


def test_a_file_whose_name_is_taken_again_stays_in_the_quarantine(
        make_archived, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry failed the check in quarantine and its name was created again meanwhile:
    nothing is replaced, the entry stays in the quarantine and the report says where."""
    from froster_slurm.purge import quarantine

    folder = make_archived()
    path = folder + b"/small.txt"
    real_remove = quarantine.Quarantine.remove

    def remove(self, dfd, name, rel, verify):
        if rel != b"small.txt":
            return real_remove(self, dfd, name, rel, verify)

        def verify_then_recreate(st, qfd, qname):
            write_file(path, b"created again")
            return "changed after it was verified: small.txt (test)"

        return real_remove(self, dfd, name, rel, verify_then_recreate)

    monkeypatch.setattr(quarantine.Quarantine, "remove", remove)
    rc, out = cli("purge", folder, "--yes")
    monkeypatch.undo()
    assert rc != 0 and "kept as .Froster-purge-" in out, out
    assert Path(os.fsdecode(path)).read_bytes() == b"created again"
    kept = [n for n in os.listdir(folder) if n.startswith(b".Froster-purge-")]
    assert len(kept) == 1 and len(os.listdir(folder + b"/" + kept[0])) == 1
    rc, out = cli("purge", folder, "--yes")  # the next purge refuses until someone looks
    assert rc != 0 and "an interrupted purge left" in out, out


def test_never_archived_folder_is_a_clear_error(tmp_path: Path, s3: S3Server,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, s3, backend="local")
    folder = os.fsencode(tmp_path / "plain")
    write_file(folder + b"/keep.txt", b"keep me")
    rc, out = cli("purge", folder, "--yes")
    assert rc == 66
    assert "was never archived" in out and "refusing to purge" in out
    assert Path(os.fsdecode(folder + b"/keep.txt")).read_bytes() == b"keep me"


def test_an_object_missing_on_the_remote_stops_the_purge(make_archived, s3: S3Server) -> None:
    folder = make_archived()
    rec = record_of(folder)
    mine = os.fsdecode(folder).split("/")[-3]  # this test's tmp dir (keys encode \xe9)
    key = next(k for k in s3.list_keys() if mine in k and k.endswith(rec["bundles"][0]["name"]))
    s3.client().delete_object(Bucket=s3.bucket, Key=key)
    before = snapshot(folder, skip_trace=False)
    rc, out = cli("purge", folder, "--yes")
    assert rc != 0
    assert "the remote does not hold the archive intact" in out and "missing" in out
    assert snapshot(folder, skip_trace=False) == before


def test_a_tampered_manifest_stops_the_purge(make_archived) -> None:
    folder = make_archived()
    path = Path(os.fsdecode(folder + b"/Froster.manifest.md5"))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[1:]))  # one file silently dropped from the manifest
    before = snapshot(folder, skip_trace=False)
    rc, out = cli("purge", folder, "--yes")
    assert rc != 0 and "not the manifest the record was written with" in out
    assert snapshot(folder, skip_trace=False) == before


@pytest.mark.slurm
def test_a_large_folder_is_purged_by_a_slurm_job(make_archived, slurm_cluster: None,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 s3: S3Server) -> None:
    folder = make_archived()
    configure(monkeypatch, s3, backend="slurm", inline_max="1KiB")
    rc, out = cli("purge", folder, "--yes")
    assert rc == 0, out
    assert "go to Slurm job" in out
    job = out.split("Slurm job ", 1)[1].split(";")[0]
    wait_gone(job, 180)
    run_dir = Path(out.split("results in ", 1)[1].split("purge.json")[0])
    results = json.loads((run_dir / "purge.json").read_text())
    assert [r["purged"] for r in results] == [True], results
    assert data_files(folder) == []
    assert record_of(folder)["state"] == "purged"
