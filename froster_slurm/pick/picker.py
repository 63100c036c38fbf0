"""The interactive picker: a keyboard-first Textual app over a hotspots file.

The app only draws ``PickState`` and turns keys into its operations.  Confirming writes the
selection file (so a write error is shown in the app and the person can fix it and retry,
without losing their picks) and exits with a ``PickResult``; quitting exits with None and
writes nothing.  Submitting to the archive stage is the CLI's job, after the app has exited.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import Footer, Static

from ..errors import UserError
from ..rank.hotspots import Hotspot
from ..util.paths import display
from ..util.units import format_size
from .access import AccessChecker
from .pickstate import COLUMNS, Folders, PickState
from .rowstore import HotspotStore
from .screens import ConfirmScreen, FilterInputs, FilterScreen, HelpScreen
from .selection import PutEstimate, Totals, Uploads, format_cost, is_readable, write_selection
from .table import FolderTable


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class PickResult:
    """What the person confirmed; the file at ``output`` already holds ``folders``."""

    folders: list[bytes]
    totals: Totals
    cost: float | None
    output: Path
    puts: PutEstimate | None = None


@dataclass(frozen=True)
class SubmitPlan:
    """Shown on the confirmation screen when ``pick --submit`` will hand the selection on."""

    remote: str


class PickTable(FolderTable):
    """The folder table plus the picker's keys (bound here so modal screens do not see them)."""

    BINDINGS = [
        Binding("space", "app.toggle", "Select"),
        Binding("a", "app.select_shown", "All"),
        Binding("u", "app.unselect_shown", "None"),
        Binding("slash", "app.filter('text')", "Filter"),
        Binding("o", "app.filter('owners')", "Owner", show=False),
        Binding("m", "app.filter('min_size')", "Min size", show=False),
        Binding("g", "app.filter('older_than')", "Min age", show=False),
        Binding("x", "app.clear_filters", "Clear filters", show=False),
        *[Binding(str(n), f"app.sort('{c.id}')", f"Sort {c.label}", show=False)
          for n, c in enumerate(COLUMNS, start=1)],
        Binding("t", "app.toggle_tree", "Tree/list"),
        Binding("enter,right,l", "app.tree_enter", "Open", show=False),
        Binding("backspace,left,h", "app.tree_up", "Up", show=False),
        Binding("c", "app.confirm", "Confirm"),
        Binding("q", "app.quit_picker", "Quit"),
        Binding("question_mark", "app.help", "Help"),
    ]


