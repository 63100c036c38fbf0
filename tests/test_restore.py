"""restore against real archives: moto S3 on 127.0.0.1 with DEEP_ARCHIVE objects (unreadable
until a restore request), a local-folder remote (no restore step), and the real Slurm cluster
for the guarded job."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from archive_helpers import md5sum_check, rich_tree, write_file
from s3server import S3Server
from slurm_helpers import wait_gone
from test_restore_support import (
    archive,
    cancel,
    cli,
    configure,
    data_files,
    inode_groups,
    jobs_named,
    set_restore_transition,
    snapshot,
)

from froster_slurm.config import load_config
from froster_slurm.restore import guard
from froster_slurm.restore.record import read_local
from froster_slurm.restore.remote import NotReady, download, rclone_from_config, request_restore
from froster_slurm.restore.restorestate import read_state

pytestmark = pytest.mark.s3
ODD = b"proj caf\xe9"


@pytest.fixture(autouse=True)
def immediate_restores(s3: S3Server) -> Iterator[None]:
    """moto's default: a requested restore is readable at once (one test holds it back)."""
    set_restore_transition(s3, {"progression": "immediate"})
    yield
    set_restore_transition(s3, {"progression": "immediate"})


def rich_folder(tmp_path: Path) -> bytes:
    folder = os.fsencode(tmp_path / "src") + b"/" + ODD
    rich_tree(folder, big=20 * 1024)
    write_file(folder + b"/empty/also-empty-file", b"")
    return folder


