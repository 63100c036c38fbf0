"""``status --watch``: the live view of a run.

On a terminal the view is redrawn in place (like ``rclone --progress``): the run's bytes done,
rate and ETA, each job's Slurm state and pending reason, and one line per active folder with
its step, bytes, rate and ETA, or the last error of a task that is waiting to retry
("connection refused, retry 2/5 in 120 s").  Piped, it prints plain records instead: one line
per poll for the run and one per folder whose state or step changed; ``--json`` prints one
JSON object per poll.  ``status.collect`` gathers the facts; this module only measures rates
between polls and draws.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..util.paths import display
from ..util.units import format_size
from .collect import RunStatus, retry_line
from .progress import RateMeter, format_eta, format_rate, interactive

ACTIVE = ("running", "retrying")


class Tracker:
    """Rates for the run and each folder, from the bytes done of successive polls."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = 60.0):
        self.clock = clock
        self.window = window
        self.run = RateMeter(window, clock)
        self.folders: dict[int, RateMeter] = {}

    def feed(self, st: RunStatus) -> None:
        now = self.clock()
        self.run.add(st.totals.get("bytes_done", 0), now)
        for f in st.folders:
            if f["state"] in ACTIVE or f["index"] in self.folders:
                meter = self.folders.setdefault(f["index"], RateMeter(self.window, self.clock))
                meter.add(f["bytes_done"] or 0, now)

    def folder(self, f: dict[str, Any]) -> tuple[float | None, float | None]:
        meter = self.folders.get(f["index"])
        if meter is None or f["state"] != "running":
            return None, None
        return meter.rate(), meter.eta(f["bytes_total"] or 0)


def retry_text(f: dict[str, Any], now: float) -> str:
    """'connection refused, retry 2/5 in 120 s' for a task waiting to retry."""
    text = f.get("error") or "failed"
    attempt = int(f.get("failures") or 0) + 1
    text += f", retry {attempt}/{f.get('max_attempts') or '?'}"
    after = f.get("retry_after")
    if after:
        wait = int(float(after) - now)
        text += f" in {wait} s" if wait > 0 else " due now"
    return text


def _pct(done: int, total: int) -> str:
    return f"{min(100, int(100 * done / total)):3d}%" if total else "   -"


def _bar(done: int, total: int, width: int = 12) -> str:
    fill = round(width * min(1.0, done / total)) if total else 0
    return "[" + "#" * fill + "." * (width - fill) + "]"


def run_line(st: RunStatus, tracker: Tracker) -> str:
    if st.kind not in ("archive", "pipeline") or not st.folders:
        from .collect import headline

        return headline(st)  # crawl entries, restore phases, purge results: their own words
    t = st.totals
    n = {k: 0 for k in ("done", "running", "retrying", "failed", "pending", "cancelled",
                        "stopped")}
    if st.partial:  # only some folders are listed: the totals count them all
        n.update({k: t.get(k, 0) for k in n})
        n["running"] -= n["retrying"]
    for f in [] if st.partial else st.folders:
        state = "pending" if f["state"] == "not started" else f["state"]
        n[state if state in n else "running"] += 1
    ended = (f", {n['cancelled']} cancelled, {n['stopped']} stopped"
             if n["cancelled"] or n["stopped"] else "")
    done, total = t.get("bytes_done", 0), t.get("bytes_total", 0)
    rate = tracker.run.rate()
    eta = tracker.run.eta(total) if total and n["running"] else None
    return (f"run {st.run_id} ({st.kind}): {n['done']}/{t.get('folders', len(st.folders))} "
            "folders done, "
            f"{n['running']} running, {n['retrying']} retrying, {n['failed']} failed, "
            f"{n['pending']} pending{ended}; {format_size(done)} of {format_size(total)} "
            f"{_pct(done, total).strip()}, {format_rate(rate)}, ETA {format_eta(eta)}")


def job_lines(st: RunStatus) -> list[str]:
    """One line per job: its states and, while it waits, Slurm's reason."""
    lines = []
    for stage, jobs in st.jobs.items():
        for j in jobs:
            text = f"  job {j['job_id']:<10} {stage:<9} {','.join(j['states'])}"
            reasons = sorted({r for r in (j.get("reasons") or {}).values() if r})
            if reasons:
                text += f"  waiting: {', '.join(reasons)}"
            lines.append(text)
    return lines


