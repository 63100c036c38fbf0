"""The restore state file: what a guarded restore job has done, so a requeue knows where it is.

One restore = one run directory (``kind = "restore"``) holding ``restore.json``.  The job may
run many times (each check while objects thaw is a new short job) and may be killed at any
point, so every phase is idempotent and the file says which phases are finished::

    phase       a ``RestorePhase``: requested | waiting | downloading | downloaded |
                verified | placed | done | failed
    folder      the archived folder (surrogateescape text)
    target      where the data goes (the folder itself, or --to DEST)
    destination the remote folder the data comes from
    thaw        whether the objects need a restore request (Glacier / Deep Archive)
    requested_at, checks, last_check, ready_at, downloaded_at, verified_at, placed_at,
    finished_at
    job_ids     every Slurm job of this restore, in order (the live one is the last)
    error       one line, or null

Written atomically (``util.atomic``): a reader never sees half a file.  A phase that is not a
``RestorePhase`` is refused when the file is read, with the file's name.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import DataError, NotFoundError
from ..run.rundir import Run
from ..util.clock import now_iso
from ..util.paths import write_json_atomic


class RestorePhase(StrEnum):
    """Where a restore is; each phase's work is done when the next one is written."""

    REQUESTED = "requested"      # the run exists, no job has looked yet
    WAITING = "waiting"          # cold objects thaw (restore requests sent)
    DOWNLOADING = "downloading"  # fetching the objects into the staging directory
    DOWNLOADED = "downloaded"    # all fetched
    VERIFIED = "verified"        # unpacked and every file checked against the manifest
    PLACED = "placed"            # moved into the target
    DONE = "done"                # trace and catalog updated
    FAILED = "failed"            # stopped for good (``failed_phase`` says where)


# Not finished: a new restore of the same target resumes such a run instead of starting over.
ACTIVE = frozenset(RestorePhase) - {RestorePhase.DONE, RestorePhase.FAILED}


def state_path(run_dir: Path) -> Path:
    return Run(Path(run_dir)).restore_state_path


def read_state(run_dir: Path) -> dict[str, Any]:
    path = state_path(run_dir)
    try:
        state = json.loads(path.read_bytes())
    except FileNotFoundError as e:
        raise NotFoundError(f"{path}: no restore state (not a restore run?)") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    try:
        state["phase"] = RestorePhase(state.get("phase"))
    except (AttributeError, ValueError) as e:
        raise DataError(f"{path}: unknown restore phase {state.get('phase')!r} (phases: "
                        f"{', '.join(RestorePhase)})") from e
    return state


def write_state(run_dir: Path, state: dict[str, Any]) -> dict[str, Any]:
    path = state_path(run_dir)
    state["updated_at"] = now_iso()
    write_json_atomic(path, state)
    return state

