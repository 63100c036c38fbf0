"""A batch's folders share their rclone calls: one listing and one copy for many folders.

Why: a tiny folder's own work takes milliseconds, but its archive asks rclone six times (the
version probe, the precheck, the upload, the verify, the trace's upload and its verify), and
each rclone start-up costs more than the folder itself (issue 16: 1 folder/s).  Inside a batch
(``run.batches``) every folder still runs its own steps, markers, state, record and failures
(``archive.steps``); only the calls to rclone are pooled.

How, without threads: each folder's steps run in *rounds*.  A folder's rclone
(``SharedRclone``) keeps a journal of the calls of its current step and their answers.  When
the step asks for a call the journal does not hold yet, the request is handed to the batch's
``CallPool`` and the step is left by ``Deferred``; when every folder of the round has stopped
so, the pool runs the requests of all of them as one rclone call per kind (``flush``), files
the answers into each journal, and the next round runs each step again from its start, the
journal answering the calls already made.  A step redoes only local work (tiny here) and the
sequence of calls each folder sees is exactly the one it would see alone: the replay is
deterministic, and a journal entry whose request no longer matches (the folder changed under
us) is dropped and asked again.  A step that keeps asking new calls for more than
``MAX_ROUNDS`` rounds runs on alone (``passthrough``), so no folder can stall the batch.

What is pooled, and how it stays exact:

* a listing (``lsf -R --files-from-raw``) of several destinations is one listing under their
  common parent, each name prefixed with its destination's path below it; the answer is split
  back by prefix, each line going only to a request that asked for that name.  rclone lists
  only the directories on the way to the listed names (checked against S3 with ``--dump
  headers``), not the whole parent;
* a copy of our own staged files (bundles, trace files: under the run directory) is one copy
  from a staging tree of hard links that mirrors the destinations below their common parent.
  A request whose path rclone would spell differently (``names.rclone_local``), whose files
  cannot be linked, or whose files are large runs as its own call (journaled all the same), and
  so does every copy of the folder's own files, which are never linked;
* when a pooled call fails, every request in it runs again alone, so each folder gets the
  error of its own objects and fails or retries alone.

Batches whose remote is encrypted do not pool (``cryptcheck`` and ``settier`` run beside the
listings), see ``jobs.archive_stage``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..remotes.rclone import Rclone, Result
from ..util.atomic import write_scratch
from ..util.paths import discard_tree
from .names import rclone_local

MAX_ROUNDS = 12  # new calls one step may ask for, round after round, before it runs alone
POOL_BYTES = 64 << 20  # a request's staged files above this size are copied by their own call


class Deferred(BaseException):  # noqa: N818 - control flow, like Stopped: nothing may swallow it
    """The step asked for an rclone call the batch will make with its other folders' calls;
    the step is left and runs again in the next round."""


@dataclass
class _Request:
    """One call asked by one folder's step: what to run alone, and how to pool it."""

    kind: str  # "lsf" or "copy"
    key: tuple[Any, ...]
    member: SharedRclone
    dst: str  # the destination folder as rclone text
    alone: Callable[[], tuple[Result, bytes]]
    names: list[bytes] = field(default_factory=list)  # lsf: the names asked; copy: the files
    src: Path | None = None  # copy: the staged folder the files are in
    group: tuple[Any, ...] = ()


def split_remote_path(dst: str) -> tuple[str, list[str], bool]:
    """``name:a/b/`` -> ("name:", ["a", "b"], False); ``/x/y`` -> ("", ["x", "y"], True)."""
    head = ""
    colon = dst.find(":")
    if colon > 0 and "/" not in dst[:colon]:
        head, dst = dst[:colon + 1], dst[colon + 1:]
    absolute = dst.startswith("/")
    return head, [c for c in dst.split("/") if c], absolute


def common_root(dsts: Sequence[str]) -> tuple[str, list[str]] | None:
    """The deepest folder holding every destination, and each destination's path below it
    (None when they have no common folder below a remote's root: never list a whole bucket).
    """
    parts = [split_remote_path(d) for d in dsts]
    if len({(h, a) for h, _, a in parts}) != 1:
        return None
    head, _, absolute = parts[0]
    first = parts[0][1]
    n = len(first)
    for _, comps, _ in parts[1:]:
        n = min(n, len(comps))
        for k in range(n):
            if comps[k] != first[k]:
                n = k
                break
    if n == 0:
        return None
    root = head + ("/" if absolute else "") + "/".join(first[:n]) + "/"
    return root, ["/".join(comps[n:]) for _, comps, _ in parts]


