"""File-system access that never follows a symlink: the ground purge and restore stand on.

Why not ``os.walk`` and plain paths: a folder being purged belongs to a person who may have put
a symlink anywhere in it (``data -> /project/shared``).  Resolving ``folder/data/x`` by path
would hash, and later delete, a file OUTSIDE the folder.  Here every directory is opened with
``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's descriptor, every file with
``O_NOFOLLOW``, and every delete is ``unlinkat`` in a directory we opened ourselves, so a
symlink is only ever looked at as a link.

Names are bytes; ``os`` hands back ``str`` names for descriptor-based calls, so they go through
``os.fsencode`` (surrogateescape) and nothing is lost.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import DataError, NotFoundError, UserError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 4 * 1024 * 1024  # large reads let hashlib release the GIL (see DESIGN.md)


class UnsafePathError(DataError):
    """A path component is a symlink or not a directory where one was expected."""


def check_rel(rel: bytes) -> bytes:
    """A relative path from a manifest or record, refused if it could leave its folder."""
    if not rel or rel.startswith(b"/") or b"\0" in rel:
        raise DataError(f"unusable relative path in archive trace: {rel!r}")
    parts = rel.split(b"/")
    if any(p in (b"", b".", b"..") for p in parts):
        raise DataError(f"relative path with an empty, '.' or '..' component: {rel!r}")
    return rel


def open_root(path: bytes, *, create: bool = False, mode: int = 0o777) -> int:
    """Open the folder itself; its last component must not be a symlink.

    Components above it are resolved normally (``/home -> /data/home`` is the system's business,
    not the user's), but the folder a person named is taken literally.
    """
    try:
        if create:
            try:
                os.makedirs(path, mode=mode, exist_ok=True)
            except FileExistsError as e:
                raise UserError(f"{os.fsdecode(path)!r} exists and is not a directory") from e
        return os.open(path, DIR_FLAGS)
    except FileNotFoundError as e:
        raise NotFoundError(f"no such folder: {os.fsdecode(path)!r}") from e
    except NotADirectoryError as e:
        raise UserError(f"not a directory: {os.fsdecode(path)!r}") from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(f"{os.fsdecode(path)!r} is a symlink; give the folder it points "
                            "to") from e
        if e.errno == errno.ENAMETOOLONG:  # permanent: no retry makes a path shorter
            raise UserError(f"path too long for this system ({len(path):,} bytes; the limit "
                            f"is {os.pathconf('/', 'PC_PATH_MAX'):,}, and "
                            f"{os.pathconf('/', 'PC_NAME_MAX')} per name): "
                            f"{os.fsdecode(path)[:100]!r}...") from e
        raise


def open_dir_at(parent_fd: int, name: bytes) -> int:
    """Open one child directory without following a symlink."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(f"{name!r} is a symlink or not a directory") from e
        raise


class DirCache:
    """Descriptors of the directories below one root, opened once each, closed together.

    ``get(b"a/b")`` walks ``a`` then ``b`` with ``open_dir_at``; with ``create=True`` missing
    directories are made (mode 0o700 until restore sets the recorded mode at the end, so no
    one else can slip a file into a half-restored tree).  ``created`` holds the directories
    this cache made; ``on_create(fd, rel)`` runs right after each one is made (restore gives it
    its owner there, through the descriptor).
    """

    def __init__(self, root_fd: int,
                 on_create: Callable[[int, bytes], None] | None = None):
        self.root_fd = root_fd
        self._fds: dict[bytes, int] = {b"": root_fd}
        self.created: set[bytes] = set()
        self.on_create = on_create

    def get(self, rel_dir: bytes, *, create: bool = False) -> int:
        if rel_dir in self._fds:
            return self._fds[rel_dir]
        parent, _, name = rel_dir.rpartition(b"/")
        pfd = self.get(parent, create=create)
        made = False
        try:
            fd = open_dir_at(pfd, name)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
                made = True
            except FileExistsError:
                pass
            fd = open_dir_at(pfd, name)
        self._fds[rel_dir] = fd
        if made:
            self.created.add(rel_dir)
            if self.on_create is not None:
                self.on_create(fd, rel_dir)
        return fd

    def parent_of(self, rel: bytes, *, create: bool = False) -> tuple[int, bytes]:
        """(descriptor of rel's directory, rel's last component)."""
        head, _, name = rel.rpartition(b"/")
        return self.get(head, create=create), name

    def close(self) -> None:
        for rel, fd in self._fds.items():
            if rel:
                os.close(fd)
        self._fds = {b"": self.root_fd}

    def __enter__(self) -> DirCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Node:
    """One entry found by ``walk``: its path relative to the root and its lstat."""

    rel: bytes
    st: os.stat_result

    @property
    def kind(self) -> str:
        return kind_of(self.st.st_mode)


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def walk(root_fd: int, *, recursive: bool, prefix: bytes = b"") -> Iterator[Node]:
    """Every entry below the root (directories too), never descending through a symlink.

    Non-recursive: only the entries directly inside the root (subdirectories are listed but not
    entered), matching an archive made with ``archive.recursive = false``.
    """
    with os.scandir(root_fd) as it:
        entries = sorted(os.fsencode(e.name) for e in it)
    for name in entries:
        rel = prefix + name
        try:
            st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while we looked; the caller compares against the manifest
        yield Node(rel, st)
        if recursive and stat.S_ISDIR(st.st_mode):
            fd = open_dir_at(root_fd, name)
            try:
                yield from walk(fd, recursive=True, prefix=rel + b"/")
            finally:
                os.close(fd)


@dataclass(frozen=True)
class Hashed:
    """A regular file's md5 and the fstat taken while it was open (for the re-check)."""

    md5: str
    st: os.stat_result


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Same inode, size, content-change and metadata-change times: nothing touched it."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == \
        (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def hash_at(dir_fd: int, name: bytes) -> Hashed:
    """md5 of a regular file opened with O_NOFOLLOW; refuses links, devices, FIFOs.

    The file is fstat'ed before and after reading: if it changed while being read the hash
    means nothing, and that is reported as a change rather than a mismatch to retry.
    """
    try:
        fd = os.open(name, FILE_FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePathError(f"{name!r} is a symlink") from e
        raise
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise UnsafePathError(f"{name!r} is not a regular file")
        h = hashlib.md5(usedforsecurity=False)
        while True:
            block = os.read(fd, CHUNK)
            if not block:
                break
            h.update(block)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if not same_file(before, after):
        raise DataError(f"{name!r} changed while it was being read")
    return Hashed(h.hexdigest(), after)


def md5_path(path: bytes) -> str:
    """md5 of a file we created ourselves (staging), by plain path."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def allocated_bytes(st: os.stat_result) -> int:
    """What deleting the file's last link gives back to the file system (st_blocks)."""
    return int(getattr(st, "st_blocks", 0)) * 512


def read_small_at(dir_fd: int, name: bytes, limit: int = 256 * 1024 * 1024) -> bytes:
    """Read a trace file (manifest, record) without following a symlink."""
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"{name!r} is not a regular file")
        if st.st_size > limit:
            raise DataError(f"{name!r} is larger than {limit} bytes")
        chunks = []
        while block := os.read(fd, CHUNK):
            chunks.append(block)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_atomic_at(dir_fd: int, name: bytes, data: bytes, tmp: bytes,
                    mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    """Replace ``name`` in the directory with new content in one rename (fsync'ed first).

    ``tmp`` is the temporary name (callers use the archive stage's ``.Froster-*.tmp`` pattern,
    so a leftover after a crash is recognised as ours, never archived or taken for new data).
    ``owner`` (root only): the new file's uid/gid, set through its descriptor before the rename.
    """
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode, dir_fd=dir_fd)
    try:
        try:
            if owner is not None:
                os.chown(fd, *owner)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
