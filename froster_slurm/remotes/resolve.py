"""What a destination really is: the backends under its alias / crypt / union / chunker wrappers.

Why: ``rclone listremotes --long`` names only the outermost type, so an ``alias`` (or a
``crypt``) over S3 looked like "not S3": no thaw was asked for and a restore from Deep Archive
waited for ever.  rclone's own config (``rclone config dump``, read in memory only: it holds
secrets) says what wraps what; we follow each wrapper's ``remote`` (``upstreams`` for union and
combine) down to the real backends.

The result (``RemoteInfo``) answers: do storage classes apply (an S3 backend underneath), must
cold data be thawed before it is read (S3, unless config marks the remote as needing no thaw,
e.g. Ceph RGW, whose "cold" classes read at once), is the data encrypted (crypt: the remote
cannot give md5), and what the record says about the remote (type, provider, endpoint, bucket,
region: never a secret).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, PermanentError
from .rclone import Rclone, classify

# Wrapper backends and the option naming what they wrap.
WRAPPERS = {"alias": "remote", "crypt": "remote", "chunker": "remote", "compress": "remote",
            "hasher": "remote", "cache": "remote"}
MULTI = {"union": "upstreams", "combine": "upstreams"}
# Wrappers that change the names or bytes below them (the path under them is not ours).
OPAQUE = {"crypt", "chunker", "compress"}
MAX_DEPTH = 16
# S3's limits: the object size and the key length, in bytes.
S3_MAX_OBJECT = 5 * 1024**4
S3_MAX_KEY = 1024
_USERINFO = re.compile(r"//[^/@]*@")


@dataclass(frozen=True)
class Backend:
    """One real storage under the wrappers (a leaf of rclone's config)."""

    name: str  # the config section ("" for a local path, ":s3" for an on-the-fly remote)
    type: str
    path: str  # the path on it ("" when an encrypting wrapper hides it)
    wrappers: tuple[str, ...] = ()  # outermost first, e.g. ("alias", "crypt")
    options: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def provider(self) -> str:
        return self.options.get("provider", "")

    @property
    def endpoint(self) -> str:
        """The endpoint without any user:password part."""
        ep = self.options.get("endpoint", "") or self.options.get("host", "")
        return _USERINFO.sub("//", ep)

    @property
    def region(self) -> str:
        return self.options.get("region", "")

    @property
    def bucket(self) -> str:
        if self.type not in ("s3", "gcs", "azureblob", "b2", "swift"):
            return ""
        return self.path.strip("/").split("/", 1)[0]

    def describe(self) -> dict[str, str]:
        """What the record keeps about this backend (no credentials, ever)."""
        out = {"remote": self.name, "type": self.type}
        for key in ("provider", "endpoint", "region", "bucket"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.type == "sftp":
            for key in ("host", "port", "user"):
                if self.options.get(key):
                    out[key] = self.options[key]
        if self.wrappers:
            out["through"] = "/".join(self.wrappers)
        return out


@dataclass(frozen=True)
class RemoteInfo:
    """A destination and the backends that hold its data."""

    destination: str
    name: str  # the outermost remote's name ("" for a local path)
    backends: tuple[Backend, ...]

    @property
    def names(self) -> set[str]:
        """Every remote name met on the way down (for per-remote config such as no_thaw)."""
        out = {self.name} if self.name else set()
        out.update(b.name for b in self.backends if b.name)
        return out

    @property
    def wrappers(self) -> set[str]:
        return {w for b in self.backends for w in b.wrappers}

    @property
    def has_storage_classes(self) -> bool:
        """True when an S3 backend holds the data (rclone's --s3-storage-class applies)."""
        return any(b.type == "s3" for b in self.backends)

    @property
    def encrypted(self) -> bool:
        return "crypt" in self.wrappers

    @property
    def hash_passthrough(self) -> bool:
        """True when the remote can report the md5 of our plain data (no crypt/compress)."""
        return not (self.wrappers & {"crypt", "compress"})

    def needs_thaw(self, cold_class: bool, no_thaw: Iterable[str] = ()) -> bool:
        """A thaw request is needed: cold class, an S3 backend, not marked "no thaw"."""
        if not cold_class or self.names & set(no_thaw):
            return False
        return self.has_storage_classes

    @property
    def max_object(self) -> int | None:
        """The largest object the backends take (S3: 5 TiB), None when unknown/unlimited."""
        return S3_MAX_OBJECT if self.has_storage_classes else None

    def describe(self) -> dict[str, Any]:
        """The record's "remote" entry: what a reader in five years needs, no secrets."""
        top = self.backends[0] if len(self.backends) == 1 else None
        out: dict[str, Any] = {"name": self.name or "(local path)"}
        if top is not None:
            out.update({k: v for k, v in top.describe().items() if k != "remote"})
            if top.name and top.name != self.name:
                out["backend_remote"] = top.name
        else:
            out["type"] = "union"
            out["backends"] = [b.describe() for b in self.backends]
        out["encrypted"] = self.encrypted
        return out


def split_remote(spec: str) -> tuple[str, dict[str, str], str]:
    """``name,opt=v:path`` -> (name, {opt: v}, path); a local path gives ('', {}, path).

    An on-the-fly remote ``:s3,provider=Other:bucket`` gives (':s3', {...}, 'bucket').
    """
    if spec.startswith("/") or ":" not in spec:
        return "", {}, spec
    head, rest = _split_head(spec)
    if head is None:
        return "", {}, spec
    parts = _split_commas(head)
    name, opts = parts[0], {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        opts[key.strip().replace("-", "_")] = _unquote(value) if value else "true"
    return name, opts, rest


def _split_head(spec: str) -> tuple[str | None, str]:
    """The text before the first ':' outside quotes (skipping a leading ':' of on-the-fly)."""
    quote = ""
    start = 1 if spec.startswith(":") else 0
    for i in range(start, len(spec)):
        ch = spec[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == ":":
            return spec[:i], spec[i + 1:]
        elif ch == "/" and not spec.startswith(":"):
            return None, spec
    return None, spec


def _split_commas(text: str) -> list[str]:
    out, cur, quote = [], "", ""
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch == ",":
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace(value[0] * 2, value[0])
    return value


def join(base: str, rel: str) -> str:
    """``remote:a`` + ``b/c`` -> ``remote:a/b/c`` (``remote:`` + ``b`` -> ``remote:b``)."""
    if not rel:
        return base
    if base.endswith((":", "/")):
        return base + rel.lstrip("/")
    return f"{base}/{rel.lstrip('/')}"


def config_dump(rclone: Rclone) -> dict[str, dict[str, str]]:
    """rclone's whole config as a dict (in memory only: it holds secrets)."""
    res, out = rclone.capture(["config", "dump"])
    if res.returncode != 0:
        raise classify(res, "config dump")
    try:
        data = json.loads(out or b"{}")
    except ValueError as e:
        raise PermanentError("rclone config dump did not print JSON") from e
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items()
            if isinstance(v, dict)}


def resolve(dump: dict[str, dict[str, str]], destination: str) -> RemoteInfo:
    """Follow ``destination`` through its wrappers; raise if a remote is not configured."""
    name, _, _ = split_remote(destination)
    backends = _walk(dump, destination, (), 0)
    return RemoteInfo(destination=destination, name=name.lstrip(":") if name.startswith(":")
                      else name, backends=tuple(backends))


def _walk(dump: dict[str, dict[str, str]], spec: str, wrappers: tuple[str, ...],
          depth: int) -> list[Backend]:
    if depth > MAX_DEPTH:
        raise ConfigError(f"rclone remote {spec!r}: wrappers nested more than {MAX_DEPTH} "
                          "deep (a loop in rclone's config?)")
    name, inline, path = split_remote(spec)
    if not name:
        return [Backend("", "local", path, wrappers)]
    if name.startswith(":"):
        opts = {"type": name[1:], **inline}
    else:
        if name not in dump:
            raise PermanentError(f"the rclone remote {name!r} is not configured (remotes: "
                                 f"{', '.join(sorted(dump)) or 'none'}); run `rclone config` "
                                 "or set archive.rclone_config")
        opts = {**dump[name], **inline}
    kind = opts.get("type", "")
    if kind in WRAPPERS:
        inner = opts.get(WRAPPERS[kind], "")
        if not inner:
            raise ConfigError(f"rclone remote {name!r} ({kind}) wraps nothing (no 'remote')")
        # Under crypt/chunker/compress the names are not ours: only the prefix is known.
        below = join(inner, "" if kind in OPAQUE else path)
        return _walk(dump, below, (*wrappers, kind), depth + 1)
    if kind in MULTI:
        out: list[Backend] = []
        for up in opts.get(MULTI[kind], "").split():
            if kind == "combine":
                _, _, up = up.partition("=")
            up = re.sub(r":(ro|nc|writeback)$", "", up)
            out += _walk(dump, join(up, path), (*wrappers, kind), depth + 1)
        return out
    return [Backend(name, kind, path, wrappers, opts)]


def resolve_with(rclone: Rclone, destination: str) -> RemoteInfo:
    """``resolve`` with rclone's config read now (one ``rclone config dump``)."""
    if destination.startswith("/"):
        return resolve({}, destination)
    return resolve(config_dump(rclone), destination)


def describe_text(desc: dict[str, Any] | None) -> str:
    """One line for people: ``s3 (provider AWS), bucket lab, region us-east-1, through
    alias/crypt, encrypted``; '' when the record has no remote entry (older archives)."""
    if not desc:
        return ""
    if desc.get("backends"):
        return "union of " + "; ".join(describe_text(b) for b in desc["backends"])
    parts = [str(desc.get("type", "?")) + (f" (provider {desc['provider']})"
                                           if desc.get("provider") else "")]
    for key, label in (("endpoint", "at"), ("host", "host"), ("bucket", "bucket"),
                       ("region", "region"), ("through", "through")):
        if desc.get(key):
            parts.append(f"{label} {desc[key]}")
    if desc.get("encrypted"):
        parts.append("encrypted (rclone crypt: the remote's config holds the key)")
    name = desc.get("name") or desc.get("remote")
    return (f"rclone remote {name!r}: " if name else "") + ", ".join(parts)
