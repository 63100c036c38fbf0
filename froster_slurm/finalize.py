"""The last job of a run: summary.json, summary.html, the catalog, and the retry command.

It runs ``afterany`` on every archive array, so it also runs when tasks failed: a run always
ends with a summary that says which folders are safe and how to retry the others.
"""

from __future__ import annotations

import html
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import catalog
from .paths import display
from .runs import Run
from .units import format_size


def task_record(run: Run, index: int, state: dict[str, Any]) -> dict[str, Any] | None:
    """The archive JSON record of a done task (the copy kept in the run, else the folder's)."""
    candidates = [run.run_dir / "tasks" / str(index) / "record.json"]
    if state.get("record_path"):
        candidates.append(Path(state["record_path"]))  # surrogateescape str: exact bytes
    for p in candidates:
        try:
            rec = json.loads(p.read_bytes())
        except (FileNotFoundError, PermissionError, json.JSONDecodeError):
            continue
        rec.setdefault("run_id", run.run_id)
        return rec
    return None


def finalize(run: Run) -> dict[str, Any]:
    """Write the run summary files and add every archived folder to the catalog."""
    from .taskstate import iter_task_states

    states = {s["index"]: s for s in iter_task_states(run.run_dir)}
    folders = run.folders()
    rows, records = [], []
    for i, folder in enumerate(folders):
        s = states.get(i, {})
        state = s.get("state", "not started")
        rec = task_record(run, i, s) if state == "done" else None
        if rec:
            records.append(rec)
        rows.append({"index": i, "folder": os.fsdecode(folder), "state": state,
                     "step": s.get("step"), "error": s.get("error"),
                     "attempts": s.get("attempts", 0),
                     "destination": (rec or {}).get("destination") or s.get("destination"),
                     "bytes": int((rec or {}).get("bytes") or s.get("bytes_total") or 0),
                     "files": int((rec or {}).get("files") or s.get("files") or 0)})
    failed = [r for r in rows if r["state"] != "done"]
    cat = Path(run.settings.get("catalog", ""))
    added = catalog.add_records(cat, records) if records and str(cat) else 0
    summary = {
        "run_id": run.run_id, "kind": run.settings.get("kind"),
        "created": run.settings.get("created"),
        "finalized": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "remote": run.settings.get("archive", {}).get("remote"),
        "totals": {"folders": len(rows), "done": len(rows) - len(failed),
                   "not_done": len(failed), "bytes": sum(r["bytes"] for r in rows
                                                         if r["state"] == "done"),
                   "catalog_added": added},
        "retry_command": f"froster-slurm retry {run.run_id}" if failed else None,
        "folders": rows,
    }
    tmp = run.run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=True))
    (run.run_dir / "summary.html").write_text(summary_html(summary))
    os.replace(tmp, run.run_dir / "summary.json")
    return summary


def summary_html(summary: dict[str, Any]) -> str:
    """A self-contained page; every name is escaped."""
    def e(text: str) -> str:
        """Escaped for HTML, with bytes that are not UTF-8 shown as \\xNN (never a crash)."""
        return html.escape(display(os.fsencode(text)))

    t = summary["totals"]
    body = []
    for r in summary["folders"]:
        cls = "ok" if r["state"] == "done" else "bad"
        body.append(
            f"<tr class='{cls}'><td>{r['index']}</td>"
            f"<td>{e(r['folder'])}</td><td>{e(r['state'])}</td>"
            f"<td>{e(format_size(r['bytes']))}</td><td>{r['files']}</td>"
            f"<td>{e(r['destination'] or '')}</td><td>{e(r['error'] or '')}</td></tr>")
    retry = (f"<p>Retry the folders that are not done with: "
             f"<code>{e(summary['retry_command'])}</code></p>" if summary["retry_command"] else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>froster-slurm run {e(summary['run_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
tr.ok td:nth-child(3){{color:#070}}tr.bad td:nth-child(3){{color:#b00}}</style></head>
<body><h1>froster-slurm run {e(summary['run_id'])}</h1>
<p>Created {e(str(summary['created']))}, finalized {e(summary['finalized'])}.
Remote: <code>{e(str(summary['remote']))}</code>.</p>
<p>{t['done']} of {t['folders']} folders archived and verified
({e(format_size(t['bytes']))}); {t['not_done']} not done.</p>
{retry}
<table><tr><th>#</th><th>folder</th><th>state</th><th>size</th><th>files</th>
<th>destination</th><th>error</th></tr>
{chr(10).join(body)}
</table></body></html>
"""