def folder_line(f: dict[str, Any], tracker: Tracker, now: float, comment: str = "") -> str:
    done, total = f["bytes_done"] or 0, f["bytes_total"] or 0
    name = display(os.fsencode(f["folder"])) if f.get("folder") is not None else "?"
    head = f"  {f['index']:>4} {f['state']:<8} {str(f.get('step') or '-'):<9}"
    if f["state"] == "retrying":
        return f"{head} {retry_text(f, now)}  {name}"
    if f["state"] == "failed":
        return f"{head} {f.get('error') or 'failed'}  {name}"
    if f["state"] == "pending" and not total:
        return f"{head} waiting to start  {name}"
    rate, eta = tracker.folder(f)
    text = (f"{head} {_bar(done, total)} {_pct(done, total)} "
            f"{format_size(done):>10}/{format_size(total):<10} {format_rate(rate):>12} "
            f"ETA {format_eta(eta):>6}  {name}")
    if comment:
        text += f"  ({comment})"
    return text


def _comment_of(st: RunStatus, f: dict[str, Any]) -> str:
    job = f.get("slurm_job")
    if not job:
        return ""
    for jobs in st.jobs.values():
        for j in jobs:
            if job in j["comments"]:
                return j["comments"][job]
    return ""


def frame(st: RunStatus, tracker: Tracker, width: int = 120, height: int = 40,
          now: float | None = None) -> list[str]:
    """The whole view, each line clipped to ``width`` so nothing wraps; active and failed
    folders first, the rest counted when the screen is too short for them."""
    now = time.time() if now is None else now
    lines = [run_line(st, tracker), *job_lines(st)]
    order = {"running": 0, "retrying": 1, "failed": 2, "pending": 3, "done": 4}
    folders = sorted(st.folders, key=lambda f: (order.get(f["state"], 5), f["index"]))
    room = max(1, height - len(lines) - 2)
    if len(folders) <= room:
        shown = folders
    else:
        shown = [f for f in folders if f["state"] in (*ACTIVE, "failed")][: room - 1]
    lines.extend(folder_line(f, tracker, now, _comment_of(st, f)) for f in shown)
    if len(shown) < len(folders) or st.partial:
        total = st.totals.get("folders", len(folders)) if st.partial else len(folders)
        lines.append(f"  ... {total - len(shown):,} more folders (pending or done) "
                     "not shown")
    if st.finished and st.totals.get("failed"):
        lines.append("  " + retry_line(st))
    return [line if len(line) < width else line[: max(1, width - 2)] + "…" for line in lines]


class Screen:
    """Redraws a block of lines in place: back to its first line, every line cleared, and
    whatever the previous, longer frame left below is erased."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.height = 0

    def draw(self, lines: list[str]) -> None:
        out = []
        if self.height:
            out.append(f"\x1b[{self.height}F")
        out.extend(f"\x1b[2K{line}\n" for line in lines)
        out.append("\x1b[J")
        self.stream.write("".join(out))
        self.stream.flush()
        self.height = len(lines)


def changed_records(st: RunStatus, tracker: Tracker, seen: dict[int, tuple], now: float
                    ) -> list[str]:
    """Plain records for a pipe: the run's line, then folders whose state or step moved."""
    lines = [time.strftime("%Y-%m-%dT%H:%M:%S ", time.localtime(now)) + run_line(st, tracker)]
    for f in st.folders:
        key = (f["state"], f.get("step"), f.get("error"))
        if seen.get(f["index"]) != key:
            seen[f["index"]] = key
            lines.append(folder_line(f, tracker, now).rstrip())
    return lines


def watch(poll: Callable[[], RunStatus], stream: TextIO, *, interval: float = 5.0,
          as_json: bool = False, once: bool = False, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic, tty: bool | None = None) -> RunStatus:
    """Poll until the run is over (or once), drawing each poll for a terminal or a pipe.

    Over means finished, or idle twice in a row (a job that submits the next stage is still
    listed while it does, so one idle poll can be a race).
    """
    live = (interactive(stream) if tty is None else tty) and not as_json and not once
    tracker = Tracker(clock)
    screen = Screen(stream) if live else None
    seen: dict[int, tuple] = {}
    idle = 0
    from .collect import format_status

    while True:
        st = poll()
        tracker.feed(st)
        now = time.time()
        if as_json:
            obj = st.to_json_obj()
            obj["rate"] = tracker.run.rate()
            stream.write(json.dumps(obj, ensure_ascii=True) + "\n")
        elif screen is not None:
            size = shutil.get_terminal_size((120, 40))
            screen.draw(frame(st, tracker, size.columns, size.lines, now))
        elif once:
            stream.write(format_status(st) + "\n")
        else:
            stream.write("\n".join(changed_records(st, tracker, seen, now)) + "\n")
        stream.flush()
        idle = idle + 1 if st.idle else 0
        if once or st.finished or idle >= 2:
            return st
        sleep(interval)
