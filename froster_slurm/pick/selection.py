"""Which folders to archive: rules, safe (non-overlapping) selections and what they will cost.

Pure logic shared by the interactive picker and the ``select`` command, so both make the same
decisions and write the same file.  Nothing here touches a terminal.

Two measures of a folder exist in a hotspots row: *direct* (files in the folder itself) and
*total* (its whole subtree).  Rules rank and filter by the measure the user chose (``by``);
totals and costs use what will actually be archived: the subtree in recursive mode, the folder's
own files otherwise.  In recursive mode a folder and one of its ancestors must never both be
selected, or the subtree would be archived twice (twice the cost, two copies that can drift).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import NotFoundError, UserError
from ..rank.hotspots import Hotspot, read_hotspots
from ..util.paths import display, write_folder_list
from ..util.units import format_size, parse_size
from .funnel import Funnel
from .prefix_index import PrefixIndex

BY_CHOICES = ("direct", "total")
TB = 1000**4  # storage is billed in decimal units (see units.parse_size)


# --- measures ---------------------------------------------------------------------------------

def size_of(h: Hotspot, by: str) -> int:
    """The size rules rank and filter on: the folder's own files or its whole subtree."""
    return h.total_bytes if by == "total" else h.bytes


def archived(h: Hotspot, recursive: bool) -> tuple[int, int]:
    """(bytes, files) the archive stage will copy for this folder."""
    return (h.total_bytes, h.total_files) if recursive else (h.bytes, h.files)


def last_used(h: Hotspot) -> int:
    """Newest of modification and access time.

    Both count: data someone still reads is not cold even if nobody writes it.  Where atime is
    not maintained (noatime mounts) it is old or 0 and the mtime decides alone.
    """
    return max(h.newest_mtime, h.newest_atime)


# --- rules ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rules:
    """Filters a folder must pass.  Zero / empty means "no constraint"."""

    min_size: int = 0
    older_than: int = 0  # seconds since last use (see last_used)
    owners: frozenset[str] = frozenset()
    text: str = ""  # case-insensitive substring of the path
    by: str = "direct"

    def __post_init__(self) -> None:
        if self.by not in BY_CHOICES:
            raise UserError(f"--by must be one of {', '.join(BY_CHOICES)}, not {self.by!r}")
        if self.min_size < 0 or self.older_than < 0:
            raise UserError("minimum size and age cannot be negative")

    def is_empty(self) -> bool:
        return not (self.min_size or self.older_than or self.owners or self.text)

    def describe(self) -> str:
        """Short human description for status lines and summaries."""
        parts = []
        if self.text:
            parts.append(f"path~{self.text!r}")
        if self.owners:
            parts.append("owner=" + ",".join(sorted(self.owners)))
        if self.min_size:
            parts.append(f"size>={format_size(self.min_size)}")
        if self.older_than:
            parts.append(f"unused>={self.older_than // 86400}d")
        return " ".join(parts) or "none"


def matcher(rules: Rules, now: float) -> Callable[[Hotspot], bool]:
    """A fast predicate for ``rules`` (100k rows are filtered on every keystroke in the picker).

    The path text is matched against the raw bytes (ASCII-case-folded), so it works on names
    that are not UTF-8 without decoding every row.
    """
    needle = os.fsencode(rules.text).lower() if rules.text else b""
    cutoff = now - rules.older_than
    min_size, owners, by, older = rules.min_size, rules.owners, rules.by, rules.older_than

    def ok(h: Hotspot) -> bool:
        if min_size and size_of(h, by) < min_size:
            return False
        # A folder with no files in the measured scope has no age (its times are 0): an age
        # rule never keeps it, or every empty folder would look "unused for ever".
        if older and (last_used(h) > cutoff or not (h.total_files if by == "total"
                                                    else h.files)):
            return False
        if owners and h.owner not in owners:
            return False
        return not needle or needle in h.folder.lower()

    return ok


def filter_rows(rows: Iterable[Hotspot], rules: Rules, now: float) -> list[Hotspot]:
    ok = matcher(rules, now)
    return [h for h in rows if ok(h)]


# --- overlap detection ------------------------------------------------------------------------

def folder_key(path: bytes) -> bytes:
    """Comparable form of a path: repeated and trailing slashes removed (root stays b'/')."""
    while b"//" in path:
        path = path.replace(b"//", b"/")
    return path.rstrip(b"/") or (b"/" if path.startswith(b"/") else path)


