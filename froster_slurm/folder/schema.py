"""The archive record, ``Froster.archive.json``: one typed record, written and read here only.

Why one typed record: the archive stage writes it, and restore, purge, catalog rebuild and the
trace rewrite after a purge or a restore read it.  With a dict on each side the writer could add
or rename a field that a reader kept spelling the old way; with ``ArchiveRecord`` both go
through ``to_json``/``from_json``, and tests/test_folder_format.py checks that
docs/archive-format.md lists every field ``to_json`` emits.

Names are bytes here and ``os.fsdecode`` text in the JSON (valid UTF-8 reads as itself, any other
byte as a lone surrogate ``\\udcXX``; ``os.fsencode`` gives the exact bytes back); the file is
ASCII JSON, so those surrogates travel as ``\\udcXX`` escapes.

Compatibility: a record with a higher ``format_version`` than ``FORMAT_VERSION`` is refused (a
newer writer may have changed a meaning this reader would get wrong, and purge deletes on the
strength of it); an older or equal one is read, a missing optional field taking its default.
Fields this reader does not know are kept in ``extra`` and written back unchanged when the
record is rewritten (after a purge or a restore), so an older reader never strips them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import DataError

RECORD_FORMAT = "froster-slurm-archive"
FORMAT_VERSION = 1
FILE, LINK, DIR = "file", "symlink", "dir"
# The summary of one version that later records carry in ``previous`` (``ArchiveRecord.link``).
LINK_FIELDS = ("version", "destination", "archived_at", "run_id", "task_index", "user", "host",
               "storage_class", "files", "bytes", "state", "manifest_md5")
# Top-level lists written one element per line (a readable file, a diff-able one).
_LINE_PER_ITEM = ("entries", "bundles", "skipped", "previous")
# Keys that grow with the folder's files (or objects): ``read_head`` skips them unparsed.
HEAVY_KEYS = frozenset({"entries", "bundles", "skipped", "excluded", "stored"})


class RecordError(DataError):
    """A record that is not ours, is newer than this reader, or lacks or garbles a field."""


def _text(raw: bytes) -> str:
    return os.fsdecode(raw)


def _raw(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"a name must be a string, not {type(text).__name__}")
    return os.fsencode(text)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class RecordEntry:
    """One archived entry, in inventory order (``type`` says which fields apply)."""

    path: bytes  # relative to the folder
    type: str  # FILE | LINK | DIR
    mode: int  # full st_mode
    mtime_ns: int
    uid: int | None = None
    gid: int | None = None
    size: int = 0  # file
    md5: str = ""  # file
    object: str | None = None  # file: its key relative to the destination, when its own object
    bundle: str | None = None  # file, symlink, empty dir: the bundle holding it
    hardlink_to: bytes | None = None  # file: the first name of its inode, for later names
    sparse: bool = False  # file: it has holes (restore punches its zero blocks out again)
    target: bytes = b""  # symlink
    empty: bool = False  # dir

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": _text(self.path), "type": self.type, "mode": self.mode,
                             "mtime_ns": self.mtime_ns}
        if self.uid is not None:
            d["uid"] = self.uid
        if self.gid is not None:
            d["gid"] = self.gid
        if self.type == FILE:
            d.update(size=self.size, md5=self.md5, object=self.object, bundle=self.bundle)
            if self.sparse:
                d["sparse"] = True
            if self.hardlink_to is not None:
                d["hardlink_to"] = _text(self.hardlink_to)
        elif self.type == LINK:
            d.update(target=_text(self.target), bundle=self.bundle)
        else:
            d.update(empty=self.empty, bundle=self.bundle)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RecordEntry:
        kind = d["type"]
        common = {"path": _raw(d["path"]), "type": kind, "mode": int(d["mode"]),
                  "mtime_ns": int(d["mtime_ns"]), "uid": _opt_int(d.get("uid")),
                  "gid": _opt_int(d.get("gid")), "bundle": d.get("bundle") or None}
        if kind == FILE:
            link_to = d.get("hardlink_to")
            obj = d.get("object")
            return cls(**common, size=int(d["size"]), md5=str(d["md5"]).lower(),
                       object=str(obj) if obj else None,
                       hardlink_to=_raw(link_to) if link_to else None,
                       sparse=bool(d.get("sparse")))
        if kind == LINK:
            return cls(**common, target=_raw(d["target"]))
        if kind == DIR:
            return cls(**common, empty=bool(d.get("empty")))
        raise ValueError(f"unknown entry type {kind!r}")


@dataclass
class BundleRecord:
    """One tar bundle: ``name`` relative to the destination, ``members`` entry indexes."""

    name: str
    md5: str
    size: int
    members: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "md5": self.md5, "size": self.size,
                "members": list(self.members)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BundleRecord:
        return cls(str(d["name"]), str(d["md5"]).lower(), int(d["size"]),
                   [int(i) for i in d.get("members") or []])


@dataclass
class ManifestInfo:
    """Which manifest the record was written with (its md5 ties the two together)."""

    name: str
    md5: str
    lines: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "md5": self.md5, "lines": self.lines}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ManifestInfo:
        return cls(str(d.get("name") or ""), str(d.get("md5") or "").lower(),
                   int(d.get("lines") or 0))


@dataclass
class RootInfo:
    """The archived folder itself: mode, mtime and owner (restore's trust check reads uid)."""

    mode: int | None
    mtime_ns: int | None
    uid: int | None
    gid: int | None

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "mtime_ns": self.mtime_ns, "uid": self.uid,
                "gid": self.gid}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RootInfo:
        return cls(_opt_int(d.get("mode")), _opt_int(d.get("mtime_ns")),
                   _opt_int(d.get("uid")), _opt_int(d.get("gid")))


