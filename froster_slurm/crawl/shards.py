"""Split one crawl into N balanced shards, one Slurm array task each.

The plan (``OUTDIR/plan.json``) is made once, before the array starts, and every task reads
it, so all tasks agree on who crawls what.  It lists *units*:

- ``tree``: a directory crawled with everything below it, its own row included;
- ``shallow``: a directory whose own row and direct non-directory entries are written, while
  its subdirectories are other units.  Every crawl root is a shallow unit of shard 0, so the
  root rows are written once.  A subdirectory of a shallow unit that is *not* in the plan
  (created after planning) is crawled by the shallow unit's shard: nothing new is lost.

Balance comes from a cheap estimate, not a crawl: a unit's size is the number of entries in
its first three levels, from listings only (``os.scandir`` without ``lstat``), at most
``sample`` subdirectories listed per directory and scaled up, within a budget of listings
shared equally by siblings.  While the biggest unit is more than half a fair share it is split
into its children (up to ``max_units``), then units are dealt largest first to the least
loaded shard.  Listings are sorted, so the plan depends only on the tree.

The plan is JSON; paths are stored as lists of names decoded with surrogateescape (JSON
escapes the undecodable bytes as ``\\udcXX``), so any name round-trips to its exact bytes.
Shard I writes ``shard-IIII.csv`` (with the header), ``shard-IIII.errors`` and
``shard-IIII.json`` (its summary); together the shard files are the crawl.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError, NotFoundError, UserError
from ..util.atomic import write_atomic
from ..util.paths import display
from . import errorlog
from .builtin import SNAPSHOT_NAMES, CrawlOptions, Progress, Scandir, ScanItem, scandir_fd
from .driver import CrawlSummary, output_files, root_item, run_builtin

PLAN_NAME = "plan.json"
PLAN_FORMAT = "froster-slurm crawl plan"
PLAN_VERSION = 1
SHALLOW, TREE = "shallow", "tree"


def shard_output(out_dir: str | os.PathLike, index: int) -> Path:
    return Path(out_dir) / f"shard-{index:04d}.csv"


def shard_errors(out_dir: str | os.PathLike, index: int) -> Path:
    return Path(out_dir) / f"shard-{index:04d}.errors"


def shard_summary(out_dir: str | os.PathLike, index: int) -> Path:
    return Path(out_dir) / f"shard-{index:04d}.json"


@dataclass
class Unit:
    root: int
    rel: tuple[bytes, ...]  # names below the root; () is the root itself
    kind: str
    estimate: int
    shard: int = -1


def join(root: bytes, rel: Sequence[bytes]) -> bytes:
    """The path exactly as the crawl writes it (root as typed, then ``/name`` per level)."""
    return b"/".join((root, *rel)) if rel else root


class _Rules:
    """The engine's rules for entering a subdirectory (kept in step with Walker.scan)."""

    def __init__(self, options: CrawlOptions):
        self.options = options
        self.match_name = options.name_matcher()
        self.match_path = options.path_matcher()

    def descend(self, name: bytes, path: bytes, st: os.stat_result, root_dev: int,
                ancestors: tuple[tuple[int, int], ...]) -> bool:
        if self.options.one_file_system and st.st_dev != root_dev:
            return False
        if self.match_name is not None and self.match_name(name):
            return False
        if self.match_path is not None and self.match_path(path):
            return False
        if self.options.no_snapshots and name in SNAPSHOT_NAMES:
            return False
        return (st.st_dev, st.st_ino) not in ancestors


def _listing(path: bytes) -> tuple[int, list[bytes]]:
    """(entries, sorted names of subdirectories) from a listing without lstat."""
    n = 0
    subdirs = []
    try:
        with os.scandir(path) as it:
            for e in it:
                n += 1
                try:
                    if e.is_dir(follow_symlinks=False):
                        subdirs.append(e.name)
                except OSError:
                    pass
    except OSError:
        return n, []
    subdirs.sort()
    return n, subdirs


