"""`restore` on the manager side: find the archive, estimate, request the thaw, submit ONE job.

Steps, each safe to repeat:

1. find the archive: the folder's own record, else the catalog's destination and the record
   copy beside the data (STANDARD class, readable without a thaw);
2. quick conflict check of the target (existence and size only; the job hashes);
3. guard: a live job with this target's stable name means a restore is already under way:
   print its state and submit nothing.  An earlier restore of the same target that stopped
   (failed, or its job vanished) is resumed in its own run directory, keeping what it already
   downloaded;
4. for Glacier/Deep Archive on S3: show the time and cost estimate, then ask for the thaw with
   one ``rclone backend restore`` on the folder;
5. submit the guarded job: stable name, ``--dependency=singleton``, ``--requeue``, and for a
   thaw ``--begin=now+check_interval`` (nothing can be read before that anyway).
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import store as catalog
from ..config import Config, save_snapshot
from ..errors import DataError, FrosterError, NotFoundError, UserError
from ..folder import layout
from ..folder.schema import link_version
from ..run.rundir import (
    Run,
    RunKind,
    archive_settings,
    catalog_path,
    create_run,
    list_runs,
)
from ..scheduler.backends import Backend
from ..scheduler.slurm import dependency
from ..submit import preflight
from ..submit.pipeline import make_backend
from ..submit.stages import render_stage, sbatch_options
from ..util.clock import now_iso
from ..util.paths import discard_tree, display
from . import guard
from .estimate import Estimate, check_tier, estimate
from .job import TRACE_DIR
from .place import folder_owner, lstat_in, parent_problem
from .record import Archive, parse, read_local
from .remote import fetch_small, needs_restore_request, rclone_from_config, request_restore
from .restorestate import ACTIVE, read_state, write_state
from .safefs import DirCache, hash_at, open_root
from .trust import check_belongs, folder_stat

_NOT_IMPLEMENTED = re.compile(r"\b501\b|NotImplemented")


@dataclass
class Started:
    """What `restore` did, for the CLI to print and tests to check."""

    folder: bytes
    target: bytes
    run: Run | None = None
    job_id: str | None = None
    already_queued: list[Any] = field(default_factory=list)
    resumed: bool = False
    estimate: Estimate | None = None
    requested: int = 0
    backend: str = ""
    messages: list[str] = field(default_factory=list)
    scheduler: Backend | None = field(default=None, repr=False)  # what wait_for asks


def normalize(path: str | bytes) -> bytes:
    return os.path.normpath(os.path.abspath(os.fsencode(path)))


def find_archive(folder: bytes, config: Config, work: Path,
                 version: int | None = None) -> Archive:
    """The folder's archive: by default its latest version (the record in the folder, else
    the catalog's newest row); ``version`` picks an earlier one, whose record and manifest
    are read from beside its data (every version's stay there, STANDARD class)."""
    try:
        arch = read_local(folder)
    except NotFoundError:
        arch = None  # the folder itself is gone: the catalog may know it
    if arch is not None:
        if version is None or version == arch.version:
            check_belongs(arch, folder, folder_st=folder_stat(folder))
            return arch
        link = arch.linked(version)
        if link is None:
            known = [link_version(x) for x in arch.record.history()]
            raise NotFoundError(f"{display(folder)} has no archive version {version} (its "
                                f"record knows versions {', '.join(map(str, known))})")
        destination = str(link.get("destination") or "")
    else:
        entry = catalog.lookup(catalog_path(config), folder, version)
        if entry is None:
            known = catalog.versions_of(catalog_path(config), folder)
            if version is not None and known:
                raise NotFoundError(f"{display(folder)}: the catalog knows versions "
                                    f"{', '.join(map(str, known))}, not {version}")
            raise NotFoundError(f"{display(folder)} has no archive record and the catalog "
                                f"({catalog_path(config)}) does not know it; nothing to "
                                "restore")
        destination = entry.destination
    return _fetch_record(folder, destination, config, work, version)


def _fetch_record(folder: bytes, destination: str, config: Config, work: Path,
                  version: int | None) -> Archive:
    """Record + manifest from beside the data at ``destination``, checked to be ``folder``'s
    (and the asked-for version): a row or link that points elsewhere is refused."""
    work.mkdir(parents=True, exist_ok=True)
    rclone = rclone_from_config(config, work / "logs")
    into = work / TRACE_DIR
    discard_tree(into)
    into.mkdir(parents=True, exist_ok=True)
    names = [layout.RECORD_NAME.decode(), layout.MANIFEST_NAME.decode()]
    fetch_small(rclone, destination, names, into, work)
    arch = parse(folder, (into / names[0]).read_bytes(), (into / names[1]).read_bytes())
    check_belongs(arch, folder, catalog_destination=destination,
                  folder_st=folder_stat(folder))
    if version is not None and arch.version != version:
        raise DataError(f"the archive record at {display(os.fsencode(destination))} is "
                        f"version {arch.version}, not {version}; refusing to use it")
    return arch


def quick_conflicts(arch: Archive, target: bytes) -> list[str]:
    """Existing entries that certainly differ from the archive (by type or size), looked at
    without following any symlink (a folder of the archive that is a symlink in the target
    is a conflict, never a way through).

    Same-size files may be identical and are left to the job, which hashes them.
    """
    try:
        root_fd = open_root(target)
    except NotFoundError:
        return []
    except (OSError, FrosterError):
        return []  # the job reports what is wrong with the target itself
    out: list[str] = []
    try:
        with DirCache(root_fd) as dirs:
            for rel, f in sorted(arch.files.items()):
                problem = parent_problem(dirs, rel)
                st = None if problem else lstat_in(dirs, rel)
                if problem:
                    out.append(problem)
                elif st is not None and (not stat.S_ISREG(st.st_mode) or st.st_size != f.size):
                    out.append(f"{display(rel)} exists with other content")
            for rel, lk in sorted(arch.links.items()):
                problem = parent_problem(dirs, rel)
                st = None if problem else lstat_in(dirs, rel)
                if problem:
                    out.append(problem)
                elif st is not None and (not stat.S_ISLNK(st.st_mode) or os.fsencode(
                        os.readlink(rel.rpartition(b"/")[2],
                                    dir_fd=dirs.parent_of(rel)[0])) != lk.target):
                    out.append(f"{display(rel)} exists and is not the archived symlink")
    finally:
        os.close(root_fd)
    return sorted(set(out))


def already_present(arch: Archive, target: bytes) -> bool:
    """Every archived file is in place with its content, every symlink too: a thaw (billed)
    and a download would bring back nothing.

    Content means md5: a file damaged in place keeps its size and mtime, and ``--force``
    must repair it.  Sizes are compared first, so a folder that is not complete costs no
    reading; reading local files is far cheaper than a thaw.
    """
    for rel, f in arch.files.items():
        try:
            st = os.lstat(os.path.join(target, rel))
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != f.size:
            return False
    for rel, lk in arch.links.items():
        p = os.path.join(target, rel)
        if not os.path.islink(p) or os.fsencode(os.readlink(p)) != lk.target:
            return False
    try:
        root_fd = open_root(target)
    except FrosterError:
        return False
    try:
        with DirCache(root_fd) as dirs:
            for rel, f in sorted(arch.files.items()):
                try:
                    if hash_at(*dirs.parent_of(rel)).md5 != f.md5:
                        return False
                except (OSError, FrosterError):
                    return False
    finally:
        os.close(root_fd)
    return True


def _restore_runs(config: Config, target: bytes) -> list[tuple[Run, dict[str, Any]]]:
    """Earlier restores into ``target``, oldest first, with their state."""
    out = []
    for run in list_runs(config):
        try:
            if run.settings.kind != RunKind.RESTORE:
                continue
            state = read_state(run.run_dir)
        except (OSError, ValueError, FrosterError):
            continue
        if os.fsencode(state.get("target", "")) == target:
            out.append((run, state))
    return out


def _resumable(config: Config, target: bytes) -> tuple[Run, dict[str, Any]] | None:
    """The latest restore into ``target`` if it did not finish (to resume, not restart)."""
    runs = _restore_runs(config, target)
    if runs and (runs[-1][1].get("phase") in ACTIVE or runs[-1][1].get("phase") == "failed"):
        return runs[-1]
    return None


@contextmanager
def _target_lock(config: Config, target: bytes) -> Iterator[None]:
    """Two `restore` commands for one target at the same moment: the second waits, then sees
    the first one's job in the queue."""
    locks = config.path("state_dir") / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / (guard.job_name("restore", target) + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def start_restore(folder: str | bytes, config: Config, *, to: str | bytes | None = None,
                  tier: str | None = None, days: int | None = None, force: bool = False,
                  backend: str | None = None, version: int | None = None,
                  owners_from_record: bool = False) -> Started:
    """Steps 1-5 of the module docstring; returns what happened.  ``version``: which
    version of the folder's archive (default: the latest).

    ``owners_from_record`` (root only): give restored entries the record's uid/gid instead of
    the archived folder's owner; never set-id bits either way (``place``).
    """
    folder = normalize(folder)
    target = normalize(to) if to else folder
    if version is not None and version < 1:
        raise UserError("--version counts from 1")
    if owners_from_record and os.geteuid() != 0:
        raise UserError("--owners-from-record needs root (a user's restore never changes "
                        "owners)")
    with _target_lock(config, target):
        return _start(folder, target, config, tier, days, force, backend, version,
                      owners_from_record)


def _start(folder: bytes, target: bytes, config: Config, tier: str | None, days: int | None,
           force: bool, backend: str | None, version: int | None = None,
           owners_from_record: bool = False) -> Started:
    tier = check_tier(tier or config.get("restore.tier"))
    days = int(days or config.get("restore.days"))
    if days < 1:
        raise UserError("--days must be at least 1")
    out = Started(folder, target)
    be = make_backend(config, backend)
    out.backend, out.scheduler = be.name, be
    name = guard.job_name("restore", target)
    out.already_queued = be.named(name)
    if out.already_queued:
        job = out.already_queued[0]
        out.job_id = job.job_id
        out.messages.append(f"a restore into {display(target)} is already queued as job "
                            f"{job.job_id} ({job.state}, {job.reason}); nothing submitted")
        prior = _resumable(config, target)
        if prior:
            out.run = prior[0]
            out.messages.append(_state_line(prior[1]))
        return out
    prior = _resumable(config, target)
    work = config.path("state_dir") / "restore-lookups" / guard.job_name("lookup", folder)
    if prior and os.fsencode(prior[1].get("folder", "")) != folder:
        raise UserError(f"an unfinished restore of "
                        f"{display(os.fsencode(prior[1].get('folder', '')))} into "
                        f"{display(target)} is in run {prior[0].run_dir}; finish it (run that "
                        "restore again) or choose another --to")
    if prior:
        run, state = prior
        arch = parse(folder, (run.trace_dir / layout.RECORD_NAME.decode()).read_bytes(),
                     (run.trace_dir / layout.MANIFEST_NAME.decode()).read_bytes())
        if version is not None and arch.version != version:
            raise UserError(f"an unfinished restore of version {arch.version} of "
                            f"{display(folder)} into {display(target)} is in run "
                            f"{run.run_dir}; finish it first or choose another --to")
        out.resumed = True
    else:
        arch = find_archive(folder, config, work, version)
    preflight.before_restore(config, arch.destination)  # before any request or submission
    if not prior and already_present(arch, target):
        out.messages.append(f"{display(target)}: every archived file is already there (same "
                            "content, checked by md5) and every symlink too; nothing to restore. "
                            "To fetch a verified copy anyway, restore into a new folder "
                            "with --to")
        return out
    conflicts = quick_conflicts(arch, target)
    if conflicts and not force:
        shown = "; ".join(conflicts[:5])
        raise UserError(f"{len(conflicts)} entries in {display(target)} would be overwritten "
                        f"({shown}{' ...' if len(conflicts) > 5 else ''}); restore never "
                        "overwrites without --force (or choose another place with --to)")
    rclone = rclone_from_config(config, None)
    thaw = needs_restore_request(rclone, arch.destination, arch.storage_class,
                                 config.get("remotes.no_thaw"))
    sizes = arch.object_sizes()
    out.estimate = estimate(config, arch.storage_class, tier, days, sum(sizes.values()),
                            len(sizes), thaw)
    if prior:
        state.update(force=force, tier=tier, days=days, owners_from_record=owners_from_record,
                     failures=0, error=None)
        if state["phase"] == "failed":
            state["phase"] = state.get("failed_phase") or "waiting"
            if state["phase"] == "failed":
                state["phase"] = "waiting"
        write_state(run.run_dir, state)
    else:
        run = _new_run(config, folder, target, arch, be, thaw, tier, days, force,
                       owners_from_record)
        owner = read_state(run.run_dir).get("owner")
        if os.geteuid() == 0 and not owners_from_record:
            out.messages.append(
                f"restoring as root: restored entries will belong to uid {owner[0]}, gid "
                f"{owner[1]} (the folder's owner)" if owner else
                "restoring as root: the folder is gone, so its owner is unknown; restored "
                "entries stay owned by root (--owners-from-record gives them the record's "
                "owners)")
        discard_tree(work)
    out.run = run
    rclone.log_dir = run.rclone_logs_dir
    if thaw and read_state(run.run_dir)["phase"] in ("requested", "waiting", "downloading"):
        got = request_restore(rclone, arch.destination, sorted(sizes), tier, days,
                              run.work_dir)
        if got.failed:
            what, why = got.failed[0]
            hint = ""
            if _NOT_IMPLEMENTED.search(why):
                hint = ("; this remote does not implement thaw requests (Ceph RGW answers 501 "
                        "and reads every class at once): add its name to remotes.no_thaw "
                        "and restore again")
            raise UserError(f"the restore request failed for {len(got.failed)} object(s), "
                            f"e.g. {what}: {why}{hint}")
        out.requested = len(got.requested) + len(got.already)
        state = read_state(run.run_dir)
        state.update(requested_at=now_iso(), requested=out.requested)
        write_state(run.run_dir, state)
    out.job_id = _submit(run, config, be, name, delay=int(config.get("restore.check_interval"))
                         if thaw else 0)
    return out


def _new_run(config: Config, folder: bytes, target: bytes, arch: Archive, be: Backend,
             thaw: bool, tier: str, days: int, force: bool,
             owners_from_record: bool = False) -> Run:
    owner = folder_owner(folder, target)
    options = {"target": os.fsdecode(target), "tier": tier, "days": days, "force": force,
               "owner": list(owner) if owner else None,
               "owners_from_record": owners_from_record,
               "check_interval": int(config.get("restore.check_interval")),
               "max_wait": int(config.get("restore.max_wait")),
               "templates_dir": config.get("templates_dir"), "thaw": thaw}
    # run.toml is TOML (UTF-8 only): paths that may hold any byte live in folders.nul and
    # restore.json; [archive] carries the rclone settings, its remote is only a placeholder.
    run = create_run(config, "restore", folders=[folder],
                     archive=archive_settings(config, config.get("default_remote"),
                                              storage_class=arch.storage_class),
                     backend=be.name)
    save_snapshot(config, run.config_path)
    tdir = run.trace_dir
    tdir.mkdir()
    (tdir / layout.RECORD_NAME.decode()).write_bytes(arch.record.dump())
    (tdir / layout.MANIFEST_NAME.decode()).write_bytes(arch.manifest_raw)
    write_state(run.run_dir, {"phase": "requested", "folder": os.fsdecode(folder),
                              "destination": arch.destination, "created_at": now_iso(),
                              "checks": 0, "job_ids": [], **options})
    return run


def _submit(run: Run, config: Config, be: Backend, name: str, delay: int) -> str:
    grace = int(config.get("archive.requeue_grace"))
    opts = sbatch_options("restore", config, run, job_name=name,
                          extra={"requeue": True, "signal": f"B:USR1@{grace}"})
    n = len(run.jobs().get("restore", []))
    script = render_stage("restore", config, run, options=opts,
                          script_name=f"restore-{n:03d}.sbatch")
    job = be.submit(script, dependency=dependency(singleton=True), begin=delay,
                    requeue_file=lambda _task: run.task(0).requeue_after)  # the job is task 0
    run.record_jobs("restore", [job], begin_delay=delay)
    return job


def _state_line(state: dict[str, Any]) -> str:
    parts = [f"phase {state.get('phase')}", f"checks {state.get('checks', 0)}"]
    if state.get("last_check"):
        parts.append(f"last check {state['last_check']}")
    if state.get("error"):
        parts.append(f"last error: {state['error']}")
    return "restore state: " + ", ".join(parts)


LEAVE_SECONDS = 60.0  # how long ``wait_for`` waits for a finished restore's job to leave


def wait_for(run: Run, target: bytes, be: Backend, poll: float = 2.0,
             timeout: float | None = None) -> dict[str, Any]:
    """Follow restore.json until the restore is done or failed, its job left ``be``'s queue
    without finishing (the state then says where it stopped), or ``timeout`` passes.

    A finished restore is returned once its job has left the queue too (for at most
    ``LEAVE_SECONDS`` more): the job writes "done" a moment before it exits, and a command
    run right after ``--wait`` returned must not find the restore "already queued"."""
    start = time.monotonic()
    name = guard.job_name("restore", target)
    gone = 0
    while True:
        state = read_state(run.run_dir)
        if state.get("phase") in ("done", "failed"):
            leave = time.monotonic() + LEAVE_SECONDS
            while be.named(name) and time.monotonic() < leave and timeout != 0:
                time.sleep(min(poll, 0.5))
            return state
        if timeout is not None and time.monotonic() - start > timeout:
            return state
        gone = 0 if be.named(name) else gone + 1
        if gone >= 3:
            return read_state(run.run_dir)
        time.sleep(poll)