@dataclass
class Skipped:
    """An entry the inventory could not archive, and why."""

    path: bytes
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"path": _text(self.path), "reason": self.reason}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Skipped:
        return cls(_raw(d["path"]), str(d.get("reason") or ""))


@dataclass
class ArchiveRecord:
    """The whole record; field order is the file's key order (docs/archive-format.md)."""

    source: bytes
    destination: str
    entries: list[RecordEntry] = field(default_factory=list)
    format: str = RECORD_FORMAT
    format_version: int = FORMAT_VERSION
    froster_slurm_version: str = ""
    state: str = "archived"
    version: int = 1
    previous: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    task_index: int | None = None
    storage_class: str = ""
    trace_storage_class: str = ""
    remote: dict[str, Any] = field(default_factory=dict)
    stored: dict[str, Any] = field(default_factory=dict)
    archived_at: str | None = None
    user: str | None = None
    host: str | None = None
    recursive: bool = False
    files: int = 0
    bytes: int = 0
    symlinks: int = 0
    dirs: int = 0
    objects: int = 0
    manifest: ManifestInfo | None = None
    index_html: str = "index.html"
    bundle_dir: str = ""
    bundles: list[BundleRecord] = field(default_factory=list)
    root: RootInfo | None = None
    skipped: list[Skipped] = field(default_factory=list)
    excluded: list[bytes] = field(default_factory=list)
    # Written by purge and restore (None/absent until then).
    purge: dict[str, Any] | None = None
    last_purge: dict[str, Any] | None = None
    restored: dict[str, Any] | None = None
    copies: list[dict[str, Any]] | None = None
    # Fields this reader does not know: kept and written back as they were.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, keys in the file's order (optional sections only when set)."""
        out: dict[str, Any] = {
            "format": self.format, "format_version": self.format_version,
            "froster_slurm_version": self.froster_slurm_version, "state": self.state,
            "version": self.version, "previous": list(self.previous),
            "run_id": self.run_id, "task_index": self.task_index,
            "source": _text(self.source), "destination": self.destination,
            "storage_class": self.storage_class,
            "trace_storage_class": self.trace_storage_class,
            "remote": self.remote, "stored": self.stored,
            "archived_at": self.archived_at, "user": self.user, "host": self.host,
            "recursive": self.recursive, "files": self.files, "bytes": self.bytes,
            "symlinks": self.symlinks, "dirs": self.dirs, "objects": self.objects,
            "manifest": self.manifest.to_json() if self.manifest else None,
            "index_html": self.index_html, "bundle_dir": self.bundle_dir,
            "bundles": [b.to_json() for b in self.bundles],
            "root": self.root.to_json() if self.root else None,
            "entries": [e.to_json() for e in self.entries],
            "skipped": [s.to_json() for s in self.skipped],
            "excluded": [_text(r) for r in self.excluded],
        }
        for key in ("purge", "last_purge", "restored", "copies"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_json(cls, d: Any) -> ArchiveRecord:
        """Parse a decoded record; RecordError names what is wrong (module docstring)."""
        fv = check_format(d)
        try:
            manifest, root = d.get("manifest"), d.get("root")
            rec = cls(
                source=_raw(d.get("source", "")), destination=str(d["destination"]),
                entries=[RecordEntry.from_json(e) for e in d["entries"]],
                format_version=fv,
                froster_slurm_version=str(d.get("froster_slurm_version") or ""),
                state=str(d.get("state") or "archived"),
                version=link_version(d),
                previous=[p for p in d.get("previous") or [] if isinstance(p, dict)],
                run_id=d.get("run_id"), task_index=_opt_int(d.get("task_index")),
                storage_class=str(d.get("storage_class") or ""),
                trace_storage_class=str(d.get("trace_storage_class") or ""),
                remote=dict(d.get("remote") or {}), stored=dict(d.get("stored") or {}),
                archived_at=d.get("archived_at"), user=d.get("user"), host=d.get("host"),
                recursive=bool(d.get("recursive")), files=int(d.get("files") or 0),
                bytes=int(d.get("bytes") or 0), symlinks=int(d.get("symlinks") or 0),
                dirs=int(d.get("dirs") or 0), objects=int(d.get("objects") or 0),
                manifest=ManifestInfo.from_json(manifest) if isinstance(manifest, dict)
                else None,
                index_html=str(d.get("index_html") or "index.html"),
                bundle_dir=str(d.get("bundle_dir") or ""),
                bundles=[BundleRecord.from_json(b) for b in d.get("bundles") or []],
                root=RootInfo.from_json(root) if isinstance(root, dict) else None,
                skipped=[Skipped.from_json(s) for s in d.get("skipped") or []],
                excluded=[_raw(r) for r in d.get("excluded") or []],
                purge=d.get("purge"), last_purge=d.get("last_purge"),
                restored=d.get("restored"), copies=d.get("copies"),
            )
        except RecordError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RecordError(f"lacks or garbles a field: {e!r}") from e
        rec.extra = {k: v for k, v in d.items() if k not in KNOWN_FIELDS}
        return rec

    def link(self) -> dict[str, Any]:
        """The summary of this version that a later version's ``previous`` carries."""
        out = {k: getattr(self, k) for k in LINK_FIELDS if k != "manifest_md5"}
        out["manifest_md5"] = self.manifest.md5 if self.manifest else None
        return out

    def history(self) -> list[dict[str, Any]]:
        """Links to every version before this one and to this one, oldest first."""
        return [*self.previous, self.link()]

    def linked(self, version: int) -> dict[str, Any] | None:
        """The link to an earlier ``version`` (its destination and summary), if recorded."""
        for link in self.previous:
            if link_version(link) == version:
                return link
        return None

    def dump(self) -> bytes:
        """The file's bytes (``json_bytes`` of ``to_json``)."""
        return json_bytes(self.to_json())


KNOWN_FIELDS = frozenset(
    ["format", "format_version", "froster_slurm_version", "state", "version", "previous",
     "run_id", "task_index", "source", "destination", "storage_class", "trace_storage_class",
     "remote", "stored", "archived_at", "user", "host", "recursive", "files", "bytes",
     "symlinks", "dirs", "objects", "manifest", "index_html", "bundle_dir", "bundles", "root",
     "entries", "skipped", "excluded", "purge", "last_purge", "restored", "copies"])


def link_version(d: dict[str, Any]) -> int:
    """The version number of a record or a version link (records written before versions
    existed, or with a garbled number, are version 1)."""
    try:
        return max(1, int(d.get("version") or 1))
    except (TypeError, ValueError):
        return 1


def check_format(d: Any) -> int:
    """The record's format version, once ``d`` is known to be a record this reader may read
    (ours, and not newer than ``FORMAT_VERSION``); else RecordError."""
    if not isinstance(d, dict) or d.get("format") != RECORD_FORMAT:
        raise RecordError("not a froster-slurm archive record")
    try:
        fv = int(d.get("format_version") or 1)
    except (TypeError, ValueError) as e:
        raise RecordError(f"lacks or garbles a field: {e!r}") from e
    if fv > FORMAT_VERSION:
        raise RecordError(f"written by a newer froster-slurm (record format version {fv}; "
                          f"this one reads up to {FORMAT_VERSION})")
    return fv


def load_json(raw: bytes) -> dict[str, Any]:
    """The record's JSON object, checked by ``check_format`` only: for readers that need a
    few summary fields (the catalog) and must not refuse a record for its entries."""
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise RecordError("not valid JSON") from e
    check_format(obj)
    return obj


def json_bytes(obj: dict[str, Any]) -> bytes:
    """A record object as the file's bytes: ASCII JSON, one line per top-level key and one per
    element of the long lists.  Takes a plain dict so tests can write forged records too."""
    parts = []
    for key, value in obj.items():
        if key in _LINE_PER_ITEM and value:
            inner = ",\n  ".join(json.dumps(v, ensure_ascii=True, separators=(",", ":"))
                                 for v in value)
            parts.append(f' {json.dumps(key)}: [\n  {inner}\n ]')
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=True)}")
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode("ascii")