def parent_indices(folders: Sequence[bytes]) -> list[int]:
    """For each folder, the index of its nearest proper ancestor among ``folders`` (-1 when
    none is listed): the tree the picker and the report walk, however the rows were filtered.
    One dict look-up per path level."""
    index: dict[bytes, int] = {}
    keys = [folder_key(f) for f in folders]
    for i, key in enumerate(keys):
        index.setdefault(key, i)
    out = []
    for key in keys:
        p = -1
        for anc in ancestors(key):
            if anc in index:
                p = index[anc]
                break
        out.append(p)
    return out


def ancestors(key: bytes) -> Iterator[bytes]:
    """Proper ancestors of a normalised path, nearest first: /a/b/c -> /a/b, /a, /."""
    while True:
        cut = key.rfind(b"/")
        if cut < 0 or key == b"/":
            return
        key = key[:cut] or b"/"
        yield key


@dataclass(frozen=True)
class Conflict:
    """Why ``folder`` cannot join a recursive selection that already holds ``other``."""

    folder: bytes
    other: bytes
    kind: Literal["inside", "contains", "same"]

    def message(self) -> str:
        f, o = display(self.folder), display(self.other)
        if self.kind == "inside":
            return (f"{f} is inside {o}, which is already selected: archiving {o} "
                    "recursively includes it")
        if self.kind == "contains":
            return (f"{f} contains {o}, which is already selected: unselect {o} first, "
                    "or both would be archived twice")
        return f"{f} is already selected"


class FolderSet:
    """Selected folders; in recursive mode no member is inside another.

    "Is it inside a member?" is one dict look-up per ancestor (O(depth)); "does it contain a
    member?" is one binary search in a sorted index of the members (``PrefixIndex``: every
    member below ``folder/`` sorts into one run), O(log N).  Scanning the members instead made
    "select all" and ``select`` quadratic (100k rows: ~300 CPU s).
    """

    def __init__(self, recursive: bool):
        self.recursive = recursive
        self._members: dict[bytes, bytes] = {}  # key -> folder as given
        self._sorted = PrefixIndex()  # the keys, in byte order (recursive mode only)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, folder: bytes) -> bool:
        return folder_key(folder) in self._members

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._members.values())

    def conflict(self, folder: bytes) -> Conflict | None:
        """The reason ``folder`` cannot be added, or None.

        For "contains" the member named is the first below ``folder`` in byte order."""
        key = folder_key(folder)
        if key in self._members:
            return Conflict(folder, self._members[key], "same")
        if not self.recursive:
            return None
        for anc in ancestors(key):
            if anc in self._members:
                return Conflict(folder, self._members[anc], "inside")
        inner = self._sorted.first_with_prefix(below_prefix(key)) if key else None
        if inner is not None:
            return Conflict(folder, self._members[inner], "contains")
        return None

    def add(self, folder: bytes) -> Conflict | None:
        """Add ``folder`` unless it conflicts; returns the conflict (nothing added) or None."""
        found = self.conflict(folder)
        if found:
            return found
        key = folder_key(folder)
        self._members[key] = folder
        if self.recursive:
            self._sorted.add(key)
        return None

    def discard(self, folder: bytes) -> bool:
        key = folder_key(folder)
        if self._members.pop(key, None) is None:
            return False
        self._sorted.discard(key)
        return True


def below_prefix(key: bytes) -> bytes:
    """What every folder strictly below the normalised path ``key`` starts with."""
    return key if key.endswith(b"/") else key + b"/"


# --- totals and cost --------------------------------------------------------------------------

@dataclass(frozen=True)
class Totals:
    folders: int
    bytes: int
    files: int


def totals(rows: Iterable[Hotspot], recursive: bool) -> Totals:
    n = b = f = 0
    for h in rows:
        size, files = archived(h, recursive)
        n, b, f = n + 1, b + size, f + files
    return Totals(n, b, f)


def monthly_cost(nbytes: int, storage_class: str, prices: Mapping[str, Any]) -> float | None:
    """Estimated USD per month, or None when ``prices`` has no entry for the class.

    A bytes-only estimate: per-object overheads and minimum storage durations (180 days for
    Deep Archive) are not included, which is why the UI calls it an estimate.
    """
    price = prices.get(storage_class)
    if price is None:
        return None
    return nbytes / TB * float(price)


