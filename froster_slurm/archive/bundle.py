"""Step 2, bundle: small files, symlinks, empty folders and odd names go into tar bundles.

Why bundles: a remote holding 100,000 tiny objects is slow to fill, slow to list, and costly
in Glacier (per-object overhead and minimum sizes); and some names cannot be object keys at all
(a newline, bytes that are not UTF-8, rclone's own escape characters).  A tar keeps raw bytes,
links as links, modes and mtimes.

What goes in a bundle (``make_plan``): every regular file smaller than ``bundle_threshold``,
every file whose name is not object-safe (``names.is_object_safe``) or that sits under a
top-level name our trace uses, every symlink, and every empty directory.  All names of one
hard-linked inode stay together: in the same bundle (the later names become tar hard links),
or all uploaded as objects.  Bundles are filled in inventory order up to ``bundle_size``.

Bundles are written to the task's work directory, never inside the source folder (the
originals are not touched), as ``bundle-00001.tar`` ...: POSIX ustar members (names are the
raw bytes, relative to the folder; mode, uid, gid, whole-second mtime), with pax extended
headers only for what ustar cannot hold (names over 100 bytes, sizes over 8 GiB).  GNU tar and
Python's tarfile extract them byte-exact (a non-UTF-8 name in a pax header makes GNU tar print
a harmless "Ignoring unknown extended header keyword 'hdrcharset'").  Exact mtimes (ns) are in
the JSON record.  Each member is hashed while it is copied into the tar, so a small file is
read once; the tar itself is hashed as it is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..folder import layout
from ..util.atomic import write_atomic
from ..util.paths import display
from . import names
from .hashing import Cancelled, open_checked, os_error, run_bounded
from .inventory import DIR, FILE, LINK, Entry, Inventory, SourceChanged

BUNDLE_DIR_REMOTE = layout.BUNDLE_DIR_REMOTE


def bundle_name(i: int) -> str:
    return f"bundle-{i + 1:05d}.tar"


@dataclass
class Plan:
    """Where each inventory entry goes: entry indexes as objects, or per bundle."""

    objects: list[int] = field(default_factory=list)
    bundles: list[list[int]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"objects": self.objects, "bundles": self.bundles}

    @classmethod
    def from_json(cls, d: dict) -> Plan:
        return cls(list(d["objects"]), [list(b) for b in d["bundles"]])


def must_bundle(entry: Entry, threshold: int) -> bool:
    """True when this file cannot (or should not) be its own remote object."""
    if entry.size < threshold or not names.is_object_safe(entry.rel):
        return True
    return entry.rel.split(b"/", 1)[0] in layout.RESERVED_TOP


def make_plan(inv: Inventory, threshold: int, bundle_size: int,
              too_long: set[bytes] | frozenset[bytes] = frozenset()) -> Plan:
    """Decide object vs bundle for every entry (see the module docstring).  ``too_long``:
    names whose remote key would be too long for the backend (e.g. after crypt's name
    encryption); they travel inside a bundle, whose member names have no such limit."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, e in enumerate(inv.entries):
        if e.kind == FILE and e.nlink > 1:
            groups.setdefault((e.dev, e.ino), []).append(i)
    plan = Plan()
    units: list[tuple[list[int], int]] = []  # (entry indexes, bytes) to place in bundles
    placed: set[int] = set()
    for i, e in enumerate(inv.entries):
        if i in placed:
            continue
        if e.kind == FILE:
            members = groups.get((e.dev, e.ino), [i])
            placed.update(members)
            if any(must_bundle(inv.entries[m], threshold) or inv.entries[m].rel in too_long
                   for m in members):
                units.append((members, e.size))
            else:
                plan.objects.extend(members)
        elif e.kind == LINK or (e.kind == DIR and e.empty):
            units.append(([i], 0))
    current: list[int] = []
    size = 0
    for members, nbytes in units:
        if current and size + nbytes > bundle_size:
            plan.bundles.append(current)
            current, size = [], 0
        current.extend(members)
        size += nbytes
    if current:
        plan.bundles.append(current)
    return plan


@dataclass
class BundleResult:
    """One finished bundle: its tar's size and md5, and the md5 of each regular member."""

    name: str
    size: int
    md5: str
    members: list[int]
    member_md5: dict[int, str]

    def to_json(self) -> dict:
        return {"name": self.name, "size": self.size, "md5": self.md5, "members": self.members,
                "member_md5": {str(k): v for k, v in self.member_md5.items()}}

    @classmethod
    def from_json(cls, d: dict) -> BundleResult:
        return cls(d["name"], d["size"], d["md5"], list(d["members"]),
                   {int(k): v for k, v in d["member_md5"].items()})


BLOCK = 512
RECORD = 20 * BLOCK  # tar files are padded to whole 10 KiB records, as tar itself writes
STREAM_CHUNK = 8 * 1024 * 1024  # large members (odd names) are copied in chunks


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _ustar_header(name: bytes, e: Entry, typeflag: bytes, size: int,
                  linkname: bytes = b"") -> bytes | None:
    """A plain POSIX ustar header, or None when the member needs pax extensions.

    Most members of a bundle are short names with small sizes: writing their 512-byte header
    directly is several times faster than ``tarfile``'s general path, which matters at
    100,000 files.  Names are raw bytes (any byte but NUL), exactly as tar stores them.
    """
    mtime = e.mtime_ns // 1_000_000_000
    if (len(name) > 100 or len(linkname) > 100 or not 0 <= size < 8**11
            or not 0 <= e.uid < 8**7 or not 0 <= e.gid < 8**7 or not 0 <= mtime < 8**11):
        return None
    head = (name.ljust(100, b"\0") + _octal(stat.S_IMODE(e.mode), 8) + _octal(e.uid, 8)
            + _octal(e.gid, 8) + _octal(size, 12) + _octal(mtime, 12) + b" " * 8 + typeflag
            + linkname.ljust(100, b"\0") + b"ustar\x0000" + b"\0" * 64
            + _octal(0, 8) + _octal(0, 8)).ljust(BLOCK, b"\0")
    return head[:148] + b"%06o\0 " % sum(head) + head[156:]


