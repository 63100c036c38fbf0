"""The archive task end to end against a local rclone remote (real rclone, real subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from archive_helpers import (
    ODD_FOLDERS,
    assert_same_tree,
    make_run,
    md5sum_check,
    need,
    restore_with_rclone,
    rich_tree,
    run_task,
    state,
    task_cmd,
    task_env,
    write_file,
)

from froster_slurm.archive import names
from froster_slurm.archive.settings import load_settings
from froster_slurm.archive.steps import ArchiveTask
from froster_slurm.run.taskstate import mark_step_done, read_marker, read_task_state

THRESHOLD = 64 * 1024


@pytest.fixture(autouse=True)
def _tools() -> None:
    need("rclone")
    need("md5sum")
    need("tar")


def dest_of(remote: Path, folder: bytes) -> bytes:
    return os.fsencode(names.destination(str(remote), "froster", folder))


def no_pwned(*roots: Path | bytes) -> None:
    assert not os.path.lexists("/PWNED")
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            assert b"PWNED" not in files and "PWNED" not in files, dirpath


def test_odd_folder_names_archive_correctly_and_run_nothing(tmp_path: Path) -> None:
    """Injection-style, quoting, dash, newline, space and non-UTF-8 folder names (item 2),
    each holding large and small files, odd names, symlinks, hard links and empty folders."""
    src = os.fsencode(tmp_path / "src")
    folders = [src + b"/" + name for name in ODD_FOLDERS]
    for f in folders:
        rich_tree(f)
    remote = tmp_path / "remote"
    run_dir = make_run(tmp_path / "state", folders, str(remote), bundle_threshold=THRESHOLD)
    for i, folder in enumerate(folders):
        p = run_task(run_dir, i)
        assert p.returncode == 0, p.stderr
        st = state(run_dir, i)
        assert (st["state"], st["error"], os.fsencode(st["folder"])) == ("done", None, folder)
        assert st["steps_done"] == ["inventory", "bundle", "hash", "upload", "verify", "record"]
        check = md5sum_check(folder)
        assert check.returncode == 0, check.stdout + check.stderr
        record = json.loads(Path(os.fsdecode(folder), "Froster.archive.json").read_bytes())
        assert os.fsencode(record["source"]) == folder
        kinds = {os.fsencode(e["path"]): e for e in record["entries"]}
        assert kinds[b"link-to-dir"]["type"] == "symlink"  # kept as a link, not followed
        assert kinds[b"link-to-dir"]["target"] == "sub"
        assert not any(p.startswith(b"link-to-dir/") for p in kinds)
        assert kinds[b"big.hardlink"]["hardlink_to"] == "big.bin"
        assert kinds[b"empty/nested-empty"]["empty"] and kinds[b"empty/nested-empty"]["bundle"]
        assert kinds[b"big.bin"]["object"] == "big.bin"  # large files are their own objects
        assert kinds[b"odd/big odd\nname.bin"]["bundle"]  # ... unless the name cannot be a key
        # The record alone (plus objects and bundles) rebuilds the folder byte for byte.
        restored = os.fsencode(tmp_path / f"restored-{i}")
        restore_with_rclone(record, restored, os.fsencode(tmp_path / f"staging-{i}"))
        assert_same_tree(folder, restored, record)
        assert os.path.isfile(os.path.join(folder, b"index.html"))
    no_pwned(tmp_path, run_dir)


def test_rerun_of_a_done_task_does_nothing(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path / "data")
    rich_tree(folder, big=100 * 1024)
    remote = tmp_path / "remote"
    run_dir = make_run(tmp_path / "state", [folder], str(remote), bundle_threshold=THRESHOLD)
    assert run_task(run_dir, 0).returncode == 0
    logs = run_dir / "tasks" / "0" / "logs"
    before = {p.name: p.stat().st_size for p in logs.iterdir()}
    p = run_task(run_dir, 0)
    assert p.returncode == 0 and "already archived" in p.stderr
    assert {p.name: p.stat().st_size for p in logs.iterdir()} == before  # rclone never ran
    assert "archive done" in (run_dir / "tasks" / "0" / "comment").read_text()


def test_foreign_index_html_is_kept_and_reachive_excludes_our_trace(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path / "web")
    write_file(folder + b"/index.html", b"<html>the user's own page</html>")
    write_file(folder + b"/data.bin", os.urandom(THRESHOLD * 2))
    remote = tmp_path / "remote"
    run1 = make_run(tmp_path / "state", [folder], str(remote), bundle_threshold=THRESHOLD)
    assert run_task(run1, 0).returncode == 0
    assert Path(os.fsdecode(folder), "index.html").read_bytes() == \
        b"<html>the user's own page</html>"
    assert b"froster-slurm" in Path(os.fsdecode(folder), "Froster.index.html").read_bytes()
    # A second archive of the same folder, changed (else it would be "unchanged", see
    # test_archive_versions.py): our trace is not data, the user's page is.
    write_file(folder + b"/data.bin", os.urandom(THRESHOLD * 2))
    run2 = make_run(tmp_path / "state", [folder], str(remote), bundle_threshold=THRESHOLD)
    p = run_task(run2, 0)
    assert p.returncode == 0, p.stderr
    record = json.loads(Path(os.fsdecode(folder), "Froster.archive.json").read_bytes())
    assert sorted(e["path"] for e in record["entries"]) == ["data.bin", "index.html"]
    assert sorted(record["excluded"]) == ["Froster.archive.json", "Froster.index.html",
                                          "Froster.manifest.md5"]
    assert record["version"] == 2
    upload = read_marker(run2, 0, "upload")
    # version 2 has its own folder on the remote: data.bin and the bundle holding the small
    # index.html both go there; version 1's objects are left as they are.
    assert (upload["sent"], upload["already_there"]) == (2, 0)
    assert md5sum_check(folder).returncode == 0


def test_source_change_after_hashing_restarts_from_inventory(tmp_path: Path) -> None:
    """The folder changes between hash and upload: detected, redone, manifest tells the truth."""
    folder = os.fsencode(tmp_path / "moving")
    write_file(folder + b"/a.bin", os.urandom(THRESHOLD * 2))
    write_file(folder + b"/b.txt", b"before")
    remote = tmp_path / "remote"
    run_dir = make_run(tmp_path / "state", [folder], str(remote), bundle_threshold=THRESHOLD)
    task = ArchiveTask(load_settings(run_dir), 0, folder, read_task_state(run_dir, 0))
    task.work.mkdir(parents=True)
    for step in ("inventory", "bundle", "hash"):  # stop right before the upload
        mark_step_done(run_dir, 0, step, getattr(task, f"step_{step}")())
    write_file(folder + b"/b.txt", b"after!")  # same size, new content and ctime
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr
    assert "changed before the upload" in p.stderr
    assert state(run_dir, 0)["source_changes"] == 1
    assert md5sum_check(folder).returncode == 0
    manifest = Path(os.fsdecode(folder), "Froster.manifest.md5").read_text()
    assert __import__("hashlib").md5(b"after!").hexdigest() + "  b.txt" in manifest


def _copied(log: Path) -> set[str]:
    out = set()
    if log.exists():
        for line in log.read_text().splitlines():
            if line.startswith("{") and '"Copied' in line:
                out.add(json.loads(line)["object"])
    return out


def test_sigkill_mid_upload_resumes_without_reuploading(tmp_path: Path) -> None:
    """A task killed with SIGKILL (node lost) mid-upload: the rerun finishes verified and does
    not send again the files that had arrived."""
    folder = os.fsencode(tmp_path / "slow")
    for k in range(6):
        write_file(folder + b"/part%d.bin" % k, os.urandom(1024 * 1024))
    remote = tmp_path / "remote"
    run_dir = make_run(tmp_path / "state", [folder], str(remote), bundle_threshold=THRESHOLD,
                       transfers=1, rclone_flags=["--bwlimit=1M"])
    log = run_dir / "tasks" / "0" / "logs" / "upload.log"
    proc = subprocess.Popen(task_cmd(run_dir, 0), cwd="/", start_new_session=True,
                            env=task_env({"SLURM_ARRAY_TASK_ID": "0"}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(_copied(log)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the task, rclone and all: like a lost node
    proc.wait()
    arrived = _copied(log)
    assert 2 <= len(arrived) < 6, arrived
    dest = dest_of(remote, folder)
    stamps = {n: os.stat(os.path.join(dest, os.fsencode(n))).st_ctime_ns for n in arrived}
    assert state(run_dir, 0)["state"] == "running"  # it died without a word
    log_size = log.stat().st_size
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr
    second = log.read_text()[log_size:]
    assert not any(f'"object":"{n}"' in second and "Copied" in second.split(n)[1][:40]
                   for n in arrived)
    resent = set()
    for line in second.splitlines():
        if line.startswith("{") and '"Copied' in line:
            resent.add(json.loads(line)["object"])
    assert resent and not (resent & arrived), (resent, arrived)
    assert {n: os.stat(os.path.join(dest, os.fsencode(n))).st_ctime_ns for n in arrived} \
        == stamps  # the finished files were not written again
    st = state(run_dir, 0)
    assert (st["state"], st["attempts"], st["failures"]) == ("done", 2, 1)
    assert md5sum_check(folder).returncode == 0


def test_folder_deleted_after_ranking_fails_at_once(tmp_path: Path) -> None:
    gone = os.fsencode(tmp_path / "gone")
    run_dir = make_run(tmp_path / "state", [gone], str(tmp_path / "remote"))
    p = run_task(run_dir, 0)
    assert p.returncode == 70
    st = state(run_dir, 0)
    assert (st["state"], st["error_kind"]) == ("failed", "permanent")
    assert "no longer exists" in st["error"]
    assert "FAILED" in (run_dir / "tasks" / "0" / "comment").read_text()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp dirs are root-only)."""
    d = Path(tempfile.mkdtemp(prefix="froster-nobody-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unreadable_file_fails_only_its_task(shared_dir: Path) -> None:
    """EACCES for real: the tasks run as `nobody`; root's mode-000 files cannot be read."""
    need("setpriv")
    if os.geteuid() != 0:
        pytest.fail("this test provokes EACCES by switching to user nobody: run it as root")
    ok, small, large = (os.fsencode(shared_dir / n) for n in ("ok", "bad-small", "bad-large"))
    for f in (ok, small, large):
        write_file(f + b"/big.bin", os.urandom(THRESHOLD * 2))
        write_file(f + b"/note.txt", b"readable")
    write_file(small + b"/secret.txt", b"not for nobody")
    write_file(large + b"/secret.bin", os.urandom(THRESHOLD * 2))
    for f in (small + b"/secret.txt", large + b"/secret.bin"):
        os.chmod(f, 0)
    os.chown(ok, 65534, 65534)  # nobody may write the trace into the readable folder
    remote = shared_dir / "remote"
    remote.mkdir()
    os.chown(remote, 65534, 65534)
    state_dir = shared_dir / "state"
    run_dir = make_run(state_dir, [ok, small, large], str(remote), bundle_threshold=THRESHOLD)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(state_dir)], check=True)
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    codes = [run_task(run_dir, i, prefix=as_nobody, env={"HOME": "/tmp"}).returncode
             for i in range(3)]
    assert codes == [0, 70, 70]
    assert state(run_dir, 0)["state"] == "done"
    for i, name in ((1, "secret.txt"), (2, "secret.bin")):
        st = state(run_dir, i)
        assert (st["state"], st["error_kind"]) == ("failed", "permanent")
        assert "permission denied" in st["error"] and name in st["error"]
        comment = (run_dir / "tasks" / str(i) / "comment").read_text()
        assert "FAILED" in comment and "permission denied" in comment


