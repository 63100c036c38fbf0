"""A run: one directory in the state dir that holds everything about one submission.

Layout (the contract between the manager and the job scripts)::

    <state_dir>/runs/<run_id>/
        run.toml          settings the jobs read (written once, before anything is submitted)
        jobs.toml         job ids, added as the stages are submitted
        folders.nul       the folder list: entry i is archived by array task i
        scripts/          rendered sbatch scripts, exactly as submitted
        logs/             Slurm/local output (%A_%a.out)
        tasks/<i>/        per-task state (state.json, step markers, staging)
        crawl/ hotspots.csv selection.nul   (pipeline runs)
        summary.json summary.html          (written by finalize)

Everything a job needs is in the run directory, so a job never depends on the submitting
shell's environment or on the folder names being in a script's text.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from .. import __version__
from ..config import Config, load_snapshot
from ..errors import NotFoundError
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
                "requeue_grace", "max_idle_slots", "rclone", "rclone_config", "rclone_flags",
                "transfers")


@dataclass
class Run:
    """Handle on a run directory."""

    run_dir: Path

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        """run.toml, read once: it is written before anything is submitted, never after."""
        with open(self.run_dir / "run.toml", "rb") as f:
            return tomllib.load(f)

    @property
    def folders_path(self) -> Path:
        return self.run_dir / "folders.nul"

    def folders(self) -> list[bytes]:
        return read_folder_list(self.folders_path) if self.folders_path.exists() else []

    def jobs(self) -> dict[str, Any]:
        p = self.run_dir / "jobs.toml"
        if not p.exists():
            return {}
        with open(p, "rb") as f:
            return tomllib.load(f)

    def record_jobs(self, stage: str, job_ids: list[str], **extra: Any) -> None:
        """Append a stage's job ids to jobs.toml (atomic rewrite; written by one process)."""
        data = self.jobs()
        entry = {"job_ids": list(job_ids), "submitted": now_iso(), **extra}
        data.setdefault(stage, []).append(entry)
        write_private(self.run_dir / "jobs.toml", tomli_w.dumps(data))

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
        return self.run_dir / "scripts" / name

    @property
    def submission_path(self) -> Path:
        """How the submission went: submitted, dry-run or failed (with the error)."""
        return self.run_dir / "submission.json"

    def mark_submission(self, state: str, error: str | None = None) -> None:
        """Record the outcome of submitting this run, so status never takes a run whose
        sbatch or render failed, or a dry run, for one that is still going."""
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
    return load_snapshot(run.run_dir / "config.toml")


def crawl_dir(run: Run) -> Path:
    """Where a run's crawl shards go: <run>/crawl, or the -o of `crawl --submit`."""
    return Path(run.settings.get("crawl", {}).get("out_dir") or run.run_dir / "crawl")


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
    for sub in ("scripts", "logs", "tasks"):
        (run_dir / sub).mkdir(exist_ok=True)
    settings: dict[str, Any] = {
        "run_id": run_dir.name, "kind": kind, "created": now_iso(),
        "user": whoami(), "host": hostname(), "version": __version__,
        "python": python_for_jobs(config), "backend": backend,
        "catalog": str(catalog_path(config)),
    }
    if extra:
        settings.update(extra)
    secret_env: dict[str, str] = {}
    if archive is not None:
        archive = dict(archive)
        secret_env = archive.pop(SECRET_ENV, None) or {}
        settings["archive"] = archive
    run = Run(run_dir)
    remote_secrets.save(run.secrets_path, secret_env)
    write_private(run_dir / "run.toml", tomli_w.dumps(settings))
    if kind in ("archive", "pipeline"):
        from .taskslots import create as create_slots

        create_slots(run_dir)  # before any task can write its state
    if folders is not None:
        write_folder_list(run_dir / "folders.nul", folders)
    return run


def catalog_path(config: Config) -> Path:
    explicit = config.get("catalog")
    if explicit:
        return Path(os.path.expanduser(explicit))
    return config.path("state_dir") / "catalog.duckdb"


def open_run(config: Config, run: str) -> Run:
    """A run by id, unique id prefix, 'last', or a path to its directory."""
    p = Path(run)
    if (p / "run.toml").is_file():
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
        return (d / "run.toml").is_file() and os.access(d, os.R_OK | os.X_OK)
    except PermissionError:
        return False
