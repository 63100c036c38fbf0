"""Does this archive belong to the folder being restored?  Records are trusted only as far
as their writer.

Why: the record restore reads comes from the folder itself (writable by its owner, maybe by
a group) or, for a folder that is gone, from wherever a catalog row points (a shared catalog
is writable by every user of it).  A poisoned row or a copied record must not make a restore
of ``/home/alice/proj`` bring back someone else's files.  Checks, all before anything is
queued (and again in the job, on the run's copy):

* the record's ``source`` is the folder being restored;
* the record's ``destination`` is one the archive stage would have chosen for that folder:
  ``<remote>[/<prefix>]/<the folder's path>``, or a later version below it
  (``.../Froster.versions/<n>``).  An attacker must then write into the remote place that
  already holds the victim's archive, which the remote's permissions decide, not the catalog;
* a catalog row's destination is the record's (the record was fetched from there);
* the owner: when the folder exists, the record's ``root.uid`` is its owner on the file
  system; when it is gone, a user may only restore an archive of a folder they owned (root
  may restore any, and the restored files then get no owner from the record: see ``place``).
"""

from __future__ import annotations

import os
import re
import stat

from ..archive import names
from ..errors import DataError
from ..util.paths import display
from .record import Archive

_VERSION_TAIL = re.compile(r"/Froster\.versions/[0-9]+/?$")


class ForeignArchiveError(DataError):
    """The record (or catalog row) found for a folder describes another folder or owner."""


def folder_tail(folder: bytes) -> str:
    """The part of a destination that names ``folder`` (the archive stage's own encoding)."""
    return names.destination("", "", folder).lstrip("/")


def destination_names(destination: str, folder: bytes) -> bool:
    """Whether ``destination`` is where the archive stage puts ``folder`` (any remote and
    prefix, any version)."""
    base = _VERSION_TAIL.sub("", destination).rstrip("/")
    tail = folder_tail(folder)
    if not tail:  # the folder "/" itself
        return base.endswith(":") or base == ""
    return base == tail or base.endswith(("/" + tail, ":" + tail))


def check_belongs(arch: Archive, folder: bytes, *, catalog_destination: str | None = None,
                  folder_st: os.stat_result | None = None) -> None:
    """Raise ``ForeignArchiveError`` unless ``arch`` is an archive of ``folder`` (see the
    module docstring).  ``folder_st``: the folder's lstat when it exists."""
    where = display(folder)
    source = os.path.normpath(arch.record.source)
    if source != folder:
        raise ForeignArchiveError(f"{where}: the archive record found for it is the archive "
                                  f"of {display(source)}; refusing to restore it here")
    if not destination_names(arch.destination, folder):
        raise ForeignArchiveError(f"{where}: the record's destination "
                                  f"{display(os.fsencode(names.redact(arch.destination)))} is "
                                  "not where this folder is archived (its path does not end "
                                  "in the folder's); refusing to restore from it")
    if catalog_destination is not None and catalog_destination != arch.destination:
        raise ForeignArchiveError(f"{where}: the catalog points at "
                                  f"{display(os.fsencode(names.redact(catalog_destination)))}"
                                  " but the record there names another destination; "
                                  "refusing to restore from it")
    uid = arch.record.root.uid if arch.record.root else None
    if uid is None:
        raise ForeignArchiveError(f"{where}: the record does not say who owned the folder; "
                                  "refusing to restore from it")
    if folder_st is not None and stat.S_ISDIR(folder_st.st_mode):
        if folder_st.st_uid != uid:
            raise ForeignArchiveError(f"{where}: the record says uid {uid} owned the folder "
                                      f"when it was archived; it belongs to uid "
                                      f"{folder_st.st_uid}; refusing to restore from it")
    elif os.geteuid() != 0 and uid != os.geteuid():
        raise ForeignArchiveError(f"{where}: the archive found for it is of a folder owned "
                                  f"by uid {uid}, not by you (uid {os.geteuid()}); refusing "
                                  "to restore it")


def folder_stat(folder: bytes) -> os.stat_result | None:
    """The folder's lstat, or None when it is gone."""
    try:
        return os.lstat(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