def _pax_header(name: bytes, e: Entry, typeflag: bytes, size: int,
                linkname: bytes = b"") -> bytes:
    """Header(s) for a member ustar cannot describe: long names, huge sizes or ids."""
    ti = tarfile.TarInfo(os.fsdecode(name))
    ti.type = typeflag
    ti.mode = stat.S_IMODE(e.mode)
    ti.uid, ti.gid = e.uid, e.gid
    ti.uname = ti.gname = ""
    ti.size = size
    ti.mtime = e.mtime_ns // 1_000_000_000
    ti.linkname = os.fsdecode(linkname)
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _TarWriter:
    """Writes a tar stream and hashes it at once (the bundle is never read back)."""

    def __init__(self, f):
        self.f = f
        self.h = hashlib.md5(usedforsecurity=False)
        self.n = 0

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.h.update(data)
        self.n += len(data)

    def header(self, name: bytes, e: Entry, typeflag: bytes, size: int = 0,
               linkname: bytes = b"") -> None:
        self.write(_ustar_header(name, e, typeflag, size, linkname)
                   or _pax_header(name, e, typeflag, size, linkname))

    def pad(self, size: int) -> None:
        if size % BLOCK:
            self.write(b"\0" * (BLOCK - size % BLOCK))

    def close(self) -> None:
        self.write(b"\0" * (2 * BLOCK))
        if self.n % RECORD:
            self.write(b"\0" * (RECORD - self.n % RECORD))


def _copy_member(tar: _TarWriter, fd: int, e: Entry, path: bytes, cancel: threading.Event,
                 progress: Callable[[int], None] | None) -> str:
    """Copy one regular file into the tar; returns its md5 (each byte is read once)."""
    h = hashlib.md5(usedforsecurity=False)
    left = e.size
    while left > 0:
        if cancel.is_set():
            raise Cancelled()
        try:
            data = os.read(fd, min(left, STREAM_CHUNK))
        except OSError as err:
            raise os_error(path, err) from err
        if not data:
            raise SourceChanged(f"{display(path)} shrank while it was read")
        h.update(data)
        tar.write(data)
        left -= len(data)
        if progress is not None:
            progress(len(data))
    try:
        grew = os.read(fd, 1)
    except OSError as err:
        raise os_error(path, err) from err
    if grew:
        raise SourceChanged(f"{display(path)} grew while it was read")
    tar.pad(e.size)
    return h.hexdigest()


def build_bundle(inv: Inventory, members: list[int], dest: Path, cancel: threading.Event,
                 progress: Callable[[int], None] | None = None) -> BundleResult:
    """Write one tar bundle to ``dest`` (atomically) and return its checksums."""
    part = dest.with_name(dest.name + ".part")
    member_md5: dict[int, str] = {}
    first: dict[tuple[int, int], tuple[bytes, int]] = {}
    with open(part, "wb", buffering=1024 * 1024) as raw:
        tar = _TarWriter(raw)
        for i in members:
            if cancel.is_set():
                raise Cancelled()
            e = inv.entries[i]
            if e.kind == LINK:
                tar.header(e.rel, e, tarfile.SYMTYPE, linkname=e.target or b"")
                continue
            if e.kind == DIR:
                tar.header(e.rel + b"/", e, tarfile.DIRTYPE)
                continue
            key = (e.dev, e.ino)
            if e.nlink > 1 and key in first:
                tar.header(e.rel, e, tarfile.LNKTYPE, linkname=first[key][0])
                member_md5[i] = member_md5[first[key][1]]
                continue
            path = inv.path_of(e)
            fd = open_checked(path, e)
            try:
                tar.header(e.rel, e, tarfile.REGTYPE, e.size)
                member_md5[i] = _copy_member(tar, fd, e, path, cancel, progress)
            finally:
                os.close(fd)
            first[key] = (e.rel, i)
        tar.close()
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(part, dest)
    return BundleResult(dest.name, tar.n, tar.h.hexdigest(), list(members), member_md5)


def build_all(inv: Inventory, plan: Plan, out_dir: Path, workers: int,
              progress: Callable[[int], None] | None = None,
              tick: Callable[[], None] | None = None) -> list[BundleResult]:
    """Build every bundle of the plan in ``out_dir`` on ``workers`` threads.

    A bundle whose tar and result file survive from an interrupted run, with the same member
    list, is kept rather than rebuilt.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[int, BundleResult] = {}
    todo = []
    for k, members in enumerate(plan.bundles):
        name = bundle_name(k)
        meta = out_dir / (name + ".json")
        try:
            old = BundleResult.from_json(json.loads(meta.read_bytes()))
            if old.members == members and (out_dir / name).stat().st_size == old.size:
                results[k] = old
                continue
        except (FileNotFoundError, ValueError, KeyError):
            pass
        todo.append(k)

    def one(k: int, cancel: threading.Event) -> BundleResult:
        res = build_bundle(inv, plan.bundles[k], out_dir / bundle_name(k), cancel, progress)
        meta = out_dir / (bundle_name(k) + ".json")
        write_atomic(meta, json.dumps(res.to_json()))
        return res

    def done(k: int, res: BundleResult) -> None:
        results[k] = res

    run_bounded(todo, one, workers, done, tick)
    return [results[k] for k in range(len(plan.bundles))]
