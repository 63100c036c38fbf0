"""Delete a name only if it still names the very inode that was verified, race-free.

Why not ``lstat`` then ``unlinkat``: between the two calls a program that saves by "write a
temp file, rename it over" (editors, many pipelines) can put a new, never archived inode at
the name, and ``unlinkat`` deletes whatever the name holds at that moment.  Instead:

1. ``renameat`` moves the entry into a private quarantine directory (``.Froster-purge-*.tmp``
   at the folder's top, mode 0700, on the same file system; a sub-folder on another mount
   gets its own beside the entry).  The rename is atomic: what lands in quarantine is exactly
   the inode the name held at that instant, and nobody else can reach it there;
2. the inode in quarantine is checked against the one that was hashed (device, inode, type,
   size, mtime; for a symlink its target);
3. only then is it unlinked, inside the quarantine.

Anything that fails step 2 is moved back to its name with ``linkat`` (which never replaces a
name created meanwhile) and reported; if its name was taken again it stays in the quarantine,
which is then kept, and the report says where.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from ..folder import layout
from ..util.paths import display

PREFIX = layout.TMP_PREFIX + b"purge-"


def is_quarantine(name: bytes) -> bool:
    """A top-level name that an interrupted purge left behind."""
    return name.startswith(PREFIX) and name.endswith(layout.TMP_SUFFIX)


class Changed(Exception):  # noqa: N818 - an outcome, caught by the caller
    """The entry at the name is not the verified one (moved back or kept; see ``where``)."""

    def __init__(self, why: str, kept: bytes | None = None):
        super().__init__(why)
        self.kept = kept


@dataclass
class Quarantine:
    """The quarantine directories of one purge of one folder (see the module docstring)."""

    root_fd: int
    token: str
    # rel_dir -> (quarantine fd, parent fd we own or -1 for the root)
    _dirs: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    _n: int = 0
    kept: list[bytes] = field(default_factory=list)

    @property
    def name(self) -> bytes:
        return PREFIX + self.token.encode() + layout.TMP_SUFFIX

    def _open(self, parent_fd: int, key: bytes) -> int:
        if key not in self._dirs:
            try:
                os.mkdir(self.name, 0o700, dir_fd=parent_fd)
            except FileExistsError:
                pass
            fd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=parent_fd)
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o077:
                os.close(fd)
                raise OSError(errno.EPERM, "quarantine folder is not private", self.name)
            self._dirs[key] = (fd, os.dup(parent_fd) if key else -1)
        return self._dirs[key][0]

    def _move_in(self, dfd: int, name: bytes, rel_dir: bytes) -> tuple[int, bytes, bytes]:
        """Rename ``name`` into a quarantine; returns (quarantine fd, name there, its rel)."""
        self._n += 1
        qname = b"%d" % self._n
        qfd = self._open(self.root_fd, b"")
        try:
            os.rename(name, qname, src_dir_fd=dfd, dst_dir_fd=qfd)
            return qfd, qname, self.name + b"/" + qname
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
        qfd = self._open(dfd, rel_dir)  # another mount below the folder: a quarantine there
        os.rename(name, qname, src_dir_fd=dfd, dst_dir_fd=qfd)
        prefix = rel_dir + b"/" if rel_dir else b""
        return qfd, qname, prefix + self.name + b"/" + qname

    def remove(self, dfd: int, name: bytes, rel: bytes,
               verify: Callable[[os.stat_result, int, bytes], str | None]) -> os.stat_result:
        """Move ``rel`` (``name`` in ``dfd``) into quarantine, ``verify`` it there (None: it is
        the verified entry, else why not), unlink it; returns its stat.  Raises
        ``FileNotFoundError`` when the name is already gone, ``Changed`` when it was not the
        verified entry (then it is back at its name, or kept in the quarantine)."""
        qfd, qname, where = self._move_in(dfd, name, rel.rpartition(b"/")[0])
        st = os.stat(qname, dir_fd=qfd, follow_symlinks=False)
        why = verify(st, qfd, qname)
        if why is None:
            os.unlink(qname, dir_fd=qfd)
            return st
        try:
            os.link(qname, name, src_dir_fd=qfd, dst_dir_fd=dfd, follow_symlinks=False)
        except OSError:
            self.kept.append(where)
            raise Changed(f"{why}; its name is taken again, so it was kept as "
                          f"{display(where)}", kept=where) from None
        os.unlink(qname, dir_fd=qfd)
        raise Changed(f"{why}; left in place")

    def close(self) -> list[str]:
        """Remove the (empty) quarantines; returns notes about any that had to stay."""
        notes = []
        for key, (fd, parent) in list(self._dirs.items()):
            os.close(fd)
            try:
                os.rmdir(self.name, dir_fd=self.root_fd if parent < 0 else parent)
            except OSError as e:
                notes.append(f"quarantine {display(key + b'/' + self.name if key else self.name)}"
                             f" kept: {e.strerror}")
            finally:
                if parent >= 0:
                    os.close(parent)
        self._dirs.clear()
        return notes


def same_inode(st: os.stat_result, was: os.stat_result) -> bool:
    """The entry in quarantine is the verified one: same inode, type, size and mtime (its
    ctime changed with our own rename, so it cannot be compared)."""
    return (st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns) == \
        (was.st_dev, was.st_ino, stat.S_IFMT(was.st_mode), was.st_size, was.st_mtime_ns)