def test_remote_mismatch_heals_once_and_fails_for_good_if_it_repeats(tmp_path: Path) -> None:
    """A remote object with the wrong md5: re-uploaded once (75); if verify fails again the
    task fails permanently (70) instead of looping."""
    folder = os.fsencode(tmp_path / "m")
    write_file(folder + b"/big.bin", os.urandom(THRESHOLD * 2))
    remote = tmp_path / "remote"
    run_dir = make_run(tmp_path / "state", [folder], str(remote), bundle_threshold=THRESHOLD)
    task = ArchiveTask(load_settings(run_dir), 0, folder, read_task_state(run_dir, 0))
    task.work.mkdir(parents=True)
    for step in ("inventory", "bundle", "hash", "upload"):
        mark_step_done(run_dir, 0, step, getattr(task, f"step_{step}")())
    obj = os.path.join(dest_of(remote, folder), b"big.bin")

    def corrupt() -> None:
        with open(obj, "r+b") as f:  # same size, different bytes: only a hash can tell
            first = f.read(1)
            f.seek(0)
            f.write(bytes([first[0] ^ 0xFF]))

    corrupt()
    p = run_task(run_dir, 0)
    assert p.returncode == 75, p.stderr
    st = state(run_dir, 0)
    assert (st["verify_failures"], st["error_kind"]) == (1, "transient")
    assert "with another md5 (e.g. big.bin" in st["error"] and "upload" not in st["steps_done"]
    p = run_task(run_dir, 0)  # the re-upload heals it
    assert p.returncode == 0, p.stderr
    assert read_marker(run_dir, 0, "upload")["sent"] == 1
    # Second folder, same story, but the remote keeps corrupting what it receives.
    run2 = make_run(tmp_path / "state", [folder], str(tmp_path / "remote2"),
                    bundle_threshold=THRESHOLD)
    task = ArchiveTask(load_settings(run2), 0, folder, read_task_state(run2, 0))
    task.work.mkdir(parents=True)
    for step in ("inventory", "bundle", "hash", "upload"):
        mark_step_done(run2, 0, step, getattr(task, f"step_{step}")())
    # the folder already has version 1 (on the first remote): this is version 2
    obj = os.path.join(os.fsencode(task.dest), b"big.bin")
    assert task.dest == dest_of(tmp_path / "remote2", folder).decode() + "/Froster.versions/2"
    corrupt()
    assert run_task(run2, 0).returncode == 75
    mark_step_done(run2, 0, "upload", {"note": "an upload that stored bad bytes again"})
    p = run_task(run2, 0)
    assert p.returncode == 70, p.stderr
    st = state(run2, 0)
    assert (st["state"], st["error_kind"]) == ("failed", "permanent")
    assert "verification failed 2 times" in st["error"]


