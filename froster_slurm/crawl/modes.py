"""The three ways ``froster-slurm crawl`` runs here: whole, every shard in turn, one shard.

Why a library function and not the command: which mode applies, which flag combinations make
sense, the per-shard summaries and the final "incomplete" verdict are policy with tests, and
the command only parses flags, resolves the config and prints (submitting the shards as an
array is ``froster_slurm.submit.pipeline.submit_crawl``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import IncompleteError, UserError
from .builtin import CrawlOptions
from .driver import CrawlSummary, crawl
from .shards import PLAN_NAME, crawl_shard, describe_plan, load_plan, plan_shards


class ProgressLine(Protocol):
    """A progress callback the caller shows somewhere, closed with ``done``."""

    def __call__(self, entries: int, directories: int, errors: int) -> None: ...

    def done(self) -> None: ...


# A progress line for a label ("shard 2/8: "), or None for no progress.
ProgressFor = Callable[[str], ProgressLine | None]


@dataclass(frozen=True)
class ShardFlags:
    """Options given for one array task, over the plan's (None: the plan's own)."""

    one_file_system: bool | None = None
    exclude: Sequence[str] | None = None
    no_snapshots: bool | None = None


def _with_line(progress: ProgressFor | None, label: str,
               run: Callable[[ProgressLine | None], CrawlSummary]) -> CrawlSummary:
    line = progress(label) if progress else None
    try:
        return run(line)
    finally:
        if line is not None:
            line.done()


def run_crawl(roots: Sequence[bytes], output: str | os.PathLike, *, engine: str, workers: int,
              threads: int, options: CrawlOptions, shards: int | None = None,
              shard_index: int | None = None, replan: bool = False,
              shard_flags: ShardFlags | None = None, progress: ProgressFor | None = None,
              report: Callable[[str], None] = print,
              note: Callable[[str], None] = print) -> list[CrawlSummary]:
    """Crawl ``roots`` into ``output`` in the mode the arguments ask for.

    * ``shard_index`` given: that shard of ``output``/plan.json (planned here first when
      ``roots`` and ``shards`` are given), with ``shard_flags`` over the plan's options;
    * ``shards`` given: plan ``shards`` shards into the directory ``output`` and crawl each
      in turn;
    * else one CSV ``output`` with ``engine``.

    Each summary line goes to ``report`` as it is done (the plan's description to ``note``).
    Raises ``UserError`` for arguments that do not fit together and ``IncompleteError`` when
    any problem was met (every one is in the errors files).
    """
    if shard_index is not None:
        flags = shard_flags or ShardFlags()
        out_dir = Path(output)
        if roots:
            if shards is None:
                raise UserError("give --shards N with folders and --shard-index, or leave the "
                                "folders out to use the existing plan")
            plan_shards(roots, shards, out_dir, options, replace=replan)
        elif shards is not None and load_plan(out_dir / PLAN_NAME)["shards"] != shards:
            raise UserError(f"{out_dir / PLAN_NAME} has a different number of shards")
        summary = _with_line(progress, f"shard {shard_index}: ", lambda line: crawl_shard(
            out_dir, shard_index, workers=workers, threads=threads,
            one_file_system=flags.one_file_system,
            exclude=list(flags.exclude) if flags.exclude else None,
            no_snapshots=flags.no_snapshots, progress=line))
        report(summary.line())
        summary.raise_if_incomplete()
        return [summary]

    if not roots:
        raise UserError("nothing to crawl: give at least one folder")

    if shards is not None:
        plan = plan_shards(roots, shards, output, options, replace=replan)
        note(describe_plan(plan))
        summaries: list[CrawlSummary] = []
        for i in range(shards):
            summaries.append(_with_line(progress, f"shard {i}/{shards}: ", lambda line, i=i:
                                        crawl_shard(plan, i, workers=workers, threads=threads,
                                                    progress=line)))
            report(summaries[-1].line())
        errors = sum(s.errors for s in summaries)
        report(f"all {shards} shards: {sum(s.entries for s in summaries):,} entries, "
               f"{sum(s.directories for s in summaries):,} directories, {errors:,} errors, "
               f"{sum(s.seconds for s in summaries):.1f} s")
        if errors:
            raise IncompleteError(f"crawl incomplete: {errors:,} problem(s), listed in "
                                  f"{output}/shard-*.errors")
        return summaries

    summary = _with_line(progress, "", lambda line: crawl(
        roots, output, engine=engine, workers=workers, threads=threads, options=options,
        progress=line))
    report(summary.line())
    summary.raise_if_incomplete()
    return [summary]
