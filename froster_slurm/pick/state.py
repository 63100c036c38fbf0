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

from ..hotspots import Hotspot
from ..selection import (
    Conflict,
    FolderSet,
    Rules,
    Totals,
    archived,
    matcher,
    monthly_cost,
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
                 storage_class: str, prices: Mapping[str, Any]):
        self.rows = rows
        self.recursive = recursive
        self.now = now
        self.storage_class = storage_class
        self.prices = prices
        self.rules = Rules(by=by)
        self.sort_column = COLUMN_BY_ID["total" if by == "total" else "size"]
        self.sort_descending = self.sort_column.descending
        self.view: list[int] = []
        self.selected: set[int] = set()
        self._guard = FolderSet(recursive)
        self._bytes = 0
        self._files = 0
        self.refresh_view()

    # -- view ---------------------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Recompute the shown rows from the rules and the sort order."""
        rows = self.rows
        if self.rules.is_empty():
            idx = list(range(len(rows)))
        else:
            ok = matcher(self.rules, self.now)
            idx = [i for i, h in enumerate(rows) if ok(h)]
        key = self.sort_column.key
        # Python's sort is stable, so equal keys keep the hotspots file's order both ways.
        idx.sort(key=lambda i: key(rows[i]), reverse=self.sort_descending)
        self.view = idx

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
        return None

    def unselect(self, index: int) -> bool:
        if index not in self.selected:
            return False
        self.selected.discard(index)
        self._guard.discard(self.rows[index].folder)
        size, files = archived(self.rows[index], self.recursive)
        self._bytes -= size
        self._files -= files
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

    def chosen_folders(self) -> list[bytes]:
        """Selected folders in the hotspots file's order (deterministic, rank's order)."""
        return [self.rows[i].folder for i in sorted(self.selected)]
