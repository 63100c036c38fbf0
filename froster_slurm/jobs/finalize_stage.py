"""The last job of a run: summary.json, summary.html, the catalog, and the retry command.

It runs ``afterany`` on every archive array, so it also runs when tasks failed: a run always
ends with a summary that says which folders are safe and how to retry the others.  Job side
(``python -m froster_slurm.jobs finalize RUN_DIR``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb

from ..catalog import store as catalog
from ..errors import FrosterError
from ..folder.schema import read_head
from ..run.rundir import Run, run_config
from ..run.taskstate import ErrorKind, TaskState
from ..scheduler.injob import set_status
from ..status.collect import FolderRow, folder_rows
from ..util.atomic import atomic_text, write_atomic
from ..util.clock import now_iso, seconds_between


def task_record(run: Run, index: int, task: TaskState) -> dict[str, Any] | None:
    """The head of a done task's archive record (``folder.schema.read_head``: no per-file parts),
    from the copy kept in the run, else the folder's; memory does not grow with its files."""
    candidates = [run.task(index).record_path]
    if task.record_path:
        candidates.append(Path(task.record_path))  # surrogateescape str: exact bytes
    for p in candidates:
        try:
            with open(p, "rb") as f:
                rec = read_head(f)
        except (FileNotFoundError, PermissionError, ValueError, UnicodeError):
            continue
        rec.setdefault("run_id", run.run_id)
        return rec
    return None


def _log_of(run: Run, index: int, task: TaskState) -> str | None:
    """The task's job log, relative to the run directory (where summary.html is)."""
    job = task.slurm_job
    if job:
        log = run.job_log("archive", job)
        if log.exists():
            return str(log.relative_to(run.run_dir))
    rclone_logs = run.task(index).logs
    return str(rclone_logs.relative_to(run.run_dir)) if rclone_logs.is_dir() else None


def _prices(run: Run) -> dict[str, Any]:
    try:
        return dict(run_config(run).get("cost.per_tb_month"))
    except (FrosterError, OSError):  # no frozen config (a run made by hand): no prices
        from ..config import load_config

        return dict(load_config({}).get("cost.per_tb_month"))


def finalize(run: Run) -> dict[str, Any]:
    """Write the run summary files and add every archived folder to the catalog.

    Memory stays flat in the number of files archived: each done folder's record is read as
    its head (``task_record``), turned into one catalog row and dropped, and rows go to the
    catalog in batches while the states are read (one task state at a time).  What is kept
    is one summary row per folder."""
    from ..report.summary import by_storage_class, summary_html

    rows: list[dict[str, Any]] = []
    permanent: list[str | None] = []  # the errors of folders that failed for good
    # A run from before the catalog was recorded has none: Path("") would be "." (the cwd).
    cat = Path(run.settings.catalog) if run.settings.catalog else None
    added, catalog_error = 0, None
    writer: catalog.Writer | None = None
    # finalize runs once every archive task has left the queue: a task not done or failed by
    # now was cancelled (it resumes on retry) or stopped without a word.
    for folder_row in folder_rows(run, over=True):
        row, rec = _folder_row(run, folder_row)
        rows.append(row)
        t = folder_row.task
        if row["state"] != "done" and t.error_kind == ErrorKind.PERMANENT:
            permanent.append(t.error)
        if rec and cat is not None and catalog_error is None:
            # The catalog is derived data (`catalog rebuild`): a catalog this user may not
            # write must not cost the run its summary, which says what is safe and how to
            # retry.
            try:
                writer = writer or catalog.Writer(cat)
                writer.add(rec, os.fsencode(t.record_path) if t.record_path else None)
            except (FrosterError, OSError, duckdb.Error) as e:
                catalog_error = f"catalog not updated: {e}"
    if writer is not None:
        try:
            if catalog_error is None:
                writer.flush()
        except (FrosterError, OSError, duckdb.Error) as e:
            catalog_error = f"catalog not updated: {e}"
        added = writer.added
    failed = [r for r in rows if r["state"] != "done"]
    finalized = now_iso()
    classes = by_storage_class(rows, _prices(run))
    summary = {
        "run_id": run.run_id, "kind": run.settings.kind,
        "created": run.settings.created,
        "finalized": finalized,
        "remote": (run.settings.archive or {}).get("remote"),
        "totals": {"folders": len(rows), "done": len(rows) - len(failed),
                   "not_done": len(failed),
                   "cancelled": sum(1 for r in rows if r["state"] == "cancelled"),
                   "bytes": sum(r["bytes"] for r in rows
                                                         if r["state"] == "done"),
                   "files": sum(r["files"] for r in rows if r["state"] == "done"),
                   "objects": sum(r["objects"] for r in rows if r["state"] == "done"),
                   "catalog_added": added,
                   "run_seconds": seconds_between(run.settings.created, finalized),
                   "monthly_cost": (sum(c["monthly_cost"] for c in classes.values())
                                    if all(c["monthly_cost"] is not None
                                           for c in classes.values()) else None)},
        "storage_classes": classes,
        "catalog_error": catalog_error,
        "retry_command": f"froster-slurm retry {run.run_id}" if failed else None,
        "retry_note": retry_note(permanent),
        "folders": rows,
    }
    report = run.selection_report()
    if report is not None:  # a pipeline run: what its rank stage selected, and why not more
        summary["selection"] = report
    # summary.json last: its presence is what says the run is finalized (status reads it).
    write_atomic(run.summary_html_path, summary_html(summary))
    with atomic_text(run.summary_path) as f:  # streamed: no second copy of every row
        json.dump(summary, f, indent=1, ensure_ascii=True)
    return summary


