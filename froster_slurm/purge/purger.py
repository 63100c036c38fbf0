"""Purge: free the disk of an archived folder, only when that is provably safe, in this run.

The proof, per folder, all of it before the first delete:

1. the trace is ours and consistent (record and manifest agree; ``record.parse``);
2. the folder holds exactly what was archived: no file or symlink appeared, none is missing,
   none changed type, no symlink points elsewhere (a stat-level scan, cheap, done first);
3. the remote holds every data object and the manifest copy with the md5 the record names
   (the remote's own hashes, nothing downloaded; ``archive.verify``);
4. every local file is re-read now and its md5 equals the manifest's.

Small files travel inside tar bundles; their proof is the bundle's md5 on the remote, which the
archive stage recorded while writing that tar from the same bytes it hashed for the manifest.

Any failure stops that folder with a report and deletes nothing there.  Then each file is
deleted through the quarantine (``quarantine``): a last lstat shows the name still holds the
very inode we hashed, unchanged (same inode, size, mtime, ctime); the entry is renamed into a
private directory, checked there again (the rename is atomic, so a file saved over the name
at that instant is caught), and only then unlinked; what fails is moved back and reported.

What stays: the trace (manifest, record, index.html, updated to say who removed the data,
when, and how to get it back), files the archive skipped (sockets, FIFOs, subfolders of a
non-recursive archive) and the directory skeleton.  Directories are kept on purpose: removing
them could race with a person creating files in them, they hold permissions and ACLs that a
site may rely on, and they cost no data blocks; restore recreates any that are missing.

A purge interrupted half-way (node crash) leaves ``purge.started_at`` in the record; running it
again accepts the files that are already gone and finishes the rest.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, FrosterError, UserError
from ..folder import layout
from ..restore import tracefiles
from ..restore.record import Archive, require_local
from ..restore.remote import check_objects
from ..restore.safefs import (
    DirCache,
    Hashed,
    UnsafePathError,
    allocated_bytes,
    hash_at,
    kind_of,
    open_root,
    same_file,
    walk,
)
from ..submit.preflight import Probe, archive_is_its_source
from ..util.atomic import write_atomic
from ..util.clock import now_iso
from ..util.identity import hostname, whoami
from ..util.paths import display
from ..util.units import format_size
from .quarantine import Changed, Quarantine, is_quarantine, same_inode

REPORT_LIMIT = 20


@dataclass
class PurgeResult:
    """The outcome for one folder (printed by the CLI, written to the run's purge.json)."""

    folder: str
    dry_run: bool
    purged: bool = False
    already_purged: bool = False
    files: int = 0
    links: int = 0
    bytes_logical: int = 0
    bytes_freed: int = 0
    blockers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    error_code: int = 0  # the FrosterError exit code behind ``error`` (66: never archived)

    @property
    def ok(self) -> bool:
        return not self.blockers and self.error is None

    def lines(self) -> list[str]:
        name = display(os.fsencode(self.folder))
        if self.error:
            return [f"{name}: NOT purged: {self.error}"]
        if self.blockers:
            out = [f"{name}: NOT purged, nothing deleted there:"]
            out += [f"  - {b}" for b in self.blockers[:REPORT_LIMIT]]
            if len(self.blockers) > REPORT_LIMIT:
                out.append(f"  ... and {len(self.blockers) - REPORT_LIMIT} more")
            return out
        if self.already_purged:
            return [f"{name}: already purged; nothing left to delete"]
        verb = "would free" if self.dry_run else "freed"
        head = (f"{name}: {'verified, ' if self.dry_run else ''}{verb} "
                f"{format_size(self.bytes_freed)} allocated ({self.bytes_freed:,} bytes; "
                f"{self.files} files of {format_size(self.bytes_logical)}, {self.links} "
                "symlinks)")
        return [head] + [f"  note: {n}" for n in self.notes[:REPORT_LIMIT]]


@dataclass
class Plan:
    """What the stat-level scan found: what to hash, what to delete, what is wrong."""

    files: dict[bytes, os.stat_result] = field(default_factory=dict)
    links: dict[bytes, os.stat_result] = field(default_factory=dict)
    blockers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[bytes] = field(default_factory=list)


def _is_our_temp(rel: bytes) -> bool:
    return b"/" not in rel and rel.startswith(layout.TMP_PREFIX) and rel.endswith(layout.TMP_SUFFIX)


def scan(arch: Archive, root_fd: int) -> Plan:
    """Compare the folder with the record by lstat/readlink only (no data read)."""
    plan = Plan()
    resuming = bool((arch.record.purge or {}).get("started_at"))
    seen: set[bytes] = set()
    for node in walk(root_fd, recursive=arch.recursive):
        rel, kind = node.rel, node.kind
        if b"/" not in rel and rel in arch.trace_names:
            continue
        if _is_our_temp(rel):
            if kind == "dir" and is_quarantine(rel):
                plan.blockers.append(f"an interrupted purge left {display(rel)}: what it holds "
                                     "failed the last check or was about to be deleted; move "
                                     "back what belongs to the folder, then remove it")
            elif kind == "dir":
                plan.blockers.append(f"a restore is in progress here ({display(rel)} exists)")
            continue
        seen.add(rel)
        if rel in arch.files:
            if kind != "file":
                plan.blockers.append(f"changed since archiving: {display(rel)} is now a "
                                     f"{kind}, was a file")
                continue
            f = arch.files[rel]
            if node.st.st_size != f.size:
                plan.blockers.append(f"changed since archiving: {display(rel)} (size "
                                     f"{node.st.st_size:,}, archived {f.size:,})")
                continue
            if node.st.st_mtime_ns != f.mtime_ns or stat.S_IMODE(node.st.st_mode) != \
                    stat.S_IMODE(f.mode):
                plan.notes.append(f"{display(rel)}: mtime or mode differ from the archived "
                                  "ones (content is checked by md5; restore brings back the "
                                  "archived ones)")
            plan.files[rel] = node.st
        elif rel in arch.links:
            if kind != "symlink":
                plan.blockers.append(f"changed since archiving: {display(rel)} is now a "
                                     f"{kind}, was a symlink")
                continue
            plan.links[rel] = node.st
        elif rel in arch.dirs:
            if kind != "dir":
                plan.blockers.append(f"changed since archiving: {display(rel)} is now a "
                                     f"{kind}, was a folder")
        elif kind in ("file", "symlink"):
            plan.blockers.append(f"appeared since archiving: {display(rel)} ({kind})")
        elif kind == "dir":
            if arch.recursive:
                plan.notes.append(f"{display(rel)}/: folder made since archiving (kept)")
        elif rel not in arch.skipped:
            plan.notes.append(f"{display(rel)}: a {kind} (not data; kept)")
    for rel in [*arch.files, *arch.links]:
        if rel not in seen:
            plan.missing.append(rel)
    if plan.missing and not resuming:
        for rel in plan.missing[:REPORT_LIMIT]:
            plan.blockers.append(f"missing since archiving: {display(rel)}")
        if len(plan.missing) > REPORT_LIMIT:
            plan.blockers.append(f"... {len(plan.missing) - REPORT_LIMIT} more missing")
    elif plan.missing:
        plan.notes.append(f"{len(plan.missing)} entries were already removed by an "
                          "interrupted purge")
    return plan


def check_links(arch: Archive, dirs: DirCache, plan: Plan) -> None:
    """Each symlink still points where it pointed when archived (read as a link, never
    followed)."""
    for rel in plan.links:
        dfd, name = dirs.parent_of(rel)
        target = os.readlink(name, dir_fd=dfd)
        target = os.fsencode(target)
        if target != arch.links[rel].target:
            plan.blockers.append(f"changed since archiving: symlink {display(rel)} now points "
                                 f"to {display(target)}, was {display(arch.links[rel].target)}")


def hash_all(arch: Archive, dirs: DirCache, plan: Plan, workers: int) -> dict[bytes, Hashed]:
    """Re-read every file now; a different md5 (or a file changing under us) is a blocker."""
    jobs = [(rel, *dirs.parent_of(rel)) for rel in sorted(plan.files)]
    hashed: dict[bytes, Hashed] = {}

    def one(job: tuple[bytes, int, bytes]) -> tuple[bytes, Hashed | str]:
        rel, dfd, name = job
        try:
            return rel, hash_at(dfd, name)
        except (DataError, OSError) as e:
            return rel, str(e)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for rel, got in pool.map(one, jobs):
            if isinstance(got, str):
                plan.blockers.append(f"cannot verify {display(rel)}: {got}")
            elif got.md5 != arch.files[rel].md5:
                plan.blockers.append(f"changed since archiving: {display(rel)} (md5 {got.md5}, "
                                     f"manifest {arch.files[rel].md5})")
            elif not same_file(got.st, plan.files[rel]):
                plan.blockers.append(f"changed during the check: {display(rel)}")
            else:
                hashed[rel] = got
    return hashed


def freed_bytes(stats: list[os.stat_result]) -> int:
    """Allocated bytes given back when these names are removed (an inode counts once, and
    only when every one of its links is among them)."""
    by_inode: dict[tuple[int, int], list[os.stat_result]] = {}
    for st in stats:
        by_inode.setdefault((st.st_dev, st.st_ino), []).append(st)
    return sum(allocated_bytes(group[0]) for group in by_inode.values()
               if len(group) >= group[0].st_nlink)


def _lock(root_fd: int, folder: bytes) -> None:
    try:
        fcntl.flock(root_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        raise UserError(f"{display(folder)}: another purge or restore is working on it") from e


def purge_folder(folder: bytes, *, rclone: Any, work: Path, dry_run: bool, workers: int = 2,
                 run_id: str = "", catalog_file: str = "", templates_dir: str | None = None,
                 skip_hash: bool = False) -> PurgeResult:
    """Verify one folder and, unless ``dry_run``, delete its archived data (see module doc).

    ``skip_hash`` (dry runs of folders too big to hash here) stops after the stat scan and the
    remote check, and says so.
    """
    folder = os.path.normpath(os.path.abspath(os.fsencode(folder)))
    result = PurgeResult(os.fsdecode(folder), dry_run)
    arch = require_local(folder, "purge")
    probe = Probe(str(getattr(rclone, "exe", "rclone")), str(getattr(rclone, "config", "")))
    itself = archive_is_its_source(probe, arch.destination, folder)
    if itself:
        result.blockers.append(f"the archive is not a second copy: {itself}")
        return result
    root_fd = open_root(folder)
    try:
        _lock(root_fd, folder)
        with DirCache(root_fd) as dirs:
            plan = scan(arch, root_fd)
            if not plan.blockers:
                check_links(arch, dirs, plan)
            result.notes = plan.notes
            if arch.state == "purged" and not plan.files and not plan.links:
                result.already_purged = True
                return result
            if plan.blockers:
                result.blockers = plan.blockers
                return result
            report = check_objects(rclone, arch.expected_objects(trace=True),
                                   arch.destination, work, f"purge-check-{_slug(folder)}",
                                   stored=arch.record.stored)
            if not report.ok:
                result.blockers.append(f"the remote does not hold the archive intact: "
                                       f"{report.summary()}")
                return result
            stats = [*plan.files.values(), *plan.links.values()]
            result.files, result.links = len(plan.files), len(plan.links)
            result.bytes_logical = sum(st.st_size for st in plan.files.values())
            result.bytes_freed = freed_bytes(stats)
            if skip_hash:
                result.notes.append("local files not re-hashed in this dry run (too big to "
                                    "hash here); the real purge hashes every one first")
                return result
            hashed = hash_all(arch, dirs, plan, workers)
            if plan.blockers:
                result.blockers = plan.blockers
                return result
            if dry_run:
                return result
            _delete(arch, root_fd, dirs, plan, hashed, result, run_id, catalog_file,
                    templates_dir)
    except UnsafePathError as e:
        result.error = f"unsafe path inside the folder: {e} (refusing to go through it)"
    except FrosterError as e:
        result.error, result.error_code = str(e), e.exit_code
    except OSError as e:  # unreadable folder, full disk for the trace...: stop, say so
        result.error = f"{e.strerror or e} ({display(os.fsencode(e.filename or b''))})"
        result.error_code = 74
    finally:
        os.close(root_fd)
    return result


def _slug(folder: bytes) -> str:
    import hashlib

    return hashlib.sha1(folder).hexdigest()[:10]


def _delete(arch: Archive, root_fd: int, dirs: DirCache, plan: Plan,
            hashed: dict[bytes, Hashed], result: PurgeResult, run_id: str,
            catalog_file: str, templates_dir: str | None) -> None:
    """Delete the verified files and symlinks; stop at the first surprise."""
    who, host = whoami(), hostname()
    purge = dict(arch.record.purge or {})
    purge.update(started_at=purge.get("started_at") or now_iso(), by=who, host=host,
                 run_id=run_id)
    arch.record.purge = purge
    tracefiles.write_trace(root_fd, arch, templates_dir)  # the record says a purge began
    removed: list[os.stat_result] = []
    unlinked: set[tuple[int, int]] = set()  # inodes whose ctime/nlink our own unlink changed
    files, links = _unlink_all(arch, dirs, plan, hashed, result, removed, unlinked, root_fd,
                               run_id or os.urandom(4).hex())
    result.files, result.links = files, links
    result.bytes_freed = freed_bytes(removed)
    purge.update(files_removed=int(purge.get("files_removed") or 0) + files,
                 links_removed=int(purge.get("links_removed") or 0) + links,
                 bytes_freed=int(purge.get("bytes_freed") or 0) + result.bytes_freed)
    if not result.blockers:
        purge.update(at=now_iso(), completed=True)
        arch.record.state = "purged"
        arch.record.restored = None
        result.purged = True
    arch.record.purge = purge
    tracefiles.write_trace(root_fd, arch, templates_dir)
    result.notes.append(tracefiles.update_catalog(catalog_file, arch))


def _unlink_all(arch: Archive, dirs: DirCache, plan: Plan, hashed: dict[bytes, Hashed],
                result: PurgeResult, removed: list[os.stat_result],
                unlinked: set[tuple[int, int]], root_fd: int, token: str) -> tuple[int, int]:
    """Remove files, then symlinks, each through the quarantine (``quarantine``: renamed
    away, checked to be the verified inode, then unlinked); stop at the first surprise."""
    files = links = 0
    q = Quarantine(root_fd, token)
    try:
        for rel in sorted(hashed):
            was = hashed[rel].st
            key = (was.st_dev, was.st_ino)

            def verify_file(st: os.stat_result, _qfd: int, _qname: bytes,
                            was: os.stat_result = was, rel: bytes = rel) -> str | None:
                if same_inode(st, was):
                    return None
                return f"changed after it was verified: {display(rel)} (not the file hashed)"

            dfd, name = dirs.parent_of(rel)
            try:
                now = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            unchanged = same_file(now, was) if key not in unlinked else same_inode(now, was)
            if not unchanged:
                result.blockers.append(f"changed after it was verified: {display(rel)}; stopped "
                                       f"here ({files} files already removed)")
                break
            if not _remove(q, dfd, name, rel, verify_file, result, files, removed):
                break
            unlinked.add(key)
            files += 1
        if not result.blockers:
            for rel in sorted(plan.links):
                want = arch.links[rel].target

                def verify_link(st: os.stat_result, qfd: int, qname: bytes,
                                want: bytes = want, rel: bytes = rel) -> str | None:
                    if not stat.S_ISLNK(st.st_mode) or \
                            os.fsencode(os.readlink(qname, dir_fd=qfd)) != want:
                        return f"changed after it was verified: {display(rel)}"
                    return None

                dfd, name = dirs.parent_of(rel)
                try:
                    now = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    target = os.fsencode(os.readlink(name, dir_fd=dfd))
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    target = b""
                if kind_of(now.st_mode) != "symlink" or target != want:
                    result.blockers.append(f"changed after it was verified: {display(rel)}")
                    break
                if not _remove(q, dfd, name, rel, verify_link, result, files, removed):
                    break
                links += 1
    finally:
        result.notes.extend(q.close())
    return files, links


def _remove(q: Quarantine, dfd: int, name: bytes, rel: bytes,
            verify: Callable[[os.stat_result, int, bytes], str | None], result: PurgeResult,
            files: int, removed: list[os.stat_result]) -> bool:
    """One entry through the quarantine; False (with a blocker) stops the purge there.

    A refusal (no write permission on a sub-folder...) also stops it: nothing is half-done,
    the entry is still at its name.
    """
    try:
        removed.append(q.remove(dfd, name, rel, verify))
    except FileNotFoundError:
        return True  # gone already (an interrupted purge, or its owner removed it)
    except Changed as e:
        result.blockers.append(f"{e}; stopped here ({files} files already removed)")
        return False
    except OSError as e:
        result.blockers.append(f"stopped: cannot delete {display(rel)}: {e.strerror}")
        return False
    return True


def write_results(path: Path, results: list[PurgeResult]) -> None:
    write_atomic(path, json.dumps([asdict(r) for r in results], indent=1, ensure_ascii=True))
