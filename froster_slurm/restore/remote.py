"""What purge and restore ask of the remote: hashes, a thaw request, a download.

Built on the archive stage's rclone boundary (``froster_slurm.remotes.rclone``: clean
environment without ``AWS_CA_BUNDLE``, JSON logs with credentials redacted, failure classes)
and its remote check (``froster_slurm.archive.verify.check_remote``: the remote's own md5 of each
object, nothing downloaded, "hashes could not be checked" counted as a failure).

What the remote really is (S3 under an alias or a crypt?) comes from ``remotes.resolve``;
where a thaw request goes, from ``remotes.thaw``.  ``backend restore`` prints its answer on
standard output: ``Rclone.capture`` runs it with the same executable, config, flags and
environment and keeps stdout.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..archive.cryptproof import check_stored
from ..archive.settings import ArchiveSettings, check_flags, rclone_of
from ..archive.verify import Expect, Report, check_remote
from ..config import Config
from ..errors import PermanentError
from ..remotes.rclone import Rclone, Result, classify
from ..remotes.resolve import config_dump, resolve_with
from ..remotes.thaw import targets
from ..util.atomic import write_atomic
from .estimate import needs_thaw

_NOT_READY = re.compile(r"restore first|InvalidObjectState|object is archived", re.I)
_ALREADY = re.compile(r"RestoreAlreadyInProgress|already in progress", re.I)
_NOT_COLD = re.compile(r"Not GLACIER or DEEP_ARCHIVE", re.I)


class NotReady(Exception):  # noqa: N818 - an expected state, not a failure
    """Some objects are still thawing: check again later.  ``frozen``: the ones rclone named."""

    def __init__(self, message: str, frozen: list[str] | None = None):
        super().__init__(message)
        self.frozen = frozen or []


def rclone_from_config(config: Config, log_dir: Path | None) -> Rclone:
    """The rclone the archive stage would use, for commands run outside a run (the CLI)."""
    cfg = config.get("archive.rclone_config")
    return Rclone(config.get("archive.rclone"), os.path.expanduser(cfg) if cfg else "",
                  check_flags(list(config.get("archive.rclone_flags"))),
                  int(config.get("archive.transfers")), log_dir)


def rclone_from_settings(s: ArchiveSettings, log_dir: Path | None) -> Rclone:
    """The rclone frozen into a run's run.toml (what a job uses)."""
    return rclone_of(s, log_dir)


def needs_restore_request(rclone: Rclone, destination: str, storage_class: str,
                          no_thaw: list[str] | tuple[str, ...] = ()) -> bool:
    """Cold (Glacier/Deep Archive) data on an S3 backend must be thawed, whatever wraps it
    (alias, crypt, union: ``remotes.resolve``), unless config marks one of the remotes on the
    way as needing no thaw (``remotes.no_thaw``, e.g. Ceph RGW); every other remote reads at
    once."""
    if not needs_thaw(storage_class) or destination.startswith("/"):
        return False
    return resolve_with(rclone, destination).needs_thaw(True, no_thaw)


def check_objects(rclone: Rclone, expected: dict[str, Expect], destination: str, work: Path,
                  log_name: str, stored: dict[str, list] | None = None) -> Report:
    """The remote's size and md5 of each expected object against ours (``archive.verify``,
    the same proof the archive's verify step made).  Under crypt the remote has no md5 of
    our data: the ciphertext's size and md5 on the backend are compared with what the record
    kept when cryptcheck proved them (``stored``), else only sizes (archives from before)."""
    info = resolve_with(rclone, destination)
    if not info.hash_passthrough and stored:
        return check_stored(rclone, destination, stored, expected, work, log_name)
    return check_remote(rclone, expected, destination, work, log_name,
                        hashes=info.hash_passthrough)


@dataclass
class RequestOutcome:
    requested: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    not_cold: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def write_list(path: Path, names: list[str]) -> Path:
    """A --files-from-raw list (object names are object-safe: no newline, valid UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, b"".join(os.fsencode(n) + b"\n" for n in sorted(names)))
    return path


def request_restore(rclone: Rclone, destination: str, objects: list[str], tier: str,
                    days: int, work: Path) -> RequestOutcome:
    """``rclone backend restore ROOT --files-from-raw LIST -o priority=T -o lifetime=D`` on
    each S3 backend under the destination (``remotes.thaw``: through alias, crypt, union).

    One call per backend for all of its objects (not one per file).  Each object's answer is
    sorted into requested / already in progress / not a cold class / failed (an object of a
    union counts as failed only if no backend took the request).
    """
    outcome = RequestOutcome()
    plan = targets(rclone, config_dump(rclone), destination, objects)
    answered: dict[str, str] = {}
    failures: dict[str, str] = {}
    for n, (root, names) in enumerate(plan):
        lst = write_list(work / f"restore-objects-{n}.lst", list(names))
        res, raw = rclone.capture(["backend", "restore", os.fsencode(root),
                                   "--files-from-raw", str(lst), "-o", f"priority={tier}",
                                   "-o", f"lifetime={int(days)}"], "restore-request")
        out = raw.decode("utf-8", "surrogateescape")
        if res.returncode != 0 or (not out.strip() and res.tail):
            raise classify(res, "backend restore")
        try:
            answers = json.loads(out) if out.strip() else []
        except ValueError as e:
            raise PermanentError(f"rclone backend restore printed no JSON: {out[:200]!r}") from e
        for item in answers:
            name = names.get(str(item.get("Remote", "")).lstrip("/"))
            if name is None:
                continue
            status = str(item.get("Status", ""))
            if status == "OK" or _ALREADY.search(status) or _NOT_COLD.search(status):
                answered[name] = status
                failures.pop(name, None)
            elif name not in answered:
                failures[name] = status
    for name, status in sorted(answered.items()):
        if status == "OK":
            outcome.requested.append(name)
        elif _ALREADY.search(status):
            outcome.already.append(name)
        else:
            outcome.not_cold.append(name)
    outcome.failed = sorted(failures.items())
    return outcome


def download(rclone: Rclone, destination: str, objects: list[str], stage: Path,
             work: Path) -> Result:
    """Copy the objects into ``stage`` (same relative names); raise NotReady while thawing.

    ``--checksum`` makes a rerun skip what is already down and intact, so a check that finds
    half the objects thawed keeps them and fetches only the rest next time.
    """
    lst = write_list(work / "download-objects.lst", objects)
    res = rclone.copy(destination, stage, files_from=lst, storage_class=None,
                      log_name="download")
    if res.returncode == 0:
        return res
    text = "\n".join(res.tail)
    if _NOT_READY.search(text):
        frozen = sorted({line.split(": ", 1)[0] for line in res.tail
                         if _NOT_READY.search(line) and ": " in line} & set(objects))
        raise NotReady(res.last_error, frozen)
    raise classify(res, "copy from the remote")


def fetch_small(rclone: Rclone, destination: str, names: list[str], into: Path,
                work: Path) -> None:
    """Copy trace files (STANDARD class, readable at once) into ``into``."""
    lst = write_list(work / "trace-objects.lst", names)
    res = rclone.copy(destination, into, files_from=lst, storage_class=None,
                      log_name="trace-download")
    if res.returncode != 0:
        raise classify(res, "copy of the archive record")
