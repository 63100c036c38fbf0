"""The guarded restore job: check, download, verify, unpack, place, update the trace.

It runs many times for one restore: while objects thaw, each run finds them unreadable and asks
to be requeued ``restore.check_interval`` seconds later (``EXIT_TEMPFAIL``; the job script
requeues the same job id with a later start, the local backend reruns it).  Every phase leaves
its result in ``restore.json`` before the next starts, so a run killed anywhere resumes where it
stopped:

    requested/waiting -> downloaded -> verified -> placed -> done

* download: ``rclone copy --checksum`` of this archive's objects only (a rerun keeps what is
  already down); unreadable objects mean "not yet", anything else is a real error;
* verify + unpack: each object's md5 against the record, bundles unpacked (only the members
  the record lists), then every file hashed against the manifest;
* place: into the target without clobbering (``place``), then modes and mtimes;
* trace: the record and index.html say the data is back; the catalog too.

Staging is ``TARGET/.Froster-restore-<run id>.tmp`` (the archive stage recognises the
``.Froster-*.tmp`` names as its own and never archives them; purge refuses a folder that has
one, since a restore is in progress there).

This module is the work of one run; the job's lifecycle around it (signals, requeue delay,
failure counting, exit codes) is ``froster_slurm.jobs.restore_stage``.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

from ..archive.bundle import BUNDLE_DIR_REMOTE
from ..archive.settings import load_settings
from ..errors import (
    EXIT_OK,
    FrosterError,
    PermanentError,
    TransientError,
)
from ..folder import layout
from ..run.rundir import Run
from ..run.taskstate import task_paths
from ..scheduler import injob
from ..util.clock import now_iso
from ..util.identity import hostname, whoami
from ..util.paths import discard_tree, display
from . import tracefiles
from .place import Owners, owners_for, place_all
from .record import Archive, parse, read_local
from .remote import NotReady, check_objects, download, rclone_from_settings
from .restorestate import read_state, write_state
from .safefs import DirCache, open_root
from .unpack import check_object, extract_bundle, verify_staged

TRACE_DIR = "trace"


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} restore: {message}", file=sys.stderr,
          flush=True)


def status(run_dir: Path, text: str) -> None:
    """The restore job's live status line: its Comment, and ``tasks/0/comment`` (the task
    the job script's status lines go to as well)."""
    injob.set_status(text, task_paths(run_dir, 0).status_path)


def stage_name(run_id: str) -> bytes:
    return layout.TMP_PREFIX + b"restore-" + run_id.encode() + layout.TMP_SUFFIX


def load_archive(run_dir: Path, folder: bytes) -> Archive:
    """The archive as it was when the restore was asked for (copied into the run)."""
    tdir = Run(run_dir).trace_dir
    return parse(folder, (tdir / layout.RECORD_NAME.decode()).read_bytes(),
                 (tdir / layout.MANIFEST_NAME.decode()).read_bytes())


