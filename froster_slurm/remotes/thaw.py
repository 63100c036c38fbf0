"""Where a thaw request must go: the S3 objects under a destination's wrappers.

``rclone backend restore`` is a command of the S3 backend.  Through an ``alias`` it reaches
S3 (an alias is only a path), but ``crypt`` answers "command not found" (and exits 0), and a
``union`` has no such command.  So the request is sent to each S3 backend itself, with the
object names as that backend stores them: the same names under alias and union, the
encrypted names under crypt (``rclone backend encode``, which needs no network).

``targets`` returns, per S3 backend, the root to send the request to and a map from the
backend's object names back to ours, so each answer is reported under the name the record
uses.  Chunker and compress change names in ways a request cannot follow: refused with a plain
message (permanent: waiting will not help).
"""

from __future__ import annotations

import os
import posixpath
import re

from ..errors import PermanentError
from .rclone import Rclone, classify
from .resolve import MAX_DEPTH, MULTI, WRAPPERS, join, split_remote

ENCODE_BATCH = 200  # names per ``rclone backend encode`` call (argument list size)


def _root(name: str) -> str:
    return f"{name}:"


def targets(rclone: Rclone, dump: dict[str, dict[str, str]], destination: str,
            objects: list[str]) -> list[tuple[str, dict[str, str]]]:
    """[(S3 root to request on, {name on that root: our object name})]."""
    return [(root, names) for _kind, root, names in
            stored_names(rclone, dump, destination, objects, ("s3",))]


def stored_names(rclone: Rclone, dump: dict[str, dict[str, str]], destination: str,
                 objects: list[str], kinds: tuple[str, ...] | None = None
                 ) -> list[tuple[str, str, dict[str, str]]]:
    """[(backend type, root, {name as that backend stores it: our name})] for the backends
    of ``kinds`` (None: every backend; a local path has type 'local')."""
    name, _inline, path = split_remote(destination)
    full = {join(path, rel) if path else rel: rel for rel in objects}
    return _down(rclone, dump, name, full, 0, kinds)


def _leaf(kind: str, root: str, full: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """Names relative to their common folder: answers then name objects as the archive does
    (a folder's odd bytes never come back re-encoded)."""
    absolute = kind == "local"
    paths = {(p if absolute else p.lstrip("/")): rel for p, rel in full.items()}
    base = posixpath.commonpath([posixpath.dirname(p) for p in paths]) if paths else ""
    cut = len(base.rstrip("/")) + 1 if base else 0
    return kind, root + base, {p[cut:]: rel for p, rel in paths.items()}


def _down(rclone: Rclone, dump: dict[str, dict[str, str]], name: str,
          full: dict[str, str], depth: int, kinds: tuple[str, ...] | None
          ) -> list[tuple[str, str, dict[str, str]]]:
    if depth > MAX_DEPTH:
        return []
    if not name:  # a local path
        return [_leaf("local", "", full)] if kinds is None or "local" in kinds else []
    opts = {"type": name[1:]} if name.startswith(":") else dump.get(name)
    if opts is None:
        raise PermanentError(f"the rclone remote {name!r} is not configured")
    kind = opts.get("type", "")
    if kind not in WRAPPERS and kind not in MULTI:
        if kinds is not None and kind not in kinds:
            return []
        return [_leaf(kind, _root(name), full)]
    if kind == "crypt":
        full = dict(zip(encode(rclone, _root(name), list(full)), full.values(), strict=True))
    elif kind in ("chunker", "compress") and kinds is not None:
        raise PermanentError(f"a thaw request cannot be sent through the {kind} remote "
                             f"{name!r}: ask for the restore on its S3 remote by hand, or "
                             "archive to a cold class without this wrapper")
    if kind in WRAPPERS:
        iname, _, ipath = split_remote(opts.get(WRAPPERS[kind], ""))
        return _down(rclone, dump, iname, {join(ipath, p) if ipath else p: r
                                           for p, r in full.items()}, depth + 1, kinds)
    if kind in MULTI:
        out: list[tuple[str, str, dict[str, str]]] = []
        for up in opts.get(MULTI[kind], "").split():
            prefix = ""
            if kind == "combine":
                prefix, _, up = up.partition("=")
            up = re.sub(r":(ro|nc|writeback)$", "", up)
            iname, _, ipath = split_remote(up)
            mine = {p[len(prefix):].lstrip("/") if prefix else p: r for p, r in full.items()
                    if not prefix or p.startswith(prefix + "/")}
            out += _down(rclone, dump, iname, {join(ipath, p) if ipath else p: r
                                               for p, r in mine.items()}, depth + 1, kinds)
        return out
    return []


def encode(rclone: Rclone, crypt_root: str, names: list[str]) -> list[str]:
    """The names a crypt remote stores for ``names`` (same order)."""
    out: list[str] = []
    for i in range(0, len(names), ENCODE_BATCH):
        batch = names[i:i + ENCODE_BATCH]
        res, stdout = rclone.capture(["backend", "encode", crypt_root,
                                      *[os.fsencode(n) for n in batch]], "restore-request")
        lines = stdout.decode("utf-8", "surrogateescape").splitlines()
        if res.returncode != 0 or len(lines) != len(batch):
            raise classify(res, "backend encode")
        out += lines
    return out