# Request-count estimate for the one-time PUT cost.  rclone's S3 defaults: objects up to
# --s3-upload-cutoff (200 MiB) take one PUT; larger ones are multipart uploads of
# --s3-chunk-size (5 MiB) parts, each part billed as one PUT-class request, plus the create and
# complete calls.  A site that sets either flag in archive.rclone_flags is read from there.
S3_UPLOAD_CUTOFF = 200 * 1024**2
S3_CHUNK_SIZE = 5 * 1024**2
TRACE_OBJECTS = 3  # manifest, record and index.html copies (STANDARD class), per folder


_RCLONE_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([bkKMGTP]?)(?:iB|i|B)?$")


def rclone_size(text: str) -> int:
    """An rclone size flag (``64M``, ``1Gi``, ``512k``: binary units, as rclone reads them);
    0 when it is not one."""
    m = _RCLONE_SIZE.match(text.strip())
    if not m:
        return 0
    power = "bkMGTP".index(m.group(2).replace("K", "k") or "b")
    return int(float(m.group(1)) * 1024**power)


@dataclass(frozen=True)
class Uploads:
    """How an archive run's data would be uploaded: the settings the estimate assumes."""

    bundle_threshold: int
    bundle_size: int
    upload_cutoff: int = S3_UPLOAD_CUTOFF
    chunk_size: int = S3_CHUNK_SIZE

    @classmethod
    def from_flags(cls, bundle_threshold: int, bundle_size: int,
                   rclone_flags: Sequence[str] = (), storage_class: str = "") -> Uploads:
        """Take ``--s3-upload-cutoff``/``--s3-chunk-size`` from the site's rclone flags; the
        part size is otherwise the one the archive task uses for ``storage_class``
        (``archive.chunks``: 64 MiB for the Glacier classes)."""
        from ..archive.chunks import default_chunk

        found = {"--s3-upload-cutoff": S3_UPLOAD_CUTOFF,
                 "--s3-chunk-size": default_chunk(storage_class) if storage_class
                 else S3_CHUNK_SIZE}
        flags = list(rclone_flags)
        for i, flag in enumerate(flags):
            name, eq, value = flag.partition("=")
            if name in found:
                size = rclone_size(value if eq else (flags[i + 1] if i + 1 < len(flags) else ""))
                found[name] = size if size else found[name]
        return cls(bundle_threshold, bundle_size, found["--s3-upload-cutoff"],
                   found["--s3-chunk-size"])

    def requests(self, object_bytes: int) -> int:
        """PUT-class requests for one object of this size."""
        if object_bytes <= self.upload_cutoff:
            return 1
        from ..archive.chunks import needed_chunk

        chunk = max(self.chunk_size, needed_chunk(object_bytes))  # S3: at most 10,000 parts
        return -(-object_bytes // chunk) + 2

    def folder(self, h: Hotspot, recursive: bool) -> tuple[int, int]:
        """(objects, PUT requests) for one folder, from its file count and average size.

        A hotspots row knows the count and the total, not each file: files whose average is
        below the bundle threshold are taken as bundled (``bundle_size`` objects), the others
        as one object each of the average size.  An estimate, as the page says.
        """
        size, files = archived(h, recursive)
        if not files:
            return 0, 0
        if size // files < self.bundle_threshold:
            full, rest = divmod(size, self.bundle_size)
            objects = full + (1 if rest else 0)
            reqs = full * self.requests(self.bundle_size) + (self.requests(rest) if rest else 0)
        else:
            objects, reqs = files, files * self.requests(size // files)
        return objects + TRACE_OBJECTS, reqs + TRACE_OBJECTS


def put_cost(requests: int, storage_class: str, prices: Mapping[str, Any]) -> float | None:
    """One-time USD for ``requests`` PUT-class requests, or None without a price."""
    price = prices.get(storage_class)
    if price is None:
        return None
    return requests / 1000 * float(price)


# Where the PUT prices come from: the config table, whose defaults are AWS S3's list prices.
PUT_PRICE_SOURCE = ("cost.put_per_1000; defaults: AWS S3 list prices, us-east-1, per 1,000 "
                    "PUT/COPY/POST/LIST requests")


@dataclass(frozen=True)
class PutEstimate:
    """The one-time request cost of uploading some folders: what the picker, ``select``,
    ``submit``'s rank job and the report all show (one computation: ``put_estimate``)."""

    objects: int
    requests: int
    storage_class: str
    price_per_1000: float | None
    chunk_size: int

    @property
    def usd(self) -> float | None:
        if self.price_per_1000 is None:
            return None
        return self.requests / 1000 * self.price_per_1000

    def text(self) -> str:
        """``~9,937 PUT requests ~$0.50 once (DEEP_ARCHIVE $0.05 per 1,000, 96 MiB parts;
        cost.put_per_1000 ...)``."""
        head = f"~{self.requests:,} PUT requests"
        if self.usd is None:
            return f"{head} (no PUT price for {self.storage_class} in cost.put_per_1000)"
        return (f"{head} ~${self.usd:,.2f} once ({self.storage_class} "
                f"${self.price_per_1000:g} per 1,000, parts of {format_size(self.chunk_size)} "
                f"or larger; {PUT_PRICE_SOURCE})")

    def short(self) -> str:
        """For a status bar: ``~9,937 PUTs ~$0.50``."""
        usd = "" if self.usd is None else f" ~${self.usd:,.2f}"
        return f"~{self.requests:,} PUTs{usd}"

    def to_json_obj(self) -> dict[str, Any]:
        return {"objects": self.objects, "put_requests": self.requests,
                "storage_class": self.storage_class, "put_per_1000": self.price_per_1000,
                "put_usd": self.usd, "chunk_size": self.chunk_size,
                "price_source": PUT_PRICE_SOURCE}


def uploads_from_config(config: Any, storage_class: str) -> Uploads:
    """The upload settings an archive run with ``config`` would use for ``storage_class``."""
    return Uploads.from_flags(parse_size(config.get("archive.bundle_threshold")),
                              parse_size(config.get("archive.bundle_size")),
                              config.get("archive.rclone_flags"), storage_class)


def put_estimate(rows: Iterable[Hotspot], recursive: bool, storage_class: str,
                 put_prices: Mapping[str, Any], uploads: Uploads) -> PutEstimate:
    """PUT-class requests (and their one-time price) to upload ``rows``: each folder's
    objects and multipart parts (``Uploads.folder``), priced by ``cost.put_per_1000``."""
    objects = requests = 0
    for h in rows:
        o, r = uploads.folder(h, recursive)
        objects, requests = objects + o, requests + r
    return priced(objects, requests, storage_class, put_prices, uploads)


def priced(objects: int, requests: int, storage_class: str, put_prices: Mapping[str, Any],
           uploads: Uploads) -> PutEstimate:
    """Counts summed from ``Uploads.folder`` (here, or kept up to date by the picker as rows
    are selected) with their price."""
    price = put_prices.get(storage_class)
    return PutEstimate(objects, requests, storage_class,
                       None if price is None else float(price), uploads.chunk_size)


def put_estimate_for(rows: Iterable[Hotspot], recursive: bool, storage_class: str,
                     config: Any) -> PutEstimate:
    """``put_estimate`` with the prices and upload settings of ``config``."""
    return put_estimate(rows, recursive, storage_class, config.get("cost.put_per_1000"),
                        uploads_from_config(config, storage_class))


def format_cost(cost: float | None, storage_class: str) -> str:
    if cost is None:
        return f"cost unknown (no price for {storage_class} in cost.per_tb_month)"
    return f"~${cost:,.2f}/month in {storage_class}"


# --- rule-based selection (the `select` command) ----------------------------------------------

@dataclass
class RuleSelection:
    """Outcome of ``select_by_rules``: what was chosen and what was dropped, and why."""

    chosen: list[Hotspot]
    matched: int
    dropped: list[Conflict] = field(default_factory=list)

    def dropped_count(self, kind: str) -> int:
        return sum(1 for c in self.dropped if c.kind == kind)


def archive_units(rows: Iterable[Hotspot], min_avg_size: int, recursive: bool
                  ) -> list[Hotspot]:
    """The folders a run may archive: some file to archive (directly inside, or in the subtree
    when recursive) and an average file size of at least ``min_avg_size``.  The rank job and
    the report both start from this, then apply ``select_by_rules``."""
    return [h for h in rows
            if h.avg_file_bytes >= min_avg_size and (h.total_files if recursive else h.files) > 0]


def rank(rows: Iterable[Hotspot], by: str) -> list[Hotspot]:
    """Largest first by the chosen measure; ties keep the file's order (sorted is stable)."""
    return sorted(rows, key=lambda h: size_of(h, by), reverse=True)


def select_by_rules(rows: Sequence[Hotspot], rules: Rules, *, top: int | None,
                    recursive: bool, now: float) -> RuleSelection:
    """Rank the rows matching ``rules`` and keep the first ``top`` that do not overlap.

    Walking in rank order means a bigger folder wins over one it contains or is contained by;
    ``top`` counts kept folders, so ``--top 10`` gives ten archive units even when some
    candidates were inside others.
    """
    if top is not None and top < 1:
        raise UserError(f"--top must be at least 1, not {top}")
    candidates = rank(filter_rows(rows, rules, now), rules.by)
    chosen, dropped = take_safe(candidates, top, recursive)
    return RuleSelection(chosen=chosen, matched=len(candidates), dropped=dropped)


def take_safe(candidates: Iterable[Hotspot], top: int | None, recursive: bool
              ) -> tuple[list[Hotspot], list[Conflict]]:
    """The ranked candidates, best first, that do not overlap one already taken (at most
    ``top``), and the conflicts that left the others out.  Python's rules and the rank job's
    SQL rules (``rules_sql``) both end here, so both make the same choice."""
    chosen: list[Hotspot] = []
    dropped: list[Conflict] = []
    guard = FolderSet(recursive)
    for h in candidates:
        if top is not None and len(chosen) >= top:
            break
        found = guard.add(h.folder)
        if found:
            dropped.append(found)
        else:
            chosen.append(h)
    return chosen, dropped


def why_none(rows: Sequence[Hotspot], rules: Rules, *, now: float, min_avg: int = 0,
             recursive: bool | None = None) -> Funnel:
    """Which rule removed how many rows (for a selection that came out empty).

    ``recursive`` given: a folder must also have files to archive (its own, or its subtree's
    in recursive mode), as the rank stage of ``submit`` requires."""
    from .funnel import hotspot_rules, run_rules

    need = None
    if recursive is not None:
        def need(h: Hotspot) -> bool:
            return (h.total_files if recursive else h.files) > 0
    steps = hotspot_rules(min_size=rules.min_size, size_of=lambda h: size_of(h, rules.by),
                          older_than=rules.older_than, last_used=last_used, now=now,
                          owners=rules.owners, min_avg=min_avg, need_files=need)
    if rules.text:
        needle = os.fsencode(rules.text).lower()
        steps.append((f"'path contains {rules.text}'", "the filter",
                      lambda h: needle in h.folder.lower(), lambda _rows: ("", "")))
    return run_rules(rows, steps)


# --- files ------------------------------------------------------------------------------------

def load_hotspots(path: str | os.PathLike) -> list[Hotspot]:
    """Read a hotspots file, turning every OS failure into one clear error."""
    try:
        return read_hotspots(path)
    except IsADirectoryError as e:
        raise UserError(f"{path} is a directory, not a hotspots file") from e
    except PermissionError as e:
        raise UserError(f"cannot read hotspots file {path}: permission denied") from e
    except UnicodeError as e:  # pragma: no cover - latin-1 decodes every byte
        raise UserError(f"cannot read hotspots file {path}: {e}") from e


def check_writable(dest: str | os.PathLike) -> Path:
    """Fail early (before a person spends time picking) when the selection cannot be written."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if dest.is_dir():
        raise UserError(f"{dest} is a directory; give a file name for the selection")
    if not parent.is_dir():
        raise NotFoundError(f"cannot write {dest}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {dest}: folder {parent} is not writable")
    return dest


def write_selection(dest: str | os.PathLike, folders: Iterable[bytes]) -> int:
    """Write the selection file (NUL-separated exact bytes, atomic); returns the count."""
    try:
        return write_folder_list(dest, folders)  # atomic: a failure leaves no file behind
    except OSError as e:
        raise UserError(f"cannot write {dest}: {e.strerror or e}") from e


def is_readable(folder: bytes) -> bool:
    """Whether this user can list and enter ``folder`` (one syscall; False if it is gone)."""
    return os.access(folder, os.R_OK | os.X_OK)