class RestoreJob:
    """One run of the guarded job; ``state`` is restore.json, saved after every phase."""

    def __init__(self, run_dir: Path):
        self.run = Run(run_dir)
        self.run_dir = run_dir
        self.settings = load_settings(run_dir)
        self.state = read_state(run_dir)
        self.opts: dict[str, Any] = self.state  # target, force, tier, ... live in restore.json
        self.folder = self.run.folders()[0]
        self.target = os.fsencode(self.opts["target"])
        self.arch = load_archive(run_dir, self.folder)
        self.rclone = rclone_from_settings(self.settings, self.run.rclone_logs_dir)
        self.work = self.run.work_dir
        self.work.mkdir(exist_ok=True)

    def save(self, **changes: Any) -> None:
        self.state.update(changes)
        write_state(self.run_dir, self.state)

    def run_once(self) -> int:
        """One pass through the phases that are not done yet; returns the exit code."""
        job = injob.job_id()
        if job and job not in self.state.setdefault("job_ids", []):
            self.state["job_ids"].append(job)
        phase = self.state["phase"]
        if phase == "done":
            log("already done")
            return EXIT_OK
        root_fd = open_root(self.target, create=True)
        try:
            try:
                fcntl.flock(root_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise TransientError(f"{display(self.target)} is locked by another purge or "
                                     "restore") from e
            try:
                os.mkdir(stage_name(self.run.run_id), 0o700, dir_fd=root_fd)
            except FileExistsError:
                pass
            stage_fd = os.open(stage_name(self.run.run_id), os.O_RDONLY | os.O_DIRECTORY |
                               os.O_NOFOLLOW, dir_fd=root_fd)
            try:
                _require_private(stage_fd, self.target)
                return self._phases(root_fd, stage_fd)
            finally:
                os.close(stage_fd)
        finally:
            os.close(root_fd)

    def owners(self) -> Owners:
        owner = self.opts.get("owner")
        return owners_for(tuple(owner) if owner else None,
                          from_record=bool(self.opts.get("owners_from_record")))

    def _stage_path(self) -> Path:
        return Path(os.fsdecode(os.path.join(self.target, stage_name(self.run.run_id))))

    def _phases(self, root_fd: int, stage_fd: int) -> int:
        stage = self._stage_path()
        if self.state["phase"] in ("requested", "waiting", "downloading"):
            self._download(stage)
        if self.state["phase"] == "downloaded":
            with DirCache(stage_fd) as staged:
                self._unpack(stage, staged)
        if self.state["phase"] == "verified":
            with DirCache(stage_fd) as staged, DirCache(root_fd) as target:
                self._place(staged, target)
        if self.state["phase"] == "placed":
            self._finish(root_fd)
        return EXIT_OK

    def _download(self, stage: Path) -> None:
        extracted = set(self.state.get("extracted", []))
        objects = [o for o in self.arch.data_objects() if o not in extracted]
        checks = int(self.state.get("checks") or 0) + 1
        if not self.state.get("proven_at"):
            self._prove(objects)
        self.save(phase="downloading", checks=checks, last_check=now_iso())
        status(self.run_dir, f"restore: check {checks}, downloading {len(objects)} objects")
        log(f"check {checks}: downloading {len(objects)} objects from "
            f"{display(os.fsencode(self.arch.destination))}")
        try:
            download(self.rclone, self.arch.destination, objects, stage, self.work)
        except NotReady as e:
            self.save(phase="waiting", error=None, frozen=e.frozen[:50],
                      frozen_count=len(e.frozen))
            raise NotReady(str(e), e.frozen) from None
        self.save(phase="downloaded", downloaded_at=now_iso(), error=None,
                  ready_at=self.state.get("ready_at") or now_iso())

    def _prove(self, objects: list[str]) -> None:
        """Before anything is fetched: the remote holds each object with the size and md5
        the record names (the archive's own proof, from the remote's listing).  An object that
        is missing or is not what was archived will not get better by waiting: permanent."""
        expected = self.arch.expected_objects()
        report = check_objects(self.rclone, {o: expected[o] for o in objects},
                               self.arch.destination, self.work, "restore-proof",
                               stored=self.arch.record.stored)
        if not report.ok:
            raise PermanentError(f"the remote does not hold this archive as it was archived: "
                                 f"{report.summary()}; nothing was restored")
        self.save(proven_at=now_iso())
        log(f"the remote holds all {len(objects)} objects with the archived sizes and md5s")

    def _unpack(self, stage: Path, staged: DirCache) -> None:
        status(self.run_dir, "restore: verifying and unpacking")
        # Files that were their own objects are hashed once, with everything else, by
        # verify_staged below; a bundle is checked as a whole before it is unpacked.
        extracted = list(self.state.get("extracted", []))
        for b in self.arch.bundles:
            if b.name in extracted:
                continue
            tar = stage / b.name
            if not tar.exists():
                self.save(phase="waiting")  # lost before it was unpacked: fetch it again
                raise TransientError(f"{b.name} vanished from staging; downloading it again")
            check_object(tar, b.md5, b.name)
            n = extract_bundle(tar, b, staged, self.arch)
            extracted.append(b.name)
            self.save(extracted=extracted)
            tar.unlink()
            log(f"unpacked {b.name}: {n} members")
        discard_tree(stage / BUNDLE_DIR_REMOTE)
        n = verify_staged(self.arch, staged, self.settings.workers())
        log(f"verified {n} files against the manifest")
        self.save(phase="verified", verified_at=now_iso())

    def _place(self, staged: DirCache, target: DirCache) -> None:
        status(self.run_dir, "restore: placing files")
        placed = place_all(self.arch, staged, target, force=bool(self.opts.get("force")),
                           owners=self.owners())
        if placed.conflicts and not self.opts.get("force"):
            shown = "; ".join(placed.conflicts[:5])
            more = f" (and {len(placed.conflicts) - 5} more)" if len(placed.conflicts) > 5 else ""
            raise PermanentError(f"{len(placed.conflicts)} existing entries in "
                                 f"{display(self.target)} would be overwritten: {shown}{more}."
                                 " Nothing was placed; run the restore again with --force to "
                                 "replace them")
        log(f"placed {placed.files} files, {placed.links} symlinks; {placed.already} already "
            f"there; {placed.replaced} replaced")
        if placed.setid_dropped:
            log(f"{placed.setid_dropped} set-uid/set-gid bits in the record were not restored "
                "(restore never creates set-id files)")
        if placed.dirs_kept:
            log(f"{placed.dirs_kept} folders already there belong to someone else: their mode "
                "and mtime were left alone")
        if placed.sparse or placed.dense:
            log(f"{placed.sparse} sparse files have their holes again"
                + (f"; {placed.dense} stay dense (this file system cannot punch holes)"
                   if placed.dense else ""))
        self.save(phase="placed", placed_at=now_iso(),
                  placed={"files": placed.files, "links": placed.links, "dirs": placed.dirs,
                          "already": placed.already, "replaced": placed.replaced,
                          "setid_dropped": placed.setid_dropped,
                          "dirs_kept": placed.dirs_kept, "sparse": placed.sparse,
                          "dense": placed.dense})

    def _finish(self, root_fd: int) -> None:
        note = self._update_trace(root_fd)
        discard_tree(self._stage_path())
        self.save(phase="done", finished_at=now_iso(), error=None, trace=note)
        status(self.run_dir, "restore: done")
        log(f"done: {display(self.target)} ({note})")

    def _update_trace(self, root_fd: int) -> str:
        """In place: the folder's record says 'restored'.  Elsewhere: the original folder's
        record (when it is still there) lists where a copy went; the copy gets no record, so
        catalog rebuilds never see two folders claiming one archive."""
        tdir = self.opts.get("templates_dir") or None
        info = {"at": now_iso(), "by": whoami(), "host": hostname(),
                "run_id": self.run.run_id, "from": self.arch.destination}
        if self.target == self.folder:
            try:
                current = read_local(self.folder) or self.arch
            except FrosterError:  # a damaged trace in the folder: the run's copy is the truth
                current = self.arch
            if current.version != self.arch.version:
                # An earlier version was put back in place: the folder's record (the latest
                # version) notes it; that version's own record stays as it is.
                current.record.copies = [*(current.record.copies or []),
                                         {**info, "to": self.opts["target"],
                                          "version": self.arch.version}]
                tracefiles.write_trace(root_fd, current, tdir)
                return f"version {self.arch.version} restored in place; noted in the record"
            current.record.state = "restored"
            current.record.restored = info
            if current.record.purge is not None:  # history; a later purge starts afresh
                current.record.last_purge, current.record.purge = current.record.purge, None
            tracefiles.write_trace(root_fd, current, tdir)
            return tracefiles.update_catalog(self.run.settings.catalog, current)
        try:
            current = read_local(self.folder)
        except FrosterError:
            current = None
        if current is None:
            return "copy restored; the original folder has no record to update"
        current.record.copies = [*(current.record.copies or []),
                                 {**info, "to": self.opts["target"],
                                  "version": self.arch.version}]
        try:
            fd = open_root(self.folder)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                tracefiles.write_trace(fd, current, tdir)
            finally:
                os.close(fd)
        except (OSError, FrosterError) as e:  # the copy is complete; the note is a courtesy
            return f"copy restored; the original folder's record not updated ({e})"
        return "copy restored; noted in the original folder's record"


def _require_private(stage_fd: int, target: bytes) -> None:
    """Staging is where owners and modes are set before entries are placed (``place``): it
    must be ours and closed to everyone else, or someone could swap what it holds."""
    st = os.fstat(stage_fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise PermanentError(f"the staging folder in {display(target)} is not private to this "
                             f"restore (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
                             "; refusing to use it")


# errno values worth a later retry; any other OSError (a name too long, permission denied, a
# read-only file system, ...) fails the restore at once with its message.
