"""Modal screens of the picker: help, filters, and the final confirmation.

Every text that may hold a folder name is shown with markup off: a name like ``[bold]x`` must
appear as typed, not be interpreted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from ..errors import UserError
from ..util.units import parse_age, parse_size
from .selection import Rules

HELP_TEXT = """\
froster-slurm pick: choose the folders to archive

Moving         up/down or k/j, page up/down, home/end (the mouse works too)
Selecting      space      select / unselect the row under the cursor (then move down)
               a          select every shown row (skips rows that would overlap)
               u          unselect every shown row
Sorting        1 Folder  2 Size  3 Files  4 Avg file  5 Subtree  6 Modified
               7 Accessed  8 Owner       (the same key again reverses the order)
Filtering      /  path text    o  owner(s), comma-separated
               m  minimum size (e.g. 500GiB)    g  minimum age (e.g. 180d, 2y)
               x  clear every filter
               (enter applies, escape cancels, tab moves between the fields)
               (the table follows as you type; escape puts the old filters back)
Tree           t  switch between the ranked list and the folder tree
               enter / right  go into the folder (from the list: show it in the tree)
               backspace / left  back to the parent folder
Finishing      c  confirm: write the selection (or submit it) and exit
               q  quit without writing anything (twice if something is selected);
                  ctrl-c does the same; both exit with code 1

Marks          *  selected      !  you cannot read this folder: archiving it would fail
Share          the folder's size against the largest one shown
Size is the folder's own files; Subtree includes every folder below it.  The footer sums
what will be archived: subtrees in recursive mode, own files otherwise.  In recursive mode a
folder and a folder inside it cannot both be selected (it would be archived twice).
Age filters use the newest of modification and access time, and never keep a folder with
no files of its own (no files in its subtree when ranked by subtree).

Press escape, q or ? to close this help."""


class HelpScreen(ModalScreen[None]):
    """Key reference; any of escape / q / ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static {
        width: auto; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; padding: 0 1; background: $surface;
    }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield Static(HELP_TEXT, markup=False)


@dataclass(frozen=True)
class FilterInputs:
    """What the person typed in the filter form, kept so the form reopens as they left it."""

    text: str = ""
    owners: str = ""
    min_size: str = ""
    older_than: str = ""

    def to_rules(self, by: str) -> Rules:
        """Parse into Rules; a bad size or age raises UserError naming the field."""
        owners = frozenset(o.strip() for o in self.owners.split(",") if o.strip())
        try:
            min_size = parse_size(self.min_size) if self.min_size.strip() else 0
        except UserError as e:
            raise UserError(f"minimum size: {e}") from e
        try:
            older = parse_age(self.older_than) if self.older_than.strip() else 0
        except UserError as e:
            raise UserError(f"minimum age: {e}") from e
        return Rules(min_size=min_size, older_than=older, owners=owners, text=self.text,
                     by=by)


class FilterScreen(ModalScreen[FilterInputs | None]):
    """Four fields; enter in any of them applies all four, escape cancels."""

    DEFAULT_CSS = """
    FilterScreen { align: center middle; }
    FilterScreen > Vertical {
        width: 70; height: auto; border: round $primary; background: $surface; padding: 0 1;
    }
    FilterScreen Grid { grid-size: 2; grid-columns: 20 1fr; height: auto; grid-rows: 3; }
    FilterScreen Label { padding: 1 0 0 0; }
    FilterScreen #error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    FIELDS = (("text", "Path contains"), ("owners", "Owner(s)"),
              ("min_size", "Minimum size"), ("older_than", "Unused for at least"))

    def __init__(self, current: FilterInputs, by: str, focus: str = "text",
                 on_change: Callable[[FilterInputs], None] | None = None):
        """``on_change`` gets every valid state of the form while it is typed in."""
        super().__init__()
        self.current = current
        self.by = by
        self.focus_field = focus
        self.on_change = on_change

    def compose(self) -> ComposeResult:
        placeholders = {"text": "part of the path", "owners": "alice,bob",
                        "min_size": f"500GiB ({self.by} size)", "older_than": "180d, 2y"}
        with Vertical():
            yield Label("Filter the table (empty field: no filter)")
            with Grid():
                for name, label in self.FIELDS:
                    yield Label(label)
                    yield Input(getattr(self.current, name), placeholder=placeholders[name],
                                id=name)
            yield Static("", id="error", markup=False)
            yield Label("enter: apply   escape: cancel   tab: next field")

    def on_mount(self) -> None:
        self.query_one(f"#{self.focus_field}", Input).focus()

    def _values(self) -> FilterInputs | None:
        """The form as typed, or None (and the reason shown) when a field does not parse."""
        values = FilterInputs(**{name: self.query_one(f"#{name}", Input).value
                                 for name, _ in self.FIELDS})
        try:
            values.to_rules(self.by)
        except UserError as e:
            self.query_one("#error", Static).update(str(e))
            return None
        self.query_one("#error", Static).update("")
        return values

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.on_change is None or not self.is_mounted:
            return
        values = self._values()
        if values is not None and values != self.current:
            self.current = values
            self.on_change(values)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        values = self._values()
        if values is not None:
            self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Shows exactly what will be written (and submitted) before anything happens."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 100; max-width: 100%; height: auto; border: round $warning;
        background: $surface; padding: 0 1;
    }
    ConfirmScreen .title { text-style: bold; }
    ConfirmScreen .warn { color: $error; }
    """
    BINDINGS = [
        Binding("y,enter", "answer(True)", "Confirm"),
        Binding("n,escape", "answer(False)", "Back"),
    ]

    def __init__(self, title: str, lines: list[str], warnings: list[str]):
        super().__init__()
        self.title_text = title
        self.lines = lines
        self.warnings = warnings

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="title", markup=False)
            yield Static("\n".join(self.lines), markup=False)
            for w in self.warnings:
                yield Static(w, classes="warn", markup=False)
            yield Static("\ny / enter: confirm      n / escape: back to the table", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
