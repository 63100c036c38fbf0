"""Which names an archive may write: the record's entries and the bundles' tar members.

Why a separate check: the record is a file in the user's own folder (or beside the data on a
remote the user writes), so whoever restores (root included) must treat it as input from a
stranger.  ``check_names`` refuses a record whose names cannot describe one real tree:

* a name listed twice (e.g. once as a file and once as a symlink: the later ``chmod`` of the
  "file" would land on whatever the symlink points to);
* a name below a file or a symlink (``link/x`` where ``link`` is a symlink: writing ``x``
  would write through the link);
* a hard link whose first name is not an earlier, plain file of the same record;
* an object or bundle name that could leave the staging directory (``..``, absolute).

``MemberCheck`` does the same for one bundle while it is unpacked: each tar member must be an
entry of the record listed for that bundle, of the record's type, once; a tar hard link must
name the record's first name, already written from this bundle; a tar symlink must point
where the record says.  Every refusal names the member.
"""

from __future__ import annotations

import os
import tarfile
from typing import TYPE_CHECKING

from ..errors import DataError
from ..util.paths import display
from .safefs import check_rel

if TYPE_CHECKING:
    from .record import Archive, Bundle


class UnsafeArchiveError(DataError):
    """The record or a bundle names something restore must not write; nothing was written."""


def _parents(rel: bytes) -> list[bytes]:
    parts = rel.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


def check_names(arch: Archive, kinds: dict[bytes, list[str]]) -> None:
    """Refuse a record whose names collide or escape (see the module docstring).

    ``kinds`` maps every name the record lists to the entry types it was listed with, in
    order (a name listed twice has two).
    """
    where = display(arch.folder)
    for rel, listed in sorted(kinds.items()):
        if len(listed) > 1:
            raise UnsafeArchiveError(f"{where}: the record lists {display(rel)} "
                                     f"{len(listed)} times (as {' and '.join(listed)}); "
                                     "refusing to restore from it")
    for rel in sorted(kinds):
        for parent in _parents(rel):
            kind = kinds.get(parent, ["dir"])[0]
            if kind != "dir":
                raise UnsafeArchiveError(f"{where}: the record puts {display(rel)} below "
                                         f"{display(parent)}, which it lists as a {kind}; "
                                         "refusing to restore through it")
    for rel, f in arch.files.items():
        if f.object is not None:
            check_rel(os.fsencode(f.object))
        if f.hardlink_to is None:
            continue
        first = arch.files.get(f.hardlink_to)
        if first is None or first.hardlink_to is not None or f.hardlink_to == rel:
            raise UnsafeArchiveError(f"{where}: the record makes {display(rel)} a hard link to "
                                     f"{display(f.hardlink_to)}, which is not a plain file of "
                                     "this archive; refusing to restore from it")
    for b in arch.bundles:
        check_rel(os.fsencode(b.name))


_TYPE_OF = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.LNKTYPE: "file",
            tarfile.SYMTYPE: "symlink", tarfile.DIRTYPE: "dir"}


class MemberCheck:
    """Checks the members of one bundle as they are read (one instance per bundle)."""

    def __init__(self, arch: Archive, bundle: Bundle):
        self.arch = arch
        self.bundle = bundle
        self.allowed = set(bundle.members)
        self.written: set[bytes] = set()

    def refuse(self, rel: bytes, why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"{self.bundle.name}: member {display(rel)} {why}; "
                                  "refusing the bundle (nothing of it was placed)")

    def check(self, m: tarfile.TarInfo) -> bytes:
        """The member's relative name, once it is known to be exactly what the record says."""
        raw = os.fsencode(m.name)
        try:
            rel = check_rel(raw.rstrip(b"/") if m.isdir() else raw)
        except DataError:
            raise self.refuse(raw, "escapes the folder (absolute, empty or '..')") from None
        if rel not in self.allowed:
            raise self.refuse(rel, "is not listed for this bundle in the record")
        if rel in self.written:
            raise self.refuse(rel, "appears twice in the bundle")
        got = _TYPE_OF.get(m.type, "other")
        want = self._kind(rel)
        if got != want:
            raise self.refuse(rel, f"is a {got} in the bundle but a {want} in the record")
        if m.islnk():
            first = os.fsencode(m.linkname)
            if first not in self.written or first not in self.arch.files or \
                    self._group(first) != self._group(rel):
                raise self.refuse(rel, f"is a hard link to {display(first)}, not to a file of "
                                  "its own hard-link group that this bundle already wrote")
        elif m.issym() and os.fsencode(m.linkname) != self.arch.links[rel].target:
            raise self.refuse(rel, f"points to {display(os.fsencode(m.linkname))}, the record "
                              f"says {display(self.arch.links[rel].target)}")
        self.written.add(rel)
        return rel

    def _group(self, rel: bytes) -> bytes:
        """The first name of rel's hard-link group (rel itself for a plain file)."""
        return self.arch.files[rel].hardlink_to or rel

    def _kind(self, rel: bytes) -> str:
        if rel in self.arch.files:
            return "file"
        if rel in self.arch.links:
            return "symlink"
        return "dir"
