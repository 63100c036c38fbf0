"""rank as a library: exact bytes in and out, hand-computed figures, filters, input forms."""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path

import duckdb
import pytest

try:  # tests/ on sys.path (no tests/__init__.py) or tests as a package
    from rank_testdata import DAY, EXPECTED, HEADER, NOW, row, tree_rows, write_csv, write_gz
except ImportError:
    from tests.rank_testdata import DAY, EXPECTED, HEADER, NOW, row, tree_rows, write_csv, write_gz

from froster_slurm.errors import DataError, NotFoundError
from froster_slurm.rank import loader as rank_load
from froster_slurm.rank.hotspots import read_hotspots, write_hotspots
from froster_slurm.rank.inputs import plan_groups, resolve_inputs
from froster_slurm.rank.ranking import (
    Engine,
    RankedCrawl,
    RankParams,
    rank_to_file,
    to_parquet,
    user_name,
)
from froster_slurm.rank.sql import MACROS

SAMPLE = Path("/work/shared/samples/pwalk-sample.csv")
ENGINE = Engine(memory_limit="256MB", threads=1, feeders=1)
ALL = RankParams(by="direct")


def ranked(inputs, params: RankParams = ALL, engine: Engine = ENGINE, now: int = NOW):
    with RankedCrawl(inputs, engine, now=now) as crawl:
        crawl.select(params)
        return crawl.totals, list(crawl.hotspots())


def by_folder(hotspots):
    return {h.folder: h for h in hotspots}


def figures(h):
    return (h.bytes, h.files, h.total_bytes, h.total_files, h.allocated_bytes, h.newest_mtime,
            h.newest_atime, h.depth, h.owner)


# --- exact bytes --------------------------------------------------------------------------------

@pytest.mark.skipif(not SAMPLE.exists(), reason="shared pwalk sample not present")
def test_real_pwalk_sample_loads_every_row_and_byte(tmp_path: Path) -> None:
    """Every row of the real sample, names compared as bytes (Latin-1 and UTF-8 side by side)."""
    raw = SAMPLE.read_bytes()
    expected = sorted(r[3].encode("latin-1") for r in
                      csv.reader(raw.decode("latin-1").splitlines()[1:]))
    assert b"/data/lab/proj/raw/caf\xe9.latin1" in expected
    assert "/data/lab/proj/raw/café.utf8".encode() in expected
    out = tmp_path / "sample.parquet"
    assert to_parquet([SAMPLE], out, ENGINE) == len(expected) == 11
    names = duckdb.sql(f"SELECT filename FROM read_parquet('{out}')").fetchall()
    assert sorted(n.encode("latin-1") for (n,) in names) == expected
    totals, hs = ranked([SAMPLE])
    assert (totals.rows, totals.folders, totals.files, totals.bytes) == (11, 3, 8, 4211)
    got = by_folder(hs)
    # raw: b.dat 1200 + a.dat 3000 + three empty files; pw_dirsum (4200) agrees here, but the
    # root's pw_dirsum (8201) counts two subdirectory inodes: our direct bytes are the symlink
    assert figures(got[b"/data/lab/proj/raw"])[:4] == (4200, 5, 4200, 5)
    assert figures(got[b"/data/lab/proj"])[:4] == (9, 1, 4211, 8)
    assert figures(got[b"/data/lab/proj/results"])[:4] == (2, 2, 2, 2)


def test_every_byte_value_in_a_folder_name_round_trips(tmp_path: Path) -> None:
    """Bytes 0x01-0xFF but '/', including 0x80-0x9F (which DuckDB's own latin-1 decoder
    refuses), quote, comma, newline and tab (the builtin crawler keeps those)."""
    name = bytes(b for b in range(1, 256) if b != ord("/"))
    folder = b"/r/" + name
    rows = [row(b"/r", 1, mode=0o040755, parent=0, depth=-1, fcount=1),
            row(folder, 2, mode=0o040755, fcount=1),
            row(folder + b"/f\n\t\x9f.dat", 3, size=11, parent=2, depth=1)]
    src = write_csv(tmp_path / "crawl.csv", rows)
    totals, hs = ranked([src])
    assert totals.rows == 3
    got = by_folder(hs)
    assert got[folder].bytes == 11 and got[b"/r"].total_bytes == 11
    out = tmp_path / "hotspots.csv"
    write_hotspots(out, hs)
    assert {h.folder for h in read_hotspots(out)} == {b"/r", folder}


