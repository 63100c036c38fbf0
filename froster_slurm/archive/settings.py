"""The archive settings of one run, read from ``RUN_DIR/run.toml`` (written by the manager).

A task never reads the live config files or the submitter's environment: what was decided at
submit time is what runs, even if a requeued task starts days later.  Keys missing from the
``[archive]`` table fall back to the built-in defaults; flags that would weaken the checksum
guarantees are refused here, before anything moves.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULTS
from ..errors import ConfigError, NotFoundError
from ..remotes.rclone import Rclone
from ..run.rundir import Run
from ..scheduler import injob
from ..util.units import parse_size

# rclone flags that would let a copy or a check pass without comparing content.
FORBIDDEN_FLAGS = ("--s3-disable-checksum", "--ignore-checksum", "--size-only",
                   "--ignore-size", "--checksum=false", "--download", "--no-check-dest")


@dataclass(frozen=True)
class ArchiveSettings:
    """Everything one archive task needs to know besides its folder."""

    run_id: str
    run_dir: Path
    remote: str
    prefix: str = "froster"
    storage_class: str = "DEEP_ARCHIVE"
    recursive: bool = True
    bundle_threshold: int = 1024 * 1024
    bundle_size: int = 4 * 1024**3
    hash_workers: int = 0
    max_attempts: int = 5
    retry_delay: int = 60
    max_retry_delay: int = 3600
    requeue_grace: int = 300
    max_idle_slots: int = 3
    rclone: str = "rclone"
    rclone_config: str = ""
    rclone_flags: tuple[str, ...] = ()
    transfers: int = 4
    rclone_logs: str = "failed"  # "all": keep a done folder's rclone logs too
    share_rclone: bool = True  # a batch's folders pool their rclone calls (archive.shared)
    user: str = ""
    host: str = ""
    version: str = ""
    backend: str = "slurm"
    templates_dir: str = ""
    no_thaw: tuple[str, ...] = ()  # remotes.no_thaw: remotes whose cold classes read at once
    upload_memory: int = 0  # bytes for rclone's part buffers (0: from the job, chunks.py)
    extra: dict[str, Any] = field(default_factory=dict)

    def workers(self) -> int:
        """Hash/bundle threads: the setting, else the CPUs this task may use."""
        if self.hash_workers > 0:
            return self.hash_workers
        granted = injob.cpus()
        if granted:
            return granted
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)


def rclone_of(s: ArchiveSettings, log_dir: Path | None,
              factory: Callable[..., Rclone] | None = None) -> Rclone:
    """The rclone frozen into a run's run.toml, as a job runs it (``factory``: a subclass,
    e.g. a batch's ``shared.SharedRclone`` with its leading arguments bound)."""
    return (factory or Rclone)(s.rclone, s.rclone_config, s.rclone_flags, s.transfers,
                               log_dir, env=Run(s.run_dir).secret_env())


def _default(key: str) -> Any:
    return DEFAULTS[key][0]


def _snapshot_templates_dir(run_dir: Path) -> str:
    """The site templates_dir frozen into the run's config snapshot, if there is one."""
    snap = Run(run_dir).config_path
    if not snap.is_file():
        return ""
    try:
        with open(snap, "rb") as f:
            return str(tomllib.load(f).get("settings", {}).get("templates_dir") or "")
    except (OSError, tomllib.TOMLDecodeError):
        return ""


def check_flags(flags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Refuse rclone flags that would make a copy or check skip content comparison."""
    out = []
    for flag in flags:
        if not isinstance(flag, str):
            raise ConfigError(f"archive.rclone_flags must be strings, got {flag!r}")
        name = flag.split("=", 1)[0]
        if flag in FORBIDDEN_FLAGS or name in FORBIDDEN_FLAGS:
            raise ConfigError(f"archive.rclone_flags: {flag} is not allowed: froster-slurm "
                              "verifies every byte by checksum")
        out.append(flag)
    return tuple(out)


def load_settings(run_dir: str | os.PathLike) -> ArchiveSettings:
    """Read run.toml's top-level keys and its ``[archive]`` table."""
    run_dir = Path(run_dir)
    path = Run(run_dir).settings_path
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as e:
        raise NotFoundError(f"{path}: no such run file") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    a = data.get("archive")
    if not isinstance(a, dict):
        raise ConfigError(f"{path}: no [archive] table")
    remote = str(a.get("remote") or "")
    if not remote:
        raise ConfigError(f"{path}: [archive] has no remote")
    if remote.startswith("~"):
        remote = os.path.expanduser(remote)
    if not remote.startswith("/") and ":" not in remote.split("/", 1)[0]:
        raise ConfigError(f"{path}: remote {remote!r} is neither an rclone remote (name:path) "
                          "nor an absolute path")

    def get(key: str, cfg_key: str | None = None) -> Any:
        return a.get(key, _default(cfg_key or f"archive.{key}"))

    try:
        settings = ArchiveSettings(
            run_id=str(data.get("run_id") or run_dir.name),
            run_dir=run_dir,
            remote=remote,
            prefix=str(a.get("prefix", _default("remote_prefix"))).strip("/"),
            storage_class=str(get("storage_class")),
            recursive=bool(get("recursive")),
            bundle_threshold=parse_size(get("bundle_threshold")),
            bundle_size=parse_size(get("bundle_size")),
            hash_workers=int(get("hash_workers")),
            max_attempts=max(1, int(get("max_attempts"))),
            retry_delay=max(0, int(get("retry_delay"))),
            max_retry_delay=max(0, int(get("max_retry_delay"))),
            requeue_grace=int(get("requeue_grace")),
            max_idle_slots=max(1, int(get("max_idle_slots"))),
            rclone=str(get("rclone")),
            rclone_config=os.path.expanduser(str(get("rclone_config"))) if get("rclone_config")
            else "",
            rclone_flags=check_flags(list(get("rclone_flags"))),
            transfers=max(1, int(get("transfers"))),
            rclone_logs=str(get("rclone_logs")),
            share_rclone=bool(get("share_rclone")),
            user=str(data.get("user", "")),
            host=str(data.get("host", "")),
            version=str(data.get("version", "")),
            backend=str(data.get("backend", "slurm")),
            templates_dir=str(a.get("templates_dir") or data.get("templates_dir")
                              or _snapshot_templates_dir(run_dir)),
            no_thaw=tuple(str(n) for n in a.get("no_thaw") or ()),
            upload_memory=int(a.get("upload_memory") or 0),
            extra={k: v for k, v in data.items() if k != "archive"},
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: bad [archive] value: {e}") from e
    if settings.bundle_threshold < 0 or settings.bundle_size <= 0:
        raise ConfigError(f"{path}: bundle_threshold must be >= 0 and bundle_size > 0")
    return settings
