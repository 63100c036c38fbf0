"""restore treats the archive as a stranger's input: crafted records and bundles, records a
user edited, poisoned catalog rows (issue 12 item 3, issue 20 items 1 and 3).

Archives are made for real (the archive stage's task) to a local-folder remote, then forged
(``restore_forge``) the way their writer could; restore runs through the CLI with the local
backend, so the guarded job runs in this process.  Every refusal also proves that nothing was
written outside the target and that the victim outside is unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from accounts import PREFIX, as_user, ensure_account, shared_dir, user_python
from archive_helpers import make_run, run_task, write_file
from restore_forge import M, forge
from test_restore_support import archive, cli, configure, snapshot

from froster_slurm.catalog import store as catalog
from froster_slurm.config import load_config
from froster_slurm.run.rundir import catalog_path, runs_dir


@pytest.fixture
def archived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A small folder archived for real to a local-folder remote."""
    folder = os.fsencode(tmp_path / "proj")
    write_file(folder + b"/keep.txt", b"kept\n")
    archive(tmp_path, folder, os.fsdecode(tmp_path / "cold"))
    configure(monkeypatch, None, backend="local")
    return folder


@pytest.fixture
def victim(tmp_path: Path) -> bytes:
    """A file outside every target: no restore may touch it."""
    path = os.fsencode(tmp_path / "outside" / "victim")
    write_file(path, b"not yours", mtime=1_400_000_000)
    os.chmod(path, 0o600)
    return path


def outside_state(tmp_path: Path) -> dict:
    return snapshot(os.fsencode(tmp_path / "outside"))


def restore_to(folder: bytes, dest: bytes, *extra: str) -> tuple[int, str]:
    return cli("restore", folder, "--to", dest, *extra)


def test_a_name_listed_as_file_and_symlink_is_refused_and_nothing_outside_changes(
        archived: bytes, victim: bytes, tmp_path: Path) -> None:
    """Seen: the record's mode and mtime landed on the symlink's target outside."""
    before = outside_state(tmp_path)
    forge(archived, [M(b"x", "symlink", target=victim),
                     M(b"x", "file", data=b"payload", mode=0o777)])
    dest = os.fsencode(tmp_path / "dest")
    rc, out = restore_to(archived, dest)
    assert rc != 0 and "lists x 2 times" in out, out
    assert outside_state(tmp_path) == before
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600
    assert not os.path.exists(dest) or os.listdir(dest) == []


@pytest.mark.parametrize("member", [b"../escape", b"/tmp/froster-absolute-escape",
                                    b"sub/../../escape"])
def test_members_that_leave_the_folder_are_refused(archived: bytes, tmp_path: Path,
                                                   member: bytes) -> None:
    forge(archived, [M(member, "file", data=b"escaped")])
    dest = os.fsencode(tmp_path / "dest")
    rc, out = restore_to(archived, dest)
    assert rc != 0 and os.fsdecode(member) in out, out
    assert not os.path.exists(tmp_path / "escape")
    assert not os.path.exists("/tmp/froster-absolute-escape")


@pytest.mark.parametrize("member", [b"../escape", b"/tmp/froster-absolute-escape"])
def test_a_bundle_member_not_in_the_record_is_refused(archived: bytes, tmp_path: Path,
                                                      member: bytes) -> None:
    """The record is clean; only the tar names a member that leaves the folder."""
    forge(archived, [M(b"escape", "file", data=b"escaped", tar_name=member)])
    dest = os.fsencode(tmp_path / "dest")
    rc, out = restore_to(archived, dest)
    assert rc != 0 and "member" in out and os.fsdecode(member) in out, out
    assert not os.path.exists(tmp_path / "escape")
    assert not os.path.exists("/tmp/froster-absolute-escape")
    assert not os.path.exists(dest + b"/escape")


def test_a_member_below_a_symlink_is_refused(archived: bytes, tmp_path: Path,
                                            victim: bytes) -> None:
    outside = os.path.dirname(victim)
    before = outside_state(tmp_path)
    forge(archived, [M(b"s", "symlink", target=outside),
                     M(b"s/planted", "file", data=b"through the link")])
    rc, out = restore_to(archived, os.fsencode(tmp_path / "dest"))
    assert rc != 0 and "s/planted" in out and "symlink" in out, out
    assert outside_state(tmp_path) == before