# --- figures ------------------------------------------------------------------------------------

def test_hand_computed_direct_and_total_figures(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "tree.csv", tree_rows())
    totals, hs = ranked([src])
    got = by_folder(hs)
    assert set(got) == set(EXPECTED)
    for folder, (b, f, tb, tf, alloc, mt, at, depth, uid) in EXPECTED.items():
        assert figures(got[folder]) == (b, f, tb, tf, alloc, mt, at, depth, user_name(uid)), \
            folder
        assert got[folder].avg_file_bytes == (b // f if f else 0)
    assert (totals.rows, totals.folders, totals.files, totals.bytes) == (14, 5, 6, 4132)
    assert [h.folder for h in hs] == [b"/r/sub", b"/r/sub/deep", b"/r", b"/r/caf\xe9",
                                      b"/r/empty"]  # by direct bytes, descending


def test_total_scope_ages_and_allocation_cover_the_subtree(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "tree.csv", tree_rows())
    _, hs = ranked([src], RankParams(by="total"))
    r = by_folder(hs)[b"/r"]
    assert r.newest_mtime == NOW - 100 * DAY  # deep/d.dat, not only /r's own files
    assert r.allocated_bytes == 5 * 8 * 512  # a, b (once), c, d, x; the symlink has 0 blocks
    assert r.avg_file_bytes == 4132 // 6
    assert [h.folder for h in hs][:2] == [b"/r", b"/r/sub"]


def test_not_accessed_summary_counts_whole_cold_folders(tmp_path: Path) -> None:
    totals, _ = ranked([write_csv(tmp_path / "tree.csv", tree_rows())])
    old = dict(totals.not_accessed)
    # folders last used 400 days ago: /r/sub (4000) and /r/café (20); /r and deep 100 days ago
    assert old[365] == 4020 and old[730] == 0
    assert old[90] == 4020 + 105 + 1007 and old[30] == old[90]


# --- filters ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("params", "expected"), [
    (RankParams(min_size=1007), [b"/r/sub", b"/r/sub/deep"]),
    (RankParams(min_size=1008), [b"/r/sub"]),
    (RankParams(min_avg_size=52), [b"/r/sub", b"/r/sub/deep", b"/r"]),  # 105 // 2
    (RankParams(min_avg_size=503), [b"/r/sub", b"/r/sub/deep"]),  # 1007 // 2
    (RankParams(min_avg_size=504), [b"/r/sub"]),
    (RankParams(older_than=365 * DAY), [b"/r/sub", b"/r/caf\xe9", b"/r/empty"]),
    (RankParams(older_than=365 * DAY, by="total"), [b"/r/caf\xe9", b"/r/empty"]),
    (RankParams(top=2), [b"/r/sub", b"/r/sub/deep"]),
    (RankParams(owner_uid=1001), [b"/r/sub"]),
    (RankParams(by="total", min_size=4007), [b"/r", b"/r/sub"]),
])
def test_thresholds_order_and_top(tmp_path: Path, params: RankParams, expected: list) -> None:
    _, hs = ranked([write_csv(tmp_path / "tree.csv", tree_rows())], params)
    assert [h.folder for h in hs] == expected


def test_listing_size_does_not_count_nested_subtrees_twice(tmp_path: Path) -> None:
    with RankedCrawl([write_csv(tmp_path / "t.csv", tree_rows())], ENGINE, now=NOW) as crawl:
        assert crawl.select(RankParams(by="total", min_size=1)).bytes == 4132
        assert crawl.select(RankParams(by="direct", min_size=1)).bytes == 105 + 4000 + 1007 + 20


