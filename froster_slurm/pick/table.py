"""The folder table: a virtual (Line API) widget that draws only the rows on screen.

Textual's DataTable builds an object per row and measures every cell: with 100k rows it took
1.6 s to add them and 13 s before the first frame on the project's 2-core machines.  This widget
keeps no per-row objects: ``render_line`` formats the ~40 visible rows from the model on demand
(which fetches them from DuckDB a page at a time: ``rowstore``), so drawing and scrolling cost
the same for 100 rows or 5M.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..rank.hotspots import Hotspot
from ..util.paths import display
from ..util.units import format_age, format_size
from .access import AccessChecker
from .pickstate import COLUMNS, PickState
from .selection import size_of

# Fixed column widths; the folder column takes what is left.  When the terminal is narrow the
# least useful columns go first, so the path stays readable over a small SSH window.
_WIDTH = {"size": 10, "bar": 10, "files": 9, "avg": 10, "total": 10, "mtime": 14,
          "atime": 14, "owner": 10}
_DROP_ORDER = ("atime", "avg", "files", "bar", "total", "mtime", "owner")
_EIGHTHS = " ▏▎▍▌▋▊▉"


def size_bar(value: int, peak: int, width: int) -> str:
    """``value`` against the largest shown, in eighths of a cell (like ncdu's bars)."""
    if peak <= 0 or value <= 0:
        return " " * width
    eighths = max(1, round(width * 8 * min(1.0, value / peak)))
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part else "")
    return text + " " * (width - len(text))
_MIN_FOLDER = 28
_MARK = 2
_RIGHT = {"size", "files", "avg", "total"}
_GAP = {"mtime": 2}  # the first left-aligned column after the numbers gets a wider gap


