"""Step 6, record: the archive stage's side of the folder format (``froster_slurm.folder``).

The trace is written only after every object is verified, so its presence means the archive is
complete.  This module turns the task's inventory, plan, bundles and hashes into the typed
record and the manifest rows; the format itself (file names, every record field, manifest
syntax, index.html, versions) is ``froster_slurm.folder`` and docs/archive-format.md.
"""

from __future__ import annotations

import os
from typing import Any

from .. import __version__
from ..folder import layout, manifest
from ..folder.indexpage import trace_class
from ..folder.schema import (
    ArchiveRecord,
    BundleRecord,
    ManifestInfo,
    RecordEntry,
    RootInfo,
    Skipped,
)
from .bundle import BundleResult, Plan
from .inventory import DIR, FILE, LINK, Inventory


def manifest_bytes(inv: Inventory, md5s: dict[int, str]) -> bytes:
    """The manifest of every regular file (``froster_slurm.folder.manifest``)."""
    return manifest.build((inv.entries[i].rel, md5) for i, md5 in md5s.items()
                          if inv.entries[i].kind == FILE)


def build_record(inv: Inventory, plan: Plan, bundles: list[BundleResult],
                 md5s: dict[int, str], *, meta: dict[str, Any], bundle_dir: str,
                 manifest_md5: str, manifest_lines: int, index_name: bytes) -> ArchiveRecord:
    """The record of this archive (docs/archive-format.md describes every field)."""
    bundle_of: dict[int, str] = {}
    for b in bundles:
        for i in b.members:
            bundle_of[i] = f"{bundle_dir}/{b.name}"
    objects = set(plan.objects)
    first_name: dict[tuple[int, int], bytes] = {}
    entries = []
    for i, e in enumerate(inv.entries):
        ent = RecordEntry(e.rel, e.kind, e.mode, e.mtime_ns, e.uid, e.gid,
                          bundle=bundle_of.get(i))
        if e.kind == FILE:
            ent.size, ent.md5 = e.size, md5s[i]
            ent.object = os.fsdecode(e.rel) if i in objects else None
            ent.sparse = e.sparse
            if e.nlink > 1:
                key = (e.dev, e.ino)
                if key in first_name:
                    ent.hardlink_to = first_name[key]
                else:
                    first_name[key] = e.rel
        elif e.kind == LINK:
            ent.target = e.target or b""
        elif e.kind == DIR:
            ent.empty = e.empty
        entries.append(ent)
    files = [e for e in inv.entries if e.kind == FILE]
    return ArchiveRecord(
        source=inv.root, destination=meta["destination"], entries=entries,
        froster_slurm_version=__version__, state="archived",
        version=int(meta.get("version") or 1), previous=list(meta.get("previous") or []),
        run_id=meta["run_id"], task_index=meta["index"],
        storage_class=meta["storage_class"],
        trace_storage_class=trace_class(meta["storage_class"]),
        remote=meta.get("remote") or {},
        # crypt remotes: each object's ciphertext (size, md5) on the backend, as proven
        stored=meta.get("stored") or {},
        archived_at=meta["archived_at"], user=meta["user"], host=meta["host"],
        recursive=inv.recursive, files=len(files), bytes=sum(e.size for e in files),
        symlinks=sum(1 for e in inv.entries if e.kind == LINK),
        dirs=sum(1 for e in inv.entries if e.kind == DIR),
        objects=len(plan.objects) + len(bundles),
        manifest=ManifestInfo(layout.MANIFEST_NAME.decode(), manifest_md5, manifest_lines),
        index_html=index_name.decode(), bundle_dir=bundle_dir,
        bundles=[BundleRecord(f"{bundle_dir}/{b.name}", b.md5, b.size, list(b.members))
                 for b in bundles],
        root=RootInfo(inv.root_mode, inv.root_mtime_ns, inv.root_uid, inv.root_gid),
        skipped=[Skipped(r, why) for r, why in inv.skipped],
        excluded=list(inv.excluded),
    )
