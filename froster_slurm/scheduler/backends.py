"""Where rendered job scripts run: the Slurm cluster, or this machine (the local backend).

Both take the SAME rendered script.  The local backend reads the script's own ``#SBATCH``
lines (``--array``, ``--output``, ``--open-mode``, ``--job-name``), runs it with bash under the
environment Slurm would give it (``SLURM_ARRAY_JOB_ID``, ``SLURM_ARRAY_TASK_ID``, ...) plus
``FROSTER_BACKEND=local``, array tasks in a bounded pool, and keeps each job's state in a small
JSON file so ``status`` works the same way.  A task that exits ``EXIT_TEMPFAIL`` asks to be
requeued: the local backend runs it again once the task's ``requeue-after`` file is due
(``injob.requeue_delay``; the job runtime writes it).  Where that file is for array task t is
part of the submission (``requeue_file``): the submitter knows the run directory and the
array's offset; nothing is parsed out of the script's text for it.

Local jobs run synchronously: ``submit`` returns when the job is over, which makes dependency
order the order of submission.  ``afterok`` on a failed job means the dependent job never runs
(it is recorded as ``CANCELLED``, as Slurm would leave it ``DependencyNeverSatisfied``).
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import EXIT_TEMPFAIL, UserError
from ..util.atomic import write_atomic
from . import injob
from .slurm import JobInfo, QueueLimits, SlurmClient, scrubbed_env

# Array task id (0 outside an array) -> the requeue-after file of the run task it works for.
RequeueFile = Callable[[int], Path]

LOCAL_MAX_REQUEUES = 50


class Backend(Protocol):
    """What the login node asks of a scheduler: submit a rendered script (after dependencies,
    no sooner than ``begin`` seconds from now), and query jobs by id or by name.

    ``requeue_file`` says where a requeueable job's tasks leave their requeue time: Slurm
    needs it not (the job script's requeue tail reads the file), the local backend does.
    """

    name: str

    def submit(self, script: Path, *, dependency: str = "", begin: int = 0,
               requeue_file: RequeueFile | None = None) -> str: ...

    def queue(self, job_ids: Iterable[str]) -> dict[str, JobInfo]: ...

    def named(self, name: str) -> list[JobInfo]: ...

    def max_array_size(self) -> int: ...

    def queue_limits(self, qos: str = "") -> QueueLimits: ...


class SlurmBackend:
    """Submits with sbatch; the environment is scrubbed of inherited job variables."""

    name = "slurm"

    def __init__(self, client: SlurmClient | None = None):
        self.client = client or SlurmClient(env=scrubbed_env())

    def submit(self, script: Path, *, dependency: str = "", begin: int = 0,
               requeue_file: RequeueFile | None = None) -> str:
        return self.client.submit(script, dependency=dependency, begin=begin)

    def named(self, name: str) -> list[JobInfo]:
        """This user's live jobs called ``name`` (queued, held by ``--begin``, or running)."""
        return self.client.jobs_named(name)

    def queue(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        ids = list(job_ids)
        info = self.client.accounting(ids)
        info.update(self.client.queue(ids))
        return info

    def max_array_size(self) -> int:
        return self.client.max_array_size()

    def queue_limits(self, qos: str = "") -> QueueLimits:
        return self.client.queue_limits(qos=qos)

    def default_time_limit(self, partition: str = "") -> str:
        """The time limit a job without ``--time`` gets in ``partition`` ('' if unknown)."""
        return self.client.partition_time_limit(partition)


@dataclass
class ScriptOptions:
    """The #SBATCH options the local backend honours."""

    array: list[int]
    throttle: int
    output: str
    job_name: str
    append: bool


_DIRECTIVE = re.compile(r"^#SBATCH\s+--?([\w-]+)(?:[=\s]\s*(.*))?$")


def parse_array(spec: str) -> tuple[list[int], int]:
    """'0-9%3' / '1,3,5-7' -> (indices, throttle); throttle 0 means no limit."""
    throttle = 0
    if "%" in spec:
        spec, t = spec.split("%", 1)
        throttle = int(t)
    out: list[int] = []
    for part in spec.split(","):
        step = 1
        if ":" in part:
            part, s = part.split(":", 1)
            step = int(s)
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1, step))
        else:
            out.append(int(part))
    return out, throttle


def read_script_options(script: Path) -> ScriptOptions:
    opts: dict[str, str] = {}
    for line in script.read_text().splitlines():
        m = _DIRECTIVE.match(line.strip())
        if m:
            opts[m.group(1).replace("_", "-")] = (m.group(2) or "").strip()
    array, throttle = parse_array(opts["array"]) if opts.get("array") else ([], 0)
    return ScriptOptions(array=array, throttle=throttle,
                         output=opts.get("output", "slurm-%j.out"),
                         job_name=opts.get("job-name", script.name),
                         append=opts.get("open-mode", "") == "append")


def _expand_output(pattern: str, job_id: str, task: int | None) -> str:
    out = pattern.replace("%A", job_id).replace("%j", job_id if task is None
                                                else f"{job_id}_{task}")
    return out.replace("%a", str(task) if task is not None else "0").replace("%%", "%")


