"""Fast checks of the archive stage's pieces: names, plan, inventory, classification, state."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from froster_slurm.archive import names
from froster_slurm.archive.bundle import make_plan
from froster_slurm.archive.inventory import LINK, SourceChanged, require_unchanged, take_inventory
from froster_slurm.archive.settings import check_flags
from froster_slurm.errors import ConfigError, PermanentError, TransientError
from froster_slurm.folder import layout
from froster_slurm.remotes.rclone import Result, classify
from froster_slurm.run.taskstate import (
    iter_task_states,
    read_task_state,
    reset_attempts,
    task_paths,
    update_task_state,
)
from froster_slurm.scheduler.injob import job_ref, set_status
from froster_slurm.util.paths import write_folder_list

ODD = [b"plain", b"$(touch PWNED)", b"a\"b'c", b"-rf", b"new\nline", b"sp ace", b"caf\xe9",
       b"back\\slash", b"cr\rx", b"tab\tx", b"\xff\xfe", b"\xe2\x90\x8a", b"q\xe2\x80\x9bq"]


@pytest.mark.parametrize("name", ODD)
def test_shell_quote_gives_back_the_exact_bytes(name: bytes) -> None:
    word = names.shell_quote(b"/x/" + name)
    out = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True)
    assert out.stdout == b"/x/" + name


def test_encode_ctl_is_reversible_and_never_collides() -> None:
    encoded = {names.encode_ctl(n) for n in ODD}
    assert len(encoded) == len(ODD)
    assert names.encode_ctl(b"new\nline") == "new\u240aline"
    assert names.encode_ctl(b"\xe2\x90\x8a") == "\u201b\u240a"  # a literal picture is quoted
    assert all("\n" not in e and "\r" not in e for e in encoded)


def test_destination_layout() -> None:
    assert names.destination("s3:bucket", "froster", b"/data/p") == "s3:bucket/froster/data/p"
    assert names.destination("s3:", "froster", b"/data/p") == "s3:froster/data/p"
    assert names.destination("/arch/", "", b"/data/p") == "/arch/data/p"
    assert names.destination("/arch", "pre/", b"/data/./p/") == "/arch/pre/data/p"
    assert names.destination("r:b", "f", b"/d/a\nb") == "r:b/f/d/a\u201b\u240ab"
    assert names.destination("r:b", "f", "/d/a\u240ab".encode()) == \
        "r:b/f/d/a\u201b\u201b\u201b\u240ab"


def test_object_safe_names() -> None:
    assert names.is_object_safe(b"dir/file name with spaces.txt")
    assert names.is_object_safe("données/é.txt".encode())
    for bad in (b"a\nb", b"caf\xe9", b"x\x7fy", "a\u240ab".encode(), b"a" * 300,
                b"d/" + b"x" * 256):
        assert not names.is_object_safe(bad), bad


def test_redact_hides_credentials() -> None:
    text = "Failed for ':s3,access_key_id=AKIA123,secret_access_key=s3cr3t:bucket/x' " \
           "and https://user:pa55@host/x"
    out = names.redact(text)
    assert "s3cr3t" not in out and "AKIA123" not in out and "pa55" not in out
    assert ":bucket/x" in out


def _tree(root: Path) -> bytes:
    r = os.fsencode(root)
    os.makedirs(r + b"/sub/deeper")
    os.makedirs(r + b"/empty/nested_empty")
    for rel, size in ((b"big1", 5000), (b"sub/big2", 6000), (b"small", 10), (b"sub/tiny", 3),
                      (b"odd\nname", 9000), (b"caf\xe9", 9000)):
        with open(r + b"/" + rel, "wb") as f:
            f.write(os.urandom(size))
    os.link(r + b"/big1", r + b"/big1.hard")
    os.link(r + b"/small", r + b"/sub/small.hard")
    os.symlink(b"/etc", r + b"/link_to_etc")
    os.symlink(b"nowhere", r + b"/dangling")
    os.mkfifo(r + b"/fifo")
    return r


def test_inventory_keeps_links_as_links_and_skips_fifos(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    inv = take_inventory(root)
    by = {e.rel: e for e in inv.entries}
    assert by[b"link_to_etc"].kind == LINK and by[b"link_to_etc"].target == b"/etc"
    assert not any(rel.startswith(b"link_to_etc/") for rel in by)  # never followed
    assert by[b"dangling"].kind == LINK
    assert by[b"empty/nested_empty"].empty and not by[b"empty"].empty
    assert [r for r, _ in inv.skipped] == [b"fifo"]
    assert by[b"big1"].ino == by[b"big1.hard"].ino


def test_plan_bundles_small_odd_links_and_keeps_hard_links_together(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    inv = take_inventory(root)
    plan = make_plan(inv, threshold=4096, bundle_size=10_000)
    rel = [e.rel for e in inv.entries]
    objects = {rel[i] for i in plan.objects}
    assert objects == {b"big1", b"big1.hard", b"sub/big2"}
    bundled = [{rel[i] for i in b} for b in plan.bundles]
    everything = set().union(*bundled)
    assert {b"odd\nname", b"caf\xe9", b"small", b"sub/tiny", b"link_to_etc", b"dangling",
            b"empty/nested_empty"} <= everything
    assert b"empty" not in everything and b"sub" not in everything
    assert any({b"small", b"sub/small.hard"} <= b for b in bundled)  # same bundle
    assert len(plan.bundles) >= 2  # 18 kB of odd names cannot fit one 10 kB bundle


def test_reserved_top_level_names_are_bundled(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    for rel in (b"Froster.bundles/x.bin", b"Froster.index.html"):
        os.makedirs(os.path.dirname(root + b"/" + rel), exist_ok=True)
        with open(root + b"/" + rel, "wb") as f:
            f.write(b"u" * 5000)
    inv = take_inventory(root)
    plan = make_plan(inv, threshold=10, bundle_size=1 << 20)
    assert plan.objects == []


def test_our_trace_is_excluded_but_a_foreign_one_is_data(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    with open(root + b"/Froster.archive.json", "w") as f:
        json.dump({"format": layout.RECORD_FORMAT}, f)
    for name, text in ((b"Froster.manifest.md5", "x"), (b"index.html", "<html>mine</html>"),
                       (b"Froster.index.html", layout.GENERATOR_META.decode())):
        with open(root + b"/" + name, "w") as f:
            f.write(text)
    inv = take_inventory(root)
    assert [e.rel for e in inv.entries] == [b"index.html"]
    assert inv.index_name == b"Froster.index.html"


def test_change_is_detected(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    inv = take_inventory(root)
    require_unchanged(inv, "now")
    with open(root + b"/sub/tiny", "r+b") as f:  # same size, new content
        f.write(b"abc")
    with pytest.raises(SourceChanged):
        require_unchanged(inv, "later")


def test_missing_folder_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="no longer exists"):
        take_inventory(os.fsencode(tmp_path / "gone"))


@pytest.mark.parametrize(("code", "text", "kind"), [
    (1, "dial tcp 127.0.0.1:9: connect: connection refused", TransientError),
    (7, "AccessDenied: Access Denied", PermanentError),
    (1, "didn't find section in config file", PermanentError),
    (5, "something odd", TransientError),
    (4, "file not found", SourceChanged),
    (1, "can't copy - source file is being updated (size changed from 1 to 2)", SourceChanged),
    (8, "max transfer limit reached", TransientError),
])
def test_rclone_failures_are_classified(code: int, text: str, kind: type) -> None:
    assert isinstance(classify(Result(code, [text]), "copy"), kind)


def test_flags_that_weaken_checksums_are_refused() -> None:
    assert check_flags(["--s3-no-head", "--bwlimit=1M"]) == ("--s3-no-head", "--bwlimit=1M")
    for bad in ("--s3-disable-checksum", "--size-only", "--ignore-checksum=true"):
        with pytest.raises(ConfigError):
            check_flags([bad])


def test_task_state_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_folder_list(tmp_path / "folders.nul", [b"/a", b"/b\nc"])
    states = list(iter_task_states(tmp_path))
    assert [(s["index"], s["state"], s["folder"]) for s in states] == [
        (0, "pending", "/a"), (1, "pending", "/b\nc")]
    update_task_state(tmp_path, 1, state="failed", failures=5, error="boom")
    reset_attempts(tmp_path, 1)
    s = read_task_state(tmp_path, 1)
    assert (s["state"], s["failures"], s["error"]) == ("pending", 0, None)
    env = {"FROSTER_BACKEND": "local", "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "1",
           "SLURM_JOB_ID": "9"}
    assert job_ref(env) == "7_1"
    set_status("archive 4/6 upload\n41% " + "x" * 2000, task_paths(tmp_path, 1).status_path,
               env=env)
    text = (tmp_path / "tasks" / "1" / "comment").read_text()
    assert text.startswith("archive 4/6 upload 41%") and len(text.encode()) <= 1001




def test_a_task_killed_before_its_first_state_write_keeps_its_attempts(tmp_path: Path) -> None:
    """kill -9 during start-up: the state still says pending with no policy in it; the kill
    is one transient failure of the run's max_attempts, not the last of a single attempt."""
    from archive_helpers import make_run

    from froster_slurm.errors import EXIT_TEMPFAIL
    from froster_slurm.jobs.archive_stage import interrupted
    from froster_slurm.run.taskstate import read_task_state as state

    folder = os.fsencode(tmp_path / "src")
    os.makedirs(folder)
    run_dir = make_run(tmp_path / "state", [folder], str(tmp_path / "cold"), max_attempts=5)
    assert state(run_dir, 0).get("max_attempts") is None  # nothing ran yet
    assert interrupted(run_dir, 0, 137) == EXIT_TEMPFAIL
    st = state(run_dir, 0)
    assert st["state"] == "retrying" and st["failures"] == 1 and st["max_attempts"] == 5, st
