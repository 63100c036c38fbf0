"""Credentials in a remote string never reach a file we write or a command line.

rclone accepts remotes with inline options (connection strings), e.g.
``:s3,provider=Other,access_key_id=AK,secret_access_key=SK:bucket/path`` or
``myremote,session_token=T:path``.  Written as given, the keys would land in run.toml,
summary.json/html, the archive record, the catalog, index.html and every rclone argv (``ps``
shows those to everyone on the node).  So a remote is split once, when it enters the tool:

* the **clean remote** keeps every option but the secret ones; it is what is stored, shown
  and passed on rclone's command line;
* the **secret options** become rclone environment variables (``RCLONE_S3_ACCESS_KEY_ID`` for
  an on-the-fly ``:s3`` remote, ``RCLONE_CONFIG_MYREMOTE_SESSION_TOKEN`` for a named one;
  rclone reads both, see its "Precedence" docs), kept in the run directory in a 0600 file
  (``Run.secrets_path``) and handed to rclone through its environment only, which no other
  account can read.

``archive.names.redact`` stays the last guard for text (rclone's log lines, error messages).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..util.private import write_private

# Option names of rclone backends that hold credentials (s3, b2, azureblob, swift, sftp,
# webdav, crypt, google, ...): any name with one of these words as a part.
_SECRET_PART = re.compile(
    r"(?:^|_)(?:key|keys|secret|pass|password|password2|token|credentials|sas|auth|"
    r"passphrase|pem)(?:_|$)")
# Some names contain such a word but hold no secret; keeping them readable helps support.
_NOT_SECRET = frozenset({"env_auth", "use_server_modtime", "key_file", "auth_url",
                         "no_check_bucket", "sse_customer_algorithm"})


def is_secret_option(name: str) -> bool:
    """True for option names such as access_key_id, secret_access_key, session_token, pass."""
    n = name.strip().lower().replace("-", "_")
    return n not in _NOT_SECRET and bool(_SECRET_PART.search(n))


@dataclass(frozen=True)
class RemoteSpec:
    """A remote split into what may be shown and the secrets rclone gets by environment."""

    remote: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Parsed:
    name: str                      # "myremote" or ":s3"
    options: list[tuple[str, str]]  # (key, raw value text as written, quotes included)
    path: str
    head: str = ""                 # "name,k=v,...": everything before the path's colon


def _parse(remote: str) -> _Parsed | None:
    """Parse ``name[,k=v...]:path``; None when ``remote`` is a local path or has no options."""
    if not remote or remote.startswith(("/", ".", "~")):
        return None
    i = 1 if remote.startswith(":") else 0
    while i < len(remote) and remote[i] not in ",:/":
        i += 1
    if i >= len(remote) or remote[i] == "/":
        return None  # no colon before the first slash: a relative local path
    name = remote[:i]
    options: list[tuple[str, str]] = []
    while remote[i] == ",":
        i += 1
        start = i
        while i < len(remote) and remote[i] not in "=,:":
            i += 1
        key = remote[start:i]
        raw = ""
        if i < len(remote) and remote[i] == "=":
            i += 1
            vstart = i
            if i < len(remote) and remote[i] in "\"'":
                quote = remote[i]
                i += 1
                while i < len(remote):
                    if remote[i] == quote:
                        if remote[i + 1:i + 2] == quote:  # doubled quote: a literal quote
                            i += 2
                            continue
                        i += 1
                        break
                    i += 1
            else:
                while i < len(remote) and remote[i] not in ",:":
                    i += 1
            raw = remote[vstart:i]
        options.append((key, raw))
        if i >= len(remote):
            return None  # no closing colon: not a remote rclone would accept either
    if remote[i] != ":":
        return None
    return _Parsed(name, options, remote[i + 1:], remote[:i])


def head_and_path(remote: str) -> tuple[str, str] | None:
    """``(":s3,endpoint='http://h:9'", "bucket/a")`` for an rclone remote (quoted option values
    may hold colons and slashes); None for a local path."""
    parsed = _parse(remote)
    return None if parsed is None else (parsed.head, parsed.path)


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        q = raw[0]
        return raw[1:-1].replace(q + q, q)
    return raw


def _env_name(remote_name: str, option: str) -> str:
    opt = option.strip().upper().replace("-", "_")
    if remote_name.startswith(":"):  # on-the-fly backend: the backend's own variables
        return f"RCLONE_{remote_name[1:].upper().replace('-', '_')}_{opt}"
    return f"RCLONE_CONFIG_{remote_name.upper().replace('-', '_')}_{opt}"


def split(remote: str) -> RemoteSpec:
    """The remote without its secret options, and those options as rclone env variables."""
    parsed = _parse(remote)
    if parsed is None or not parsed.options:
        return RemoteSpec(remote)
    kept: list[str] = []
    env: dict[str, str] = {}
    for key, raw in parsed.options:
        if is_secret_option(key):
            env[_env_name(parsed.name, key)] = _unquote(raw)
        else:
            kept.append(f"{key}={raw}" if raw or "=" in key else key)
    head = ",".join([parsed.name, *kept])
    return RemoteSpec(f"{head}:{parsed.path}", env)


def save(path: Path, env: dict[str, str]) -> None:
    """Keep the secret env of a run in a 0600 file (nothing is written when there is none)."""
    if env:
        write_private(path, json.dumps(env, sort_keys=True))


def load(path: str | os.PathLike) -> dict[str, str]:
    """The secret env saved by ``save`` ({} when the run has none)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in data.items()}
