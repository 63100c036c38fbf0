"""The picker's model: which rows are shown, in what order, and which are selected.

Kept free of Textual so the behaviour (sorting, filtering, safe selection, running totals) is
tested without a terminal and the widgets only draw it.  Rows are addressed by their index in
the hotspots file; the view is a list of such indices, so sorting and filtering 100k rows never
copies a Hotspot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..rank.hotspots import Hotspot
from ..util.paths import display
from .selection import (
    Conflict,
    FolderSet,
    PutEstimate,
    Rules,
    Totals,
    Uploads,
    archived,
    folder_key,
    matcher,
    monthly_cost,
    parent_indices,
    priced,
    size_of,
)


@dataclass(frozen=True)
class Column:
    """One table column: its id, header label, sort key and natural sort direction."""

    id: str
    label: str
    key: Callable[[Hotspot], Any]
    descending: bool


COLUMNS: tuple[Column, ...] = (
    Column("folder", "Folder", lambda h: h.folder, False),
    Column("size", "Size", lambda h: h.bytes, True),
    Column("files", "Files", lambda h: h.files, True),
    Column("avg", "Avg file", lambda h: h.avg_file_bytes, True),
    Column("total", "Subtree", lambda h: h.total_bytes, True),
    Column("mtime", "Modified", lambda h: h.newest_mtime, False),  # oldest first
    Column("atime", "Accessed", lambda h: h.newest_atime, False),
    Column("owner", "Owner", lambda h: h.owner, False),
)
COLUMN_BY_ID = {c.id: c for c in COLUMNS}


@dataclass(frozen=True)
class SelectAllResult:
    added: int
    skipped: list[Conflict]


class PickState:
    """Filter + sort + selection over a fixed list of hotspots rows."""

    def __init__(self, rows: Sequence[Hotspot], *, recursive: bool, by: str, now: float,
                 storage_class: str, prices: Mapping[str, Any],
                 put_prices: Mapping[str, Any] | None = None, uploads: Uploads | None = None):
        """``put_prices`` and ``uploads`` (config ``cost.put_per_1000``, the archive's upload
        settings) give the one-time PUT estimate; without them it is not shown."""
        self.rows = rows
        self.put_prices = put_prices
        self.uploads = uploads
        self._objects = 0
        self._puts = 0
        self.recursive = recursive
        self.now = now
        self.storage_class = storage_class
        self.prices = prices
        self.rules = Rules(by=by)
        self.sort_column = COLUMN_BY_ID["total" if by == "total" else "size"]
        self.sort_descending = self.sort_column.descending
        self.view: list[int] = []
        self.view_max = 0  # the largest size (by the ranked measure) shown: the bars' scale
        self.tree = False  # False: the flat ranked list; True: the children of ``tree_at``
        self.tree_at = -1  # the folder whose children the tree shows (-1: the top level)
        self._parent: list[int] | None = None
        self._children: dict[int, list[int]] | None = None
        self.selected: set[int] = set()
        self._guard = FolderSet(recursive)
        self._bytes = 0
        self._files = 0
        self.refresh_view()

    # -- view ---------------------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Recompute the shown rows from the rules, the sort order and (in the tree) the
        folder being looked into."""
        rows = self.rows
        base: Sequence[int] = self.children(self.tree_at) if self.tree else range(len(rows))
        if self.rules.is_empty():
            idx = list(base)
        else:
            ok = matcher(self.rules, self.now)
            idx = [i for i in base if ok(rows[i])]
        key = self.sort_column.key
        # Python's sort is stable, so equal keys keep the hotspots file's order both ways.
        idx.sort(key=lambda i: key(rows[i]), reverse=self.sort_descending)
        self.view = idx
        by = self.rules.by
        self.view_max = max((size_of(rows[i], by) for i in idx), default=0)

    # -- the tree -----------------------------------------------------------------------------

    def parent(self, index: int) -> int:
        """The nearest listed ancestor's row index, or -1."""
        if self._parent is None:
            self._parent = parent_indices([h.folder for h in self.rows])
        return self._parent[index]

    def children(self, index: int) -> list[int]:
        """Rows whose nearest listed ancestor is ``index`` (-1: the top-level rows)."""
        if self._children is None:
            if self._parent is None and self.rows:
                self.parent(0)
            kids: dict[int, list[int]] = {}
            for i, p in enumerate(self._parent or []):
                kids.setdefault(p, []).append(i)
            self._children = kids
        return self._children.get(index, [])

    def set_tree(self, on: bool) -> None:
        self.tree = on
        self.refresh_view()

    def enter(self, index: int) -> bool:
        """Look into a folder (tree mode); False when nothing is listed below it."""
        if not self.children(index):
            return False
        self.tree, self.tree_at = True, index
        self.refresh_view()
        return True

    def up(self) -> int | None:
        """Back to the parent's level; returns the folder we came from (the cursor goes
        there), or None at the top."""
        if self.tree_at < 0:
            return None
        came_from = self.tree_at
        self.tree_at = self.parent(came_from)
        self.refresh_view()
        return came_from

    def label(self, index: int) -> str:
        """How the folder column names a row: the whole path in the list; in the tree the
        part below the folder being looked into, with a trailing / when it has children."""
        h = self.rows[index]
        if not self.tree:
            return display(h.folder)
        p = self.parent(index)
        if p < 0:
            text = display(h.folder)
        else:
            base = folder_key(self.rows[p].folder)
            rel = folder_key(h.folder)[len(base):].lstrip(b"/")
            text = display(rel)
        return text + ("/" if self.children(index) else "")

    def where(self) -> str:
        """The tree's current folder, for the status line."""
        return "top level" if self.tree_at < 0 else display(self.rows[self.tree_at].folder)

    def set_rules(self, rules: Rules) -> None:
        self.rules = rules
        self.refresh_view()

    def sort_by(self, column_id: str) -> None:
        """Sort by a column; choosing the current column again flips the direction."""
        column = COLUMN_BY_ID[column_id]
        if column is self.sort_column:
            self.sort_descending = not self.sort_descending
        else:
            self.sort_column, self.sort_descending = column, column.descending
        self.refresh_view()

    # -- selection ----------------------------------------------------------------------------

    def is_selected(self, index: int) -> bool:
        return index in self.selected

    def select(self, index: int) -> Conflict | None:
        """Select one row unless it overlaps the selection (then nothing changes)."""
        if index in self.selected:
            return None
        found = self._guard.add(self.rows[index].folder)
        if found:
            return found
        self.selected.add(index)
        size, files = archived(self.rows[index], self.recursive)
        self._bytes += size
        self._files += files
        if self.uploads is not None:
            objects, puts = self.uploads.folder(self.rows[index], self.recursive)
            self._objects += objects
            self._puts += puts
        return None

    def unselect(self, index: int) -> bool:
        if index not in self.selected:
            return False
        self.selected.discard(index)
        self._guard.discard(self.rows[index].folder)
        size, files = archived(self.rows[index], self.recursive)
        self._bytes -= size
        self._files -= files
        if self.uploads is not None:
            objects, puts = self.uploads.folder(self.rows[index], self.recursive)
            self._objects -= objects
            self._puts -= puts
        return True

    def toggle(self, index: int) -> Conflict | None:
        if self.unselect(index):
            return None
        return self.select(index)

    def select_shown(self) -> SelectAllResult:
        """Select every shown row, in view order, skipping those that would overlap."""
        added = 0
        skipped: list[Conflict] = []
        for i in self.view:
            if i in self.selected:
                continue
            found = self.select(i)
            if found:
                skipped.append(found)
            else:
                added += 1
        return SelectAllResult(added, skipped)

    def unselect_shown(self) -> int:
        return sum(1 for i in self.view if self.unselect(i))

    def totals(self) -> Totals:
        return Totals(len(self.selected), self._bytes, self._files)

    def cost(self) -> float | None:
        return monthly_cost(self._bytes, self.storage_class, self.prices)

    def puts(self) -> PutEstimate | None:
        """The one-time PUT estimate of the selection (None without prices and uploads)."""
        if self.uploads is None or self.put_prices is None:
            return None
        return priced(self._objects, self._puts, self.storage_class, self.put_prices,
                      self.uploads)

    def chosen_folders(self) -> list[bytes]:
        """Selected folders in the hotspots file's order (deterministic, rank's order)."""
        return [self.rows[i].folder for i in sorted(self.selected)]