class CallPool:
    """The rclone calls a batch's folders asked in one round, run together by ``flush``."""

    def __init__(self, rclone: Rclone, work: Path):
        self.rclone = rclone  # logs into the batch's own log folder
        self.work = work
        self.pending: list[_Request] = []
        self.calls = 0  # rclone processes started by flush (for the batch's log)
        self.asked = 0  # requests answered by flush
        self._dump: tuple[Result, bytes] | None = None

    def ask(self, request: _Request) -> None:
        self.pending.append(request)

    def config_dump(self, run: Callable[[], tuple[Result, bytes]]) -> tuple[Result, bytes]:
        """``rclone config dump``, asked once per batch (it is the same for every folder)."""
        if self._dump is None or self._dump[0].returncode != 0:
            self._dump = run()
        return self._dump

    def flush(self) -> None:
        """Run every pending request: pooled where they share a call, alone otherwise."""
        pending, self.pending = self.pending, []
        self.asked += len(pending)
        groups: dict[tuple[Any, ...], list[_Request]] = {}
        for r in pending:
            groups.setdefault((r.kind, *r.group), []).append(r)
        for (kind, *_), reqs in groups.items():
            if len(reqs) > 1 and kind == "lsf" and self._pooled_lsf(reqs):
                continue
            if len(reqs) > 1 and kind == "copy" and self._pooled_copy(reqs):
                continue
            for r in reqs:
                self._alone(r)

    def _alone(self, r: _Request) -> None:
        self.calls += 1
        r.member.answer(r.key, r.alone())

    def _pooled_lsf(self, reqs: list[_Request]) -> bool:
        found = common_root([r.dst for r in reqs])
        if found is None:
            return False
        root, rels = found
        self.work.mkdir(parents=True, exist_ok=True)
        lst, out = self.work / "pooled.lst", self.work / "pooled.lsf"
        prefixes: dict[bytes, list[tuple[_Request, set[bytes]]]] = {}
        lines: set[bytes] = set()
        for r, rel in zip(reqs, rels, strict=True):
            pre = os.fsencode(rel) + b"/" if rel else b""
            prefixes.setdefault(pre, []).append((r, set(r.names)))
            lines.update(pre + n for n in r.names)
        write_scratch(lst, b"".join(n + b"\n" for n in sorted(lines)))
        res = self.rclone.lsf(root, lst, out, "pooled-lsf", hashes=bool(reqs[0].group[-1]))
        self.calls += 1
        if res.returncode not in (0, 3):
            return False  # each alone: every folder gets its own error
        answers: dict[int, list[bytes]] = {id(r): [] for r in reqs}
        if res.returncode == 0:
            for raw in out.read_bytes().split(b"\n"):
                size, sep1, rest = raw.partition(b"|")
                md5, sep2, name = rest.partition(b"|")
                if not (sep1 and sep2):
                    continue
                for pre, cut in _prefixes_of(name):
                    for r, asked in prefixes.get(pre, ()):
                        if cut in asked:
                            answers[id(r)].append(size + b"|" + md5 + b"|" + cut)
        for r in reqs:
            body = b"".join(x + b"\n" for x in answers[id(r)])
            r.member.answer(r.key, (Result(res.returncode, list(res.tail)), body))
        return True

    def _pooled_copy(self, reqs: list[_Request]) -> bool:
        found = common_root([r.dst for r in reqs])
        if found is None:
            return False
        root, rels = found
        stage = self.work / "stage"
        discard_tree(stage)
        together: list[tuple[_Request, bytes]] = []
        try:
            for r, rel in zip(reqs, rels, strict=True):
                pre = os.fsencode(rel)
                if not _linkable(r, pre, stage):
                    self._alone(r)
                    continue
                together.append((r, pre))
            if len(together) < 2:
                for r, _ in together:
                    self._alone(r)
                return True
            lst = self.work / "pooled-copy.lst"
            write_scratch(lst, b"".join(pre + b"/" + n + b"\n" for r, pre in together
                                       for n in r.names))
            storage_class, extra = together[0][0].group[1], list(together[0][0].group[2])
            res = self.rclone.copy(stage, root, files_from=lst, storage_class=storage_class,
                                   log_name="pooled-copy", extra=extra)
            self.calls += 1
            for r, _ in together:
                if res.returncode == 0:
                    r.member.answer(r.key, (Result(0, list(res.tail)), b""))
                else:
                    self._alone(r)  # each alone: every folder gets its own error
            return True
        finally:
            discard_tree(stage)


def _prefixes_of(name: bytes) -> list[tuple[bytes, bytes]]:
    """Every (prefix ending in '/', the rest) split of ``name``, and (b"", name)."""
    out = [(b"", name)]
    at = name.find(b"/")
    while at >= 0:
        out.append((name[:at + 1], name[at + 1:]))
        at = name.find(b"/", at + 1)
    return out


