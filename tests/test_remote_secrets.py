"""No credential in any file the tool writes or on any command line (issue 20, item 4).

An on-the-fly remote with keys (``:s3,...,access_key_id=...,secret_access_key=...:bucket``)
is archived through real Slurm to the moto S3 server on 127.0.0.1 while ``ps`` is sampled;
afterwards every file under the state dir, the archived folder and the test's tree is searched
for the secrets, and so is every command line seen.  rclone still gets the keys: through its
environment (proved against real rclone with ``--dump auth``).
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from archive_helpers import write_file
from s3server import ACCESS_KEY, RCLONE_TEST_FLAGS, REGION, S3Server
from test_pipeline import wait_finished

from froster_slurm.cli import main
from froster_slurm.config import load_config
from froster_slurm.remotes import secrets as remote_secrets
from froster_slurm.remotes.rclone import Rclone
from froster_slurm.submit.pipeline import archive_folders

SECRET_KEY_ID = "AKIAFROSTERLEAKTEST1"
SECRET_KEY = "s3cr3t-Froster-Leak-Test-Value/xyz"


def onthefly(server: S3Server, key_id: str = SECRET_KEY_ID, secret: str = SECRET_KEY,
             path: str = "secrets") -> str:
    return (f":s3,provider=Other,endpoint='{server.endpoint}',force_path_style=true,"
            f"region={REGION},access_key_id={key_id},secret_access_key='{secret}'"
            f":{server.bucket}/{path}")


def test_split_keeps_every_option_but_the_secret_ones() -> None:
    spec = remote_secrets.split(":s3,provider=Other,endpoint='http://h:9',access_key_id=AK,"
                                "secret_access_key=\"S,K:x\",session_token=T:bucket/a/b")
    assert spec.remote == ":s3,provider=Other,endpoint='http://h:9':bucket/a/b"
    assert spec.env == {"RCLONE_S3_ACCESS_KEY_ID": "AK", "RCLONE_S3_SECRET_ACCESS_KEY": "S,K:x",
                        "RCLONE_S3_SESSION_TOKEN": "T"}
    named = remote_secrets.split("lab-s3,session_token=T2,env_auth=false:bucket")
    assert named.remote == "lab-s3,env_auth=false:bucket"
    assert named.env == {"RCLONE_CONFIG_LAB_S3_SESSION_TOKEN": "T2"}
    for plain in ("s3glacier:lab-archive", "/data/a:b", "rel/dir", ":local:/tmp/x"):
        assert remote_secrets.split(plain) == remote_secrets.RemoteSpec(plain)


def test_rclone_gets_the_keys_through_its_environment(s3: S3Server, tmp_path: Path) -> None:
    """Real rclone signs its requests with the keys from the env (without them it asks
    anonymously: moto answers both, the Authorization header tells them apart)."""
    spec = remote_secrets.split(onthefly(s3, key_id=ACCESS_KEY))
    assert ACCESS_KEY not in spec.remote and spec.env
    for name, env in (("with", spec.env), ("without", {})):
        rc = Rclone("rclone", "/dev/null", ["--dump", "auth", "-vv"], log_dir=tmp_path,
                    env=env)
        res = rc.run(["lsf", spec.remote], name)
        assert res.returncode == 0, res.last_error
    signed = "Authorization: AWS4-HMAC-SHA256 Credential="
    assert signed in (tmp_path / "with.log").read_text()
    assert signed not in (tmp_path / "without.log").read_text()
    assert ACCESS_KEY not in (tmp_path / "with.log").read_text()  # our log redacts it too


class PsSampler(threading.Thread):
    """Every command line on the node, sampled until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lines: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            out = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True,
                                 text=True).stdout
            self.lines.update(out.splitlines())
            time.sleep(0.1)


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            try:
                data = open(p, "rb").read()
            except OSError:
                continue
            if any(n in data for n in needles):
                hits.append(p)
    return hits


@pytest.mark.slurm
def test_keys_in_an_on_the_fly_remote_reach_no_file_and_no_command_line(
        s3: S3Server, tmp_path: Path, slurm_cluster: None, capsys: pytest.CaptureFixture,
        isolated_env: Path) -> None:
    folder = os.fsencode(tmp_path / "lab" / "proj")
    write_file(folder + b"/big.bin", os.urandom(1_500_000), mtime=1_500_000_000)
    write_file(folder + b"/small.txt", b"hello", mtime=1_500_000_000)
    cfg = load_config({"archive.rclone_config": "/dev/null", "archive.retry_delay": 1,
                       "archive.rclone_flags": [*RCLONE_TEST_FLAGS, "--bwlimit", "400k"],
                       "archive.bundle_threshold": "1KiB"})
    ps = PsSampler()
    ps.start()
    try:
        result = archive_folders([folder], onthefly(s3), cfg, backend="slurm")
        st = wait_finished(result.run, cfg, timeout=600)
    finally:
        ps.stop.set()
        ps.join()
    assert [f["state"] for f in st["folders"]] == ["done"], st
    assert s3.list_keys("secrets/")  # the data went where the remote said
    run = result.run
    assert stat.S_IMODE(run.secrets_path.stat().st_mode) == 0o600
    # rclone really ran with the remote on its command line, and no key on any command line
    seen = [ln for ln in ps.lines if f"{s3.bucket}/secrets" in ln and "rclone" in ln]
    assert seen, "no rclone command line was sampled"
    assert not [ln for ln in ps.lines if SECRET_KEY_ID in ln or SECRET_KEY in ln]
    assert main(["status", run.run_id]) == 0
    assert main(["catalog"]) == 0
    printed = capsys.readouterr()
    assert "secrets" in printed.out
    needles = [SECRET_KEY_ID.encode(), SECRET_KEY.encode()]
    assert SECRET_KEY not in printed.out + printed.err
    # Every file the tool wrote: state dir (run.toml, config.toml, summary, logs, rclone logs,
    # catalog), the folder's trace, the test tree.  Only the 0600 secrets file holds them.
    hits = files_holding(isolated_env, needles) + files_holding(tmp_path, needles)
    assert hits == [str(run.secrets_path)], hits
