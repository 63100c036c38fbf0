"""What archiving the folders that pass the rules would free and cost: selection's own rules,
overlap guard and price code, applied as the rank job of a run would apply them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..pick.selection import (
    Rules,
    Totals,
    Uploads,
    archive_units,
    monthly_cost,
    put_estimate,
    select_by_rules,
    totals,
)
from ..rank.hotspots import Hotspot
from ..util.units import format_size


@dataclass(frozen=True)
class PlanSettings:
    """The rules and prices in effect (config plus the command's flags)."""

    rules: Rules
    min_avg_size: int
    recursive: bool
    storage_class: str
    prices: Mapping[str, Any]  # cost.per_tb_month
    put_prices: Mapping[str, Any]  # cost.put_per_1000
    uploads: Uploads

    def describe(self) -> list[tuple[str, str]]:
        """The rules as (name, value) lines for the page."""
        r = self.rules
        return [
            ("ranked by", "whole subtree (total)" if r.by == "total" else "own files (direct)"),
            ("minimum size", format_size(r.min_size) if r.min_size else "none"),
            ("unused for at least",
             f"{r.older_than // 86400:,} days (newest of mtime and atime)" if r.older_than
             else "no age rule"),
            ("minimum average file size", format_size(self.min_avg_size)),
            ("owners", ", ".join(sorted(r.owners)) if r.owners else "any"),
            ("archive mode", "recursive (whole subtrees, no folder inside another)"
             if self.recursive else "each folder's own files"),
            ("storage class", self.storage_class),
        ]


@dataclass(frozen=True)
class Plan:
    settings: PlanSettings
    chosen: list[Hotspot]
    matched: int
    totals: Totals
    monthly: float | None
    objects: int
    requests: int
    put: float | None


def make_plan(rows: Sequence[Hotspot], settings: PlanSettings, now: float) -> Plan:
    units = archive_units(rows, settings.min_avg_size, settings.recursive)
    sel = select_by_rules(units, settings.rules, top=None, recursive=settings.recursive,
                          now=now)
    t = totals(sel.chosen, settings.recursive)
    est = put_estimate(sel.chosen, settings.recursive, settings.storage_class,
                       settings.put_prices, settings.uploads)
    return Plan(settings, sel.chosen, sel.matched, t,
                monthly_cost(t.bytes, settings.storage_class, settings.prices),
                est.objects, est.requests, est.usd)