def test_listing_size_counts_each_listed_subtree_once_on_random_trees(tmp_path: Path) -> None:
    """The SQL behind Listing.bytes against a brute force over the listed folders: sibling
    names that share a prefix (/a, /ab, /a b, /a-) and sort around '/', bytes above 0x7f, and
    the root '/' itself holding everything."""
    rnd = random.Random(7)
    parts = [b"a", b"ab", b"a b", b"a-", b"a.", b"\xe9", b"a\xff", b"!"]
    folders = {b"/"}
    for _ in range(120):
        depth = rnd.randint(1, 4)
        folders.add(b"/" + b"/".join(rnd.choice(parts) for _ in range(depth)))
    folders |= {f[:i] for f in list(folders) for i in range(1, len(f)) if f[i:i + 1] == b"/"}
    ino = {f: 10 + i for i, f in enumerate(sorted(folders))}
    rows = []
    for f in sorted(folders):
        parent = f.rpartition(b"/")[0] or b"/"
        rows.append(row(f, ino[f], mode=0o040755, parent=ino.get(parent, 0) if f != b"/" else 0,
                        fcount=1))
        name = (f.rstrip(b"/") + b"/file")
        rows.append(row(name, 100_000 + ino[f], size=rnd.randint(1, 1000), parent=ino[f]))
    src = write_csv(tmp_path / "t.csv", rows)

    def inside(outer: bytes, inner: bytes) -> bool:
        return outer != inner and (outer == b"/" or inner.startswith(outer + b"/"))

    with RankedCrawl([src], ENGINE, now=NOW) as crawl:
        for min_size in (0, 300, 2000, 10_000):
            listing = crawl.select(RankParams(by="total", min_size=min_size))
            listed = list(crawl.hotspots())
            expected = sum(h.total_bytes for h in listed
                           if not any(inside(o.folder, h.folder) for o in listed))
            assert (listing.folders, listing.bytes) == (len(listed), expected), min_size


# --- input forms --------------------------------------------------------------------------------

def test_shards_glob_gzip_and_parquet_equal_one_file(tmp_path: Path) -> None:
    rows = tree_rows()
    one = ranked([write_csv(tmp_path / "one.csv", rows)])[1]
    shards = tmp_path / "shards"
    shards.mkdir()
    random.Random(4).shuffle(rows)  # pwalk's row order is random anyway
    write_csv(shards / "shard-0000.csv", rows[:5], header=True)
    write_csv(shards / "shard-0001.csv", rows[5:9], header=False)  # pwalk without --header
    write_gz(shards / "shard-0002.csv.gz", rows[9:], header=True)
    (shards / "shard-0003.csv").write_bytes(b"")  # an empty shard
    (shards / "notes.txt").write_text("not a shard")
    assert ranked([shards])[1] == one
    assert ranked([str(shards / "shard-*")])[1] == one
    pq = tmp_path / "crawl.parquet"
    assert to_parquet([shards], pq, ENGINE) == 14
    assert ranked([pq])[1] == one
    assert ranked([write_gz(tmp_path / "one.csv.gz", rows)])[1] == one


def test_same_file_twice_is_read_once_but_overlapping_shards_fail(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "t.csv", tree_rows())
    assert ranked([src, src, tmp_path])[0].rows == 14
    write_csv(tmp_path / "copy.csv", tree_rows()[:3])
    with pytest.raises(DataError, match="more than once"):
        ranked([tmp_path])


def test_missing_directory_row_is_reported_not_lost(tmp_path: Path) -> None:
    rows = [r for r in tree_rows() if b'"/r/sub/deep",' not in r]
    totals, hs = ranked([write_csv(tmp_path / "t.csv", rows)])
    assert (totals.orphan_files, totals.orphan_folders) == (2, 1)
    assert b"/r/sub/deep" not in by_folder(hs)
    assert by_folder(hs)[b"/r/sub"].total_bytes == 4007  # its files still count above it


