"""One self-contained HTML file: markup and figures rendered here (escaped), the folder data
as gzip + base64 inside the page, and a small script of our own that draws the treemap and
the sortable table from it.

No network: a Content-Security-Policy of ``default-src 'none'`` forbids every fetch, font and
image the page could try, so it opens the same on a login node, a laptop or from a mail.
Every name reaches the page either through ``html.escape`` (the static parts) or inside the
compressed JSON, which the script only ever puts into the DOM as text (``textContent``), so a
folder called ``<script>`` stays text.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from datetime import UTC, datetime
from html import escape
from importlib import resources

from ..pick.selection import PUT_PRICE_SOURCE
from ..util.units import format_size
from . import charts
from .model import AGE_BUCKETS, BASES, Tree, breakdown, payload
from .plan import Plan

# Hot (recently used) to cold, then "no files".  The script and the charts share them.
AGE_COLOURS = ("#c0392b", "#e67e22", "#f1c40f", "#7fb3d5", "#2e86c1", "#1b4f72")
NO_FILES_COLOUR = "#b8b8b8"
BASIS_LABELS = {"used": "last use (newest of mtime and atime, as the rules)",
                "mtime": "newest mtime", "atime": "newest atime"}
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:")


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _money(value: float | None, what: str) -> str:
    return f"${value:,.2f}" if value is not None else f"unknown (no price for {what})"


def encode_data(data: dict) -> str:
    """gzip + base64 of compact ASCII JSON: the base64 alphabet cannot close a script tag."""
    raw = json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def _plan_html(plan: Plan) -> str:
    s = plan.settings
    t = plan.totals
    rules = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
                    for k, v in s.describe())
    price = s.prices.get(s.storage_class)
    put_price = s.put_prices.get(s.storage_class)
    return f"""<section id="plan"><h2>If you archive the folders that pass the rules</h2>
