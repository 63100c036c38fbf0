"""Layered TOML configuration.

Layers, lowest first: built-in defaults < site file (``/etc/froster-slurm/config.toml`` or
``$FROSTER_SLURM_SITE_CONFIG``) < user file (``$XDG_CONFIG_HOME/froster-slurm/config.toml``) <
``FROSTER_SLURM_*`` environment (``FROSTER_SLURM_ARCHIVE__STORAGE_CLASS``: ``__`` is the dot) <
command-line flags.  Every key is declared in ``DEFAULTS`` with its type, so an unknown key or a
value of the wrong type is an error that names the valid choices, at load time, not mid-run.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from .errors import ConfigError

STAGES = ("crawl", "rank", "archive", "finalize", "restore", "purge")
SLURM_KEYS: dict[str, tuple[Any, str]] = {
    "partition": ("", "partition to submit to (empty: the cluster default)"),
    "account": ("", "account to charge (empty: your default account)"),
    "qos": ("", "quality of service (empty: default)"),
    "time": ("", "time limit, e.g. '2-00:00:00' (empty: partition default)"),
    "cpus": (0, "CPUs per task (0: stage default)"),
    "mem": ("", "memory per node, e.g. '4G' (empty: cluster default)"),
    "extra": ([], "extra sbatch options, e.g. ['--constraint=nfs', '--mail-type=FAIL']"),
}

# key -> (default, help).  The type of the default is the type a value must have.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "state_dir": ("~/.local/state/froster-slurm", "runs, logs and the catalog live here"),
    "catalog": ("", "catalog database path (empty: <state_dir>/catalog.duckdb); admins may "
                    "point every user at one shared file"),
    "templates_dir": ("", "site directory whose templates override the built-in ones by name"),
    "default_remote": ("~/froster-archive",
                       "rclone remote (name:path) or local path to archive to"),
    "remote_prefix": ("froster", "data lands at REMOTE/<remote_prefix>/<absolute source path>"),
    "backend": ("auto", "auto (slurm when sbatch is on PATH), slurm, or local"),
    "local_parallel": (2, "array tasks run at once by the local backend"),
    "python": ("", "Python interpreter jobs run (empty: the one running froster-slurm)"),
    "crawl.engine": ("auto", "auto (pwalk when on PATH), builtin, or pwalk"),
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
    "archive.storage_class": ("DEEP_ARCHIVE", "S3 storage class for the data"),
    "archive.bundle_threshold": ("1MiB", "files smaller than this go into tar bundles"),
    "archive.bundle_size": ("4GiB", "target size of one tar bundle"),
    "archive.hash_workers": (0, "md5 threads (0: one per CPU of the task)"),
    "archive.throttle": (8, "archive array tasks running at once (%N)"),
    "archive.max_attempts": (5, "attempts before a transient failure becomes final"),
    "archive.retry_delay": (60, "seconds before the first retry; doubles each attempt"),
    "archive.requeue_grace": (300, "seconds before the time limit at which a task requeues"),
    "archive.recursive": (False, "archive each picked folder's whole subtree (default: only the "
                                 "files directly inside; subfolders are ranked on their own)"),
    "archive.rclone": ("rclone", "rclone executable"),
    "archive.rclone_config": ("", "rclone config file (empty: rclone's default)"),
    "archive.rclone_flags": ([], "extra rclone flags, e.g. ['--s3-upload-concurrency=8']"),
    "archive.transfers": (4, "rclone --transfers"),
    "cost.per_tb_month": ({"DEEP_ARCHIVE": 0.99, "GLACIER": 3.6, "GLACIER_IR": 4.0,
                           "STANDARD_IA": 12.5, "STANDARD": 23.0},
                          "USD per TB-month by storage class, for the picker's estimate"),
    "restore.tier": ("Bulk", "Bulk or Standard"),
    "restore.days": (7, "days a restored copy stays readable"),
    "restore.check_interval": (1800, "seconds between checks while a restore is pending"),
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

SITE_FILE = Path("/etc/froster-slurm/config.toml")
ENV_PREFIX = "FROSTER_SLURM_"


def site_config_path(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("FROSTER_SLURM_SITE_CONFIG") or SITE_FILE)


def user_config_path(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "froster-slurm" / "config.toml"


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in DEFAULTS:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _unknown(key: str, where: str) -> ConfigError:
    section = key.rsplit(".", 1)[0] + "." if "." in key else ""
    near = sorted(k for k in DEFAULTS if k.startswith(section) and k.count(".") == key.count("."))
    listing = ", ".join(near or sorted(k for k in DEFAULTS if "." not in k))
    return ConfigError(f"unknown config key {key!r} in {where}; valid keys here: {listing}")


def check_value(key: str, value: Any, where: str) -> Any:
    """Validate one value against its declared type; returns it (ints widened to float)."""
    if key not in DEFAULTS:
        raise _unknown(key, where)
    default = DEFAULTS[key][0]
    if default is None:  # per-stage slurm override: typed like the [slurm] key
        default = DEFAULTS["slurm." + key.rsplit(".", 1)[1]][0]
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if want is bool and not isinstance(value, bool) or not isinstance(value, want):
        raise ConfigError(f"{where}: {key} must be a {want.__name__}, got {value!r}")
    if want is list and not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where}: {key} must be a list of strings, got {value!r}")
    return value


def parse_scalar(key: str, text: str) -> Any:
    """Turn a string from the environment or `config set` into the key's type."""
    if key not in DEFAULTS:
        raise _unknown(key, "the command line")
    default = DEFAULTS[key][0]
    if default is None:
        default = DEFAULTS["slurm." + key.rsplit(".", 1)[1]][0]
    if isinstance(default, str):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{key}: cannot read {text!r} as a {type(default).__name__}") from e


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except PermissionError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e


