"""`select` and the terminal-less paths of `pick`, through froster_slurm.cli.main."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from pick_testdata import CAFE, drive, hs, write_sample

from froster_slurm.cli import main, pick_cmd
from froster_slurm.util.paths import read_folder_list

REPO = Path(__file__).resolve().parent.parent


def rclone_remote(tmp_path: Path, monkeypatch, name: str) -> str:
    """A configured rclone remote NAME (an alias of a local folder): `pick --submit` checks
    the destination before the picker starts."""
    conf = tmp_path / "rclone.conf"
    (tmp_path / f"remote-{name}").mkdir()
    conf.write_text(f"[{name}]\ntype = alias\nremote = {tmp_path / f'remote-{name}'}\n")
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RCLONE_CONFIG", str(conf))
    return name


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# --- select -----------------------------------------------------------------------------------

def test_select_writes_exact_bytes_and_summary(tmp_path, capsys):
    hot = write_sample(tmp_path / "hot.csv")
    sel = tmp_path / "sel"
    code, out, err = run(capsys, "select", str(hot), "--recursive", "-o", str(sel))
    assert code == 0, err
    assert read_folder_list(sel) == [b"/data/lab/a", b"/data/other/[bold]x", CAFE,
                                     b"/data/lab/new"]
    assert "selected 4 of 5 folders" in out
    assert "estimated cost: ~$" in out and "DEEP_ARCHIVE" in out
    assert "dropped 1 overlapping folders (recursive mode): 1 inside a selected folder" in out


def test_select_rules_and_no_recursive(tmp_path, capsys):
    hot = write_sample(tmp_path / "hot.csv")
    sel = tmp_path / "sel"
    code, out, err = run(capsys, "select", str(hot), "--owner", "alice", "--min-size", "1TiB",
                         "--no-recursive", "--storage-class", "GLACIER", "-o", str(sel))
    assert code == 0, err
    assert read_folder_list(sel) == [b"/data/lab/a", b"/data/lab/a/sub"]
    assert "dropped" not in out
    assert "GLACIER" in out


def test_select_older_than_top_and_by_total(tmp_path, capsys):
    now_rows = [hs(b"/r/recent", 10, total=10, mtime_days=-1, atime_days=-1),  # future: never old
                hs(b"/r/small", 1, total=500), hs(b"/r/big", 100, total=100)]
    hot = write_sample(tmp_path / "hot.csv", now_rows)
    sel = tmp_path / "sel"
    code, _, err = run(capsys, "select", str(hot), "--older-than", "30d", "--by", "total",
                       "--top", "1", "-o", str(sel))
    assert code == 0, err
    assert read_folder_list(sel) == [b"/r/small"]


@pytest.mark.parametrize("args, code, message", [
    (["--min-size", "lots"], 64, "not a size: 'lots'"),
    (["--older-than", "soon"], 64, "not an age"),
    (["--by", "biggest"], 64, "--by must be one of direct, total"),
    (["--owner", "nobody"], 64, "0 of 5 folders selected: 'owner nobody' removed 5"),
])
def test_select_bad_inputs_give_one_error_line(tmp_path, capsys, args, code, message):
    hot = write_sample(tmp_path / "hot.csv")
    sel = tmp_path / "sel"
    got, out, err = run(capsys, "select", str(hot), *args, "-o", str(sel))
    assert got == code
    assert err.count("\n") == 1 and err.startswith("froster-slurm: error: ")
    assert message in err
    assert not sel.exists()


def test_select_missing_hotspots_file(tmp_path, capsys):
    code, _, err = run(capsys, "select", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "s"))
    assert code == 66
    assert err == f"froster-slurm: error: hotspots file not found: {tmp_path / 'nope.csv'}\n"


def test_select_output_folder_missing(tmp_path, capsys):
    hot = write_sample(tmp_path / "hot.csv")
    code, _, err = run(capsys, "select", str(hot), "-o", str(tmp_path / "no" / "sel"))
    assert code == 66 and "does not exist" in err and err.count("\n") == 1


def test_select_warns_about_unreadable_folders(tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    rows = [hs(os.fsencode(real), 10), hs(b"/nonexistent/froster/x", 5)]
    hot = write_sample(tmp_path / "hot.csv", rows)
    code, _, err = run(capsys, "select", str(hot), "-o", str(tmp_path / "sel"))
    assert code == 0
    assert "1 selected folders are not readable" in err and "/nonexistent/froster/x" in err


# --- pick without a terminal ------------------------------------------------------------------

def test_pick_without_tty_fails_fast_and_names_select(tmp_path):
    hot = write_sample(tmp_path / "hot.csv")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from froster_slurm.cli import main; rc = main(sys.argv[1:]); "
         "print('ui-imported' if 'froster_slurm.pick.picker' in sys.modules else 'no-ui'); "
         "sys.exit(rc)", "pick", str(hot)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 64
    assert "froster-slurm select" in proc.stderr and "terminal" in proc.stderr
    assert proc.stdout.strip() == "no-ui"  # failed before Textual was even imported
    assert time.monotonic() - t0 < 60


def test_pick_module_entry_point_without_tty(tmp_path):
    hot = write_sample(tmp_path / "hot.csv")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "froster_slurm", "pick", str(hot)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, env=env, cwd=REPO)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "select" in proc.stderr


# --- pick with a (pretend) terminal: the real app, driven by a pilot ---------------------------

@pytest.fixture
def fake_tty(monkeypatch):
    monkeypatch.setattr(pick_cmd, "_require_terminal", lambda: None)


def _pilot_run(keys: list[str], seen: dict):
    """Stands in for PickApp.run: runs the real app headless and presses ``keys``."""
    def run(self):
        async def script(pilot):
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
                if key == "c":
                    seen["confirm"] = "\n".join(
                        str(w.render()) for w in pilot.app.screen.query("Static"))
        drive(self, script)
        return self.return_value
    return run


def test_pick_submit_hands_the_confirmed_selection_to_the_archive_stage(
        tmp_path, capsys, monkeypatch, fake_tty):
    from froster_slurm.pick.picker import PickApp
    from froster_slurm.submit import pipeline

    hot = write_sample(tmp_path / "hot.csv")
    sel = tmp_path / "picked"
    calls = []

    def fake_submit(selection_path, remote, config, **kw):
        calls.append((selection_path, remote, kw, read_folder_list(selection_path)))
        return SimpleNamespace(run_id="r42", run_dir=tmp_path / "run", job_ids={"archive": ["7"]},
                               watch="froster-slurm status r42 --watch", dry_run=False)

    seen: dict = {}
    rclone_remote(tmp_path, monkeypatch, "s3")
    monkeypatch.setattr(pipeline, "submit_archive", fake_submit)
    monkeypatch.setattr(PickApp, "run", _pilot_run(["space", "c", "y"], seen))
    code, out, err = run(capsys, "pick", str(hot), "-o", str(sel), "--submit",
                         "--to", "s3:bucket/x", "--recursive")
    assert code == 0, err
    assert calls == [(sel, "s3:bucket/x", {"recursive": True, "storage_class": "DEEP_ARCHIVE",
                                           "backend": None, "dry_run": False},
                      [b"/data/lab/a"])]
    assert "Submit these folders" in seen["confirm"] and "s3:bucket/x" in seen["confirm"]
    assert "DEEP_ARCHIVE" in seen["confirm"] and "~$" in seen["confirm"]
    assert "run r42" in out and "froster-slurm status r42 --watch" in out


def test_pick_quit_writes_nothing_submits_nothing(tmp_path, capsys, monkeypatch, fake_tty):
    from froster_slurm.pick.picker import PickApp
    from froster_slurm.submit import pipeline

    hot = write_sample(tmp_path / "hot.csv")
    sel = tmp_path / "picked"
    monkeypatch.setattr(pipeline, "submit_archive", lambda *a, **k: pytest.fail("submitted"))
    monkeypatch.setattr(PickApp, "run", _pilot_run(["space", "q", "q"], {}))
    code, _, err = run(capsys, "pick", str(hot), "-o", str(sel), "--submit", "--to",
                       str(tmp_path / "archive"))
    assert code == 1
    assert "nothing written" in err
    assert not sel.exists()


def test_pick_default_output_and_flag_checks(tmp_path, capsys, monkeypatch, fake_tty):
    from froster_slurm.pick.picker import PickApp

    hot = write_sample(tmp_path / "hot.csv")
    monkeypatch.setattr(PickApp, "run", _pilot_run(["a", "c", "y"], {}))
    code, _, err = run(capsys, "pick", str(hot), "--no-recursive")
    assert code == 0, err
    assert len(read_folder_list(tmp_path / "hot.csv.selection")) == 5
    code, _, err = run(capsys, "pick", str(hot), "--to", "remote:")
    assert code == 64 and "only apply with --submit" in err
    code, _, err = run(capsys, "pick", str(hot), "-o", str(tmp_path / "missing" / "s"))
    assert code == 66


@pytest.mark.parametrize("env_value, dropped", [("true", True), ("false", False)])
def test_select_follows_config_archive_recursive(tmp_path, capsys, monkeypatch, env_value,
                                                 dropped):
    monkeypatch.setenv("FROSTER_SLURM_ARCHIVE__RECURSIVE", env_value)
    hot = write_sample(tmp_path / "hot.csv")
    sel = tmp_path / "sel"
    code, out, err = run(capsys, "select", str(hot), "-o", str(sel))
    assert code == 0, err
    assert ("dropped 1 overlapping" in out) is dropped
    assert (b"/data/lab/a/sub" in read_folder_list(sel)) is not dropped


def test_pick_submit_failure_keeps_the_selection_and_says_how_to_retry(
        tmp_path, capsys, monkeypatch, fake_tty):
    from froster_slurm.errors import UserError
    from froster_slurm.pick.picker import PickApp
    from froster_slurm.submit import pipeline

    hot = write_sample(tmp_path / "hot.csv")
    sel = tmp_path / "picked"

    def broken(*_a, **_k):
        raise UserError("remote 'nowhere:' is not configured")

    rclone_remote(tmp_path, monkeypatch, "nowhere")
    monkeypatch.setattr(pipeline, "submit_archive", broken)
    monkeypatch.setattr(PickApp, "run", _pilot_run(["space", "c", "y"], {}))
    code, _, err = run(capsys, "pick", str(hot), "-o", str(sel), "--submit", "--to", "nowhere:")
    assert code == 64
    assert f"froster-slurm archive --from {sel} --to nowhere:" in err
    assert err.rstrip().endswith("remote 'nowhere:' is not configured")
    assert read_folder_list(sel) == [b"/data/lab/a"]


def test_pick_submit_checks_the_destination_before_the_picker_starts(
        tmp_path, capsys, monkeypatch, fake_tty):
    from froster_slurm.pick.picker import PickApp

    hot = write_sample(tmp_path / "hot.csv")
    rclone_remote(tmp_path, monkeypatch, "lab")
    monkeypatch.setattr(PickApp, "run", lambda self: pytest.fail("the picker started"))
    code, _, err = run(capsys, "pick", str(hot), "--submit", "--to", "lba:archive")
    assert code == 78
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("froster-slurm: error: remote: rclone remote 'lba' is not configured")
    assert "did you mean lab:? configured: lab; create it with `rclone config`" in err
