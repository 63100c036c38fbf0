"""Remotes behind wrappers (alias, crypt) over moto S3 with Deep Archive: the thaw request
follows the real backend, restores complete, and a restore never waits without limit.

Before: the thaw was asked for only when ``rclone listremotes --long`` said ``s3``, so a
restore through an alias printed "readable at once, no restore request needed" and requeued
itself for ever ("Object in GLACIER, restore first").
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from archive_helpers import rich_tree, write_file
from s3server import S3Server
from test_restore_support import (
    cli,
    configure,
    set_restore_transition,
    snapshot,
)

from froster_slurm.remotes.resolve import resolve

pytestmark = pytest.mark.s3


def wrapped_config(tmp_path: Path, server: S3Server) -> Path:
    """moto's remote plus an alias and a crypt remote over it."""
    password = subprocess.run(["rclone", "obscure", "froster-test-pass"], capture_output=True,
                              text=True, check=True).stdout.strip()
    conf = tmp_path / "wrapped.conf"
    conf.write_text(server.rclone_config.read_text() +
                    f"\n[al]\ntype = alias\nremote = s3test:{server.bucket}/aliased\n"
                    f"\n[cr]\ntype = crypt\nremote = s3test:{server.bucket}/enc\n"
                    f"password = {password}\n"
                    "\n[alcr]\ntype = alias\nremote = cr:deeper\n")
    return conf


def use_config(monkeypatch: pytest.MonkeyPatch, server: S3Server, conf: Path, **env: str
               ) -> None:
    configure(monkeypatch, server, backend="local", check_interval=1)
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))
    for key, value in env.items():
        monkeypatch.setenv(f"FROSTER_SLURM_{key}", value)


@pytest.fixture(autouse=True)
def immediate_restores(s3: S3Server):
    set_restore_transition(s3, {"progression": "immediate"})
    yield
    set_restore_transition(s3, {"progression": "immediate"})


def test_resolution_follows_alias_and_crypt_down_to_s3(tmp_path: Path, s3: S3Server) -> None:
    from froster_slurm.remotes.rclone import Rclone
    from froster_slurm.remotes.resolve import config_dump

    dump = config_dump(Rclone("rclone", str(wrapped_config(tmp_path, s3))))
    info = resolve(dump, "alcr:froster/x")
    assert [b.type for b in info.backends] == ["s3"]
    assert info.backends[0].wrappers == ("alias", "crypt")
    assert info.has_storage_classes and info.encrypted and not info.hash_passthrough
    assert info.needs_thaw(True) and not info.needs_thaw(True, ["alcr"])
    desc = info.describe()
    assert desc["bucket"] == s3.bucket and desc["endpoint"] == s3.endpoint
    assert desc["provider"] == "Other" and desc["through"] == "alias/crypt"
    assert "secret" not in json.dumps(desc) and "password" not in json.dumps(desc)
    plain = resolve(dump, "al:froster/x")
    assert plain.backends[0].path == f"{s3.bucket}/aliased/froster/x"
    assert plain.hash_passthrough and not plain.encrypted