def test_names_with_newlines_survive_a_cut_inside_a_quoted_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feeders cut big files at newlines; a cut inside a quoted name is detected (odd quote
    count) and the file is read again whole.  Pad until the cut really lands inside a name."""
    engine = Engine(memory_limit="256MB", threads=1, feeders=2, piece_bytes=3000)
    body = [row(b"/r", 1, mode=0o040755, parent=0, depth=-1, fcount=200)]
    body += [row(b"/r/n%d\nnext,\"line\"" % i, 100 + i, size=i) for i in range(200)]
    for pad in range(200):
        rows = [row(b"/r/p%d" % j, 10_000 + j, size=1) for j in range(pad)] + body
        src = write_csv(tmp_path / "nl.csv", rows)
        groups = plan_groups(resolve_inputs([src]), engine.piece_bytes)
        starts = sorted(p.start for _, pieces in groups for p in pieces)
        assert len(starts) > 3
        data = src.read_bytes()
        if any(data[:s].count(b'"') % 2 for s in starts):
            break
    else:
        pytest.fail("could not place a cut inside a quoted name")
    attempts = []
    real_plan = rank_load.Loader._plan
    monkeypatch.setattr(rank_load.Loader, "_plan",
                        lambda self, cut: attempts.append(cut) or real_plan(self, cut))
    totals, hs = ranked([src], engine=engine)
    assert totals.reader.startswith("path reader")  # the fast reader stood aside
    assert attempts == [True, False]  # the cut was caught and the file read again whole
    assert totals.rows == len(rows)
    assert by_folder(hs)[b"/r"].bytes == sum(range(200)) + pad


@pytest.mark.parametrize(("content", "message"), [
    (b"a,b,c\n1,2,3\n", "not a pwalk CSV"),
    (HEADER + row(b"/r", 1)[:-1], "cut off"),
    (row(b"/r", 1).replace(b",1000,1000,", b",x,1000,"), "field 6"),
    (row(b"/r", 1) + row(b"/r/x", 2).replace(b",1000,1000,", b",,1000,"), "valid pwalk row"),
    (row(b"/r", 1) + b'3,1,0,"/r/unclosed,"",0,0,0,1,0,1,"0100644",1,1,1,-1,0\n',
     "valid pwalk row|quotes"),
])
def test_malformed_crawls_fail_with_a_sentence(tmp_path: Path, content: bytes,
                                               message: str) -> None:
    src = tmp_path / "bad.csv"
    src.write_bytes(content)
    with pytest.raises(DataError, match=message):
        ranked([src])


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        ranked([tmp_path / "nope.csv"])
    with pytest.raises(NotFoundError):
        ranked([str(tmp_path / "*.csv")])
    with pytest.raises(NotFoundError):
        ranked([tmp_path])  # a directory without shards


def test_foreign_parquet_is_refused(tmp_path: Path) -> None:
    pq = tmp_path / "other.parquet"
    duckdb.sql(f"COPY (SELECT 'x' AS filename) TO '{pq}' (FORMAT parquet)")
    with pytest.raises(DataError, match="--to-parquet"):
        ranked([pq])


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"")
    (tmp_path / "b.csv").write_bytes(HEADER)
    totals, hs = ranked([tmp_path])
    assert (totals.rows, totals.folders, hs) == (0, 0, [])


def test_bounded_memory_limit_is_honoured(tmp_path: Path) -> None:
    """The plan holds only aggregates and DuckDB spills them: 100k folders with long names
    (~50 MB of CSV) under a 64 MB limit.  (bench/bench_rank.py shows 10M rows.)"""
    rows = [row(b"/r", 1, mode=0o040755, parent=0, depth=-1, fcount=100_000)]
    for d in range(100_000):
        base = b"/r/some/longer/path/to/a/folder/with/a/long/name/number-%07d" % d
        rows.append(row(base, 10 + 3 * d, mode=0o040755, fcount=2))
        rows.append(row(base + b"/a.dat", 11 + 3 * d, size=d))
        rows.append(row(base + b"/b.dat", 12 + 3 * d, size=1))
    src = write_csv(tmp_path / "many.csv", rows)
    engine = Engine(memory_limit="64MB", threads=1, feeders=1, temp_dir=str(tmp_path))
    totals, hs = ranked([src], RankParams(top=3), engine)
    assert totals.folders == 100_001 and totals.bytes == sum(range(100_000)) + 100_000
    assert [h.bytes for h in hs] == [100_000, 99_999, 99_998]
    assert os.listdir(tmp_path) == ["many.csv"]  # the work directory is cleaned up


# --- the SQL path helpers against Python on random byte strings --------------------------------

def test_parent_and_ancestors_macros_match_python() -> None:
    rng = random.Random(7)
    alphabet = ["/", "/", "/", "a", ".", "\\", "\xe9", "\x85", "\n", "\r", '"', ",", "\xff"]
    paths = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
             for _ in range(5000)} | {"/", "//x", "/x", "x", "/data//x", "rel/x"}
    con = duckdb.connect()
    con.execute(MACROS)
    got = con.execute("SELECT p, fs_parent(p), fs_ancestors(p, 1) FROM (SELECT unnest(?) AS p)",
                      [sorted(paths)]).fetchall()

    def parent(p: str) -> str | None:
        i = p.rfind("/")
        return None if i < 0 else (p[:i] or "/")

    def ancestors(p: str) -> set[str]:
        out = {p[:i] for i in range(1, len(p)) if p[i] == "/"} | {p}
        return out | ({"/"} if p.startswith("/") else set())

    for p, par, anc in got:
        assert par == parent(p), repr(p)
        assert set(anc) == ancestors(p) and len(anc) == len(set(anc)), repr(p)
    # with a minimum length: exactly the ancestors that long, and the path itself
    for minlen in (2, 3, 5):
        got = con.execute("SELECT p, fs_ancestors(p, ?) FROM (SELECT unnest(?) AS p)",
                          [minlen, sorted(paths)]).fetchall()
        for p, anc in got:
            assert set(anc) == {a for a in ancestors(p) if len(a) >= minlen} | {p}, repr(p)


def test_input_paths_stay_bytes(tmp_path: Path) -> None:
    """A shard directory whose own name is not UTF-8 is listed and read by its bytes (the
    feeders open it; DuckDB only sees the FIFOs)."""
    odd = os.fsencode(tmp_path) + b"/d\xe9"
    os.mkdir(odd)
    write_csv(Path(os.fsdecode(odd + b"/s.csv")), tree_rows())
    files = resolve_inputs([odd])
    assert files[0].path == odd + b"/s.csv"
    assert ranked([odd])[0].rows == 14


def test_rank_to_file_for_the_pipeline_lists_every_folder(tmp_path: Path) -> None:
    """jobs.rank writes all folders, then applies the run's rules with selection."""
    dest = tmp_path / "hotspots.csv"
    totals, listing = rank_to_file([write_csv(tmp_path / "t.csv", tree_rows())], dest,
                                   memory_limit="256MB", threads=1, now=NOW)
    assert listing.folders == totals.folders == 5
    got = {h.folder: figures(h) for h in read_hotspots(dest)}
    assert got[b"/r/sub"][:4] == EXPECTED[b"/r/sub"][:4]
    assert got[b"/r/caf\xe9"][:4] == EXPECTED[b"/r/caf\xe9"][:4]


