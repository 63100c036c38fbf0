"""index.html of an archived folder: rendered from the record alone, by archive and after a
purge or a restore.

Why from the record alone: the archive stage renders it right after writing the record, and
purge and restore re-render it later from the record they read back.  One function of one
input gives the same page in both places (before, restore rebuilt an inventory from the record
to call the archive stage's renderer).  Every value on the page is HTML-escaped, names included.
"""

from __future__ import annotations

import html
import os
import stat
import sys
from datetime import UTC, datetime

from .. import __version__
from ..archive.names import is_local_remote, join_remote, shell_quote
from ..remotes.resolve import describe_text
from ..remotes.storage_classes import GLACIER_CLASSES, NO_CLASS
from ..submit.render import load_template, render
from ..util.paths import display
from ..util.units import format_size
from . import layout
from .schema import DIR, FILE, LINK, ArchiveRecord

LISTING_LIMIT = 500
STATUS_ID = "froster-status"


def iso(ns: int) -> str:
    """An mtime for people (UTC, whole seconds); out-of-range stamps as plain nanoseconds."""
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns since 1970"


def trace_class(storage_class: str) -> str:
    """The class of the trace copies: STANDARD where classes exist, else none either."""
    return NO_CLASS if storage_class == NO_CLASS else layout.TRACE_STORAGE_CLASS


def storage_note(storage_class: str, destination: str) -> str:
    """What index.html says about reading the data back, true to where it is stored."""
    if storage_class == NO_CLASS:
        return ("This remote has no storage classes: the data can be copied back at once, "
                "no restore request is needed.")
    if storage_class in GLACIER_CLASSES and not is_local_remote(destination):
        return ("Data in a Glacier or Deep Archive storage class must be restored (the first "
                "step) before it can be copied; that takes hours. The checksum files beside "
                f"the data are in {layout.TRACE_STORAGE_CLASS} storage and can be read at "
                "once.")
    return (f"The data is in the {storage_class} storage class and can be copied back at "
            "once.")


def restore_commands(folder: bytes, destination: str, storage_class: str,
                     bundle_dir: str) -> tuple[str, str]:
    """(froster-slurm command, plain rclone + tar commands) that bring the folder back."""
    q = shell_quote
    dest = os.fsencode(destination)
    bundles = os.fsencode(join_remote(destination, bundle_dir))
    manifest = layout.MANIFEST_NAME.decode()
    steps: list[tuple[str, list[str]]] = []
    if storage_class in GLACIER_CLASSES and not is_local_remote(destination):
        steps.append(("Glacier/Deep Archive: request a readable copy, then wait (hours):",
                      [f"rclone backend restore {q(dest)} -o priority=Bulk -o lifetime=7"]))
    steps += [
        ("Copy the files stored as their own objects (mtimes come back too):",
         [f"rclone copy --checksum --exclude '/{layout.BUNDLE_DIR_REMOTE}/**' "
          f"--exclude '/{layout.VERSIONS_DIR_REMOTE}/**' {q(dest)} {q(folder)}"]),
        # A fresh private directory (mktemp -d, mode 0700): a fixed /tmp path is one another
        # user can create first and fill with bundles of their own.
        ("Unpack the bundles (small files, symlinks, empty folders, odd names) through a "
         "private temporary directory:",
         ['tmp=$(mktemp -d)',
          f'rclone copy --checksum {q(bundles)} "$tmp"',
          f'for t in "$tmp"/bundle-*.tar; do tar -xpf "$t" -C {q(folder)}; done',
          'rm -r "$tmp"']),
        ("Check every file against the manifest:",
         [f"cd {q(folder)} && md5sum -c {manifest}"]),
    ]
    lines = []
    for n, (comment, cmds) in enumerate(steps, 1):
        lines.append(f"# {n}. {comment}")
        lines.extend(cmds)
    return f"froster-slurm restore {q(folder)}", "\n".join(lines)


def _kind_label(mode: int, kind: str) -> str:
    return {FILE: "file", LINK: "link", DIR: "folder"}.get(kind, kind) + \
        (" (exec)" if kind == FILE and mode & stat.S_IXUSR else "")


