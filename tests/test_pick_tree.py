"""The picker drills down: the tree beside the ranked list, the size bar, filters that apply
as you type, Ctrl-C quitting like q, and the age filter's empty folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pick_testdata import NOW, PRICES, TiB, drive, hs, sample_rows, write_sample

from froster_slurm.pick.picker import PickApp
from froster_slurm.pick.screens import FilterScreen
from froster_slurm.pick.selection import Rules, filter_rows
from froster_slurm.pick.table import size_bar


def make_app(tmp_path: Path, rows=None) -> PickApp:
    return PickApp(sample_rows() if rows is None else rows, output=tmp_path / "sel",
                   recursive=True, by="direct", storage_class="DEEP_ARCHIVE", prices=PRICES,
                   now=NOW, readable=None)


def shown(app: PickApp) -> list[bytes]:
    return [app.state.rows[i].folder for i in app.state.view]


def status(app: PickApp) -> str:
    return str(app.query_one("#status").render())


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await pilot.pause()


def tree_rows():
    return [*sample_rows(), hs(b"/data/lab/a/sub/deep", 1 * TiB, files=4),
            hs(b"/data/lab/a/sub/deeper/x", 10**12, files=2)]


def test_tree_enters_a_folder_and_goes_back_to_its_parent(tmp_path):
    app = make_app(tmp_path, tree_rows())

    async def script(pilot):
        assert "ranked list" in status(app)
        await press(pilot, "t")
        # top level: the folders with no listed ancestor, largest first
        assert shown(app) == [b"/data/lab/a", b"/data/other/[bold]x", b"/data/lab/caf\xe9",
                              b"/data/lab/new"]
        assert "tree: top level" in status(app)
        app.table.set_cursor(0)
        await press(pilot, "enter")
        assert shown(app) == [b"/data/lab/a/sub"]
        assert "tree: /data/lab/a " in status(app)
        assert "sub/" in app.table.render_line(1).text  # has children: a trailing /
        await press(pilot, "right")
        assert shown(app) == [b"/data/lab/a/sub/deep", b"/data/lab/a/sub/deeper/x"]
        assert "deeper/x" in app.table.render_line(2).text  # an unlisted level kept in the name
        await press(pilot, "enter")  # nothing below: stays, says so
        assert shown(app) == [b"/data/lab/a/sub/deep", b"/data/lab/a/sub/deeper/x"]
        await press(pilot, "backspace")
        assert shown(app) == [b"/data/lab/a/sub"]
        assert app.state.rows[app.table.cursor_row].folder == b"/data/lab/a/sub"
        await press(pilot, "left", "left")
        assert "tree: top level" in status(app)
        assert app.state.rows[app.table.cursor_row].folder == b"/data/lab/a"  # came from
        # select in the tree, then back to the flat list: the selection is the same
        await press(pilot, "space", "t")
        assert "ranked list" in status(app) and len(shown(app)) == 7
        assert app.state.totals().folders == 1

    drive(app, script)


def test_enter_in_the_ranked_list_opens_the_tree_there(tmp_path):
    app = make_app(tmp_path, tree_rows())

    async def script(pilot):
        app.table.set_cursor(shown(app).index(b"/data/lab/a/sub/deep"))
        await press(pilot, "enter")  # nothing below it: shown among its siblings
        assert app.state.tree and "tree: /data/lab/a/sub " in status(app)
        assert app.state.rows[app.table.cursor_row].folder == b"/data/lab/a/sub/deep"

    drive(app, script)


def test_size_bar_column():
    assert size_bar(10, 10, 10) == "█" * 10
    assert size_bar(5, 10, 10) == "█" * 5 + " " * 5
    assert size_bar(1, 1000, 10) == "▏" + " " * 9  # tiny but not zero: one eighth
    assert size_bar(0, 10, 4) == "    " and size_bar(3, 0, 4) == "    "


def test_bar_is_drawn_against_the_largest_shown(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        header = app.table.render_line(0).text
        assert "Share" in header
        assert "██████████" in app.table.render_line(1).text  # the largest: a full bar
        assert "█████" not in app.table.render_line(5).text

    drive(app, script)


def test_filters_apply_as_you_type_and_escape_restores(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "slash", "c", "a")
        assert isinstance(app.screen, FilterScreen)  # still typing
        assert shown(app) == [b"/data/lab/caf\xe9"]  # ...and the table already follows
        await press(pilot, "backspace", "backspace")
        assert len(shown(app)) == 5
        await press(pilot, *"new", "escape")
        assert len(shown(app)) == 5 and app.filter_inputs.text == ""  # cancelled: as before
        await press(pilot, "m", *"1T")
        assert len(shown(app)) == 2
        await press(pilot, "i")  # "1Ti": not a size yet: the last good filter stays
        assert len(shown(app)) == 2 and "not a size" in str(
            app.screen.query_one("#error").render())
        await press(pilot, "B", "enter")
        assert not isinstance(app.screen, FilterScreen) and len(shown(app)) == 2

    drive(app, script)


def test_ctrl_c_quits_like_q(tmp_path):
    app = make_app(tmp_path)

    async def script(pilot):
        await press(pilot, "space", "ctrl+c")
        assert app.is_running  # something is selected: asks first, like q
        await press(pilot, "ctrl+c")

    drive(app, script)
    assert app.return_code == 1 and app.quit_by_user and not (tmp_path / "sel").exists()


def test_age_filter_never_keeps_folders_without_files_of_their_own():
    old = 3000
    rows = [hs(b"/d/empty", 0, files=1, mtime_days=old, atime_days=old),
            hs(b"/d/old", 10, files=1, mtime_days=old, atime_days=old)]
    empty = rows[0]
    rows[0] = type(empty)(**{**empty.__dict__, "files": 0, "newest_mtime": 0,
                             "newest_atime": 0, "avg_file_bytes": 0})
    kept = filter_rows(rows, Rules(older_than=365 * 86400), NOW)
    assert [h.folder for h in kept] == [b"/d/old"]
    assert len(filter_rows(rows, Rules(), NOW)) == 2  # without an age rule it is listed


def test_ctrl_c_in_a_real_terminal_exits_1_and_writes_nothing(tmp_path):
    hot = write_sample(tmp_path / "hot.csv")
    sock = f"froster-test-{uuid.uuid4().hex[:8]}"
    env = [f"{k}={v}" for k, v in os.environ.items()
           if k in ("XDG_CONFIG_HOME", "FROSTER_SLURM_SITE_CONFIG", "FROSTER_SLURM_STATE_DIR")]
    cmd = ["env", *env, "TERM=xterm-256color", f"PYTHONPATH={Path.cwd()}", sys.executable,
           "-m", "froster_slurm", "pick", str(hot), "-o", str(tmp_path / "sel")]
    shell = " ".join(f"'{c}'" for c in cmd) + "; echo EXIT=$?; sleep 120"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                              check=True).stdout

    tmux("new-session", "-d", "-s", "p", "-x", "140", "-y", "30", shell)
    try:
        deadline = time.monotonic() + 60
        while "Folder" not in (screen := tmux("capture-pane", "-p", "-t", "p")):
            assert time.monotonic() < deadline, screen
            time.sleep(0.3)
        (tmp_path / "pick-screen.txt").write_text(screen)
        tmux("send-keys", "-t", "p", "C-c")
        while "EXIT=" not in (screen := tmux("capture-pane", "-p", "-t", "p")):
            assert time.monotonic() < deadline, screen
            time.sleep(0.3)
        assert "EXIT=1" in screen and "quit without confirming" in screen
        assert "Traceback" not in screen and not (tmp_path / "sel").exists()
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