def _folder_row(run: Run, row: FolderRow) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The summary row of one folder and, when it is done, the head of its record."""
    i, folder, t, state = row.index, row.folder, row.task, row.state
    rec = task_record(run, i, t) if state == "done" else None
    index_page = None
    if rec and rec.get("index_html"):
        index_page = os.fsdecode(os.path.join(folder, os.fsencode(rec["index_html"])))
    return ({"index": i, "folder": os.fsdecode(folder), "state": state,
             "step": t.step, "error": t.error,
             "attempts": t.attempts,
             "destination": (rec or {}).get("destination") or t.destination,
             "bytes": int((rec or {}).get("bytes") or t.bytes_total or 0),
             "files": int((rec or {}).get("files") or t.files or 0),
             "objects": int((rec or {}).get("objects") or t.objects or 0),
             "storage_class": (rec or {}).get("storage_class"),
             "started_at": t.started_at, "finished_at": t.finished_at,
             "seconds": seconds_between(t.started_at, t.finished_at),
             "index_html": index_page, "log": _log_of(run, i, t)}, rec)


def retry_note(permanent: list[str | None]) -> str | None:
    """What a bare ``retry`` cannot fix: folders that failed for good (a storage class the
    remote rejects, a remote that is not configured, a foreign file in the folder) fail again
    unless the cause is fixed first or ``--to``/``--storage-class`` change the settings.
    ``permanent``: the error of each folder not done whose error was permanent."""
    if not permanent:
        return None
    first = permanent[0] or "see the folder's error"
    return (f"{len(permanent)} folder(s) failed for good and fail again as they are: fix the "
            f"cause first, or retry with --to REMOTE / --storage-class CLASS (e.g. {first})")


def finalize_job(run: Run) -> int:
    """The finalize job (``python -m froster_slurm.jobs finalize RUN_DIR``): the summary, then
    one line each for the totals, the catalog and how to retry what failed."""
    set_status("finalize")
    s = finalize(run)
    t = s["totals"]
    print(f"finalize: {t['done']}/{t['folders']} folders archived; "
          f"{t['catalog_added']} catalog entries", flush=True)
    if s.get("catalog_error"):
        print(f"finalize: {s['catalog_error']}", flush=True)
    if s.get("selection") and not s["selection"].get("selected"):
        print(f"finalize: nothing to archive: {s['selection'].get('message')}", flush=True)
    if s["retry_command"]:
        print(f"retry the others with: {s['retry_command']}", flush=True)
    if s.get("retry_note"):
        print(s["retry_note"], flush=True)
    return 0
