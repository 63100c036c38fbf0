"""Why a selection came out empty: which rule removed how many folders, and what to try next.

Why: ``submit`` on a tree without 1 GiB folders of 10 MiB average files used to archive
nothing and say so only in the rank job's log, next to a Python repr.  ``rank``, ``select`` and
the rank stage of ``submit`` now apply their rules one after the other, count the folders each
rule removed, and name the loosest value of the rule that removed the last ones (the largest
size left, the oldest age left...) so the next command can be typed as it is.

The counts come from Python rows here (``select``, the rank job) or from SQL (``rank``, see
``rank.RankedCrawl.funnel``); the words are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..rank.hotspots import Hotspot

_UNITS = (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2),
          ("KiB", 1024), ("B", 1))


def floor_size(n: int) -> str:
    """A size that ``parse_size`` reads back as at most ``n`` (rounded down, no space)."""
    for unit, size in _UNITS:
        if n >= size:
            value = math.floor(n / size * 10) / 10
            return f"{value:g}{unit}"
    return "0"


def floor_age(seconds: float) -> str:
    """An age that ``parse_age`` reads back as at most ``seconds`` ('0d' under a day)."""
    return f"{max(0, int(seconds // 86400))}d"


@dataclass(frozen=True)
class Step:
    """One rule: its words, the option that sets it, folders left after it, what to try."""

    rule: str
    option: str
    kept: int
    try_value: str = ""  # the loosest value that keeps at least one folder ('' unknown)
    why: str = ""  # what try_value is, e.g. "the largest folder left"


@dataclass
class Funnel:
    """Folders before any rule and after each, in the order the rules were applied."""

    total: int
    steps: list[Step] = field(default_factory=list)
    what: str = "folders"

    @property
    def selected(self) -> int:
        return self.steps[-1].kept if self.steps else self.total

    def removed(self) -> list[tuple[Step, int]]:
        out, before = [], self.total
        for s in self.steps:
            out.append((s, before - s.kept))
            before = s.kept
        return out

    def culprit(self) -> Step | None:
        """The rule that removed the last folders."""
        return next((s for s in self.steps if s.kept == 0), None)

    def message(self) -> str:
        """One line: 0 of N selected, rule by rule, and the next thing to try."""
        if self.total == 0:
            return (f"0 {self.what} selected: the crawl holds no folder with files to archive; "
                    "check that the crawl covered the right PATH")
        parts = [f"{s.rule} removed {n:,}" for s, n in self.removed() if n]
        head = f"0 of {self.total:,} {self.what} selected: {', '.join(parts)}"
        bad = self.culprit()
        if bad is None:
            return head
        if bad.try_value:
            nxt = f"next: try {bad.option} {bad.try_value} ({bad.why})"
        else:
            nxt = f"next: loosen {bad.option}"
        return f"{head}; {nxt}"

    def to_json_obj(self) -> dict[str, Any]:
        return {"total": self.total, "selected": self.selected, "message": self.message(),
                "steps": [asdict(s) for s in self.steps]}


Rule = tuple[str, str, Callable[[Hotspot], bool], Callable[[Sequence[Hotspot]], tuple[str, str]]]


def run_rules(rows: Sequence[Hotspot], rules: Sequence[Rule], what: str = "folders") -> Funnel:
    """Apply ``rules`` one after the other; each is (words, option, keep?, try_value(rows))."""
    funnel = Funnel(len(rows), what=what)
    left = list(rows)
    for words, option, keep, loosest in rules:
        after = [h for h in left if keep(h)]
        value, why = loosest(left) if left and not after else ("", "")
        funnel.steps.append(Step(words, option, len(after), value, why))
        left = after
    return funnel


def hotspot_rules(*, min_size: int, size_of: Callable[[Hotspot], int], older_than: int,
                  last_used: Callable[[Hotspot], int], now: float,
                  owners: frozenset[str] = frozenset(), min_avg: int = 0,
                  need_files: Callable[[Hotspot], bool] | None = None,
                  options: dict[str, str] | None = None) -> list[Rule]:
    """The rules `select` and the rank stage apply, as funnel steps (only those in force)."""
    from ..util.units import format_size

    opt = {"min_size": "--min-size", "min_avg": "--min-avg-size", "older_than": "--older-than",
           "owner": "--owner", **(options or {})}
    rules: list[Rule] = []
    if need_files is not None:
        rules.append(("'has files to archive'", "--recursive", need_files,
                      lambda _rows: ("", "")))
    if min_avg:
        rules.append((f"'average file >= {format_size(min_avg)}'", opt["min_avg"],
                      lambda h: h.avg_file_bytes >= min_avg,
                      lambda rows: (floor_size(max(h.avg_file_bytes for h in rows)),
                                    "the largest average left")))
    if min_size:
        rules.append((f"'size >= {format_size(min_size)}'", opt["min_size"],
                      lambda h: size_of(h) >= min_size,
                      lambda rows: (floor_size(max(size_of(h) for h in rows)),
                                    "the largest folder left")))
    if older_than:
        cutoff = now - older_than
        rules.append((f"'unused for {older_than // 86400} days'", opt["older_than"],
                      lambda h: last_used(h) <= cutoff,
                      lambda rows: (floor_age(now - min(last_used(h) for h in rows)),
                                    "the longest unused folder left")))
    if owners:
        rules.append((f"'owner {','.join(sorted(owners))}'", opt["owner"],
                      lambda h: h.owner in owners,
                      lambda rows: (sorted({h.owner for h in rows})[0], "an owner left")))
    return rules
