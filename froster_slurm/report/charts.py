"""Static SVG bar charts, drawn here so they show without JavaScript (a mail preview, a
printout) and every label is escaped in one place."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ..util.units import format_size

BAR_H, GAP, LABEL_W, BAR_W, VALUE_W = 18, 4, 170, 300, 150


def _clip(text: str, n: int = 26) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def bars(items: Sequence[tuple[str, int]], colours: Sequence[str] | None = None,
         title: str = "") -> str:
    """Horizontal bars with a label, a size and a share of the sum of ``items``."""
    total = sum(v for _, v in items) or 1
    peak = max((v for _, v in items), default=0) or 1
    height = len(items) * (BAR_H + GAP) + GAP
    width = LABEL_W + BAR_W + VALUE_W
    out = [f'<svg class="bars" role="img" aria-label="{escape(title)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" '
           'xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(items):
        y = GAP + i * (BAR_H + GAP)
        w = max(1, round(BAR_W * value / peak)) if value else 0
        fill = colours[i] if colours else "#4a7ab5"
        out.append(f'<g><title>{escape(label)}: {value:,} bytes</title>'
                   f'<text x="{LABEL_W - 6}" y="{y + 13}" text-anchor="end">'
                   f'{escape(_clip(label))}</text>'
                   f'<rect x="{LABEL_W}" y="{y}" width="{w}" height="{BAR_H}" '
                   f'fill="{escape(fill)}"/>'
                   f'<text x="{LABEL_W + w + 6}" y="{y + 13}">{escape(format_size(value))} '
                   f'({100 * value / total:.1f}%)</text></g>')
    out.append("</svg>")
    return "".join(out)


def top_with_rest(counts: dict[str, int], n: int = 12) -> list[tuple[str, int]]:
    """The ``n`` largest, then one "N others" bar for the rest."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    head = ranked[:n]
    rest = ranked[n:]
    if rest:
        head.append((f"{len(rest):,} others", sum(v for _, v in rest)))
    return head
