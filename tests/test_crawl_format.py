"""The builtin engine writes pwalk's format: golden rows from the real sample, exact names."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from froster_slurm.crawl import HEADER, crawl, iter_rows
from froster_slurm.crawl.pwalkcsv import extension, format_row

SAMPLE = Path("/work/shared/samples/pwalk-sample.csv")
SAMPLE_ROOT = b"/data/lab/proj"


def rows_by_path(csv_path: Path) -> dict[bytes, list[bytes]]:
    rows = list(iter_rows(csv_path))
    assert all(len(r) == 17 for r in rows)
    by_path = {r[3]: r for r in rows}
    assert len(by_path) == len(rows), "a path appears twice"
    return by_path


def make_sample_tree(root: Path) -> None:
    """The tree the sample was taken from (pwalk-sample.csv): same names, sizes, modes."""
    raw, results = root / "raw", root / "results"
    for d in (root, raw, results):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
    files = {raw / "b.dat": 1200, raw / "a.dat": 3000, results / "sum.txt": 2,
             os.fsdecode(bytes(raw) + b"/tab\tname"): 0, raw / "café.utf8": 0,
             os.fsdecode(bytes(raw) + b"/caf\xe9.latin1"): 0, results / 'q"uote,comma.txt': 0}
    for path, size in files.items():
        with open(path, "wb") as f:
            f.write(b"x" * size)
        os.chmod(path, 0o644)
    os.utime(raw / "a.dat", (1577836800, 1577836800))
    os.symlink("raw/a.dat", root / "link")  # 9 bytes, like the sample's link


def test_header_is_pwalks():
    assert SAMPLE.read_bytes().split(b"\n", 1)[0] + b"\n" == HEADER


def test_golden_rows_match_the_real_pwalk_sample(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    make_sample_tree(root)
    broot = os.fsencode(root)
    crawl([root], tmp_path / "warm.csv", engine="builtin", workers=1)  # settle dir atimes
    summary = crawl([root], tmp_path / "c.csv", engine="builtin", workers=1)
    assert (summary.entries, summary.directories, summary.errors) == (11, 3, 0)
    ours = rows_by_path(tmp_path / "c.csv")
    sample = list(iter_rows(SAMPLE))
    assert len(sample) == len(ours) == 11
    for srow in sample:
        # The one documented difference: pwalk deleted the tab from "tab\tname"; we keep it.
        spath = srow[3].replace(b"/tabname", b"/tab\tname")
        path = broot + spath[len(SAMPLE_ROOT):]
        row = ours[path]
        st = os.lstat(path)
        parent = 0 if path == broot else os.lstat(os.path.dirname(path)).st_ino
        # Environment-specific columns come from lstat; the rest must equal pwalk's output.
        expected = [str(st.st_ino).encode(), str(parent).encode(), srow[2], path, srow[4],
                    str(st.st_uid).encode(), str(st.st_gid).encode(), srow[7],
                    str(st.st_dev).encode(), str(st.st_blocks).encode(), srow[10], srow[11],
                    str(int(st.st_atime)).encode(), str(int(st.st_mtime)).encode(),
                    str(int(st.st_ctime)).encode(), srow[15], srow[16]]
        if os.lstat(root).st_size != 4096:  # dir sizes are fs-specific: 4096 on ext4
            expected[7], expected[16] = row[7], row[16]
        assert row == expected, path
    assert ours[broot + b"/raw/a.dat"][13] == b"1577836800"
    assert ours[broot][2] == b"-1" and ours[broot][1] == b"0"


def test_raw_bytes_of_quoted_names(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / 'q"uote,comma.txt').write_bytes(b"")
    crawl([root], tmp_path / "c.csv", engine="builtin", workers=1)
    data = (tmp_path / "c.csv").read_bytes()
    assert b'/q""uote,comma.txt","txt",' in data


@pytest.mark.parametrize("name,ext", [
    (b"a.dat", b"dat"), (b"a.b.c", b"c"), (b"noext", b""), (b".bashrc", b""),
    (b".hidden.tar", b"tar"), (b"trailing.", b""), (b"v1.2", b"2"), (b"caf\xe9.latin1", b"latin1"),
])
def test_extension_rule(name, ext):
    assert extension(name) == ext


NAMES = [b"caf\xe9.latin1", "café.utf8".encode(), b"new\nline.txt", b"tab\tname",
         b'q"uote,comma.txt', b"-leading-dash", b"--", b" spaces  here ", b"back\\slash",
         b"cr\rname", b"ctl\x01\x1f\x7f", b"$(touch pwned)", b"semi;colon", b".bashrc",
         b"trailing.", b"\xff\xfe", b"'single'"]


def make_odd_tree(root: Path) -> None:
    broot = os.fsencode(root)
    os.mkdir(broot)
    for d in (b"", b"/dir\nwith newline", b"/-dash dir", b'/"quoted" dir.d', b"/\xe9t\xe9"):
        if d:
            os.mkdir(broot + d)
        for name in NAMES:
            with open(broot + d + b"/" + name, "wb") as f:
                f.write(name)


def walk_bytes(root: bytes) -> set[bytes]:
    found = {root}
    for dirpath, dirnames, filenames in os.walk(root):
        found.update(dirpath + b"/" + n for n in dirnames + filenames)
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_odd_names_round_trip_to_exact_bytes(tmp_path, workers):
    root = tmp_path / "odd"
    make_odd_tree(root)
    out = tmp_path / "c.csv"
    crawl([root], out, engine="builtin", workers=workers)
    # A real CSV parser reading Latin-1 gets every name back byte for byte.
    with open(out, encoding="latin-1", newline="") as f:
        rows = list(csv.reader(f, strict=True))
    assert rows[0] == HEADER.decode().rstrip("\n").replace('"', "").split(",")
    paths = {r[3].encode("latin-1") for r in rows[1:]}
    assert paths == walk_bytes(os.fsencode(root))
    assert len(rows) - 1 == len(paths)


def test_rows_equal_the_reference_formatter(tmp_path):
    """The engine's inlined template and format_row (the readable reference) agree."""
    root = tmp_path / "odd"
    make_odd_tree(root)
    os.symlink(b"\xff target", os.fsencode(root) + b"/sym\nlink")
    crawl([root], tmp_path / "warm.csv", engine="builtin", workers=1)
    crawl([root], tmp_path / "c.csv", engine="builtin", workers=1)
    data = (tmp_path / "c.csv").read_bytes()
    rows = list(iter_rows(tmp_path / "c.csv"))
    for r in rows:
        path = r[3]
        st = os.lstat(path)
        fcount, dirsum = int(r[15]), int(r[16])
        if path == os.fsencode(root):
            parent, depth = 0, -1
        else:
            parent = os.lstat(os.path.dirname(path)).st_ino
            depth = path[len(os.fsencode(root)) + 1:].count(b"/")
        assert format_row(st, path, parent, depth, fcount, dirsum) in data
    assert len(rows) == len(walk_bytes(os.fsencode(root)))


