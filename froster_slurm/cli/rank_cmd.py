"""``froster-slurm rank``: crawl files in, hotspots (one row per folder) out.

Where things go: the hotspots go to ``-o FILE`` (CSV) and/or stdout (CSV, or a JSON array with
``--json``).  The summary table is for a person, so it goes wherever the data is NOT: to stdout
when the data went to a file, else to stderr (``--quiet`` drops it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import Annotated, TextIO

import typer

from ..errors import UserError
from ..rank.crawl_summary import render_summary
from ..rank.hotspots import Hotspot, write_hotspot_lines
from ..rank.ranking import Engine, RankedCrawl, RankParams, resolve_owner, to_parquet
from ..status.progress import TermLine, format_rate
from ..util.units import parse_age, parse_size
from .app import app, get_config, info, out
from .options import ByOpt, JsonOpt, MinAvgSizeOpt, MinSizeOpt, OlderThanOpt, OwnerOpt, TopOpt


def write_json(stream: TextIO, rows: Iterable[Hotspot]) -> int:
    """A JSON array, one object per line; ASCII only, so a non-UTF-8 path travels as
    ``\\udcXX`` escapes and ``os.fsencode(obj["folder"])`` gives its exact bytes back."""
    n = 0
    stream.write("[")
    for h in rows:
        stream.write(("," if n else "") + "\n" + json.dumps(h.to_json_obj()))
        n += 1
    stream.write("\n]\n")
    return n


def _stdout_latin1() -> TextIO:
    """stdout re-wrapped so each character U+0000-U+00FF is written as that one byte."""
    sys.stdout.flush()
    return io.TextIOWrapper(sys.stdout.buffer, encoding="latin-1", newline="",
                            write_through=True)


def _engine(cfg) -> Engine:
    temp_dir = cfg.get("rank.temp_dir")
    return Engine(memory_limit=cfg.get("rank.memory_limit"),
                  temp_dir=os.path.expanduser(temp_dir) if temp_dir else "",
                  threads=cfg.get("rank.threads"))


def _load_progress(line: TermLine) -> Callable[[float], None]:
    """DuckDB's percentage through each loading statement, numbered, with the time spent:
    a person sees rank is working and roughly how far the current pass is."""
    seen = {"step": 1, "last": 0.0}

    def show(pct: float) -> None:
        if pct + 5 < seen["last"]:  # a new statement starts again at 0
            seen["step"] += 1
        seen["last"] = pct
        line.show(f"rank: loading the crawl, pass {seen['step']}: {pct:3.0f}%, "
                  f"{line.elapsed():.0f} s")

    return show


@app.command("rank")
def rank_command(
    inputs: Annotated[list[str], typer.Argument(
        metavar="INPUT...",
        help="pwalk CSV, .csv.gz, directory of shards, glob, or Parquet from --to-parquet.")],
    output: Annotated[str | None, typer.Option(
        "-o", "--output", metavar="FILE", help="Write the hotspots CSV here.")] = None,
    as_json: JsonOpt = False,
    min_size: MinSizeOpt = None,
    min_avg_size: MinAvgSizeOpt = None,
    older_than: OlderThanOpt = None,
    by: ByOpt = None,
    top: TopOpt = None,
    owner: OwnerOpt = None,
    parquet_out: Annotated[str | None, typer.Option(
        "--to-parquet", metavar="OUT.parquet",
        help="Only convert the crawl to Parquet, for repeated ranking.")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No summary.")] = False,
) -> None:
    """Rank the folders of a crawl by size: one row per folder (hotspots)."""
    cfg = get_config({"rank.min_size": min_size, "rank.min_avg_size": min_avg_size,
                      "rank.older_than": older_than, "rank.by": by})
    engine = _engine(cfg)
    if parquet_out is not None:
        if output or as_json or top or owner:
            raise UserError("--to-parquet only converts; rank the Parquet file afterwards")
        rows = to_parquet(inputs, parquet_out, engine)
        out(f"wrote {rows:,} crawl rows to {parquet_out}")
        return
    params = RankParams(by=cfg.get("rank.by"), min_size=parse_size(cfg.get("rank.min_size")),
                        min_avg_size=parse_size(cfg.get("rank.min_avg_size")),
                        older_than=parse_age(cfg.get("rank.older_than")), top=top,
                        owner_uid=resolve_owner(owner) if owner else None)
    line = TermLine("rank", "rows")
    with RankedCrawl(inputs, engine, progress=_load_progress(line) if line.enabled else None
                     ) as crawl:
        line.close()
        if line.enabled:
            secs = line.elapsed()
            info(f"rank: {crawl.totals.rows:,} crawl rows loaded in {secs:.1f} s "
                 f"({format_rate(crawl.totals.rows / secs if secs else None, 'rows')})")
        listing = crawl.select(params)
        why = crawl.funnel(params).message() if listing.folders == 0 else ""
        if output:
            crawl.write_hotspots(output)
        if as_json or not output:
            stream = _stdout_latin1()
            try:
                if as_json:
                    write_json(stream, crawl.hotspots())
                else:
                    write_hotspot_lines(stream, crawl.hotspot_lines())
            except BrokenPipeError:  # `rank ... | head`: the reader has what it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(141) from None
            finally:
                stream.detach()
                with contextlib.suppress(BrokenPipeError):
                    sys.stdout.buffer.flush()  # the data before the summary on a terminal
    if not quiet:
        text = render_summary(crawl.totals, listing)
        if output and not as_json:
            out(text.rstrip("\n"))
        else:
            info(text.rstrip("\n"))
    if why:  # nothing listed: say which rule removed what, and what to try next
        info(why)
