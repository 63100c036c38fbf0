"""``summary.html``, the page finalize leaves in the run directory: what was archived, how
long it took and how fast, what it holds by storage class and what it costs per month, with a
link to each folder's index.html and to each task's log.

Static HTML (no script at all) with the same no-network policy as the report; every name is
escaped with ``html.escape`` after ``paths.display`` (``\\xNN`` for bytes that are not UTF-8),
and link targets are percent-encoded from the path's exact bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from html import escape
from itertools import islice
from typing import Any
from urllib.parse import quote

from ..pick.selection import monthly_cost
from ..remotes.storage_classes import NO_CLASS
from ..status.progress import format_eta, format_rate
from ..util.paths import display
from ..util.units import format_size

CSP = "default-src 'none'; style-src 'unsafe-inline'"


def by_storage_class(rows: list[dict[str, Any]], prices: Mapping[str, Any]
                     ) -> dict[str, dict[str, Any]]:
    """Done folders grouped by the class their data went to, with the monthly cost."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["state"] != "done":
            continue
        c = out.setdefault(r.get("storage_class") or "unknown",
                           {"folders": 0, "bytes": 0, "files": 0, "objects": 0})
        c["folders"] += 1
        c["bytes"] += r["bytes"]
        c["files"] += r["files"]
        c["objects"] += r.get("objects") or 0
    for name, c in out.items():
        c["monthly_cost"] = monthly_cost(c["bytes"], name, prices)
    return out


def _e(text: object) -> str:
    return escape(display(os.fsencode(str(text))))


def _href_file(path: str) -> str:
    """A file:// link to an exact path (any byte percent-encoded), escaped for an attribute."""
    return escape("file://" + quote(os.fsencode(path), safe="/"), quote=True)


def _href_rel(path: str) -> str:
    return escape(quote(os.fsencode(path), safe="/"), quote=True)


def _money(cost: float | None) -> str:
    return f"${cost:,.2f}" if cost is not None else "unknown"


def _span(seconds: float | None) -> str:
    return format_eta(seconds) if seconds is not None else "-"


# Done folders the page lists (every folder not done is listed): a page of 200,000 rows is
# some 160 MB that no browser opens; summary.json and ``status RUN --all`` have every folder.
MAX_DONE_ROWS = 5000


