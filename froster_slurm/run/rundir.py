"""A run: one directory in the state dir that holds everything about one submission.

Layout (the contract between the manager and the job scripts)::

    <state_dir>/runs/<run_id>/
        run.toml          settings the jobs read (written once, before anything is submitted)
        config.toml       the config frozen at submission (what jobs use, not the live files)
        jobs.toml         job ids, added as the stages are submitted
        submission.json   how submitting went (submitted, dry-run, failed)
        secrets.json      0600: the remote's credentials for rclone's environment, if any
        folders.nul       the folder list: entry i is archived by array task i
        roots.nul         the roots a crawl or pipeline run crawls
        scripts/          rendered job scripts, exactly as submitted
        logs/             Slurm/local output (<stage>-%A_%a.out), rclone/ for run-level rclone
        tasks/<i>/        per-task files (``TaskPaths``: state.json, steps/, requeue-after, ...)
        work/             run-level staging of a restore or purge run
        crawl/ hotspots.csv selection.json  (pipeline runs)
        summary.json summary.html          (written by finalize)
        status.slots                       (archive, pipeline: the status index)
        restore.json trace/                (restore runs)   purge.json (purge runs)

Every one of these names is spelled here once, as a property of ``Run`` (or of
``TaskPaths`` for a task): other modules ask the run for a path, and the job scripts get the
paths their bash needs rendered into variables (``submit/stages.py``).  Everything a job needs
is in the run directory, so a job never depends on the submitting shell's environment or on
the folder names being in a script's text.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import json
import os
import secrets
import stat
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import tomli_w

from .. import __version__
from ..config import Config, load_snapshot
from ..errors import DataError, NotFoundError
from ..remotes import secrets as remote_secrets
from ..util.clock import now_iso
from ..util.identity import hostname, whoami
from ..util.paths import read_folder_list, write_folder_list
from ..util.private import private_dir, write_private
from ..util.units import parse_size

SUBMISSION_STATES = ("submitted", "dry-run", "failed")

# Key of archive_settings()'s dict under which a remote's secret options travel to
# create_run, which keeps them out of run.toml (see remotes/secrets.py).
SECRET_ENV = "secret_env"

ARCHIVE_KEYS = ("storage_class", "recursive", "hash_workers", "max_attempts", "retry_delay",
                "max_retry_delay", "requeue_grace", "max_idle_slots", "rclone", "rclone_config",
                "rclone_flags", "transfers", "rclone_logs", "share_rclone")


# The layout version of run.toml, written as ``schema`` by ``create_run``.  A run written before
# it was recorded reads as schema 0; every field added since has a default, so such a run
# still opens, shows in status and finalizes.
RUN_SCHEMA = 1


class RunKind(StrEnum):
    """What a run does (``kind`` in run.toml)."""

    ARCHIVE = "archive"    # an archive array + finalize over a given folder list
    CRAWL = "crawl"        # crawl shards only (``crawl --submit``)
    PIPELINE = "pipeline"  # crawl -> rank/select -> archive -> finalize
    RESTORE = "restore"    # one guarded restore job (restore.json)
    PURGE = "purge"        # purge of archived folders (purge.json)


@dataclass(frozen=True)
class RunSettings:
    """``run.toml``: what was decided at submission, written once before any job exists.

    The ``[archive]`` table is kept as its dict here (``archive.settings.ArchiveSettings`` is
    its typed, checked form on the job side); ``[crawl]``, ``[select]`` and ``[purge]`` are
    the small tables of their run kinds.  Keys this version does not know are kept in
    ``extra`` and written back unchanged.
    """

    run_id: str
    kind: RunKind | None = None
    created: str | None = None  # util.clock stamp
    user: str = ""
    host: str = ""
    version: str = ""  # froster-slurm's version at submission
    python: str = "python3"  # the interpreter the job scripts run
    backend: str = ""  # slurm | local ("" in a run from before it was recorded)
    catalog: str = ""  # the catalog file finalize adds the run's records to
    schema: int = 0
    archive: dict[str, Any] | None = None
    crawl: dict[str, Any] = field(default_factory=dict)  # shards, out_dir
    select: dict[str, Any] = field(default_factory=dict)  # the pipeline's selection rules
    purge: dict[str, Any] = field(default_factory=dict)  # dry_run
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, data: dict[str, Any], where: str = "run.toml",
                  run_id: str = "") -> RunSettings:
        """The record of a parsed run.toml; ``DataError`` naming ``where`` for a kind or a
        table this version cannot read."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("run_id", run_id)
        try:
            if values.get("kind") is not None:
                values["kind"] = RunKind(values["kind"])
            values["schema"] = int(values.get("schema", 0))
        except ValueError as e:
            raise DataError(f"{where}: {e} (kinds: {', '.join(RunKind)})") from e
        for table in ("archive", "crawl", "select", "purge"):
            if table in values and not isinstance(values[table], dict):
                raise DataError(f"{where}: [{table}] is not a table")
        for name in ("run_id", "created", "user", "host", "version", "python", "backend",
                     "catalog"):
            if name in values and not isinstance(values[name], str):
                raise DataError(f"{where}: {name} is not a string")
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def to_toml(self) -> dict[str, Any]:
        """The dict written as run.toml (no null values: TOML has none)."""
        out: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "extra" or v is None or (isinstance(v, dict) and not v
                                                   and f.name != "archive"):
                continue
            out[f.name] = str(v) if isinstance(v, RunKind) else v
        return out


