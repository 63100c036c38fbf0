"""Read an archived folder's trace (record + manifest) into one typed, cross-checked object.

The formats are ``froster_slurm.folder``'s (docs/archive-format.md documents every field); the
record and the manifest are parsed there, by the same code the archive stage writes them with.
This module indexes them for restore and purge and cross-checks them.  Why cross-check instead
of trusting the record: purge deletes on the strength of these files, so a record and manifest
that disagree (hand-edited, truncated, from two different archives) must stop everything
rather than pick one of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..archive.verify import Expect
from ..errors import DataError, NotFoundError
from ..folder import layout, manifest
from ..folder.schema import ArchiveRecord, RecordError, loads
from ..util.paths import display
from .members import check_names
from .safefs import check_rel, open_root, read_small_at


@dataclass(frozen=True)
class FileEntry:
    rel: bytes
    md5: str
    size: int
    mode: int
    mtime_ns: int
    object: str | None
    bundle: str | None
    hardlink_to: bytes | None = None
    sparse: bool = False  # had holes when archived: restore.holes punches them again


@dataclass(frozen=True)
class LinkEntry:
    rel: bytes
    target: bytes
    mode: int
    mtime_ns: int
    bundle: str | None


@dataclass(frozen=True)
class DirEntry:
    rel: bytes
    mode: int
    mtime_ns: int
    empty: bool


@dataclass(frozen=True)
class Bundle:
    name: str  # relative to the destination: Froster.bundles/bundle-00001.tar
    md5: str
    size: int
    members: tuple[bytes, ...]


@dataclass
class Archive:
    """One folder's archive as its trace describes it."""

    folder: bytes
    record: ArchiveRecord
    manifest_raw: bytes
    files: dict[bytes, FileEntry] = field(default_factory=dict)
    links: dict[bytes, LinkEntry] = field(default_factory=dict)
    dirs: dict[bytes, DirEntry] = field(default_factory=dict)
    bundles: list[Bundle] = field(default_factory=list)
    skipped: set[bytes] = field(default_factory=set)

    @property
    def destination(self) -> str:
        return self.record.destination

    @property
    def storage_class(self) -> str:
        return self.record.storage_class

    @property
    def recursive(self) -> bool:
        return self.record.recursive

    @property
    def version(self) -> int:
        """Which version of the folder's archive this is (``archive.versions``)."""
        return self.record.version

    def linked(self, version: int) -> dict[str, Any] | None:
        """The record's link to an earlier ``version`` (its destination and summary)."""
        return self.record.linked(version)

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def index_name(self) -> bytes:
        return os.fsencode(self.record.index_html)

    @property
    def trace_names(self) -> set[bytes]:
        """The top-level names purge and restore never delete or overwrite."""
        return {layout.RECORD_NAME, layout.MANIFEST_NAME, self.index_name}

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())

    def data_objects(self) -> dict[str, str]:
        """Every data object at the destination: name relative to it -> md5."""
        out = {f.object: f.md5 for f in self.files.values() if f.object}
        out.update({b.name: b.md5 for b in self.bundles})
        return out

    def object_sizes(self) -> dict[str, int]:
        out = {f.object: f.size for f in self.files.values() if f.object}
        out.update({b.name: b.size for b in self.bundles})
        return out

    def expected_objects(self, trace: bool = False) -> dict[str, Expect]:
        """What the remote must hold, md5 and size (the proof ``archive.verify`` checks):
        every data object, and with ``trace`` the manifest copy too."""
        sizes = self.object_sizes()
        out = {name: Expect(md5, sizes[name]) for name, md5 in self.data_objects().items()}
        if trace:
            out[layout.MANIFEST_NAME.decode()] = Expect(md5_hex(self.manifest_raw),
                                                        len(self.manifest_raw))
        return out


md5_hex = manifest.md5_hex
parse_manifest = manifest.parse


