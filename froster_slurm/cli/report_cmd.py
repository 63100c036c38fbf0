"""``froster-slurm report``: a crawl or a hotspots file in, one self-contained HTML page out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..pick.selection import Rules, Uploads, format_cost
from ..util.paths import display
from ..util.units import format_size, parse_age, parse_size
from .app import app, get_config, out
from .options import (
    ByOpt,
    MinAvgSizeOpt,
    MinSizeOpt,
    OlderThanOpt,
    OwnersOpt,
    RecursiveOpt,
    StorageClassOpt,
)
from .rank_cmd import _engine


@app.command("report")
def report(
    inputs: Annotated[list[str], typer.Argument(
        metavar="CRAWL|HOTSPOTS",
        help="A hotspots file from `rank`, or a crawl (ranked here: every folder).")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE.html",
                                         help="The page to write.")] = Path("report.html"),
    min_size: MinSizeOpt = None,
    min_avg_size: MinAvgSizeOpt = None,
    older_than: OlderThanOpt = None,
    owner: OwnersOpt = None,
    by: ByOpt = None,
    recursive: RecursiveOpt = None,
    storage_class: StorageClassOpt = None,
) -> None:
    """Write an HTML report: space by folder (treemap), by age, owner and group, the top
    folders, and what archiving the folders that pass the rules would free and cost."""
    from ..report.build import write_report
    from ..report.plan import PlanSettings

    cfg = get_config({"rank.min_size": min_size, "rank.min_avg_size": min_avg_size,
                      "rank.older_than": older_than, "rank.by": by,
                      "archive.recursive": recursive, "archive.storage_class": storage_class})
    settings = PlanSettings(
        rules=Rules(min_size=parse_size(cfg.get("rank.min_size")),
                    older_than=parse_age(cfg.get("rank.older_than")),
                    owners=frozenset(owner or ()), by=cfg.get("rank.by")),
        min_avg_size=parse_size(cfg.get("rank.min_avg_size")),
        recursive=bool(cfg.get("archive.recursive")),
        storage_class=str(cfg.get("archive.storage_class")),
        prices=cfg.get("cost.per_tb_month"), put_prices=cfg.get("cost.put_per_1000"),
        uploads=Uploads.from_flags(parse_size(cfg.get("archive.bundle_threshold")),
                                   parse_size(cfg.get("archive.bundle_size")),
                                   cfg.get("archive.rclone_flags"),
                                   str(cfg.get("archive.storage_class"))))
    w = write_report(inputs, output, settings, _engine(cfg))
    p = w.plan
    out(f"wrote {display(str(w.path))}: {w.size / 1e6:.1f} MB, {w.folders:,} folders")
    out(f"the rules pick {p.totals.folders:,} folders: {format_size(p.totals.bytes)} freed, "
        f"{format_cost(p.monthly, settings.storage_class)}")
