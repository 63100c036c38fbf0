"""The Slurm boundary: every call to sbatch, squeue, sacct, scontrol and scancel.

Argument lists only, never a shell.  Each failure raises ``SlurmError`` with the command, exit
code and stderr.  ``runner`` is injectable so unit tests can drive the parsing and error paths
without a cluster; the integration tests use the real local cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SlurmError
from ..util.identity import whoami

Runner = Callable[..., subprocess.CompletedProcess]

_JOB_ID = re.compile(r"^(\d+(?:_\d+)?)(?:;\S+)?$")
# Inherited by a job; a job that submits jobs must drop them so its children do not take its
# array index, output file or dependencies.  SLURM_CONF is kept: it says which cluster.
SCRUB_PREFIXES = ("SLURM_", "SBATCH_", "SRUN_", "SALLOC_")
KEEP = ("SLURM_CONF",)
# sacctmgr asks slurmdbd, which may be down or far away: a submission does not wait long for it.
SACCTMGR_TIMEOUT = 20.0


def scrubbed_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus inherited Slurm job variables (SLURM_CONF kept)."""
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in env.items() if k in KEEP or not k.startswith(SCRUB_PREFIXES)}


def parse_job_id(stdout: str) -> str:
    """Job id from ``sbatch --parsable`` output: ``123``, ``123;cluster``, site-wrapper noise.

    Site wrappers sometimes print banners before or after; the id is the last line that is
    only an id (optionally ``;cluster``).
    """
    for line in reversed(stdout.strip().splitlines()):
        m = _JOB_ID.match(line.strip())
        if m:
            return m.group(1)
    raise SlurmError(["sbatch"], 0, stdout, f"sbatch printed no job id: {stdout.strip()!r}")


def dependency(*, afterok: Iterable[str] = (), afterany: Iterable[str] = (),
               afternotok: Iterable[str] = (), singleton: bool = False) -> str:
    """Build a ``--dependency`` value; several kinds are ANDed with commas."""
    parts = []
    for kind, ids in (("afterok", afterok), ("afterany", afterany), ("afternotok", afternotok)):
        ids = [str(i) for i in ids]
        if ids:
            parts.append(kind + ":" + ":".join(ids))
    if singleton:
        parts.append("singleton")
    return ",".join(parts)


COMMENT_MAX = 1000  # Slurm's limit is 1024 bytes; keep a margin for multi-byte characters