def test_alias_over_s3_deep_archive_is_thawed_and_restored(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = wrapped_config(tmp_path, s3)
    folder = os.fsencode(tmp_path / "src" / "proj")
    rich_tree(folder, big=20 * 1024)
    use_config(monkeypatch, s3, conf)
    record = _archive_with(tmp_path, folder, "al:", conf)
    keys = [k for k in s3.list_keys("aliased/") if k.endswith("big.bin")]
    assert keys and s3.client().head_object(Bucket=s3.bucket, Key=keys[0])[
        "StorageClass"] == "DEEP_ARCHIVE"
    original = snapshot(folder)
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc == 0, out
    assert "no restore request needed" not in out and "from DEEP_ARCHIVE" in out
    assert snapshot(dest) == original
    assert record["destination"].startswith("al:")
    # the record names what "al:" was, without a secret
    remote = record["remote"]
    assert (remote["name"], remote["type"], remote["provider"]) == ("al", "s3", "Other")
    assert (remote["bucket"], remote["endpoint"]) == (s3.bucket, s3.endpoint)
    assert remote["through"] == "alias" and remote["region"] == "us-east-1"
    raw = Path(os.fsdecode(folder + b"/Froster.archive.json")).read_text()
    assert "froster-test-secret" not in raw and "froster-test-access" not in raw
    page = Path(os.fsdecode(folder + b"/index.html")).read_text()
    assert f"bucket {s3.bucket}" in page and "through alias" in page


def test_a_restore_that_stays_frozen_fails_after_max_wait_naming_the_objects(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = wrapped_config(tmp_path, s3)
    folder = os.fsencode(tmp_path / "src" / "frozen")
    write_file(folder + b"/big.bin", os.urandom(50 * 1024))
    use_config(monkeypatch, s3, conf, RESTORE__MAX_WAIT="2")
    _archive_with(tmp_path, folder, "al:", conf)
    # moto: the first look moves a requested key to IN_PROGRESS, then it stays there
    set_restore_transition(s3, {"progression": "manual", "times": 1})
    key = next(k for k in s3.list_keys("aliased/") if k.endswith("frozen/big.bin"))
    s3.client().restore_object(Bucket=s3.bucket, Key=key, RestoreRequest={"Days": 1})
    s3.client().head_object(Bucket=s3.bucket, Key=key)
    set_restore_transition(s3, {"progression": "manual", "times": 10**9})
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc != 0, out
    assert "still frozen after" in out and "big.bin" in out, out


def _archive_with(tmp_path: Path, folder: bytes, remote: str, conf: Path) -> dict:
    from archive_helpers import make_run, run_task, state
    from s3server import RCLONE_TEST_FLAGS

    run_dir = make_run(tmp_path / "archive-state", [folder], remote,
                       rclone_config=str(conf), rclone_flags=RCLONE_TEST_FLAGS,
                       bundle_threshold=4096, storage_class="DEEP_ARCHIVE")
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr[-3000:]
    assert state(run_dir, 0)["state"] == "done"
    return json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())


def test_union_over_s3_deep_archive_is_thawed_through_its_upstream_and_restored(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A union has no restore command of its own: the thaw goes to the S3 upstream itself."""
    conf = tmp_path / "union.conf"
    conf.write_text(s3.rclone_config.read_text() +
                    f"\n[un]\ntype = union\nupstreams = s3test:{s3.bucket}/unioned "
                    # S3 has no folders before their objects: "existing path"
                    # policies (rclone's default epmfs) find none to create in
                    f"s3test:{s3.bucket}/unioned2\ncreate_policy = ff\n")
    folder = os.fsencode(tmp_path / "src" / "u")
    rich_tree(folder, big=20 * 1024)
    use_config(monkeypatch, s3, conf)
    record = _archive_with(tmp_path, folder, "un:", conf)
    assert record["storage_class"] == "DEEP_ARCHIVE" and record["remote"]["type"] == "union"
    assert [(b["type"], b["through"]) for b in record["remote"]["backends"]] == [
        ("s3", "union"), ("s3", "union")]
    keys = [k for k in s3.list_keys("unioned") if k.endswith("big.bin")]
    assert keys and s3.client().head_object(Bucket=s3.bucket, Key=keys[0])[
        "StorageClass"] == "DEEP_ARCHIVE"
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc == 0, out
    assert "restore requested for" in out and "no restore request needed" not in out
    assert snapshot(dest) == snapshot(folder)


def test_union_over_s3_with_an_existing_path_policy_is_refused_before_queueing(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """rclone's default create policy (epmfs) needs the folder to exist on an upstream; on S3
    it never does before the first object, so every upload failed "object not found" and the
    task started over from the inventory, attempt after attempt."""
    conf = tmp_path / "union.conf"
    conf.write_text(s3.rclone_config.read_text() +
                    f"\n[un]\ntype = union\nupstreams = s3test:{s3.bucket}/a "
                    f"s3test:{s3.bucket}/b\n")
    folder = os.fsencode(tmp_path / "src" / "u")
    write_file(folder + b"/a.bin", b"a" * 100)
    use_config(monkeypatch, s3, conf)
    rc, out = cli("archive", folder, "--to", "un:", "--backend", "local")
    assert rc == 78, out
    assert ("the union 'un' writes with create_policy epmfs (\"existing path\"), but its s3 "
            "upstreams have no folder before its first object") in out
    assert "set create_policy = ff (the first upstream) or all for 'un'" in out


def test_union_of_local_folders_records_no_storage_class(
        tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: a union of local folders ignored the class while the record said DEEP_ARCHIVE."""
    conf = tmp_path / "local-union.conf"
    conf.write_text(f"[lu]\ntype = union\nupstreams = {tmp_path / 'u1'} {tmp_path / 'u2'}\n")
    folder = os.fsencode(tmp_path / "src" / "lu")
    write_file(folder + b"/a.bin", os.urandom(50 * 1024))
    use_config(monkeypatch, s3, conf)
    rc, out = cli("archive", folder, "--to", "lu:", "--backend", "local")
    assert rc == 0, out
    assert "(local) has no storage classes" in out
    record = json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())
    assert (record["storage_class"], record["trace_storage_class"]) == ("none", "none")
    assert [b["type"] for b in record["remote"]["backends"]] == ["local", "local"]
    # rclone's default create policy (epmfs) writes to one upstream
    assert [p for u in ("u1", "u2") for p in (tmp_path / u).rglob("*.tar")]  # a.bin's bundle
    dest = os.fsencode(tmp_path / "back")
    rc, out = cli("restore", folder, "--to", dest, "--wait")
    assert rc == 0, out
    assert snapshot(dest) == snapshot(folder)
