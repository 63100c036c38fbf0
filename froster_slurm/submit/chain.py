"""The archive queue: a run keeps at most ``slurm.max_queued`` array tasks in Slurm's queue.

Every array task counts against the cluster's ``MaxJobCount`` and the user's
``MaxSubmitJobs``; when either is full, ``sbatch`` does not fail, it sleeps and retries.  So a
submission never queues all its arrays at once.  It renders them all (the scripts are fixed at
submission, like every job's), writes the plan to ``scripts/chain-NNN.json`` and queues the
first array only, with a tiny *chain* job behind it (``--dependency=afterany`` on that array).
When the array has ended, the chain job queues the next array and the next chain job; after
the last array it queues finalize instead::

    archive-000 (%N) -> chain -> archive-001 (%N) -> chain -> ... -> archive-K (%N) -> finalize

One array at a time, each with ``%N``: at most N tasks of the run run at once, across all its
arrays, and at most one array's tasks (<= the cap) plus two small jobs are queued.  The local
backend runs jobs synchronously, so there the arrays are simply run in order.

The plan file is the one record of what is queued: a chain job that runs twice (a requeue, a
node lost) submits nothing twice, because it reads under a lock which arrays already have a
job id.  Every job goes into jobs.toml as it is queued, so ``status`` and ``retry`` see them.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import FrosterError, UserError
from ..run.rundir import Run
from ..scheduler.backends import Backend, RequeueFile
from ..scheduler.slurm import QueueLimits, dependency
from ..util.paths import write_json_atomic

CHAIN_JOB_NAME = "froster-chain"
# A derived cap leaves most of the cluster's job table to everyone else, and half of the
# user's own submit limit to their other work.
JOB_COUNT_SHARE = 10
SUBMIT_SHARE = 2


@dataclass(frozen=True)
class QueueCap:
    """How many archive tasks a run may queue, and where the number came from."""

    max_queued: int  # array tasks queued at once (one array at a time)
    max_array_size: int  # the site's MaxArraySize, or the smaller config value
    notes: tuple[str, ...] = field(default=())

    @property
    def chunk(self) -> int:
        """Tasks per array: below MaxArraySize and within the cap."""
        return max(1, min(self.max_queued, self.max_array_size))


def derive_cap(limits: QueueLimits, config_cap: int = 0, config_array: int = 0) -> QueueCap:
    """The queue cap from the site's limits and the config (pure: unit-tested).

    ``config_cap`` 0 derives it: a tenth of MaxJobCount, and at most half of the user's
    MaxSubmitJobs minus the two small jobs (chain, finalize) a run keeps beside its array.  A
    configured cap above what MaxSubmitJobs allows is lowered to it (with a note): sbatch would
    otherwise block.
    """
    notes: list[str] = []
    array = limits.max_array_size
    if config_array > 0 and config_array < array:
        array = config_array
    room = None
    if limits.max_submit_jobs is not None:
        room = max(1, limits.max_submit_jobs - 2)
    if config_cap > 0:
        cap = config_cap
        if room is not None and cap > room:
            notes.append(f"slurm.max_queued {cap} is above your MaxSubmitJobs "
                         f"({limits.max_submit_jobs}) less 2; using {room}")
            cap = room
    else:
        cap = max(1, limits.max_job_count // JOB_COUNT_SHARE)
        if limits.max_submit_jobs is not None:
            cap = min(cap, max(1, limits.max_submit_jobs // SUBMIT_SHARE - 2))
    return QueueCap(max_queued=cap, max_array_size=array, notes=tuple(notes))


def queue_cap(config: Config, be: Backend, *, dry_run: bool = False) -> QueueCap:
    """The cap for a submission through ``be`` (a dry run works without a reachable cluster)."""
    qos = config.slurm_options("archive").get("qos") or ""
    try:
        limits = be.queue_limits(qos=qos)
    except FrosterError:
        if not dry_run:
            raise
        limits = QueueLimits(max_array_size=1001, max_job_count=10000,
                             notes=["the cluster did not answer: Slurm's default limits"])
    return derive_cap(limits, int(config.get("slurm.max_queued")),
                      int(config.get("slurm.max_array_size")))


def chain_path(run: Run, number: int) -> Path:
    return run.chain_path(number)


def next_chain_number(run: Run) -> int:
    """Submissions of a run are numbered in order (the first one, then each retry)."""
    return len(list(run.scripts_dir.glob("chain-*.json")))


def write_chain(run: Run, number: int, plan: dict[str, Any]) -> Path:
    path = chain_path(run, number)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, plan)
    return path


@contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    """The plan under an exclusive lock (the caller writes it back after each job it queues:
    a job queued is never forgotten, even if the next sbatch fails)."""
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            plan = json.loads(path.read_bytes())
        except (FileNotFoundError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: no readable archive chain plan ({e})") from e
        yield plan


def advance(run: Run, be: Backend, number: int, *, caller: str | None = None
            ) -> dict[str, list[str]]:
    """Queue the next array of submission ``number`` and what follows it; returns the job ids.

    Under Slurm one step: the first array without a job, then a chain job behind it (or, after
    the last array, finalize).  Under the local backend (synchronous) every array in order, then
    finalize.  ``caller`` is the chain job's own id: only the chain job the plan is waiting
    for may advance it (a chain job that runs again after it did its step, a requeue, would
    otherwise queue the array after next while the next one still runs).
    """
    path = chain_path(run, number)
    scripts = path.parent
    queued: dict[str, list[str]] = {}
    with _locked(path) as plan:
        if caller is not None and plan.get("chain_job") != caller:
            print(f"chain {number}: job {caller} is not the one this plan waits for "
                  f"({plan.get('chain_job')}); nothing to do", flush=True)
            return queued
        while True:
            todo = [c for c in plan["chunks"] if not c.get("job")]
            if not todo and plan.get("finalize_job"):
                return queued
            if todo:
                chunk = todo[0]
                job = be.submit(scripts / chunk["script"],
                                requeue_file=_batch_requeue_files(run, chunk["offset"]))
                chunk["job"] = job
                write_json_atomic(path, plan)
                run.record_jobs("archive", [job], offset=chunk["offset"], count=chunk["count"],
                                folders=chunk.get("folders", chunk["count"]),
                                script=chunk["script"], chain=number)
                queued.setdefault("archive", []).append(job)
                todo = todo[1:]
            if todo and be.name != "local":
                after = [chunk["job"]]
                job = be.submit(scripts / plan["chain_script"],
                                dependency=dependency(afterany=after))
                plan["chain_job"] = job
                write_json_atomic(path, plan)
                run.record_jobs("chain", [job], chain=number, after=after)
                queued.setdefault("chain", []).append(job)
                return queued
            if not todo:
                plan["chain_job"] = None
                # afterany on every array: under Slurm each one ended before the next was
                # queued, so this is the last one; singleton keeps one finalize of the run.
                after = [c["job"] for c in plan["chunks"]] if be.name == "local" else \
                    [c["job"] for c in plan["chunks"][-1:]]
                job = be.submit(scripts / plan["finalize_script"],
                                dependency=dependency(afterany=after, singleton=True))
                plan["finalize_job"] = job
                write_json_atomic(path, plan)
                run.record_jobs("finalize", [job], chain=number)
                queued.setdefault("finalize", []).append(job)
                return queued


def _batch_requeue_files(run: Run, offset: int) -> RequeueFile:
    """Array task t of the archive array at ``offset`` runs batch offset + t: where it leaves
    its requeue time (what the local backend waits for; Slurm's job script asks retry-delay)."""
    return lambda task: run.batch_requeue_after(offset + task)
