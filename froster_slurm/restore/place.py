"""Move verified, staged files into the target tree, never clobbering what is there.

Rules:

* an existing file with the archived content (same md5) is left as it is and counts as
  restored (so a restore that was interrupted, or run twice, just finishes);
* any other existing entry at a name the archive needs is a conflict.  Without ``force``,
  conflicts are found for the whole tree first and nothing is placed; with ``force`` a
  conflicting file or symlink is replaced atomically (``rename``).  A directory where a file
  belongs, or a symlink where a directory belongs, is never removed, not even with force;
* a file is placed with ``link(2)`` from the staging directory, which fails rather than
  overwrite (no window where a file created meanwhile could be replaced), then the staged name
  is dropped.  Staging lives inside the target, on the same file system, so this is a rename
  in effect and needs no extra space;
* modes and mtimes come from the record, directories last and deepest first (placing files
  into a directory changes its mtime); as root, owners too.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field

from ..errors import DataError, UserError
from ..paths import display
from .record import Archive
from .safefs import DirCache, UnsafePathError, hash_at


class ConflictError(UserError):
    """Existing entries in the target would be overwritten; rerun with --force to replace."""


@dataclass
class Placed:
    files: int = 0
    links: int = 0
    dirs: int = 0
    already: int = 0
    replaced: int = 0
    conflicts: list[str] = field(default_factory=list)


def _lstat(dirs: DirCache, rel: bytes) -> os.stat_result | None:
    """lstat of target/rel without following links; None when absent (or its parent is)."""
    try:
        dfd, name = dirs.parent_of(rel)
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _parent_problem(dirs: DirCache, rel: bytes) -> str | None:
    """A parent component that is a symlink or a file: the target cannot be reached safely."""
    head = rel.rpartition(b"/")[0]
    if not head:
        return None
    try:
        dirs.get(head)
    except FileNotFoundError:
        return None
    except (UnsafePathError, NotADirectoryError):
        return f"{display(head)} is a symlink or a file where a folder belongs"
    return None


def find_conflicts(arch: Archive, target: DirCache) -> tuple[list[str], set[bytes]]:
    """(conflicts, names already holding the archived content)."""
    conflicts: list[str] = []
    same: set[bytes] = set()
    for rel in sorted(arch.dirs):
        problem = _parent_problem(target, rel)
        st = None if problem else _lstat(target, rel)
        if problem:
            conflicts.append(problem)
        elif st is not None and not stat.S_ISDIR(st.st_mode):
            conflicts.append(f"{display(rel)} exists and is not a folder")
    for rel, f in sorted(arch.files.items()):
        problem = _parent_problem(target, rel)
        if problem:
            conflicts.append(problem)
            continue
        st = _lstat(target, rel)
        if st is None:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == f.size:
            dfd, name = target.parent_of(rel)
            if hash_at(dfd, name).md5 == f.md5:
                same.add(rel)
                continue
        conflicts.append(f"{display(rel)} exists with other content")
    for rel, lk in sorted(arch.links.items()):
        problem = _parent_problem(target, rel)
        if problem:
            conflicts.append(problem)
            continue
        st = _lstat(target, rel)
        if st is None:
            continue
        if stat.S_ISLNK(st.st_mode):
            dfd, name = target.parent_of(rel)
            if os.fsencode(os.readlink(name, dir_fd=dfd)) == lk.target:
                same.add(rel)
                continue
        conflicts.append(f"{display(rel)} exists and is not the archived symlink")
    return sorted(set(conflicts)), same


def _hard_conflict(st: os.stat_result | None) -> bool:
    """Entries force never removes: directories."""
    return st is not None and stat.S_ISDIR(st.st_mode)


def place_all(arch: Archive, stage: DirCache, target: DirCache, *, force: bool) -> Placed:
    """Place every staged entry into the target (see the module docstring)."""
    conflicts, same = find_conflicts(arch, target)
    out = Placed(conflicts=conflicts)
    if conflicts and not force:
        return out
    for rel in sorted(arch.dirs):
        target.get(rel, create=True)
        out.dirs += 1
    firsts = {rel: f for rel, f in arch.files.items() if not f.hardlink_to}
    for rel in sorted(firsts):
        if rel in same:
            out.already += 1
            continue
        _place_file(rel, stage, target, force, out)
    for rel, f in sorted(arch.files.items()):
        if not f.hardlink_to or rel in same:
            if f.hardlink_to:
                out.already += 1
            continue
        _place_hardlink(rel, f.hardlink_to, stage, target, force, out)
    for rel, lk in sorted(arch.links.items()):
        if rel in same:
            out.already += 1
            continue
        dfd, name = target.parent_of(rel, create=True)
        st = _lstat(target, rel)
        if st is not None:
            if _hard_conflict(st):
                raise DataError(f"{display(rel)} is a folder; not replacing it with a symlink")
            os.unlink(name, dir_fd=dfd)
            out.replaced += 1
        os.symlink(lk.target, name, dir_fd=dfd)
        out.links += 1
    return out


def _place_file(rel: bytes, stage: DirCache, target: DirCache, force: bool,
                out: Placed) -> None:
    sfd, sname = stage.parent_of(rel)
    dfd, name = target.parent_of(rel, create=True)
    try:
        os.link(sname, name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
    except FileExistsError:
        st = _lstat(target, rel)
        if not force or _hard_conflict(st):
            raise DataError(f"{display(rel)} appeared in the target while restoring; "
                            "not overwriting it") from None
        os.replace(sname, name, src_dir_fd=sfd, dst_dir_fd=dfd)
        out.replaced += 1
        out.files += 1
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        _copy_exclusive(sfd, sname, dfd, name)
    os.unlink(sname, dir_fd=sfd)
    out.files += 1


def _copy_exclusive(sfd: int, sname: bytes, dfd: int, name: bytes) -> None:
    """Fallback where hard links are not allowed: copy into a new file that must not exist."""
    src = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
    try:
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=dfd)
        with os.fdopen(src, "rb", closefd=False) as fi, os.fdopen(dst, "wb") as fo:
            shutil.copyfileobj(fi, fo, 4 * 1024 * 1024)
    finally:
        os.close(src)


def _place_hardlink(rel: bytes, first: bytes, stage: DirCache, target: DirCache, force: bool,
                    out: Placed) -> None:
    """A later name of a hard-linked inode: link it to the first name, as it was."""
    ffd, fname = target.parent_of(first)
    dfd, name = target.parent_of(rel, create=True)
    st = _lstat(target, rel)
    if st is not None:
        if not force or _hard_conflict(st):
            raise DataError(f"{display(rel)} appeared in the target while restoring")
        os.unlink(name, dir_fd=dfd)
        out.replaced += 1
    os.link(fname, name, src_dir_fd=ffd, dst_dir_fd=dfd, follow_symlinks=False)
    try:  # drop the staged copy (bundled hard links share the first name's inode anyway)
        sfd, sname = stage.parent_of(rel)
        os.unlink(sname, dir_fd=sfd)
    except FileNotFoundError:
        pass
    out.files += 1


def apply_metadata(arch: Archive, target: DirCache) -> None:
    """Modes, mtimes (and owners when root) from the record; directories last, deepest first."""
    as_root = os.geteuid() == 0
    entries = {e["path"]: e for e in arch.record.get("entries", [])}
    for rel, f in sorted(arch.files.items()):
        dfd, name = target.parent_of(rel)
        _owner(dfd, name, entries.get(os.fsdecode(rel)), as_root)
        os.chmod(name, stat.S_IMODE(f.mode), dir_fd=dfd)
        os.utime(name, ns=(f.mtime_ns, f.mtime_ns), dir_fd=dfd)
    for rel, lk in sorted(arch.links.items()):
        dfd, name = target.parent_of(rel)
        _owner(dfd, name, entries.get(os.fsdecode(rel)), as_root)
        os.utime(name, ns=(lk.mtime_ns, lk.mtime_ns), dir_fd=dfd, follow_symlinks=False)
    for rel in sorted(arch.dirs, key=lambda r: (-r.count(b"/"), r)):
        d = arch.dirs[rel]
        dfd, name = target.parent_of(rel)
        _owner(dfd, name, entries.get(os.fsdecode(rel)), as_root)
        os.chmod(name, stat.S_IMODE(d.mode), dir_fd=dfd)
        os.utime(name, ns=(d.mtime_ns, d.mtime_ns), dir_fd=dfd)


def _owner(dfd: int, name: bytes, entry: dict | None, as_root: bool) -> None:
    if as_root and entry is not None and "uid" in entry:
        os.chown(name, int(entry["uid"]), int(entry["gid"]), dir_fd=dfd, follow_symlinks=False)
