"""Step 1, inventory: what is in the folder, exactly as it is now.

The walk never follows a symlink (a link is recorded with its target, as a link), records
every directory (restore needs their modes and mtimes; empty ones must come back too), notes
hard links (same device and inode), and skips only what cannot be archived: sockets, FIFOs
and device files, listed in ``skipped`` with the reason.  Our own trace files at the top level
are left out (see ``froster_slurm.folder.layout``).

Everything later is checked against this snapshot: before and after the upload each entry is
stat'ed again (``changed``), and if anything differs the task starts over from here rather
than upload a manifest that no longer describes the folder.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PermanentError, TransientError
from ..folder import layout
from ..util.atomic import write_atomic
from ..util.paths import display

FILE, LINK, DIR = "file", "symlink", "dir"


class SourceChanged(TransientError):  # noqa: N818 - reads as an event, like FileExistsError
    """The folder changed under us (size, mtime, ctime, a vanished entry): redo the inventory."""


@dataclass(slots=True)
class Entry:
    """One thing in the folder.  ``rel`` is relative to the folder, bytes, '/'-separated."""

    rel: bytes
    kind: str
    size: int
    mode: int
    mtime_ns: int
    ctime_ns: int
    uid: int
    gid: int
    dev: int
    ino: int
    nlink: int
    target: bytes | None = None
    empty: bool = False
    sparse: bool = False  # a file with holes (restore punches them again: restore.holes)

    def matches(self, st: os.stat_result) -> bool:
        """Same object, same content as far as stat can tell (ctime catches in-place writes
        that reset mtime)."""
        if self.kind == DIR:
            return (stat.S_ISDIR(st.st_mode) and st.st_ino == self.ino
                    and st.st_mtime_ns == self.mtime_ns)
        if self.kind == LINK:  # the target is compared by the caller (readlink)
            return stat.S_ISLNK(st.st_mode) and st.st_ino == self.ino
        return (st.st_mode == self.mode and st.st_size == self.size and st.st_ino == self.ino
                and st.st_mtime_ns == self.mtime_ns and st.st_ctime_ns == self.ctime_ns)

    def to_row(self) -> list:
        return [os.fsdecode(self.rel), self.kind, self.size, self.mode, self.mtime_ns,
                self.ctime_ns, self.uid, self.gid, self.dev, self.ino, self.nlink,
                None if self.target is None else os.fsdecode(self.target), self.empty,
                self.sparse]

    @classmethod
    def from_row(cls, row: list) -> Entry:
        return cls(os.fsencode(row[0]), row[1], *row[2:11],
                   None if row[11] is None else os.fsencode(row[11]), row[12],
                   bool(row[13]) if len(row) > 13 else False)


@dataclass
class Inventory:
    """The snapshot of one folder.  ``entries`` are in walk order (sorted by name per dir)."""

    root: bytes
    root_mode: int
    root_mtime_ns: int
    root_uid: int
    root_gid: int
    recursive: bool
    index_name: bytes
    entries: list[Entry] = field(default_factory=list)
    skipped: list[tuple[bytes, str]] = field(default_factory=list)
    excluded: list[bytes] = field(default_factory=list)

    @property
    def files(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == FILE]

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries if e.kind == FILE)

    def path_of(self, entry: Entry) -> bytes:
        return os.path.join(self.root, entry.rel)

    def save(self, path: Path) -> None:
        data = {"root": os.fsdecode(self.root), "root_mode": self.root_mode,
                "root_mtime_ns": self.root_mtime_ns, "root_uid": self.root_uid,
                "root_gid": self.root_gid, "recursive": self.recursive,
                "index_name": os.fsdecode(self.index_name),
                "entries": [e.to_row() for e in self.entries],
                "skipped": [[os.fsdecode(r), why] for r, why in self.skipped],
                "excluded": [os.fsdecode(r) for r in self.excluded]}
        _write_json(path, data)

    @classmethod
    def load(cls, path: Path) -> Inventory:
        d = json.loads(path.read_bytes())
        return cls(root=os.fsencode(d["root"]), root_mode=d["root_mode"],
                   root_mtime_ns=d["root_mtime_ns"], root_uid=d["root_uid"],
                   root_gid=d["root_gid"], recursive=d["recursive"],
                   index_name=os.fsencode(d["index_name"]),
                   entries=[Entry.from_row(r) for r in d["entries"]],
                   skipped=[(os.fsencode(r), why) for r, why in d["skipped"]],
                   excluded=[os.fsencode(r) for r in d["excluded"]])


def _write_json(path: Path, data: object) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=True, separators=(",", ":")))


def _entry(rel: bytes, kind: str, st: os.stat_result, target: bytes | None = None) -> Entry:
    return Entry(rel, kind, st.st_size if kind == FILE else 0, st.st_mode, st.st_mtime_ns,
                 st.st_ctime_ns, st.st_uid, st.st_gid, st.st_dev, st.st_ino, st.st_nlink,
                 target, sparse=kind == FILE and st.st_size > 0
                 and st.st_blocks * 512 < st.st_size)


def _unreadable(path: bytes, e: OSError) -> PermanentError:
    return PermanentError(f"cannot read {display(path)}: {e.strerror or e}")


def check_root(root: bytes) -> os.stat_result:
    """The folder must still exist and be a real directory (not a link to one)."""
    try:
        st = os.lstat(root)
    except FileNotFoundError as e:
        raise PermanentError(f"folder {display(root)} no longer exists (deleted or moved "
                             "since it was ranked)") from e
    except OSError as e:
        raise _unreadable(root, e) from e
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise PermanentError(f"{display(root)} is {kind}; only real directories are archived")
    return st


def take_inventory(root: bytes, recursive: bool = True) -> Inventory:
    """Walk ``root`` (never following links) and return its snapshot.

    An unreadable directory or entry is a ``PermanentError`` (retrying will not make it
    readable); an entry that vanishes mid-walk is ``SourceChanged``.
    """
    root = os.path.normpath(os.fsencode(root))
    st = check_root(root)
    inv = Inventory(root, st.st_mode, st.st_mtime_ns, st.st_uid, st.st_gid, recursive,
                    layout.index_name_for(root))
    stack: list[tuple[bytes, bytes, Entry | None]] = [(root, b"", None)]
    while stack:
        abs_dir, rel_dir, dir_entry = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                children = sorted(it, key=lambda d: d.name)
        except FileNotFoundError as e:
            raise SourceChanged(f"{display(abs_dir)} vanished during the inventory") from e
        except OSError as e:
            raise _unreadable(abs_dir, e) from e
        if not rel_dir:
            skip = layout.our_top_level(root, {c.name for c in children})
            inv.excluded.extend(sorted(skip))
            children = [c for c in children if c.name not in skip]
        before = len(inv.entries)
        subdirs = []
        for child in children:
            rel = rel_dir + b"/" + child.name if rel_dir else child.name
            try:
                cst = child.stat(follow_symlinks=False)
                target = os.readlink(child.path) if stat.S_ISLNK(cst.st_mode) else None
            except FileNotFoundError as e:
                raise SourceChanged(f"{display(child.path)} vanished during the inventory") from e
            except OSError as e:
                raise _unreadable(child.path, e) from e
            mode = cst.st_mode
            if stat.S_ISREG(mode):
                inv.entries.append(_entry(rel, FILE, cst))
            elif stat.S_ISLNK(mode):
                inv.entries.append(_entry(rel, LINK, cst, target))
            elif stat.S_ISDIR(mode):
                if not recursive:
                    inv.skipped.append((rel, "subfolder (not recursive: archived on its own)"))
                    continue
                entry = _entry(rel, DIR, cst)
                inv.entries.append(entry)
                subdirs.append((child.path, rel, entry))
            else:
                kind = ("socket" if stat.S_ISSOCK(mode) else "fifo" if stat.S_ISFIFO(mode)
                        else "device")
                inv.skipped.append((rel, f"{kind} (not archivable)"))
        if dir_entry is not None:
            # Empty = nothing archivable inside: restore must create it explicitly.
            dir_entry.empty = len(inv.entries) == before
        stack.extend(reversed(subdirs))
    return inv


def changed(inv: Inventory, limit: int = 5) -> list[bytes]:
    """Entries whose stat no longer matches the snapshot (at most ``limit`` of them).

    The folder's own mtime counts too (an entry added or removed at the top level), so this
    is only called before the trace is written into it.
    """
    out: list[bytes] = []
    try:
        if os.lstat(inv.root).st_mtime_ns != inv.root_mtime_ns:
            out.append(b".")
    except OSError:
        out.append(b".")
    for e in inv.entries:
        try:
            st = os.lstat(os.path.join(inv.root, e.rel))
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                out.append(e.rel)
                if len(out) >= limit:
                    break
                continue
            raise _unreadable(os.path.join(inv.root, e.rel), err) from err
        ok = e.matches(st)
        if ok and e.kind == LINK:
            try:
                ok = os.readlink(os.path.join(inv.root, e.rel)) == e.target
            except OSError:
                ok = False
        if not ok:
            out.append(e.rel)
            if len(out) >= limit:
                break
    return out


def require_unchanged(inv: Inventory, when: str) -> None:
    """Raise ``SourceChanged`` naming a few entries if the folder differs from the snapshot."""
    check_root(inv.root)
    diff = changed(inv)
    if diff:
        names = ", ".join(display(r) for r in diff[:3]) + (", ..." if len(diff) > 3 else "")
        raise SourceChanged(f"the folder changed {when} ({names})")