@dataclass(frozen=True)
class TaskPaths:
    """Every file of one task's directory ``tasks/<index>/`` (archive array tasks; a restore
    or purge run's single job uses task 0 for its status line)."""

    dir: Path

    @property
    def state_path(self) -> Path:
        """What the task is doing (``taskstate``), replaced whole on every change."""
        return self.dir / "state.json"

    @property
    def steps_dir(self) -> Path:
        return self.dir / "steps"

    @property
    def markers_path(self) -> Path:
        """Every finished step's marker in one file (``taskstate``: step -> its summary)."""
        return self.dir / "steps.json"

    def marker_path(self, step: str) -> Path:
        """Where a run made before steps.json kept a step's marker (still read)."""
        return self.steps_dir / step

    @property
    def work(self) -> Path:
        """Staging: inventory, bundles, hash results, lists for rclone."""
        return self.dir / "work"

    @property
    def logs(self) -> Path:
        """rclone's own logs, one file per step."""
        return self.dir / "logs"

    @property
    def record_path(self) -> Path:
        """A copy of the archive record left in the folder (finalize reads it)."""
        return self.dir / "record.json"

    @property
    def status_path(self) -> Path:
        """The live status line (under Slurm also the job's Comment)."""
        return self.dir / "comment"

    @property
    def lock_path(self) -> Path:
        """flock'ed while a run of the task is active."""
        return self.dir / "lock"

    @property
    def requeue_after(self) -> Path:
        """When the task may run again (the epoch second): written by the job runtime when it
        exits EXIT_TEMPFAIL (``scheduler.injob.ask_requeue``); read by the job script's
        requeue tail (``retry-delay``) and by the local backend."""
        return self.dir / "requeue-after"


# Stands for the task index in a path pattern rendered into bash (``Run.task_pattern``).
INDEX_TOKEN = "@INDEX@"


