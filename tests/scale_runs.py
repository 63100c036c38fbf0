"""Synthetic runs at scale (issue 16): a run directory with N folders whose task states and
archive records are written by the project's own writers (``taskstate.write_task_state``,
``folder.schema.json_bytes``), without archiving anything.  Used by the finalize memory and
status tests and by ``bench/bench_scale.py``.

Folder names are hostile on purpose (a newline, bytes that are not UTF-8, shell syntax).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from froster_slurm.config import load_config
from froster_slurm.folder.schema import json_bytes as record_bytes
from froster_slurm.run import taskslots
from froster_slurm.run.rundir import archive_settings, create_run
from froster_slurm.run.taskstate import new_state, now_iso, state_path, task_dir, write_task_state

NAMES = (b"plain", b"caf\xe9", b"new\nline", b"$(touch PWNED)", b"-rf", b"sp ace")


def folder_name(root: bytes, i: int) -> bytes:
    return root + b"/g%d/%s-%d" % (i % 97, NAMES[i % len(NAMES)], i)


def synthetic_record(folder: bytes, run_id: str, index: int, files: int) -> dict[str, Any]:
    """An archive record shaped as ``archive.trace.build_record`` makes it, ``files`` files."""
    src = os.fsdecode(folder)
    entries = [{"path": f"sub{k % 10}/file-{k:07d}.dat", "type": "file", "mode": 0o100644,
                "mtime_ns": 1_700_000_000_000_000_000 + k, "uid": 1000, "gid": 1000,
                "size": 4096 + k, "md5": f"{k:032x}", "object": None,
                "bundle": "Froster.bundles/bundle-000001.tar"} for k in range(files)]
    return {
        "format": "froster-slurm-archive", "format_version": 1, "froster_slurm_version": "0",
        "state": "archived", "version": 1, "previous": [], "run_id": run_id,
        "task_index": index, "source": src, "destination": f"s3test:bucket/froster{src}",
        "storage_class": "DEEP_ARCHIVE", "trace_storage_class": "STANDARD", "remote": {},
        "stored": {}, "archived_at": "2026-12-01T10:00:00Z", "user": "alice", "host": "n1",
        "recursive": True, "files": files, "bytes": sum(e["size"] for e in entries),
        "symlinks": 0, "dirs": 10, "objects": 1,
        "manifest": {"name": "Froster.manifest.md5", "md5": "0" * 32, "lines": files},
        "index_html": "index.html", "bundle_dir": "Froster.bundles",
        "bundles": [{"name": "Froster.bundles/bundle-000001.tar", "md5": "1" * 32,
                     "size": 4096 * files, "members": list(range(files))}],
        "root": {"mode": 0o40755, "mtime_ns": 0, "uid": 1000, "gid": 1000},
        "entries": entries, "skipped": [], "excluded": [],
    }


def make_scale_run(state_dir: Path, folders: int, *, files: int = 0,
                   mix: dict[str, int] | None = None, fast: bool = False) -> Path:
    """A run of ``folders`` folders.  ``files``: every done folder has a record of that many
    files (finalize); ``mix``: how many folders are in each non-done state, the rest done
    (status); ``fast``: states written without fsync (``write_state_quickly``).  Returns the
    run directory."""
    cfg = load_config({"state_dir": str(state_dir)})
    root = os.fsencode(state_dir) + b"/data"
    names = [folder_name(root, i) for i in range(folders)]
    run = create_run(cfg, "archive", folders=names,
                     archive=archive_settings(cfg, "s3test:bucket/froster"), backend="local")
    plan: list[str] = []
    for state, n in (mix or {}).items():
        plan += [state] * n
    plan += ["done"] * (folders - len(plan))
    # spread the states over the run, as a real one finishes them
    order = sorted(range(folders), key=lambda i: (i * 7919) % folders)
    for k, i in enumerate(order):
        state = plan[k]
        if state == "pending":
            continue  # a task that never started has no state file
        s = new_state(i, names[i])
        s.update(state=state, attempts=1, step="verify" if state != "done" else None,
                 bytes_total=4096 * max(files, 1), destination=f"s3test:bucket/froster{i}",
                 slurm_job=f"1000_{i}", started_at="2026-12-01T10:00:00Z")
        if state == "failed":
            s.update(error=f"rclone copy failed for folder {i}: 403 Forbidden",
                     error_kind="permanent" if i % 2 else "transient", failures=3,
                     max_attempts=3)
        if state == "running":
            s.update(bytes_done=2048)
        if state == "done":
            s.update(bytes_done=s["bytes_total"], files=files, finished_at="2026-12-01T10:01:00Z",
                     steps_done=["inventory", "hash", "upload", "verify", "trace"])
            if files:
                data = record_bytes(synthetic_record(names[i], run.run_id, i, files))
                (task_dir(run.run_dir, i) / "record.json").parent.mkdir(parents=True,
                                                                       exist_ok=True)
                (task_dir(run.run_dir, i) / "record.json").write_bytes(data)
        if fast:
            write_state_quickly(run.run_dir, i, s)
        else:
            write_task_state(run.run_dir, i, s)
    return run.run_dir


def write_state_quickly(run_dir: Path, index: int, state: dict[str, Any]) -> None:
    """What ``write_task_state`` writes (the same JSON and slot) without its fsync, so a
    200,000-folder run is made in seconds, not in 200,000 disk flushes."""
    state["updated_at"] = now_iso()
    path = state_path(run_dir, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps(state, indent=1, ensure_ascii=True, sort_keys=True).encode()
                     + b"\n")
    taskslots.write(run_dir, index, state, int(time.time()))