def _fit_left(text: str, width: int) -> str:
    """Pad or cut ``text`` to ``width`` cells, keeping its END (the folder's own name)."""
    n = cell_len(text)
    if n <= width:
        return text + " " * (width - n)
    out, used = [], 1
    for ch in reversed(text):
        w = cell_len(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "…" + "".join(reversed(out)) + " " * (width - used)


def _fit(text: str, width: int, right: bool) -> str:
    n = cell_len(text)
    if n > width:
        return set_cell_size(text, max(0, width - 1)) + "…"
    pad = " " * (width - n)
    return pad + text if right else text + pad


def _age(now: float, t: int) -> str:
    return format_age(now - t) if t > 0 else "-"


class FolderTable(ScrollView, can_focus=True):
    """Rows of a ``PickState`` view with a cursor; the app owns selection and filters."""

    COMPONENT_CLASSES = {
        "folder-table--header",
        "folder-table--cursor",
        "folder-table--selected",
        "folder-table--unreadable",
    }
    DEFAULT_CSS = """
    FolderTable {
        height: 1fr;
        overflow-x: hidden;
        background: $surface;
        & > .folder-table--header { text-style: bold; background: $panel; }
        & > .folder-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
        }
        & > .folder-table--selected { color: $success; text-style: bold; }
        & > .folder-table--unreadable { color: $error; }
    }
    """
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    class CursorMoved(Message):
        """Posted when the cursor lands on another row (the app shows its full path)."""

    def __init__(self, state: PickState, now: float, access: AccessChecker | None = None,
                 *, id: str | None = None):
        super().__init__(id=id)
        self.state = state
        self.now = now
        self.access = access
        self.cursor = 0

    # -- geometry -----------------------------------------------------------------------------

    @property
    def _width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    @property
    def _rows_on_screen(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # minus the header line

    def _layout(self) -> list[tuple[str, int]]:
        """(column id, width) for the columns that fit, folder first."""
        shown = [c.id for c in COLUMNS if c.id != "folder"]
        shown.insert(shown.index("size") + 1, "bar")
        fixed = _MARK + sum(_WIDTH[c] + _GAP.get(c, 1) for c in shown)
        for drop in _DROP_ORDER:
            if self._width - fixed >= _MIN_FOLDER:
                break
            shown.remove(drop)
            fixed -= _WIDTH[drop] + _GAP.get(drop, 1)
        return [("folder", max(8, self._width - fixed))] + [(c, _WIDTH[c]) for c in shown]

    def reload(self) -> None:
        """Call after the view changed (sort, filter): re-size and repaint."""
        self.cursor = min(self.cursor, max(0, len(self.state.view) - 1))
        self.virtual_size = Size(self._width, len(self.state.view) + 1)
        self._keep_cursor_visible()
        self.refresh()
        self.post_message(self.CursorMoved())

    def on_resize(self) -> None:
        self.reload()

    # -- cursor -------------------------------------------------------------------------------

    @property
    def cursor_row(self) -> int | None:
        """Row index (in the hotspots file) under the cursor, or None if nothing is shown."""
        view = self.state.view
        return view[self.cursor] if view else None

    def set_cursor(self, position: int) -> None:
        n = len(self.state.view)
        position = max(0, min(position, n - 1)) if n else 0
        if position != self.cursor:
            self.cursor = position
            self.post_message(self.CursorMoved())
        self._keep_cursor_visible()
        self.refresh()

    def _keep_cursor_visible(self) -> None:
        top = round(self.scroll_y)
        height = self._rows_on_screen
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_move(self, delta: int) -> None:
        self.set_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.set_cursor(self.cursor + direction * self._rows_on_screen)

    def action_jump(self, position: int) -> None:
        self.set_cursor(len(self.state.view) - 1 if position < 0 else position)

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y > 0:
            self.set_cursor(round(self.scroll_y) + offset.y - 1)

    # -- drawing ------------------------------------------------------------------------------

    def _header(self, layout: list[tuple[str, int]]) -> Strip:
        style = self.get_component_rich_style("folder-table--header")
        state = self.state
        arrow = " ▼" if state.sort_descending else " ▲"
        labels = {c.id: c.label + (arrow if c is state.sort_column else "") for c in COLUMNS}
        labels["bar"] = "Share"
        cells = [_fit(labels[cid], width, cid in _RIGHT) for cid, width in layout]
        text = " " * _MARK + self._join(cells, layout)
        return Strip([Segment(text, style)]).adjust_cell_length(self.size.width, style)

    @staticmethod
    def _join(cells: list[str], layout: list[tuple[str, int]]) -> str:
        parts = [cells[0]]
        for cell, (cid, _) in zip(cells[1:], layout[1:], strict=True):
            parts.append(" " * _GAP.get(cid, 1) + cell)
        return "".join(parts)

    def _cells(self, h: Hotspot, label: str, layout: list[tuple[str, int]]) -> list[str]:
        now = self.now
        values = {
            "size": lambda: format_size(h.bytes),
            "files": lambda: f"{h.files:,}",
            "avg": lambda: format_size(h.avg_file_bytes),
            "total": lambda: format_size(h.total_bytes),
            "mtime": lambda: _age(now, h.newest_mtime),
            "atime": lambda: _age(now, h.newest_atime),
            "owner": lambda: display(h.owner),  # names may hold undecodable bytes
        }
        cells = []
        for cid, width in layout:
            if cid == "folder":
                cells.append(_fit_left(label, width))
            elif cid == "bar":
                cells.append(size_bar(size_of(h, self.state.rules.by), self.state.view_max,
                                      width))
            else:
                cells.append(_fit(values[cid](), width, cid in _RIGHT))
        return cells

    def render_line(self, y: int) -> Strip:
        layout = self._layout()
        if y == 0:
            return self._header(layout)
        base = self.rich_style
        position = round(self.scroll_y) + y - 1
        view = self.state.view
        if position >= len(view):
            return Strip.blank(self.size.width, base)
        index = view[position]
        readable = self.access.get(index) if self.access else True
        if readable is None and self.access:
            self.access.prioritize((index,))
        selected = self.state.is_selected(index)
        style = base
        if selected:
            style += self.get_component_rich_style("folder-table--selected", partial=True)
        if readable is False:
            style += self.get_component_rich_style("folder-table--unreadable", partial=True)
        if position == self.cursor:
            style += self.get_component_rich_style("folder-table--cursor", partial=True)
        mark = ("*" if selected else " ") + ("!" if readable is False else " ")
        text = mark + self._join(self._cells(self.state.rows[index], self.state.label(index),
                                             layout), layout)
        return Strip([Segment(text, style)]).adjust_cell_length(self.size.width, base)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.refresh()
