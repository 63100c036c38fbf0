"""Step 6, record: the trace left in the folder (and beside the data on the remote).

Written only after every object is verified, so its presence means the archive is complete.

``Froster.manifest.md5``
    GNU md5sum format, one line per regular file (bundled ones too), names relative to the
    folder, sorted by raw bytes; ``cd FOLDER && md5sum -c Froster.manifest.md5`` checks them.
    Names holding a backslash, newline or CR are escaped the way md5sum 9 does (the line then
    starts with ``\\``).  Symlinks are not listed (md5sum would follow them); the record
    has them.  An empty folder gives an empty manifest.

``Froster.archive.json``  (the record; ``"format": "froster-slurm-archive"``, version 1)
    Top level: ``format``, ``format_version``, ``froster_slurm_version``, ``state``
    ("archived"), ``version`` (1, 2, ... : this archive's version of the folder), ``previous``
    (one link per earlier version, oldest first: version, destination, archived_at, run_id,
    task_index, user, host, storage_class, files, bytes, state, manifest_md5; see
    ``archive/versions.py``), ``run_id``, ``task_index``, ``source``, ``destination``,
    ``storage_class``, ``trace_storage_class``, ``archived_at``, ``user``, ``host``,
    ``recursive``, ``files``, ``bytes``, ``symlinks``, ``dirs``, ``objects``, ``manifest``
    {name, md5, lines}, ``index_html`` (the page's name), ``bundle_dir``, ``bundles``,
    ``root``, ``entries``, ``skipped``, ``excluded``.

    Names (``source``, ``path``, ``target``, ...) are ``os.fsdecode`` text: valid UTF-8 reads
    as itself; a byte that is not UTF-8 appears as a lone surrogate ``\\udcXX`` (XX = the
    byte), and ``os.fsencode`` in Python gives the exact bytes back.  The file is ASCII JSON.

    ``entries`` lists everything archived, in inventory order, each with ``path`` (relative
    to the folder), ``type`` (file|symlink|dir), ``mode`` (full st_mode), ``mtime_ns``,
    ``uid``, ``gid``, and:

    * file: ``size``, ``md5``, ``object`` (its key relative to ``destination`` when uploaded
      as its own object, else null), ``bundle`` (the bundle holding it, else null), and
      ``hardlink_to`` (the ``path`` of the first name of the same inode) for later names,
      and ``sparse: true`` for a file with holes (fewer blocks allocated than its size;
      restore punches its zero blocks out again);
    * symlink: ``target``, ``bundle``;
    * dir: ``empty``; empty dirs have a ``bundle``, others null (restore creates them as the
      parents of what they hold, then applies ``mode``/``mtime_ns``).

    ``bundle_dir`` is ``Froster.bundles/<run_id>-<task index>`` (one folder per archive, so a
    later re-archive never mixes its bundles with older ones); ``bundles``:
    ``[{name, md5, size, members}]`` where ``name`` is relative to ``destination``
    (``<bundle_dir>/bundle-00001.tar``) and ``members`` are indexes into ``entries``.  Tar
    member names are the entries' ``path`` (raw bytes; directories end in ``/``); a bundled
    hard link is a tar hard link to its group's first name; tar headers also keep mode, uid,
    gid and the mtime in whole seconds (``mtime_ns`` here is exact).
    ``root``: mode, mtime_ns, uid, gid of the folder itself.

``index.html`` (``Froster.index.html`` when the folder already has someone else's index.html)
    A self-contained page: when, by whom, from where, to where, what is in it, how to restore.

Version 1 of a folder's archive lives at ``REMOTE/<prefix>/<folder>``; version N >= 2 at
``<that>/Froster.versions/N`` with the same layout; earlier versions are never overwritten.

The three files are also uploaded beside the data (same names, relative to ``destination``)
in the STANDARD storage class, so they can be read without a Glacier restore.
"""

from __future__ import annotations

import html
import json
import os
import stat
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..remotes.resolve import describe_text
from ..remotes.storage_classes import GLACIER_CLASSES, NO_CLASS
from ..submit.render import load_template, render
from ..util.paths import display
from ..util.units import format_size
from . import names, ours
from .bundle import BUNDLE_DIR_REMOTE, BundleResult, Plan
from .inventory import DIR, FILE, LINK, Inventory

RECORD_FORMAT = ours.RECORD_FORMAT
FORMAT_VERSION = 1
TRACE_STORAGE_CLASS = "STANDARD"
LISTING_LIMIT = 500