def test_unreachable_remote_during_a_check_is_transient_not_a_mismatch(tmp_path: Path) -> None:
    """rclone lists an unreachable remote as 'everything missing': that must not count as a
    failed verification (which could end in a permanent failure)."""
    from froster_slurm.archive.verify import Expect, check_remote
    from froster_slurm.errors import TransientError
    from froster_slurm.remotes.rclone import Rclone

    conf = tmp_path / "dead.conf"
    conf.write_text("[dead]\ntype = s3\nprovider = Other\nenv_auth = false\n"
                    "access_key_id = a\nsecret_access_key = b\n"
                    "endpoint = http://127.0.0.1:9\nforce_path_style = true\n")
    rc = Rclone("rclone", str(conf), ["--retries=1", "--low-level-retries=1"], 1,
                tmp_path / "logs")
    with pytest.raises(TransientError, match="connection refused"):
        check_remote(rc, {"a.bin": Expect("0" * 32, 1)}, "dead:bucket/x", tmp_path / "w", "verify")


def test_a_task_of_a_run_rendered_before_the_one_job_entry_still_archives(
        tmp_path: Path) -> None:
    """Scripts rendered by older versions call ``-m froster_slurm.task archive RUN INDEX``; a
    run of that age has no batches.txt (task INDEX is folder INDEX)."""
    need("rclone")
    folder = os.fsencode(tmp_path / "src" / "old")
    write_file(folder + b"/a.txt", b"from an old run\n")
    run_dir = make_run(tmp_path / "state", [folder], str(tmp_path / "remote"))
    assert not (run_dir / "batches.txt").exists()
    env = task_env({"SLURM_ARRAY_TASK_ID": "0"})
    p = subprocess.run([sys.executable, "-m", "froster_slurm.task", "archive", str(run_dir),
                        "0"], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert state(run_dir, 0)["state"] == "done"
    assert md5sum_check(folder).returncode == 0