def test_a_bundle_symlink_where_the_record_has_a_folder_is_refused(
        archived: bytes, tmp_path: Path, victim: bytes) -> None:
    outside = os.path.dirname(victim)
    before = outside_state(tmp_path)
    forge(archived, [M(b"d", "dir", target=outside, tar_kind="symlink"),
                     M(b"d/planted", "file", data=b"through the link")])
    rc, out = restore_to(archived, os.fsencode(tmp_path / "dest"))
    assert rc != 0 and "member d is a symlink in the bundle but a dir in the record" in out, out
    assert outside_state(tmp_path) == before


@pytest.mark.parametrize("link_to", [b"../outside/victim", b"/etc/passwd", b"nowhere"])
def test_hard_links_out_of_the_bundle_are_refused(archived: bytes, tmp_path: Path,
                                                  victim: bytes, link_to: bytes) -> None:
    before = outside_state(tmp_path)
    # the record is clean (h is a hard link to a); the tar's hard link points elsewhere
    rec = forge(archived, [M(b"a", "file", data=b"first"),
                           M(b"h", "hardlink", target=b"a")])
    _retarget_tar_link(archived, rec, b"h", link_to)
    dest = os.fsencode(tmp_path / "dest")
    rc, out = restore_to(archived, dest)
    assert rc != 0 and "member h" in out and "hard link" in out, out
    assert outside_state(tmp_path) == before
    assert os.stat(victim).st_nlink == 1


def _retarget_tar_link(folder: bytes, rec: dict, name: bytes, link_to: bytes) -> None:
    """Rewrite the forged bundle so member ``name`` hard-links to ``link_to`` (md5 fixed)."""
    import hashlib
    import io
    import tarfile

    from froster_slurm.folder.schema import json_bytes

    b = rec["bundles"][0]
    path = os.fsencode(rec["destination"]) + b"/" + os.fsencode(b["name"])
    src = tarfile.open(os.fsdecode(path), encoding="utf-8", errors="surrogateescape")
    buf = io.BytesIO()
    with src, tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                           encoding="utf-8", errors="surrogateescape") as out:
        for m in src:
            if os.fsencode(m.name) == name:
                m.type, m.linkname, m.size = tarfile.LNKTYPE, os.fsdecode(link_to), 0
                out.addfile(m)
            else:
                out.addfile(m, src.extractfile(m) if m.isreg() else None)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    b.update(md5=hashlib.md5(data).hexdigest(), size=len(data))
    with open(folder + b"/Froster.archive.json", "wb") as f:
        f.write(json_bytes(rec))


def test_a_symlink_in_the_target_is_never_written_through_even_with_force(
        archived: bytes, tmp_path: Path, victim: bytes) -> None:
    """The archive has a folder ``sub``; the target holds ``sub -> outside``."""
    forge(archived, [M(b"sub", "dir"), M(b"sub/victim", "file", data=b"overwritten?")])
    dest = os.fsencode(tmp_path / "dest")
    os.makedirs(dest)
    os.symlink(os.path.dirname(victim), dest + b"/sub")
    before = outside_state(tmp_path)
    rc, out = restore_to(archived, dest)
    assert rc != 0 and "sub is a symlink" in out, out
    rc, out = restore_to(archived, dest, "--force")
    assert rc != 0 and "sub" in out, out
    assert outside_state(tmp_path) == before
    assert open(victim, "rb").read() == b"not yours"


