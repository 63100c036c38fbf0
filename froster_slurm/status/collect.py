"""What a run is doing: its jobs (one queue query, plus accounting where it exists) joined
with the per-task state files, which stay the record of truth after jobs leave the queue."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..run import taskslots, taskstate
from ..run.rundir import Run, RunKind, crawl_dir
from ..run.taskstate import TERMINAL, ErrorKind, TaskState, TaskStatus, iter_tasks
from ..scheduler.backends import Backend
from ..scheduler.slurm import JobInfo, rows_of
from ..util.paths import display
from ..util.units import format_size

FEW = 1000  # runs up to this size list every folder whatever was asked
SHOWN = 500  # at most this many folders listed from the status index


# What a run as a whole is, in the words status, `status --all` and `runs list` print.
RUN_STATES = ("active", "finished", "cancelled", "stopped", "dry-run", "submit-failed",
              "not-submitted", "unknown")
# Task states a folder shows once no job of its run is left to change it.
CANCELLED, STOPPED, NOT_STARTED = "cancelled", "stopped", "not started"
# The order folders are listed in when not every folder is (``collect(every_folder=False)``).
SHOWN_ORDER = ("failed", "retrying", "running", CANCELLED, STOPPED)


@dataclass
class RunStatus:
    run_id: str
    kind: str
    jobs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    folders: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. why the rank stage selected nothing
    state: str = "active"
    slurm_queried: bool = True
    not_queried_reason: str = ""
    submission: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)  # the run kind's own figures
    created: str = ""
    never_runs: list[str] = field(default_factory=list)  # jobs whose dependency failed
    partial: bool = False  # ``folders`` lists only those that need a look (see ``collect``)

    @property
    def finished(self) -> bool:
        """All work is over: every job left the queue and the kind's last step wrote its
        result (an archive's summary, every crawl shard's summary, a restore's last phase,
        a purge's results)."""
        return self.totals.get("jobs_active", 0) == 0 and self.totals.get("finalized", 0) == 1

    @property
    def idle(self) -> bool:
        """No job of the run is queued or running (finished, or stopped for good)."""
        return self.totals.get("jobs_active", 0) == 0

    def to_json_obj(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.kind, "state": self.state,
                "created": self.created, "jobs": self.jobs, "folders": self.folders,
                "totals": self.totals, "finished": self.finished, "detail": self.detail,
                "slurm_queried": self.slurm_queried, "submission": self.submission,
                "notes": self.notes, "partial": self.partial}


def query_backend(run: Run, config: Any) -> Backend | None:
    """The backend to ask about ``run``'s jobs, or None where there is none to ask (a login
    or data-transfer node without Slurm): status then reads the state files alone."""
    from ..errors import FrosterError
    from ..submit.pipeline import backend_for_run

    try:
        return backend_for_run(run, config)
    except FrosterError:
        return None


def collect(run: Run, backend: Backend | None, *, every_folder: bool = True) -> RunStatus:
    """One queue query for every job of the run, joined with every task's state file.

    ``backend`` None (no Slurm commands on this host) or a queue that cannot be asked: the
    state files alone answer, and the status says Slurm was not queried.

    ``every_folder`` False: a run of more than ``FEW`` folders with a status index
    (``taskslots``) is totalled from the index, and only the folders a person must see
    (failed, retrying, running, cancelled, stopped) are listed (``partial``): 200,000 folders
    answer in about a second, not by opening 200,000 state files.
    """
    from ..errors import FrosterError

    jobs = run.jobs()
    ids = [j for entries in jobs.values() for e in entries for j in e["job_ids"]]
    st = RunStatus(run.run_id, run.settings.kind or RunKind.ARCHIVE,
                   submission=run.submission(), created=run.settings.created or "")
    queue: dict[str, JobInfo] = {}
    if backend is None:
        st.slurm_queried, st.not_queried_reason = False, "no sbatch/squeue on this host"
    elif ids:
        try:
            queue = backend.queue(ids)
        except FrosterError as e:
            st.slurm_queried, st.not_queried_reason = False, str(e)
    active = 0
    for stage, entries in jobs.items():
        for e in entries:
            for job in e["job_ids"]:
                rows = rows_of(job, queue)
                states = (sorted({r.state for r in rows}) or ["ENDED"]) if st.slurm_queried \
                    else ["NOT QUERIED"]
                # Slurm keeps a job whose dependency failed pending for ever: it will never
                # run, so it does not keep the run active (status names it to cancel).
                st.never_runs.extend(r.job_id for r in rows if r.never_runs)
                active += sum(1 for r in rows if r.live)
                st.jobs.setdefault(stage, []).append(
                    {"job_id": job, "states": states,
                     "comments": {r.job_id: r.comment for r in rows if r.comment},
                     "reasons": {r.job_id: r.reason for r in rows
                                 if r.state == "PENDING" and r.reason
                                 and r.reason != "None"}})
    # Nothing will move a task any more: the run's jobs are gone (and we could ask).
    over = st.slurm_queried and bool(ids) and active == 0
    n_folders = count_folders(run.folders_path)
    counts = {"folders": n_folders, "done": 0, "failed": 0, "running": 0, "pending": 0,
              "cancelled": 0, "stopped": 0, "bytes_total": 0, "bytes_done": 0, "files": 0,
              "retrying": 0, "permanent": 0}
    if not every_folder and n_folders > FEW and taskslots.exists(run.run_dir):
        _from_slots(run, st, counts, n_folders, over)
    else:
        _from_state_files(run, st, counts, over)
    report = run.selection_report()
    if report is not None and not report.get("selected"):
        st.notes.append(f"nothing to archive: {report.get('message') or '0 folders selected'}")
    elif report is not None and report.get("upload"):
        up = report["upload"]
        if up.get("storage_class") in (None, "", "none"):  # a local folder, sftp: no requests
            st.notes.append(f"rank selected {report['selected']:,} folders: "
                            f"~{up.get('objects', 0):,} objects to write (no storage class, "
                            "no request price)")
        else:
            usd = f" ~${up['put_usd']:,.2f} once" if up.get("put_usd") is not None else ""
            st.notes.append(f"rank selected {report['selected']:,} folders: ~"
                            f"{up['put_requests']:,} PUT requests{usd} to "
                            f"{up['storage_class']} ({up['price_source']})")
    counts["jobs_active"] = active
    st.detail = _kind_detail(run, st.kind, n_folders)
    counts["finalized"] = int(bool(st.detail.get("complete")))
    st.totals = counts
    st.state = _run_state(st, bool(ids))
    return st


def _count(counts: dict[str, int], state: str, bytes_total: int, bytes_done: int,
           files: int, permanent: bool) -> None:
    key = {CANCELLED: "cancelled", STOPPED: "stopped", NOT_STARTED: "pending"}.get(
        state, state)
    counts[key if key in counts and key != "retrying" else "running"] += 1
    counts["retrying"] += state == "retrying"
    counts["permanent"] += state == "failed" and permanent
    counts["bytes_total"] += bytes_total
    counts["bytes_done"] += bytes_done
    counts["files"] += files


@dataclass(frozen=True)
class FolderRow:
    """One folder of a run as status and finalize show it."""

    index: int
    folder: bytes | None
    task: TaskState  # its state.json (defaults when the task has none)
    state: str  # a TaskStatus, or once no job can move the task: CANCELLED, STOPPED, NOT_STARTED


def shown_state(task: TaskState | None, over: bool) -> str:
    """The state a folder is shown in: its task's, or once no job of the run is left to move
    a task (``over``) that is neither done nor failed, what ended it (``ended_state``)."""
    state: str = task.state if task is not None else TaskStatus.PENDING
    return ended_state(task) if over and state not in TERMINAL else state


def folder_rows(run: Run, *, over: bool) -> Iterator[FolderRow]:
    """Every folder of the run's list, in order, with its task state: the one place status and
    finalize turn task states into per-folder rows (``shown_state`` for each).

    Task states are read one at a time, so memory does not grow with the run beyond the
    folder list.
    """
    tasks = iter_tasks(run.run_dir)
    nxt = next(tasks, None)
    for i, folder in enumerate(run.folders()):
        while nxt is not None and nxt.index < i:
            nxt = next(tasks, None)
        task = nxt if nxt is not None and nxt.index == i else None
        yield FolderRow(i, folder, task or TaskState(i, os.fsdecode(folder)),
                        shown_state(task, over))


def _status_row(row: FolderRow) -> dict[str, Any]:
    """A folder as ``status`` (and its --json) shows it."""
    t = row.task
    return {
        "index": row.index, "folder": os.fsdecode(row.folder) if row.folder is not None
        else None,
        "state": row.state,
        "step": t.step, "attempts": t.attempts,
        "failures": t.failures, "max_attempts": t.max_attempts,
        "bytes_total": t.bytes_total, "bytes_done": t.bytes_done,
        "error": t.error, "error_kind": t.error_kind,
        "destination": t.destination, "warning": t.warning,
        "steps_done": list(t.steps_done),
        "retry_after": t.retry_after, "slurm_job": t.slurm_job,
    }


def _count_task(counts: dict[str, int], row: FolderRow) -> None:
    t = row.task
    _count(counts, row.state, t.bytes_total, t.bytes_done, t.files,
           t.error_kind == ErrorKind.PERMANENT)


def _from_state_files(run: Run, st: RunStatus, counts: dict[str, int], over: bool) -> None:
    """Every folder, from every task's state file (the truth)."""
    for row in folder_rows(run, over=over):
        _count_task(counts, row)
        st.folders.append(_status_row(row))


def _from_slots(run: Run, st: RunStatus, counts: dict[str, int], n_folders: int,
                over: bool) -> None:
    """Totals from the status index (``taskslots.tally``: 64 bytes a folder, one pass), and
    rows only for the folders a person must see: failed, retrying, running, cancelled or
    stopped, at most ``SHOWN`` of them (their state files are opened for the details)."""
    got = taskslots.tally(run.run_dir, n_folders, SHOWN)
    wanted: dict[str, list[int]] = {k: [] for k in SHOWN_ORDER}
    for (orig, sigterm), (n, total, done, files) in got.groups.items():
        state = orig
        if over and orig not in TERMINAL:
            # as ended_state on the task's state (a task that never wrote one reads as a
            # fresh pending state, which the end of its run stopped)
            state = CANCELLED if sigterm else STOPPED
        key = {CANCELLED: "cancelled", STOPPED: "stopped"}.get(state, state)
        counts[key if key in counts and key != "retrying" else "running"] += n
        counts["retrying"] += n if state == "retrying" else 0
        counts["bytes_total"] += total
        counts["bytes_done"] += done
        counts["files"] += files
        if state in wanted:
            wanted[state].extend(got.first[(orig, sigterm)])
    counts["permanent"] += got.permanent
    for i in got.torn:  # the state file says
        task = taskstate.load_task(run.run_dir, i)
        state = shown_state(task, over)
        _count(counts, state, task.bytes_total, task.bytes_done, task.files,
               task.error_kind == ErrorKind.PERMANENT)
        if state in wanted:
            wanted[state].append(i)
    picked = [i for k in SHOWN_ORDER for i in sorted(wanted[k])[:SHOWN]][:SHOWN]
    names = folders_at(run.folders_path, picked)
    for i in picked:
        task = taskstate.load_task(run.run_dir, i)
        st.folders.append(_status_row(FolderRow(i, names.get(i), task, shown_state(task, over))))
    st.partial = True


def count_folders(path: Path, chunk: int = 1 << 20) -> int:
    """Entries of a NUL-separated folder list, counted a chunk at a time (0 if missing)."""
    n, last = 0, b"\0"
    try:
        with open(path, "rb") as f:
            while data := f.read(chunk):
                n += data.count(b"\0")
                last = data[-1:]
    except FileNotFoundError:
        return 0
    return n + (last != b"\0")


def folders_at(path: Path, indices: list[int], chunk: int = 1 << 20) -> dict[int, bytes]:
    """The folder-list entries at ``indices``, read a chunk at a time (bounded memory)."""
    want = set(indices)
    out: dict[int, bytes] = {}
    if not want:
        return out
    top = max(want)
    i, rest = 0, b""
    with open(path, "rb") as f:
        while i <= top:
            data = f.read(chunk)
            if not data:
                if rest and i in want:
                    out[i] = rest
                break
            parts = (rest + data).split(b"\0")
            rest = parts.pop()
            for name in parts:
                if i in want:
                    out[i] = name
                i += 1
    return out


def ended_state(task: TaskState | None) -> str:
    """A task that is not done or failed while no job of its run is left (None: no state)."""
    if task is None:
        return NOT_STARTED
    if task.stopped_by == "SIGTERM" or (task.error or "").startswith("stopped by SIGTERM"):
        return CANCELLED  # cancelled (or the time limit without a requeue): it resumes on retry
    return STOPPED  # the job ended without a word: killed, node lost, requeue refused


def _run_state(st: RunStatus, has_jobs: bool) -> str:
    sub = st.submission.get("state")
    if sub == "dry-run":
        return "dry-run"
    if sub == "failed":
        return "submit-failed"
    if not st.slurm_queried:
        return "finished" if st.totals.get("finalized") else "unknown"
    if st.totals.get("jobs_active"):
        return "active"
    if not has_jobs:
        return "finished" if st.totals.get("finalized") else "not-submitted"
    if st.totals.get("cancelled") or st.detail.get("cancelled"):
        return "cancelled"
    if st.totals.get("finalized"):
        return "finished"
    return "stopped"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _kind_detail(run: Run, kind: str, n_folders: int) -> dict[str, Any]:
    """What each kind of run counts in its own words; ``complete`` when its last step wrote
    its result."""
    if kind in ("archive", "pipeline"):
        d: dict[str, Any] = {"complete": run.summary_path.exists()}
        if kind == "pipeline":
            d.update(_crawl_detail(crawl_dir(run)))
            d["ranked"] = run.hotspots_path.exists()
            d["selected"] = n_folders if run.folders_path.exists() else None
            d["complete"] = d["complete"] or (d["selected"] == 0 and d["ranked"])
        return d
    if kind == "crawl":
        out = crawl_dir(run)
        d = _crawl_detail(out)
        d["complete"] = bool(d["shards"]) and d["shards_done"] == d["shards"]
        return d
    if kind == "restore":
        r = _read_json(run.restore_state_path) or {}
        return {"complete": r.get("phase") in ("done", "failed"), "phase": r.get("phase"),
                "target": r.get("target"), "folder": r.get("folder"), "error": r.get("error"),
                "thaw": r.get("thaw")}
    if kind == "purge":
        res = _read_json(run.purge_results_path)
        rows = res if isinstance(res, list) else []
        return {"complete": res is not None, "purged": len(rows),
                "refused": sum(1 for r in rows if r.get("blockers") or r.get("error")),
                "bytes_freed": sum(int(r.get("bytes_freed") or 0) for r in rows)}
    return {"complete": run.summary_path.exists()}


def _crawl_detail(out: Path) -> dict[str, Any]:
    plan = _read_json(out / "plan.json") or {}
    shards = int(plan.get("shards") or len(plan.get("assignments") or []) or 0)
    entries = errors = done = 0
    for p in sorted(out.glob("shard-*.json")):
        s = _read_json(p)
        if isinstance(s, dict):
            done += 1
            entries += int(s.get("entries") or 0)
            errors += int(s.get("errors") or 0)
    return {"shards": shards, "shards_done": done, "entries": entries, "errors": errors}


def headline(st: RunStatus) -> str:
    """The run's first line, in the words of its kind (crawl: entries; restore: phases)."""
    t, d = st.totals, st.detail
    head = f"run {st.run_id} ({st.kind}, {st.state})"
    if st.kind == "crawl":
        return (f"{head}: {d.get('shards_done', 0)}/{d.get('shards', 0)} shards crawled, "
                f"{d.get('entries', 0):,} entries, {d.get('errors', 0):,} problems")
    if st.kind == "restore":
        where = ""
        if d.get("folder"):
            where = f" of {display(os.fsencode(d['folder']))}"
            if d.get("target") and d["target"] != d["folder"]:
                where += f" into {display(os.fsencode(d['target']))}"
        err = f" ({d['error']})" if d.get("error") else ""
        return f"{head}: restore{where}: phase {d.get('phase') or 'not started'}{err}"
    if st.kind == "purge":
        if not d.get("complete"):
            return f"{head}: purge of {t.get('folders', 0)} folder(s), results not written yet"
        return (f"{head}: purge of {d.get('purged', 0)} folder(s), {d.get('refused', 0)} "
                f"refused; {format_size(d.get('bytes_freed', 0))} freed")
    text = (f"{head}: {t.get('done', 0)}/{t.get('folders', 0)} folders archived, "
            f"{t.get('failed', 0)} failed, {t.get('running', 0)} running, "
            f"{t.get('pending', 0)} pending")
    if t.get("cancelled") or t.get("stopped"):
        text += f", {t.get('cancelled', 0)} cancelled, {t.get('stopped', 0)} stopped"
    text += f"; {format_size(t.get('bytes_done', 0))} of {format_size(t.get('bytes_total', 0))}"
    if st.kind == "pipeline":
        crawl = (f"crawl {d.get('shards_done', 0)}/{d.get('shards', 0)} shards, "
                 f"{d.get('entries', 0):,} entries")
        if d.get("selected") is None:
            rank = "rank done" if d.get("ranked") else "rank not done"
            return f"{head}: {crawl}; {rank}; no folders selected yet"
        if d.get("selected") == 0:
            return f"{head}: {crawl}; rank selected 0 folders, nothing to archive"
        text = f"{text} ({crawl})"
    return text


def advice(st: RunStatus) -> list[str]:
    """What a person should know beyond the numbers: how the run ended, what to do next."""
    out: list[str] = []
    sub = st.submission
    if st.state == "dry-run":
        out.append("dry run: the scripts were rendered into scripts/, nothing was submitted")
    elif st.state == "submit-failed":
        out.append(f"submission failed ({sub.get('error') or 'no reason recorded'}); "
                   "nothing more will run for this run: fix the cause and submit again")
    elif st.state == "not-submitted":
        out.append("no job was ever submitted for this run")
    if not st.slurm_queried:
        out.append(f"Slurm was not queried ({st.not_queried_reason}): job states unknown, "
                   "figures from the run's state files only")
    resumable = st.totals.get("cancelled", 0) + st.totals.get("stopped", 0)
    if resumable and st.kind in ("archive", "pipeline"):
        out.append(f"{resumable} folder(s) cancelled or stopped before they were done; "
                   f"resume them (each from its last finished step) with: "
                   f"froster-slurm retry {st.run_id}")
    elif st.state == "finished" and st.totals.get("failed"):
        out.append(retry_line(st))
    if st.never_runs:
        out.append(f"job(s) {' '.join(st.never_runs)} can never start (a job they depend on "
                   f"failed; see logs/): scancel {' '.join(st.never_runs)}")
    if st.kind == "restore" and st.state in ("cancelled", "stopped"):
        out.append("the restore job ended before the restore did; run the same restore "
                   "command again to resume it")
    return out


def format_status(st: RunStatus) -> str:
    """The table a person reads in a terminal."""
    lines = [headline(st)]
    lines.extend(f"  {note}" for note in st.notes)
    for stage, jobs in st.jobs.items():
        for j in jobs:
            lines.append(f"  job {j['job_id']:<12} {stage:<9} {','.join(j['states'])}")
            for task, comment in sorted(j["comments"].items()):
                lines.append(f"      {task}: {comment}")
    if st.folders and st.kind in ("archive", "pipeline"):
        if st.partial:
            lines.append("  folders that need a look (failing, running, stopped):")
        lines.append(f"  {'#':>4}  {'state':<11} {'step':<9} {'progress':>21}  folder")
    for f in st.folders if st.kind in ("archive", "pipeline") else []:
        prog = f"{format_size(f['bytes_done'])}/{format_size(f['bytes_total'])}"
        lines.append(f"  {f['index']:>4}  {f['state']:<11} {str(f['step'] or '-'):<9} "
                     f"{prog:>21}  {display(os.fsencode(f['folder']))}")
        if f["state"] in (CANCELLED, STOPPED):
            done = ", ".join(f.get("steps_done") or []) or "none"
            lines.append(f"        {f['state']} during {f['step'] or 'its first step'}; "
                         f"steps done: {done}")
        elif f["error"]:
            lines.append(f"        error: {f['error']} (failures {f['failures']}/"
                         f"{f['max_attempts'] or '?'})")
        if f.get("warning"):
            lines.append(f"        note: {f['warning']}")
    if st.partial:
        lines.append(f"  {not_shown(st)} (every folder: froster-slurm status {st.run_id} "
                     "--all)")
    lines.extend(f"  {n}" for n in advice(st))
    return "\n".join(lines)


def not_shown(st: RunStatus) -> str:
    """'... 199,500 folders not listed: 190,000 done, 9,500 pending' (a partial status)."""
    listed = {}
    for f in st.folders:
        listed[f["state"]] = listed.get(f["state"], 0) + 1
    t = st.totals
    rest = []
    for key, state in (("done", "done"), ("pending", "pending"), ("failed", "failed"),
                       ("running", "running"), ("cancelled", CANCELLED),
                       ("stopped", STOPPED)):
        n = t.get(key, 0) - listed.get(state, 0) - (listed.get("retrying", 0)
                                                    if key == "running" else 0)
        if n > 0:
            rest.append(f"{n:,} {key}")
    return (f"... {t.get('folders', 0) - len(st.folders):,} folders not listed"
            + (f": {', '.join(rest)}" if rest else ""))


def retry_line(st: RunStatus) -> str:
    """Advise ``retry`` where it can help: a folder that failed for good (permanent error)
    fails again with the same settings, so say what to change."""
    failed = [f for f in st.folders if f["state"] == "failed"]
    if failed and all(f.get("error_kind") == "permanent" for f in failed) and \
            st.totals.get("permanent", len(failed)) >= st.totals.get("failed", 0):
        return (f"these failed for good (see each error): fix the cause, then "
                f"froster-slurm retry {st.run_id} [--to REMOTE] [--storage-class CLASS]")
    return f"retry the failed folders with: froster-slurm retry {st.run_id}"
