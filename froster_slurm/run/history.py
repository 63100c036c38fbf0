"""Old runs: list them by what they are (status.collect's run states) and prune the finished ones.

A state dir collects a run per submission, dry run and restore; after months it holds
hundreds.  ``runs list --state`` finds the ones that matter and ``runs prune --older-than``
removes those that can change no more.  A run that is active, or whose state cannot be told
(Slurm not reachable from here), is never pruned; nor is another account's run in a shared
state dir.  The catalog keeps every archived folder's record, so pruning a run loses its
logs and scripts, not the way back to the data.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import Config
from ..errors import UserError
from ..status.collect import RUN_STATES, RunStatus, collect, query_backend
from ..util.clock import parse_iso
from .rundir import Run, list_runs

# States in which nothing of a run will change any more.
PRUNABLE = ("finished", "cancelled", "stopped", "dry-run", "submit-failed", "not-submitted")


@dataclass
class RunEntry:
    run: Run
    status: RunStatus
    age_seconds: float

    @property
    def state(self) -> str:
        return self.status.state


def check_states(states: Iterable[str]) -> list[str]:
    out = list(states)
    bad = [s for s in out if s not in RUN_STATES]
    if bad:
        raise UserError(f"unknown run state {', '.join(bad)}; states: {', '.join(RUN_STATES)}")
    return out


def _created(run: Run) -> float:
    when = parse_iso(run.settings.created)
    if when is not None:
        return when.timestamp()
    return run.settings_path.stat().st_mtime


def entries(config: Config, states: Iterable[str] = (), now: float | None = None
            ) -> list[RunEntry]:
    """Every readable run of the state dir, oldest first, with its state (filtered)."""
    wanted = set(check_states(states))
    now = time.time() if now is None else now
    out = []
    for run in list_runs(config):
        try:
            st = collect(run, query_backend(run, config), every_folder=False)
        except PermissionError:
            continue  # another account's run in a shared state dir
        if wanted and st.state not in wanted:
            continue
        out.append(RunEntry(run, st, now - _created(run)))
    return out


def prune(config: Config, older_than: float, states: Iterable[str] = (), *,
          dry_run: bool = False, now: float | None = None) -> list[RunEntry]:
    """Delete (or with ``dry_run`` only list) runs older than ``older_than`` seconds whose
    state is final; ``states`` narrows which final states."""
    narrowed = check_states(states)
    refused = [s for s in narrowed if s not in PRUNABLE]
    if refused:
        raise UserError(f"runs that are {', '.join(refused)} are never pruned; prunable: "
                        f"{', '.join(PRUNABLE)}")
    chosen = [e for e in entries(config, narrowed or PRUNABLE, now)
              if e.age_seconds >= older_than and e.state in PRUNABLE
              and e.run.run_dir.stat().st_uid == os.geteuid()]
    if not dry_run:
        for e in chosen:
            shutil.rmtree(e.run.run_dir)
    return chosen
