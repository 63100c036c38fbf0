"""Forge an archive the way an attacker who can write a folder's trace would (no tests here).

``forge`` rewrites an archived folder's record and manifest so that they are consistent with
each other (md5s, manifest md5, bundle md5 and size) and puts one crafted tar bundle at the
record's destination, a local-folder remote.  Restore then sees an archive that passes every
consistency check and holds exactly the names, types and order the test chose; what restore
must refuse is the crafted part, not a checksum slip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import Any

from froster_slurm.folder.manifest import line as md5sum_line
from froster_slurm.folder.schema import json_bytes

MTIME_NS = 1_500_000_000 * 10**9


@dataclass
class M:
    """One forged member: ``kind`` file | symlink | dir | hardlink (to ``target``)."""

    path: bytes
    kind: str
    data: bytes = b""
    target: bytes = b""
    mode: int = 0o644
    in_record: bool = True
    in_tar: bool = True
    tar_name: bytes | None = None  # a different name in the tar than in the record
    tar_kind: str | None = None  # a different type in the tar than in the record


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _entry(m: M, members: list[M], bundle: str) -> dict[str, Any]:
    kind = "file" if m.kind in ("file", "hardlink") else m.kind
    ifmt = {"file": stat.S_IFREG, "symlink": stat.S_IFLNK, "dir": stat.S_IFDIR}[kind]
    e: dict[str, Any] = {"path": os.fsdecode(m.path), "type": kind, "mode": ifmt | m.mode,
                         "mtime_ns": MTIME_NS, "uid": 0, "gid": 0}
    if m.kind == "file":
        e.update(size=len(m.data), md5=_md5(m.data), object=None, bundle=bundle)
    elif m.kind == "hardlink":
        first = next(x for x in members if x.path == m.target)
        e.update(size=len(first.data), md5=_md5(first.data), object=None, bundle=bundle,
                 hardlink_to=os.fsdecode(m.target))
    elif m.kind == "symlink":
        e.update(target=os.fsdecode(m.target), bundle=bundle)
    else:
        e.update(empty=True, bundle=bundle)
    return e


def _tar(members: list[M]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for m in members:
            if not m.in_tar:
                continue
            kind = m.tar_kind or m.kind
            ti = tarfile.TarInfo(os.fsdecode(m.tar_name or m.path))
            ti.mode, ti.mtime = m.mode, MTIME_NS // 10**9
            if kind == "file":
                ti.type, ti.size = tarfile.REGTYPE, len(m.data)
                tar.addfile(ti, io.BytesIO(m.data))
                continue
            if kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, os.fsdecode(m.target)
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, os.fsdecode(m.target)
            else:
                ti.type = tarfile.DIRTYPE
            tar.addfile(ti)
    return buf.getvalue()


def forge(folder: bytes, members: list[M]) -> dict[str, Any]:
    """Replace the folder's archive by ``members`` (all in one bundle); returns the record."""
    rec_path = folder + b"/Froster.archive.json"
    with open(rec_path, "rb") as f:
        record = json.loads(f.read())
    bundle = f"{record['bundle_dir']}/bundle-forged.tar"
    listed = [m for m in members if m.in_record]
    entries = [_entry(m, members, bundle) for m in listed]
    data = _tar(members)
    dest = os.fsencode(record["destination"]) + b"/" + os.fsencode(bundle)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as f:
        f.write(data)
    files = sorted((os.fsencode(e["path"]), e["md5"]) for e in entries if e["type"] == "file")
    manifest = b"".join(md5sum_line(md5, rel) for rel, md5 in files)
    record.update(entries=entries, files=len(files),
                  bundles=[{"name": bundle, "md5": _md5(data), "size": len(data),
                            "members": list(range(len(entries)))}])
    record["manifest"] = {**record.get("manifest", {}), "md5": _md5(manifest),
                          "lines": len(files)}
    with open(folder + b"/Froster.manifest.md5", "wb") as f:
        f.write(manifest)
    with open(rec_path, "wb") as f:
        f.write(json_bytes(record))
    return record