def clip_comment(text: str) -> str:
    """The one rule for a Comment: one printable line, at most COMMENT_MAX bytes of UTF-8
    (Slurm rejects longer ones).  Bytes that are not UTF-8 (surrogateescape in paths) are
    shown as ``\\xNN``; a clipped line ends in ``...``."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = " ".join(text.split())
    data = text.encode("utf-8", "replace")
    if len(data) <= COMMENT_MAX:
        return text
    return data[:COMMENT_MAX - 3].decode("utf-8", "ignore") + "..."


# Job states in which a job is still queued or alive (it may yet run, or is running): every
# place that asks "is it still there?" -- status, the restore guard, the tests -- uses this.
ACTIVE_STATES = frozenset({
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
    "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"})


@dataclass(frozen=True)
class JobInfo:
    """One row of squeue/sacct: enough for status to join with the per-task state files."""

    job_id: str
    name: str
    state: str
    elapsed: str = ""
    comment: str = ""
    reason: str = ""
    exit_code: str = ""

    @property
    def active(self) -> bool:
        """Still queued or alive (``ACTIVE_STATES``)."""
        return self.state in ACTIVE_STATES

    @property
    def never_runs(self) -> bool:
        """Pending on a dependency that failed: Slurm keeps it queued for ever, but it will
        never run (status names it to cancel)."""
        return self.state == "PENDING" and self.reason == "DependencyNeverSatisfied"

    @property
    def live(self) -> bool:
        """Active and able to run: what keeps a run going (status' ``jobs_active``, the
        guard that refuses a second submission into a running run)."""
        return self.active and not self.never_runs


def rows_of(job: str, queue: dict[str, JobInfo]) -> list[JobInfo]:
    """The rows of one submitted job: the queue lists array tasks as ``ID_TASK``."""
    return [info for jid, info in queue.items() if jid == job or jid.startswith(job + "_")]


class SlurmClient:
    """Thin wrapper over the Slurm commands; one instance per process is plenty."""

    def __init__(self, runner: Runner = subprocess.run, env: dict[str, str] | None = None):
        self._run_fn = runner
        self.env = env
        self._accounting = True  # until sacct says accounting is disabled

    @staticmethod
    def available() -> bool:
        return shutil.which("sbatch") is not None

    def _run(self, cmd: Sequence[str], check: bool = True, timeout: float | None = None
             ) -> subprocess.CompletedProcess:
        extra = {"timeout": timeout} if timeout is not None else {}
        try:
            proc = self._run_fn(list(cmd), capture_output=True, text=True, env=self.env,
                                stdin=subprocess.DEVNULL, **extra)
        except FileNotFoundError as e:
            raise SlurmError(list(cmd), 127, str(e), f"{cmd[0]}: not found on PATH") from e
        except subprocess.TimeoutExpired as e:
            raise SlurmError(list(cmd), 124, "", f"{cmd[0]} did not answer within "
                             f"{timeout:.0f}s") from e
        if check and proc.returncode != 0:
            raise SlurmError(list(cmd), proc.returncode, proc.stderr or proc.stdout or "")
        return proc

    def submit(self, script: str | Path, *, dependency: str = "", begin: int = 0,
               args: Sequence[str] = (), env: dict[str, str] | None = None) -> str:
        """``sbatch --parsable [--dependency=...] [--begin=now+BEGIN] ARGS SCRIPT``; returns
        the job id.  ``begin``: seconds from now before the job may start (0: at once)."""
        cmd = ["sbatch", "--parsable"]
        if dependency:
            cmd.append(f"--dependency={dependency}")
        if begin > 0:
            cmd.append(f"--begin=now+{int(begin)}")
        cmd += list(args) + [os.fspath(script)]
        saved = self.env
        if env is not None:
            self.env = env
        try:
            return parse_job_id(self._run(cmd).stdout)
        finally:
            self.env = saved

    def cancel(self, job_ids: Iterable[str]) -> None:
        ids = [str(i) for i in job_ids]
        if ids:
            self._run(["scancel", *ids])

    def requeue(self, job_id: str) -> None:
        self._run(["scontrol", "requeue", str(job_id)])

    def set_comment(self, job_id: str, text: str) -> None:
        """The job's Comment is its live status line in ``squeue -o %k`` (``clip_comment``)."""
        self._run(["scontrol", "update", f"job={job_id}", f"Comment={clip_comment(text)}"])

    def queue(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        """One squeue call for many jobs (array tasks expanded), keyed by job id."""
        ids = sorted({str(i).split("_")[0] for i in job_ids})
        if not ids:
            return {}
        fmt = "%i\x1f%j\x1f%T\x1f%M\x1f%k\x1f%r"
        proc = self._run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o", fmt],
                         check=False)
        if proc.returncode != 0:
            # squeue fails when every listed job has left its memory: that is "none queued".
            if "Invalid job id" in proc.stderr:
                return {}
            raise SlurmError(["squeue"], proc.returncode, proc.stderr)
        out = {}
        for line in proc.stdout.splitlines():
            f = line.split("\x1f")
            if len(f) == 6:
                comment = "" if f[4] == "(null)" else f[4]
                out[f[0]] = JobInfo(f[0], f[1], f[2], f[3], comment, f[5])
        return out

    def jobs_named(self, name: str, user: str | None = None) -> list[JobInfo]:
        """This user's live jobs called ``name`` (one squeue call; the reason shows the start
        time Slurm expects, e.g. for a job held by ``--begin``)."""
        proc = self._run(["squeue", "-h", "-u", user or whoami(), "--name", name,
                          "-o", "%i\x1f%j\x1f%T\x1f%r\x1f%S"])
        out = []
        for line in proc.stdout.splitlines():
            f = line.split("\x1f")
            if len(f) == 5 and f[1] == name and f[2] in ACTIVE_STATES:
                out.append(JobInfo(f[0], f[1], f[2], reason=f[3], comment=f"start {f[4]}"))
        return out

    def accounting(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        """sacct rows for jobs that left squeue; empty when accounting is not configured."""
        ids = sorted({str(i).split("_")[0] for i in job_ids})
        if not ids or not self._accounting:
            return {}
        if shutil.which("sacct") is None:
            self._accounting = False
            return {}
        proc = self._run(["sacct", "-n", "-X", "-P", "-j", ",".join(ids),
                          "-o", "JobID,JobName,State,Elapsed,Comment,Reason,ExitCode"],
                         check=False)
        if proc.returncode != 0:
            # "Slurm accounting storage is disabled" will not change while we poll: stop asking.
            if "disabled" in proc.stderr:
                self._accounting = False
            return {}
        out = {}
        for line in proc.stdout.splitlines():
            f = line.split("|")
            if len(f) >= 7:
                out[f[0]] = JobInfo(f[0], f[1], f[2].split()[0], f[3], f[4], f[5], f[6])
        return out

    def show_job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o``: Key=Value pairs (Comment is the rest of its line)."""
        proc = self._run(["scontrol", "show", "job", "-o", str(job_id)])
        return _parse_kv(proc.stdout.splitlines()[0] if proc.stdout else "")

    def show_config(self) -> dict[str, str]:
        proc = self._run(["scontrol", "show", "config"])
        out = {}
        for line in proc.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def ping(self) -> str:
        """``scontrol ping``'s answer (raises SlurmError when the controller is down)."""
        return self._run(["scontrol", "ping"]).stdout.strip()

    def partition_time_limit(self, partition: str = "") -> str:
        """The time limit a job in ``partition`` (empty: the default one) gets when it asks
        for none: the partition's DefaultTime, else its MaxTime ('' when unknown)."""
        proc = self._run(["scontrol", "show", "partition", "-o", *([partition] if partition
                                                                  else [])], check=False)
        if proc.returncode != 0:
            return ""
        rows = [_parse_kv(line) for line in proc.stdout.splitlines() if line.strip()]
        if not partition:
            rows = [r for r in rows if r.get("Default") == "YES"] or rows[:1]
        for r in rows:
            default = r.get("DefaultTime", "NONE")
            return default if default not in ("NONE", "") else r.get("MaxTime", "")
        return ""

    def max_array_size(self) -> int:
        """Largest array index + 1 the cluster accepts (MaxArraySize, default 1001)."""
        return _int_or(self.show_config().get("MaxArraySize"), 1001) or 1001

    def queue_limits(self, user: str = "", qos: str = "") -> QueueLimits:
        """The site's limits on how much one submitter may queue.

        ``scontrol show config`` gives MaxArraySize and MaxJobCount (every array task counts
        against MaxJobCount; when it is full sbatch does not fail, it sleeps and retries).
        ``sacctmgr`` gives the per-user MaxSubmitJobs/MaxJobs of the user's associations and
        of their QOS (the smallest one set applies) where accounting answers; without
        slurmdbd it does not, and those stay None (the config's cap decides).
        """
        conf = self.show_config()
        limits = QueueLimits(max_array_size=_int_or(conf.get("MaxArraySize"), 1001) or 1001,
                             max_job_count=_int_or(conf.get("MaxJobCount"), 10000) or 10000)
        user = user or os.environ.get("USER", "")
        try:
            assoc = self._run(["sacctmgr", "-nP", "show", "assoc", f"where user={user}",
                               "format=MaxSubmitJobs,MaxJobs,QOS"], check=False,
                              timeout=SACCTMGR_TIMEOUT)
        except SlurmError as e:  # not installed, or slurmdbd does not answer: config decides
            limits.notes.append(f"sacctmgr gave no association limits ({e})")
            return limits
        if assoc.returncode != 0 or not user:
            limits.notes.append("sacctmgr gave no association limits "
                                f"({(assoc.stderr or assoc.stdout).strip()[:120] or 'no user'})")
            return limits
        qos_names = {qos} if qos else set()
        for line in assoc.stdout.splitlines():
            cols = line.split("|")
            if len(cols) >= 3:
                limits.tighten(_int_or(cols[0], None), _int_or(cols[1], None))
                qos_names.update(q for q in cols[2].split(",") if q)
        try:
            rows = self._run(["sacctmgr", "-nP", "show", "qos",
                              "format=Name,MaxSubmitJobsPerUser,MaxJobsPerUser"], check=False,
                             timeout=SACCTMGR_TIMEOUT)
        except SlurmError:
            return limits
        if rows.returncode == 0:
            for line in rows.stdout.splitlines():
                cols = line.split("|")
                if len(cols) >= 3 and cols[0] in qos_names:
                    limits.tighten(_int_or(cols[1], None), _int_or(cols[2], None))
        return limits


@dataclass
class QueueLimits:
    """What the site lets one submitter hold (None: not set, or not known here)."""

    max_array_size: int
    max_job_count: int
    max_submit_jobs: int | None = None  # per user, queued + running (association or QOS)
    max_jobs: int | None = None  # per user, running at once
    notes: list[str] = field(default_factory=list)

    def tighten(self, submit: int | None, running: int | None) -> None:
        """Keep the smallest limit seen (an association and its QOS both apply)."""
        if submit is not None:
            self.max_submit_jobs = min(submit, self.max_submit_jobs or submit)
        if running is not None:
            self.max_jobs = min(running, self.max_jobs or running)


def _int_or(text: str | None, default: int | None) -> int | None:
    """``text`` as a whole number; ``default`` when empty or not a number (sacctmgr prints ''
    for "no limit")."""
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return default


_KV = re.compile(r"(\w[\w:/]*)=")


def _parse_kv(line: str) -> dict[str, str]:
    """Parse one ``scontrol -o`` line; values may contain spaces (Comment, Command paths)."""
    keys = list(_KV.finditer(line))
    out = {}
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(line)
        out[m.group(1)] = line[m.end():end].strip()
    return out