def test_deep_archive_objects_are_unreadable_until_the_restore_request(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = rich_folder(tmp_path)
    archive(tmp_path, folder, s3.remote, server=s3)
    configure(monkeypatch, s3)
    arch = read_local(folder)
    assert arch is not None and arch.storage_class == "DEEP_ARCHIVE"
    objects = sorted(arch.data_objects())
    assert any(o.startswith("Froster.bundles/") for o in objects) and len(objects) > 1
    rclone = rclone_from_config(load_config(), tmp_path / "logs")
    stage, work = tmp_path / "stage", tmp_path / "work"
    with pytest.raises(NotReady):
        download(rclone, arch.destination, objects, stage, work)
    assert not any(p.is_file() for p in stage.rglob("*"))
    got = request_restore(rclone, arch.destination, objects, "Bulk", 1, work)
    assert sorted(got.requested) == objects and not got.failed
    download(rclone, arch.destination, objects, stage, work)
    for o in objects:
        assert (stage / o).stat().st_size == arch.object_sizes()[o]


@pytest.mark.slurm
def test_round_trip_archive_purge_restore_gives_back_the_tree(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch,
        slurm_cluster: None) -> None:
    folder = rich_folder(tmp_path)
    archive(tmp_path, folder, s3.remote, server=s3)
    original = snapshot(folder)
    links = inode_groups(folder)
    assert any(v[3] == b"" for v in original.values())  # empty files
    assert b"odd/caf\xe9.txt" in original and b"odd/new\nline.txt" in original
    configure(monkeypatch, s3, check_interval=1)
    rc, out = cli("purge", folder, "--yes")
    assert rc == 0, out
    assert data_files(folder) == []
    rc, out = cli("restore", folder, "--wait")
    assert rc == 0, out
    assert "to restore:" in out and "from DEEP_ARCHIVE, tier Bulk" in out
    assert "expected wait: up to 48 hours" in out and "estimated cost: $" in out
    assert "restored: " in out
    assert snapshot(folder) == original  # bytes, types, modes, mtimes, link targets, dirs
    assert inode_groups(folder) == links  # hard links are hard links again
    assert md5sum_check(folder).returncode == 0
    rec = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    assert rec["state"] == "restored" and rec["restored"]["by"]
    page = Path(os.fsdecode(folder + b"/index.html")).read_text()
    assert "The data is back on this disk" in page
    assert not [n for n in os.listdir(folder) if n.startswith(b".Froster-")]  # staging gone
    rc, out = cli("restore", folder)
    assert rc == 0 and "nothing to restore" in out  # and no second thaw is requested


@pytest.mark.slurm
def test_a_second_restore_while_one_is_pending_submits_nothing(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch,
        slurm_cluster: None) -> None:
    folder = rich_folder(tmp_path)
    archive(tmp_path, folder, s3.remote, server=s3)
    configure(monkeypatch, s3, check_interval=3600)  # the first check is an hour away
    target = os.fsencode(tmp_path / "elsewhere")
    name = guard.job_name("restore", target)
    rc, out = cli("restore", folder, "--to", target, "--no-wait")
    assert rc == 0, out
    try:
        first = jobs_named(name)
        assert len(first) == 1 and first[0][1] == "PENDING", first
        rc, out = cli("restore", folder, "--to", target, "--no-wait")
        assert rc == 0, out
        assert f"already queued as job {first[0][0]}" in out and "nothing submitted" in out
        assert jobs_named(name) == first
    finally:
        for job, _state in jobs_named(name):
            cancel(job)


@pytest.mark.slurm
def test_the_guarded_job_waits_for_the_thaw_then_restores(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch,
        slurm_cluster: None) -> None:
    """While moto says 'ongoing-request=true' the job finds nothing readable and requeues
    ITSELF (same job id, later start); once the thaw is done it restores everything."""
    folder = rich_folder(tmp_path)
    archive(tmp_path, folder, s3.remote, server=s3)
    original = snapshot(folder)
    configure(monkeypatch, s3, check_interval=2)
    dest = os.fsencode(tmp_path / "copy")
    set_restore_transition(s3, {"progression": "manual", "times": 1})
    rc, out = cli("restore", folder, "--to", dest, "--no-wait")
    assert rc == 0, out
    job = re.search(r"job (\d+) \(slurm\)", out).group(1)
    client = s3.client()
    for key in s3.list_keys():  # the first look moves each restored key to IN_PROGRESS...
        client.head_object(Bucket=s3.bucket, Key=key)
    set_restore_transition(s3, {"progression": "manual", "times": 10**9})  # ...and keeps it
    run_dir = Path(re.search(r"; run (\S+)", out).group(1))
    try:
        deadline = time.time() + 120
        st = read_state(run_dir)
        while time.time() < deadline and not (st.get("checks", 0) >= 2
                                              and st["phase"] == "waiting"):
            time.sleep(0.5)
            st = read_state(run_dir)
        assert st["checks"] >= 2 and st["phase"] == "waiting", st
        assert st["job_ids"] == [job]  # one job, requeued, never a second one
        assert [j for j, _ in jobs_named(guard.job_name("restore", dest))] == [job]
        assert not os.path.exists(dest + b"/big.bin")
        set_restore_transition(s3, {"progression": "immediate"})
        wait_gone(job, 120)
    finally:
        cancel(job)
    st = read_state(run_dir)
    assert st["phase"] == "done", st
    assert snapshot(dest) == original
    # restoring elsewhere leaves a note in the original folder's record, no trace in the copy
    rec = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    assert rec["copies"][0]["to"] == os.fsdecode(dest) and rec["state"] == "archived"
    assert not os.path.exists(dest + b"/Froster.archive.json")


@pytest.mark.slurm
def test_restore_elsewhere_never_overwrites_without_force(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slurm_cluster: None) -> None:
    """A local-folder remote has no restore step: the job downloads at once."""
    folder = rich_folder(tmp_path)
    remote = os.fsencode(tmp_path / "cold")
    archive(tmp_path, folder, os.fsdecode(remote))
    original = snapshot(folder)
    configure(monkeypatch, None)
    dest = os.fsencode(tmp_path / "dest")
    write_file(dest + b"/small.txt", b"mine, not the archive's")
    write_file(dest + b"/unrelated.txt", b"stays")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc != 0 and "would be overwritten" in out and "small.txt" in out
    assert Path(os.fsdecode(dest + b"/small.txt")).read_bytes() == b"mine, not the archive's"
    assert sorted(os.listdir(dest)) == [b"small.txt", b"unrelated.txt"]
    rc, out = cli("restore", folder, "--to", dest, "--wait", "--force")
    assert rc == 0, out
    assert "readable at once, no restore request needed" in out
    got = snapshot(dest)
    assert got.pop(b"unrelated.txt")[3] == b"stays"
    assert got == original
    shutil.rmtree(os.fsdecode(dest))


def test_non_recursive_archive_purge_and_restore_leave_subfolders_alone(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """archive.recursive = false (the default): the folder's own files only; its subfolder is
    archived on its own, lives under the same remote prefix, and must not be purged or
    restored with it."""
    folder = os.fsencode(tmp_path / "proj")
    write_file(folder + b"/top.bin", os.urandom(9000), mtime=1_400_000_000)
    write_file(folder + b"/top-small.txt", b"small")
    write_file(folder + b"/sub/child.bin", os.urandom(9000))
    archive(tmp_path, folder, s3.remote, server=s3, recursive=False)
    shutil.rmtree(os.fsdecode(tmp_path / "archive-state"))
    archive(tmp_path, folder + b"/sub", s3.remote, server=s3, recursive=False)
    sub_before = snapshot(folder + b"/sub", skip_trace=False)
    top_before = {k: v for k, v in snapshot(folder).items() if b"/" not in k and k != b"sub"}
    configure(monkeypatch, s3, backend="local")
    rc, out = cli("purge", folder, "--yes")
    assert rc == 0, out
    assert sorted(os.listdir(folder)) == [b"Froster.archive.json", b"Froster.manifest.md5",
                                          b"index.html", b"sub"]
    assert snapshot(folder + b"/sub", skip_trace=False) == sub_before
    rc, out = cli("restore", folder)  # local backend: the job runs right here
    assert rc == 0, out
    assert {k: v for k, v in snapshot(folder).items()
            if b"/" not in k and k != b"sub"} == top_before
    assert snapshot(folder + b"/sub", skip_trace=False) == sub_before


def test_a_folder_that_is_gone_is_found_through_the_catalog(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from froster_slurm.catalog import store as catalog
    from froster_slurm.run.rundir import catalog_path

    folder = os.fsencode(tmp_path / "lost")
    rich_tree(folder, big=9000)
    rec = archive(tmp_path, folder, s3.remote, server=s3)
    original = snapshot(folder)
    configure(monkeypatch, s3, backend="local")
    catalog.add_records(catalog_path(load_config()), [rec])
    shutil.rmtree(os.fsdecode(folder))  # the whole folder, trace included
    rc, out = cli("restore", folder)
    assert rc == 0, out
    assert snapshot(folder) == original
    assert md5sum_check(folder).returncode == 0  # the trace came back too
    assert read_local(folder).state == "restored"


def test_estimate_uses_configured_prices_and_tier_times(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from froster_slurm.errors import UserError
    from froster_slurm.restore.estimate import estimate

    monkeypatch.setenv("FROSTER_SLURM_RESTORE__EGRESS_PER_GB", "0")
    cfg = load_config()
    e = estimate(cfg, "DEEP_ARCHIVE", "bulk", 7, 2 * 1000**4, 4000)
    assert e.thaw and e.tier == "Bulk" and e.hours == (0.0, 48.0)
    assert e.retrieval_usd == pytest.approx(2000 * 0.0025)
    assert e.requests_usd == pytest.approx(4 * 0.025)
    g = estimate(cfg, "GLACIER", "Standard", 1, 1000**3, 1)
    assert g.hours == (3.0, 5.0) and g.retrieval_usd == pytest.approx(0.01)
    assert "3-5 hours" in " ".join(g.lines())
    assert not estimate(cfg, "STANDARD", "Bulk", 1, 1, 1).thaw
    with pytest.raises(UserError, match="Bulk or Standard"):
        estimate(cfg, "GLACIER", "Expedited", 1, 1, 1)
