"""Submitting work: an archive of known folders, or the whole crawl -> rank -> archive chain.

The manager side of every run. It writes the run directory, renders each stage's script there
and chains the jobs with dependencies::

    crawl (array over shards, singleton per root set)
      -> rank (afterok)  ... submits, once it knows the folder count:
           -> archive array 0 (%throttle), at most slurm.max_queued tasks
              -> chain job (afterany) -> archive array 1 -> chain job -> ...
                 -> finalize (afterany on the last array; singleton per run)

The arrays are queued one after another by the chain jobs (``chain.py``), so a run never
holds more than one array in the queue and never more than ``archive.throttle`` tasks running.

Every job id is recorded in the run's jobs.toml so status, retry and finalize can find them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..config import Config, save_snapshot
from ..errors import UserError
from ..run.batches import append_batches, batch_count
from ..run.batches import spec as batch_spec
from ..run.rundir import Run, archive_settings, crawl_dir, create_run, run_config, submitting
from ..scheduler.backends import Backend, choose_backend
from ..scheduler.slurm import dependency
from ..util.paths import display, read_folder_list, write_folder_list
from . import chain, preflight, runguard
from .batching import plan_batches
from .stages import render_stage, sbatch_options

FINALIZE_JOB_NAME = "froster-finalize"


@dataclass
class SubmitResult:
    """What a submission produced: printed by the CLI, used by tests."""

    run: Run
    job_ids: dict[str, list[str]] = field(default_factory=dict)
    scripts: list[Path] = field(default_factory=list)
    dry_run: bool = False
    backend: str = "slurm"
    notes: list[str] = field(default_factory=list)  # things a person should know (stderr)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def watch(self) -> str:
        return f"froster-slurm status {self.run_id} --watch"


def make_backend(config: Config, requested: str | None = None) -> Backend:
    return choose_backend(requested or config.get("backend"), config.path("state_dir"),
                          config.get("local_parallel"))


def backend_for_run(run: Run, config: Config) -> Backend:
    return choose_backend(run.settings.backend or "auto", config.path("state_dir"),
                          config.get("local_parallel"))


def clean_folders(folders: list[bytes], recursive: bool) -> list[bytes]:
    """Absolute, normalised, de-duplicated; in recursive mode no folder inside another."""
    out: list[bytes] = []
    seen: set[bytes] = set()
    for f in folders:
        if not f:
            raise UserError("an empty folder path was given")
        p = os.path.normpath(os.path.abspath(f))
        if p == b"/":
            raise UserError("refusing to archive the root directory /")
        if p not in seen:
            seen.add(p)
            out.append(p)
    if recursive:
        ordered = sorted(out)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.startswith(a.rstrip(b"/") + b"/"):
                raise UserError(f"{display(b)} is inside {display(a)}: in recursive mode "
                                "pick one of them (the outer one archives both)")
    return out


def archive_folders(folders: list[bytes], remote: str, config: Config, *,
                    recursive: bool | None = None, storage_class: str | None = None,
                    backend: str | None = None, dry_run: bool = False) -> SubmitResult:
    """`froster-slurm archive`: a run with a known folder list -> archive array + finalize."""
    rec = config.get("archive.recursive") if recursive is None else recursive
    folders = clean_folders(folders, rec)
    if not folders:
        raise UserError("no folders to archive")
    be, checked = _checked(config, remote, folders, backend, storage_class)
    settings = archive_settings(config, checked.destination.remote, recursive=rec,
                                storage_class=checked.destination.storage_class)
    run = create_run(config, "archive", folders=folders, archive=settings, backend=be.name)
    result = SubmitResult(run, dry_run=dry_run, backend=be.name, notes=checked.notes)
    with runguard.sole_submitter(run), submitting(run, dry_run=dry_run):
        save_snapshot(config, run.config_path)
        dispatch_archive(run, config, be, result, dry_run=dry_run)
    return result


def _checked(config: Config, remote: str, sources: list[bytes], backend: str | None,
             storage_class: str | None) -> tuple[Backend, preflight.Checked]:
    """The backend, and every check made before anything is written or queued."""
    preflight.require([preflight.check_state_dir(config)])
    be = make_backend(config, backend)
    return be, preflight.before_archive(config, remote, sources, backend=be,
                                        storage_class=storage_class)


def submit_archive(selection_path: Path, remote: str, config: Config, *,
                   recursive: bool | None = None, storage_class: str | None = None,
                   backend: str | None = None, dry_run: bool = False) -> SubmitResult:
    """Archive the folders of a selection file (what `pick --submit` and `submit` call)."""
    return archive_folders(read_folder_list(selection_path), remote, config,
                           recursive=recursive, storage_class=storage_class,
                           backend=backend, dry_run=dry_run)


def array_spec(indices: list[int]) -> str:
    """[0,1,2,5,7,8] -> '0-2,5,7-8' (compact, so a long retry list stays a short directive):
    the same ranges a batch file lists (``run.batches.spec``)."""
    return batch_spec(indices)


def chunk_indices(indices: list[int], limit: int) -> list[tuple[int, list[int]]]:
    """Split folder indices into arrays whose task ids stay below MaxArraySize.

    Returns (offset, task ids) pairs: task id t of a chunk archives folder offset + t.
    Slurm accepts task ids 0 .. MaxArraySize-1, so ``limit`` is MaxArraySize itself and every
    offset is a multiple of it (a retry of folders 5 and 2007 with limit 1001 gives the chunks
    (0, [5]) and (2002, [5])).
    """
    if limit < 1:
        raise ValueError(f"MaxArraySize must be at least 1, not {limit}")
    chunks: dict[int, list[int]] = {}
    for idx in sorted(set(indices)):
        if idx < 0:
            raise ValueError(f"folder index {idx} is negative")
        offset = (idx // limit) * limit
        chunks.setdefault(offset, []).append(idx - offset)
    return sorted(chunks.items())


@dataclass(frozen=True)
class ArrayChunk:
    """One archive array of a submission: which folders it covers and its --array value."""

    offset: int  # task id t archives folder offset + t (FROSTER_ARRAY_OFFSET in the script)
    tasks: list[int]  # task ids, each below MaxArraySize
    array: str  # the --array directive, e.g. "0-2,5%4" (%throttle: tasks running at once)

    @property
    def folders(self) -> list[int]:
        """The run's folder indices this chunk archives."""
        return [self.offset + t for t in self.tasks]


