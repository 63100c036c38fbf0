"""``froster-slurm rank`` on the command line: outputs, summary placement, config, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

try:  # tests/ on sys.path (no tests/__init__.py) or tests as a package
    from rank_testdata import row, tree_rows, write_csv
except ImportError:
    from tests.rank_testdata import row, tree_rows, write_csv

from froster_slurm.cli import main
from froster_slurm.rank.hotspots import read_hotspots

LATIN1_FOLDER = b"/r/caf\xe9"


@pytest.fixture
def crawl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hand tree (files last used in 2023), ranked with one DuckDB thread."""
    monkeypatch.setenv("FROSTER_SLURM_RANK__THREADS", "1")
    return write_csv(tmp_path / "crawl.csv", tree_rows())


def run(capsysbinary, *args: str) -> tuple[int, bytes, str]:
    code = main(["rank", *args])
    cap = capsysbinary.readouterr()
    return code, cap.out, cap.err.decode()


def test_csv_to_stdout_is_byte_exact_and_summary_goes_to_stderr(crawl: Path,
                                                                 capsysbinary) -> None:
    code, out, err = run(capsysbinary, str(crawl), "--min-size", "0", "--min-avg-size", "0")
    assert code == 0
    assert out.startswith(b"folder,bytes,files,")
    assert b"\n" + LATIN1_FOLDER + b",20,1," in out  # raw byte 0xE9, not UTF-8, not escaped
    assert "folders found            5" in err and "not accessed for" in err


def test_output_file_puts_the_summary_on_stdout(crawl: Path, tmp_path: Path,
                                                capsysbinary) -> None:
    dest = tmp_path / "hotspots.csv"
    code, out, err = run(capsysbinary, str(crawl), "-o", str(dest), "--by", "total",
                         "--min-size", "4KB", "--min-avg-size", "0")
    assert code == 0 and err == ""
    assert b"folders listed           2" in out
    assert [h.folder for h in read_hotspots(dest)] == [b"/r", b"/r/sub"]


def test_json_round_trips_a_non_utf8_folder(crawl: Path, capsysbinary) -> None:
    code, out, _ = run(capsysbinary, str(crawl), "--json", "-q", "--min-size", "1",
                       "--min-avg-size", "0")
    assert code == 0
    assert out.isascii()
    rows = json.loads(out)
    folders = [os.fsencode(r["folder"]) for r in rows]
    assert LATIN1_FOLDER in folders
    cafe = rows[folders.index(LATIN1_FOLDER)]
    assert (cafe["bytes"], cafe["total_bytes"], cafe["depth"]) == (20, 20, 0)


def test_config_defaults_apply_and_flags_override(crawl: Path, capsysbinary,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # defaults: rank.min_size 1GiB -> nothing in the tiny tree is listed
    code, out, _ = run(capsysbinary, str(crawl), "--json", "-q")
    assert code == 0 and json.loads(out) == []
    monkeypatch.setenv("FROSTER_SLURM_RANK__MIN_SIZE", "1000")
    monkeypatch.setenv("FROSTER_SLURM_RANK__MIN_AVG_SIZE", "0")
    code, out, _ = run(capsysbinary, str(crawl), "--json", "-q", "--top", "1")
    assert [os.fsencode(r["folder"]) for r in json.loads(out)] == [b"/r/sub"]


def test_to_parquet_then_rank_the_parquet(crawl: Path, tmp_path: Path, capsysbinary) -> None:
    pq = tmp_path / "crawl.parquet"
    code, out, _ = run(capsysbinary, "--to-parquet", str(pq), str(crawl))
    assert code == 0 and b"14 crawl rows" in out
    code, out, _ = run(capsysbinary, str(pq), "--json", "-q", "--min-size", "0",
                       "--min-avg-size", "0")
    assert code == 0 and len(json.loads(out)) == 5


@pytest.mark.parametrize(("args", "code", "message"), [
    (["{dir}/missing.csv"], 66, "input not found"),
    (["{crawl}", "--min-size", "lots"], 64, "not a size"),
    (["{crawl}", "--older-than", "soon"], 64, "not an age"),
    (["{crawl}", "--by", "sideways"], 64, "rank.by: 'sideways' is not valid"),
    (["{crawl}", "--owner", "no-such-user-here"], 64, "unknown user"),
    (["{notpwalk}"], 65, "not a pwalk CSV"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(crawl: Path, tmp_path: Path, capsysbinary,
                                                 args: list[str], code: int,
                                                 message: str) -> None:
    notpwalk = tmp_path / "people.csv"
    notpwalk.write_text("name,age\nada,36\n")
    subst = {"dir": str(tmp_path), "crawl": str(crawl), "notpwalk": str(notpwalk)}
    got, out, err = run(capsysbinary, *[a.format(**subst) for a in args])
    assert got == code
    assert out == b""
    assert err.count("\n") == 1 and err.startswith("froster-slurm: error: ") and message in err


def test_owner_by_number_and_older_than(crawl: Path, capsysbinary) -> None:
    code, out, _ = run(capsysbinary, str(crawl), "--json", "-q", "--min-size", "0",
                       "--min-avg-size", "0", "--owner", "1001")
    assert [os.fsencode(r["folder"]) for r in json.loads(out)] == [b"/r/sub"]
    # the tree's files were last used in 2023: "older than 1 day" keeps all folders with files
    code, out, _ = run(capsysbinary, str(crawl), "--json", "-q", "--min-size", "1",
                       "--min-avg-size", "0", "--older-than", "1d")
    assert len(json.loads(out)) == 4


def test_rows_with_newline_names_from_the_builtin_crawler(tmp_path: Path, capsysbinary) -> None:
    rows = [row(b"/r", 1, mode=0o040755, parent=0, depth=-1, fcount=1),
            row(b"/r/two\nlines", 2, mode=0o040755, fcount=1),
            row(b"/r/two\nlines/a\tb", 3, size=5, parent=2, depth=1)]
    src = write_csv(tmp_path / "nl.csv", rows)
    code, out, _ = run(capsysbinary, str(src), "--json", "-q", "--min-size", "1",
                       "--min-avg-size", "0", "--by", "total")
    assert code == 0
    assert [os.fsencode(r["folder"]) for r in json.loads(out)] == [b"/r", b"/r/two\nlines"]


def test_a_row_that_cannot_be_real_is_refused(tmp_path: Path, capsysbinary) -> None:
    """pwalk's overflow row on a path longer than PATH_MAX (issue 19, D6): a directory at
    depth 7e18 in a crawl of three directories, inode and uid made of the path's bytes."""
    from froster_slurm.crawl import crawl as crawl_tree

    root = tmp_path / "t"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f.dat").write_bytes(b"x" * 10)
    good = tmp_path / "good.csv"
    crawl_tree([root], good, engine="builtin", workers=1)
    code, _, err = run(capsysbinary, str(good), "--min-size", "0", "--min-avg-size", "0")
    assert code == 0, err
    bad = tmp_path / "bad.csv"
    garbage = (b'7234017283807667300,7234017283807667300,7234017283807667299,"%s/a/'
               b'ddddddddddd","",1684300900,1684300900,7234017283807667300,7234017283807667300,'
               b'7234017283807667300,1684300900,"14431062144",7234017283807667300,'
               b'28257880014873700,1796194715,2,0\n' % os.fsencode(root))
    bad.write_bytes(good.read_bytes() + garbage)
    code, out, err = run(capsysbinary, str(bad), "--min-size", "0", "--min-avg-size", "0")
    assert code != 0 and out == b""
    assert "1 directory row(s) cannot be real" in err and "7234017283807667299" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
