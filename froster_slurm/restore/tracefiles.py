"""Rewrite a folder's trace after a purge or a restore: the record, index.html, the catalog.

Why the trace is updated and never removed: after a purge it is the only thing left on the
disk that says where the data went and how to get it back.  The record gets a ``purge`` (or
``restored``) section and a new ``state``; index.html is re-rendered from the record by
``froster_slurm.folder.indexpage`` (the archive stage's template, with a status block on top
saying what happened, when, by whom, and the command that brings the data back).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..catalog import store as catalog
from ..folder import layout
from ..folder.indexpage import render_page
from ..util.paths import display
from .record import Archive
from .safefs import write_atomic_at


def write_trace(root_fd: int, arch: Archive, templates_dir: str | None = None) -> None:
    """Replace the record and index.html in the folder (record first: it is the truth).

    The manifest never changes; it is written only when the folder lacks it (a folder
    restored from the catalog after it was deleted whole), so `md5sum -c` works again.
    Run as root (an admin's purge or restore of someone's folder), the files belong to the
    folder's owner, as the ones the archive wrote did: the owner can still read and update
    their own trace.
    """
    owner = None
    if os.geteuid() == 0:
        st = os.fstat(root_fd)
        owner = (st.st_uid, st.st_gid)
    try:
        os.stat(layout.MANIFEST_NAME, dir_fd=root_fd, follow_symlinks=False)
    except FileNotFoundError:
        write_atomic_at(root_fd, layout.MANIFEST_NAME, arch.manifest_raw, layout.tmp_name(),
                        owner=owner)
    write_atomic_at(root_fd, layout.RECORD_NAME, arch.record.dump(), layout.tmp_name(),
                    owner=owner)
    write_atomic_at(root_fd, arch.index_name,
                    render_page(arch.folder, arch.record, templates_dir), layout.tmp_name(),
                    owner=owner)


def update_catalog(catalog_file: str | Path, arch: Archive) -> str:
    """Record the new state in the catalog; a catalog problem never undoes the work."""
    if not str(catalog_file):
        return "no catalog configured"
    try:
        catalog.add_records(Path(catalog_file), [arch.record.to_json()])
    except Exception as e:  # noqa: BLE001 - the catalog is derived data (`catalog rebuild`)
        return f"catalog not updated ({e}); `froster-slurm catalog rebuild` fixes it"
    return f"catalog updated: {display(arch.folder)} is {arch.state}"
