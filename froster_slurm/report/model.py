"""The folder tree and the figures the page draws, from hotspots rows.

A folder's parent in the tree is its nearest ancestor that has a row (a filtered hotspots file
may skip levels; the name then keeps the skipped part, ``a/b``).  Folders with no ancestor in
the rows are top-level.  Names are shown with ``paths.display`` (``\\xNN`` for bytes that are not
UTF-8); splitting at ``/`` never cuts a UTF-8 sequence, so joining displayed names gives the
displayed path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..pick.selection import folder_key, parent_indices
from ..rank.hotspots import Hotspot
from ..rank.sql import AGE_DAYS
from ..util.paths import display

# (label, upper bound in days) of the age buckets; the last one is open-ended.
AGE_BUCKETS = tuple(zip(("< 30 days", "30-90 days", "90 days-1 year", "1-2 years",
                         "2-5 years", "> 5 years"), (*AGE_DAYS, None), strict=True))
BASES = ("used", "mtime", "atime")  # newest of both (what the rules use), or one of them


def show(name: bytes) -> str:
    """``paths.display`` with a fast path for the common plain-ASCII name (10^6 of them)."""
    if name.isascii():
        text = name.decode("ascii")
        if text.isprintable():
            return text
    return display(name)


@dataclass
class Tree:
    """Rows in path order (a parent before its children) with their parent index (-1: top
    level) and display name."""

    rows: list[Hotspot]
    parent: list[int]
    names: list[str]


def build_tree(rows: Sequence[Hotspot]) -> Tree:
    """Rows in path order with ``selection.parent_indices`` (the picker's tree too)."""
    keyed = sorted(((folder_key(h.folder), h) for h in rows), key=lambda kh: kh[0])
    keys = [k for k, _ in keyed]
    parent = parent_indices(keys)
    names = []
    for key, p in zip(keys, parent, strict=True):
        if p < 0:
            names.append(show(key))
        else:
            base = keys[p]
            names.append(show(key[len(base) + (0 if base.endswith(b"/") else 1):]))
    return Tree([h for _, h in keyed], parent, names)


@dataclass
class Breakdown:
    """Bytes of the folders' own files (each byte once) by age bucket, owner and group."""

    by_age: dict[str, list[int]] = field(default_factory=dict)  # basis -> bytes per bucket
    no_files: int = 0
    by_owner: dict[str, int] = field(default_factory=dict)
    by_group: dict[str, int] = field(default_factory=dict)


def breakdown(rows: Sequence[Hotspot], now: int) -> Breakdown:
    b = Breakdown(by_age={basis: [0] * len(AGE_BUCKETS) for basis in BASES})
    used, mtime, atime = b.by_age["used"], b.by_age["mtime"], b.by_age["atime"]
    # bucket k holds ages below edges[k] seconds (the last bucket: everything older)
    edges = [now - days * 86400 for days in AGE_DAYS]

    def bucket(when: int) -> int:
        for k, edge in enumerate(edges):
            if when > edge:
                return k
        return len(edges)

    for h in rows:
        n = h.bytes
        if not n:
            continue
        if h.newest_mtime > 0:
            mtime[bucket(h.newest_mtime)] += n
        if h.newest_atime > 0:
            atime[bucket(h.newest_atime)] += n
        u = max(h.newest_mtime, h.newest_atime)
        if u > 0:
            used[bucket(u)] += n
        b.by_owner[h.owner] = b.by_owner.get(h.owner, 0) + n
        b.by_group[h.group] = b.by_group.get(h.group, 0) + n
    return b


def payload(tree: Tree, picked: set[int], now: int | None = None) -> dict:
    """The page's data, column by column (compact: one list per figure, owners by index).

    Rows are in path order, so a parent's index is below its children's: the script works out
    each subtree's newest times in one backward pass instead of the page carrying them."""
    now = int(time.time()) if now is None else now
    owners: dict[str, int] = {}
    groups: dict[str, int] = {}
    rows = tree.rows
    return {
        "now": now,
        "names": tree.names,
        "parent": tree.parent,
        "bytes": [h.bytes for h in rows],
        "files": [h.files for h in rows],
        "total_bytes": [h.total_bytes for h in rows],
        "total_files": [h.total_files for h in rows],
        "allocated_bytes": [h.allocated_bytes for h in rows],
        "avg_file_bytes": [h.avg_file_bytes for h in rows],
        "newest_mtime": [h.newest_mtime for h in rows],
        "newest_atime": [h.newest_atime for h in rows],
        "owner": [owners.setdefault(h.owner, len(owners)) for h in rows],
        "group": [groups.setdefault(h.group, len(groups)) for h in rows],
        "owners": [display(o) for o in owners],
        "groups": [display(g) for g in groups],
        "depth": [h.depth for h in rows],
        "picked": sorted(picked),
    }
