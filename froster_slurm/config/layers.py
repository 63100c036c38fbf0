"""Layered TOML configuration.

Layers, lowest first: built-in defaults < site file (``/etc/froster-slurm/config.toml`` or
``$FROSTER_SLURM_SITE_CONFIG``) < user file (``$XDG_CONFIG_HOME/froster-slurm/config.toml``) <
``FROSTER_SLURM_*`` environment (``FROSTER_SLURM_ARCHIVE__STORAGE_CLASS``: ``__`` is the dot) <
command-line flags.  Every key is declared in ``config_keys`` with its type and domain.

Layers *merge*: a table (``[cost.per_tb_month]``) merges key by key, so a site that sets one
price keeps the others; a list extends or replaces as its key declares (``LIST_MERGE``); every
element remembers the layer it came from (``config show``).

A problem in the *site* file never stops a user's command that does not need it: the bad key
is dropped with a warning naming the file and line, reading that key fails with the same
message, and nothing that queues jobs runs while the site file is broken (``save_snapshot``
refuses).  Problems in the user file, the environment or flags are errors at once: their owner
is the one running the command.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import ConfigError, UserError
from ..util.private import write_private
from .keys import (
    DEFAULTS,
    LIST_MERGE,
    SLURM_KEYS,
    STAGES,
    default_of,
    domain_error,
    list_merge,
    nearest_key,
)
from .lines import decode_error_line, key_lines, key_on_line, line_of

__all__ = ["DEFAULTS", "LIST_MERGE", "SLURM_KEYS", "STAGES", "Config", "Setting",
           "check_value", "init_config_file", "load_config", "load_snapshot", "parse_scalar",
           "save_snapshot", "set_value", "site_config_path", "user_config_path"]

SITE_FILE = Path("/etc/froster-slurm/config.toml")
# The config's environment namespace: FROSTER_SLURM_<KEY> (``__`` for the dot) and
# FROSTER_SLURM_SITE_CONFIG, nothing else. Job scripts set FROSTER_<NAME> without SLURM_ (the
# job runtime), test scripts read FROSTER_TEST<THING>_* (docs/environment.md), so neither can
# ever reach this layer; a FROSTER_SLURM_ name that is no key is an error, not ignored.
ENV_PREFIX = "FROSTER_SLURM_"
ENV_SITE_CONFIG = "FROSTER_SLURM_SITE_CONFIG"
_ENV_HINT = ("FROSTER_SLURM_* is the config's environment layer (FROSTER_SLURM_<SECTION>__<KEY>); "
             "the test cluster reads FROSTER_TESTCLUSTER_*, see docs/environment.md")


def site_config_path(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(ENV_SITE_CONFIG) or SITE_FILE)


def user_config_path(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "froster-slurm" / "config.toml"


@dataclass(frozen=True)
class Setting:
    """A key's effective value, the (last) layer that set it, and per element of a table or
    list the layer it came from (``.DEEP_ARCHIVE`` or ``[0]`` -> source)."""

    value: Any
    source: str
    origins: tuple[tuple[str, str], ...] = field(default=())


def _leaves(value: Any, source: str) -> list[tuple[str, str]]:
    """(label, source) per table leaf (``.A.B``) or list item (``[i]``); [] for a scalar."""
    if isinstance(value, list):
        return [(f"[{i}]", source) for i in range(len(value))]
    if not isinstance(value, dict):
        return []
    out: list[tuple[str, str]] = []
    for k, v in value.items():
        inner = _leaves(v, source) if isinstance(v, dict) else []
        out += [(f".{k}{lab}", src) for lab, src in inner] if inner else [(f".{k}", source)]
    return out


def _deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for k, v in high.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else v
    return out


def merge(key: str, old: Setting, value: Any, source: str) -> Setting:
    """Lay ``value`` from layer ``source`` over ``old`` by the key's merge rule."""
    if isinstance(value, dict) and isinstance(old.value, dict):
        origins = dict(old.origins)
        origins.update(_leaves(value, source))
        merged = _deep_merge(old.value, value)
        return Setting(merged, source, tuple((lab, origins[lab]) for lab, _ in
                                             _leaves(merged, "")))
    if isinstance(value, list) and isinstance(old.value, list) and list_merge(key) == "extend":
        n = len(old.value)
        return Setting(old.value + value, source,
                       old.origins + tuple((f"[{n + i}]", source) for i in range(len(value))))
    return Setting(value, source, tuple(_leaves(value, source)))


def _unknown(key: str, where: str) -> ConfigError:
    near = nearest_key(key)
    if near:
        return ConfigError(f"unknown config key {key!r} in {where}; did you mean {near!r}? "
                           "(froster-slurm config keys lists every key)")
    section = key.rsplit(".", 1)[0] + "." if "." in key else ""
    same = sorted(k for k in DEFAULTS if k.startswith(section) and k.count(".") == key.count("."))
    listing = ", ".join(same or sorted(k for k in DEFAULTS if "." not in k))
    return ConfigError(f"unknown config key {key!r} in {where}; valid keys here: {listing}")