class Config:
    """The effective configuration: each key's value and the layer it came from."""

    def __init__(self, settings: dict[str, Setting]):
        self._settings = settings

    def get(self, key: str) -> Any:
        if key not in self._settings:
            raise _unknown(key, "the program")
        return self._settings[key].value

    def source(self, key: str) -> str:
        return self._settings[key].source

    def items(self) -> list[tuple[str, Any, str]]:
        return [(k, s.value, s.source) for k, s in sorted(self._settings.items())
                if s.value is not None]

    def path(self, key: str) -> Path:
        """A path-valued key with ``~`` expanded."""
        return Path(os.path.expanduser(self.get(key)))

    def slurm_options(self, stage: str) -> dict[str, Any]:
        """[slurm] merged with [slurm.<stage>]: the stage's own value wins when set."""
        out = {}
        for key in SLURM_KEYS:
            own = self._settings.get(f"slurm.{stage}.{key}")
            out[key] = own.value if own and own.value is not None else self.get(f"slurm.{key}")
        return out

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """A copy with command-line values on top (None means "flag not given")."""
        merged = dict(self._settings)
        for key, value in overrides.items():
            if value is not None:
                merged[key] = Setting(check_value(key, value, "the command line"), "command line")
        return Config(merged)


def load_config(overrides: dict[str, Any] | None = None,
                env: dict[str, str] | None = None) -> Config:
    """Build the effective config from every layer (see module docstring)."""
    env = dict(os.environ if env is None else env)
    settings = {k: Setting(d, "default") for k, (d, _) in DEFAULTS.items()}
    for label, path in (("site", site_config_path(env)), ("user", user_config_path(env))):
        for key, value in _flatten(_read_toml(path)).items():
            settings[key] = Setting(check_value(key, value, str(path)), f"{label} ({path})")
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or name == "FROSTER_SLURM_SITE_CONFIG":
            continue
        key = name[len(ENV_PREFIX):].lower().replace("__", ".")
        if key not in DEFAULTS:
            raise _unknown(key, f"environment variable {name}")
        settings[key] = Setting(check_value(key, parse_scalar(key, text), name), f"env {name}")
    return Config(settings).with_overrides(overrides or {})


def init_user_file(path: Path, force: bool = False) -> Path:
    """Write a commented user config holding every default, for a person to edit."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; use --force to overwrite it")
    lines = ["# froster-slurm user configuration. Uncomment and edit what you need.",
             "# Precedence: defaults < site file < this file < FROSTER_SLURM_* env < flags.", ""]
    sections: dict[str, list[str]] = {}
    for key, (default, help_) in DEFAULTS.items():
        if default is None:
            continue
        section, _, name = key.rpartition(".")
        body = tomli_w.dumps({name: default}).strip().replace("\n", "\n# ")
        sections.setdefault(section, []).append(f"# {help_}\n# {body}")
    for section, entries in sections.items():
        if section:
            lines.append(f"# [{section}]")
        lines.extend(entries)
        lines.append("")
    lines.append("# Per-stage Slurm overrides: [slurm.crawl] [slurm.rank] [slurm.archive] "
                 "[slurm.finalize] [slurm.restore] [slurm.purge] take the same keys as [slurm].")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def set_user_value(path: Path, key: str, text: str) -> Any:
    """`config set KEY VALUE`: validate and store one value in the user file."""
    value = check_value(key, parse_scalar(key, text), "the command line")
    data = _read_toml(path)
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data))
    return value


def save_snapshot(config: Config, path: Path) -> None:
    """Freeze the effective config into a run, so jobs use what the submitter saw."""
    data = {key: value for key, value, _ in config.items()}
    path.write_text(tomli_w.dumps({"settings": data}))


def load_snapshot(path: Path) -> Config:
    """The config a run was submitted with (every value marked as coming from the run)."""
    with open(path, "rb") as f:
        data = tomllib.load(f)["settings"]
    settings = {k: Setting(d, "default") for k, (d, _) in DEFAULTS.items()}
    for key, value in data.items():
        settings[key] = Setting(value, f"run ({path})")
    return Config(settings)