def plan_archive_arrays(indices: list[int], max_array_size: int, throttle: int
                        ) -> list[ArrayChunk]:
    """The archive arrays for these folder indices: pure arithmetic, nothing submitted.

    ``throttle`` below 1 is taken as 1 (Slurm refuses ``%0``), so a bad config value never
    leaves an array that can run nothing.
    """
    throttle = max(1, int(throttle))
    return [ArrayChunk(offset, tasks, f"{array_spec(tasks)}%{throttle}")
            for offset, tasks in chunk_indices(indices, max_array_size)]


def dispatch_archive(run: Run, config: Config, be: Backend, result: SubmitResult, *,
                     dry_run: bool = False, indices: list[int] | None = None,
                     sizes: Mapping[int, tuple[int, int]] | None = None) -> None:
    """Render the archive array(s) and the finalize job of a run; queue the first array.

    ``indices`` restricts the arrays to some folders of the run (retry); by default all.
    The folders are packed into batches (``batching``: one array task each; ``sizes`` gives
    the (bytes, files) of the folders the caller knows), the batches numbered after the run's
    earlier ones in batches.txt.  The arrays are at most ``slurm.max_queued`` tasks each and
    queued one after another (``chain.advance``): the run never holds more than one array in
    the queue, and ``archive.throttle`` bounds its running tasks across all of them.
    """
    folders = run.folders()
    indices = list(range(len(folders))) if indices is None else indices
    grace = int(run.archive_table["requeue_grace"])
    cap = chain.queue_cap(config, be, dry_run=dry_run)
    result.notes.extend(cap.notes)
    scripts = run.scripts_dir
    stamp = len(list(scripts.glob("archive-*.sbatch")))
    planned = plan_batches(folders, indices, config,
                           recursive=bool(run.archive_table.get("recursive")), sizes=sizes)
    batches = planned.batches
    if planned.note:
        result.notes.append(planned.note)
    first = batch_count(run.run_dir) if dry_run else append_batches(run.run_dir, batches)
    numbers = list(range(first, first + len(batches)))
    chunks = plan_archive_arrays(numbers, cap.chunk, int(config.get("archive.throttle")))
    number = chain.next_chain_number(run)
    plan: dict[str, Any] = {"max_queued": cap.max_queued, "max_array_size": cap.max_array_size,
                            "throttle": int(config.get("archive.throttle")), "chunks": [],
                            "chain_job": None, "finalize_job": None}
    for k, chunk in enumerate(chunks):
        opts = sbatch_options("archive", config, run, job_name=f"froster-archive-{run.run_id}",
                              array=chunk.array,
                              extra={"requeue": True, "signal": f"B:USR1@{grace}"})
        script = render_stage("archive", config, run, options=opts,
                              script_name=f"archive-{stamp + k:03d}.sbatch",
                              array_offset=chunk.offset)
        result.scripts.append(script)
        plan["chunks"].append({"script": script.name, "offset": chunk.offset,
                               "count": len(chunk.tasks), "job": None,
                               "folders": sum(len(batches[b - first]) for b in chunk.folders)})
    if len(chunks) > 1:
        copts = sbatch_options("chain", config, run,
                               job_name=f"{chain.CHAIN_JOB_NAME}-{run.run_id}")
        cscript = render_stage("chain", config, run, options=copts,
                               script_name=f"chain-{number:03d}.sbatch", array_offset=number)
        plan["chain_script"] = cscript.name
        result.scripts.append(cscript)
    # singleton on a per-run name: a retry's finalize waits for the run's first one, but one
    # user's archive that runs for days never holds back another run's finalize (the catalog
    # has its own flock).
    opts = sbatch_options("finalize", config, run, job_name=f"{FINALIZE_JOB_NAME}-{run.run_id}")
    fscript = render_stage("finalize", config, run, options=opts,
                           script_name=f"finalize-{len(list(scripts.glob('finalize-*.sbatch'))):03d}"
                                       ".sbatch")
    plan["finalize_script"] = fscript.name
    result.scripts.append(fscript)
    if dry_run:
        return
    chain.write_chain(run, number, plan)
    queued = chain.advance(run, be, number)
    result.job_ids["archive"] = queued.get("archive", [])
    for stage in ("chain", "finalize"):
        if queued.get(stage):
            result.job_ids[stage] = queued[stage]
    if len(chunks) > 1 and be.name != "local":
        result.notes.append(f"{len(indices)} folders in {len(batches)} tasks, {len(chunks)} "
                            f"arrays of at most "
                            f"{cap.chunk} tasks, queued one after another (slurm.max_queued "
                            f"{cap.max_queued}); finalize is queued after the last one")


