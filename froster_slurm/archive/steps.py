"""The step runner of one archive task: inventory -> bundle -> hash -> upload -> verify -> record.

Each step leaves a marker in ``tasks/<index>/steps/`` after its outputs are safely written, so a
task killed at any moment resumes at the first step without a marker: a requeued task never
re-does finished work and never re-uploads data that was verified.  Even inside an unfinished
upload, objects already on the remote with the right md5 are skipped (a check of the remote's
hashes, not a re-read of the local files).

The folder is compared with the inventory before the upload, after it, and before the trace is
written.  If it changed, every marker is cleared and the task starts over from the inventory
(keeping the hashes of unchanged files), at most ``MAX_SOURCE_RESTARTS`` times; a manifest
that no longer describes the folder is never written.

This module only raises: ``SourceChanged``/``TransientError`` (worth a retry) or
``PermanentError`` (not); a stop signal arrives as the job runtime's ``Stopped`` through any of
its steps.  Counting attempts, delays and exit codes is ``froster_slurm.jobs.archive_stage``'s
job, with ``froster_slurm.jobs.runtime``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import PermanentError, TransientError
from ..folder import layout
from ..folder.indexpage import index_html, trace_class
from ..folder.manifest import md5_hex
from ..folder.schema import ArchiveRecord, loads
from ..remotes.rclone import Rclone, classify
from ..remotes.resolve import S3_MAX_KEY, RemoteInfo, config_dump, resolve_with
from ..remotes.storage_classes import THAW_CLASSES
from ..remotes.thaw import stored_names
from ..run.rundir import Run
from ..run.taskstate import (
    clear_steps,
    mark_step_done,
    read_marker,
    read_markers,
    step_done,
    write_task_state,
)
from ..scheduler.injob import set_status
from ..status.progress import RateMeter, format_eta, format_rate
from ..util.atomic import write_atomic, write_scratch
from ..util.clock import now_iso
from ..util.identity import hostname, whoami
from ..util.paths import discard_tree, display
from ..util.units import format_size
from . import chunks, cryptproof, names, versions
from .bundle import BundleResult, Plan, build_all, make_plan, must_bundle
from .chunks import ChunkPlan
from .cryptproof import set_tier
from .hashing import HashStore, md5_file, run_bounded
from .inventory import FILE, Inventory, SourceChanged, require_unchanged, take_inventory
from .settings import ArchiveSettings, rclone_of
from .trace import build_record, manifest_bytes
from .verify import Expect, Report, check_remote, listing

NAME_MAX = 255  # bytes in one path segment on Linux file systems (and most sftp servers)
STEPS = ("inventory", "bundle", "hash", "upload", "verify", "record")
MAX_SOURCE_RESTARTS = 3
MAX_VERIFY_FAILURES = 2
STATUS_EVERY = 15.0  # seconds between progress updates of the Comment / state file


def log(message: str) -> None:
    """Timestamped progress lines for the job's output file."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} archive: {message}", file=sys.stderr,
          flush=True)


