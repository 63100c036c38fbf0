"""N shards together are the crawl: same multiset of rows as one crawl of the same tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from froster_slurm.crawl import (
    HEADER,
    CrawlOptions,
    crawl,
    crawl_shard,
    errorlog,
    iter_rows,
    load_plan,
    plan_shards,
    read_errors,
    shard_output,
)
from froster_slurm.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def skewed_tree(root: Path) -> None:
    """One big subtree, several small ones, odd names, files and a link at the top."""
    b = os.fsencode(root)
    for i in range(20):
        d = root / "big" / f"part{i:02d}"
        d.mkdir(parents=True)
        for j in range(25):
            (d / f"f{j}.dat").write_bytes(b"x" * j)
    for i in range(6):
        d = root / f"small{i}"
        (d / "sub").mkdir(parents=True)
        for j in range(4):
            (d / "sub" / f"g{j}").write_bytes(b"")
    os.makedirs(b + b"/odd\xff dir\nx/-inner")
    open(b + b"/odd\xff dir\nx/-inner/q\"c,.txt", "wb").close()
    (root / "empty").mkdir()
    (root / "top.txt").write_bytes(b"top")
    os.symlink("big", root / "link")


def rows(*files: Path) -> Counter:
    c: Counter = Counter()
    for f in files:
        assert f.read_bytes().startswith(HEADER)
        c.update(tuple(r) for r in iter_rows(f))
    return c


def single(tmp_path: Path, roots: list[Path], name: str = "single.csv") -> Counter:
    crawl(roots, tmp_path / "warm.csv", engine="builtin", workers=1)  # settle dir atimes
    crawl(roots, tmp_path / name, engine="builtin", workers=1)
    return rows(tmp_path / name)


@pytest.mark.parametrize("n,workers", [(1, 1), (3, 1), (4, 2), (40, 1)])
def test_shards_together_equal_one_crawl(tmp_path, n, workers):
    root = tmp_path / "tree"
    skewed_tree(root)
    whole = single(tmp_path, [root])
    plan = plan_shards([root], n, tmp_path / "shards")
    summaries = [crawl_shard(plan, i, workers=workers) for i in range(n)]
    parts = rows(*(shard_output(tmp_path / "shards", i) for i in range(n)))
    assert parts == whole
    assert sum(s.entries for s in summaries) == sum(whole.values())
    assert sum(s.errors for s in summaries) == 0
    root_rows = [r for r in parts if r[2] == b"-1"]
    assert len(root_rows) == 1 and root_rows[0] in rows(shard_output(tmp_path / "shards", 0))


def test_two_roots_each_root_row_once(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    skewed_tree(a)
    (b / "x").mkdir(parents=True)
    whole = single(tmp_path, [a, b])
    plan = plan_shards([a, b], 3, tmp_path / "s")
    for i in range(3):
        crawl_shard(plan, i, workers=1)
    assert rows(*(shard_output(tmp_path / "s", i) for i in range(3))) == whole


def test_planner_splits_the_big_subtree_and_balances(tmp_path):
    root = tmp_path / "tree"
    skewed_tree(root)
    plan = load_plan(plan_shards([root], 3, tmp_path / "s"))
    kinds = {tuple(u["path"]): u["kind"] for u in plan["units"]}
    assert kinds[()] == "shallow" and kinds[("big",)] == "shallow"
    assert kinds[("big", "part00")] == "tree"
    per_shard = [sum(crawl_shard(tmp_path / "s" / "plan.json", i, workers=1).entries
                     for _ in [0]) for i in range(3)]
    assert max(per_shard) <= 1.5 * min(per_shard), per_shard


def test_plan_is_deterministic_and_round_trips_odd_names(tmp_path):
    root = tmp_path / "tree"
    skewed_tree(root)
    p1 = plan_shards([root], 4, tmp_path / "one")
    p2 = plan_shards([root], 4, tmp_path / "two")
    assert p1.read_text() == p2.read_text()
    names = {os.fsencode(u["path"][0]) for u in load_plan(p1)["units"] if u["path"]}
    assert b"odd\xff dir\nx" in names


def test_existing_plan_is_reused_or_refused(tmp_path):
    root = tmp_path / "tree"
    skewed_tree(root)
    out = tmp_path / "s"
    plan = plan_shards([root], 2, out)
    mtime = plan.stat().st_mtime_ns
    assert plan_shards([root], 2, out) == plan and plan.stat().st_mtime_ns == mtime
    crawl_shard(plan, 1, workers=1)
    with pytest.raises(UserError, match="--replan"):
        plan_shards([root], 3, out)
    with pytest.raises(UserError, match="--replan"):
        plan_shards([root, tmp_path], 2, out)
    # Options only steer balance; crawl_shard applies its own, so the plan stands.
    assert plan_shards([root], 2, out, CrawlOptions(one_file_system=True)) == plan
    plan_shards([root], 3, out, replace=True)
    assert load_plan(plan)["shards"] == 3
    assert not shard_output(out, 1).exists()  # the old plan's shards are gone
    with pytest.raises(UserError, match="not a shard"):
        crawl_shard(plan, 3)


def test_tree_changes_after_planning_lose_nothing(tmp_path):
    root = tmp_path / "tree"
    skewed_tree(root)
    plan = plan_shards([root], 3, tmp_path / "s")
    (root / "late" / "deep").mkdir(parents=True)  # appears after planning
    (root / "late" / "deep" / "new.txt").write_bytes(b"n")
    (root / "big" / "part07" / "late2").mkdir()
    shutil.rmtree(root / "small3")  # a planned unit disappears
    whole = single(tmp_path, [root])
    summaries = [crawl_shard(plan, i, workers=1) for i in range(3)]
    assert rows(*(shard_output(tmp_path / "s", i) for i in range(3))) == whole
    problems = [p for s in summaries for p in read_errors(s.errors_path)]
    assert [(p.kind, p.path) for p in problems] == [
        (errorlog.VANISHED, os.fsencode(root / "small3"))]


def test_cli_shards_then_one_array_task(tmp_path):
    root = tmp_path / "tree"
    skewed_tree(root)
    whole = single(tmp_path, [root])
    out = tmp_path / "s"
    run = subprocess.run([sys.executable, "-m", "froster_slurm", "crawl", str(root), "-o",
                          str(out), "--shards", "3", "--workers", "1"],
                         capture_output=True, text=True, env=env(), timeout=120)
    assert run.returncode == 0, run.stderr
    assert "all 3 shards:" in run.stdout and "shard 2:" in run.stderr
    assert rows(*(shard_output(out, i) for i in range(3))) == whole
    # What an array task runs: one shard, the folders read from the plan, none on the line.
    shard_output(out, 1).unlink()
    task = subprocess.run([sys.executable, "-m", "froster_slurm", "crawl", "-o", str(out),
                           "--shard-index", "1", "--workers", "2"],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert task.returncode == 0, task.stderr
    assert rows(*(shard_output(out, i) for i in range(3))) == whole
    summary = json.loads((out / "shard-0001.json").read_text())
    assert summary["errors"] == 0 and summary["entries"] > 0


def slurm_usable() -> bool:
    if not shutil.which("sbatch"):
        return False
    status = subprocess.run(["bash", str(REPO / "scripts" / "slurm-cluster.sh"), "status"],
                            capture_output=True, timeout=60)
    return status.returncode == 0


@pytest.mark.slurm
@pytest.mark.skipif(not slurm_usable(), reason="local Slurm cluster not up")
def test_shards_as_a_real_slurm_array(tmp_path):
    root = tmp_path / "tree"
    skewed_tree(root)
    whole = single(tmp_path, [root])
    out = tmp_path / "s"
    plan_shards([root], 3, out)
    task = tmp_path / "task.sh"  # the task's command line: no folder path in it
    task.write_text('#!/bin/bash\nset -euo pipefail\nexec "$FROSTER_PYTHON" -m froster_slurm '
                    'crawl -o "$CRAWL_DIR" --shard-index "$SLURM_ARRAY_TASK_ID" '
                    '--workers "$SLURM_CPUS_PER_TASK"\n')
    job_env = env() | {"FROSTER_PYTHON": sys.executable, "CRAWL_DIR": str(out)}
    sub = subprocess.run(["sbatch", "--wait", "--array=0-2", "--cpus-per-task=1",
                          "--job-name=froster-crawl-test", "--time=5",
                          f"--output={out}/slurm-%A_%a.out", "--export=ALL", str(task)],
                         capture_output=True, text=True, env=job_env, timeout=300)
    logs = "".join(p.read_text() for p in sorted(out.glob("slurm-*.out")))
    assert sub.returncode == 0, sub.stderr + logs
    assert rows(*(shard_output(out, i) for i in range(3))) == whole


def test_shard_time_options_win_and_still_add_up(tmp_path):
    """The lead's jobs pass the run's options at task time, not at planning time."""
    root = tmp_path / "tree"
    skewed_tree(root)
    (root / "small2" / ".snapshot").mkdir()
    crawl([root], tmp_path / "warm.csv", engine="builtin", workers=1)
    opts = CrawlOptions(excludes=("small3", "part1*", "*.dat"), no_snapshots=False)
    crawl([root], tmp_path / "single.csv", engine="builtin", workers=1, options=opts)
    plan = plan_shards([root], 4, tmp_path / "s")  # planned with the default options
    units = {tuple(u["path"]) for u in load_plan(plan)["units"]}
    assert ("small3",) in units and ("big", "part10") in units
    for i in range(4):
        crawl_shard(tmp_path / "s", i, workers=1, exclude=list(opts.excludes),
                    no_snapshots=False)
    assert rows(*(shard_output(tmp_path / "s", i) for i in range(4))) == rows(
        tmp_path / "single.csv")
