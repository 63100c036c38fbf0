"""Archive versions: a folder archived again never overwrites its earlier archive.

Why: the trace in a folder (record + manifest) is the only thing that says where its data went.
Archiving the folder again used to upload into the same destination and replace record,
manifest, their remote copies and the catalog row; after a purge that replacement was an
*empty* archive and the data in the remote was orphaned.  So:

* version 1 lives at the folder's destination (``REMOTE/<prefix>/<folder>``, as before);
  version N >= 2 at ``<destination>/Froster.versions/N`` (the name is reserved at the top of
  a folder: a user's entry called ``Froster.versions`` travels inside a bundle);
* the new record carries ``version`` and ``previous``: one link per earlier version (version,
  destination, when, by whom, files, bytes, manifest md5, state), oldest first, so the folder's
  record alone leads to every version; the earlier versions' records and manifests stay beside
  their data in the remote and their rows stay in the catalog;
* a version number whose destination already holds a record on the remote (a folder whose
  trace was deleted by hand) is skipped, so even then nothing is overwritten;
* a new version that would be *lesser* is refused (``PermanentError`` naming what exists and
  how to proceed): when the earlier version was purged and files it holds are not back in the
  folder, or when the folder holds no file at all while the earlier version has some;
* a folder that is unchanged since its latest version (same files, md5s, sizes, modes,
  mtimes, symlinks and folders) whose objects still verify on the remote gets no new version:
  the task ends done, pointing at the existing one, and uploads nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import PermanentError
from ..folder import layout
from ..folder.schema import ArchiveRecord, RecordError, loads
from ..util.paths import display
from . import names
from .inventory import DIR, FILE, LINK, Inventory
from .verify import Expect


def read_prior(folder: bytes) -> ArchiveRecord | None:
    """The record of the folder's latest archive, if the folder holds one of ours for itself.

    A record copied in from another folder (its ``source`` differs) is not this folder's
    archive: None, and the archive stage refuses to overwrite it later anyway.
    """
    path = os.path.join(folder, layout.RECORD_NAME)
    if not layout.is_our_record(path):
        return None
    try:
        with open(path, "rb") as f:
            record = loads(f.read())
    except (OSError, RecordError):
        return None
    return record if os.path.normpath(record.source) == os.path.normpath(folder) else None


def _recorded_files(prior: ArchiveRecord) -> set[bytes]:
    return {e.path for e in prior.entries if e.type == FILE}


def _what(folder: bytes, prior: ArchiveRecord) -> str:
    return (f"{display(folder)}: version {prior.version} (archived "
            f"{prior.archived_at} to {display(os.fsencode(prior.destination))})")


def _purged_message(folder: bytes, prior: ArchiveRecord, missing: list[bytes],
                    total: int) -> str:
    restore = f"froster-slurm restore {names.shell_quote(folder)}"
    return (f"{_what(folder, prior)} was purged and {len(missing)} of its {total} files are "
            f"not back (e.g. {display(missing[0])}); archiving now would make a version "
            f"without them. Its data is safe in the archive: run `{restore}` first, then "
            "archive again")


def purged_and_not_back(folder: bytes) -> str | None:
    """The refusal ``refuse_lesser`` will give a purged folder, found before anything is
    queued (one ``lstat`` per recorded file); None when archiving may go ahead."""
    prior = read_prior(folder)
    if prior is None or prior.state != "purged":
        return None
    old_files = _recorded_files(prior)
    missing = sorted(rel for rel in old_files
                     if not os.path.lexists(os.path.join(folder, rel)))
    return _purged_message(folder, prior, missing, len(old_files)) if missing else None


def refuse_lesser(folder: bytes, prior: ArchiveRecord, inv: Inventory) -> None:
    """Raise when the new version would hold less than the earlier one (module docstring)."""
    old_files = _recorded_files(prior)
    if not old_files:
        return
    now = {e.rel for e in inv.entries if e.kind == FILE}
    missing = sorted(old_files - now)
    v = prior.version
    what = _what(folder, prior)
    restore = f"froster-slurm restore {names.shell_quote(folder)}"
    if prior.state == "purged" and missing:
        raise PermanentError(_purged_message(folder, prior, missing, len(old_files)))
    if not now:
        raise PermanentError(
            f"{what} holds {len(old_files)} files but the folder now holds none; refusing to "
            f"make an empty version {v + 1}. To get the files back: `{restore}`")


@dataclass(frozen=True)
class Choice:
    """The version this task writes: its number, destination, and links to earlier ones."""

    version: int
    destination: str
    previous: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "destination": self.destination,
                "previous": self.previous}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Choice:
        return cls(int(d["version"]), str(d["destination"]), list(d.get("previous") or []))


def first_choice(base: str, prior: ArchiveRecord | None) -> Choice:
    """The next version after ``prior`` (1 with no prior); the caller skips taken slots."""
    if prior is None:
        return Choice(1, base, [])
    v = prior.version + 1
    return Choice(v, layout.version_destination(base, v), prior.history())


def next_slot(base: str, choice: Choice) -> Choice:
    v = choice.version + 1
    return Choice(v, layout.version_destination(base, v), choice.previous)


def content_key(inv: Inventory, md5s: dict[int, str]) -> set[tuple[Any, ...]]:
    """What the folder holds, comparable with ``record_key`` (see the module docstring)."""
    out: set[tuple[Any, ...]] = set()
    for i, e in enumerate(inv.entries):
        if e.kind == FILE:
            out.add((e.rel, FILE, e.size, md5s.get(i), e.mode, e.mtime_ns))
        elif e.kind == LINK:
            out.add((e.rel, LINK, e.target or b""))
        elif e.kind == DIR:
            out.add((e.rel, DIR, e.mode))
    return out


def record_key(record: ArchiveRecord) -> set[tuple[Any, ...]]:
    out: set[tuple[Any, ...]] = set()
    for e in record.entries:
        if e.type == FILE:
            out.add((e.path, FILE, e.size, e.md5, e.mode, e.mtime_ns))
        elif e.type == LINK:
            out.add((e.path, LINK, e.target))
        elif e.type == DIR:
            out.add((e.path, DIR, e.mode))
    return out


def data_objects(record: ArchiveRecord) -> dict[str, Expect]:
    """The data objects a record names: key relative to its destination -> md5 and size
    (what ``archive.verify.check_remote`` proves)."""
    out = {e.object: Expect(e.md5, e.size) for e in record.entries
           if e.type == FILE and e.object}
    out.update({b.name: Expect(b.md5, b.size) for b in record.bundles})
    return out