class ArchiveTask:
    """Archive one folder; ``state`` is the task's state.json dict, kept up to date here."""

    def __init__(self, settings: ArchiveSettings, index: int, folder: bytes,
                 state: dict[str, Any], *, rclone: Rclone | None = None,
                 comment: bool = True):
        self.s = settings
        self.index = index
        self.folder = os.path.normpath(folder)
        self.state = state
        self.paths = Run(settings.run_dir).task(index)
        self.tdir = self.paths.dir
        self.work = self.paths.work
        # Version 1 of the folder's archive lives here, later versions below it (versions.py);
        # which one this task writes is decided by the inventory step and kept in version.json.
        self.base_dest = names.destination(settings.remote, settings.prefix, self.folder)
        self._choice: versions.Choice | None = None
        # One bundle folder per archive (run + task): a later re-archive of the same folder
        # never mixes its bundles with older ones, so "unpack every bundle" stays exact.
        run_tag = re.sub(r"[^A-Za-z0-9._-]", "_", settings.run_id)
        self.bundle_dir = layout.bundle_dir(run_tag, index)
        # A batch hands in its shared rclone (``shared.SharedRclone``) and keeps the job's
        # Comment to itself (``comment=False``: only the folder's own status file is written).
        self.rclone = rclone or rclone_of(settings, self.paths.logs)
        self.comment = comment
        self._restarts = 0
        self._saved = ""  # the state as this task last wrote it (``save``)
        self._last_text = ""
        self._logged_step = ""
        self._last_status = 0.0
        self._lock = threading.Lock()
        self._progress_bytes = 0
        self._meter_step = ""
        self._meter = RateMeter()
        self.inv: Inventory | None = None
        self.plan: Plan | None = None
        self._remote: RemoteInfo | None = None

    @property
    def choice(self) -> versions.Choice:
        if self._choice is None:
            self._choice = versions.Choice.from_json(
                json.loads((self.work / "version.json").read_bytes()))
        return self._choice

    @property
    def dest(self) -> str:
        return self.choice.destination

    @property
    def dest_shown(self) -> str:
        return names.redact(self.dest)

    @property
    def remote(self) -> RemoteInfo:
        """What the destination really is (resolved through its wrappers, once per task)."""
        if self._remote is None:
            self._remote = resolve_with(self.rclone, self.base_dest)
        return self._remote

    @property
    def tier_later(self) -> bool:
        """Crypt over S3 with a class that must be thawed: upload STANDARD, prove the content
        with cryptcheck, then change the tier (``cryptproof``)."""
        return (self.remote.encrypted and needs_thaw(self.s.storage_class)
                and self.remote.needs_thaw(True, self.s.no_thaw))

    def upload_class(self) -> str:
        return "STANDARD" if self.tier_later else self.s.storage_class

    def prove(self, expected: dict[str, Expect], dst: str, log_name: str,
              sources: dict[str, bytes | str | Path] | None = None,
              sizes_only: bool = False) -> Report:
        """The one proof (size + md5 from the listing; crypt: sizes + cryptcheck)."""
        if sources is None:
            sources = {"": self.folder, self.bundle_dir: self.work / "bundles"}
        return cryptproof.prove(self.rclone, self.remote, expected, dst, self.work, log_name,
                                sources, sizes_only)

    # --- state and status ------------------------------------------------------------------

    def save(self, **changes: Any) -> None:
        """Write the state (durably) if it changed since this task last wrote it: a batch's
        folders run their steps again in every round (``archive.shared``)."""
        self.state.update(changes)
        seen = json.dumps({k: v for k, v in self.state.items() if k != "updated_at"},
                          sort_keys=True, default=str)
        if seen == self._saved:
            return
        write_task_state(self.s.run_dir, self.index, self.state)
        self._saved = seen

    def status(self, text: str, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_EVERY:
            return
        if text == self._last_text and now - self._last_status < STATUS_EVERY:
            return
        self._last_status, self._last_text = now, text
        set_status(text, self.paths.status_path, comment=self.comment)

    def step_text(self, step: str, done: int | None = None, total: int | None = None) -> str:
        """The Comment: which of the six steps, and within it the bytes, rate and ETA
        ("archive step 4/6 upload 41% 1.2 GiB/2.9 GiB 85.0 MiB/s ETA 12m05s")."""
        n = STEPS.index(step) + 1
        text = f"archive step {n}/{len(STEPS)} {step}"
        if self._meter_step != step:
            self._meter_step, self._meter = step, RateMeter(window=120.0)
        if total:
            self._meter.add(done or 0)
            pct = min(100, int(100 * (done or 0) / total))
            text += f" {pct}% {format_size(done or 0)}/{format_size(total)}"
            rate = self._meter.rate()
            if rate is not None:
                text += f" {format_rate(rate)} ETA {format_eta(self._meter.eta(total))}"
        return text

    def _add_progress(self, n: int) -> None:
        with self._lock:
            self._progress_bytes += n

    # --- the runner ---------------------------------------------------------------------------

    def run(self) -> None:
        """Run the steps that have no marker; start over if the folder changed under us.

        The whole run holds the folder's lock (``folder_lock``): a second archive of the same
        folder, or a purge or restore of it, cannot run at the same time.
        """
        with folder_lock(self.folder):
            self.run_locked()

    def run_locked(self) -> None:
        """``run`` for a caller that holds the folder's lock already (a batch holds the locks
        of all its folders while their steps run in rounds: ``archive.shared``).  The
        restarts are counted across those rounds: a folder that keeps changing gives up as
        soon as it would alone."""
        while True:
            try:
                self._run_steps()
                return
            except SourceChanged as e:
                self.state["source_changes"] = int(self.state.get("source_changes") or 0) + 1
                log(f"{e}; starting over from the inventory")
                self._forget_work()
                self._restarts += 1
                if self._restarts > MAX_SOURCE_RESTARTS:
                    raise TransientError(f"the folder keeps changing while it is archived "
                                         f"({e})") from e

    def _forget_work(self) -> None:
        """Clear markers and staged files; keep hash results (stamped) and logs."""
        clear_steps(self.s.run_dir, self.index, (*STEPS, "record-meta", "crypt-proven"))
        self.state["steps_done"] = []
        for name in ("bundles", "trace"):
            discard_tree(self.work / name)
        for name in ("inventory.json", "plan.json", "bundles.json", "hashes.json",
                     "prior.json", "unchanged.json"):
            (self.work / name).unlink(missing_ok=True)
        self.inv = self.plan = None
        self.save()

    def _run_steps(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("inventory", self.step_inventory), ("bundle", self.step_bundle),
            ("hash", self.step_hash), ("upload", self.step_upload),
            ("verify", self.step_verify), ("record", self.step_record)]
        done = [s for s in STEPS if s in read_markers(self.s.run_dir, self.index)]
        for name, fn in steps:
            if name in done:
                continue
            self.rclone.begin_step(name)
            if self._logged_step != name:  # once per step, not once per round of a batch
                self._logged_step = name
                log(f"step {name} ({display(self.folder)})")
            self.save(step=name)
            self.status(self.step_text(name))
            summary = fn()
            mark_step_done(self.s.run_dir, self.index, name, summary)
            done.append(name)
            # written with the next step's start (or the task's outcome): one write fewer
            self.state["steps_done"] = [s for s in STEPS if s in done]
            log(f"step {name} done: {json.dumps(summary, ensure_ascii=True)}")

    # --- loading what earlier steps produced -----------------------------------------------------

    def inventory(self) -> Inventory:
        if self.inv is None:
            self.inv = Inventory.load(self.work / "inventory.json")
        return self.inv

    def the_plan(self) -> Plan:
        if self.plan is None:
            self.plan = Plan.from_json(json.loads((self.work / "plan.json").read_bytes()))
        return self.plan

    def bundles(self) -> list[BundleResult]:
        data = json.loads((self.work / "bundles.json").read_bytes())
        return [BundleResult.from_json(d) for d in data]

    def object_md5s(self) -> dict[int, str]:
        data = json.loads((self.work / "hashes.json").read_bytes())
        return {int(k): v for k, v in data.items()}

    def all_md5s(self) -> dict[int, str]:
        out = self.object_md5s()
        for b in self.bundles():
            out.update(b.member_md5)
        return out

    def expected_objects(self) -> dict[str, Expect]:
        """Every data object the destination must hold: name relative to it -> md5, size."""
        inv, plan = self.inventory(), self.the_plan()
        md5s = self.object_md5s()
        out = {os.fsdecode(inv.entries[i].rel): Expect(md5s[i], inv.entries[i].size)
               for i in plan.objects}
        for b in self.bundles():
            out[f"{self.bundle_dir}/{b.name}"] = Expect(b.md5, b.size)
        return out

    # --- steps ---------------------------------------------------------------------------------

    def step_inventory(self) -> dict[str, Any]:
        inv = take_inventory(self.folder, self.s.recursive)
        prior = versions.read_prior(self.folder)
        if prior is not None:
            versions.refuse_lesser(self.folder, prior, inv)
            write_atomic(self.work / "prior.json", prior.dump())
        self._choose_version(prior)
        self._refuse_too_large(inv)
        plan = make_plan(inv, self.s.bundle_threshold, self.s.bundle_size,
                         self._too_long(inv))
        inv.save(self.work / "inventory.json")
        write_atomic(self.work / "plan.json", json.dumps(plan.to_json()).encode())
        self.inv, self.plan = inv, plan
        files = inv.files
        summary = {"files": len(files), "bytes": inv.total_bytes, "entries": len(inv.entries),
                   "objects": len(plan.objects), "bundles": len(plan.bundles),
                   "skipped": len(inv.skipped)}
        self.save(files=len(files), bytes_total=inv.total_bytes, bytes_done=0,
                  objects=len(plan.objects) + len(plan.bundles), destination=self.dest_shown,
                  version=self.choice.version)
        summary["version"] = self.choice.version
        return summary

    def _refuse_too_large(self, inv: Inventory) -> None:
        """Before days of upload: a file over the backend's object limit (S3: 5 TiB)."""
        limit = self.remote.max_object
        if limit is None:
            return
        big = [e for e in inv.entries if e.kind == FILE and e.size > limit]
        if big:
            e = max(big, key=lambda x: x.size)
            raise PermanentError(f"{len(big)} file(s) are larger than the remote's object "
                                 f"limit of {format_size(limit)} (S3), e.g. "
                                 f"{display(e.rel)} ({format_size(e.size)}): split them, or "
                                 "archive this folder to a remote without that limit")

    def chunk_plan(self, sizes: list[int]) -> ChunkPlan | None:
        """Part size, concurrency and transfers for an S3 upload (``chunks``); None for
        remotes without multipart uploads."""
        if not self.remote.has_storage_classes or not sizes:
            return None
        return chunks.plan(max(sizes), self.s.storage_class, self.s.transfers,
                           chunks.memory_budget(self.s.upload_memory),
                           max_object=self.remote.max_object)

    def _too_long(self, inv: Inventory) -> set[bytes]:
        """Files whose name as the backend stores it would be too long: an S3 key over 1,024
        bytes, a path segment over 255 bytes on a file system (local, sftp).  Counted on the
        stored form: under crypt the encrypted name (``rclone backend encode``).

        First the folder's own place: the record and a bundle must be stored whatever the
        files are called, so a destination whose prefix alone leaves no room for them fails
        the task at once, naming the limit (a retry cannot shorten a path)."""
        if self.remote.hash_passthrough and not self.remote.has_storage_classes:
            return set()  # plain names on a file system: the source's own limits hold
        ours_rels = [os.fsdecode(layout.RECORD_NAME), f"{self.bundle_dir}/bundle-00001.tar"]
        over = self._stored_too_long(ours_rels)
        if over:
            rel, what = next(iter(over.items()))
            raise PermanentError(
                f"{display(self.folder)} cannot be archived at {names.redact(self.dest)}: "
                f"its own objects ({rel}) would need {what}; archive it to a remote with a "
                "shorter path (archive.remote_prefix) or archive a parent folder")
        rels = [os.fsdecode(e.rel) for e in inv.entries
                if e.kind == FILE and not must_bundle(e, self.s.bundle_threshold)]
        out = {os.fsencode(rel) for rel in self._stored_too_long(rels)}
        if out:
            log(f"{len(out)} file(s) whose stored name would be too long for the remote "
                "travel inside a bundle")
        return out

    def _stored_too_long(self, rels: list[str]) -> dict[str, str]:
        """{our name: what it would need} for the names in ``rels`` too long as stored."""
        if not rels:
            return {}
        out: dict[str, str] = {}
        for kind, root, keys in stored_names(self.rclone, config_dump(self.rclone), self.dest,
                                             rels):
            path = root.split(":", 1)[1].strip("/") if kind != "local" else ""
            prefix = path.split("/", 1)[1] + "/" if "/" in path else ""  # after the bucket
            for key, rel in keys.items():
                raw = key.encode("utf-8", "surrogateescape")
                if kind == "s3":
                    size = len(os.fsencode(prefix)) + len(raw)
                    if size > S3_MAX_KEY:
                        out[rel] = (f"an S3 key of {size:,} bytes (S3 keys are at most "
                                    f"{S3_MAX_KEY:,} bytes)")
                else:
                    longest = max(len(seg) for seg in raw.split(b"/"))
                    if longest > NAME_MAX:
                        out[rel] = (f"a name of {longest:,} bytes on {kind} (at most "
                                    f"{NAME_MAX} bytes per name)")
        return out

    def _choose_version(self, prior: ArchiveRecord | None) -> None:
        """Pick (once per task) the version to write: after the folder's latest, skipping any
        slot whose destination already holds a record on the remote."""
        path = self.work / "version.json"
        if path.exists():
            return
        choice = versions.first_choice(self.base_dest, prior)
        for _ in range(1000):
            there = listing(self.rclone, choice.destination, [layout.RECORD_NAME.decode()],
                            self.work, "version-probe", hashes=False)
            if not there or layout.RECORD_NAME.decode() not in there:
                break
            log(f"{names.redact(choice.destination)} already holds an archive record: "
                "not overwriting it, trying the next version")
            choice = versions.next_slot(self.base_dest, choice)
        write_atomic(path, json.dumps(choice.to_json()).encode())
        self._choice = choice

    def prior(self) -> ArchiveRecord | None:
        path = self.work / "prior.json"
        return loads(path.read_bytes()) if path.exists() else None

    def unchanged(self) -> dict[str, Any] | None:
        path = self.work / "unchanged.json"
        return json.loads(path.read_bytes()) if path.exists() else None

    def _check_unchanged(self) -> dict[str, Any] | None:
        """The folder's latest version when the folder still holds exactly what it archived
        and its objects still verify at the same destination: nothing new to upload."""
        prior = self.prior()
        if prior is None:
            return None
        vp = prior.version
        dest = layout.version_destination(self.base_dest, vp)
        if names.redact(dest) != prior.destination:
            return None  # archived to another remote or prefix then: this is a new copy
        if versions.content_key(self.inventory(), self.all_md5s()) != \
                versions.record_key(prior):
            return None
        report = check_remote(self.rclone, versions.data_objects(prior), dest, self.work,
                              "unchanged-check")
        if not report.ok:
            log(f"version {vp} no longer verifies on the remote ({report.summary()}): "
                f"writing version {self.choice.version}")
            return None
        out = {"version": vp, "destination": names.redact(dest)}
        write_atomic(self.work / "unchanged.json", json.dumps(out).encode())
        return out

    def _bytes_of(self, idxs: list[int]) -> int:
        inv = self.inventory()
        seen: set[tuple[int, int]] = set()
        total = 0
        for i in idxs:
            e = inv.entries[i]
            if e.kind == FILE and (e.dev, e.ino) not in seen:
                seen.add((e.dev, e.ino))
                total += e.size
        return total

    def step_bundle(self) -> dict[str, Any]:
        inv, plan = self.inventory(), self.the_plan()
        total = self._bytes_of([i for b in plan.bundles for i in b])
        self._progress_bytes = 0

        def tick() -> None:
            self.status(self.step_text("bundle", self._progress_bytes, total), force=False)

        results = build_all(inv, plan, self.work / "bundles", self.s.workers(),
                            self._add_progress, tick)
        write_atomic(self.work / "bundles.json",
                      json.dumps([r.to_json() for r in results]).encode())
        return {"bundles": len(results), "bytes": sum(r.size for r in results),
                "members": sum(len(r.members) for r in results)}

    def step_hash(self) -> dict[str, Any]:
        inv, plan = self.inventory(), self.the_plan()
        store = HashStore(self.work / "hashes.jsonl")
        known = store.known(inv.entries[i] for i in plan.objects)
        md5s: dict[int, str] = {}
        first_of: dict[tuple[int, int], int] = {}
        todo: list[int] = []
        for i in plan.objects:
            e = inv.entries[i]
            if e.rel in known:
                md5s[i] = known[e.rel]
            elif (e.dev, e.ino) not in first_of or e.nlink == 1:
                first_of[(e.dev, e.ino)] = i
                todo.append(i)
        total = sum(inv.entries[i].size for i in todo)
        self._progress_bytes = 0
        pending: list[tuple[Any, str]] = []

        def one(i: int, cancel: threading.Event) -> str:
            return md5_file(inv.path_of(inv.entries[i]), inv.entries[i], cancel,
                            self._add_progress)

        stored = [len(known)]

        def flush() -> None:
            """Hashes are kept as they come: a stop (time limit) loses none of them."""
            if pending:
                store.add_many(pending)
                stored[0] += len(pending)
                pending.clear()
                self.state["hashes_stored"] = stored[0]

        def got(i: int, md5: str) -> None:
            md5s[i] = md5
            pending.append((inv.entries[i], md5))
            if len(pending) >= 64:
                flush()

        def tick() -> None:
            flush()
            self.status(self.step_text("hash", self._progress_bytes, total), force=False)

        try:
            run_bounded(todo, one, self.s.workers(), got, tick)
        finally:
            flush()
        for i in plan.objects:  # later names of a hard-linked inode share its md5
            if i not in md5s:
                e = inv.entries[i]
                md5s[i] = md5s[first_of[(e.dev, e.ino)]]
        write_atomic(self.work / "hashes.json",
                      json.dumps({str(k): v for k, v in md5s.items()}).encode())
        return {"hashed": len(todo), "reused": len(known), "bytes": total}

    def step_upload(self) -> dict[str, Any]:
        inv = self.inventory()
        require_unchanged(inv, "before the upload")
        same = self._check_unchanged()
        if same is not None:
            log(f"unchanged since version {same['version']} at {same['destination']}, whose "
                "objects verify: nothing uploaded, no new version")
            self.save(destination=same["destination"], version=same["version"],
                      unchanged_since=same["version"])
            return {"sent": 0, "unchanged_since": same["version"]}
        expected = self.expected_objects()
        sizes = {rel: e.size for rel, e in expected.items()}
        if self.tier_later and not cryptproof.can_set_tier(self.remote):
            providers = sorted({b.provider or "?" for b in self.remote.backends})
            raise PermanentError(
                f"{self.s.storage_class} under a crypt remote cannot be proven: cryptcheck "
                "must read each object before it goes cold, and rclone changes an object's "
                f"tier afterwards only with provider AWS (this remote: {', '.join(providers)})."
                " Archive in STANDARD (a bucket lifecycle rule can move it later), or list "
                "the remote in remotes.no_thaw if its cold class reads at once")
        present = self.prove(expected, self.dest, "precheck").matched
        objects = [rel for rel in expected if rel not in present
                   and not rel.startswith(self.bundle_dir + "/")]
        bundles = [rel for rel in expected if rel not in present
                   and rel.startswith(self.bundle_dir + "/")]
        base = sum(sizes[r] for r in present)
        total = sum(sizes.values())
        # What is on the remote now is what earlier time slots achieved (slot accounting in
        # froster_slurm.jobs.archive_stage: a slot after which this number, a step or a hash
        # count grew made progress).
        self.save(bytes_done=min(base, self.state.get("bytes_total") or 0),
                  objects_on_remote=len(present))
        if present:
            log(f"{len(present)} objects already on the remote with the right md5: not sent "
                "again")

        cplan = self.chunk_plan([sizes[r] for r in [*objects, *bundles]])
        extra = cplan.flags() if cplan else []
        if cplan:
            puts = sum(cplan.requests(sizes[r]) for r in [*objects, *bundles])
            log(f"S3 upload: {cplan.describe()}; {puts:,} PUT requests")

        def progress(done: int, _total: int) -> None:
            if time.monotonic() - self._last_status < STATUS_EVERY:
                return
            frac = min(1.0, (base + done) / total) if total else 1.0
            self.save(bytes_done=int(frac * (self.state.get("bytes_total") or 0)))
            self.status(self.step_text("upload", base + done, total))

        if objects:
            lst = self.work / "upload-objects.lst"
            write_scratch(lst, b"".join(os.fsencode(r) + b"\n" for r in sorted(objects)))
            res = self.rclone.copy(self.folder, self.dest, files_from=lst,
                                   storage_class=self.upload_class(), log_name="upload",
                                   progress=progress, extra=extra)
            if res.returncode != 0:
                raise classify(res, "copy")
            base += sum(sizes[r] for r in objects)
            self.save(objects_on_remote=len(present) + len(objects))
        if bundles:
            lst = self.work / "upload-bundles.lst"
            prefix = self.bundle_dir + "/"
            write_scratch(lst, b"".join(os.fsencode(r[len(prefix):]) + b"\n"
                                        for r in sorted(bundles)))
            res = self.rclone.copy(self.work / "bundles",
                                   names.join_remote(self.dest, self.bundle_dir),
                                   files_from=lst, storage_class=self.upload_class(),
                                   log_name="upload", progress=progress, extra=extra)
            if res.returncode != 0:
                raise classify(res, "copy")
        require_unchanged(inv, "during the upload")
        self.save(bytes_done=self.state.get("bytes_total") or 0)
        out = {"sent": len(objects) + len(bundles), "already_there": len(present),
               "bytes": total}
        if cplan:
            out.update(chunk=cplan.chunk, puts=puts, buffers=cplan.memory)
        return out

    def step_verify(self) -> dict[str, Any]:
        if self.unchanged() is not None:
            return {"verified": 0, "unchanged_since": self.unchanged()["version"]}
        expected = self.expected_objects()
        self.status(f"{self.step_text('verify')} {len(expected)} objects")
        proven = read_marker(self.s.run_dir, self.index, "crypt-proven")
        report = self.prove(expected, self.dest, "verify", sizes_only=bool(proven))
        if not report.ok:
            n = int(self.state.get("verify_failures") or 0) + 1
            self.state["verify_failures"] = n
            clear_steps(self.s.run_dir, self.index, ["upload", "crypt-proven"])
            self.save(steps_done=[s for s in STEPS
                                  if step_done(self.s.run_dir, self.index, s)])
            if n >= MAX_VERIFY_FAILURES:
                raise PermanentError(f"verification failed {n} times: {report.summary()}")
            raise TransientError(f"verification failed: {report.summary()}; the missing or "
                                 "different objects will be uploaded again")
        if self.tier_later:
            # proven by cryptcheck while still readable: now (and only now) make it cold
            mark_step_done(self.s.run_dir, self.index, "crypt-proven",
                           {"objects": len(report.matched)})
            self.status(f"{self.step_text('verify')} moving {len(expected)} objects to "
                        f"{self.s.storage_class}")
            set_tier(self.rclone, self.dest, sorted(expected), self.s.storage_class, self.work)
            log(f"proven by cryptcheck in STANDARD, then moved to {self.s.storage_class}")
        # Verified: the staged bundles are no longer needed (their checksums stay recorded).
        for p in (self.work / "bundles").glob("*.tar"):
            p.unlink(missing_ok=True)
        if self.remote.encrypted:
            # what cryptcheck proved, as the backend stores it: purge and restore compare it
            stored = cryptproof.stored_listing(self.rclone, self.dest, sorted(expected),
                                               self.work, "stored")
            write_atomic(self.work / "stored.json", json.dumps(
                {rel: list(v) for rel, v in stored.items()}).encode())
        return {"verified": len(report.matched)}

    def step_record(self) -> dict[str, Any]:
        inv, plan = self.inventory(), self.the_plan()
        require_unchanged(inv, "before the trace was written")
        same = self.unchanged()
        if same is not None:  # the folder's record already describes this archive
            fd = os.open(os.path.join(self.folder, layout.RECORD_NAME),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                raw = f.read()
            write_atomic(self.paths.record_path, raw)
            self.save(record_path=os.fsdecode(os.path.join(self.folder, layout.RECORD_NAME)))
            return {"unchanged_since": same["version"]}
        index_name = layout.index_name_for(self.folder)
        meta = {"run_id": self.s.run_id, "index": self.index, "destination": self.dest_shown,
                "version": self.choice.version, "previous": self.choice.previous,
                "storage_class": self.s.storage_class, "archived_at": now_iso(),
                "user": self.s.user or whoami(), "host": self.s.host or hostname(),
                "remote": self.remote.describe()}
        prior = read_marker(self.s.run_dir, self.index, "record-meta")
        if prior.get("archived_at"):  # a rerun of this step keeps the first timestamp
            meta["archived_at"] = prior["archived_at"]
        else:
            mark_step_done(self.s.run_dir, self.index, "record-meta", meta)
        md5s = self.all_md5s()
        manifest = manifest_bytes(inv, md5s)
        stored_path = self.work / "stored.json"
        if stored_path.exists():
            meta["stored"] = json.loads(stored_path.read_bytes())
        record = build_record(inv, plan, self.bundles(), md5s, meta=meta,
                              bundle_dir=self.bundle_dir,
                              manifest_md5=_md5(manifest),
                              manifest_lines=manifest.count(b"\n"), index_name=index_name)
        page = index_html(self.folder, record, self.s.templates_dir)
        files = {layout.RECORD_NAME: record.dump(), layout.MANIFEST_NAME: manifest,
                 index_name: page.encode("utf-8")}
        tdir = self.work / "trace"
        discard_tree(tdir)
        tdir.mkdir(parents=True)
        for name, data in files.items():
            write_scratch(tdir / os.fsdecode(name), data)
        # 1. beside the data, readable without a Glacier restore
        lst = self.work / "upload-trace.lst"
        write_scratch(lst, b"".join(n + b"\n" for n in sorted(files)))
        res = self.rclone.copy(tdir, self.dest, files_from=lst,
                               storage_class=trace_class(self.s.storage_class),
                               log_name="trace")
        if res.returncode != 0:
            raise classify(res, "copy of the trace")
        expected = {os.fsdecode(n): Expect(_md5(d), len(d)) for n, d in files.items()}
        report = self.prove(expected, self.dest, "verify-trace", sources={"": tdir})
        if not report.ok:
            raise TransientError(f"the trace files did not verify on the remote: "
                                 f"{report.summary()}")
        # 2. the run's copy (finalize puts it into the catalog), then in the folder: the record
        # first, so the other two are recognisably ours.  A folder the user may read but not
        # write is archived all the same: its trace stays in the remote, the run and the
        # catalog (README, "Limits"), and the task says so instead of failing after the upload.
        write_atomic(self.paths.record_path, files[layout.RECORD_NAME])
        try:
            self._place_trace(files, index_name)
        except _NotWritable as e:
            note = (f"trace not written into the folder ({e}); it is in the remote beside the "
                    "data and in the catalog")
            log(note)
            self.save(warning=note)
            in_folder = False
        else:
            self.save(record_path=os.fsdecode(os.path.join(self.folder, layout.RECORD_NAME)))
            in_folder = True
        return {"manifest_md5": _md5(manifest), "index": index_name.decode(),
                "files": record.files, "bytes": record.bytes,
                "trace_in_folder": in_folder}

    def _place_trace(self, files: dict[bytes, bytes], index_name: bytes) -> None:
        """Write the trace into the folder; refuse to overwrite anything that is not layout."""
        folder = self.folder
        record_path = os.path.join(folder, layout.RECORD_NAME)
        if os.path.lexists(record_path) and not layout.is_our_record(record_path):
            raise PermanentError(f"{display(record_path)} exists and was not written by "
                                 "froster-slurm; not overwriting it (rename it and retry)")
        manifest_path = os.path.join(folder, layout.MANIFEST_NAME)
        if os.path.lexists(manifest_path) and not os.path.lexists(record_path):
            raise PermanentError(f"{display(manifest_path)} exists and was not written by "
                                 "froster-slurm; not overwriting it (rename it and retry)")
        page_path = os.path.join(folder, index_name)
        if os.path.lexists(page_path) and not layout.is_our_page(page_path):
            raise PermanentError(f"{display(page_path)} exists and was not written by "
                                 "froster-slurm; not overwriting it (rename it and retry)")
        for k, name in enumerate((layout.RECORD_NAME, layout.MANIFEST_NAME, index_name)):
            _place(folder, name, files[name], first=k == 0)


@contextmanager
def folder_lock(folder: bytes) -> Iterator[None]:
    """An exclusive ``flock`` on the folder itself for as long as the task runs.

    purge and restore take the same lock, so one folder is never archived twice at once nor
    purged or restored while it is archived.  Busy means another run holds it: a transient
    failure, so the task is retried later (with the usual back-off) and then finds the
    folder archived and unchanged, uploading nothing.  A folder that cannot be opened is left
    to the inventory to report.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise TransientError(f"{display(folder)} is being archived, purged or restored by "
                                 "another job right now; retrying later") from e
        yield
    finally:
        os.close(fd)


class _NotWritable(Exception):
    """The folder refuses new files (read-only for this user, or a read-only mount)."""


def _place(folder: bytes, name: bytes, data: bytes, *, first: bool = False) -> None:
    """Create ``folder/name`` atomically via a fresh temporary file (never through a link)."""
    tmp = os.path.join(folder, layout.tmp_name())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
    except OSError as e:
        if first and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _NotWritable(e.strerror) from e
        raise PermanentError(f"cannot write the trace into {display(folder)}: "
                             f"{e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _md5(data: bytes) -> str:
    return md5_hex(data)


def needs_thaw(storage_class: str) -> bool:
    return storage_class in THAW_CLASSES
