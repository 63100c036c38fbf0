"""A catalog shared by two real accounts (issue 20, item 3, the catalog half).

Seen before: the second user's finalize failed with a traceback and no summary, `catalog`
crashed even for reading, one user could rewrite another's row, and `catalog rebuild` crashed
on one bad record and imported foreign ones.  Here two ``useradd`` accounts archive through the
real CLI (local backend: task and finalize run as that user) into one configured catalog.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import PREFIX, account_env, ensure_account, run_as

REPO = Path(__file__).resolve().parent.parent


def _reachable_by_all(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in [*Path(path).parents])


def account_python() -> tuple[str, str]:
    """(interpreter, PYTHONPATH) another account can run: the test venv's own interpreter
    when every directory up to it is open to all (a venv made from /usr/bin/python3, as
    `make setup` does on a bare machine), else the system python3 of the same minor version
    with the venv's packages on its path (a venv made from root's pyenv)."""
    real = Path(os.path.realpath(sys.executable))
    if _reachable_by_all(real):
        return sys.executable, str(REPO)
    system = shutil.which("python3", path="/usr/bin:/bin")
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / \
        "site-packages"
    if system is None or not _reachable_by_all(site):
        pytest.fail("no Python interpreter the test accounts may run (install python3)")
    return system, f"{REPO}:{site}"


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """A directory both accounts can reach (pytest's tmp_path is root's, mode 0700)."""
    d = Path(tempfile.mkdtemp(prefix="froster-shared-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def owned_dir(path: Path, user: pwd.struct_passwd, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path


def froster(user: pwd.struct_passwd, catalog: Path, *args: str) -> tuple[int, str]:
    python, path = account_python()
    env = account_env(user, FROSTER_SLURM_CATALOG=str(catalog), FROSTER_SLURM_BACKEND="local",
                      PYTHONPATH=path)
    p = run_as(user, [python, "-m", "froster_slurm", *args], env=env, timeout=300)
    return p.returncode, p.stdout + p.stderr


def python_as(user: pwd.struct_passwd, catalog: Path, code: str) -> tuple[int, str]:
    python, path = account_python()
    env = account_env(user, FROSTER_SLURM_CATALOG=str(catalog), PYTHONPATH=path)
    p = run_as(user, [python, "-c", code], env=env, timeout=120)
    return p.returncode, p.stdout + p.stderr


def make_folder(root: Path, user: pwd.struct_passwd, name: str) -> Path:
    folder = owned_dir(root / name, user)
    for i in range(3):
        f = folder / f"file{i}.txt"
        f.write_bytes(os.urandom(100 + i))
        os.chown(f, user.pw_uid, user.pw_gid)
    return folder


def last_summary(user: pwd.struct_passwd) -> dict:
    runs = Path(user.pw_dir) / ".local/state/froster-slurm/runs"
    newest = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    return json.loads((newest / "summary.json").read_text())


def test_two_accounts_share_one_catalog_each_owning_their_rows(shared: Path) -> None:
    alice = ensure_account(f"{PREFIX}cata")
    bob = ensure_account(f"{PREFIX}catb")
    cat_dir = owned_dir(shared / "catalog", alice)  # alice's folder: bob cannot create in it
    cat = cat_dir / "catalog.duckdb"
    a_folder = make_folder(owned_dir(shared / "a", alice), alice, "proj")
    b_folder = make_folder(owned_dir(shared / "b", bob), bob, "proj")
    a_remote = owned_dir(shared / "remote-a", alice)
    b_remote = owned_dir(shared / "remote-b", bob)

    rc, out = froster(alice, cat, "archive", str(a_folder), "--to", str(a_remote))
    assert rc == 0, out
    assert os.stat(cat).st_uid == alice.pw_uid

    # bob: no P.users yet and he cannot make it -> the run still ends with its summary,
    # the catalog problem is one clear line with the fix, no traceback
    rc, out = froster(bob, cat, "archive", str(b_folder), "--to", str(b_remote))
    assert "Traceback" not in out, out
    summary = last_summary(bob)
    assert summary["totals"]["done"] == 1
    assert "mkdir -m 1777" in summary["catalog_error"] and "belongs to" in summary["catalog_error"]
    rc, out = froster(bob, cat, "catalog")  # reading works for him already
    assert rc == 0 and "Traceback" not in out, out
    assert str(a_folder) in out and "fstestcata" in out

    # the admin makes the per-user folder; bob's next archive (unchanged: no upload) lands
    users = cat.with_name(cat.name + ".users")
    users.mkdir(mode=0o1777)
    users.chmod(0o1777)
    rc, out = froster(bob, cat, "archive", str(b_folder), "--to", str(b_remote))
    assert rc == 0, out
    assert last_summary(bob)["catalog_error"] is None
    assert os.stat(users / f"{bob.pw_uid}.duckdb").st_uid == bob.pw_uid

    for who in (alice, bob):
        rc, out = froster(who, cat, "catalog", "--json")
        assert rc == 0, out
        rows = {(r["folder"], r["owner"]) for r in json.loads(out)}
        assert rows == {(str(a_folder), alice.pw_name), (str(b_folder), bob.pw_name)}

    # bob forges a row for alice's folder, pointing at his own data: it goes to HIS file,
    # alice's file is untouched, and alice's lookup (restore of a lost folder) ignores it
    a_file_before = cat.read_bytes()
    forged = {"format": "froster-slurm-archive", "source": str(a_folder),
              "destination": str(b_remote), "archived_at": "2099-01-01T00:00:00Z",
              "user": alice.pw_name, "version": 9, "files": 1, "bytes": 1}
    code = ("import json; from pathlib import Path; "
            "from froster_slurm.catalog import store as catalog; "
            f"catalog.add_records(Path({str(cat)!r}), [json.loads({json.dumps(forged)!r})])")
    rc, out = python_as(bob, cat, code)
    assert rc == 0, out
    assert cat.read_bytes() == a_file_before
    rc, out = python_as(alice, cat, "from pathlib import Path; "
                        "from froster_slurm.catalog import store as catalog; "
                        f"e = catalog.lookup(Path({str(cat)!r}), {os.fsencode(a_folder)!r}); "
                        "print(e.destination, e.version, e.owner)")
    assert rc == 0, out
    assert out.split() == [str(a_remote) + "/froster" + str(a_folder), "1", alice.pw_name]

    # a file planted under alice's number is skipped and reported, not read
    planted = users / f"{alice.pw_uid}.duckdb"
    shutil.copyfile(users / f"{bob.pw_uid}.duckdb", planted)
    os.chown(planted, bob.pw_uid, bob.pw_gid)
    rc, out = froster(alice, cat, "catalog")
    assert rc == 0 and "not owned by user" in out, out


def test_rebuild_skips_bad_foreign_and_copied_records(shared: Path) -> None:
    alice = ensure_account(f"{PREFIX}cata")
    bob = ensure_account(f"{PREFIX}catb")
    tree = shared / "tree"
    tree.mkdir()
    tree.chmod(0o777)
    a_folder = make_folder(owned_dir(tree / "a", alice), alice, "proj")
    b_folder = make_folder(owned_dir(tree / "b", bob), bob, "proj")
    rc, out = froster(alice, shared / "a.duckdb", "archive", str(a_folder), "--to",
                      str(owned_dir(shared / "ra", alice)))
    assert rc == 0, out
    cat = owned_dir(shared / "bobcat", bob) / "catalog.duckdb"
    rc, out = froster(bob, cat, "archive", str(b_folder), "--to",
                      str(owned_dir(shared / "rb", bob)))
    assert rc == 0, out
    record = (b_folder / "Froster.archive.json").read_bytes()
    bad = owned_dir(tree / "b" / "broken", bob)
    (bad / "Froster.archive.json").write_bytes(record[: len(record) // 2])  # truncated
    os.chown(bad / "Froster.archive.json", bob.pw_uid, bob.pw_gid)
    copied = owned_dir(tree / "b" / "copy", bob)
    shutil.copyfile(b_folder / "Froster.archive.json", copied / "Froster.archive.json")
    os.chown(copied / "Froster.archive.json", bob.pw_uid, bob.pw_gid)
    rc, out = froster(bob, cat, "catalog", "rebuild", str(tree))
    assert rc == 0 and "Traceback" not in out, out
    assert "catalog rebuilt: 1 archived folders" in out and "3 records skipped" in out
    assert "not valid JSON" in out
    assert f"written by {alice.pw_name}, not by you" in out
    assert "describes another folder" in out
    rc, out = froster(bob, cat, "catalog", "--json")
    assert [r["folder"] for r in json.loads(out)] == [str(b_folder)]


def test_an_admin_folder_with_only_the_users_folder_takes_shards(shared: Path) -> None:
    """An admin prepared `catalog.duckdb.users/` (1777) in a folder users cannot write, and
    no catalog file yet: a user's rows go to a file of their own there."""
    bob = ensure_account(f"{PREFIX}catb")
    cat = shared / "site" / "catalog.duckdb"
    cat.parent.mkdir(mode=0o755)
    users = cat.with_name(cat.name + ".users")
    users.mkdir()
    users.chmod(0o1777)
    code = ("from pathlib import Path; from froster_slurm.catalog import store as catalog; "
            f"print(catalog.add_records(Path({str(cat)!r}), [{{'format': "
            "'froster-slurm-archive', 'source': '/x/proj', 'destination': '/r/x/proj'}]))")
    rc, out = python_as(bob, cat, code)
    assert rc == 0 and out.strip() == "1", out
    assert not cat.exists()
    assert os.stat(users / f"{bob.pw_uid}.duckdb").st_uid == bob.pw_uid