def test_directory_counts_are_direct_not_recursive(tmp_path):
    root = tmp_path / "t"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "f").write_bytes(b"12345")
    (root / "sub" / "deep" / "g").write_bytes(b"1" * 100)
    os.symlink("nowhere", root / "sub" / "dangling")
    crawl([root], tmp_path / "c.csv", engine="builtin", workers=1)
    rows = rows_by_path(tmp_path / "c.csv")
    sub = rows[os.fsencode(root / "sub")]
    deep_size = os.lstat(root / "sub" / "deep").st_size
    assert sub[15] == b"3"  # f, deep, dangling: every kind counts
    assert int(sub[16]) == 5 + deep_size + len("nowhere")
    assert rows[os.fsencode(root / "sub" / "f")][15:] == [b"-1", b"0"]
    assert rows[os.fsencode(root / "sub" / "dangling")][11] == b"0120777"


def test_relative_root_and_trailing_slash_kept_as_typed(tmp_path, monkeypatch):
    (tmp_path / "rel" / "d").mkdir(parents=True)
    (tmp_path / "rel" / "d" / "f").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    crawl(["rel/"], "c.csv", engine="builtin", workers=1)
    paths = set(rows_by_path(tmp_path / "c.csv"))
    assert paths == {b"rel/", b"rel//d", b"rel//d/f"}


@pytest.mark.parametrize("workers,threads", [(2, 1), (1, 3), (2, 2)])
def test_parallel_output_equals_inline(tmp_path, workers, threads):
    root = tmp_path / "t"
    for a in range(6):
        for b in range(4):
            d = root / f"d{a}" / f"e{b}"
            d.mkdir(parents=True)
            for c in range(a * 3):
                (d / f"f{c}.x").write_bytes(b"x" * c)
    make_odd_tree(root / "odd")
    crawl([root], tmp_path / "warm.csv", engine="builtin", workers=1)
    one = crawl([root], tmp_path / "one.csv", engine="builtin", workers=1)
    many = crawl([root], tmp_path / "many.csv", engine="builtin", workers=workers,
                 threads=threads)
    assert (one.entries, one.directories) == (many.entries, many.directories)
    a = sorted(iter_rows(tmp_path / "one.csv"))
    b = sorted(iter_rows(tmp_path / "many.csv"))
    assert a == b
    assert (tmp_path / "many.csv").read_bytes().startswith(HEADER)


def test_iter_rows_reads_what_csv_module_reads(tmp_path):
    text = HEADER + b'1,0,-1,"a\nb","",0,0,0,0,0,1,"0040755",0,0,0,0,0\n'
    (tmp_path / "x.csv").write_bytes(text)
    rows = list(iter_rows(tmp_path / "x.csv"))
    assert rows[0][3] == b"a\nb"
    assert list(csv.reader(io.StringIO(text.decode("latin-1"), newline="")))[1][3] == "a\nb"
