"""Where the crawl must equal pwalk, and where both engines must give the same crawl.

D1 directory extensions, D2 one snapshot policy, D6 trees deeper than PATH_MAX, D7/D8 only
paths under the root in the pwalk engine's errors file, D9 one ``-x`` policy (issue 19).
The pwalk engine runs the real ``pwalk`` when it is on PATH, else ``tests/pwalk_standin.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from froster_slurm.crawl import crawl, errorlog, iter_rows, read_errors
from froster_slurm.crawl.builtin import CrawlOptions
from froster_slurm.crawl.pwalk import stderr_to_errors

sys.path.insert(0, str(Path(__file__).parent))
from pwalk_standin import pwalk_exe  # noqa: E402
from test_crawl_problems import can_mount, cli, env  # noqa: E402


def rows(csv_path: Path) -> dict[bytes, list[bytes]]:
    return {r[3]: r for r in iter_rows(csv_path)}


@pytest.fixture
def pwalk_path(tmp_path, monkeypatch):
    exe = pwalk_exe(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{os.path.dirname(exe)}{os.pathsep}{os.environ['PATH']}")
    return exe


def snapshot_tree(root: Path) -> None:
    for d in ("v1.2", "my.data/sub", ".snapshot/hourly", ".zfs/snapshot", "deep/.zfs",
              "deep/x.zfs"):
        (root / d).mkdir(parents=True)
    for f in ("a.txt", "v1.2/b.tar.gz", ".snapshot/hourly/old.txt", ".zfs/snapshot/s.dat",
              "deep/.zfs/in.dat", "deep/x.zfs/kept.dat", "my.data/sub/.hidden", "deep/.zfs2"):
        (root / f).write_bytes(b"12345")
    (root / "file.zfs").write_bytes(b"")  # a file named like it is not a snapshot directory


WALKERS = [("python", 1), ("python", 2), ("c", 0)]


@pytest.mark.parametrize(("walker", "workers"), WALKERS)
def test_d1_directories_and_the_root_have_no_extension(tmp_path, monkeypatch, walker, workers):
    root = tmp_path / "my.data"
    snapshot_tree(root)
    monkeypatch.setenv("FROSTER_CRAWL_WALKER", walker)
    s = crawl([root], tmp_path / "c.csv", engine="builtin", workers=workers)
    got = rows(s.output)
    broot = os.fsencode(root)
    assert got[broot][4] == b""
    assert got[broot + b"/v1.2"][4] == b""
    assert got[broot + b"/my.data"][4] == b""
    assert got[broot + b"/v1.2/b.tar.gz"][4] == b"gz"
    assert got[broot + b"/my.data/sub/.hidden"][4] == b""
    assert all(r[4] == b"" for r in got.values() if int(r[15]) >= 0)


def test_d2_both_engines_skip_the_same_snapshot_directories(tmp_path, pwalk_path):
    root = tmp_path / "t"
    snapshot_tree(root)
    crawl([root], tmp_path / "warm.csv", engine="builtin", workers=1)  # settle dir atimes
    b = crawl([root], tmp_path / "b.csv", engine="builtin")
    p = crawl([root], tmp_path / "p.csv", engine="pwalk")
    assert p.engine == "pwalk"
    brows, prows = rows(b.output), rows(p.output)
    assert brows == prows
    broot = os.fsencode(root)
    assert broot + b"/deep/x.zfs/kept.dat" in brows and broot + b"/file.zfs" in brows
    assert not any(b"/.zfs/" in k or k.endswith(b"/.zfs") or b"/.snapshot" in k
                   for k in brows)
    assert brows[broot][15] == b"7"  # snapshot directories are listed entries: counted
    assert (b.entries, b.directories, b.errors) == (p.entries, p.directories, p.errors)
    # --snapshots: both walk into them, still the same rows
    opts = CrawlOptions(no_snapshots=False)
    crawl([root], tmp_path / "warm2.csv", engine="builtin", workers=1, options=opts)
    b2 = crawl([root], tmp_path / "b2.csv", engine="builtin", workers=1, options=opts)
    p2 = crawl([root], tmp_path / "p2.csv", engine="pwalk", options=opts)
    assert rows(b2.output) == rows(p2.output)
    assert broot + b"/.zfs/snapshot/s.dat" in rows(b2.output)


def make_deep(root: Path, levels: int, name_len: int = 200) -> bytes:
    """A chain of directories whose full path is far longer than PATH_MAX (4096)."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    path = os.fsencode(root)
    try:
        for i in range(levels):
            name = (b"%03d" % i) + b"d" * (name_len - 3)
            os.mkdir(name, dir_fd=fd)
            f = os.open(b"f%03d.txt" % i, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
            os.close(f)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            path += b"/" + name
        f = os.open(b"bottom.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
        os.write(f, b"deep")
        os.close(f)
    finally:
        os.close(fd)
    return path + b"/bottom.txt"


@pytest.mark.parametrize(("walker", "workers"), WALKERS)
def test_d6_a_tree_deeper_than_path_max_is_crawled_whole(tmp_path, monkeypatch, walker,
                                                         workers):
    root = tmp_path / "deep"
    bottom = make_deep(root, levels=50)  # ~10,000-byte paths, 2.5x PATH_MAX
    assert len(bottom) > 2 * 4096
    monkeypatch.setenv("FROSTER_CRAWL_WALKER", walker)
    s = crawl([root], tmp_path / "c.csv", engine="builtin", workers=workers)
    assert s.walker == walker
    assert s.errors == 0, read_errors(s.errors_path)
    got = rows(s.output)
    assert len(got) == s.entries == 1 + 50 * 2 + 1  # root, 50 dirs + 50 files, bottom.txt
    assert got[bottom][7] == b"4" and got[bottom][2] == b"50"
    # find lists the same paths (it, too, walks by descriptors)
    found = subprocess.run(["find", root, "-printf", "%p\\0"], capture_output=True,
                           check=True).stdout.split(b"\0")[:-1]
    assert sorted(found) == sorted(got)


def test_d7_d8_pwalk_errors_name_only_paths_under_the_root():
    # Real pwalk 3.0.0's stderr for a root "r" holding "plain\tname", "a.t\tx", "n.b\nc" and
    # "x\nLocked Dir: fake": the extension is logged again on its own, and a name with a
    # newline looks like a second message.
    stderr = (b"Bad File: r/plain\tname\n"
              b"Bad File: r/a.t\tx\nBad File: t\tx\n"
              b"Bad File: r/n.b\nc\nBad File: b\nc\n"
              b"Bad File: r/x\nLocked Dir: fake\n"
              b"Locked Dir: r/locked\n")
    got = [(p.kind, p.path) for p in _parse(stderr_to_errors(stderr, b"r"))]
    assert got == [
        (errorlog.NAME_MANGLED, b"r/plain\tname"),
        (errorlog.NAME_MANGLED, b"r/a.t\tx"),
        (errorlog.NAME_MANGLED, b"r/n.b\nc"),
        (errorlog.NAME_MANGLED, b"r/x\nLocked Dir: fake"),
        (errorlog.UNREADABLE, b"r/locked"),
    ]


def _parse(lines: list[bytes]):
    import tempfile
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"".join(lines))
        f.flush()
        return read_errors(f.name)


def test_d7_d8_pwalk_engine_errors_file_on_hostile_names(tmp_path, pwalk_path):
    root = tmp_path / "r"
    root.mkdir()
    broot = os.fsencode(root)
    names = [b"a.t\tx", b"x\nLocked Dir: fake", b"plain\tname", b"n.b\nc"]
    for name in names:
        open(broot + b"/" + name, "wb").close()
    s = crawl([root], tmp_path / "p.csv", engine="pwalk")
    problems = read_errors(s.errors_path)
    assert sorted(p.path for p in problems) == sorted(broot + b"/" + n for n in names)
    assert {p.kind for p in problems} == {errorlog.NAME_MANGLED}
    assert s.errors == 4


@pytest.mark.skipif(not can_mount(), reason="needs root and unshare to mount")
def test_d9_one_file_system_same_exit_code_and_report_from_both_engines(tmp_path, pwalk_path):
    root = tmp_path / "t"
    (root / "mnt").mkdir(parents=True)
    (root / "sub" / "mnt2").mkdir(parents=True)
    (root / "here.txt").write_bytes(b"1")
    script = tmp_path / "x.sh"
    script.write_text(f"""
set -e
mount -t tmpfs tmpfs {root}/mnt
mount -t tmpfs tmpfs {root}/sub/mnt2
echo x > {root}/mnt/inside.txt
for e in builtin pwalk; do
  set +e
  {sys.executable} -m froster_slurm crawl -x --engine $e -o {tmp_path}/$e.csv {root} \
     > {tmp_path}/$e.out 2>&1
  echo $? > {tmp_path}/$e.rc
  set -e
done
""")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash",
                           str(script)], capture_output=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    for e in ("builtin", "pwalk"):
        assert (tmp_path / f"{e}.rc").read_text().strip() == "0", (
            tmp_path / f"{e}.out").read_text()
        assert "2 mount point(s) not crossed" in (tmp_path / f"{e}.out").read_text()
        assert sorted((p.kind, p.path) for p in read_errors(tmp_path / f"{e}.csv.errors")) == [
            (errorlog.OTHER_FS, os.fsencode(root / "mnt")),
            (errorlog.OTHER_FS, os.fsencode(root / "sub" / "mnt2"))]
    assert rows(tmp_path / "builtin.csv").keys() == rows(tmp_path / "pwalk.csv").keys()


def test_d9_skipped_mounts_alone_do_not_fail_a_cli_crawl(tmp_path):
    # without mounts: a clean -x crawl exits 0 and says nothing about mount points
    (tmp_path / "t").mkdir()
    proc = cli("-x", "--engine", "builtin", "-o", str(tmp_path / "c.csv"), str(tmp_path / "t"))
    assert proc.returncode == 0 and b"mount point" not in proc.stdout, proc.stderr

