"""The picker's model: which rows are shown, in what order, and which are selected.

Kept free of Textual so the behaviour (sorting, filtering, safe selection, running totals) is
tested without a terminal and the widgets only draw it.  Rows are addressed by their index in
the hotspots file (their row id).  The rows live in DuckDB (``rowstore``): a sort or a filter is
one query, the view is a ``store.View`` (positions -> row ids, fetched a page at a time), and
Python holds the rows on screen and what is selected, never a list of every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..rank.hotspots import Hotspot
from ..util.paths import display
from .rowstore import HotspotStore, View, rules_where
from .selection import (
    Conflict,
    FolderSet,
    PutEstimate,
    Rules,
    Totals,
    Uploads,
    archived,
    monthly_cost,
    priced,
)


@dataclass(frozen=True)
class Column:
    """One table column: its id, header label, SQL sort key and natural sort direction."""

    id: str
    label: str
    sql: str
    descending: bool


COLUMNS: tuple[Column, ...] = (
    Column("folder", "Folder", "h.folder", False),
    Column("size", "Size", "h.bytes", True),
    Column("files", "Files", "h.files", True),
    Column("avg", "Avg file", "h.avg_file_bytes", True),
    Column("total", "Subtree", "h.total_bytes", True),
    Column("mtime", "Modified", "h.newest_mtime", False),  # oldest first
    Column("atime", "Accessed", "h.newest_atime", False),
    Column("owner", "Owner", "h.owner", False),
)
COLUMN_BY_ID = {c.id: c for c in COLUMNS}


@dataclass(frozen=True)
class SelectAllResult:
    added: int
    skipped: list[Conflict]


class Picked(NamedTuple):
    """What the totals need of a selected row, so unselecting it needs no look-up."""

    folder: bytes
    bytes: int
    files: int
    objects: int
    puts: int


class Rows(Sequence[Hotspot]):
    """``state.rows[i]``: row ``i`` of the hotspots file, fetched on demand (cached)."""

    def __init__(self, store: HotspotStore):
        self.store = store

    def __len__(self) -> int:
        return self.store.count

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.store.row(j) for j in range(*i.indices(self.store.count))]
        return self.store.row(i)


class Folders(Sequence[bytes]):
    """The names of every row for another thread (the readability checks): its own cursor,
    slices fetched in one query."""

    def __init__(self, store: HotspotStore):
        self.store = store
        self._con = store.con.cursor()

    def __len__(self) -> int:
        return self.store.count

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            start, stop, step = i.indices(self.store.count)
            got = self.store.folders(start, stop, self._con)
            return got[::step] if step != 1 else got
        if i < 0:
            i += self.store.count
        got = self.store.folders(i, i + 1, self._con)
        if not got:
            raise IndexError(i)
        return got[0]


class PickState:
    """Filter + sort + selection over the rows of a hotspots file."""

    def __init__(self, rows: HotspotStore | Iterable[Hotspot], *, recursive: bool, by: str,
                 now: float, storage_class: str, prices: Mapping[str, Any],
                 put_prices: Mapping[str, Any] | None = None, uploads: Uploads | None = None):
        """``rows``: a ``HotspotStore`` (the CLI opens the file as one) or rows in Python
        (tests), which are put in a store.  ``put_prices`` and ``uploads`` (config
        ``cost.put_per_1000``, the archive's upload settings) give the one-time PUT
        estimate; without them it is not shown."""
        self.store = rows if isinstance(rows, HotspotStore) else HotspotStore.from_rows(rows)
        self.rows = Rows(self.store)
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
        self.view: View = None  # type: ignore[assignment]  # set by refresh_view
        self.view_max = 0  # the largest size (by the ranked measure) shown: the bars' scale
        self.tree = False  # False: the flat ranked list; True: the children of ``tree_at``
        self.tree_at = -1  # the folder whose children the tree shows (-1: the top level)
        self._picked: dict[int, Picked] = {}
        self._guard = FolderSet(recursive)
        self._bytes = 0
        self._files = 0
        self.refresh_view()

    @property
    def selected(self):  # noqa: ANN201 - a set-like view of the selected row ids
        return self._picked.keys()

    def close(self) -> None:
        self.store.close()

    # -- view ---------------------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Recompute the shown rows from the rules, the sort order and (in the tree) the
        folder being looked into: one query, the rows themselves stay in DuckDB."""
        where, params = rules_where(self.rules, self.now)
        direction = "DESC" if self.sort_descending else "ASC"
        # ties in the file's order both ways, as Python's stable sort kept them
        old = self.view
        self.view = self.store.view(where, params, f"{self.sort_column.sql} {direction}",
                                    self.rules.by, self.tree_at if self.tree else None)
        if old is not None:
            old.close()
        self.view_max = self.view.max

    # -- the tree -----------------------------------------------------------------------------

    def parent(self, index: int) -> int:
        """The nearest listed ancestor's row index, or -1."""
        return self.store.tree_table().info(index)[0]

    def has_children(self, index: int) -> bool:
        return self.store.tree_table().info(index)[1] > 0

    def children(self, index: int) -> list[int]:
        """Rows whose nearest listed ancestor is ``index`` (-1: the top-level rows)."""
        return self.store.tree_table().children(index)

    def set_tree(self, on: bool) -> None:
        self.tree = on
        self.refresh_view()

    def enter(self, index: int) -> bool:
        """Look into a folder (tree mode); False when nothing is listed below it."""
        if not self.has_children(index):
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
        tree = self.store.tree_table()
        p, kids, key = tree.info(index)
        if p < 0:
            text = display(h.folder)
        else:
            base = tree.info(p)[2]
            text = display(key[len(base):].lstrip(b"/"))
        return text + ("/" if kids else "")

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
        return index in self._picked

    def select(self, index: int, row: Hotspot | None = None) -> Conflict | None:
        """Select one row unless it overlaps the selection (then nothing changes).
        ``row``: the row itself when the caller has it (select all walks the view)."""
        if index in self._picked:
            return None
        h = self.rows[index] if row is None else row
        found = self._guard.add(h.folder)
        if found:
            return found
        size, files = archived(h, self.recursive)
        objects, puts = (self.uploads.folder(h, self.recursive) if self.uploads is not None
                         else (0, 0))
        self._picked[index] = Picked(h.folder, size, files, objects, puts)
        self._bytes += size
        self._files += files
        self._objects += objects
        self._puts += puts
        return None

    def unselect(self, index: int) -> bool:
        p = self._picked.pop(index, None)
        if p is None:
            return False
        self._guard.discard(p.folder)
        self._bytes -= p.bytes
        self._files -= p.files
        self._objects -= p.objects
        self._puts -= p.puts
        return True

    def toggle(self, index: int) -> Conflict | None:
        if self.unselect(index):
            return None
        return self.select(index)

    def select_shown(self) -> SelectAllResult:
        """Select every shown row, in view order, skipping those that would overlap."""
        added = 0
        skipped: list[Conflict] = []
        for i, h in self.view.rows():
            if i in self._picked:
                continue
            found = self.select(i, h)
            if found:
                skipped.append(found)
            else:
                added += 1
        return SelectAllResult(added, skipped)

    def unselect_shown(self) -> int:
        return sum(1 for i in self.view.among(list(self._picked)) if self.unselect(i))

    def totals(self) -> Totals:
        return Totals(len(self._picked), self._bytes, self._files)

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
        return [self._picked[i].folder for i in sorted(self._picked)]