def check_value(key: str, value: Any, where: str) -> Any:
    """Validate one value against its declared type and domain; returns it (ints widened to
    float where a float is declared)."""
    if key not in DEFAULTS:
        raise _unknown(key, where)
    default = default_of(key)
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if want is bool and not isinstance(value, bool) or not isinstance(value, want) \
            or want is int and isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be a {want.__name__}, got {value!r}")
    if want is list and not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where}: {key} must be a list of strings, got {value!r}")
    problem = domain_error(key, value)
    if problem:
        raise ConfigError(f"{where}: {key}: {problem}")
    return value


def parse_scalar(key: str, text: str) -> Any:
    """Turn a string from the environment or `config set` into the key's type."""
    if key not in DEFAULTS:
        raise _unknown(key, "the command line")
    if isinstance(default_of(key), str):
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{key}: cannot read {text!r} as a "
                          f"{type(default_of(key)).__name__}") from e


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in DEFAULTS:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclass
class _Layer:
    """One file's keys, and what was wrong with it (site files only collect, never raise)."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)
    untrusted: str | None = None


def _read_layer(path: Path, strict: bool) -> _Layer:
    """Read and check one config file; ``strict`` raises the first problem instead."""
    layer = _Layer()

    def problem(message: str, *keys: str | None, untrusted: bool = False, then: str = ""
                ) -> None:
        if strict:
            raise ConfigError(message)
        message += then
        layer.problems.append(message)
        for k in keys:
            if k and k in DEFAULTS:
                layer.broken[k] = message
        if untrusted:
            layer.untrusted = message

    try:
        text = path.read_text()
    except FileNotFoundError:
        return layer
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as e:
        problem(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}", untrusted=True)
        return layer
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        number = decode_error_line(str(e))
        key = key_on_line(text, number) if number else None
        where = f"{path} line {number}" if number else str(path)
        rest = _without_line(text, number) if key else None
        if rest is None:  # a broken header or worse: nothing in the file can be trusted
            problem(f"{where}: not valid TOML ({e})", untrusted=True,
                    then="; the whole file is ignored")
            return layer
        problem(f"{where}: not valid TOML ({e})", key,
                None if key in DEFAULTS else nearest_key(key or ""), then="; this line is ignored")
        data = rest
    lines = key_lines(text)
    for key, value in _flatten(data).items():
        n = line_of(lines, key)
        where = f"{path} line {n}" if n else str(path)
        if key not in DEFAULTS:
            near = nearest_key(key)
            problem(str(_unknown(key, where)), near, untrusted=near is None)
            continue
        try:
            layer.values[key] = check_value(key, value, where)
        except ConfigError as e:
            problem(str(e), key)
    return layer


def _without_line(text: str, number: int | None) -> dict[str, Any] | None:
    """The file parsed without its one broken line, or None when that does not parse either."""
    if number is None:
        return None
    lines = text.splitlines()
    lines[number - 1] = ""
    try:
        return tomllib.loads("\n".join(lines))
    except tomllib.TOMLDecodeError:
        return None


class Config:
    """The effective configuration: each key's value and the layer(s) it came from, plus the
    site file's problems (warnings) and the keys they make unusable."""

    def __init__(self, settings: dict[str, Setting], *, problems: list[str] | None = None,
                 broken: dict[str, str] | None = None, untrusted: str | None = None):
        self._settings = settings
        self.problems = list(problems or [])
        self.broken = dict(broken or {})
        self.untrusted = untrusted

    def get(self, key: str) -> Any:
        if key in self.broken:
            raise ConfigError(self.broken[key] + " (fix the file, or set the key in your own "
                              "config to go on)")
        if key not in self._settings:
            raise _unknown(key, "the program")
        return self._settings[key].value

    def source(self, key: str) -> str:
        return self._settings[key].source

    def items(self) -> list[tuple[str, Any, str]]:
        return [(k, s.value, s.source) for k, s in sorted(self._settings.items())
                if s.value is not None and k not in self.broken]

    def elements(self) -> list[tuple[str, Any, str]]:
        """One row per scalar, per table leaf and per list item, each with its layer."""
        rows: list[tuple[str, Any, str]] = []
        for key, s in sorted(self._settings.items()):
            if s.value is None or key in self.broken:
                continue
            if s.origins:
                for label, src in s.origins:
                    rows.append((key + label, _pick(s.value, label), src))
            else:
                rows.append((key, s.value, s.source))
        return rows

    def path(self, key: str) -> Path:
        """A path-valued key with ``~`` expanded."""
        return Path(os.path.expanduser(self.get(key)))

    def slurm_options(self, stage: str) -> dict[str, Any]:
        """[slurm] merged with [slurm.<stage>]: the stage's own scalar wins when set; a list
        that extends (extra, prologue, skip) is the [slurm] items then the stage's."""
        out = {}
        for key in SLURM_KEYS:
            common = self.get(f"slurm.{key}")
            own = self.get(f"slurm.{stage}.{key}")
            if own is None:
                out[key] = common
            elif isinstance(own, list) and list_merge(f"slurm.{stage}.{key}") == "extend":
                out[key] = common + own
            else:
                out[key] = own
        return out

    def check_complete(self) -> None:
        """Refuse to go on while the site file is broken: jobs freeze the whole config."""
        if self.untrusted:
            raise ConfigError(self.untrusted)
        if self.broken:
            raise ConfigError(next(iter(self.broken.values())))

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """A copy with command-line values on top (None means "flag not given"); a value given
        here replaces (a flag is the value for this run)."""
        merged = dict(self._settings)
        broken = dict(self.broken)
        for key, value in overrides.items():
            if value is not None:
                try:
                    v = check_value(key, value, "the command line")
                except ConfigError as e:
                    # A bad flag is a usage mistake (64), not a broken config file (78).
                    raise UserError(str(e)) from e
                merged[key] = Setting(v, "command line", tuple(_leaves(v, "command line")))
                broken.pop(key, None)
        return Config(merged, problems=self.problems, broken=broken, untrusted=self.untrusted)