def _linkable(r: _Request, pre: bytes, stage: Path) -> bool:
    """Hard-link the request's files into ``stage/pre`` (False: it must run alone)."""
    if r.src is None or not pre:
        return False
    if rclone_local(pre) != pre or any(c in (b".", b"..") for c in pre.split(b"/")):
        return False
    target = os.path.join(os.fsencode(stage), pre)
    try:
        for n in r.names:
            if rclone_local(n) != n or b"/" in n or n in (b".", b".."):
                return False
            os.makedirs(target, mode=0o700, exist_ok=True)
            os.link(os.path.join(os.fsencode(r.src), n), os.path.join(target, n))
    except OSError:
        return False
    return True


def _file_key(src: Path, names: list[bytes]) -> tuple[tuple[bytes, str], ...] | None:
    """(name, md5) of each staged file, or None when they are too big to pool."""
    total = 0
    out = []
    for n in names:
        path = os.path.join(os.fsencode(src), n)
        try:
            st = os.stat(path)
            total += st.st_size
            if total > POOL_BYTES:
                return None
            with open(path, "rb") as f:
                out.append((n, hashlib.md5(f.read(), usedforsecurity=False).hexdigest()))
        except OSError:
            return None
    return tuple(out)


class SharedRclone(Rclone):
    """One folder's rclone inside a batch: its listings and copies go through the pool.

    ``own_root``: the run directory; only files below it (staged by us) are ever pooled.
    """

    def __init__(self, pool: CallPool, own_root: Path, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pool = pool
        self.own_root = os.path.realpath(own_root)
        self.passthrough = False
        self._step = ""
        self._journal: list[tuple[tuple[Any, ...], tuple[Result, bytes]]] = []
        self._pos = 0
        self._rounds = 0

    # --- the journal ------------------------------------------------------------------------

    def begin_step(self, step: str) -> None:
        if step != self._step:
            self._step, self._journal, self._rounds = step, [], 0
            self.passthrough = False
        self._pos = 0

    def answer(self, key: tuple[Any, ...], result: tuple[Result, bytes]) -> None:
        """The pool's answer to this folder's request ``key`` (next in its journal)."""
        self._journal.append((key, result))

    def _call(self, request: _Request) -> tuple[Result, bytes]:
        if self._pos < len(self._journal):
            key, result = self._journal[self._pos]
            if key == request.key:
                self._pos += 1
                return result
            del self._journal[self._pos:]  # the step asks otherwise now: ask again
        if self.passthrough or not request.group:
            result = request.alone()
        else:
            self._rounds += 1
            if self._rounds > MAX_ROUNDS:
                self.passthrough = True
                result = request.alone()
            else:
                self.pool.ask(request)
                raise Deferred(request.kind)
        self._journal.append((request.key, result))
        self._pos += 1
        return result

    # --- the calls ----------------------------------------------------------------------------

    def lsf(self, folder: str, names_file: Path, out: Path, log_name: str,
            hashes: bool = True) -> Result:
        names = [n for n in names_file.read_bytes().split(b"\n") if n]

        def alone() -> tuple[Result, bytes]:
            res = Rclone.lsf(self, folder, names_file, out, log_name, hashes)
            return res, out.read_bytes() if out.exists() else b""

        key = ("lsf", folder, hashes, tuple(names))
        res, body = self._call(_Request("lsf", key, self, folder, alone, names,
                                        group=(split_remote_path(folder)[0], hashes)))
        out.write_bytes(body)
        return res

    def copy(self, src: bytes | str | Path, dst: str | Path, *, files_from: Path | None,
             storage_class: str | None, log_name: str,
             progress: Callable[[int, int], None] | None = None,
             extra: Sequence[str] = ()) -> Result:
        def alone() -> tuple[Result, bytes]:
            return Rclone.copy(self, src, dst, files_from=files_from,
                               storage_class=storage_class, log_name=log_name,
                               progress=progress, extra=extra), b""

        names = ([n for n in files_from.read_bytes().split(b"\n") if n]
                 if files_from is not None else [])
        ours = (isinstance(src, Path) and isinstance(dst, str) and files_from is not None
                and os.path.realpath(src).startswith(self.own_root + os.sep))
        files = _file_key(src, names) if ours and isinstance(src, Path) else None
        key = ("copy", os.fsencode(src), os.fsencode(dst), storage_class, tuple(extra),
               files if files is not None else tuple(names))
        group: tuple[Any, ...] = ()
        if files is not None and isinstance(dst, str):
            group = (split_remote_path(dst)[0], storage_class, tuple(extra))
        request = _Request("copy", key, self, str(dst), alone, names,
                           src=src if isinstance(src, Path) else None, group=group)
        return self._call(request)[0]

    def capture(self, args: Sequence[str | bytes], log_name: str | None = None,
                timeout: float | None = 600) -> tuple[Result, bytes]:
        if list(args) == ["config", "dump"]:
            return self.pool.config_dump(lambda: Rclone.capture(self, args, log_name,
                                                                timeout))
        return Rclone.capture(self, args, log_name, timeout)
