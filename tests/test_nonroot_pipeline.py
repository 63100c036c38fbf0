"""Ordinary users (issue 13): the whole pipeline as an unprivileged account on real Slurm.

An account made for the test installs nothing of its own: it runs the wheel installed into a
fresh venv (tests/installed.py), with its own rclone config (0600) for the moto S3 server on
127.0.0.1.  submit -> crawl -> rank -> archive -> finalize -> status -> purge -> restore all
run as that account; a second account then proves it cannot read the first one's state, logs
or config; a folder the user may read but not write is archived, and says where its trace is.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
import tomli_w
from accounts import account_env, ensure_account, run_as
from installed import Installed, wait_last_run
from s3server import RCLONE_TEST_FLAGS, S3Server

USER = "fstest-user"
OTHER = "fstest-other"


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), uid, gid, follow_symlinks=False)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def account(s3: S3Server, installed: Installed):
    """A fresh home for USER with a lab tree, an rclone config and a froster-slurm config."""
    user = ensure_account(USER)
    # One private base per test session: concurrent sessions (other checkouts on this
    # machine) share the account, never each other's files.
    home = Path(user.pw_dir) / f"t-{os.getpid()}-{time.time_ns()}"
    home.mkdir(mode=0o755)
    lab = home / "lab"
    for proj, size in (("proj-a", 300_000), ("proj-b", 200_000)):
        _write(lab / proj / "big.bin", os.urandom(size))
        for i in range(3):
            _write(lab / proj / f"small-{i}.txt", b"y" * (50 + i))
    rclone_conf = home / ".config" / "rclone" / "rclone.conf"
    rclone_conf.parent.mkdir(parents=True)
    shutil.copyfile(s3.rclone_config, rclone_conf)
    rclone_conf.chmod(0o600)
    cfg = home / ".config" / "froster-slurm" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(tomli_w.dumps({
        "state_dir": str(home / "archive-state"),
        "archive": {"rclone_config": str(rclone_conf), "rclone_flags": RCLONE_TEST_FLAGS,
                    "retry_delay": 1},
        "restore": {"check_interval": 1}}))
    # A folder the user may read but not write: root's, 0755, inside the user's tree.
    ro = lab / "shared-ro"
    _write(ro / "data.bin", os.urandom(150_000))
    for p in (ro, ro / "data.bin"):
        os.chown(p, 0, 0)
    ro.chmod(0o755)
    _chown_tree(home, user.pw_uid, user.pw_gid)
    os.chown(ro, 0, 0)
    os.chown(ro / "data.bin", 0, 0)
    env = account_env(user, FROSTER_SLURM_SITE_CONFIG=str(home / "no-site.toml"),
                      XDG_CONFIG_HOME=str(home / ".config"))
    yield user, home, lab, env
    shutil.rmtree(home, ignore_errors=True)


def cli(inst: Installed, user, env: dict[str, str], *args: str, ok: bool = True):
    proc = run_as(user, [str(inst.exe), *args], env=inst.env(env))
    if ok:
        assert proc.returncode == 0, f"{args}: rc {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def wait_finished(inst: Installed, user, env: dict[str, str], timeout: float = 420) -> dict:
    return wait_last_run(lambda: cli(inst, user, env, "status", "last", "--json").stdout,
                         timeout, every=2)


@pytest.mark.slurm
def test_the_whole_pipeline_runs_as_an_ordinary_user(account, installed: Installed,
                                                     s3: S3Server, slurm_cluster: None) -> None:
    user, home, lab, env = account
    assert user.pw_uid != 0
    out = cli(installed, user, env, "submit", str(lab), "--to", s3.remote + "/nonroot",
              "--min-size", "0", "--min-avg-size", "0", "--backend", "slurm").stdout
    assert "crawl     job" in out and "rank      job" in out, out
    st = wait_finished(installed, user, env)
    by_name = {Path(f["folder"]).name: f for f in st["folders"]}
    for proj in ("proj-a", "proj-b", "shared-ro"):
        assert by_name[proj]["state"] == "done", by_name[proj]
    # Read-only folder: archived and verified, no trace in it, the run says where it is.
    assert not (lab / "shared-ro" / "Froster.archive.json").exists()
    assert "trace not written into the folder" in (by_name["shared-ro"].get("warning") or "")
    assert (lab / "proj-a" / "Froster.archive.json").exists()
    text = cli(installed, user, env, "status", "last").stdout
    assert "folders archived" in text
    cat = json.loads(cli(installed, user, env, "catalog", "--json").stdout)
    assert {Path(e["folder"]).name for e in cat} >= {"proj-a", "proj-b", "shared-ro"}

    # Private: state dir, run dir, run.toml, logs and the config holding credentials.
    state = home / "archive-state"
    (run_dir,) = [d for d in (state / "runs").iterdir() if d.is_dir()]
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "run.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((run_dir / "config.toml").stat().st_mode) == 0o600
    assert all(p.stat().st_uid == user.pw_uid for p in run_dir.rglob("*"))
    other = ensure_account(OTHER)
    logs = sorted((run_dir / "logs").iterdir())
    assert logs
    for target in (run_dir / "run.toml", logs[0], run_dir / "summary.json",
                   home / ".config" / "rclone" / "rclone.conf"):
        proc = run_as(other, ["cat", str(target)])
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, (target, proc)
    proc = run_as(other, ["ls", str(state / "runs")])
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    proc = run_as(other, [str(installed.exe), "status", "--all"],
                  env=installed.env(account_env(other, FROSTER_SLURM_STATE_DIR=str(state))))
    assert proc.returncode == 77 and "Traceback" not in proc.stderr, proc
    assert "permission denied" in proc.stderr and str(state) in proc.stderr, proc

    # purge, then restore, as the user
    proj = lab / "proj-a"
    before = {p.name: p.read_bytes() for p in proj.iterdir() if not p.name.startswith(
        ("Froster.", "index.html"))}
    cli(installed, user, env, "purge", str(proj), "--yes", "--backend", "slurm")
    assert not (proj / "big.bin").exists()
    out = cli(installed, user, env, "restore", str(proj), "--wait", "--backend", "slurm").stdout
    assert "restored: " in out, out
    assert {n: (proj / n).read_bytes() for n in before} == before
    assert all((proj / n).stat().st_uid == user.pw_uid for n in before)


def test_a_shared_state_dir_keeps_each_accounts_runs_to_itself(installed: Installed,
                                                               tmp_path: Path) -> None:
    """Two accounts, one world-writable state_dir (as an admin may set up): each one's runs
    are private (0700), and each sees, lists and opens only its own."""
    users = [ensure_account(USER), ensure_account(OTHER)]
    shared = Path(f"/tmp/froster-shared-state-{os.getpid()}-{time.time_ns()}")
    shared.mkdir()
    shared.chmod(0o1777)
    bases = []
    try:
        run_ids = []
        for user in users:
            base = Path(user.pw_dir) / f"t-shared-{os.getpid()}-{time.time_ns()}"
            base.mkdir()
            bases.append(base)
            _write(base / "data" / "f.txt", b"mine")
            _chown_tree(base, user.pw_uid, user.pw_gid)
            env = installed.env(account_env(user, FROSTER_SLURM_STATE_DIR=str(shared),
                                            FROSTER_SLURM_SITE_CONFIG=str(base / "none.toml"),
                                            XDG_CONFIG_HOME=str(base / ".config")))
            proc = run_as(user, [str(installed.exe), "archive", str(base / "data"), "--to",
                                 str(base / "dest"), "--backend", "local", "--dry-run"],
                          env=env)
            assert proc.returncode == 0, proc
            mine = [d for d in (shared / "runs").iterdir()
                    if d.stat().st_uid == user.pw_uid]
            assert len(mine) == 1 and stat.S_IMODE(mine[0].stat().st_mode) == 0o700
            run_ids.append(mine[0].name)
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # the admin's mode is kept
        for user, base, mine, theirs in zip(users, bases, run_ids, run_ids[::-1],
                                             strict=True):
            env = installed.env(account_env(user, FROSTER_SLURM_STATE_DIR=str(shared),
                                            FROSTER_SLURM_SITE_CONFIG=str(base / "none.toml"),
                                            XDG_CONFIG_HOME=str(base / ".config")))
            listed = run_as(user, [str(installed.exe), "runs", "list"], env=env)
            assert listed.returncode == 0, listed
            assert mine in listed.stdout and theirs not in listed.stdout
            last = run_as(user, [str(installed.exe), "status", "last"], env=env)
            assert last.returncode == 0 and mine in last.stdout and "dry-run" in last.stdout
            other = run_as(user, [str(installed.exe), "status", theirs], env=env)
            assert other.returncode != 0 and "Traceback" not in other.stderr, other
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        for base in bases:
            shutil.rmtree(base, ignore_errors=True)