def parse(folder: bytes, record_raw: bytes, manifest_raw: bytes) -> Archive:
    """Build the Archive and check that record and manifest describe the same files."""
    try:
        record = loads(record_raw)
    except RecordError as e:
        raise DataError(f"{display(folder)}: {layout.RECORD_NAME.decode()}: {e}") from e
    arch = Archive(folder=folder, record=record, manifest_raw=manifest_raw)
    try:
        by_bundle: dict[str, list[bytes]] = {}
        kinds: dict[bytes, list[str]] = {}
        for e in record.entries:
            rel = check_rel(e.path)
            kinds.setdefault(rel, []).append(e.type)
            if e.type == "file":
                arch.files[rel] = FileEntry(
                    rel, e.md5, e.size, e.mode, e.mtime_ns, e.object, e.bundle,
                    check_rel(e.hardlink_to) if e.hardlink_to else None, e.sparse)
            elif e.type == "symlink":
                arch.links[rel] = LinkEntry(rel, e.target, e.mode, e.mtime_ns, e.bundle)
            else:
                arch.dirs[rel] = DirEntry(rel, e.mode, e.mtime_ns, e.empty)
            if e.bundle:
                by_bundle.setdefault(e.bundle, []).append(rel)
        for b in record.bundles:
            if not b.name.startswith(layout.BUNDLE_DIR_REMOTE + "/"):
                raise DataError(f"bundle {b.name!r} is outside {layout.BUNDLE_DIR_REMOTE}/")
            arch.bundles.append(Bundle(b.name, b.md5, b.size,
                                       tuple(by_bundle.pop(b.name, []))))
        arch.skipped = {s.path for s in record.skipped}
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{display(folder)}: archive record lacks or garbles a field: "
                        f"{e!r}") from e
    if by_bundle:
        raise DataError(f"{display(folder)}: record names bundles it does not list: "
                        f"{sorted(by_bundle)[:3]}")
    check_names(arch, kinds)
    _cross_check(arch)
    return arch


def _cross_check(arch: Archive) -> None:
    where = display(arch.folder)
    want = arch.record.manifest.md5 if arch.record.manifest else None
    if want and md5_hex(arch.manifest_raw) != want:
        raise DataError(f"{where}: {layout.MANIFEST_NAME.decode()} is not the manifest the "
                        "record was written with (its md5 differs)")
    manifest = parse_manifest(arch.manifest_raw)
    record_md5 = {rel: f.md5 for rel, f in arch.files.items()}
    if manifest != record_md5:
        only_m = sorted(set(manifest) - set(record_md5))
        only_r = sorted(set(record_md5) - set(manifest))
        differ = sorted(r for r in set(manifest) & set(record_md5)
                        if manifest[r] != record_md5[r])
        detail = (only_m[:1] and f"only in the manifest: {display(only_m[0])}") or \
                 (only_r[:1] and f"only in the record: {display(only_r[0])}") or \
                 (differ[:1] and f"different md5: {display(differ[0])}") or "?"
        raise DataError(f"{where}: manifest and record disagree ({detail})")
    for f in arch.files.values():
        if not f.object and not f.bundle:
            raise DataError(f"{where}: record says {display(f.rel)} is in no object and no "
                            "bundle")
    for lk in arch.links.values():
        if not lk.bundle:
            raise DataError(f"{where}: record says symlink {display(lk.rel)} is in no bundle")
    if "***" in arch.destination:
        raise DataError(f"{where}: the record's destination hides credentials "
                        f"({arch.destination}); configure the remote in rclone.conf instead")


def read_local(folder: bytes) -> Archive | None:
    """The Archive from the trace in ``folder``; None when the folder has no record."""
    fd = open_root(folder)
    try:
        try:
            record_raw = read_small_at(fd, layout.RECORD_NAME)
        except FileNotFoundError:
            return None
        try:
            manifest_raw = read_small_at(fd, layout.MANIFEST_NAME)
        except FileNotFoundError as e:
            raise DataError(f"{display(folder)} has an archive record but no "
                            f"{layout.MANIFEST_NAME.decode()}") from e
    finally:
        os.close(fd)
    return parse(folder, record_raw, manifest_raw)


def require_local(folder: bytes, action: str) -> Archive:
    """Like ``read_local`` but a folder that was never archived is a clear error."""
    arch = read_local(folder)
    if arch is None:
        raise NotFoundError(f"{display(folder)} was never archived (no "
                            f"{layout.RECORD_NAME.decode()} in it); refusing to {action} it")
    if os.path.normpath(arch.record.source) != folder:
        raise DataError(f"{display(folder)}: its record says it was archived from "
                        f"{display(arch.record.source)} (moved or copied "
                        "since?); refusing to act on it")
    return arch