def plan_crawl(run: Run, shards: int) -> None:
    """Split the run's roots into ``shards`` balanced shares (at submit time, once)."""
    from ..crawl import plan_shards
    from ..crawl.builtin import CrawlOptions

    cfg = run_config(run)
    roots = read_folder_list(run.roots_path)
    out = crawl_dir(run)
    out.mkdir(parents=True, exist_ok=True)
    options = CrawlOptions(one_file_system=cfg.get("crawl.one_file_system"),
                           excludes=tuple(cfg.get("crawl.exclude")),
                           no_snapshots=cfg.get("crawl.no_snapshots"))
    plan_shards(roots, shards, out, options)


def crawl_job_name(roots: list[bytes]) -> str:
    """Stable per root set: `--dependency=singleton` then keeps one crawl of it at a time."""
    digest = hashlib.sha1(b"\0".join(sorted(roots))).hexdigest()[:12]
    return f"froster-crawl-{digest}"


def dispatch_crawl(run: Run, config: Config, be: Backend, result: SubmitResult,
                   roots: list[bytes], shards: int, *, dry_run: bool = False) -> str:
    """Render and submit the crawl (an array over shards); returns its job id ('' if dry)."""
    copts = sbatch_options("crawl", config, run, job_name=crawl_job_name(roots),
                           array=f"0-{shards - 1}" if shards > 1 else None)
    script = render_stage("crawl", config, run, options=copts)
    result.scripts.append(script)
    if dry_run:
        return ""
    job = be.submit(script, dependency=dependency(singleton=True))
    run.record_jobs("crawl", [job])
    result.job_ids["crawl"] = [job]
    return job


def _absolute_roots(roots: list[bytes], shards: int) -> list[bytes]:
    if not roots:
        raise UserError("give at least one PATH to crawl")
    if shards < 1:
        raise UserError("--shards must be at least 1")
    out = []
    for r in roots:
        p = os.path.normpath(os.path.abspath(r))
        if not os.path.isdir(p):
            raise UserError(f"not a directory: {display(p)}")
        out.append(p)
    return out