@dataclass
class Run:
    """Handle on a run directory: every path in it is a property here."""

    run_dir: Path

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def settings_path(self) -> Path:
        return self.run_dir / "run.toml"

    @functools.cached_property
    def settings(self) -> RunSettings:
        """run.toml, read once: it is written before anything is submitted, never after."""
        path = self.settings_path
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise DataError(f"{path}: not valid TOML ({e})") from e
        return RunSettings.from_toml(data, str(path), run_id=self.run_id)

    @property
    def archive_table(self) -> dict[str, Any]:
        """run.toml's ``[archive]`` table; a run without one (a crawl run) cannot archive."""
        if self.settings.archive is None:
            raise DataError(f"{self.settings_path}: no [archive] table (a {self.settings.kind} "
                            "run)")
        return self.settings.archive

    @property
    def config_path(self) -> Path:
        """The config snapshot frozen at submission (``config.save_snapshot``)."""
        return self.run_dir / "config.toml"

    @property
    def jobs_path(self) -> Path:
        return self.run_dir / "jobs.toml"

    @property
    def jobs_lock_path(self) -> Path:
        """flock'ed while jobs.toml is rewritten (several processes add jobs)."""
        return self.run_dir / "jobs.lock"

    @property
    def batches_path(self) -> Path:
        """Which folders each archive array task archives (``run.batches``)."""
        return self.run_dir / "batches.txt"

    def batch_requeue_after(self, number: int) -> Path:
        """When batch ``number`` (an archive array task) may run again: the soonest among its
        unfinished folders' ``requeue-after``, written by the batch when it exits
        EXIT_TEMPFAIL (``jobs.archive_stage``); the local backend waits for it."""
        return self.run_dir / "batches" / f"{int(number)}.requeue-after"

    @property
    def submit_lock_path(self) -> Path:
        """flock'ed (never waited for) by the command that submits into the run: its first
        submission and each ``retry``, so two of them never queue the same folders."""
        return self.run_dir / "submit.lock"

    def batch_work(self, number: int) -> Path:
        """Batch ``number``'s scratch while it runs: the pooled rclone calls' lists, staging
        tree and logs (``archive.shared``); removed when the batch ends well."""
        return self.run_dir / "batches" / f"{int(number)}.work"

    def chain_path(self, number: int) -> Path:
        """The plan of submission ``number``'s archive arrays (``submit.chain``)."""
        return self.scripts_dir / f"chain-{int(number):03d}.json"

    @property
    def folders_path(self) -> Path:
        return self.run_dir / "folders.nul"

    @property
    def roots_path(self) -> Path:
        """The roots a crawl or pipeline run crawls (NUL-separated, like folders.nul)."""
        return self.run_dir / "roots.nul"

    @property
    def scripts_dir(self) -> Path:
        return self.run_dir / "scripts"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def rclone_logs_dir(self) -> Path:
        """rclone's logs of a run-level job (restore, purge)."""
        return self.logs_dir / "rclone"

    def job_log_pattern(self, stage: str, *, array: bool) -> Path:
        """The ``--output`` of a stage's jobs (sbatch fills in %A_%a or %j)."""
        return self.logs_dir / (f"{stage}-%A_%a.out" if array else f"{stage}-%j.out")

    def job_log(self, stage: str, job: str) -> Path:
        """The log of one job (``ARRAYID_TASKID`` for an array task) of ``stage``."""
        return self.logs_dir / f"{stage}-{job}.out"

    @property
    def tasks_dir(self) -> Path:
        return self.run_dir / "tasks"

    def task(self, index: int) -> TaskPaths:
        return TaskPaths(self.tasks_dir / str(int(index)))

    def task_indices(self) -> list[int]:
        """The indices that have a task directory (unstarted tasks may have none)."""
        try:
            return sorted(int(p.name) for p in self.tasks_dir.iterdir() if p.name.isdigit())
        except FileNotFoundError:
            return []

    def task_pattern(self, name: str) -> str:
        """The path of ``TaskPaths.<name>`` with ``INDEX_TOKEN`` for the index: what a job
        script substitutes (``${pattern//@INDEX@/$i}``) instead of retyping the layout."""
        return str(getattr(TaskPaths(self.tasks_dir / INDEX_TOKEN), name))

    @property
    def work_dir(self) -> Path:
        """Run-level staging of a restore or purge run."""
        return self.run_dir / "work"

    @property
    def crawl_out(self) -> Path:
        """The default crawl output of a crawl or pipeline run (``crawl_dir`` says where)."""
        return self.run_dir / "crawl"

    @property
    def hotspots_path(self) -> Path:
        """The rank stage's output of a pipeline run."""
        return self.run_dir / "hotspots.csv"

    @property
    def summary_path(self) -> Path:
        """Written last by finalize: its presence means the run is finalized."""
        return self.run_dir / "summary.json"

    @property
    def summary_html_path(self) -> Path:
        return self.run_dir / "summary.html"

    @property
    def restore_state_path(self) -> Path:
        """A restore run's state (``restore/restorestate.py``)."""
        return self.run_dir / "restore.json"

    @property
    def trace_dir(self) -> Path:
        """A restore run's copy of the archive record and manifest it restores from."""
        return self.run_dir / "trace"

    @property
    def status_slots_path(self) -> Path:
        """The status index of an archive or pipeline run: one fixed-size slot per task
        (``taskslots``)."""
        return self.run_dir / "status.slots"

    @property
    def purge_results_path(self) -> Path:
        """A purge run's results, one per folder (status reads them too)."""
        return self.run_dir / "purge.json"

    def folders(self) -> list[bytes]:
        return read_folder_list(self.folders_path) if self.folders_path.exists() else []

    def jobs(self) -> dict[str, Any]:
        p = self.jobs_path
        if not p.exists():
            return {}
        with open(p, "rb") as f:
            return tomllib.load(f)

    def record_jobs(self, stage: str, job_ids: list[str], **extra: Any) -> None:
        """Append a stage's job ids to jobs.toml (atomic rewrite under ``jobs.lock``: the
        submitter, the chain job that queues the next archive array and a person's retry may
        each add jobs)."""
        with open(self.jobs_lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.jobs()
            entry = {"job_ids": list(job_ids), "submitted": now_iso(), **extra}
            data.setdefault(stage, []).append(entry)
            write_private(self.jobs_path, tomli_w.dumps(data))

    def all_job_ids(self) -> list[str]:
        return [j for entries in self.jobs().values() for e in entries for j in e["job_ids"]]

    @property
    def selection_report_path(self) -> Path:
        """Written by the rank stage of a pipeline run: how many folders its rules selected
        and, when none, which rule removed how many (status and the summary show it)."""
        return self.run_dir / "selection.json"

    def write_selection_report(self, report: dict[str, Any]) -> None:
        write_private(self.selection_report_path, json.dumps(report, ensure_ascii=True))

    def selection_report(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.selection_report_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def script_path(self, name: str) -> Path:
        return self.scripts_dir / name

    @property
    def submission_path(self) -> Path:
        """How the submission went: submitted, dry-run or failed (with the error)."""
        return self.run_dir / "submission.json"

    def mark_submission(self, state: str, error: str | None = None) -> None:
        """Record the outcome of submitting this run, so status never takes a run whose
        submission or render failed, or a dry run, for one that is still going."""
        assert state in SUBMISSION_STATES, state
        data = {"state": state, "at": now_iso(), "error": error}
        write_private(self.submission_path, json.dumps(data))

    def submission(self) -> dict[str, Any]:
        """The recorded outcome ({} for a run from before it was recorded)."""
        try:
            return json.loads(self.submission_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @property
    def secrets_path(self) -> Path:
        """0600 file of rclone environment variables holding the remote's credentials."""
        return self.run_dir / "secrets.json"

    def secret_env(self) -> dict[str, str]:
        """What rclone needs in its environment for this run's remote ({} for most remotes)."""
        return remote_secrets.load(self.secrets_path)


def run_config(run: Run) -> Config:
    """The config frozen into a run at submission (jobs use it, not the live files)."""
    return load_snapshot(run.config_path)


def crawl_dir(run: Run) -> Path:
    """Where a run's crawl shards go: <run>/crawl, or the -o of `crawl --submit`."""
    return Path(run.settings.crawl.get("out_dir") or run.crawl_out)


def runs_dir(config: Config) -> Path:
    return config.path("state_dir") / "runs"


def ensure_runs_dir(config: Config) -> Path:
    """``<state_dir>/runs``, made if missing: private to the submitting user when the state
    dir is ours (settings, logs and remote credentials are in there; see private.py); in a
    state dir an admin shares (sticky and writable by all), ``runs/`` is shared the same way
    so every account can add its own 0700 run directories."""
    state = private_dir(config.path("state_dir"), tighten=True)
    base = runs_dir(config)
    if not base.is_dir():
        mode = stat.S_IMODE(state.stat().st_mode)
        shared = bool(mode & stat.S_ISVTX and mode & 0o002)
        try:
            os.mkdir(base, 0o700)
            if shared:
                os.chmod(base, mode)
        except FileExistsError:
            pass
    return base


def new_run_id() -> str:
    """Sortable by time, unique across concurrent submitters."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def archive_settings(config: Config, remote: str, *, recursive: bool | None = None,
                     storage_class: str | None = None) -> dict[str, Any]:
    """The [archive] table of run.toml, from config with per-submission overrides."""
    s: dict[str, Any] = {k: config.get(f"archive.{k}") for k in ARCHIVE_KEYS}
    if recursive is not None:
        s["recursive"] = recursive
    if storage_class:
        s["storage_class"] = storage_class
    s["bundle_threshold"] = parse_size(config.get("archive.bundle_threshold"))
    s["bundle_size"] = parse_size(config.get("archive.bundle_size"))
    spec = remote_secrets.split(normalize_remote(remote))
    s["remote"] = spec.remote  # never a credential: those go to the run's private secrets file
    if spec.env:
        s[SECRET_ENV] = spec.env  # popped by create_run before run.toml is written
    s["prefix"] = config.get("remote_prefix").strip("/")
    s["no_thaw"] = list(config.get("remotes.no_thaw"))
    memory = config.get("archive.upload_memory")
    s["upload_memory"] = parse_size(memory) if memory else 0
    return s


def normalize_remote(remote: str) -> str:
    """'name:path' stays; a local path becomes absolute (jobs run from another cwd)."""
    head = remote.split("/", 1)[0]
    if ":" in head and not remote.startswith(("/", ".", "~")):
        return remote
    return os.path.abspath(os.path.expanduser(remote))


def python_for_jobs(config: Config) -> str:
    return config.get("python") or sys.executable


def create_run(config: Config, kind: str, *, folders: Iterable[bytes] | None = None,
               archive: dict[str, Any] | None = None, backend: str = "slurm",
               extra: dict[str, Any] | None = None) -> Run:
    """Make the run directory and write run.toml (+ folders.nul when folders are known)."""
    base = ensure_runs_dir(config)
    run_dir = base / new_run_id()
    os.mkdir(run_dir, 0o700)
    os.chmod(run_dir, 0o700)
    run = Run(run_dir)
    for sub in (run.scripts_dir, run.logs_dir, run.tasks_dir):
        sub.mkdir(exist_ok=True)
    secret_env: dict[str, str] = {}
    if archive is not None:
        archive = dict(archive)
        secret_env = archive.pop(SECRET_ENV, None) or {}
    settings = RunSettings.from_toml({
        "run_id": run_dir.name, "kind": kind, "created": now_iso(),
        "user": whoami(), "host": hostname(), "version": __version__,
        "python": python_for_jobs(config), "backend": backend,
        "catalog": str(catalog_path(config)), "schema": RUN_SCHEMA,
        **(extra or {}), **({"archive": archive} if archive is not None else {}),
    })
    remote_secrets.save(run.secrets_path, secret_env)
    write_private(run.settings_path, tomli_w.dumps(settings.to_toml()))
    if kind in ("archive", "pipeline"):
        from .taskslots import create as create_slots

        create_slots(run_dir)  # before any task can write its state
    if folders is not None:
        write_folder_list(run.folders_path, folders)
    return run


def catalog_path(config: Config) -> Path:
    explicit = config.get("catalog")
    if explicit:
        return Path(os.path.expanduser(explicit))
    return config.path("state_dir") / "catalog.duckdb"


def open_run(config: Config, run: str) -> Run:
    """A run by id, unique id prefix, 'last', or a path to its directory."""
    p = Path(run)
    if Run(p).settings_path.is_file():
        return Run(p.resolve())
    base = runs_dir(config)
    ids = sorted(d.name for d in base.iterdir() if _is_run(d)) \
        if base.is_dir() else []
    if run in ("last", "latest", ""):
        if not ids:
            raise NotFoundError(f"no runs yet in {base}")
        return Run(base / ids[-1])
    matches = [i for i in ids if i.startswith(run)]
    if len(matches) != 1:
        what = "no run" if not matches else f"{len(matches)} runs"
        raise NotFoundError(f"{what} matching {run!r} in {base}")
    return Run(base / matches[0])


@contextmanager
def submitting(run: Run, *, dry_run: bool) -> Iterator[None]:
    """Around rendering and submitting a new run: mark it submitted, a dry run, or failed
    (with the one-line error) so it is never left looking active."""
    try:
        yield
    except BaseException as e:
        run.mark_submission("failed", str(e).splitlines()[0][:500] if str(e) else
                            type(e).__name__)
        raise
    run.mark_submission("dry-run" if dry_run else "submitted")


def list_runs(config: Config) -> list[Run]:
    base = runs_dir(config)
    if not base.is_dir():
        return []
    return [Run(d) for d in sorted(base.iterdir()) if _is_run(d)]


def _is_run(d: Path) -> bool:
    """A run directory we can read.  In a shared state_dir other accounts' runs are 0700:
    they are not ours to list, open or take as 'last'."""
    try:
        return Run(d).settings_path.is_file() and os.access(d, os.R_OK | os.X_OK)
    except PermissionError:
        return False
