"""The compiled walker (``_fastwalk``) writes exactly what the Python walker writes.

Both walkers run on the same hostile tree (odd names, links, special files, hard links, a path
longer than PATH_MAX, snapshot directories, a symlink loop, a bind-mount loop and a mount
point when we may mount) and must give the same rows and the same errors-file records; rows
come in another order (threads), so they are compared as sorted lists of lines.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from froster_slurm.crawl import compiled, crawl, crawl_shard, plan_shards
from froster_slurm.crawl.builtin import CrawlOptions
from froster_slurm.errors import UserError

sys.path.insert(0, str(Path(__file__).parent))
from test_crawl_fidelity import make_deep, snapshot_tree  # noqa: E402
from test_crawl_format import make_odd_tree  # noqa: E402
from test_crawl_problems import can_mount, env  # noqa: E402


def test_the_extension_is_built_here():
    """make setup builds it (gcc and the Python headers are set-up dependencies): a missing
    build must fail here, not silently fall back and leave the fast path untested."""
    assert compiled.available()


def hostile_tree(root: Path) -> None:
    make_odd_tree(root)
    b = os.fsencode(root)
    snapshot_tree(root / "snaps")
    make_deep(root / "deep", levels=25)
    os.mkfifo(b + b"/fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.fsdecode(b + b"/sock"))
    s.close()
    os.link(b + b"/.bashrc", b + b"/hardlink")
    os.symlink(b"\xff target", b + b"/sym\nlink")
    os.symlink(".", b + b"/self")
    os.mkdir(b + b"/empty.dir")
    with open(b + b"/sparse", "wb") as f:
        f.truncate(1 << 30)
    os.utime(b + b"/sparse", (-86400 * 365, -86400 * 400))  # times before 1970


def crawl_with(walker: str, monkeypatch, root, out: Path, **kw):
    monkeypatch.setenv("FROSTER_CRAWL_WALKER", walker)
    s = crawl([root], out, engine="builtin", **kw)
    assert s.walker == walker
    return s


def sorted_lines(path: Path) -> list[bytes]:
    return sorted(path.read_bytes().split(b"\n"))


@pytest.mark.parametrize(("workers", "threads"), [(1, 1), (2, 1), (0, 1), (2, 8)])
def test_compiled_and_python_walkers_equal_row_for_row(tmp_path, monkeypatch, workers,
                                                       threads):
    root = tmp_path / "hostile"
    hostile_tree(root)
    crawl_with("python", monkeypatch, root, tmp_path / "warm.csv")  # settle dir atimes
    p = crawl_with("python", monkeypatch, root, tmp_path / "p.csv", workers=1)
    c = crawl_with("c", monkeypatch, root, tmp_path / "c.csv", workers=workers,
                   threads=threads)
    assert sorted_lines(c.output) == sorted_lines(p.output)
    assert sorted_lines(c.errors_path) == sorted_lines(p.errors_path)
    assert (c.entries, c.directories, c.errors) == (p.entries, p.directories, p.errors)
    assert c.entries > 150 and c.output.read_bytes().startswith(b"inode,parent-inode")


def test_options_equal_in_both_walkers(tmp_path, monkeypatch):
    root = tmp_path / "t"
    snapshot_tree(root)
    opts = CrawlOptions(no_snapshots=False)
    crawl_with("python", monkeypatch, root, tmp_path / "warm.csv", options=opts)
    p = crawl_with("python", monkeypatch, root, tmp_path / "p.csv", options=opts)
    c = crawl_with("c", monkeypatch, root, tmp_path / "c.csv", options=opts)
    assert sorted_lines(c.output) == sorted_lines(p.output)
    assert b"/.zfs/snapshot/s.dat" in c.output.read_bytes()


def test_shards_with_the_compiled_walker_equal_one_python_crawl(tmp_path, monkeypatch):
    root = tmp_path / "t"
    for a in range(6):
        for b in range(a + 1):
            d = root / f"top{a}" / f"mid{b}"
            d.mkdir(parents=True)
            for f in range(3):
                (d / f"f{f}.dat").write_bytes(b"x" * f)
    crawl_with("python", monkeypatch, root, tmp_path / "warm.csv")
    one = crawl_with("python", monkeypatch, root, tmp_path / "one.csv")
    monkeypatch.setenv("FROSTER_CRAWL_WALKER", "c")
    plan = plan_shards([root], 3, tmp_path / "shards")
    lines = []
    for i in range(3):
        s = crawl_shard(plan, i)
        assert s.walker == "c" and s.errors == 0
        lines += [ln for ln in s.output.read_bytes().split(b"\n")[1:] if ln]
    assert sorted(lines) == [ln for ln in sorted_lines(one.output)[1:] if ln
                             and not ln.startswith(b"inode,")]


def test_excludes_fall_back_to_the_python_walker(tmp_path, monkeypatch):
    (tmp_path / "t").mkdir()
    opts = CrawlOptions(excludes=("*.tmp",))
    monkeypatch.setenv("FROSTER_CRAWL_WALKER", "auto")
    s = crawl([tmp_path / "t"], tmp_path / "c.csv", engine="builtin", options=opts)
    assert s.walker == "python"
    monkeypatch.setenv("FROSTER_CRAWL_WALKER", "c")
    with pytest.raises(UserError, match="--exclude"):
        crawl([tmp_path / "t"], tmp_path / "c.csv", engine="builtin", options=opts)


@pytest.mark.skipif(not can_mount(), reason="needs root and unshare to mount")
def test_mounts_and_bind_loops_equal_in_both_walkers(tmp_path):
    root = tmp_path / "t"
    (root / "mnt").mkdir(parents=True)
    (root / "sub" / "loop").mkdir(parents=True)
    (root / "sub" / "f").write_bytes(b"1")
    script = tmp_path / "m.sh"
    script.write_text(f"""
