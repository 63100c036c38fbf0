"""Checks made before anything is queued, and by ``froster-slurm check``.

Why: a mistake a person makes every day (a remote that is not configured, a misspelt storage
class, a folder that does not exist, ``--to s3glacier`` without its colon) used to be accepted
with a run id and fail hours later inside a job, often as a bare ``status code: 400`` that was
retried for half an hour.  Every command that submits archive or restore work calls these
checks first; each failure is one line that names the fix, and nothing is written or queued.
``froster-slurm check`` runs the same checks (plus rclone and Slurm themselves) as OK/FAIL
lines, the first thing support asks for.

What a destination is, is asked of rclone itself: ``rclone listremotes`` (configured names,
including ``RCLONE_CONFIG_*`` ones), ``rclone backend features`` (the hashes it gives, and for
a local backend, alias included, the real directory), one short ``rclone lsf`` (does its root
answer) and ``rclone config dump`` for the backend types under alias/crypt/union wrappers
(read in memory; only types and wrapped remote names are kept, never a secret).

A destination that is, contains or lies inside a source is refused (compared by device and
inode, so symlinks and bind mounts do not hide it): with ``remote_prefix = ""`` and ``--to /``
the archive would be the folder itself, verify would compare the folder with itself, and
purge would delete the only copy.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..archive.names import destination as folder_destination
from ..archive.names import join_remote, redact
from ..config import Config
from ..errors import ConfigError, FrosterError, NotFoundError, UserError
from ..remotes import secrets as remote_secrets
from ..remotes.rclone import query
from ..remotes.resolve import S3_MAX_KEY
from ..remotes.storage_classes import (
    NO_CLASS,
    THAW_CLASSES,
    is_s3_class,
    unknown_class_message,
)
from ..util.paths import display
from ..util.units import parse_slurm_time

PROBE_TIMEOUT = 90  # seconds for one rclone call (it has its own shorter network timeouts)
NET_FLAGS = ["--contimeout", "15s", "--timeout", "30s", "--low-level-retries", "1",
             "--retries", "1"]
# Slurm sends --signal up to a minute before the time asked for (its event resolution).
SIGNAL_SLACK = 60
WRAPPERS = {"alias", "crypt", "chunker", "compress", "hasher", "cache"}
MULTI = {"union", "combine"}
MAX_LISTED = 10  # bad folders named one by one; the rest are counted
SET_DEFAULT = "froster-slurm config set default_remote REMOTE:PATH"


@dataclass(frozen=True)
class Check:
    """One check's outcome: a line for a person, and the exit code when it failed."""

    what: str
    ok: bool
    detail: str
    exit_code: int = UserError.exit_code

    def line(self) -> str:
        return f"{'OK' if self.ok else 'FAIL':<4}  {self.what}: {self.detail}"


def ok(what: str, detail: str) -> Check:
    return Check(what, True, detail)


def fail(what: str, detail: str, error: type[FrosterError] = UserError) -> Check:
    return Check(what, False, detail, error.exit_code)


class PreflightError(UserError):
    """One or more checks failed: one line each; the first failure's exit code."""

    def __init__(self, failures: Sequence[Check]):
        self.failures = list(failures)
        self.exit_code = self.failures[0].exit_code
        super().__init__("\n".join(f"{c.what}: {c.detail}" for c in self.failures))


def require(checks: Iterable[Check]) -> list[Check]:
    """Raise ``PreflightError`` naming every failed check; return the checks otherwise."""
    checks = list(checks)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise PreflightError(failed)
    return checks


# --- rclone ----------------------------------------------------------------------------

