"""`purge` on the manager side: pre-check, confirm, then purge here or in a Slurm job.

Why two places: re-hashing a few GiB takes seconds and the person wants the answer now;
re-hashing tens of TiB belongs on a compute node.  Folders up to ``purge.inline_max`` bytes are
purged by the command itself; larger ones by one Slurm job (``templates/purge.sbatch``) that
runs exactly the same code.  Either way the full proof (``purger.purge_folder``) runs in that
same run, right before anything is deleted; the cheap stat-level pre-check here only spares
people a job that would refuse anyway.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Config, save_snapshot
from ..errors import FrosterError, UserError
from ..restore.record import Archive, require_local
from ..restore.remote import rclone_from_config
from ..restore.safefs import open_root
from ..run.rundir import Run, archive_settings, create_run
from ..scheduler.backends import Backend
from ..scheduler.slurm import dependency
from ..submit.pipeline import make_backend
from ..submit.stages import render_stage, sbatch_options
from ..util.paths import display
from ..util.units import format_size, parse_size
from .purger import PurgeResult, freed_bytes, purge_folder, scan, write_results


@dataclass
class Candidate:
    folder: bytes
    arch: Archive | None
    precheck: PurgeResult


@dataclass
class PurgeOutcome:
    results: list[PurgeResult] = field(default_factory=list)
    run: Run | None = None
    job_id: str | None = None
    queued: list[str] = field(default_factory=list)


def precheck(folder: bytes) -> Candidate:
    """Stat-level check of one folder: blockers and what deleting would free."""
    res = PurgeResult(os.fsdecode(folder), dry_run=True)
    try:
        arch = require_local(folder, "purge")
        fd = open_root(folder)
        try:
            plan = scan(arch, fd)
        finally:
            os.close(fd)
    except FrosterError as e:
        res.error, res.error_code = str(e), e.exit_code
        return Candidate(folder, None, res)
    res.blockers, res.notes = plan.blockers, plan.notes
    res.files, res.links = len(plan.files), len(plan.links)
    res.bytes_logical = sum(st.st_size for st in plan.files.values())
    res.bytes_freed = freed_bytes([*plan.files.values(), *plan.links.values()])
    res.already_purged = arch.state == "purged" and not plan.files and not plan.links
    return Candidate(folder, arch, res)


def purge_folders(folders: list[bytes], config: Config, *, dry_run: bool,
                  confirm: Callable[[list[Candidate]], bool],
                  backend: str | None = None) -> PurgeOutcome:
    """Pre-check every folder, confirm, purge the small ones here, submit the big ones."""
    if not folders:
        raise UserError("give at least one FOLDER to purge")
    folders = list(dict.fromkeys(os.path.normpath(os.path.abspath(os.fsencode(f)))
                                 for f in folders))
    inline_max = parse_size(config.get("purge.inline_max"))
    workers = min(4, max(1, os.cpu_count() or 1))  # a login node is shared
    cands = [precheck(f) for f in folders]
    out = PurgeOutcome()
    ready = [c for c in cands if c.precheck.ok and not c.precheck.already_purged]
    out.results = [c.precheck for c in cands if c not in ready]
    if not ready:
        return out
    if not dry_run and not confirm(ready):
        raise UserError("purge cancelled; nothing was deleted")
    be = make_backend(config, backend)
    run = create_run(config, "purge", folders=[c.folder for c in ready],
                     archive=archive_settings(config, config.get("default_remote")),
                     backend=be.name, extra={"purge": {"dry_run": dry_run}})
    save_snapshot(config, run.config_path)
    out.run = run
    rclone = rclone_from_config(config, run.rclone_logs_dir)
    catalog_file = run.settings.catalog
    big: list[bytes] = []
    done: list[PurgeResult] = []
    for c in ready:
        assert c.arch is not None
        large = c.arch.total_bytes > inline_max
        if large and not dry_run and be.name == "slurm":
            big.append(c.folder)
            continue
        done.append(purge_folder(c.folder, rclone=rclone, work=run.work_dir,
                                 dry_run=dry_run, workers=workers, run_id=run.run_id,
                                 catalog_file=catalog_file,
                                 templates_dir=config.get("templates_dir") or None,
                                 skip_hash=dry_run and large))
    write_results(run.purge_results_path, done)
    out.results += done
    if big:
        out.queued = [os.fsdecode(f) for f in big]
        out.job_id = _submit(run, config, be, big)
    return out


def _submit(run: Run, config: Config, be: Backend, folders: list[bytes]) -> str:
    name = "froster-purge-" + hashlib.sha1(b"\0".join(sorted(folders))).hexdigest()[:12]
    opts = sbatch_options("purge", config, run, job_name=name)
    script = render_stage("purge", config, run, options=opts)
    job = be.submit(script, dependency=dependency(singleton=True))
    run.record_jobs("purge", [job], folders=len(folders))
    return job


def describe(c: Candidate) -> str:
    r = c.precheck
    return (f"{display(c.folder)}: {r.files} files ({format_size(r.bytes_logical)}), "
            f"{r.links} symlinks; frees about {format_size(r.bytes_freed)}; archive "
            f"{display(os.fsencode(c.arch.destination)) if c.arch else '?'}")
