"""The fast reader (rank_inode) against the path reader: same figures, byte for byte, on random
crawls -- and every crawl its checks refuse is read by path instead, with the same result."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import pytest

try:  # tests/ on sys.path (no tests/__init__.py) or tests as a package
    from rank_testdata import HEADER, NOW, row, write_gz
except ImportError:
    from tests.rank_testdata import HEADER, NOW, row, write_gz

from froster_slurm.rank.ranking import Engine, RankedCrawl, RankParams

DIR, REG, LNK, FIFO, SOCK, CHR = 0o040755, 0o100644, 0o120777, 0o010644, 0o140755, 0o020644
NAMES = [b"a", b"data", b"caf\xe9", b"\xe6\x95\xb0\xe6\x8d\xae", b'q"uo"te', b"com,ma",
         b"sp ace", b"x\x85y", b"\xe2\x82\xac", b"back\\slash", b"run"]


@dataclasses.dataclass
class Node:
    path: bytes
    inode: int
    dev: int
    depth: int
    parent: Node | None
    rows: list[bytes] = dataclasses.field(default_factory=list)  # rows of entries inside
    subdirs: list[Node] = dataclasses.field(default_factory=list)


def random_crawl(seed: int, dirs: int = 60) -> list[bytes]:
    """A consistent pwalk crawl (parent-inodes, pw_fcount) in random row order: nested
    folders with awkward names, a second device mounted inside (its inode numbers overlap the
    first's), hard links across folders, symlinks and FIFOs."""
    rnd = random.Random(seed)
    next_ino = {2049: 100, 2050: 100}
    root = Node(b"/lab/r", 2, 2049, -1, None)
    nodes = [root]
    for i in range(dirs):
        parent = rnd.choice(nodes)
        dev = parent.dev
        if i == dirs // 2:  # a mount point: its row and everything below are on device 2050
            dev = 2050
        next_ino[dev] += 1
        name = rnd.choice(NAMES) + b"%d" % i
        node = Node(parent.path + b"/" + name, 2 if dev != parent.dev else next_ino[dev], dev,
                    parent.depth + 1, parent)
        parent.subdirs.append(node)
        nodes.append(node)
    linked: list[tuple[int, int, int]] = []  # (dev, inode, size) of hard-linked files
    for node in nodes:
        for j in range(rnd.randint(0, 6)):
            next_ino[node.dev] += 1
            kind = rnd.choice([REG, REG, REG, LNK, FIFO, SOCK, CHR])
            size = rnd.randint(0, 10_000)
            ino, nlink = next_ino[node.dev], 1
            same_dev = [x for x in linked if x[0] == node.dev]
            if kind == REG and same_dev and rnd.random() < 0.2:
                _, ino, size = rnd.choice(same_dev)
                nlink = 2
            elif kind == REG and rnd.random() < 0.15:
                linked.append((node.dev, ino, size))
                nlink = 2
            age = rnd.randint(0, 3000) * 86400
            node.rows.append(row(node.path + b"/" + rnd.choice(NAMES) + b"-f%d" % j, ino,
                                 mode=kind, size=size, blocks=(size + 511) // 512, nlink=nlink,
                                 parent=node.inode, depth=node.depth + 1, dev=node.dev,
                                 atime=NOW - age, mtime=NOW - age - 5, uid=1000 + j % 2))
    out = []
    for node in nodes:
        out.extend(node.rows)
        out.append(row(node.path, node.inode, mode=DIR, size=4096, blocks=8,
                       parent=node.parent.inode if node.parent else 0, depth=node.depth,
                       dev=node.dev, fcount=len(node.rows) + len(node.subdirs),
                       uid=1000 + len(node.path) % 3))
    rnd.shuffle(out)
    return out


def write_shards(where: Path, rows: list[bytes]) -> Path:
    """Two shards, one with pwalk's header and one without."""
    where.mkdir(exist_ok=True)
    half = len(rows) // 2
    (where / "a.csv").write_bytes(HEADER + b"".join(rows[:half]))
    (where / "b.csv").write_bytes(b"".join(rows[half:]))
    return where


def read_both(inputs: list, by: str = "direct"):
    """(fast reader's result, path reader's result); each is (reader, totals, hotspots)."""
    results = []
    for fast in (True, False):
        engine = Engine(memory_limit="256MB", threads=2, feeders=2, fast=fast)
        with RankedCrawl(inputs, engine, now=NOW) as crawl:
            crawl.select(RankParams(by=by))
            results.append((crawl.totals.reader, dataclasses.replace(crawl.totals, reader=""),
                            list(crawl.hotspots())))
    return results


@pytest.mark.parametrize("seed", range(6))
def test_fast_reader_equals_path_reader_on_random_crawls(tmp_path: Path, seed: int) -> None:
    src = write_shards(tmp_path / "shards", random_crawl(seed))
    for by in ("direct", "total"):
        (fast_how, fast_totals, fast_rows), (path_how, path_totals, path_rows) = read_both(
            [src], by)
        assert fast_how == "fast reader"
        assert path_how == "path reader (turned off)"
        assert fast_totals == path_totals
        assert fast_rows == path_rows
        assert len(fast_rows) == fast_totals.folders > 60


def test_the_real_sample_takes_the_fast_reader() -> None:
    sample = Path("/work/shared/samples/pwalk-sample.csv")
    if not sample.exists():
        pytest.skip("shared pwalk sample not present")
    (fast_how, fast_totals, fast_rows), (_, path_totals, path_rows) = read_both([sample])
    assert fast_how == "fast reader"
    assert (fast_totals, fast_rows) == (path_totals, path_rows)


def _newline_in_a_file_name(rows: list[bytes]) -> list[bytes]:
    i = next(i for i, r in enumerate(rows) if b",-1,0\n" in r)
    rows[i] = rows[i].replace(b'-f', b'-new\nline,-1,0\n-f', 1)
    return rows


def _directory_twice(rows: list[bytes]) -> list[bytes]:
    """A bind mount crawled twice: the same (st_dev, inode) under a second path."""
    d = next(r for r in rows if not r.endswith(b",-1,0\n") and b'"/lab/r",' not in r)
    first, _, rest = d.partition(b',"')
    return [*rows, first + b',"/lab/r/bind' + rest[rest.index(b'"'):]]


def _orphan_file(rows: list[bytes]) -> list[bytes]:
    return [*rows, row(b"/lab/r/lost.dat", 999_999, size=7, parent=888_888, depth=0)]


def _fcount_too_small(rows: list[bytes]) -> list[bytes]:
    i = next(i for i, r in enumerate(rows) if b'"/lab/r",' in r)
    head, _, _ = rows[i].rstrip(b"\n").rpartition(b",")
    head, _, _ = head.rpartition(b",")
    rows[i] = head + b",0,0\n"
    return rows


@pytest.mark.parametrize(("mutate", "why"), [
    (_newline_in_a_file_name, ""),  # the names pass trips on the fragment, or the counts differ
    (_directory_twice, "share a (st_dev, inode)"),
    (_orphan_file, "parent-inode is not a directory"),
    (_fcount_too_small, "pw_fcount"),
])
def test_crawls_the_fast_reader_refuses_are_read_by_path(tmp_path: Path, mutate,
                                                         why: str) -> None:
    src = tmp_path / "crawl.csv"
    src.write_bytes(HEADER + b"".join(mutate(random_crawl(11, dirs=20))))
    (fast_how, fast_totals, fast_rows), (_, path_totals, path_rows) = read_both([src], "total")
    assert fast_how.startswith("path reader (") and why in fast_how
    assert (fast_totals, fast_rows) == (path_totals, path_rows)


def test_inputs_the_fast_reader_does_not_take(tmp_path: Path) -> None:
    rows = random_crawl(3, dirs=10)
    gz = write_gz(tmp_path / "c.csv.gz", rows)
    (how, *_), _ = read_both([gz])
    assert how == "path reader (not all inputs are plain CSV files)"
    odd = tmp_path / os.fsdecode(b"crawl-\xff.csv")
    odd.write_bytes(HEADER + b"".join(rows))
    (how, *_), _ = read_both([odd])
    assert "not UTF-8" in how


def test_a_file_that_lists_more_lines_than_rows_is_not_trusted(tmp_path: Path) -> None:
    """The fast reader's line count is its guard against a parallel split that lost or
    doubled rows: a name with a newline whose fragments grep drops (both end in ',-1,0')
    still makes rows != lines, and the path reader takes over."""
    rows = random_crawl(5, dirs=10)
    rows.append(row(b"/lab/r/x,-1,0\ny", 777_777, size=3, parent=2, depth=0))
    i = next(i for i, r in enumerate(rows) if b'"/lab/r",' in r)
    head, _, dirsum = rows[i].rstrip(b"\n").rpartition(b",")
    head, _, fcount = head.rpartition(b",")
    rows[i] = b"%s,%d,%s\n" % (head, int(fcount) + 1, dirsum)
    src = tmp_path / "crawl.csv"
    src.write_bytes(HEADER + b"".join(rows))
    (how, fast_totals, fast_rows), (_, path_totals, path_rows) = read_both([src])
    assert "more lines than rows" in how
    assert (fast_totals, fast_rows) == (path_totals, path_rows)


def test_hundreds_of_shards_are_read_in_batches(tmp_path: Path) -> None:
    """More shards than one grep/wc call takes (rank_feed.DIRS_BATCH), half of them with a
    header, one with a newline in its own file name (wc prints such names oddly)."""
    from froster_slurm.rank.feed import DIRS_BATCH

    rows = random_crawl(21, dirs=40)
    shards = tmp_path / "shards"
    shards.mkdir()
    count = DIRS_BATCH + 50
    for i in range(count):
        name = b"s%04d%s.csv" % (i, b"\nodd" if i == 7 else b"")
        part = rows[i::count]
        (shards / os.fsdecode(name)).write_bytes((HEADER if i % 2 else b"") + b"".join(part))
    (fast_how, fast_totals, fast_rows), (_, path_totals, path_rows) = read_both([shards])
    assert fast_how == "fast reader"
    assert (fast_totals, fast_rows) == (path_totals, path_rows)
    assert fast_totals.rows == len(rows)


def test_subtree_figures_match_a_brute_force_over_the_rows(tmp_path: Path) -> None:
    """Totals (bytes, files, allocation, newest times) of every folder, computed here from
    the rows by path prefix -- hard links once per (st_dev, inode) in each subtree -- against
    rank --by total, read both ways."""
    import csv
    import io

    rows = random_crawl(8, dirs=80)
    src = write_shards(tmp_path / "shards", rows)
    parsed = list(csv.reader(io.StringIO(b"".join(rows).decode("latin-1"), newline="")))
    folders = [r[3].encode("latin-1") for r in parsed if int(r[15]) >= 0]
    files = [r for r in parsed if int(r[15]) < 0 and r[11][:3] in ("010", "012")]
    expected = {}
    for folder in folders:
        inside = {}
        for r in files:
            path = r[3].encode("latin-1")
            if path.startswith(folder + b"/"):
                inside[(r[8], r[0]) if int(r[10]) > 1 else id(r)] = r
        got = list(inside.values())
        expected[folder] = (sum(int(r[7]) for r in got), len(got),
                            sum(int(r[9]) for r in got) * 512,
                            max((int(r[13]) for r in got), default=0),
                            max((int(r[12]) for r in got), default=0))
    for fast in (True, False):
        engine = Engine(memory_limit="256MB", threads=2, fast=fast)
        with RankedCrawl([src], engine, now=NOW) as crawl:
            crawl.select(RankParams(by="total"))
            got = {h.folder: (h.total_bytes, h.total_files, h.allocated_bytes, h.newest_mtime,
                              h.newest_atime) for h in crawl.hotspots()}
            assert crawl.totals.reader.startswith("fast" if fast else "path")
        assert got == expected
