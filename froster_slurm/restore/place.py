"""Move verified, staged files into the target tree, never clobbering what is there.

Rules:

* an existing file with the archived content (same md5) is left exactly as it is (content,
  mode, times, owner) and counts as restored, so a restore that was interrupted, or run twice,
  just finishes, and a restore never changes a file it did not create;
* any other existing entry at a name the archive needs is a conflict.  Without ``force``,
  conflicts are found for the whole tree first and nothing is placed; with ``force`` a
  conflicting file or symlink is replaced atomically (``rename``).  A directory where a file
  belongs, or a symlink where a directory belongs, is never removed, not even with force;
* owner, mode and mtime of a file or symlink are set while it is still in the staging
  directory (private: mode 0700, ours, checked by the job), through a descriptor opened with
  ``O_NOFOLLOW``; then it is placed with ``link(2)``, which fails rather than overwrite and
  never follows a link, so no name in the target is ever used to change metadata.  Staging
  lives inside the target, on the same file system, so this needs no extra space;
* directories are made by ``DirCache`` (0700, given their owner at once through their
  descriptor); their modes and mtimes are set last, deepest first, through the same
  descriptors.  A directory that was already there is changed only when it belongs to the
  owner restored files get (what that owner could do anyway);
* set-uid and set-gid bits are never restored (the record is writable by the folder's owner:
  as root, a restored set-id file would hand that person another identity);
* owners (root only, see ``Owners``): by default every restored entry belongs to the owner of
  the archived folder on the file system; only ``--owners-from-record`` takes the record's
  per-entry uid/gid.  A user's restore never changes owners.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field

from ..errors import DataError
from ..folder import layout
from ..folder.schema import RecordEntry
from ..util.paths import display
from . import holes
from .record import Archive
from .safefs import DirCache, UnsafePathError, hash_at


@dataclass
class Placed:
    files: int = 0
    links: int = 0
    dirs: int = 0
    already: int = 0
    replaced: int = 0
    conflicts: list[str] = field(default_factory=list)
    setid_dropped: int = 0  # set-uid/set-gid bits the record asked for and did not get
    dirs_kept: int = 0  # directories already there, another's: mode and mtime left alone
    sparse: int = 0  # files archived with holes that have their holes again
    dense: int = 0  # files archived with holes the file system could not make sparse


def lstat_in(dirs: DirCache, rel: bytes) -> os.stat_result | None:
    """lstat of target/rel without following links; None when absent (or its parent is)."""
    try:
        dfd, name = dirs.parent_of(rel)
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def parent_problem(dirs: DirCache, rel: bytes) -> str | None:
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
        problem = parent_problem(target, rel)
        st = None if problem else lstat_in(target, rel)
        if problem:
            conflicts.append(problem)
        elif st is not None and not stat.S_ISDIR(st.st_mode):
            conflicts.append(f"{display(rel)} exists and is not a folder")
    for rel, f in sorted(arch.files.items()):
        problem = parent_problem(target, rel)
        if problem:
            conflicts.append(problem)
            continue
        st = lstat_in(target, rel)
        if st is None:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == f.size:
            dfd, name = target.parent_of(rel)
            if hash_at(dfd, name).md5 == f.md5:
                same.add(rel)
                continue
        conflicts.append(f"{display(rel)} exists with other content")
    for rel, lk in sorted(arch.links.items()):
        problem = parent_problem(target, rel)
        if problem:
            conflicts.append(problem)
            continue
        st = lstat_in(target, rel)
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


SETID = stat.S_ISUID | stat.S_ISGID


@dataclass(frozen=True)
class Owners:
    """Who restored entries belong to.

    ``uid``/``gid`` None: leave the owner the creating process gives (a user's restore, or
    root restoring a folder whose owner is unknown).  ``from_record``: the record's per-entry
    uid/gid (root only, the explicit ``--owners-from-record``).
    """

    uid: int | None = None
    gid: int | None = None
    from_record: bool = False

    def of(self, entry: RecordEntry | None) -> tuple[int, int] | None:
        if self.from_record:
            if entry is None or entry.uid is None:
                return None
            return entry.uid, entry.gid if entry.gid is not None else -1
        if self.uid is None:
            return None
        return self.uid, self.gid if self.gid is not None else -1


def owners_for(owner: tuple[int, int] | None, *, from_record: bool) -> Owners:
    """The ownership policy of one restore (see the module docstring): ``owner`` is the
    archived folder's owner on the file system (None when unknown)."""
    if os.geteuid() != 0:
        return Owners()
    if from_record:
        return Owners(from_record=True)
    if owner is None:
        return Owners()
    return Owners(owner[0], owner[1])


