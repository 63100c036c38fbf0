"""`froster-slurm crawl` on the command line: summary, exit codes, config layering."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from froster_slurm.cli.crawl_cmd import _ProgressLine
from froster_slurm.crawl import iter_rows
from froster_slurm.crawl.builtin import CrawlOptions, walk_inline
from froster_slurm.crawl.driver import root_item

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env = {k: v for k, v in env.items() if not k.startswith("FROSTER_SLURM_")}
    env["PYTHONPATH"] = str(REPO)
    env["XDG_CONFIG_HOME"] = "/nonexistent"
    env["FROSTER_SLURM_SITE_CONFIG"] = "/nonexistent/site.toml"
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "froster_slurm", "crawl", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_clean_crawl_prints_one_summary_line_and_exits_0(tmp_path):
    (tmp_path / "t" / "d").mkdir(parents=True)
    (tmp_path / "t" / "d" / "f").write_bytes(b"1")
    proc = cli(str(tmp_path / "t"), "-o", str(tmp_path / "c.csv"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert "3 entries (2 directories)" in lines[0] and "0 errors" in lines[0]
    assert proc.stderr == ""  # not a terminal: no progress line


def test_bad_roots_are_usage_errors(tmp_path):
    missing = cli(str(tmp_path / "nope"), "-o", str(tmp_path / "c.csv"))
    assert missing.returncode == 66
    assert missing.stderr.startswith("froster-slurm: error: crawl root not found")
    (tmp_path / "file").write_bytes(b"")
    assert cli(str(tmp_path / "file"), "-o", str(tmp_path / "c.csv")).returncode == 64
    assert cli("-o", str(tmp_path / "c.csv")).returncode == 64
    assert not (tmp_path / "c.csv").exists()
    no_plan = cli("-o", str(tmp_path / "s"), "--shard-index", "0")
    assert no_plan.returncode == 66 and "no crawl plan" in no_plan.stderr


def test_excludes_from_config_and_flags(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    for n in ("a.tmp", "b.log", "c.dat"):
        (root / n).write_bytes(b"")
    from_env = cli(str(root), "-o", str(tmp_path / "e.csv"),
                   extra_env={"FROSTER_SLURM_CRAWL__EXCLUDE": '["*.tmp"]'})
    assert from_env.returncode == 0, from_env.stderr
    names = {os.path.basename(r[3]) for r in iter_rows(tmp_path / "e.csv")}
    assert names == {b"t", b"b.log", b"c.dat"}
    flag = cli(str(root), "-o", str(tmp_path / "f.csv"), "--exclude", "*.log",
               "--exclude", "*.dat", extra_env={"FROSTER_SLURM_CRAWL__EXCLUDE": '["*.tmp"]'})
    assert flag.returncode == 0
    assert {os.path.basename(r[3]) for r in iter_rows(tmp_path / "f.csv")} == {b"t", b"a.tmp"}


def test_engine_pwalk_without_pwalk_is_an_error(tmp_path):
    (tmp_path / "t").mkdir()
    proc = cli(str(tmp_path / "t"), "-o", str(tmp_path / "c.csv"), "--engine", "pwalk",
               extra_env={"PATH": "/nonexistent"})
    assert proc.returncode == 66 and "no pwalk on PATH" in proc.stderr


def test_progress_is_reported_while_walking(tmp_path, capsys):
    root = tmp_path / "t"
    for i in range(3):
        (root / f"d{i}").mkdir(parents=True)
    seen = []
    walk_inline([root_item(os.fsencode(root))], open(os.devnull, "wb"),
                open(os.devnull, "wb"), CrawlOptions(), progress=lambda *a: seen.append(a),
                progress_every=0)
    assert seen and seen[-1][0] >= 3
    line = _ProgressLine("shard 1: ")
    line(1234567, 89, 2)
    line.done()
    err = capsys.readouterr().err
    assert "shard 1: 1,234,567 entries, 89 dirs" in err and "2 errors" in err
    assert err.endswith("\r\x1b[K")


def test_submit_runs_the_shards_as_an_array_on_the_local_backend(tmp_path):
    import time

    from froster_slurm.crawl import crawl

    root = tmp_path / "t"
    for i in range(5):
        (root / f"d{i}" / "sub").mkdir(parents=True)
        for j in range(i * 4):
            (root / f"d{i}" / "sub" / f"f{j}").write_bytes(b"x" * j)
    state = {"FROSTER_SLURM_STATE_DIR": str(tmp_path / "state")}
    dry = cli(str(root), "-o", str(tmp_path / "dry"), "--shards", "3", "--submit",
              "--backend", "local", "--dry-run", extra_env=state)
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stderr and not list((tmp_path / "dry").glob("shard-*.csv"))
    proc = cli(str(root), "-o", str(tmp_path / "s"), "--shards", "3", "--submit",
               "--backend", "local", extra_env=state)
    assert proc.returncode == 0, proc.stderr
    assert "crawl     job local" in proc.stdout
    done = [tmp_path / "s" / f"shard-{i:04d}.json" for i in range(3)]
    deadline = time.monotonic() + 90
    while not all(p.exists() for p in done) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(p.exists() for p in done)
    crawl([root], tmp_path / "warm.csv", engine="builtin", workers=1)
    crawl([root], tmp_path / "one.csv", engine="builtin", workers=1)
    shards = sorted(r for i in range(3) for r in iter_rows(tmp_path / "s" / f"shard-{i:04d}.csv"))

    def no_atime(rows):
        return sorted(r[:12] + r[13:] for r in rows)  # the shards read the dirs first

    assert no_atime(shards) == no_atime(iter_rows(tmp_path / "one.csv"))
    assert cli(str(root), "-o", str(tmp_path / "x"), "--dry-run").returncode == 64