def test_sql_built_lines_are_byte_identical_to_write_hotspots(tmp_path: Path) -> None:
    """rank writes hotspots as lines built in SQL -- streamed (hotspots.write_hotspot_lines,
    for stdout) or written by DuckDB (RankedCrawl.write_hotspots, for -o) -- and both must be
    exactly what hotspots.write_hotspots writes, for any folder name."""
    from froster_slurm.rank.hotspots import write_hotspot_lines

    rng = random.Random(11)
    alphabet = [bytes([b]) for b in range(1, 256) if b != ord("/")] + [b",", b'"', b"\n", b"\r"]
    rows = [row(b"/r", 1, mode=0o040755, parent=0, depth=-1, fcount=300)]
    for i in range(300):
        name = b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        folder = b"/r/%d" % i + name
        rows.append(row(folder, 10 + 2 * i, mode=0o040755, fcount=1, uid=10**6 + i % 3))
        rows.append(row(folder + b"/f", 11 + 2 * i, size=i, parent=10 + 2 * i, depth=1))
    with RankedCrawl([write_csv(tmp_path / "c.csv", rows)], ENGINE, now=NOW) as crawl:
        crawl.select(ALL)
        with open(tmp_path / "fast.csv", "w", encoding="latin-1", newline="") as f:
            write_hotspot_lines(f, crawl.hotspot_lines(batch=7))
        crawl.write_hotspots(tmp_path / "copy.csv")  # DuckDB's COPY, bytes restored after
        write_hotspots(tmp_path / "slow.csv", crawl.hotspots())
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()
    assert (tmp_path / "copy.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()
    assert len(read_hotspots(tmp_path / "fast.csv")) == 301


def test_csv_field_macro_quotes_like_the_hotspots_writer() -> None:
    from froster_slurm.rank.hotspots import _field

    rng = random.Random(3)
    texts = ["".join(rng.choice(",\"\n\r a\xe9\x85\t;") for _ in range(rng.randint(0, 6)))
             for _ in range(3000)]
    con = duckdb.connect()
    con.execute(MACROS)
    got = con.execute("SELECT t, csv_field(t) FROM (SELECT unnest(?::VARCHAR[]) AS t)",
                      [texts]).fetchall()
    for text, field in got:
        assert field == _field(text), repr(text)
        assert next(csv.reader(io.StringIO(field + ",x\n", newline=""))) == [text, "x"]


def test_folder_with_a_bare_carriage_return_round_trips(tmp_path: Path) -> None:
    """Python's csv writer leaves a lone CR unquoted and its reader splits the row there;
    the hotspots writer quotes it (fixed in hotspots._field)."""
    folder = b"/r/a\rb"
    rows = [row(b"/r", 1, mode=0o040755, parent=0, depth=-1, fcount=1),
            row(folder, 2, mode=0o040755, fcount=1), row(folder + b"/f", 3, size=4, parent=2)]
    _, hs = ranked([write_csv(tmp_path / "cr.csv", rows)])
    write_hotspots(tmp_path / "h.csv", hs)
    assert {h.folder for h in read_hotspots(tmp_path / "h.csv")} == {b"/r", folder}


def test_first_row_with_a_newline_in_its_name_is_recognised(tmp_path: Path) -> None:
    """pwalk without --header, first row from the builtin crawler with a raw newline."""
    rows = [row(b"/r/a\nb", 2, size=3),
            row(b"/r", 1, mode=0o040755, parent=0, depth=-1, fcount=1)]
    totals, hs = ranked([write_csv(tmp_path / "nl.csv", rows, header=False)])
    assert totals.rows == 2 and by_folder(hs)[b"/r"].bytes == 3


@pytest.mark.timeout(60)
def test_a_feeder_that_never_starts_is_an_error_not_a_hang(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB waits in open() on a FIFO nobody opens: the loader must notice the dead feeder."""
    from froster_slurm.rank import feed as rank_feed

    monkeypatch.setattr(rank_feed.sys, "executable", "/bin/false")
    with pytest.raises(DataError, match="feeder failed"):
        ranked([write_csv(tmp_path / "t.csv", tree_rows())])
