"""Helpers shared by the restore and purge tests (this module holds no tests).

Folders are archived with the archive stage's own task entry point
(``python -m froster_slurm.jobs archive RUN_DIR INDEX`` on a run made with ``create_run``, via
``archive_helpers``), so purge and restore are tested against real traces and real remote
layouts, never against hand-written ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from archive_helpers import make_run, run_task, state
from s3server import RCLONE_TEST_FLAGS, S3Server

from froster_slurm.cli import main

TRACE = {b"Froster.archive.json", b"Froster.manifest.md5", b"index.html"}
THRESHOLD = 4 * 1024  # small enough that a test tree has both objects and a bundle


def archive(tmp_path: Path, folder: bytes, remote: str, *, server: S3Server | None = None,
            storage_class: str = "DEEP_ARCHIVE", recursive: bool = True) -> dict[str, Any]:
    """Archive one folder for real and return its record."""
    extra: dict[str, Any] = {"bundle_threshold": THRESHOLD, "storage_class": storage_class,
                             "recursive": recursive}
    if server is not None:
        extra.update(rclone_config=str(server.rclone_config), rclone_flags=RCLONE_TEST_FLAGS)
    run_dir = make_run(tmp_path / "archive-state", [folder], remote, **extra)
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr[-3000:]
    assert state(run_dir, 0)["state"] == "done"
    return json.loads(Path(os.fsdecode(folder + b"/Froster.archive.json")).read_bytes())


def configure(monkeypatch: pytest.MonkeyPatch, server: S3Server | None, *,
              check_interval: int = 2, inline_max: str = "10GiB", backend: str = "slurm"
              ) -> None:
    """The user's settings for purge/restore, through the environment layer of the config."""
    if server is not None:
        monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(server.rclone_config))
        monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_FLAGS",
                           json.dumps(RCLONE_TEST_FLAGS))
    monkeypatch.setenv("FROSTER_SLURM_RESTORE__CHECK_INTERVAL", str(check_interval))
    monkeypatch.setenv("FROSTER_SLURM_PURGE__INLINE_MAX", inline_max)
    monkeypatch.setenv("FROSTER_SLURM_BACKEND", backend)


def cli(*args: str | bytes) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stdout + stderr)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = main([os.fsdecode(a) for a in args])
    return rc, buf.getvalue()


def snapshot(root: bytes, *, skip_trace: bool = True) -> dict[bytes, tuple]:
    """Everything below ``root`` (not root itself): type, mode, mtime, content or target."""
    out: dict[bytes, tuple] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if skip_trace and rel in TRACE:
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                body: Any = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    body = f.read()
            else:
                body = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                        body)
    return out


def inode_groups(root: bytes) -> list[set[bytes]]:
    """Names sharing an inode (hard links), as sets of relative paths."""
    by: dict[int, set[bytes]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                by.setdefault(st.st_ino, set()).add(os.path.relpath(path, root))
    return sorted(by.values(), key=sorted)


def data_files(root: bytes) -> list[bytes]:
    """Regular files and symlinks below root, trace files excluded."""
    return sorted(rel for rel, v in snapshot(root).items()
                  if stat.S_ISREG(v[0]) or stat.S_ISLNK(v[0]))


def set_restore_transition(server: S3Server, transition: dict[str, Any]) -> None:
    """moto's state manager: how a restored object moves from in-progress to readable."""
    body = json.dumps({"model_name": "s3::keyrestore", "transition": transition}).encode()
    req = urllib.request.Request(server.endpoint + "/moto-api/state-manager/set-transition",
                                 data=body, method="POST")
    urllib.request.urlopen(req, timeout=10).read()


def jobs_named(name: str) -> list[tuple[str, str]]:
    """(job id, state) of the live jobs with this name."""
    p = subprocess.run(["squeue", "-h", "--name", name, "-o", "%i %T"], capture_output=True,
                       text=True, check=True)
    return [tuple(line.split()) for line in p.stdout.splitlines() if line.strip()]




def cancel(job: str | None) -> None:
    if job:
        subprocess.run(["scancel", job], capture_output=True)
