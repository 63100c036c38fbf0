"""The crawl stage: pwalk-format CSV of one or more folders, whole or as Slurm shards.

Library API (the CLI in ``froster_slurm/cli/crawl_cmd.py`` is a thin layer over it):

- ``crawl(roots, out, ...) -> CrawlSummary``: one CSV plus ``out + ".errors"``.
- ``plan_shards(roots, n, out_dir, ...) -> Path``: the plan every array task reads.
- ``crawl_shard(plan_path, index, ...) -> CrawlSummary``: what array task ``index`` runs.
- ``read_errors(path)``: the errors file back as (kind, detail, exact path bytes).
- ``iter_rows(path)``: a crawl CSV back as rows of raw-bytes fields.

Both sides: ``froster-slurm crawl`` on the login node, and the crawl job's shards
(``froster_slurm.jobs.crawl_stage``); the shard plan is made at submit time.
"""

from .builtin import CrawlOptions, default_workers
from .driver import ENGINES, CrawlSummary, choose_engine, crawl
from .errorlog import CrawlProblem, read_errors
from .pwalkcsv import COLUMNS, HEADER, iter_rows
from .shards import (
    PLAN_NAME,
    crawl_shard,
    load_plan,
    plan_shards,
    shard_errors,
    shard_output,
    shard_summary,
)

__all__ = [
    "COLUMNS", "ENGINES", "HEADER", "PLAN_NAME", "CrawlOptions", "CrawlProblem", "CrawlSummary",
    "choose_engine", "crawl", "crawl_shard", "default_workers", "iter_rows", "load_plan",
    "plan_shards", "read_errors", "shard_errors", "shard_output", "shard_summary",
]