def test_force_repairs_a_file_damaged_at_the_same_size_and_mtime(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: `restore --force` said everything was already there (size + mtime only)."""
    folder = os.fsencode(tmp_path / "proj")
    write_file(folder + b"/data.bin", b"A" * 10000, mtime=1_500_000_000)
    write_file(folder + b"/small.txt", b"small")
    archive(tmp_path, folder, os.fsdecode(tmp_path / "cold"))
    configure(monkeypatch, None, backend="local")
    st = os.stat(folder + b"/data.bin")
    with open(folder + b"/data.bin", "r+b") as f:
        f.write(b"B")  # same size
    os.utime(folder + b"/data.bin", ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    rc, out = cli("restore", folder)
    assert rc != 0 and "data.bin" in out and "--force" in out, out
    rc, out = cli("restore", folder, "--force")
    assert rc == 0, out
    assert open(folder + b"/data.bin", "rb").read() == b"A" * 10000
    rc, out = cli("restore", folder)
    assert rc == 0 and "nothing to restore" in out, out


def test_a_path_too_long_fails_at_once_with_its_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archived: bytes) -> None:
    """Seen: a 4 KB path was retried as a transient failure for ~15 minutes."""
    long = os.fsencode(tmp_path) + b"/" + b"/".join([b"d" * 250] * 17)  # > 4096 bytes
    assert len(long) > 4096
    rc, out = restore_to(archived, long)
    assert rc != 0 and "path too long for this system" in out and "attempt" not in out, out
    runs = sorted(runs_dir(load_config()).iterdir())
    state = json.loads((runs[-1] / "restore.json").read_text())
    assert state["phase"] == "failed" and not state.get("failures"), state
    other = long + b"-folder"  # a folder with such a path: one line, no traceback
    for args in (("restore", other), ("purge", other, "--yes")):
        rc, out = cli(*args)
        assert rc != 0 and "path too long for this system" in out, out


# --- trust boundaries with a real second account (issue 20) --------------------------------


def _alice_archives(base: Path, files: dict[bytes, bytes]) -> tuple[bytes, object]:
    """``alice`` makes a folder and archives it herself to a local remote she owns."""
    alice = ensure_account(PREFIX + "alice")
    folder = os.fsencode(base / "alice" / "proj")
    for rel, data in files.items():
        write_file(folder + b"/" + rel, data)
    os.chmod(folder + b"/shell", 0o755)
    cold = base / "cold"
    cold.mkdir()
    state_dir = base / "alice-state"
    run_dir = make_run(state_dir, [folder], str(cold), bundle_threshold=4096)
    subprocess.run(["chown", "-R", f"{alice.pw_uid}:{alice.pw_gid}", str(base / "alice"),
                    str(cold), str(state_dir)], check=True)
    p = run_task(run_dir, 0, prefix=as_user(alice), env={"HOME": "/tmp"})
    assert p.returncode == 0, p.stderr[-2000:]
    return folder, alice


def _alice_edits_record(folder: bytes, alice, edit: str) -> None:
    """The record is alice's file: she rewrites it with plain Python, as herself."""
    code = ("import json,sys; p=sys.argv[1]; r=json.load(open(p)); " + edit +
            "; open(p,'w').write(json.dumps(r))")
    p = subprocess.run([*as_user(alice), sys.executable, "-c", code,
                        os.fsdecode(folder + b"/Froster.archive.json")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


SETUID_EDIT = ("[e.update(mode=0o104755, uid=0, gid=0) for e in r['entries'] "
               "if e['path']=='shell']")


def _euid_through(shell: bytes, alice) -> str:
    p = subprocess.run([*as_user(alice), shell, "-p", "-c", "id -u"], capture_output=True,
                       text=True, cwd="/")
    return p.stdout.strip()


def test_root_restore_never_creates_a_setuid_file_from_a_users_record(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen (critical): root restored a root-owned setuid shell that alice had put in her
    record; running it gave her euid 0."""
    with shared_dir() as base:
        shell = open("/bin/dash", "rb").read()
        folder, alice = _alice_archives(base, {b"shell": shell, b"note.txt": b"hello\n"})
        _alice_edits_record(folder, alice, SETUID_EDIT)
        os.unlink(folder + b"/shell")  # lost; the admin is asked to restore it
        configure(monkeypatch, None, backend="local")
        rc, out = cli("restore", folder)
        assert rc == 0, out
        st = os.lstat(folder + b"/shell")
        assert _euid_through(folder + b"/shell", alice) == str(alice.pw_uid)
        assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), oct(st.st_mode)
        assert (st.st_uid, st.st_gid) == (alice.pw_uid, alice.pw_gid)
        assert stat.S_IMODE(st.st_mode) == 0o755
        assert f"belong to uid {alice.pw_uid}" in out
        for trace in (b"Froster.archive.json", b"index.html"):  # still alice's own trace
            assert os.lstat(folder + b"/" + trace).st_uid == alice.pw_uid
        # the record's owners only with the explicit flag, and still no set-id bit
        os.unlink(folder + b"/shell")
        rc, out = cli("restore", folder, "--owners-from-record")
        assert rc == 0, out
        st = os.lstat(folder + b"/shell")
        assert st.st_uid == 0 and not st.st_mode & (stat.S_ISUID | stat.S_ISGID)
        assert _euid_through(folder + b"/shell", alice) == str(alice.pw_uid)


def test_a_users_restore_never_changes_files_it_did_not_create(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """alice restores her folder as herself: the file that is already there (same content,
    her own mode and mtime since) stays exactly as it is."""
    with shared_dir() as base:
        folder, alice = _alice_archives(base, {b"shell": b"#!/bin/sh\n", b"note.txt": b"hi\n",
                                               b"sub/deep.txt": b"deep\n"})
        os.chmod(folder + b"/note.txt", 0o600)
        os.utime(folder + b"/note.txt", (1_300_000_000, 1_300_000_000))
        os.unlink(folder + b"/sub/deep.txt")
        before = os.lstat(folder + b"/note.txt")
        home = base / "alice-home"
        home.mkdir()
        os.chown(home, alice.pw_uid, alice.pw_gid)
        python, path = user_python()
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": path,
               "XDG_CONFIG_HOME": str(home / "config"),
               "FROSTER_SLURM_STATE_DIR": str(home / "state"),
               "FROSTER_SLURM_SITE_CONFIG": str(home / "site.toml"),
               "FROSTER_SLURM_BACKEND": "local", "FROSTER_SLURM_PYTHON": python}
        p = subprocess.run([*as_user(alice), python, "-m", "froster_slurm", "restore",
                            folder], env=env, capture_output=True, text=True, cwd="/")
        assert p.returncode == 0, p.stdout + p.stderr
        assert open(folder + b"/sub/deep.txt", "rb").read() == b"deep\n"
        after = os.lstat(folder + b"/note.txt")
        assert (after.st_ino, after.st_mode, after.st_mtime_ns, after.st_ctime_ns) == \
            (before.st_ino, before.st_mode, before.st_mtime_ns, before.st_ctime_ns)


def test_a_poisoned_catalog_row_never_restores_another_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: bob rewrote alice's catalog row; alice's restore of her lost folder brought back
    bob's files.  Both ways of poisoning are refused: the row pointing at bob's archive, and
    bob's archive record claiming to be of alice's folder."""
    cold = os.fsdecode(tmp_path / "cold")
    a, b = os.fsencode(tmp_path / "alice"), os.fsencode(tmp_path / "bob")
    write_file(a + b"/thesis.txt", b"alice's work")
    write_file(b + b"/payload.txt", b"bob's files")
    rec_a = archive(tmp_path, a, cold)
    shutil.rmtree(tmp_path / "archive-state")
    rec_b = archive(tmp_path, b, cold)
    configure(monkeypatch, None, backend="local")
    cat = catalog_path(load_config())
    catalog.add_records(cat, [rec_a, rec_b])
    shutil.rmtree(os.fsdecode(a))
    # 1. the row of alice's folder points at bob's archive
    catalog.add_records(cat, [{**rec_a, "destination": rec_b["destination"]}])
    _drop_row(cat, a, rec_a["destination"])
    rc, out = cli("restore", a)
    assert rc != 0 and "is the archive of" in out and "bob" in out, out
    assert not os.path.exists(a + b"/payload.txt")
    # 2. bob also rewrites his remote record to claim alice's folder as its source
    bob_remote_record = os.fsencode(rec_b["destination"]) + b"/Froster.archive.json"
    forged = json.loads(open(bob_remote_record, "rb").read())
    forged["source"] = os.fsdecode(a)
    with open(bob_remote_record, "w") as f:
        f.write(json.dumps(forged))
    rc, out = cli("restore", a)
    assert rc != 0 and "is not where this folder is archived" in out, out
    assert not os.path.exists(a + b"/payload.txt")
    # the true row still restores alice's folder
    catalog.add_records(cat, [rec_a])
    _drop_row(cat, a, rec_b["destination"])
    rc, out = cli("restore", a)
    assert rc == 0, out
    assert open(a + b"/thesis.txt", "rb").read() == b"alice's work"


def _drop_row(cat: Path, folder: bytes, destination: str) -> None:
    import duckdb

    con = duckdb.connect(str(cat))
    try:
        con.execute("DELETE FROM archives WHERE folder = ? AND destination = ?",
                    [folder, os.fsencode(destination)])
    finally:
        con.close()
