"""Checked before queued (issue 13 item 3, issue 20 items 2 and 5): one test per bad input.

Each bad input goes through the real command (`froster-slurm archive/submit/retry/restore
--backend slurm`) against the real local Slurm cluster and real rclone, and must end with one
clear line naming the fix, a non-zero exit, no run directory, and no job of ours in squeue.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from archive_helpers import write_file
from s3server import S3Server

from froster_slurm.cli import main
from froster_slurm.config import load_config
from froster_slurm.run.rundir import runs_dir
from froster_slurm.submit.preflight import Probe, check_destination, relation

pytestmark = pytest.mark.slurm


def state_dir() -> Path:
    return Path(os.environ["FROSTER_SLURM_STATE_DIR"])


def our_jobs() -> list[str]:
    """squeue lines whose batch script lives in this test's state dir."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %o"], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if str(state_dir()) in line]


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the command; return (exit code, stderr); check nothing was written or queued."""
    runs = runs_dir(load_config())
    before = set(runs.iterdir()) if runs.is_dir() else set()
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code != 0, err
    assert "Traceback" not in err
    after = set(runs.iterdir()) if runs.is_dir() else set()
    assert after == before, "a run directory was written"
    assert our_jobs() == []
    return code, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("froster-slurm: error: ")
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    f = tmp_path / "lab" / "proj"
    write_file(os.fsencode(f / "data.bin"), b"x" * 1000)
    return f


@pytest.fixture
def rclone_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """rclone remotes: `arc` (alias of a local folder), `sealed` (crypt: no md5, proven by
    cryptcheck), `sha1only` (a chunker that keeps only sha1: no md5 at all), `dead` (S3 on a
    port nobody listens on)."""
    conf = tmp_path / "rclone.conf"
    (tmp_path / "arc").mkdir()
    password = subprocess.run(["rclone", "obscure", "not-a-secret"], capture_output=True,
                              text=True, check=True).stdout.strip()
    conf.write_text(f"[arc]\ntype = alias\nremote = {tmp_path / 'arc'}\n\n"
                    f"[sealed]\ntype = crypt\nremote = arc:sealed\npassword = {password}\n\n"
                    f"[sha1only]\ntype = chunker\nremote = arc:chunked\nhash_type = sha1all\n\n"
                    "[dead]\ntype = s3\nprovider = Other\nendpoint = http://127.0.0.1:9\n"
                    "access_key_id = a\nsecret_access_key = b\nforce_path_style = true\n")
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))
    return conf


def test_remote_that_is_not_configured(slurm_cluster, capsys, folder, rclone_conf):
    code, err = refused(capsys, "archive", str(folder), "--to", "s3glacier:lab-archive",
                        "--backend", "slurm")
    line = one_line(err)
    assert code == 78
    assert "rclone remote 's3glacier' is not configured" in line
    assert "configured: arc, dead, sealed, sha1only" in line and "rclone config" in line


def test_remote_typo_gets_a_did_you_mean(slurm_cluster, capsys, folder, rclone_conf):
    _, err = refused(capsys, "archive", str(folder), "--to", "acr:x", "--backend", "slurm")
    assert "did you mean arc:?" in one_line(err)


def test_remote_name_without_its_colon(slurm_cluster, capsys, folder, rclone_conf, tmp_path,
                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = refused(capsys, "archive", str(folder), "--to", "arc", "--backend", "slurm")
    line = one_line(err)
    assert code == 64
    assert "--to arc is the name of an rclone remote but has no colon" in line
    assert "write --to arc:" in line and "./arc" in line
    assert not (tmp_path / "arc" / "froster").exists()


def test_remote_that_does_not_answer(slurm_cluster, capsys, folder, rclone_conf):
    code, err = refused(capsys, "archive", str(folder), "--to", "dead:bucket", "--backend",
                        "slurm")
    line = one_line(err)
    assert code == 78
    assert "dead:bucket does not answer" in line and "connection refused" in line


def test_remote_without_md5(slurm_cluster, capsys, folder, rclone_conf):
    code, err = refused(capsys, "archive", str(folder), "--to", "sha1only:", "--backend",
                        "slurm")
    line = one_line(err)
    assert code == 78
    assert "cannot give the md5 hashes verify needs (it gives: sha1)" in line
    checks, dest = check_destination(load_config(), "sealed:x")  # crypt: cryptcheck proves it
    assert dest is not None and "crypt" in dest.wrappers and all(c.ok for c in checks)


def test_folder_that_does_not_exist(slurm_cluster, capsys, tmp_path):
    code, err = refused(capsys, "archive", str(tmp_path / "gone"), "--to",
                        str(tmp_path / "remote"), "--backend", "slurm")
    assert code == 66
    assert f"folder: {tmp_path / 'gone'} does not exist" in one_line(err)


def test_file_instead_of_a_folder(slurm_cluster, capsys, folder, tmp_path):
    code, err = refused(capsys, "archive", str(folder / "data.bin"), "--to",
                        str(tmp_path / "remote"), "--backend", "slurm")
    assert code == 64
    assert "data.bin is not a directory; archive the folder that holds it" in one_line(err)


def test_every_bad_folder_has_its_own_line(slurm_cluster, capsys, folder, tmp_path):
    _, err = refused(capsys, "archive", str(folder), str(tmp_path / "a"), str(tmp_path / "b"),
                     "--to", str(tmp_path / "remote"), "--backend", "slurm")
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all("does not exist" in line for line in lines)


def test_misspelt_storage_class(slurm_cluster, capsys, folder, s3: S3Server, monkeypatch):
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(s3.rclone_config))
    code, err = refused(capsys, "archive", str(folder), "--to", s3.remote,
                        "--storage-class", "DEEP_ARCHIV", "--backend", "slurm")
    line = one_line(err)
    assert code == 78
    assert "--storage-class 'DEEP_ARCHIV' is not an S3 storage class" in line
    assert "did you mean DEEP_ARCHIVE?" in line and "GLACIER_IR" in line


def test_folder_whose_path_leaves_no_room_in_an_s3_key(slurm_cluster, capsys, tmp_path,
                                                      s3: S3Server, monkeypatch):
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(s3.rclone_config))
    deep = tmp_path / "src"
    while len(os.fsencode(deep)) < 1000:
        deep = deep / ("d" * 120)
    write_file(os.fsencode(deep / "data.bin"), b"x" * 100)
    code, err = refused(capsys, "archive", str(deep), "--to", s3.remote,
                        "--storage-class", "STANDARD", "--backend", "slurm")
    line = one_line(err)
    assert "S3 keys are at most 1,024 bytes" in line and "archive a parent folder" in line


def test_storage_class_on_a_remote_without_classes(slurm_cluster, capsys, folder, tmp_path):
    code, err = refused(capsys, "archive", str(folder), "--to", str(tmp_path / "remote"),
                        "--storage-class", "GLACIER", "--backend", "slurm")
    line = one_line(err)
    assert code == 64
    assert "has no storage classes" in line and "drop --storage-class" in line


def test_no_destination_anywhere(slurm_cluster, capsys, folder):
    code, err = refused(capsys, "archive", str(folder), "--backend", "slurm")
    assert code == 78
    assert one_line(err) == (
        "froster-slurm: error: destination: no destination: give --to REMOTE:PATH (e.g. --to "
        "s3glacier:lab-archive) or set a default with `froster-slurm config set "
        "default_remote REMOTE:PATH`")
    assert not (Path.home() / "froster-archive" / "froster" / str(folder).lstrip("/")).exists()


def test_state_dir_not_writable(slurm_cluster, capsys, folder, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("FROSTER_SLURM_STATE_DIR", str(tmp_path / "a-file" / "state"))
    code = main(["archive", str(folder), "--to", str(tmp_path / "remote"), "--backend",
                 "slurm"])
    line = one_line(capsys.readouterr().err)
    assert code == 78
    assert "state_dir" in line and "is not writable" in line
    assert "froster-slurm config set state_dir DIR" in line
    assert our_jobs() == []


# --- destination and source (issue 20 item 2) -----------------------------------------------

def test_destination_that_is_the_source_itself(slurm_cluster, capsys, folder, monkeypatch):
    """The red team's case: remote_prefix = "" and --to / copied the folder onto itself."""
    monkeypatch.setenv("FROSTER_SLURM_REMOTE_PREFIX", "")
    code, err = refused(capsys, "archive", str(folder), "--to", "/", "--backend", "slurm")
    line = one_line(err)
    assert code == 64
    assert f"{folder} is {folder} itself" in line and "remote_prefix" in line


