"""Rewrite a folder's trace after a purge or a restore: the record, index.html, the catalog.

Why the trace is updated and never removed: after a purge it is the only thing left on the
disk that says where the data went and how to get it back.  The record gets a ``purge`` (or
``restored``) section and a new ``state``; index.html is re-rendered with the archive stage's
own template and a status block on top saying what happened, when, by whom, and the command
that brings the data back.  Every value on the page is HTML-escaped.
"""

from __future__ import annotations

import html
import os
import sys
from pathlib import Path
from typing import Any

from ..archive import ours
from ..archive.bundle import BUNDLE_DIR_REMOTE
from ..archive.inventory import Entry, Inventory
from ..archive.names import shell_quote
from ..archive.trace import index_html, record_bytes, restore_commands
from ..catalog import store as catalog
from ..util.paths import display
from ..util.units import format_size
from .record import Archive
from .safefs import write_atomic_at

STATUS_ID = "froster-status"


def _inventory(arch: Archive) -> Inventory:
    """An Inventory rebuilt from the record, which is all ``archive.trace.index_html`` reads."""
    root = arch.record.get("root") or {}
    inv = Inventory(arch.folder, int(root.get("mode", 0o40755)), int(root.get("mtime_ns", 0)),
                    int(root.get("uid", 0)), int(root.get("gid", 0)), arch.recursive,
                    arch.index_name)
    for e in arch.record.get("entries", []):
        kind = e["type"]
        target = os.fsencode(e["target"]) if kind == "symlink" else None
        inv.entries.append(Entry(os.fsencode(e["path"]), kind, int(e.get("size") or 0),
                                 int(e["mode"]), int(e["mtime_ns"]), 0, int(e.get("uid", 0)),
                                 int(e.get("gid", 0)), 0, 0, 1, target,
                                 bool(e.get("empty"))))
    return inv


def status_block(record: dict[str, Any], restore_cmd: str) -> str:
    """The HTML block put at the top of index.html saying what purge/restore did."""
    e = html.escape
    state = record.get("state")
    if state == "purged":
        p = record.get("purge", {})
        return (f'<div id="{STATUS_ID}" style="border:2px solid #b60;padding:0.6em 1em;'
                f'background:#fff6e5">\n<h2 style="margin-top:0">The data was removed from '
                f'this disk</h2>\n<p>Removed on <span id="purged-at">{e(str(p.get("at")))}'
                f'</span> by <span id="purged-by">{e(str(p.get("by")))}</span> on '
                f'{e(str(p.get("host")))} with <code>froster-slurm purge</code>: '
                f'{e(str(p.get("files_removed")))} files and '
                f'{e(str(p.get("links_removed")))} symlinks, '
                f'{e(format_size(int(p.get("bytes_freed") or 0)))} freed. Every file had been '
                f're-hashed against the manifest and found intact on the remote first.</p>\n'
                f'<p>The archive below still holds everything. The manifest, the record '
                f'and this page stay here. To get the data back:</p>\n'
                f'<pre id="restore-now">{e(restore_cmd)}</pre>\n</div>\n')
    if state == "restored":
        r = record.get("restored", {})
        return (f'<div id="{STATUS_ID}" style="border:2px solid #070;padding:0.6em 1em">\n'
                f'<h2 style="margin-top:0">The data is back on this disk</h2>\n<p>Restored on '
                f'<span id="restored-at">{e(str(r.get("at")))}</span> by '
                f'{e(str(r.get("by")))} on {e(str(r.get("host")))} from the archive below; '
                f'every file was checked against the manifest.</p>\n</div>\n')
    return ""


def render_page(arch: Archive, templates_dir: str | None = None) -> bytes:
    """index.html for the record as it is now (archive template + our status block).

    If the archive stage's page cannot be rendered (a site template with an error, a changed
    helper), a plain page of our own is written instead: the page must say where the data went
    and how to get it back, and a purge must never stop half-way over HTML.
    """
    restore_cmd = f"froster-slurm restore {shell_quote(arch.folder)}"
    try:
        restore_cmd, rclone_cmds = restore_commands(
            arch.folder, arch.destination, arch.storage_class,
            str(arch.record.get("bundle_dir") or BUNDLE_DIR_REMOTE))
        page = index_html(_inventory(arch), arch.record, restore_cmd, rclone_cmds,
                          templates_dir)
    except Exception as err:  # noqa: BLE001 - see the docstring; the reason goes to stderr
        print(f"froster-slurm: index.html of {display(arch.folder)}: archive page not "
              f"rendered ({type(err).__name__}: {err}); writing a plain one", file=sys.stderr)
        page = _plain_page(arch)
    block = status_block(arch.record, restore_cmd)
    if block:
        marker = "<body>"
        at = page.find(marker)
        page = (page[:at + len(marker)] + "\n" + block + page[at + len(marker):]) if at >= 0 \
            else block + page
    return page.encode("utf-8")


def _plain_page(arch: Archive) -> str:
    e = html.escape
    rec = arch.record
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"{ours.GENERATOR_META.decode()}\n<title>Archived: {e(display(arch.folder))}"
            f"</title></head>\n<body>\n<h1>This folder was archived</h1>\n"
            f"<p><code>{e(display(arch.folder))}</code> was archived on "
            f"{e(str(rec.get('archived_at')))} by {e(str(rec.get('user')))} to "
            f"<code>{e(display(os.fsencode(arch.destination)))}</code> "
            f"({e(arch.storage_class)}): {e(str(rec.get('files')))} files. Checksums: "
            f"<code>{e(ours.MANIFEST_NAME.decode())}</code>; details: "
            f"<code>{e(ours.RECORD_NAME.decode())}</code>.</p>\n</body></html>\n")


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
        os.stat(ours.MANIFEST_NAME, dir_fd=root_fd, follow_symlinks=False)
    except FileNotFoundError:
        write_atomic_at(root_fd, ours.MANIFEST_NAME, arch.manifest_raw, _tmp_name(),
                        owner=owner)
    write_atomic_at(root_fd, ours.RECORD_NAME, record_bytes(arch.record), _tmp_name(),
                    owner=owner)
    write_atomic_at(root_fd, arch.index_name, render_page(arch, templates_dir), _tmp_name(),
                    owner=owner)


def _tmp_name() -> bytes:
    return ours.TMP_PREFIX + os.urandom(6).hex().encode() + ours.TMP_SUFFIX


def update_catalog(catalog_file: str | Path, arch: Archive) -> str:
    """Record the new state in the catalog; a catalog problem never undoes the work."""
    if not str(catalog_file):
        return "no catalog configured"
    try:
        catalog.add_records(Path(catalog_file), [arch.record])
    except Exception as e:  # noqa: BLE001 - the catalog is derived data (`catalog rebuild`)
        return f"catalog not updated ({e}); `froster-slurm catalog rebuild` fixes it"
    return f"catalog updated: {display(arch.folder)} is {arch.state}"