set -e
mount -t tmpfs tmpfs {root}/mnt
echo x > {root}/mnt/inside.txt
mount --bind {root} {root}/sub/loop
for w in python c python c; do
  FROSTER_CRAWL_WALKER=$w {sys.executable} -m froster_slurm crawl --engine builtin \
      -o {tmp_path}/$w.csv {root} || true
  FROSTER_CRAWL_WALKER=$w {sys.executable} -m froster_slurm crawl -x --engine builtin \
      -o {tmp_path}/x-$w.csv {root} || true
done
""")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash",
                           str(script)], capture_output=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    for stem in ("", "x-"):
        for ext in (".csv", ".csv.errors"):
            c = sorted_lines(tmp_path / f"{stem}c{ext}")
            assert c == sorted_lines(tmp_path / f"{stem}python{ext}"), stem + ext
    assert b"directory-loop" in (tmp_path / "c.csv.errors").read_bytes()
    assert b"other-filesystem" in (tmp_path / "x-c.csv.errors").read_bytes()


def test_a_full_disk_stops_the_compiled_walker_with_one_line(tmp_path):
    if not can_mount():
        pytest.skip("needs root and unshare to mount a tiny file system")
    root = tmp_path / "t"
    for i in range(40):
        d = root / f"d{i:02d}"
        d.mkdir(parents=True)
        for f in range(200):
            (d / (f"file-with-a-long-name-{f:04d}" + "x" * 60)).write_bytes(b"")
    script = tmp_path / "full.sh"
    script.write_text(f"""
mkdir -p {tmp_path}/small
mount -t tmpfs -o size=64k tmpfs {tmp_path}/small
FROSTER_CRAWL_WALKER=c {sys.executable} -m froster_slurm crawl --engine builtin \
    -o {tmp_path}/small/c.csv {root}
echo "rc=$?"
ls {tmp_path}/small
""")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash",
                           str(script)], capture_output=True, env=env(), timeout=120)
    assert b"rc=70" in proc.stdout, (proc.stdout, proc.stderr)
    assert b"No space left on device" in proc.stderr and b"Traceback" not in proc.stderr
    assert proc.stdout.split(b"rc=70")[1].strip() == b""  # nothing left behind
