"""Helpers for the archive tests: a run directory, the task as a real subprocess, odd trees,
and a minimal restore that proves the record + bundles are enough to rebuild a folder.

``make_run`` uses the manager's own ``froster_slurm.run.rundir.create_run`` so the tests exercise
the exact run layout jobs see (run.toml + folders.nul + tasks/).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from froster_slurm.config import load_config
from froster_slurm.run.rundir import archive_settings, create_run

REPO = Path(__file__).resolve().parent.parent

# Folder names that must archive correctly without running anything (issue 6, item 2).
ODD_FOLDERS = [b"$(touch PWNED)", b"a\"b'c", b"-rf", b"new\nline", b"with spaces",
               b"caf\xe9-latin1", b"`touch PWNED`; rm -rf x"]


def need(tool: str) -> str:
    """An external tool the archive tests cannot do without: missing FAILS, never skips."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; the archive tests need it (make setup)")
    return path


def make_run(state_dir: Path, folders: list[bytes], remote: str, *, backend: str = "local",
             **archive: Any) -> Path:
    """A run directory archiving ``folders`` to ``remote``; ``archive`` overrides [archive]."""
    cfg = load_config({"state_dir": str(state_dir)})
    settings = archive_settings(cfg, remote)
    # rclone_logs "all": the tests read a done folder's rclone logs (what was uploaded, when)
    settings.update({"recursive": True, "retry_delay": 1, "hash_workers": 2,
                     "rclone_logs": "all"})
    settings.update(archive)
    return create_run(cfg, "archive", folders=folders, archive=settings,
                      backend=backend).run_dir


def task_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the local backend gives a task (no inherited Slurm job variables)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.update(FROSTER_BACKEND="local", PYTHONPATH=str(REPO), SLURM_ARRAY_JOB_ID="local9",
               SLURM_JOB_ID="local9")
    env.update(extra or {})
    return env


def task_cmd(run_dir: Path, index: int, python: str = sys.executable) -> list[str]:
    return [python, "-m", "froster_slurm.jobs", "archive", str(run_dir), str(index)]


def run_task(run_dir: Path, index: int, *, timeout: float = 120,
             env: dict[str, str] | None = None, prefix: list[str] | None = None
             ) -> subprocess.CompletedProcess:
    """Run one archive task for real, as the job script would; returns the finished process."""
    env = task_env({"SLURM_ARRAY_TASK_ID": str(index), **(env or {})})
    return subprocess.run([*(prefix or []), *task_cmd(run_dir, index)], cwd="/", env=env,
                          capture_output=True, text=True, timeout=timeout)


def state(run_dir: Path, index: int) -> dict[str, Any]:
    return json.loads((run_dir / "tasks" / str(index) / "state.json").read_text())


def write_file(path: bytes, data: bytes, mtime: float | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def tiny_folders(root: Path, n: int) -> list[bytes]:
    """``n`` folders ``root/fNN`` of one small file each (the queue and batch tests)."""
    folders = []
    for i in range(n):
        f = os.fsencode(root / f"f{i:02d}")
        write_file(f + b"/a.txt", b"a%d" % i, mtime=1_500_000_000)
        folders.append(f)
    return folders


def rich_tree(root: bytes, big: int = 200 * 1024) -> None:
    """Large and small files, odd names, every kind of link, hard links, empty folders."""
    write_file(root + b"/big.bin", os.urandom(big), mtime=1_600_000_000.123456)
    write_file(root + b"/sub/big2.bin", os.urandom(big + 1))
    write_file(root + b"/small.txt", b"small\n", mtime=1_500_000_000)
    write_file(root + b"/sub/deep/tiny", b"t")
    write_file(root + b"/empty-file", b"")
    for name in (b"new\nline.txt", b"caf\xe9.txt", b"back\\slash", b"-rf", b"$(touch PWNED)",
                 b" lead space", b"star*", b"#hash", b"cr\rname"):
        write_file(root + b"/odd/" + name, b"odd " + name)
    write_file(root + b"/odd/big odd\nname.bin", os.urandom(big))  # large but not a key
    os.makedirs(root + b"/empty/nested-empty")
    os.symlink(b"big.bin", root + b"/link-to-file")
    os.symlink(b"sub", root + b"/link-to-dir")
    os.symlink(b"/etc", root + b"/link-absolute")
    os.symlink(b"does-not-exist", root + b"/link-dangling")
    os.link(root + b"/big.bin", root + b"/big.hardlink")
    os.link(root + b"/small.txt", root + b"/sub/small.hardlink")
    os.chmod(root + b"/sub/deep/tiny", 0o751)


def md5sum_check(folder: bytes) -> subprocess.CompletedProcess:
    """Plain ``md5sum -c`` of the manifest, from inside the folder."""
    return subprocess.run(["md5sum", "-c", "--strict", "Froster.manifest.md5"], cwd=folder,
                          capture_output=True)


def rclone_args(config: str | None) -> list[str]:
    return ["--config", config] if config else []


def restore_with_rclone(record: dict[str, Any], out: bytes, staging: bytes,
                        config: str | None = None) -> None:
    """Rebuild a folder the way index.html tells a person to, with rclone and tar only.

    Copies everything at the record's ``destination`` back into ``staging``, puts each object
    at its path, unpacks every bundle, then applies the recorded modes and mtimes.
    """
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    subprocess.run(["rclone", "copy", "--checksum", os.fsencode(record["destination"]),
                    staging, *rclone_args(config)], check=True, capture_output=True, env=env)
    os.makedirs(out, exist_ok=True)
    entries = record["entries"]
    for e in entries:
        path = os.path.join(out, os.fsencode(e["path"]))
        if e["type"] == "dir" and not e.get("bundle"):
            os.makedirs(path, exist_ok=True)
        elif e["type"] == "file" and e.get("object"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if e.get("hardlink_to"):
                os.link(os.path.join(out, os.fsencode(e["hardlink_to"])), path)
            else:
                shutil.copyfile(os.path.join(staging, os.fsencode(e["object"])), path)
    for b in record["bundles"]:
        subprocess.run(["tar", "-xpf", os.path.join(staging, os.fsencode(b["name"])),
                        "-C", out], check=True, capture_output=True)
    for e in entries:  # modes and mtimes last (creating children changes a dir's mtime)
        path = os.path.join(out, os.fsencode(e["path"]))
        if e["type"] != "symlink":
            os.chmod(path, stat.S_IMODE(e["mode"]))
            os.utime(path, ns=(e["mtime_ns"], e["mtime_ns"]))


def assert_same_tree(original: bytes, restored: bytes, record: dict[str, Any]) -> None:
    """Every recorded entry came back byte for byte: content, links, hard links, modes."""
    inodes: dict[int, set[bytes]] = {}
    for e in record["entries"]:
        rel = os.fsencode(e["path"])
        a, b = os.path.join(original, rel), os.path.join(restored, rel)
        sa, sb = os.lstat(a), os.lstat(b)
        assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), rel
        if e["type"] == "symlink":
            assert os.readlink(a) == os.readlink(b), rel
            continue
        assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), rel
        if e["type"] == "file":
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert fa.read() == fb.read(), rel
            assert sb.st_mtime_ns == e["mtime_ns"] == sa.st_mtime_ns, rel
            if sa.st_nlink > 1:
                inodes.setdefault(sa.st_ino, set()).add(rel)
    for group in inodes.values():
        restored_inodes = {os.lstat(os.path.join(restored, r)).st_ino for r in group}
        assert len(restored_inodes) == 1, f"hard links not kept: {group}"