<div class="cards">
<div class="card"><span class="big" id="plan-folders">{t.folders:,}</span>folders
(of {plan.matched:,} that match before overlaps are dropped)</div>
<div class="card"><span class="big" id="plan-bytes">{escape(format_size(t.bytes))}</span>freed on
primary storage ({t.files:,} files)</div>
<div class="card"><span class="big" id="plan-monthly">{
escape(_money(plan.monthly, s.storage_class))}</span>per month in {escape(s.storage_class)}
({escape(f"${price}/TB-month" if price is not None else "no price set")})</div>
<div class="card"><span class="big" id="plan-put">{escape(_money(plan.put, s.storage_class))}</span>
once, for ~{plan.requests:,} PUT requests ({plan.objects:,} objects;
{escape(f"${put_price} per 1000" if put_price is not None else "no price set")};
prices: <span id="plan-put-source">{escape(PUT_PRICE_SOURCE)}</span>)</div>
</div>
<table class="rules"><caption>Rules (config <code>rank.*</code>, <code>archive.*</code>,
<code>cost.*</code> and this command's flags)</caption>{rules}</table>
<p class="note">Estimates: storage is billed in decimal TB; minimum storage durations,
per-object overheads and retrieval are not included. Objects: files whose folder's average is
below the bundle threshold ({escape(format_size(s.uploads.bundle_threshold))}) travel in
{escape(format_size(s.uploads.bundle_size))} bundles; objects above
{escape(format_size(s.uploads.upload_cutoff))} are multipart uploads of
{escape(format_size(s.uploads.chunk_size))} parts, each one request; three trace copies per
folder. Folders marked &#10003; in the table below are the ones counted here.</p>
</section>"""


def _charts_html(tree: Tree, now: int) -> str:
    b = breakdown(tree.rows, now)
    labels = [label for label, _ in AGE_BUCKETS]
    age = "".join(
        f'<div class="age-chart" data-basis="{basis}"{"" if basis == "used" else " hidden"}>'
        + charts.bars(list(zip(labels, b.by_age[basis], strict=True)), AGE_COLOURS,
                      f"bytes by {BASIS_LABELS[basis]}")
        + "</div>" for basis in BASES)
    owners = charts.bars(charts.top_with_rest(b.by_owner), title="bytes by owner")
    groups = charts.bars(charts.top_with_rest(b.by_group), title="bytes by group")
    return f"""<section id="charts"><h2>Where the bytes are</h2>
<p class="note">Each folder's own files, each byte once; a folder's age is its newest file's.</p>
<div class="chartgrid">
<figure id="chart-age"><figcaption>By age (<span class="basis-name">{
escape(BASIS_LABELS["used"])}</span>)</figcaption>{age}</figure>
<figure id="chart-owner"><figcaption>By owner</figcaption>{owners}</figure>
<figure id="chart-group"><figcaption>By group</figcaption>{groups}</figure>
</div></section>"""


def render(tree: Tree, plan: Plan, source: str, rank_by: str, now: int | None = None) -> str:
    """The whole page."""
    now = int(time.time()) if now is None else now
    picked_ids = {id(h) for h in plan.chosen}
    picked = {i for i, h in enumerate(tree.rows) if id(h) in picked_ids}
    data = payload(tree, picked, now)
    data.update(rank_by=rank_by, colours=list(AGE_COLOURS), no_files_colour=NO_FILES_COLOUR,
                buckets=[limit for _, limit in AGE_BUCKETS],
                bucket_labels=[label for label, _ in AGE_BUCKETS], basis_labels=BASIS_LABELS)
    total_bytes = sum(h.bytes for h in tree.rows)
    total_files = sum(h.files for h in tree.rows)
    when = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M UTC")
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(label)}</span>'
                     for c, (label, _) in zip(AGE_COLOURS, AGE_BUCKETS, strict=True))
    legend += f'<span><i style="background:{NO_FILES_COLOUR}"></i>no files</span>'
    basis = "".join(
        f'<label><input type="radio" name="basis" value="{k}"{" checked" if k == "used" else ""}>'
        f"{escape(v)}</label>" for k, v in BASIS_LABELS.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>froster-slurm report: {escape(source)}</title>
<style>{_asset("report.css")}</style></head>
<body>
<header><h1>Where the space is</h1>
<p id="source">{escape(source)}; generated {escape(when)}.
{len(tree.rows):,} folders holding {escape(format_size(total_bytes))} in {total_files:,} files
directly inside them.</p></header>
{_plan_html(plan)}
<section id="tree"><h2>Space by folder</h2>
<p class="note">Area: the folder's whole subtree. Colour: when its files were last used.
Click a folder to go in, the path above to go back (or press Escape).</p>
<div class="controls"><span>Colour by:</span> {basis}</div>
<nav id="crumbs" aria-label="path"></nav>
<div id="treemap"><noscript>The treemap and the table need JavaScript.</noscript></div>
<div class="legend">{legend}</div>
<div id="tip" hidden></div>
</section>
{_charts_html(tree, now)}
<section id="top"><h2>Top folders</h2>
<div class="controls"><label>Show <select id="limit"><option>100</option><option selected>200
</option><option>1000</option><option>5000</option></select> rows</label>
<label><input type="checkbox" id="exact"> exact numbers (as in hotspots.csv)</label>
<span id="count"></span></div>
<table id="folders"><thead><tr>
<th data-key="folder">folder</th><th data-key="bytes">bytes</th><th data-key="files">files</th>
<th data-key="total_bytes">total_bytes</th><th data-key="total_files">total_files</th>
<th data-key="allocated_bytes">allocated_bytes</th><th data-key="avg_file_bytes">avg_file_bytes
</th><th data-key="newest_mtime">newest_mtime</th><th data-key="newest_atime">newest_atime</th>
<th data-key="owner">owner</th><th data-key="group">group</th><th data-key="depth">depth</th>
<th data-key="picked" title="passes the rules (counted above)">rules</th>
</tr></thead><tbody></tbody></table>
</section>
<footer id="status">loading&hellip;</footer>
<script type="application/x-froster-data" id="data">{encode_data(data)}</script>
<script>{_asset("report.js")}</script>
</body></html>
"""