def loads(raw: bytes) -> ArchiveRecord:
    """Parse the file's bytes; RecordError when it is not JSON or not a record we can read."""
    return ArchiveRecord.from_json(load_json(raw))


def read_head(f: BinaryIO) -> dict[str, Any]:
    """An archive record without its per-file parts (``HEAVY_KEYS``), read in bounded memory.

    ``json_bytes`` writes one line per top-level key and one per list item, so
    the lines of the heavy keys are skipped unparsed, a block at a time: a folder of 10^7
    files costs no more than one of ten.  A record laid out otherwise (written by hand, or
    older) is parsed whole, one record at a time, and the heavy keys dropped.
    """
    first = f.readline(_LINE)
    if first != b"{\n":
        record = json.loads(first + f.read())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return {k: v for k, v in record.items() if k not in HEAVY_KEYS}
    head: dict[str, Any] = {}
    skipping = False  # inside a heavy key's block of item lines
    while True:
        line = f.readline(_LINE)
        if not line:
            raise ValueError("the record ends before its closing brace")
        whole = line.endswith(b"\n") or len(line) < _LINE
        if skipping:
            if not whole:
                _rest_of_line(f, keep=False)
            skipping = not line.startswith(b" ]")
            continue
        if line in (b"}\n", b"}"):
            return head
        if not line.startswith(b' "'):
            raise ValueError("not a line of a record")
        key, _, rest = line.partition(b'": ')
        name = json.loads(key[1:] + b'"')
        if name in HEAVY_KEYS:
            if not whole:
                _rest_of_line(f, keep=False)  # a long one-line value, dropped unread
            skipping = rest == b"[\n"
            continue
        if not whole:
            rest += _rest_of_line(f, keep=True)
        if rest == b"[\n":  # a block of a kept key ("previous": one line per version)
            items = []
            while True:
                item = f.readline()
                if not item or item.startswith(b" ]"):
                    break
                items.append(json.loads(item.strip().rstrip(b",")))
            head[name] = items
        else:
            head[name] = json.loads(rest.rstrip(b"\n").rstrip(b","))


_LINE = 1 << 16


def _rest_of_line(f: BinaryIO, keep: bool) -> bytes:
    """The rest of a line longer than ``_LINE``; without ``keep`` it is read and dropped."""
    parts = []
    while True:
        more = f.readline(_LINE)
        if keep:
            parts.append(more)
        if more.endswith(b"\n") or len(more) < _LINE:
            return b"".join(parts)