@dataclass
class Probe:
    """The rclone the jobs will run (same executable, config file and flags), asked questions.

    Answers are cached: one ``check`` or submission asks each question once.
    """

    exe: str = "rclone"
    config: str = ""
    flags: tuple[str, ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Probe:
        """The same rclone the jobs run (``remotes.exe.find_rclone``)."""
        from ..remotes.exe import find_rclone

        conf = config.get("archive.rclone_config")
        configured = str(config.get("archive.rclone") or "")
        try:
            exe = find_rclone(configured)
        except ConfigError:
            exe = configured or "rclone"  # `check` says what is wrong with it
        return cls(exe, os.path.expanduser(conf) if conf else "",
                   tuple(config.get("archive.rclone_flags")))

    def run(self, args: Sequence[str | bytes], net: bool = False
            ) -> tuple[int, bytes, str]:
        """(exit code, stdout, the last stderr line), never raising for rclone's failures."""
        # A remote's keys (":s3,...,secret_access_key=...:") reach rclone by environment,
        # never on its command line, where `ps` shows them to everyone (remotes/secrets.py).
        secret_env: dict[str, str] = {}
        clean: list[str | bytes] = []
        for a in args:
            if isinstance(a, str):
                spec = remote_secrets.split(a)
                secret_env.update(spec.env)
                a = spec.remote
            clean.append(a)
        answer = query(self.exe, clean, config=self.config,
                       flags=[*self.flags, *NET_FLAGS] if net else (), env=secret_env,
                       timeout=PROBE_TIMEOUT)
        if answer.missing:
            return 127, b"", f"{self.exe}: not found"
        if answer.timed_out:
            return 124, b"", f"no answer within {PROBE_TIMEOUT} s"
        lines = [ln.strip() for ln in answer.stderr.decode("utf-8", "replace").splitlines()
                 if ln.strip()]
        return answer.returncode, answer.stdout, redact(_strip_stamp(lines[-1]) if lines else "")

    def version(self) -> tuple[str | None, str]:
        rc, out, err = self.run(["version"])
        if rc != 0:
            return None, err
        first = out.decode("utf-8", "replace").splitlines()
        return (first[0].strip() if first else "rclone"), ""

    def remotes(self) -> set[str]:
        if "remotes" not in self._cache:
            rc, out, _ = self.run(["listremotes"])
            names = out.decode("utf-8", "replace").split() if rc == 0 else []
            self._cache["remotes"] = {n.rstrip(":") for n in names}
        return self._cache["remotes"]

    def types(self) -> dict[str, tuple[str, list[str]]]:
        """name -> (type, the remotes it wraps); secrets are dropped as soon as read."""
        if "types" not in self._cache:
            rc, out, _ = self.run(["config", "dump"])
            data: dict[str, Any] = {}
            if rc == 0:
                try:
                    data = json.loads(out or b"{}")
                except ValueError:
                    data = {}
            types: dict[str, tuple[str, list[str]]] = {}
            skeleton: dict[str, dict[str, str]] = {}
            for name, opts in data.items():
                if isinstance(opts, dict):
                    kind = str(opts.get("type", ""))
                    inner = [str(opts.get("remote", ""))] if kind in WRAPPERS else \
                        str(opts.get("upstreams", "")).split() if kind in MULTI else []
                    types[str(name)] = (kind, [i for i in inner if i])
                    skeleton[str(name)] = {k: str(opts[k]) for k in SKELETON_KEYS if k in opts}
            del data
            self._cache["skeleton"] = skeleton
            for key, value in os.environ.items():  # remotes defined by RCLONE_CONFIG_<NAME>_TYPE
                if key.startswith("RCLONE_CONFIG_") and key.endswith("_TYPE"):
                    name = key[len("RCLONE_CONFIG_"):-len("_TYPE")].lower()
                    inner_env = os.environ.get(f"RCLONE_CONFIG_{name.upper()}_REMOTE", "")
                    types.setdefault(name, (value, [inner_env] if inner_env else []))
            self._cache["types"] = types
        return self._cache["types"]

    def skeleton(self) -> dict[str, dict[str, str]]:
        """rclone's config without a single secret: each remote's type, what it wraps and
        its provider (enough for ``remotes.resolve`` to follow the wrappers)."""
        self.types()
        return self._cache.get("skeleton", {})

    def features(self, spec: str) -> tuple[dict[str, Any] | None, str]:
        key = "features:" + spec
        if key not in self._cache:
            rc, out, err = self.run(["backend", "features", spec], net=True)
            try:
                got = json.loads(out) if rc == 0 else None
            except ValueError:
                got = None
            self._cache[key] = (got if isinstance(got, dict) else None,
                                err or f"rclone exit code {rc}")
        return self._cache[key]

    def answers(self, spec: str) -> tuple[bool, str]:
        """Whether listing ``spec`` works (a path that does not exist yet still answers)."""
        rc, _, err = self.run(["lsf", "--max-depth", "1", "--dirs-only", spec], net=True)
        if rc == 0 or rc == 3 or "directory not found" in err.lower():
            return True, "" if rc == 0 else "(not there yet: it will be created)"
        return False, err or f"rclone exit code {rc}"


def _strip_stamp(line: str) -> str:
    """rclone's ``2026/12/02 06:59:13 ERROR : x`` -> ``ERROR : x``."""
    parts = line.split(" ", 2)
    if len(parts) == 3 and parts[0].count("/") == 2 and parts[1].count(":") == 2:
        return parts[2]
    return line


def split_name(remote: str) -> str | None:
    """The remote name of ``name:path`` / ``name,opt=v:path`` / ``:type:path``; None for a
    local path.  (rclone reads ``C:`` style heads too, which Linux paths never have.)"""
    if remote.startswith(("/", ".", "~")):
        return None
    head, sep, _ = remote.partition(":")
    if remote.startswith(":"):
        head = ":" + remote[1:].partition(":")[0]
        sep = ":"
    if not sep or "/" in head:
        return None
    return head.split(",", 1)[0]


def backend_walk(probe: Probe, remote: str, depth: int = 0) -> tuple[set[str], set[str]]:
    """(types of the backends that hold the data of ``remote``, wrappers on the way down)."""
    name = split_name(remote)
    if name is None:
        return {"local"}, set()
    if name.startswith(":"):
        return {name[1:]}, set()
    kind, inner = probe.types().get(name, ("", []))
    if kind in WRAPPERS | MULTI and inner and depth < 16:
        types, wrappers = set(), {kind}
        for up in inner:
            up = up.partition("=")[2] if kind == "combine" and "=" in up else up
            for suffix in (":ro", ":nc", ":writeback"):
                up = up.removesuffix(suffix)
            t, w = backend_walk(probe, up, depth + 1)
            types |= t
            wrappers |= w
        return types, wrappers
    return ({kind} if kind else set()), set()


# The options of a remote that say what it is and what it wraps (never a credential).
SKELETON_KEYS = ("type", "remote", "upstreams", "provider", "endpoint", "region",
                 "create_policy")
# Backends whose folders exist only through their objects (a new folder is never "there").
BUCKET_TYPES = frozenset({"s3", "gcs", "azureblob", "b2", "swift"})


def _union_policy(dest: Destination, probe: Probe, shown: str) -> Check | None:
    """A union over bucket storage with an "existing path" create policy (rclone's default
    epmfs) finds no upstream to write a new folder into: every upload fails "object not
    found" and the task starts over and over.  Refused here, naming the setting to change."""
    if "union" not in dest.wrappers:
        return None
    skeleton = probe.skeleton()
    seen: set[str] = set()
    todo = [split_name(dest.remote)]
    while todo:
        name = todo.pop()
        if not name or name.startswith(":") or name in seen or name not in skeleton:
            continue
        seen.add(name)
        opts = skeleton[name]
        ups = opts.get("upstreams", "").split() if opts.get("type") == "union" else \
            [opts.get("remote", "")] if opts.get("type") in WRAPPERS else []
        if opts.get("type") == "union":
            policy = opts.get("create_policy", "epmfs")
            kinds: set[str] = set()
            for up in ups:
                kinds |= backend_walk(probe, re.sub(r":(ro|nc|writeback)$", "", up))[0]
            if policy.startswith("ep") and kinds & BUCKET_TYPES:
                buckets = "/".join(sorted(kinds & BUCKET_TYPES))
                return fail("union", f"{shown}: the union {name!r} writes with create_policy "
                            f"{policy} (\"existing path\"), but its {buckets} upstreams have "
                            "no folder before its first object, so no upload could start; set "
                            f"create_policy = ff (the first upstream) or all for {name!r}",
                            ConfigError)
        todo += [split_name(u) for u in ups if u]
    return None


def _crypt_cold(config: Config, dest: Destination, probe: Probe, shown: str) -> Check | None:
    """A crypt remote with a class that must be thawed is proven before the data goes cold
    (upload STANDARD, cryptcheck, tier change: ``archive.cryptproof``); rclone changes a tier
    only with ``provider = AWS``.  Anywhere else refuse here, in one line, before anything is
    queued, rather than fail every task (Ceph RGW: its cold classes read at once, so the
    remote belongs in ``remotes.no_thaw`` and is proven directly)."""
    from ..archive.cryptproof import can_set_tier
    from ..remotes.resolve import resolve

    cls = dest.storage_class
    if "crypt" not in dest.wrappers or cls not in THAW_CLASSES:
        return None
    try:
        info = resolve(probe.skeleton(), dest.remote)
    except FrosterError:
        return None  # the remote checks above already said what is wrong
    if not info.needs_thaw(True, config.get("remotes.no_thaw")):
        return ok("crypt proof", f"{cls} under crypt on a remote in remotes.no_thaw: "
                  "cryptcheck reads it at once")
    if can_set_tier(info):
        return ok("crypt proof", f"{cls} under crypt: uploaded in STANDARD, proven by "
                  f"cryptcheck, then moved to {cls} on the server (rclone settier)")
    providers = ", ".join(sorted({b.provider or "none" for b in info.backends
                                  if b.type == "s3"})) or "none"
    names = ", ".join(sorted(b.name for b in info.backends if b.type == "s3"))
    return fail("crypt proof",
                f"{shown}: {cls} under crypt cannot be proven: cryptcheck must read every "
                f"object before it goes cold and rclone moves objects to {cls} afterwards only "
                f"with provider AWS (this remote's S3 provider: {providers}); archive in "
                f"STANDARD, or, if {cls} reads at once there (Ceph RGW), add {names} to "
                "remotes.no_thaw", ConfigError)


# --- the destination -------------------------------------------------------------------

@dataclass
class Destination:
    """What the checks learnt about a destination; the run records what matters of it."""

    remote: str  # as the run records it (a local path made absolute)
    base: str  # remote + remote_prefix: every folder's data lands below it
    types: set[str] = field(default_factory=set)
    wrappers: set[str] = field(default_factory=set)  # alias, crypt, union... on the way down
    hashes: tuple[str, ...] = ()
    local_root: bytes | None = None  # the directory ``base`` is on this machine, if local
    storage_class: str = NO_CLASS  # what the run records and passes to rclone
    notes: list[str] = field(default_factory=list)

    @property
    def has_storage_classes(self) -> bool:
        """An S3 backend holds the data: ``--s3-storage-class`` applies."""
        return "s3" in self.types


def _normalize(remote: str) -> str:
    from ..run.rundir import normalize_remote

    return normalize_remote(remote)


def check_destination(config: Config, remote: str, storage_class: str | None = None,
                      probe: Probe | None = None) -> tuple[list[Check], Destination | None]:
    """The remote exists, answers, gives md5; the storage class is one it accepts."""
    probe = probe or Probe.from_config(config)
    checks: list[Check] = []
    remote = (remote or "").strip()
    if not remote:
        return [fail("destination", "no destination: give --to REMOTE:PATH (e.g. "
                     f"--to s3glacier:lab-archive) or set a default with `{SET_DEFAULT}`",
                     ConfigError)], None
    name = split_name(remote)
    is_path = name is None
    if is_path and "/" not in remote and remote in probe.remotes():
        return [fail("destination", f"--to {remote} is the name of an rclone remote but has "
                     f"no colon, so it would be a local folder ./{remote}: write --to "
                     f"{remote}: (or {remote}:PATH); for a local folder write ./{remote}")], None
    if not is_path and not name.startswith(":") and name not in probe.remotes():
        known = sorted(probe.remotes())
        close = difflib.get_close_matches(name, known, n=1)
        mean = f"did you mean {close[0]}:? " if close else ""
        where = f" (rclone config {probe.config})" if probe.config else ""
        return [fail("remote", f"rclone remote {name!r} is not configured{where}; {mean}"
                     f"configured: {', '.join(known) or 'none'}; create it with `rclone "
                     "config` or set archive.rclone_config", ConfigError)], None
    normalized = _normalize(remote)
    prefix = str(config.get("remote_prefix")).strip("/")
    base = join_remote(normalized, prefix) if prefix else normalized
    dest = Destination(remote=normalized, base=base)
    shown = redact(remote)
    if is_path:
        checks.append(_local_writable(os.fsencode(base)))
        dest.types = {"local"}
    else:
        answers, why = probe.answers(_root_of(normalized))
        if not answers:
            return [*checks, fail("remote", f"{shown} does not answer: {why}; check the "
                                  "remote's endpoint and credentials (`rclone lsf "
                                  f"{redact(_root_of(normalized))}`)", ConfigError)], None
        checks.append(ok("remote", f"{shown} answers {why}".rstrip()))
        dest.types, dest.wrappers = backend_walk(probe, normalized)
    features, why = probe.features(base)
    if features is None:
        return [*checks, fail("remote", f"rclone cannot open {redact(base)}: {why}",
                              ConfigError)], None
    dest.hashes = tuple(str(h) for h in features.get("Hashes") or ())
    if (features.get("Features") or {}).get("IsLocal") and features.get("Root"):
        dest.local_root = os.fsencode(os.path.normpath(str(features["Root"])))
    if "md5" in dest.hashes:
        checks.append(ok("hashes", f"{shown} gives md5 (verify compares every file by it)"))
    elif "crypt" in dest.wrappers:
        checks.append(ok("hashes", f"{shown} is encrypted (crypt): no md5 of the plain data; "
                         "verify proves every file with rclone cryptcheck"))
    else:
        offered = ", ".join(dest.hashes) or "none"
        checks.append(fail("hashes", f"{shown} cannot give the md5 hashes verify needs "
                           f"(it gives: {offered}); archive to a remote that reports md5 (S3, "
                           "a local path, sftp with md5sum on the server, crypt over one of "
                           "these)", ConfigError))
    checks.append(_storage_class(config, dest, storage_class))
    union = _union_policy(dest, probe, shown)
    if union is not None:
        checks.append(union)
    crypt = _crypt_cold(config, dest, probe, shown) if dest.storage_class != NO_CLASS else None
    if crypt is not None:
        checks.append(crypt)
    return checks, dest


def _root_of(remote: str) -> str:
    """``name:bucket/a/b`` -> ``name:bucket`` (the part that must answer now); options of a
    connection string (``:s3,endpoint='http://h:9':bucket``) may hold colons themselves."""
    parsed = remote_secrets.head_and_path(remote)
    if parsed is not None:
        head, path = parsed
    else:
        head, _, path = remote.partition(":") if not remote.startswith(":") else \
            (":" + remote[1:].partition(":")[0], ":", remote[1:].partition(":")[2])
    first = path.strip("/").split("/", 1)[0]
    return f"{head}:{first}"


def _local_writable(path: bytes) -> Check:
    """A local destination: its nearest existing ancestor is a directory we may write."""
    p = os.path.normpath(path)
    while not os.path.lexists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    if not os.path.isdir(p):
        return fail("destination", f"{display(path)}: {display(p)} is not a directory")
    if p == os.path.normpath(path):
        how = "exists"
    else:
        how = f"will be created in {display(p)}"
    if not os.access(p, os.W_OK | os.X_OK):
        return fail("destination", f"{display(path)}: cannot write into {display(p)} "
                    "(permission denied); choose another --to")
    return ok("destination", f"local folder {display(path)} ({how})")


def _storage_class(config: Config, dest: Destination, flag: str | None) -> Check:
    wanted = str(flag or config.get("archive.storage_class"))
    if not dest.has_storage_classes:
        dest.storage_class = NO_CLASS
        kinds = "/".join(sorted(dest.types)) or "unknown type"
        note = (f"{redact(dest.remote)} ({kinds}) has no storage classes: the data is stored "
                f"as the remote stores it and the record says storage class '{NO_CLASS}'")
        if flag and flag != NO_CLASS:
            return fail("storage class", f"--storage-class {flag}: {note}; drop "
                        "--storage-class or archive to an S3 remote")
        dest.notes.append(note)
        return ok("storage class", f"{NO_CLASS} ({kinds} has no storage classes)")
    if wanted == NO_CLASS:
        dest.storage_class = NO_CLASS
        return ok("storage class", f"{NO_CLASS}: the bucket's default class")
    if not is_s3_class(wanted):
        where = "--storage-class" if flag else \
            f"archive.storage_class (from {config.source('archive.storage_class')})"
        return fail("storage class", unknown_class_message(wanted, where), ConfigError)
    dest.storage_class = wanted
    return ok("storage class", wanted)


# --- sources ---------------------------------------------------------------------------

def check_folders(folders: Sequence[bytes], what: str = "folder") -> list[Check]:
    """Each folder exists, is a directory and can be listed and entered."""
    bad: list[str] = []
    for f in folders:
        if not os.path.lexists(f):
            bad.append(f"{display(f)} does not exist: check the path (or make the selection "
                       "again)")
        elif not os.path.isdir(f):
            bad.append(f"{display(f)} is not a directory; archive the folder that holds it")
        elif not os.access(f, os.R_OK | os.X_OK):
            bad.append(f"{display(f)} is not readable by you (archive it as its owner, or "
                       "ask them to grant read access)")
    if not bad:
        n = len(folders)
        shown = display(folders[0]) if n == 1 else f"{n:,} {what}s"
        return [ok(what, f"{shown}: exists, is a directory, readable")]
    checks = [fail(what, b, NotFoundError if "does not exist" in b else UserError)
              for b in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        checks.append(fail(what, f"and {len(bad) - MAX_LISTED:,} more {what}s like these"))
    return checks


def check_not_purged(folders: Sequence[bytes]) -> list[Check]:
    """No folder is one whose archive was purged and whose files are not back: archiving it
    would make a lesser version (``archive.versions``; the task refuses it too)."""
    from ..archive.versions import purged_and_not_back

    bad = [m for f in folders if os.path.isdir(f) and (m := purged_and_not_back(f))]
    checks = [fail("earlier archive", m) for m in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        checks.append(fail("earlier archive", f"and {len(bad) - MAX_LISTED:,} more purged "
                           "folders like these"))
    return checks


def _ident(path: bytes) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _self_and_ancestors(path: bytes) -> list[bytes]:
    out = [path]
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return out
        out.append(parent)
        path = parent


def relation(dest: bytes, source: bytes) -> str | None:
    """'is', 'inside' (dest lies in source) or 'contains' (source lies in dest), or None.

    By device and inode of the paths that exist, after resolving symlinks: a bind mount or a
    symlink of the source is still the source.
    """
    src_id = _ident(source)
    if src_id is None:
        return None
    real = os.path.realpath(dest)
    for i, p in enumerate(_self_and_ancestors(real)):
        if _ident(p) == src_id:
            return "is" if i == 0 else "inside"
    dest_id = _ident(real)
    if dest_id is not None:
        for p in _self_and_ancestors(os.path.realpath(source))[1:]:
            if _ident(p) == dest_id:
                return "contains"
    return None


def local_destination(root: bytes, folder: bytes) -> bytes:
    """Where ``folder``'s data lands below a local destination root."""
    return root.rstrip(b"/") + b"/" + os.path.normpath(folder).lstrip(b"/")


def overlap_message(dest: bytes, source: bytes, how: str) -> str:
    d, s = display(dest), display(source)
    words = {"is": f"is {s} itself", "inside": f"lies inside {s}",
             "contains": f"contains {s}"}[how]
    return (f"{d} {words}: the archive would overwrite or include its own "
            "source (and purge could delete the only copy); choose a --to outside it "
            "(and check remote_prefix)")


def check_overlap(dest: Destination, sources: Sequence[bytes]) -> list[Check]:
    """No source folder's destination is, contains or lies inside a source.

    The same answer as ``relation`` for each folder, with every stat cached: 10,000 sibling
    folders share their ancestors, so the check costs a few stats per folder."""
    if dest.local_root is None:
        return []
    ids: dict[bytes, tuple[int, int] | None] = {}

    def ident(path: bytes) -> tuple[int, int] | None:
        if path not in ids:
            ids[path] = _ident(path)
        return ids[path]

    root = os.path.realpath(dest.local_root)
    root_id = ident(root)
    above = {ident(p): p for p in _self_and_ancestors(root) if ident(p) is not None}
    bad = []
    for s in sources:
        s = os.path.normpath(os.path.abspath(s))
        sid = ident(s)
        if sid is None:
            continue
        target = local_destination(dest.local_root, s)
        how = "inside" if sid in above else None  # the whole destination lies in the source
        if how is None and root_id is not None:  # below the root: only what exists already
            p, parts = root, [c for c in s.split(b"/") if c]
            for n, comp in enumerate(parts, 1):
                p = os.path.join(p, comp)
                got = ident(p)  # stat follows symlinks: a link to the source is the source
                if got is None:
                    break
                if got == sid:
                    how = "is" if n == len(parts) else "inside"
                    break
            if how is None and root_id in {ident(a) for a in _self_and_ancestors(s)[1:]}:
                how = "contains"
        if how:
            bad.append(fail("destination", overlap_message(target, s, how)))
    if not bad:
        return [ok("destination", f"outside every source ({display(dest.local_root)})")]
    return bad[:MAX_LISTED]


# Room our own objects need below a folder's destination: the version folder, the bundle
# folder (run id and task index) and a bundle's name, e.g.
# "Froster.versions/12/Froster.bundles/20261202-123329-f47cc4-123456/bundle-00001.tar".
OWN_KEY_ROOM = 96


def check_key_length(dest: Destination, sources: Sequence[bytes]) -> list[Check]:
    """No folder whose path alone leaves no room for its objects' S3 keys (1,024 bytes).

    Only for a plain S3 remote (no alias or crypt on the way, where the stored name is only
    known to rclone): the archive task checks every stored name itself in any case."""
    if dest.types != {"s3"} or dest.wrappers:
        return []
    bad = []
    for s in sources:
        text = folder_destination(dest.base, "", os.path.normpath(os.path.abspath(s)))
        path = text.split(":", 1)[1] if ":" in text else text
        in_bucket = path.strip("/").split("/", 1)[1] if "/" in path.strip("/") else ""
        need = len(in_bucket.encode("utf-8", "surrogateescape")) + 1 + OWN_KEY_ROOM
        if need > S3_MAX_KEY:
            bad.append(fail("folder", f"{display(s)}: its objects' S3 keys would be about "
                            f"{need:,} bytes long at {redact(dest.base)} (S3 keys are at most "
                            f"{S3_MAX_KEY:,} bytes): archive a parent folder, or use a "
                            "shorter remote_prefix"))
    return bad[:MAX_LISTED]


# --- this machine ----------------------------------------------------------------------

def check_state_dir(config: Config) -> Check:
    """Runs and logs go to state_dir: it must be (made and) writable."""
    from ..run.rundir import ensure_runs_dir

    path = config.path("state_dir")
    try:
        runs = ensure_runs_dir(config)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=runs)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return fail("state_dir", f"{path} is not writable ({e.strerror or e}): set another "
                    "with `froster-slurm config set state_dir DIR`", ConfigError)
    return ok("state_dir", f"{path} is writable")


def check_time_limit(config: Config, grace: int, limit_text: str, where: str) -> Check:
    """The requeue signal comes ``grace`` seconds before the time limit: it must leave time."""
    try:
        limit = parse_slurm_time(limit_text)
    except UserError as e:
        return fail("time limit", f"{where}: {e}", ConfigError)
    if limit is None:
        return ok("time limit", f"none ({limit_text or 'not set'}: {where}); nothing to fit "
                  f"requeue_grace {grace} s into")
    room = limit - SIGNAL_SLACK
    if grace < 0 or grace > room:
        most = max(0, room)
        return fail("time limit", f"archive.requeue_grace = {grace} s does not fit the archive "
                    f"time limit {limit_text} ({limit} s, {where}): tasks would be told to "
                    f"stop before they can work; set archive.requeue_grace to at most {most} "
                    "(Slurm may signal up to 60 s early) or raise slurm.archive.time",
                    ConfigError)
    return ok("time limit", f"{limit_text} ({where}); requeue_grace {grace} s leaves "
              f"{limit - grace} s of work per slot")


def archive_time_limit(config: Config, backend: Any) -> tuple[str, str]:
    """(the archive stage's time limit, where it comes from): the config, else the cluster."""
    own = str(config.slurm_options("archive").get("time") or "")
    if own:
        return own, "slurm.archive.time"
    lookup = getattr(backend, "default_time_limit", None)
    if lookup is None:
        return "", "local backend"
    partition = str(config.slurm_options("archive").get("partition") or "")
    return lookup(partition), f"the {partition or 'default'} partition's limit"


def check_grace(config: Config, backend: Any, grace: int | None = None) -> Check:
    grace = int(config.get("archive.requeue_grace") if grace is None else grace)
    limit, where = archive_time_limit(config, backend)
    return check_time_limit(config, grace, limit, where)


# --- what the commands call -------------------------------------------------------------

@dataclass
class Checked:
    """The outcome of the checks before a submission: the destination and every check."""

    destination: Destination
    checks: list[Check]

    @property
    def notes(self) -> list[str]:
        return self.destination.notes


def before_archive(config: Config, remote: str, sources: Sequence[bytes], *, backend: Any,
                   storage_class: str | None = None, grace: int | None = None,
                   probe: Probe | None = None) -> Checked:
    """Everything `archive`, `submit`, `pick --submit` and `retry` need before any submission."""
    checks = [check_state_dir(config)]
    dest_checks, dest = check_destination(config, remote, storage_class, probe)
    checks += dest_checks
    checks += check_folders(sources)
    checks += check_not_purged(sources)
    if dest is not None:
        checks += check_overlap(dest, [s for s in sources if os.path.isdir(s)])
        checks += check_key_length(dest, sources)
    checks.append(check_grace(config, backend, grace))
    require(checks)
    assert dest is not None
    return Checked(dest, checks)


def before_restore(config: Config, remote: str, probe: Probe | None = None) -> list[Check]:
    """`restore`: state_dir is writable, the archive's remote is configured and answers."""
    probe = probe or Probe.from_config(config)
    checks = [check_state_dir(config)]
    name = split_name(remote)
    if name is not None and not name.startswith(":") and name not in probe.remotes():
        known = ", ".join(sorted(probe.remotes())) or "none"
        checks.append(fail("remote", f"the archive is in rclone remote {name!r}, which is not "
                           f"configured here (configured: {known}); configure it with "
                           "`rclone config` or set archive.rclone_config", ConfigError))
    elif name is not None:
        answers, why = probe.answers(_root_of(remote))
        checks.append(ok("remote", f"{redact(_root_of(remote))} answers") if answers else
                      fail("remote", f"{redact(_root_of(remote))} does not answer: {why}",
                           ConfigError))
    return require(checks)


def environment(config: Config, probe: Probe) -> list[Check]:
    """rclone and Slurm themselves (for `froster-slurm check`)."""
    from ..scheduler.slurm import SlurmClient

    out = []
    version, why = probe.version()
    exe = shutil.which(probe.exe) or probe.exe
    out.append(ok("rclone", f"{version} ({exe})") if version else
               fail("rclone", f"{probe.exe} cannot be run: {why}; install rclone or set "
                    "archive.rclone", ConfigError))
    backend = str(config.get("backend"))
    if not SlurmClient.available():
        if backend == "slurm":
            out.append(fail("slurm", "backend is slurm but sbatch is not on PATH"))
        else:
            out.append(ok("slurm", "sbatch not on PATH: jobs run with the local backend"))
        return out
    try:
        answer = SlurmClient().ping()
        out.append(ok("slurm", f"sbatch at {shutil.which('sbatch')}; {answer}"))
    except FrosterError as e:
        out.append(fail("slurm", f"the Slurm controller does not answer: {e}"))
    return out


def report(config: Config, remote: str, folders: Sequence[bytes], *,
           storage_class: str | None = None) -> list[Check]:
    """Every check, passed or not, in the order a person reads them (`froster-slurm check`)."""
    from .pipeline import make_backend

    probe = Probe.from_config(config)
    checks = environment(config, probe)
    state = check_state_dir(config)
    checks.append(state)
    dest_checks, dest = check_destination(config, remote, storage_class, probe)
    checks += dest_checks
    if folders:
        checks += check_folders(folders)
        checks += check_not_purged(folders)
        if dest is not None:
            checks += check_overlap(dest, [f for f in folders if os.path.isdir(f)])
    try:
        be = make_backend(config) if state.ok else None
    except FrosterError as e:
        checks.append(fail("backend", str(e)))
        be = None
    if be is not None:
        checks.append(check_grace(config, be))
    return checks


def archive_is_its_source(probe: Probe, destination: str, folder: bytes) -> str | None:
    """Why purge must not trust this archive: its data lies in (or is) the folder itself.

    Then the remote check compares the folder with itself and the purge would delete the
    only copy.  None when the destination is elsewhere (or not on this machine)."""
    if destination.startswith("/"):
        root: bytes | None = os.fsencode(os.path.normpath(destination))
    else:
        features, _ = probe.features(destination)
        root = None
        if features and (features.get("Features") or {}).get("IsLocal") and \
                features.get("Root"):
            root = os.fsencode(os.path.normpath(str(features["Root"])))
    if root is None:
        return None
    how = relation(root, folder)
    return overlap_message(root, folder, how) if how else None