class PickApp(App[PickResult]):
    """Pick folders from hotspots rows; see HELP_TEXT in screens.py for the keys."""

    TITLE = "froster-slurm pick"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key; one less thing to learn
    CSS = """
    #status { height: 1; background: $primary; color: $foreground; padding: 0 1; }
    #current { height: 1; background: $panel; padding: 0 1; }
    #totals { height: 1; background: $secondary; color: $foreground; padding: 0 1;
              text-style: bold; }
    """
    # Ctrl-C quits exactly like q (same question when something is selected, exit code 1,
    # nothing written): Textual reads it as a key, so it never becomes a traceback.
    BINDINGS = [Binding("ctrl+q,ctrl+c", "quit_picker", "Quit", show=False, priority=True)]

    def __init__(self, rows: HotspotStore | Iterable[Hotspot], *, output: Path, recursive: bool,
                 by: str = "direct", storage_class: str, prices: Mapping[str, Any],
                 put_prices: Mapping[str, Any] | None = None, uploads: Uploads | None = None,
                 now: float | None = None, submit: SubmitPlan | None = None,
                 readable: Callable[[bytes], bool] | None = is_readable,
                 source: str = ""):
        """``rows``: the hotspots file opened as a ``HotspotStore`` (its rows stay in DuckDB),
        or rows in Python (tests); ``now`` fixes the clock for ages (tests, screenshots);
        ``readable=None`` skips the permission checks."""
        super().__init__()
        self.now = time.time() if now is None else now
        self.output = Path(output)
        self.submit = submit
        self.source = source
        self.state = PickState(rows, recursive=recursive, by=by, now=self.now,
                               storage_class=storage_class, prices=prices,
                               put_prices=put_prices, uploads=uploads)
        self.access = (AccessChecker(Folders(self.state.store), readable)
                       if readable is not None else None)
        self.filter_inputs = FilterInputs()
        self.quit_by_user = False  # tells "q" apart from a crash when the result is None
        self._quit_armed = False
        self._seen_generation = -1
        self._access_timer: Timer | None = None

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="status", markup=False)
        yield PickTable(self.state, self.now, self.access, id="table")
        yield Static("", id="current", markup=False)
        yield Static("", id="totals", markup=False)
        yield Footer()

    @property
    def table(self) -> PickTable:
        return self.query_one(PickTable)

    def on_mount(self) -> None:
        if self.access:
            # after the first frame: the pass over every row would compete with drawing it
            self.call_after_refresh(self.access.start)
            self._access_timer = self.set_interval(0.3, self._poll_access)
        self.table.focus()
        self._update_status()
        self._update_totals()

    def on_unmount(self) -> None:
        if self.access:
            self.access.stop()

    def _poll_access(self) -> None:
        """Repaint when the background checker learned something new; stop once it is done."""
        if not self.access:
            return
        finished = self.access.wait(0)  # read before generation: no answer is missed
        if self.access.generation != self._seen_generation:
            self._seen_generation = self.access.generation
            self.table.refresh()
            self._update_current()
            self._update_totals()
        if finished and self._access_timer:
            self._access_timer.stop()

    # -- status lines -------------------------------------------------------------------------

    def _update_status(self) -> None:
        s = self.state
        mode = "recursive (whole subtrees)" if s.recursive else "own files only"
        prefix = f"{self.source}: " if self.source else ""
        where = (f"tree: {s.where()} (backspace: up, t: list)" if s.tree
                 else "ranked list (t: tree)")
        self.query_one("#status", Static).update(
            f"{prefix}{_count(len(s.rows), 'folder')}, {len(s.view):,} shown | {where} | "
            f"filter: {s.rules.describe()} | {mode} | ? help")

    def _update_current(self) -> None:
        index = self.table.cursor_row
        if index is None:
            text = "no folder matches the filter (x clears it)"
        else:
            text = display(self.state.rows[index].folder)
            if self.access and self.access.get(index) is False:
                text += "   [not readable by you]"
        self.query_one("#current", Static).update(text)

    def _unreadable_selected(self) -> int:
        if not self.access:
            return 0
        get = self.access.get
        return sum(1 for i in self.state.selected if get(i) is False)

    def _update_totals(self) -> None:
        t = self.state.totals()
        text = (f"Selected: {_count(t.folders, 'folder')} | {format_size(t.bytes)} | "
                f"{_count(t.files, 'file')}"
                f" | {format_cost(self.state.cost(), self.state.storage_class)}")
        puts = self.state.puts()
        if puts is not None and t.folders:
            text += f" + {puts.short()} once"
        bad = self._unreadable_selected()
        if bad:
            text += f" | {bad:,} not readable!"
        self.query_one("#totals", Static).update(text)

    def on_folder_table_cursor_moved(self, _message: FolderTable.CursorMoved) -> None:
        self._quit_armed = False
        self._update_current()

    def _view_changed(self, keep: int | None = None) -> None:
        """Redraw after sort/filter, keeping the cursor on the same folder when still shown."""
        self.table.reload()
        if keep is not None:
            try:
                self.table.set_cursor(self.state.view.index(keep))
            except ValueError:
                pass
        self._update_status()

    # -- actions ------------------------------------------------------------------------------

    def action_toggle(self) -> None:
        index = self.table.cursor_row
        if index is None:
            return
        conflict = self.state.toggle(index)
        if conflict:
            self.notify(conflict.message(), title="Not selected", severity="warning",
                        markup=False, timeout=8)
            return
        if self.state.is_selected(index) and self.access and self.access.get(index) is False:
            self.notify(f"{display(self.state.rows[index].folder)} is not readable by you: "
                        "its archive task will fail unless permissions change",
                        severity="warning", markup=False)
        self._update_totals()
        self.table.action_move(1)
        self.table.refresh()

    def action_select_shown(self) -> None:
        result = self.state.select_shown()
        msg = f"selected {_count(result.added, 'more folder')}"
        if result.skipped:
            msg += (f"; skipped {len(result.skipped):,} that overlap the selection, e.g. "
                    f"{result.skipped[0].message()}")
        self.notify(msg, markup=False, severity="warning" if result.skipped else "information")
        self._update_totals()
        self.table.refresh()

    def action_unselect_shown(self) -> None:
        n = self.state.unselect_shown()
        self.notify(f"unselected {_count(n, 'folder')}", markup=False)
        self._update_totals()
        self.table.refresh()

    def action_sort(self, column_id: str) -> None:
        keep = self.table.cursor_row
        self.state.sort_by(column_id)
        self._view_changed(keep)

    def _apply_filter(self, values: FilterInputs) -> None:
        keep = self.table.cursor_row
        self.filter_inputs = values
        self.state.set_rules(values.to_rules(self.state.rules.by))
        self._view_changed(keep)

    def action_filter(self, field: str) -> None:
        """The form filters the table as you type; enter keeps it, escape puts back the
        filters that were there before."""
        before = self.filter_inputs

        def done(values: FilterInputs | None) -> None:
            self._apply_filter(before if values is None else values)

        self.push_screen(FilterScreen(self.filter_inputs, self.state.rules.by, field,
                                      on_change=self._apply_filter), done)

    # -- the tree -----------------------------------------------------------------------------

    def action_toggle_tree(self) -> None:
        keep = self.table.cursor_row
        self.state.set_tree(not self.state.tree)
        if self.state.tree and keep is not None and keep not in self.state.view:
            # open the tree where the cursor's folder is, so it stays in sight
            self.state.tree_at = self.state.parent(keep)
            self.state.refresh_view()
        self._view_changed(keep)

    def action_tree_enter(self) -> None:
        index = self.table.cursor_row
        if index is None:
            return
        if self.state.enter(index):
            self.table.set_cursor(0)
            self._view_changed()
        elif not self.state.tree:  # a folder with nothing below: show it among its siblings
            self.state.tree_at = self.state.parent(index)
            self.state.set_tree(True)
            self._view_changed(index)
        else:
            self.notify("no listed folder below this one", markup=False, timeout=3)

    def action_tree_up(self) -> None:
        if not self.state.tree:
            return
        came_from = self.state.up()
        if came_from is not None:
            self._view_changed(came_from)

    def action_clear_filters(self) -> None:
        keep = self.table.cursor_row
        self.filter_inputs = FilterInputs()
        self.state.set_rules(self.filter_inputs.to_rules(self.state.rules.by))
        self._view_changed(keep)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_quit_picker(self) -> None:
        n = len(self.state.selected)
        if n and not self._quit_armed:
            self._quit_armed = True
            self.notify(f"press q again to quit without writing ({n:,} selected folders "
                        "would be lost); c confirms", severity="warning", markup=False)
            return
        self.quit_by_user = True
        self.exit(None, return_code=1)

    def action_confirm(self) -> None:
        t = self.state.totals()
        if not t.folders:
            self.notify("nothing is selected yet (space selects a row)", severity="warning")
            return
        self.push_screen(ConfirmScreen(*self._confirm_text(t)), self._confirmed)

    def _confirm_text(self, t: Totals) -> tuple[str, list[str], list[str]]:
        s = self.state
        scope = "whole subtrees (recursive)" if s.recursive else "own files only (not recursive)"
        out = display(str(self.output.absolute()))
        if self.output.exists():
            out += "  (replaces the existing file)"
        lines = [
            f"folders:         {t.folders:,}",
            f"size:            {format_size(t.bytes)} in {t.files:,} files, {scope}",
            f"storage class:   {s.storage_class}",
            f"estimated cost:  {format_cost(s.cost(), s.storage_class)}",
        ]
        puts = s.puts()
        if puts is not None:
            lines.append(f"upload requests: {puts.text()}")
        if self.submit:
            title = "Submit these folders for archiving?"
            lines.insert(0, f"remote:          {display(self.submit.remote)}")
        else:
            title = "Write this selection?"
        lines.append(f"selection file:  {out}")
        warnings = []
        bad = self._unreadable_selected()
        if bad:
            warnings.append(f"{bad:,} selected folders are not readable by you: their "
                            "archive tasks will fail")
        return title, lines, warnings

    def _confirmed(self, yes: bool | None) -> None:
        if not yes:
            return
        folders = self.state.chosen_folders()
        try:
            write_selection(self.output, folders)
        except UserError as e:
            self.notify(f"{e}; nothing written, your selection is kept", title="Write failed",
                        severity="error", markup=False, timeout=15)
            return
        self.exit(PickResult(folders=folders, totals=self.state.totals(),
                             cost=self.state.cost(), output=self.output,
                             puts=self.state.puts()))