def iso(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns since 1970"


def manifest_bytes(inv: Inventory, md5s: dict[int, str]) -> bytes:
    """The md5sum manifest of every regular file (see the module docstring)."""
    rows = sorted((inv.entries[i].rel, md5) for i, md5 in md5s.items()
                  if inv.entries[i].kind == FILE)
    return b"".join(names.md5sum_line(md5, rel) for rel, md5 in rows)


def build_record(inv: Inventory, plan: Plan, bundles: list[BundleResult],
                 md5s: dict[int, str], *, meta: dict[str, Any], bundle_dir: str,
                 manifest_md5: str,
                 manifest_lines: int, index_name: bytes) -> dict[str, Any]:
    """The JSON record (see the module docstring for every field)."""
    bundle_of: dict[int, str] = {}
    for b in bundles:
        for i in b.members:
            bundle_of[i] = f"{bundle_dir}/{b.name}"
    objects = set(plan.objects)
    first_name: dict[tuple[int, int], str] = {}
    entries = []
    for i, e in enumerate(inv.entries):
        d: dict[str, Any] = {"path": os.fsdecode(e.rel), "type": e.kind, "mode": e.mode,
                             "mtime_ns": e.mtime_ns, "uid": e.uid, "gid": e.gid}
        if e.kind == FILE:
            d.update(size=e.size, md5=md5s[i],
                     object=os.fsdecode(e.rel) if i in objects else None,
                     bundle=bundle_of.get(i))
            if e.sparse:
                d["sparse"] = True
            if e.nlink > 1:
                key = (e.dev, e.ino)
                if key in first_name:
                    d["hardlink_to"] = first_name[key]
                else:
                    first_name[key] = d["path"]
        elif e.kind == LINK:
            d.update(target=os.fsdecode(e.target or b""), bundle=bundle_of.get(i))
        elif e.kind == DIR:
            d.update(empty=e.empty, bundle=bundle_of.get(i))
        entries.append(d)
    files = [e for e in inv.entries if e.kind == FILE]
    return {
        "format": RECORD_FORMAT, "format_version": FORMAT_VERSION,
        "froster_slurm_version": __version__, "state": "archived",
        "version": int(meta.get("version") or 1), "previous": list(meta.get("previous") or []),
        "run_id": meta["run_id"], "task_index": meta["index"],
        "source": os.fsdecode(inv.root), "destination": meta["destination"],
        "storage_class": meta["storage_class"],
        "trace_storage_class": trace_class(meta["storage_class"]),
        "remote": meta.get("remote") or {},
        # crypt remotes: each object's ciphertext (size, md5) on the backend, as proven
        "stored": meta.get("stored") or {},
        "archived_at": meta["archived_at"], "user": meta["user"], "host": meta["host"],
        "recursive": inv.recursive, "files": len(files),
        "bytes": sum(e.size for e in files),
        "symlinks": sum(1 for e in inv.entries if e.kind == LINK),
        "dirs": sum(1 for e in inv.entries if e.kind == DIR),
        "objects": len(plan.objects) + len(bundles),
        "manifest": {"name": ours.MANIFEST_NAME.decode(), "md5": manifest_md5,
                     "lines": manifest_lines},
        "index_html": index_name.decode(), "bundle_dir": bundle_dir,
        "bundles": [{"name": f"{bundle_dir}/{b.name}", "md5": b.md5, "size": b.size,
                     "members": b.members} for b in bundles],
        "root": {"mode": inv.root_mode, "mtime_ns": inv.root_mtime_ns, "uid": inv.root_uid,
                 "gid": inv.root_gid},
        "entries": entries,
        "skipped": [{"path": os.fsdecode(r), "reason": why} for r, why in inv.skipped],
        "excluded": [os.fsdecode(r) for r in inv.excluded],
    }


def record_bytes(record: dict[str, Any]) -> bytes:
    """ASCII JSON, readable: one line per top-level key and per entry."""
    parts = []
    for key, value in record.items():
        if key in ("entries", "bundles", "skipped", "previous") and value:
            inner = ",\n  ".join(json.dumps(v, ensure_ascii=True, separators=(",", ":"))
                                 for v in value)
            parts.append(f' {json.dumps(key)}: [\n  {inner}\n ]')
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=True)}")
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode("ascii")


def trace_class(storage_class: str) -> str:
    """The class of the trace copies: STANDARD where classes exist, else none either."""
    return NO_CLASS if storage_class == NO_CLASS else TRACE_STORAGE_CLASS


def storage_note(storage_class: str, destination: str) -> str:
    """What index.html says about reading the data back, true to where it is stored."""
    if storage_class == NO_CLASS:
        return ("This remote has no storage classes: the data can be copied back at once, "
                "no restore request is needed.")
    if storage_class in GLACIER_CLASSES and not names.is_local_remote(destination):
        return ("Data in a Glacier or Deep Archive storage class must be restored (the first "
                "step) before it can be copied; that takes hours. The checksum files beside "
                f"the data are in {TRACE_STORAGE_CLASS} storage and can be read at once.")
    return (f"The data is in the {storage_class} storage class and can be copied back at "
            "once.")