def index_html(folder: bytes, record: ArchiveRecord, templates_dir: str | None = None) -> str:
    """Render templates/index.html for ``record`` (a template error raises: the archive stage
    fails the task rather than leave a folder without its page)."""
    e = html.escape
    restore_cmd, rclone_cmds = restore_commands(
        folder, record.destination, record.storage_class,
        record.bundle_dir or layout.BUNDLE_DIR_REMOTE)
    rows = []
    for ent in record.entries[:LISTING_LIMIT]:
        size = format_size(ent.size) if ent.type == FILE else ""
        name = display(ent.path) + ("/" if ent.type == DIR else "")
        if ent.type == LINK:
            name += " \u2192 " + display(ent.target)
        rows.append(f"<tr><td>{e(_kind_label(ent.mode, ent.type))}</td>"
                    f"<td class=\"num\">{e(size)}</td><td>{e(iso(ent.mtime_ns))}</td>"
                    f"<td class=\"name\">{e(name)}</td></tr>")
    more = len(record.entries) - LISTING_LIMIT
    note = (f"... and {more:,} more entries (all of them are listed in "
            f"{layout.RECORD_NAME.decode()})" if more > 0 else "")
    manifest = record.manifest
    values = {
        "FOLDER": e(display(folder)),
        "ARCHIVED_AT": e(str(record.archived_at)),
        "USER": e(str(record.user)),
        "HOST": e(str(record.host)),
        "DESTINATION": e(display(os.fsencode(record.destination))),
        "STORAGE_CLASS": e(record.storage_class),
        "REMOTE": e(describe_text(record.remote) or "(not recorded)"),
        "STORAGE_NOTE": e(storage_note(record.storage_class, record.destination)),
        "FILES": e(f"{record.files:,}"),
        "BYTES": e(format_size(record.bytes)),
        "BYTES_EXACT": e(f"{record.bytes:,}"),
        "OBJECTS": e(f"{record.objects:,}"),
        "BUNDLES": e(f"{len(record.bundles):,}"),
        "MANIFEST": e(manifest.name if manifest else layout.MANIFEST_NAME.decode()),
        "MANIFEST_MD5": e(manifest.md5 if manifest else ""),
        "RECORD": e(layout.RECORD_NAME.decode()),
        "RESTORE_CMD": e(restore_cmd),
        "RCLONE_CMDS": e(rclone_cmds),
        "LISTING": "\n".join(rows),
        "LISTING_NOTE": e(note),
        "VERSION": e(__version__),
        "RUN_ID": e(str(record.run_id)),
    }
    page = render(load_template("index.html", templates_dir or None), values, "index.html")
    marker = layout.GENERATOR_META.decode()
    if marker not in page:  # a site template without our tag: add it, we recognise pages by it
        page = marker + "\n" + page
    return page


def status_block(record: ArchiveRecord, restore_cmd: str) -> str:
    """The HTML block put at the top of index.html saying what purge/restore did."""
    e = html.escape
    if record.state == "purged":
        p = record.purge or {}
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
    if record.state == "restored":
        r = record.restored or {}
        return (f'<div id="{STATUS_ID}" style="border:2px solid #070;padding:0.6em 1em">\n'
                f'<h2 style="margin-top:0">The data is back on this disk</h2>\n<p>Restored on '
                f'<span id="restored-at">{e(str(r.get("at")))}</span> by '
                f'{e(str(r.get("by")))} on {e(str(r.get("host")))} from the archive below; '
                f'every file was checked against the manifest.</p>\n</div>\n')
    return ""


def render_page(folder: bytes, record: ArchiveRecord, templates_dir: str | None = None) -> bytes:
    """index.html for the record as it is now (archive template + the status block).

    If the archive page cannot be rendered (a site template with an error), a plain page of
    our own is written instead: after a purge the page must still say where the data went
    and how to get it back, and a purge must never stop half-way over HTML.
    """
    restore_cmd = f"froster-slurm restore {shell_quote(folder)}"
    try:
        page = index_html(folder, record, templates_dir)
    except Exception as err:  # noqa: BLE001 - see the docstring; the reason goes to stderr
        print(f"froster-slurm: index.html of {display(folder)}: archive page not "
              f"rendered ({type(err).__name__}: {err}); writing a plain one", file=sys.stderr)
        page = plain_page(folder, record)
    block = status_block(record, restore_cmd)
    if block:
        marker = "<body>"
        at = page.find(marker)
        page = (page[:at + len(marker)] + "\n" + block + page[at + len(marker):]) if at >= 0 \
            else block + page
    return page.encode("utf-8")


def plain_page(folder: bytes, record: ArchiveRecord) -> str:
    """The fallback page: where the data went and what the trace files are called."""
    e = html.escape
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"{layout.GENERATOR_META.decode()}\n<title>Archived: {e(display(folder))}"
            f"</title></head>\n<body>\n<h1>This folder was archived</h1>\n"
            f"<p><code>{e(display(folder))}</code> was archived on "
            f"{e(str(record.archived_at))} by {e(str(record.user))} to "
            f"<code>{e(display(os.fsencode(record.destination)))}</code> "
            f"({e(record.storage_class)}): {e(str(record.files))} files. Checksums: "
            f"<code>{e(layout.MANIFEST_NAME.decode())}</code>; details: "
            f"<code>{e(layout.RECORD_NAME.decode())}</code>.</p>\n</body></html>\n")