def submit_crawl(roots: list[bytes], out_dir: Path, config: Config, *, shards: int,
                 backend: str | None = None, dry_run: bool = False) -> SubmitResult:
    """`froster-slurm crawl PATH --shards N --submit`: the crawl alone, as an array job."""
    absroots = _absolute_roots(roots, shards)
    be = make_backend(config, backend)
    out_dir = Path(os.path.abspath(out_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    run = create_run(config, "crawl", backend=be.name,
                     extra={"crawl": {"shards": shards, "out_dir": str(out_dir)}})
    result = SubmitResult(run, dry_run=dry_run, backend=be.name)
    with submitting(run, dry_run=dry_run):
        save_snapshot(config, run.config_path)
        write_folder_list(run.roots_path, absroots)
        plan_crawl(run, shards)
        dispatch_crawl(run, config, be, result, absroots, shards, dry_run=dry_run)
    return result


def submit_pipeline(roots: list[bytes], remote: str, config: Config, *,
                    rules: dict[str, Any], shards: int = 1, recursive: bool | None = None,
                    storage_class: str | None = None, backend: str | None = None,
                    dry_run: bool = False) -> SubmitResult:
    """`froster-slurm submit PATH`: crawl -> rank (which submits archive + finalize)."""
    absroots = _absolute_roots(roots, shards)
    rec = config.get("archive.recursive") if recursive is None else recursive
    be, checked = _checked(config, remote, absroots, backend, storage_class)
    settings = archive_settings(config, checked.destination.remote, recursive=rec,
                                storage_class=checked.destination.storage_class)
    run = create_run(config, "pipeline", archive=settings, backend=be.name,
                     extra={"select": {k: v for k, v in rules.items() if v is not None},
                            "crawl": {"shards": shards}})
    result = SubmitResult(run, dry_run=dry_run, backend=be.name, notes=checked.notes)
    with runguard.sole_submitter(run), submitting(run, dry_run=dry_run):
        save_snapshot(config, run.config_path)
        write_folder_list(run.roots_path, absroots)
        plan_crawl(run, shards)
        crawl_id = dispatch_crawl(run, config, be, result, absroots, shards, dry_run=dry_run)
        ropts = sbatch_options("rank", config, run, job_name=f"froster-rank-{run.run_id}")
        rank_script = render_stage("rank", config, run, options=ropts)
        result.scripts.append(rank_script)
        if not dry_run:
            rank_id = be.submit(rank_script, dependency=dependency(afterok=[crawl_id]))
            run.record_jobs("rank", [rank_id])
            result.job_ids["rank"] = [rank_id]
    return result


def retry_run(run: Run, config: Config, *, dry_run: bool = False, remote: str | None = None,
              storage_class: str | None = None) -> SubmitResult:
    """Resubmit, inside the same run, only the folders whose task is not done.

    The tasks resume from their last finished step (their markers are in the run), so verified
    data is never uploaded again; their attempt counters start over.  With ``remote`` or
    ``storage_class`` (what a permanent failure usually needs changed) those folders go into
    a new run with the new settings instead: a run's run.toml is written once, never after.

    A run whose jobs can still run is refused before anything is written or queued
    (``runguard``): its chain holds the throttle and the queue cap, and its pending folders
    are its own; a second chain beside it would hold neither and queue them twice.
    """
    with runguard.sole_submitter(run):
        return _retry(run, config, dry_run=dry_run, remote=remote, storage_class=storage_class)


def _nothing_chosen(run: Run) -> NoReturn:
    """``retry`` of a run that has no folder list: a crawl run (it archives nothing), or a
    pipeline whose crawl or rank has not chosen its folders yet, or never did."""
    kind = run.settings.kind
    if kind == "crawl":
        raise UserError(f"run {run.run_id} is a crawl run: it archives nothing to retry (rank "
                        f"its output, or `froster-slurm submit` a pipeline)")
    runguard.refuse_while_running(run, backend_for_run(run, run_config(run)), 0,
                                  doing="its crawl and rank have not chosen the folders yet")
    raise UserError(f"run {run.run_id} chose no folders to archive: its crawl or rank ended "
                    f"first (`froster-slurm status {run.run_id}` says why); submit again")


def _retry(run: Run, config: Config, *, dry_run: bool, remote: str | None,
           storage_class: str | None) -> SubmitResult:
    from ..run.taskstate import TERMINAL, TaskStatus, iter_tasks, reset_attempts

    if not run.folders_path.exists():
        _nothing_chosen(run)
    n = len(run.folders())
    done: set[int] = set()
    ended: set[int] = set()
    for t in iter_tasks(run.run_dir):
        if t.state is TaskStatus.DONE:
            done.add(t.index)
        if t.state in TERMINAL:
            ended.add(t.index)
    todo = [i for i in range(n) if i not in done]
    if not todo:
        raise UserError(f"run {run.run_id}: every folder is archived; nothing to retry")
    cfg = run_config(run)
    preflight.require([preflight.check_state_dir(config)])
    be = backend_for_run(run, cfg)
    runguard.refuse_while_running(run, be, unfinished=n - len(ended))
    if remote or storage_class:
        a = run.archive_table
        folders = run.folders()
        return archive_folders([folders[i] for i in todo], remote or a["remote"], config,
                               recursive=bool(a.get("recursive")),
                               storage_class=storage_class or a.get("storage_class"),
                               dry_run=dry_run)
    a = run.archive_table
    folders = run.folders()
    preflight.before_archive(cfg, a["remote"], [folders[i] for i in todo], backend=be,
                             storage_class=a.get("storage_class"),
                             grace=int(a.get("requeue_grace", 0)))
    result = SubmitResult(run, dry_run=dry_run, backend=be.name)
    if not dry_run:
        for i in todo:
            reset_attempts(run.run_dir, i)
    dispatch_archive(run, cfg, be, result, dry_run=dry_run, indices=todo)
    return result
