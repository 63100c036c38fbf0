"""The report's input: a hotspots file as it is, or a crawl ranked on the spot by rank's own
reader (every folder, no size filter, so the tree is whole)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..pick.selection import load_hotspots
from ..rank.hotspots import COLUMNS, Hotspot

if TYPE_CHECKING:
    from ..rank.loader import Engine

HEADER = (",".join(COLUMNS) + "\n").encode()


@dataclass(frozen=True)
class Source:
    rows: list[Hotspot]
    kind: str  # "hotspots" or "crawl"
    description: str  # what was read, for the page's header
    crawl_rows: int | None = None  # crawl lines read (crawl input only)


def is_hotspots(path: str | bytes | os.PathLike) -> bool:
    """A hotspots file starts with its exact header line; anything else is a crawl."""
    try:
        with open(path, "rb") as f:
            return f.read(len(HEADER)) == HEADER
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        return False


def load(inputs: Sequence[str], by: str, engine: Engine) -> Source:
    """Hotspots when the one input is a hotspots file; else rank the crawl (every folder)."""
    if len(inputs) == 1 and is_hotspots(inputs[0]):
        rows = load_hotspots(inputs[0])
        return Source(rows, "hotspots", f"hotspots file {inputs[0]} ({len(rows):,} folders)")
    from ..rank.ranking import RankedCrawl, RankParams  # DuckDB only when there is a crawl to rank

    with RankedCrawl(inputs, engine) as crawl:
        crawl.select(RankParams(by=by))
        rows = list(crawl.hotspots())
        t = crawl.totals
    return Source(rows, "crawl",
                  f"crawl {', '.join(inputs)} ({t.rows:,} rows, {t.folders:,} folders; "
                  f"{t.reader})", crawl_rows=t.rows)