def test_destination_inside_the_source(slurm_cluster, capsys, folder):
    _, err = refused(capsys, "archive", str(folder), "--to", str(folder / "backup"),
                     "--backend", "slurm")
    assert f"lies inside {folder}" in one_line(err)


def test_destination_through_an_alias_and_a_symlink(slurm_cluster, capsys, folder, tmp_path,
                                                    monkeypatch):
    """An rclone alias of the source's parent, and a symlink to it: found by device+inode."""
    conf = tmp_path / "alias.conf"
    conf.write_text(f"[lab]\ntype = alias\nremote = {tmp_path / 'lab'}\n")
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))
    monkeypatch.setenv("FROSTER_SLURM_REMOTE_PREFIX", "")
    os.symlink(tmp_path / "lab", tmp_path / "link")
    # lab:proj/... is the folder's own subtree; /link/proj is the folder under another name
    _, err = refused(capsys, "archive", str(folder), "--to", "lab:proj", "--backend", "slurm")
    assert f"lies inside {folder}" in one_line(err)
    assert relation(os.fsencode(tmp_path / "link" / "proj"), os.fsencode(folder)) == "is"
    assert relation(os.fsencode(tmp_path), os.fsencode(folder)) == "contains"
    assert relation(os.fsencode(tmp_path / "other"), os.fsencode(folder)) is None


