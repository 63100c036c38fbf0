"""What a run is doing: its jobs (one squeue call, plus sacct where accounting exists) joined
with the per-task state files, which stay the record of truth after jobs leave squeue."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .backend import Backend
from .paths import display
from .runs import Run
from .slurm import JobInfo
from .units import format_size

TERMINAL = ("done", "failed")


@dataclass
class RunStatus:
    run_id: str
    kind: str
    jobs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    folders: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. why the rank stage selected nothing

    @property
    def finished(self) -> bool:
        """All work is over: every job left the queue and finalize has written its summary."""
        return (self.totals.get("jobs_active", 0) == 0
                and self.totals.get("finalized", 0) == 1)

    @property
    def idle(self) -> bool:
        """No job of the run is queued or running (finished, or stopped for good)."""
        return self.totals.get("jobs_active", 0) == 0

    def to_json_obj(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.kind, "jobs": self.jobs,
                "folders": self.folders, "totals": self.totals, "finished": self.finished,
                "notes": self.notes}


def collect(run: Run, backend: Backend) -> RunStatus:
    """One queue query for every job of the run, joined with every task's state file."""
    from .taskstate import iter_task_states

    jobs = run.jobs()
    ids = [j for entries in jobs.values() for e in entries for j in e["job_ids"]]
    queue = backend.queue(ids) if ids else {}
    st = RunStatus(run.run_id, run.settings.get("kind", "archive"))
    active = 0
    for stage, entries in jobs.items():
        for e in entries:
            for job in e["job_ids"]:
                rows = _rows_for(job, queue)
                states = sorted({r.state for r in rows}) or ["ENDED"]
                active += sum(1 for r in rows if r.active)
                st.jobs.setdefault(stage, []).append(
                    {"job_id": job, "states": states,
                     "comments": {r.job_id: r.comment for r in rows if r.comment},
                     "reasons": {r.job_id: r.reason for r in rows
                                 if r.state == "PENDING" and r.reason
                                 and r.reason != "None"}})
    states = {s["index"]: s for s in iter_task_states(run.run_dir)}
    folders = run.folders()
    counts = {"folders": len(folders), "done": 0, "failed": 0, "running": 0, "pending": 0,
              "bytes_total": 0, "bytes_done": 0, "files": 0}
    for i, folder in enumerate(folders):
        s = states.get(i, {})
        state = s.get("state", "pending")
        counts[state if state in counts else "running"] += 1
        counts["bytes_total"] += int(s.get("bytes_total") or 0)
        counts["bytes_done"] += int(s.get("bytes_done") or 0)
        counts["files"] += int(s.get("files") or 0)
        st.folders.append({
            "index": i, "folder": os.fsdecode(folder), "state": state,
            "step": s.get("step"), "attempts": s.get("attempts", 0),
            "failures": s.get("failures", 0), "max_attempts": s.get("max_attempts"),
            "bytes_total": s.get("bytes_total") or 0, "bytes_done": s.get("bytes_done") or 0,
            "error": s.get("error"), "error_kind": s.get("error_kind"),
            "destination": s.get("destination"), "warning": s.get("warning"),
            "retry_after": s.get("retry_after"), "slurm_job": s.get("slurm_job"),
        })
    report = run.selection_report()
    if report is not None and not report.get("selected"):
        st.notes.append(f"nothing to archive: {report.get('message') or '0 folders selected'}")
    counts["jobs_active"] = active
    counts["finalized"] = int((run.run_dir / "summary.json").exists())
    st.totals = counts
    return st


def _rows_for(job: str, queue: dict[str, JobInfo]) -> list[JobInfo]:
    """squeue -r lists array tasks as ID_TASK: gather the ones of this job."""
    return [info for jid, info in queue.items() if jid == job or jid.startswith(job + "_")]


def format_status(st: RunStatus) -> str:
    """The table a person reads in a terminal."""
    t = st.totals
    lines = [f"run {st.run_id} ({st.kind}): {t.get('done', 0)}/{t.get('folders', 0)} folders "
             f"archived, {t.get('failed', 0)} failed, {t.get('running', 0)} running, "
             f"{t.get('pending', 0)} pending; "
             f"{format_size(t.get('bytes_done', 0))} of {format_size(t.get('bytes_total', 0))}"]
    lines.extend(f"  {note}" for note in st.notes)
    for stage, jobs in st.jobs.items():
        for j in jobs:
            lines.append(f"  job {j['job_id']:<12} {stage:<9} {','.join(j['states'])}")
            for task, comment in sorted(j["comments"].items()):
                lines.append(f"      {task}: {comment}")
    if st.folders:
        lines.append(f"  {'#':>4}  {'state':<8} {'step':<9} {'progress':>21}  folder")
    for f in st.folders:
        prog = f"{format_size(f['bytes_done'])}/{format_size(f['bytes_total'])}"
        lines.append(f"  {f['index']:>4}  {f['state']:<8} {str(f['step'] or '-'):<9} "
                     f"{prog:>21}  {display(os.fsencode(f['folder']))}")
        if f["error"]:
            lines.append(f"        error: {f['error']} (failures {f['failures']}/"
                         f"{f['max_attempts'] or '?'})")
        if f.get("warning"):
            lines.append(f"        note: {f['warning']}")
    if st.finished and t.get("failed"):
        lines.append("  " + retry_line(st))
    return "\n".join(lines)


def retry_line(st: RunStatus) -> str:
    """Advise ``retry`` where it can help: a folder that failed for good (permanent error)
    fails again with the same settings, so say what to change."""
    failed = [f for f in st.folders if f["state"] == "failed"]
    if failed and all(f.get("error_kind") == "permanent" for f in failed):
        return (f"these failed for good (see each error): fix the cause, then "
                f"froster-slurm retry {st.run_id} [--to REMOTE] [--storage-class CLASS]")
    return f"retry the failed folders with: froster-slurm retry {st.run_id}"