def folder_owner(*candidates: bytes) -> tuple[int, int] | None:
    """(uid, gid) of the first of ``candidates`` that is a directory: the archived folder,
    then the target; None when none exists (the restore then creates the folder)."""
    for path in candidates:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            return st.st_uid, st.st_gid
    return None


class Placer:
    """Places one archive's staged entries into the target (see the module docstring)."""

    def __init__(self, arch: Archive, stage: DirCache, target: DirCache, owners: Owners):
        self.arch = arch
        self.stage = stage
        self.target = target
        self.owners = owners
        self.entries = {e.path: e for e in arch.record.entries}
        self.prepared: set[bytes] = set()
        self.out = Placed()
        target.on_create = self._own_dir

    def mode(self, mode: int) -> int:
        if mode & SETID:
            self.out.setid_dropped += 1
        return stat.S_IMODE(mode) & ~SETID

    def _own_dir(self, fd: int, rel: bytes) -> None:
        """A directory we just made: its owner now (its mode and mtime come at the end)."""
        who = self.owners.of(self.entries.get(rel))
        if who is not None:
            os.chown(fd, *who)

    def _set_file(self, fd: int, rel: bytes) -> None:
        f = self.arch.files[rel]
        who = self.owners.of(self.entries.get(rel))
        if who is not None:
            os.chown(fd, *who)
        os.chmod(fd, self.mode(f.mode))
        os.utime(fd, ns=(f.mtime_ns, f.mtime_ns))

    def _set_file_by_name(self, sfd: int, sname: bytes, rel: bytes) -> None:
        """Like ``_set_file`` by name: only for staging, which nobody else can enter."""
        if not stat.S_ISREG(os.stat(sname, dir_fd=sfd, follow_symlinks=False).st_mode):
            raise UnsafePathError(f"staged {display(rel)} is not a regular file")
        f = self.arch.files[rel]
        who = self.owners.of(self.entries.get(rel))
        if who is not None:
            os.chown(sname, *who, dir_fd=sfd, follow_symlinks=False)
        os.chmod(sname, self.mode(f.mode), dir_fd=sfd)
        os.utime(sname, ns=(f.mtime_ns, f.mtime_ns), dir_fd=sfd)

    def prepare_file(self, rel: bytes) -> None:
        """Owner, mode and mtime on the staged copy (private staging; through a descriptor)."""
        if rel in self.prepared:
            return
        sfd, sname = self.stage.parent_of(rel)
        sparse = self.arch.files[rel].sparse
        access = os.O_RDWR if sparse else os.O_RDONLY
        try:
            fd = os.open(sname, access | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=sfd)
        except PermissionError:
            self._set_file_by_name(sfd, sname, rel)  # an earlier run made it unreadable
            self.prepared.add(rel)
            return
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePathError(f"staged {display(rel)} is not a regular file")
            if sparse:  # verified already; punching zero blocks keeps every byte
                if holes.punch_zeros(fd):
                    self.out.sparse += 1
                else:
                    self.out.dense += 1
            self._set_file(fd, rel)
        finally:
            os.close(fd)
        self.prepared.add(rel)

    def prepare_link(self, rel: bytes) -> None:
        sfd, sname = self.stage.parent_of(rel)
        if not stat.S_ISLNK(os.stat(sname, dir_fd=sfd, follow_symlinks=False).st_mode):
            raise UnsafePathError(f"staged {display(rel)} is not a symlink")
        who = self.owners.of(self.entries.get(rel))
        if who is not None:
            os.chown(sname, *who, dir_fd=sfd, follow_symlinks=False)
        lk = self.arch.links[rel]
        os.utime(sname, ns=(lk.mtime_ns, lk.mtime_ns), dir_fd=sfd, follow_symlinks=False)

    def place_entry(self, rel: bytes, staged: bytes, force: bool) -> None:
        """Link the staged inode ``staged`` to ``rel`` in the target; with force, replace
        a file or symlink there (through a temporary name and one rename)."""
        sfd, sname = self.stage.parent_of(staged)
        dfd, name = self.target.parent_of(rel, create=True)
        try:
            os.link(sname, name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
            return
        except FileExistsError:
            st = lstat_in(self.target, rel)
            if not force or _hard_conflict(st):
                raise DataError(f"{display(rel)} appeared in the target while restoring; "
                                "not overwriting it") from None
            tmp = layout.tmp_name()
            os.link(sname, tmp, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            self.out.replaced += 1
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            self._copy_exclusive(rel, staged, sfd, sname, dfd, name)

    def _copy_exclusive(self, rel: bytes, staged: bytes, sfd: int, sname: bytes, dfd: int,
                        name: bytes) -> None:
        """Fallback where hard links are not allowed: a new file that must not exist yet,
        given its metadata through its own descriptor (a symlink is made anew)."""
        if rel in self.arch.links:
            os.symlink(self.arch.links[rel].target, name, dir_fd=dfd)
            lk = self.arch.links[rel]
            who = self.owners.of(self.entries.get(rel))
            if who is not None:
                os.chown(name, *who, dir_fd=dfd, follow_symlinks=False)
            os.utime(name, ns=(lk.mtime_ns, lk.mtime_ns), dir_fd=dfd, follow_symlinks=False)
            return
        src = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
        try:
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                          os.O_CLOEXEC, 0o600, dir_fd=dfd)
            with os.fdopen(src, "rb", closefd=False) as fi, os.fdopen(dst, "wb") as fo:
                shutil.copyfileobj(fi, fo, 4 * 1024 * 1024)
                fo.flush()
                if self.arch.files[staged].sparse:
                    holes.punch_zeros(fo.fileno())  # a copy is dense again: punch it too
                self._set_file(fo.fileno(), staged)
        finally:
            os.close(src)

    def finish_dirs(self) -> None:
        """Modes and mtimes of the archived directories, deepest first, through the
        descriptors we hold: those we made, and those already there that belong to the owner
        restored entries get (root: that owner; a user: the user)."""
        for rel in sorted(self.arch.dirs, key=lambda r: (-r.count(b"/"), r)):
            d = self.arch.dirs[rel]
            try:
                fd = self.target.get(rel)
            except FileNotFoundError:
                continue
            if rel not in self.target.created:
                who = self.owners.of(self.entries.get(rel))
                uid = who[0] if who is not None else os.geteuid()
                if os.fstat(fd).st_uid != uid:
                    self.out.dirs_kept += 1
                    continue
            os.chmod(fd, self.mode(d.mode))
            os.utime(fd, ns=(d.mtime_ns, d.mtime_ns))


def place_all(arch: Archive, stage: DirCache, target: DirCache, *, force: bool,
              owners: Owners | None = None) -> Placed:
    """Place every staged entry into the target, then set directory metadata (see the
    module docstring).  With conflicts and no force, nothing is placed."""
    conflicts, same = find_conflicts(arch, target)
    p = Placer(arch, stage, target, owners or Owners())
    out = p.out
    out.conflicts = conflicts
    if conflicts and not force:
        return out
    for rel in sorted(arch.dirs):
        target.get(rel, create=True)
        out.dirs += 1
    for rel, f in sorted(arch.files.items()):
        if rel in same:
            out.already += 1
            continue
        first = f.hardlink_to or rel  # later names link to the staged first name's inode
        p.prepare_file(first)
        p.place_entry(rel, first, force)
        out.files += 1
    for rel in sorted(arch.links):
        if rel in same:
            out.already += 1
            continue
        st = lstat_in(target, rel)
        if st is not None and _hard_conflict(st):
            raise DataError(f"{display(rel)} is a folder; not replacing it with a symlink")
        p.prepare_link(rel)
        p.place_entry(rel, rel, force)
        out.links += 1
    p.finish_dirs()
    return out
