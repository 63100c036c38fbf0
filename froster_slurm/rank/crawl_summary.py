"""The summary a person reads after ``rank``: what the crawl holds and how much of it is cold.

Plain text, aligned columns, sizes in binary units (as ``du -h`` shows them).  The CLI decides
where it goes: stderr when stdout carries the data, stdout when the data went to a file.
"""

from __future__ import annotations

from ..util.units import format_size
from .ranking import CrawlTotals, Listing


def _rule(listing: Listing) -> str:
    """The filters in words, so the count of listed folders can be read right."""
    p = listing.params
    parts = [f"by {p.by}", f"size >= {format_size(p.min_size)}",
             f"average file >= {format_size(p.min_avg_size)}"]
    if p.older_than:
        parts.append(f"unused for {p.older_than // 86400} days")
    if p.owner_uid is not None:
        parts.append(f"owner uid {p.owner_uid}")
    if p.top is not None:
        parts.append(f"top {p.top}")
    return ", ".join(parts)


def render_summary(totals: CrawlTotals, listing: Listing | None = None) -> str:
    """The summary table (lines end with a newline)."""
    rows: list[tuple[str, str]] = [
        ("crawl rows read", f"{totals.rows:,}" + (f"  ({totals.reader})" if totals.reader
                                                   else "")),
        ("folders found", f"{totals.folders:,}"),
        ("files (hard links once)", f"{totals.files:,}"),
        ("total size", format_size(totals.bytes)),
        ("allocated on disk", format_size(totals.allocated_bytes)),
    ]
    if listing is not None:
        rows.append(("folders listed", f"{listing.folders:,}  ({_rule(listing)})"))
        rows.append(("size of listed folders", format_size(listing.bytes)))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("")
    lines.append("not accessed for   size        share   (folders whose files were all last")
    lines.append("                                        read or written before then)")
    for days, size in totals.not_accessed:
        base = totals.folder_bytes
        share = f"{100 * size / base:5.1f}%" if base else "    -"
        lines.append(f"  {days:>5} days       {format_size(size):>10}  {share}")
    if totals.orphan_files:
        lines.append("")
        lines.append(f"warning: {totals.orphan_files:,} files in {totals.orphan_folders:,} "
                     "folders have no directory row (a crawl shard missing or a directory "
                     "unreadable?); they count in their ancestors' totals only")
    return "\n".join(lines) + "\n"