def restore_commands(folder: bytes, destination: str, storage_class: str,
                     bundle_dir: str) -> tuple[str, str]:
    """(froster-slurm command, plain rclone + tar commands) that bring the folder back."""
    q = names.shell_quote
    dest = os.fsencode(destination)
    bundles = os.fsencode(names.join_remote(destination, bundle_dir))
    steps: list[tuple[str, list[str]]] = []
    if storage_class in GLACIER_CLASSES and not names.is_local_remote(destination):
        steps.append(("Glacier/Deep Archive: request a readable copy, then wait (hours):",
                      [f"rclone backend restore {q(dest)} -o priority=Bulk -o lifetime=7"]))
    steps += [
        ("Copy the files stored as their own objects (mtimes come back too):",
         [f"rclone copy --checksum --exclude '/{BUNDLE_DIR_REMOTE}/**' "
          f"--exclude '/{ours.VERSIONS_DIR.decode()}/**' {q(dest)} {q(folder)}"]),
        # A fresh private directory (mktemp -d, mode 0700): a fixed /tmp path is one another
        # user can create first and fill with bundles of their own.
        ("Unpack the bundles (small files, symlinks, empty folders, odd names) through a "
         "private temporary directory:",
         ['tmp=$(mktemp -d)',
          f'rclone copy --checksum {q(bundles)} "$tmp"',
          f'for t in "$tmp"/bundle-*.tar; do tar -xpf "$t" -C {q(folder)}; done',
          'rm -r "$tmp"']),
        ("Check every file against the manifest:",
         [f"cd {q(folder)} && md5sum -c {ours.MANIFEST_NAME.decode()}"]),
    ]
    lines = []
    for n, (comment, cmds) in enumerate(steps, 1):
        lines.append(f"# {n}. {comment}")
        lines.extend(cmds)
    return f"froster-slurm restore {q(folder)}", "\n".join(lines)


def _kind_label(mode: int, kind: str) -> str:
    return {FILE: "file", LINK: "link", DIR: "folder"}.get(kind, kind) + \
        (" (exec)" if kind == FILE and mode & stat.S_IXUSR else "")


def index_html(inv: Inventory, record: dict[str, Any], restore_cmd: str, rclone_cmds: str,
               templates_dir: str | None = None) -> str:
    """Render templates/index.html; every value is HTML-escaped here, names included."""
    e = html.escape
    folder_text = display(inv.root)
    rows = []
    for ent in inv.entries[:LISTING_LIMIT]:
        size = format_size(ent.size) if ent.kind == FILE else ""
        name = display(ent.rel) + ("/" if ent.kind == DIR else "")
        if ent.kind == LINK:
            name += " \u2192 " + display(ent.target or b"")
        rows.append(f"<tr><td>{e(_kind_label(ent.mode, ent.kind))}</td>"
                    f"<td class=\"num\">{e(size)}</td><td>{e(iso(ent.mtime_ns))}</td>"
                    f"<td class=\"name\">{e(name)}</td></tr>")
    more = len(inv.entries) - LISTING_LIMIT
    note = (f"... and {more:,} more entries (all of them are listed in "
            f"{ours.RECORD_NAME.decode()})" if more > 0 else "")
    values = {
        "FOLDER": e(folder_text),
        "ARCHIVED_AT": e(record["archived_at"]),
        "USER": e(record["user"]),
        "HOST": e(record["host"]),
        "DESTINATION": e(display(os.fsencode(record["destination"]))),
        "STORAGE_CLASS": e(record["storage_class"]),
        "REMOTE": e(describe_text(record.get("remote")) or "(not recorded)"),
        "STORAGE_NOTE": e(storage_note(record["storage_class"], record["destination"])),
        "FILES": e(f"{record['files']:,}"),
        "BYTES": e(format_size(record["bytes"])),
        "BYTES_EXACT": e(f"{record['bytes']:,}"),
        "OBJECTS": e(f"{record['objects']:,}"),
        "BUNDLES": e(f"{len(record['bundles']):,}"),
        "MANIFEST": e(record["manifest"]["name"]),
        "MANIFEST_MD5": e(record["manifest"]["md5"]),
        "RECORD": e(ours.RECORD_NAME.decode()),
        "RESTORE_CMD": e(restore_cmd),
        "RCLONE_CMDS": e(rclone_cmds),
        "LISTING": "\n".join(rows),
        "LISTING_NOTE": e(note),
        "VERSION": e(__version__),
        "RUN_ID": e(str(record["run_id"])),
    }
    page = render(load_template("index.html", templates_dir or None), values, "index.html")
    marker = ours.GENERATOR_META.decode()
    if marker not in page:  # a site template without our tag: add it, we recognise pages by it
        page = marker + "\n" + page
    return page