def test_submit_into_the_crawled_tree(slurm_cluster, capsys, folder, tmp_path):
    _, err = refused(capsys, "submit", str(tmp_path / "lab"), "--to",
                     str(tmp_path / "lab" / "archive"), "--backend", "slurm")
    assert f"lies inside {tmp_path / 'lab'}" in one_line(err)


def test_purge_refuses_an_archive_that_is_the_folder_itself(slurm_cluster, capsys, folder,
                                                            tmp_path):
    """A record whose destination resolves to the folder (what `--to /` with an empty
    remote_prefix used to write): the remote check would compare the folder with itself."""
    assert main(["archive", str(folder), "--to", str(tmp_path / "remote"), "--backend",
                 "local"]) == 0
    capsys.readouterr()
    rec_path = folder / "Froster.archive.json"
    rec = json.loads(rec_path.read_text())
    rec_path.write_text(json.dumps({**rec, "destination": str(folder)}))
    code = main(["purge", str(folder), "--yes"])
    cap = capsys.readouterr()
    assert code != 0
    assert f"the archive is not a second copy: {folder} is {folder} itself" in cap.out + cap.err
    assert (folder / "data.bin").read_bytes() == b"x" * 1000


# --- time limits (issue 20 item 5) ------------------------------------------------------------

def test_requeue_grace_that_does_not_fit_the_time_limit(slurm_cluster, capsys, folder,
                                                         tmp_path, monkeypatch):
    """The default grace (300 s) with a 2-minute limit: tasks would requeue for ever."""
    monkeypatch.setenv("FROSTER_SLURM_SLURM__ARCHIVE__TIME", "2")
    code, err = refused(capsys, "archive", str(folder), "--to", str(tmp_path / "remote"),
                        "--backend", "slurm")
    line = one_line(err)
    assert code == 78
    assert "archive.requeue_grace = 300 s does not fit the archive time limit 2 (120 s" in line
    assert "at most 60" in line and "raise slurm.archive.time" in line
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__REQUEUE_GRACE", "60")
    checks, dest = check_destination(load_config(), str(tmp_path / "remote"))
    assert dest is not None and all(c.ok for c in checks)


# --- retry and restore check too --------------------------------------------------------------

def test_retry_and_restore_check_the_remote(slurm_cluster, capsys, folder, tmp_path,
                                            rclone_conf):
    """Archive to `arc:` (local backend), then lose the remote: retry and restore refuse."""
    assert main(["archive", str(folder), "--to", "arc:", "--backend", "local"]) == 0
    run_id = capsys.readouterr().out.split()[1]
    record = json.loads((folder / "Froster.archive.json").read_text())
    assert record["destination"].startswith("arc:")
    assert record["storage_class"] == "none"  # alias of a local folder: no classes
    (folder / "late.bin").write_text("new")
    state = state_dir() / "runs" / run_id / "tasks" / "0" / "state.json"
    st = json.loads(state.read_text())
    state.write_text(json.dumps({**st, "state": "failed"}))
    rclone_conf.write_text("[other]\ntype = alias\nremote = /tmp\n")
    code = main(["retry", run_id])
    line = one_line(capsys.readouterr().err)
    assert code == 78 and "rclone remote 'arc' is not configured" in line
    code, err = refused(capsys, "restore", str(folder), "--to", str(tmp_path / "back"),
                        "--backend", "slurm")
    assert code == 78
    assert "the archive is in rclone remote 'arc', which is not configured here" in \
        one_line(err)


# --- check -----------------------------------------------------------------------------------

def test_check_lists_every_check(slurm_cluster, capsys, folder, tmp_path, rclone_conf):
    code = main(["check", "--to", "arc:", str(folder), str(tmp_path / "gone")])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    heads = [line.split(":", 1)[0] for line in out[:-1]]
    assert heads == ["OK    rclone", "OK    slurm", "OK    state_dir", "OK    remote",
                     "OK    hashes", "OK    storage class", "FAIL  folder",
                     "OK    destination", "OK    time limit"]
    assert out[-1] == "8 OK, 1 FAIL"
    code = main(["check", "--to", "sha1only:"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL  hashes: sha1only: cannot give the md5 hashes" in out
    assert main(["check", "--to", "arc:", str(folder)]) == 0


def test_probe_never_keeps_a_secret(rclone_conf):
    probe = Probe(config=str(rclone_conf))
    assert probe.types()["sealed"] == ("crypt", ["arc:sealed"])
    assert "secret" not in repr(probe._cache) and "not-a-secret" not in repr(probe._cache)
