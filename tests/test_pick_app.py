"""The Textual picker, driven headless by Textual's pilot: keys in, selection file out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pick_testdata import CAFE, NOW, PRICES, TiB, drive, sample_rows

from froster_slurm.pick.picker import PickApp, SubmitPlan
from froster_slurm.pick.screens import ConfirmScreen, FilterScreen, HelpScreen
from froster_slurm.util.paths import read_folder_list


def make_app(tmp_path: Path, *, recursive: bool = True, readable=None, submit=None,
             rows=None) -> PickApp:
    return PickApp(sample_rows() if rows is None else rows, output=tmp_path / "sel",
                   recursive=recursive, by="direct", storage_class="DEEP_ARCHIVE",
                   prices=PRICES, now=NOW, readable=readable, submit=submit)


def shown(app: PickApp) -> list[bytes]:
    return [app.state.rows[i].folder for i in app.state.view]


def row_text(app: PickApp, position: int) -> str:
    """The table line drawn for view position ``position`` (what a person sees)."""
    return app.table.render_line(position - round(app.table.scroll_y) + 1).text


def notes(app: PickApp) -> list[str]:
    return [n.message for n in app._notifications]


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await pilot.pause()


def test_sort_keys_reorder_rows_and_header(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        assert shown(app)[0] == b"/data/lab/a"  # default: size, largest first
        assert "Size ▼" in app.table.render_line(0).text
        await press(pilot, "2")  # same column again: smallest first
        assert shown(app)[0] == b"/data/lab/new"
        assert app.state.rows[app.table.cursor_row].folder == b"/data/lab/a"  # cursor follows
        assert "Size ▲" in app.table.render_line(0).text
        await press(pilot, "8")  # owner A..Z
        assert [app.state.rows[i].owner for i in app.state.view] == [
            "alice", "alice", "alice", "bob", "carol"]
        await press(pilot, "6")  # modified: oldest first, so the recent folder is last
        assert shown(app)[-1] == b"/data/lab/new"
        await press(pilot, "1")
        assert shown(app) == sorted(shown(app))
        assert "/data/lab/a " in row_text(app, 0)

    drive(app, script)


def test_filter_by_text_owner_size_and_age(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "slash")
        assert isinstance(app.screen, FilterScreen)
        await press(pilot, *"caf", "enter")
        assert shown(app) == [CAFE]
        assert "caf\\xe9" in row_text(app, 0)  # shown escaped
        assert "1 shown" in str(app.query_one("#status").render())
        await press(pilot, "x")  # clear
        assert len(shown(app)) == 5
        await press(pilot, "o", *"alice", "enter")
        assert set(shown(app)) == {b"/data/lab/a", b"/data/lab/a/sub", b"/data/other/[bold]x"}
        await press(pilot, "m", *"1TiB", "enter")  # the owner filter stays
        assert shown(app) == [b"/data/lab/a", b"/data/lab/a/sub"]
        await press(pilot, "x", "g", *"30d", "enter")
        assert b"/data/lab/new" not in shown(app) and len(shown(app)) == 4

    drive(app, script)


def test_bad_filter_value_keeps_the_form_open_with_a_message(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "m", *"lots", "enter")
        assert isinstance(app.screen, FilterScreen)
        assert "not a size" in str(app.screen.query_one("#error").render())
        await press(pilot, "escape")
        assert not isinstance(app.screen, FilterScreen)
        assert len(shown(app)) == 5

    drive(app, script)


def test_select_non_utf8_folder_and_confirm_writes_exact_bytes(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "slash", *"caf", "enter", "space")
        assert "*" in row_text(app, 0)[:2]
        await press(pilot, "x")  # clearing the filter keeps the cursor on the same folder
        assert app.state.rows[app.table.cursor_row].folder == CAFE
        await press(pilot, "home", "down", "space")  # /data/lab/a/sub (row 1 by size)
        totals = str(app.query_one("#totals").render())
        assert "2 folders" in totals and "~$" in totals and "DEEP_ARCHIVE" in totals
        await press(pilot, "c")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "y")

    drive(app, script)
    assert app.return_code == 0
    assert app.return_value.folders == [b"/data/lab/a/sub", CAFE]  # hotspots file order
    assert (tmp_path / "sel").read_bytes() == b"/data/lab/a/sub\0" + CAFE + b"\0"
    assert read_folder_list(tmp_path / "sel") == [b"/data/lab/a/sub", CAFE]


def test_space_toggles_and_unselects(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "space", "up", "space")
        assert app.state.selected == set()
        assert "Selected: 0 folders" in str(app.query_one("#totals").render())

    drive(app, script)


def test_ancestor_conflict_is_refused_with_a_notification(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "space")  # /data/lab/a; cursor moves to /data/lab/a/sub
        await press(pilot, "space")
        assert app.state.chosen_folders() == [b"/data/lab/a"]
        assert any("/data/lab/a/sub is inside /data/lab/a" in n for n in notes(app))
        await press(pilot, "home", "space", "space", "home", "space")
        # a unselected, sub selected: now selecting a names sub as the conflict
        assert app.state.chosen_folders() == [b"/data/lab/a/sub"]
        assert any("/data/lab/a contains /data/lab/a/sub" in n for n in notes(app))

    drive(app, script)


def test_non_recursive_mode_allows_nested_folders(tmp_path):
    app = make_app(tmp_path, recursive=False)

    async def script(pilot):
        await press(pilot, "space", "space")
        assert app.state.chosen_folders() == [b"/data/lab/a", b"/data/lab/a/sub"]
        assert app.state.totals().bytes == 7 * TiB  # own files, not subtrees

    drive(app, script)


def test_select_all_shown_skips_overlaps_and_unselect_all(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "a")
        assert len(app.state.selected) == 4
        assert any("skipped 1" in n and "/data/lab/a/sub" in n for n in notes(app))
        await press(pilot, "u")
        assert not app.state.selected

    drive(app, script)


def test_quit_writes_nothing(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "q")

    drive(app, script)
    assert app.return_value is None and app.return_code != 0
    assert not (tmp_path / "sel").exists()


def test_quit_with_a_selection_asks_twice(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "space", "q")
        assert app.is_running
        assert any("press q again" in n for n in notes(app))
        await press(pilot, "q")

    drive(app, script)
    assert app.return_value is None and not (tmp_path / "sel").exists()


def test_confirm_needs_a_selection_and_escape_goes_back(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "c")
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("nothing is selected" in n for n in notes(app))
        await press(pilot, "space", "c", "escape")
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        await press(pilot, "q", "q")

    drive(app, script)
    assert not (tmp_path / "sel").exists()


def test_write_failure_keeps_the_app_and_the_selection(tmp_path):
    app = PickApp(sample_rows(), output=tmp_path / "gone" / "sel", recursive=True,
                  storage_class="DEEP_ARCHIVE", prices=PRICES, now=NOW, readable=None)

    async def script(pilot):
        await press(pilot, "space", "c", "y")
        assert app.is_running
        assert any("cannot write" in n and "selection is kept" in n for n in notes(app))
        assert app.state.chosen_folders() == [b"/data/lab/a"]
        (tmp_path / "gone").mkdir()
        await press(pilot, "c", "y")

    drive(app, script)
    assert read_folder_list(tmp_path / "gone" / "sel") == [b"/data/lab/a"]


def test_unreadable_folders_are_marked(tmp_path):
    app = make_app(tmp_path, readable=lambda folder: b"other" not in folder)

    async def script(pilot):
        assert await asyncio.to_thread(app.access.wait, 10)
        app._poll_access()
        await pilot.pause()
        pos = shown(app).index(b"/data/other/[bold]x")
        assert row_text(app, pos)[1] == "!"
        assert row_text(app, 0)[1] == " "
        await press(pilot, *["down"] * pos)
        assert "not readable by you" in str(app.query_one("#current").render())
        await press(pilot, "space")
        assert "1 not readable" in str(app.query_one("#totals").render())
        assert any("its archive task will fail" in n for n in notes(app))

    drive(app, script)


def test_submit_confirmation_shows_remote_class_and_cost(tmp_path):
    app = make_app(tmp_path, submit=SubmitPlan("s3:cold/lab"))

    async def script(pilot):
        await press(pilot, "space", "c")
        text = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        assert "Submit these folders for archiving?" in text
        for part in ("s3:cold/lab", "DEEP_ARCHIVE", "~$7.62/month", "folders:         1",
                     "7.0 TiB"):
            assert part in text
        await press(pilot, "y")

    drive(app, script)
    assert app.return_value.output == tmp_path / "sel"


def test_help_opens_and_closes(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "space")  # the table's keys do not leak through the help
        assert not app.state.selected
        await press(pilot, "escape")
        assert not isinstance(app.screen, HelpScreen)

    drive(app, script)


def test_cursor_follows_page_down_over_many_rows(tmp_path):
    from pick_testdata import hs

    rows = [hs(b"/bulk/%05d" % i, 10**6 + i) for i in range(2000)]
    app = make_app(tmp_path, rows=rows)

    async def script(pilot):
        await press(pilot, "pagedown", "pagedown")
        assert app.table.cursor > 20
        assert app.table.scroll_y > 0
        await press(pilot, "end", "space")
        assert app.state.chosen_folders() == [b"/bulk/00000"]  # smallest is last
        assert row_text(app, len(rows) - 1).startswith("*")

    drive(app, script)