def _pick(value: Any, label: str) -> Any:
    """The element of a table or list that ``label`` (``.A.B`` or ``[3]``) names."""
    if label.startswith("["):
        return value[int(label[1:-1])]
    for part in label[1:].split("."):
        value = value[part]
    return value


def _defaults(env: dict[str, str] | None = None) -> dict[str, Setting]:
    out = {k: Setting(d, "default", tuple(_leaves(d, "default"))) for k, (d, _) in
           DEFAULTS.items()}
    state_home = (env or {}).get("XDG_STATE_HOME", "")
    if os.path.isabs(state_home):  # the XDG base directory spec: relative values are ignored
        out["state_dir"] = Setting(os.path.join(state_home, "froster-slurm"),
                                   "default ($XDG_STATE_HOME)")
    return out


def load_config(overrides: dict[str, Any] | None = None,
                env: dict[str, str] | None = None) -> Config:
    """Build the effective config from every layer (see module docstring)."""
    env = dict(os.environ if env is None else env)
    settings = _defaults(env)
    problems: list[str] = []
    broken: dict[str, str] = {}
    untrusted: str | None = None
    for label, path, strict in (("site", site_config_path(env), False),
                                ("user", user_config_path(env), True)):
        layer = _read_layer(path, strict)
        problems += layer.problems
        broken.update(layer.broken)
        untrusted = untrusted or layer.untrusted
        for key, value in layer.values.items():
            settings[key] = merge(key, settings[key], value, f"{label} ({path})")
            if label == "user":  # the user's own value stands in for a broken site one
                broken.pop(key, None)
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_SITE_CONFIG:
            continue
        key = name[len(ENV_PREFIX):].lower().replace("__", ".")
        if key not in DEFAULTS:
            raise ConfigError(f"{_unknown(key, f'environment variable {name}')} ({_ENV_HINT})")
        value = check_value(key, parse_scalar(key, text), name)
        settings[key] = merge(key, settings[key], value, f"env {name}")
        broken.pop(key, None)
    cfg = Config(settings, problems=problems, broken=broken, untrusted=untrusted)
    return cfg.with_overrides(overrides or {})


def init_config_file(path: Path, force: bool = False) -> Path:
    """Write a commented config file holding every default (see ``config_file``)."""
    from .file import write_init_file

    return write_init_file(path, force=force)


def _table_of(key: str) -> str | None:
    """`cost.per_tb_month.GLACIER` -> `cost.per_tb_month`: the table key a leaf belongs to."""
    parts = key.split(".")
    for n in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:n])
        if head in DEFAULTS and isinstance(DEFAULTS[head][0], dict):
            return head
    return None


def set_value(path: Path, key: str, text: str) -> Any:
    """`config set [--site] KEY VALUE`: validate, then store one value in ``path``.  KEY may
    name one entry of a table (`cost.per_tb_month.GLACIER 3.0`)."""
    from .file import store_value

    table = None if key in DEFAULTS else _table_of(key)
    if table is None:
        return store_value(path, key, check_value(key, parse_scalar(key, text),
                                                  "the command line"))
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{key}: cannot read {text!r} as a TOML value") from e
    nested: Any = value
    for part in reversed(key[len(table) + 1:].split(".")):
        nested = {part: nested}
    check_value(table, nested, "the command line")
    return store_value(path, key, value)


def save_snapshot(config: Config, path: Path) -> None:
    """Freeze the effective config into a run, so jobs use what the submitter saw.  A broken
    site file stops here: a job must not run on a config its admin did not mean."""
    config.check_complete()
    from ..remotes.secrets import split

    data = {key: value for key, value, _ in config.items()}
    if isinstance(data.get("default_remote"), str):  # its keys live in the run's secrets file
        data["default_remote"] = split(data["default_remote"]).remote
    write_private(path, tomli_w.dumps({"settings": data}))


def load_snapshot(path: Path) -> Config:
    """The config a run was submitted with (every value marked as coming from the run)."""
    with open(path, "rb") as f:
        data = tomllib.load(f)["settings"]
    settings = _defaults()
    for key, value in data.items():
        settings[key] = Setting(value, f"run ({path})")
    return Config(settings)