class _Planner:
    """Estimates from listings only, within a budget of listings for the whole plan."""

    def __init__(self, roots: list[bytes], options: CrawlOptions, per_unit: int, budget: int):
        self.roots = roots
        self.rules = _Rules(options)
        self.per_unit = per_unit
        self.budget = budget
        self.items = [root_item(r) for r in roots]

    def listing(self, path: bytes) -> tuple[int, list[bytes]]:
        self.budget -= 1
        return _listing(path)

    def estimate(self, path: bytes, allowance: int) -> int:
        """Entries below ``path`` estimated with ``allowance`` listings.

        Every subdirectory is looked at while the allowance is ample (one heavy child among
        many is the usual shape: a big project, an SDK), else an evenly spaced sample of about
        the square root of the allowance; the rest goes deeper, and what was sampled is scaled
        up.  So wide levels are sampled and narrow deep chains are followed down.
        """
        n, subdirs = self.listing(path)
        allowance -= 1
        if not subdirs or allowance < 1:
            return n
        k = min(len(subdirs), max(1, math.isqrt(allowance), allowance // 8))
        step = -(-len(subdirs) // k)
        picked = subdirs[::step]
        each = allowance // len(picked)
        below = sum(self.estimate(path + b"/" + s, each) for s in picked)
        return n + below * len(subdirs) // len(picked)

    def allowance(self, siblings: int) -> int:
        """Listings for each of ``siblings`` units estimated together: equal, so that their
        estimates compare."""
        return max(1, min(self.per_unit, self.budget // max(1, 2 * siblings)))

    def children(self, unit: Unit) -> list[Unit]:
        """The subdirectories of ``unit`` the engine would enter, each as a tree unit."""
        root = self.roots[unit.root]
        root_dev = self.items[unit.root].root_dev
        ancestors = self.ancestors(unit)
        path = join(root, unit.rel)
        _, names = self.listing(path)
        each = self.allowance(len(names))
        out = []
        for name in names:
            child = path + b"/" + name
            try:
                st = os.lstat(child)
            except OSError:
                continue  # the shard that owns the parent reports it
            if stat.S_ISDIR(st.st_mode) and self.rules.descend(name, child, st, root_dev,
                                                               ancestors):
                out.append(Unit(unit.root, (*unit.rel, name), TREE,
                                self.estimate(child, each)))
        return out

    def ancestors(self, unit: Unit) -> tuple[tuple[int, int], ...]:
        """(dev, ino) of the root (its lstat, as the engine) down to ``unit`` itself."""
        root = self.roots[unit.root]
        root_st = self.items[unit.root].st
        chain = [(root_st.st_dev, root_st.st_ino)]
        for depth in range(1, len(unit.rel) + 1):
            st = os.lstat(join(root, unit.rel[:depth]))
            chain.append((st.st_dev, st.st_ino))
        return tuple(chain)


def make_plan(roots: Sequence[bytes], n: int, options: CrawlOptions, *, per_unit: int = 2000,
              budget: int = 40000, max_units: int = 4096, min_units_per_shard: int = 4
              ) -> dict[str, Any]:
    """The plan as a JSON-ready dict (see the module docstring).

    ``budget`` caps the directory listings of the whole plan (seconds on a slow file system),
    ``per_unit`` those of one unit's estimate; ``max_units`` caps the plan's size.  Units are
    split while the biggest is over half a fair share or there are fewer than
    ``min_units_per_shard`` per shard (more, smaller units absorb estimation errors).
    """
    if n < 1:
        raise UserError(f"--shards must be 1 or more, not {n}")
    planner = _Planner(list(roots), options, per_unit, budget)
    units: list[Unit] = []
    for k, root in enumerate(planner.roots):
        units.append(Unit(k, (), SHALLOW, planner.listing(root)[0], shard=0))
    splittable: list[tuple[int, int, Unit]] = []  # max-heap on estimate (ties: plan order)
    seq = 0
    for shallow in list(units):
        for child in planner.children(shallow):
            units.append(child)
            heapq.heappush(splittable, (-child.estimate, seq, child))
            seq += 1
    total = sum(u.estimate for u in units) or 1
    while splittable and len(units) < max_units:
        neg, _, big = splittable[0]
        if -neg * 2 <= total / n and len(units) >= min_units_per_shard * n:
            break  # every unit is at most half a fair share: greedy dealing balances well
        if planner.budget <= 0:
            break
        heapq.heappop(splittable)
        kids = planner.children(big)
        if not kids or len(units) + len(kids) > max_units:
            continue
        big.kind = SHALLOW
        big.estimate = planner.listing(join(planner.roots[big.root], big.rel))[0]
        for child in kids:
            units.append(child)
            heapq.heappush(splittable, (-child.estimate, seq, child))
            seq += 1
    loads = [0] * n
    for u in units:
        if u.shard == 0:
            loads[0] += u.estimate
    free = sorted((u for u in units if u.shard < 0), key=lambda u: (-u.estimate, u.root, u.rel))
    for u in free:
        u.shard = min(range(n), key=lambda i: (loads[i], i))
        loads[u.shard] += u.estimate
    units.sort(key=lambda u: (u.shard, u.root, u.rel))
    return {
        "format": PLAN_FORMAT, "version": PLAN_VERSION, "shards": n,
        "roots": [os.fsdecode(r) for r in planner.roots],
        "options": options.to_json(),
        "estimated_entries": loads,
        "units": [{"shard": u.shard, "kind": u.kind, "root": u.root,
                   "path": [os.fsdecode(p) for p in u.rel], "estimate": u.estimate}
                  for u in units],
    }


def _same_request(plan: dict[str, Any], roots: Sequence[bytes], n: int) -> bool:
    """Options do not matter here: they only steer balance (crawl_shard applies its own)."""
    return plan["shards"] == n and [os.fsencode(r) for r in plan["roots"]] == list(roots)


def plan_shards(roots: Sequence[str | bytes | os.PathLike], n: int, out_dir: str | os.PathLike,
                options: CrawlOptions | None = None, *, replace: bool = False) -> Path:
    """Write ``OUTDIR/plan.json`` for crawling ``roots`` as ``n`` shards; returns its path.

    ``options`` shape the plan (what is left out is not estimated) and are the shards' default.
    Idempotent: an existing plan for the same roots and shard count is kept (every array task
    may call this).  A plan for something else is an error unless ``replace``, which
    also removes that plan's shard files so old and new shards never mix.
    """
    options = options or CrawlOptions()
    broots = [os.fsencode(r) for r in roots]
    if not broots:
        raise UserError("nothing to crawl: give at least one folder")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot use {out} as the shard directory: {e.strerror}") from e
    dest = out / PLAN_NAME
    if dest.exists():
        old = load_plan(dest)
        if _same_request(old, broots, n):
            return dest
        if not replace:
            raise UserError(f"{dest} plans a different crawl (other roots or --shards); "
                            "use another output directory or --replan")
        for i in range(old["shards"]):
            for p in (shard_output(out, i), shard_errors(out, i), shard_summary(out, i)):
                p.unlink(missing_ok=True)
    plan = make_plan(broots, n, options)
    tmp = out / f".{PLAN_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(plan, indent=1) + "\n")
    if replace:
        os.replace(tmp, dest)
        return dest
    try:
        os.link(tmp, dest)  # exclusive: if tasks race, the first plan wins and all read it
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    if not _same_request(load_plan(dest), broots, n):
        raise UserError(f"{dest} was just written for a different crawl by someone else")
    return dest


def load_plan(path: str | os.PathLike) -> dict[str, Any]:
    try:
        plan = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise NotFoundError(f"no crawl plan at {path} (run crawl --shards N first)") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a crawl plan: {e}") from e
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise DataError(f"{path}: not a crawl plan")
    if plan.get("version") != PLAN_VERSION:
        raise DataError(f"{path}: crawl plan version {plan.get('version')}, this froster-slurm "
                        f"reads version {PLAN_VERSION}")
    return plan


def shard_items(plan: dict[str, Any], index: int, options: CrawlOptions
                ) -> tuple[list[ScanItem], list[bytes]]:
    """The scan items of shard ``index`` and error lines for units that are gone.

    Each unit's own path is checked with the engine's rules under ``options`` (the options of
    this run, which may differ from those the plan was made with): a unit the single crawl
    would not enter (excluded, snapshot, other file system, loop, no longer a directory) is
    left out, and whoever reads its parent writes or reports it, as the single crawl would.
    """
    roots = [os.fsencode(r) for r in plan["roots"]]
    units = [(u["shard"], u["kind"], u["root"], tuple(os.fsencode(p) for p in u["path"]))
             for u in plan["units"]]
    planned_children: dict[tuple[int, tuple[bytes, ...]], set[bytes]] = {}
    for _, _, k, rel in units:
        if rel:
            planned_children.setdefault((k, rel[:-1]), set()).add(rel[-1])
    rules = _Rules(options)
    root_items = [root_item(r) for r in roots]
    items: list[ScanItem] = []
    errors: list[bytes] = []
    for shard, kind, k, rel in units:
        if shard != index:
            continue
        skip = frozenset(planned_children.get((k, rel), ())) if kind == SHALLOW else None
        r = root_items[k]
        if not rel:
            items.append(ScanItem(r.path, 0, 0, r.st, r.root_dev, (), skip))
            continue
        ancestors = [(r.st.st_dev, r.st.st_ino)]
        parent_inode = r.st.st_ino
        path = r.path
        for depth in range(1, len(rel) + 1):
            path = join(roots[k], rel[:depth])
            try:
                st = os.lstat(path)
            except OSError as e:
                if depth == len(rel):  # a missing ancestor is reported by its own owner
                    kind_ = errorlog.VANISHED if isinstance(
                        e, (FileNotFoundError, NotADirectoryError)) else errorlog.LSTAT
                    errors.append(errorlog.os_error_line(kind_, e, path))
                break
            if not stat.S_ISDIR(st.st_mode) or not rules.descend(
                    rel[depth - 1], path, st, r.root_dev, tuple(ancestors)):
                break
            if depth < len(rel):
                ancestors.append((st.st_dev, st.st_ino))
                parent_inode = st.st_ino
        else:
            items.append(ScanItem(path, len(rel), parent_inode, st, r.root_dev,
                                  tuple(ancestors), skip))
    return items, errors


def crawl_shard(plan: str | os.PathLike, index: int, *, workers: int = 0, threads: int = 1,
                one_file_system: bool | None = None, exclude: Sequence[str] | None = None,
                no_snapshots: bool | None = None, progress: Progress | None = None,
                scandir: Scandir = scandir_fd) -> CrawlSummary:
    """Crawl share ``index`` of ``plan`` (the plan file or its directory) into
    ``shard-IIII.csv`` beside it, with the builtin engine.  What array task ``index`` runs.

    The options are the plan's unless given here (e.g. from the run's config); either way the
    shards together equal one crawl with those options.  Rerunning a shard rewrites its files.
    """
    plan_path = Path(plan)
    if plan_path.is_dir():
        plan_path = plan_path / PLAN_NAME
    data = load_plan(plan_path)
    n = data["shards"]
    if not 0 <= index < n:
        raise UserError(f"--shard-index {index} is not a shard of this plan (0..{n - 1})")
    planned = CrawlOptions.from_json(data["options"])
    options = CrawlOptions(
        planned.one_file_system if one_file_system is None else bool(one_file_system),
        planned.excludes if exclude is None else tuple(exclude),
        planned.no_snapshots if no_snapshots is None else bool(no_snapshots))
    out_dir = plan_path.parent
    start = time.monotonic()
    items, gone = shard_items(data, index, options)
    out, err = shard_output(out_dir, index), shard_errors(out_dir, index)
    with output_files(out, err) as (fo, fe):
        for line in gone:
            fe.write(line)
        counts, walker = run_builtin(items, fo, fe, options, workers, threads, progress,
                                     scandir)
    summary = CrawlSummary(out, err, "builtin", counts.entries, counts.directories,
                           counts.errors + len(gone), time.monotonic() - start, counts.skipped,
                           walker)
    write_atomic(shard_summary(out_dir, index), json.dumps(summary.to_json(), indent=1) + "\n")
    return summary


def describe_plan(plan_path: str | os.PathLike) -> str:
    """One line per shard: units and estimated entries (for people)."""
    plan = load_plan(plan_path)
    lines = []
    for i in range(plan["shards"]):
        units = [u for u in plan["units"] if u["shard"] == i]
        lines.append(f"shard {i}: {len(units)} unit(s), ~{plan['estimated_entries'][i]:,} "
                     "entries (estimate)")
    roots = ", ".join(display(os.fsencode(r)) for r in plan["roots"])
    return f"plan for {roots}:\n" + "\n".join(lines)
