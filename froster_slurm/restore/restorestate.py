"""The restore state file: what a guarded restore job has done, so a requeue knows where it is.

One restore = one run directory (``kind = "restore"``) holding ``restore.json``.  The job may
run many times (each check while objects thaw is a new short job) and may be killed at any
point, so every phase is idempotent and the file says which phases are finished::

    phase       requested | waiting | downloading | placing | done | failed
    folder      the archived folder (surrogateescape text)
    target      where the data goes (the folder itself, or --to DEST)
    destination the remote folder the data comes from
    thaw        whether the objects need a restore request (Glacier / Deep Archive)
    requested_at, checks, last_check, ready_at, downloaded_at, placed_at, finished_at
    job_ids     every Slurm job of this restore, in order (the live one is the last)
    error       one line, or null

Written atomically (tmp + fsync + rename): a reader never sees half a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError, NotFoundError
from ..run.rundir import Run
from ..util.clock import now_iso
from ..util.paths import write_json_atomic

ACTIVE = ("requested", "waiting", "downloading", "placing")


def state_path(run_dir: Path) -> Path:
    return Run(Path(run_dir)).restore_state_path


def read_state(run_dir: Path) -> dict[str, Any]:
    path = state_path(run_dir)
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as e:
        raise NotFoundError(f"{path}: no restore state (not a restore run?)") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e


def write_state(run_dir: Path, state: dict[str, Any]) -> dict[str, Any]:
    path = state_path(run_dir)
    state["updated_at"] = now_iso()
    write_json_atomic(path, state)
    return state