class LocalBackend:
    """Runs rendered scripts on this machine (no Slurm needed)."""

    name = "local"

    def __init__(self, state_dir: Path, parallel: int = 2):
        self.jobs_dir = Path(state_dir) / "local-jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.parallel = max(1, parallel)

    def max_array_size(self) -> int:
        return 1001

    def queue_limits(self, qos: str = "") -> QueueLimits:
        """Slurm's defaults: jobs here run one after another anyway (submit is synchronous)."""
        return QueueLimits(max_array_size=1001, max_job_count=10000)

    def _new_id(self) -> str:
        with open(self.jobs_dir / ".counter.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            counter = self.jobs_dir / ".counter"
            n = int(counter.read_text() or 0) + 1 if counter.exists() else 1
            counter.write_text(str(n))
        return f"local{n}"

    def _write(self, job_id: str, data: dict) -> None:
        write_atomic(self.jobs_dir / f"{job_id}.json", json.dumps(data))

    def _read(self, job_id: str) -> dict | None:
        try:
            return json.loads((self.jobs_dir / f"{job_id}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _dependency_ok(self, dependency: str) -> bool:
        for part in filter(None, dependency.split(",")):
            kind, _, ids = part.partition(":")
            if kind == "singleton":
                continue  # synchronous runs never overlap within one submitter
            for job in filter(None, ids.split(":")):
                state = (self._read(job) or {}).get("state", "COMPLETED")
                if kind == "afterok" and state != "COMPLETED":
                    return False
                if kind == "afternotok" and state == "COMPLETED":
                    return False
        return True

    def submit(self, script: Path, *, dependency: str = "", begin: int = 0,
               requeue_file: RequeueFile | None = None) -> str:
        """Run ``script`` now and return when it is over (see the module docstring).

        A task that exits ``EXIT_TEMPFAIL`` runs again when ``requeue_file(task id)`` is due
        (at once without ``requeue_file``), up to ``LOCAL_MAX_REQUEUES`` times.

        ``begin`` > 0 holds the job that many seconds first (PENDING, reason ``BeginTime``,
        as ``squeue`` would show it): the submitting command waits, since nothing else would
        start the job later.
        """
        job_id = self._new_id()
        opts = read_script_options(script)
        record = {"job_id": job_id, "name": opts.job_name, "script": str(script),
                  "state": "PENDING", "submitted": time.time(), "tasks": {}}
        self._write(job_id, record)
        if not self._dependency_ok(dependency):
            record.update(state="CANCELLED", reason="DependencyNeverSatisfied")
            self._write(job_id, record)
            return job_id
        if begin > 0:
            record.update(reason="BeginTime", begin=time.time() + begin)
            self._write(job_id, record)
            time.sleep(begin)
            record.pop("reason")
        record["state"] = "RUNNING"
        self._write(job_id, record)
        tasks: list[int | None] = list(opts.array) if opts.array else [None]
        width = min(self.parallel, opts.throttle or self.parallel, len(tasks))
        with ThreadPoolExecutor(max_workers=max(1, width)) as pool:
            codes = list(pool.map(lambda t: self._run_task(script, job_id, t, opts,
                                                           requeue_file), tasks))
        for t, rc in zip(tasks, codes, strict=True):
            record["tasks"][str(t)] = rc
        record["state"] = "COMPLETED" if all(rc == 0 for rc in codes) else "FAILED"
        record["ended"] = time.time()
        self._write(job_id, record)
        return job_id

    def _run_task(self, script: Path, job_id: str, task: int | None,
                  opts: ScriptOptions, requeue_file: RequeueFile | None) -> int:
        env = scrubbed_env()
        env.update(FROSTER_BACKEND="local", SLURM_JOB_ID=job_id, SLURM_JOB_NAME=opts.job_name)
        if task is not None:
            env.update(SLURM_ARRAY_JOB_ID=job_id, SLURM_ARRAY_TASK_ID=str(task))
        out = Path(_expand_output(opts.output, job_id, task))
        out.parent.mkdir(parents=True, exist_ok=True)
        bash = shutil.which("bash") or "/bin/bash"
        rc = EXIT_TEMPFAIL
        for attempt in range(LOCAL_MAX_REQUEUES):
            env["SLURM_RESTART_COUNT"] = str(attempt)
            with open(out, "ab" if (opts.append or attempt) else "wb") as log:
                rc = subprocess.run([bash, str(script)], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env).returncode
            if rc != EXIT_TEMPFAIL:
                return rc
            if requeue_file is not None:
                time.sleep(injob.requeue_delay(requeue_file(task or 0)))
        return rc

    def named(self, name: str) -> list[JobInfo]:
        """Always empty: a local job runs inside the command that submitted it, so none is
        ever left queued for a later command to find."""
        return []

    def queue(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        out = {}
        for job in job_ids:
            rec = self._read(str(job))
            if rec:
                out[rec["job_id"]] = JobInfo(rec["job_id"], rec["name"], rec["state"],
                                             reason=rec.get("reason", ""))
        return out


def choose_backend(requested: str, state_dir: Path, parallel: int = 2) -> Backend:
    """'auto' is Slurm when sbatch is on PATH, else local."""
    if requested not in ("auto", "slurm", "local"):
        raise UserError(f"unknown backend {requested!r}: use auto, slurm or local")
    if requested == "slurm" or (requested == "auto" and SlurmClient.available()):
        if not SlurmClient.available():
            raise UserError("backend slurm asked for, but sbatch is not on PATH")
        return SlurmBackend()
    return LocalBackend(state_dir, parallel)