def _listed(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The rows the page shows: the folders not done first (what needs a look), then the
    first ``MAX_DONE_ROWS`` done ones, each group in the run's order."""
    yield from (r for r in rows if r["state"] != "done")
    yield from islice((r for r in rows if r["state"] == "done"), MAX_DONE_ROWS)


def _more_note(totals: dict[str, Any], shown_done: int, run_id: str) -> str:
    hidden = int(totals["done"]) - shown_done
    if hidden <= 0:
        return ""
    return (f"<p id='more'>Every folder not done is listed, and the first {shown_done:,} "
            f"done ones; the other {hidden:,} done folders are in summary.json and in "
            f"<code>froster-slurm status {_e(run_id)} --all</code>.</p>")


def summary_html(summary: dict[str, Any]) -> str:
    """The whole page."""
    t = summary["totals"]
    rows = summary["folders"]
    done = [r for r in rows if r["state"] == "done"]
    busy = sum(r["seconds"] or 0 for r in done)
    rate = t["bytes"] / busy if busy else None
    longest = max((r["seconds"] or 0 for r in done), default=0)
    classes = summary.get("storage_classes") or {}
    class_rows = "".join(
        f"<tr><td>{_e(name)}</td><td class='num'>{c['folders']:,}</td>"
        f"<td class='num'>{_e(format_size(c['bytes']))}</td><td class='num'>{c['files']:,}</td>"
        f"<td class='num'>{c['objects']:,}</td><td class='num'>{_money(c['monthly_cost'])}</td>"
        "</tr>" for name, c in sorted(classes.items()))
    body = []
    shown_done = 0
    for r in _listed(rows):
        cls = "ok" if r["state"] == "done" else "bad"
        shown_done += cls == "ok"
        secs = r.get("seconds")
        speed = format_rate(r["bytes"] / secs) if secs and r["state"] == "done" else "-"
        links = []
        if r.get("index_html"):
            links.append(f"<a class='index' href='{_href_file(r['index_html'])}'>index.html</a>")
        if r.get("log"):
            links.append(f"<a class='log' href='{_href_rel(r['log'])}'>log</a>")
        body.append(
            f"<tr class='{cls}'><td class='num'>{r['index']}</td>"
            f"<td class='path'>{_e(r['folder'])}</td><td class='state'>{_e(r['state'])}</td>"
            f"<td class='num'>{_e(format_size(r['bytes']))}</td>"
            f"<td class='num'>{r['files']:,}</td><td class='num'>{r.get('objects') or 0:,}</td>"
            f"<td>{_e(r.get('storage_class') or '-')}</td>"
            f"<td class='num'>{_e(_span(secs))}</td><td class='num'>{_e(speed)}</td>"
            f"<td class='num'>{r.get('attempts') or 0}</td><td>{' '.join(links)}</td>"
            f"<td>{_e(r.get('destination') or '')}</td><td>{_e(r.get('error') or '')}</td></tr>")
    retry = (f"<p class='retry'>Retry the folders that are not done with: "
             f"<code>{_e(summary['retry_command'])}</code></p>"
             if summary.get("retry_command") else "")
    if summary.get("catalog_error"):  # the run is fine; only the derived catalog was not
        retry += f"<p class='retry'>{_e(summary['catalog_error'])}</p>"
    sel = summary.get("selection") or {}
    selection = (f"<p class='retry' id='selection'>Nothing to archive: "
                 f"{_e(sel.get('message') or '0 folders selected')}</p>"
                 if sel and not sel.get("selected") else "")
    trace_note = ("<p>Each archived folder also keeps three small trace objects (manifest, "
                  "record, index.html) in STANDARD, readable without a restore.</p>"
                  if set(classes) - {NO_CLASS} else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>froster-slurm run {_e(summary['run_id'])}</title>
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}}th{{background:#eef}}td.num{{text-align:right;
font-variant-numeric:tabular-nums}}td.path{{word-break:break-all;min-width:18em;max-width:32em}}
tr.ok td.state{{color:#070}}tr.bad td.state{{color:#b00}}
.cards{{display:flex;flex-wrap:wrap;gap:.8em}}.card{{flex:1 1 160px;border:1px solid #ccd;
border-radius:6px;padding:.5em .8em;background:#f7f9fc}}.card b{{display:block;font-size:1.4em}}
.retry code{{background:#fee;padding:2px 6px}}</style></head>
<body><h1>froster-slurm run {_e(summary['run_id'])}</h1>
<p>Created {_e(summary.get('created'))}, finalized {_e(summary['finalized'])}.
Remote: <code>{_e(summary.get('remote'))}</code>.</p>
<div class="cards">
<div class="card" id="done"><b>{t['done']:,} of {t['folders']:,}</b>folders archived and
verified; {t['not_done']:,} not done</div>
<div class="card" id="bytes"><b>{_e(format_size(t['bytes']))}</b>in {t.get('files', 0):,}
files, {t.get('objects', 0):,} objects</div>
<div class="card" id="throughput"><b>{_e(format_rate(rate))}</b>per task on average
({_e(_span(busy))} of task time; longest task {_e(_span(longest))}; the run took
{_e(_span(t.get('run_seconds')))} from submission to summary)</div>
<div class="card" id="cost"><b>{_money(t.get('monthly_cost'))}</b>per month for the data
(estimate, cost.per_tb_month)</div>
</div>
<h2>By storage class</h2>
<table id="classes"><tr><th>class</th><th>folders</th><th>bytes</th><th>files</th>
<th>objects</th><th>per month</th></tr>{class_rows}</table>
{trace_note}
{selection}
{retry}
<h2>Folders</h2>
{_more_note(t, shown_done, summary['run_id'])}
<table id="folders"><tr><th>#</th><th>folder</th><th>state</th><th>size</th><th>files</th>
<th>objects</th><th>class</th><th>duration</th><th>throughput</th><th>attempts</th>
<th>links</th><th>destination</th><th>error</th></tr>
{chr(10).join(body)}
</table></body></html>
"""
