"""What purge and restore ask of the remote: hashes, a thaw request, a download.

Built on the archive stage's rclone boundary (``froster_slurm.archive.rclone``: clean
environment without ``AWS_CA_BUNDLE``, JSON logs with credentials redacted, failure classes)
and its remote check (``froster_slurm.archive.verify.check_remote``: the remote's own md5 of each
object, nothing downloaded, "hashes could not be checked" counted as a failure).

Two rclone calls need their standard output (``listremotes`` and ``backend restore`` print
their answer there), which ``Rclone.run`` sends to the log file; ``_output`` runs those with
the same executable, config, flags and environment and captures stdout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..archive.names import redact
from ..archive.rclone import Rclone, Result, classify, rclone_env
from ..archive.settings import ArchiveSettings, check_flags
from ..archive.verify import Expect, Report, check_remote
from ..config import Config
from ..errors import PermanentError
from ..paths import display
from ..remotes.resolve import resolve_with
from .estimate import needs_thaw

_NOT_READY = re.compile(r"restore first|InvalidObjectState|object is archived", re.I)
_ALREADY = re.compile(r"RestoreAlreadyInProgress|already in progress", re.I)
_NOT_COLD = re.compile(r"Not GLACIER or DEEP_ARCHIVE", re.I)


class NotReady(Exception):  # noqa: N818 - an expected state, not a failure
    """Some objects are still thawing: check again later."""


def rclone_from_config(config: Config, log_dir: Path | None) -> Rclone:
    """The rclone the archive stage would use, for commands run outside a run (the CLI)."""
    cfg = config.get("archive.rclone_config")
    return Rclone(config.get("archive.rclone"), os.path.expanduser(cfg) if cfg else "",
                  check_flags(list(config.get("archive.rclone_flags"))),
                  int(config.get("archive.transfers")), log_dir)


def rclone_from_settings(s: ArchiveSettings, log_dir: Path | None) -> Rclone:
    """The rclone frozen into a run's run.toml (what a job uses)."""
    return Rclone(s.rclone, s.rclone_config, s.rclone_flags, s.transfers, log_dir)


def _output(rclone: Rclone, args: list[str | bytes]) -> tuple[Result, str]:
    cmd: list[str | bytes] = [rclone.exe, *args, *rclone.flags]
    if rclone.config:
        cmd += ["--config", rclone.config]
    try:
        proc = subprocess.run(cmd, capture_output=True, env=rclone_env(),
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise PermanentError(f"rclone executable not found: {rclone.exe}") from e
    err = redact(proc.stderr.decode("utf-8", "backslashreplace"))
    result = Result(proc.returncode, [ln for ln in err.splitlines() if ln.strip()][-40:])
    if rclone.log_dir is not None:
        rclone.log_dir.mkdir(parents=True, exist_ok=True)
        with open(rclone.log_dir / "restore-request.log", "a", encoding="utf-8") as log:
            log.write(redact(" ".join(display(os.fsencode(c)) for c in cmd)) + "\n" + err +
                      f"# exit {proc.returncode}\n")
    return result, proc.stdout.decode("utf-8", "surrogateescape")


def remote_type(rclone: Rclone, destination: str) -> str:
    """'local' for a path, else the configured backend type of ``name:`` (s3, sftp, ...)."""
    if destination.startswith("/"):
        return "local"
    name = destination.split(":", 1)[0]
    if name.startswith(":"):  # an on-the-fly remote ":s3,opt=...:bucket"
        return name[1:].split(",", 1)[0]
    res, out = _output(rclone, ["listremotes", "--long"])
    if res.returncode != 0:
        raise classify(res, "listremotes")
    for line in out.splitlines():
        remote, _, kind = line.partition(":")
        if remote.strip() == name:
            return kind.strip()
    raise PermanentError(f"rclone has no remote named {name!r} (rclone config file: "
                         f"{rclone.config or 'rclone default'})")


def needs_restore_request(rclone: Rclone, destination: str, storage_class: str) -> bool:
    """Glacier/Deep Archive objects on S3 must be thawed; every other remote reads at once."""
    return needs_thaw(storage_class) and remote_type(rclone, destination) == "s3"


def check_objects(rclone: Rclone, expected: dict[str, Expect], destination: str, work: Path,
                  log_name: str) -> Report:
    """The remote's size and md5 of each expected object against ours (``archive.verify``,
    the same proof the archive's verify step made).  Under crypt the remote has no md5 of
    our data: sizes are compared here, the bytes are proven when they are downloaded."""
    info = resolve_with(rclone, destination)
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(os.fsencode(n) + b"\n" for n in sorted(names)))
    os.replace(tmp, path)
    return path


def request_restore(rclone: Rclone, destination: str, objects: list[str], tier: str,
                    days: int, work: Path) -> RequestOutcome:
    """``rclone backend restore DEST --files-from-raw LIST -o priority=T -o lifetime=D``.

    One call on the folder for all of its objects (not one per file).  Each object's answer is
    sorted into requested / already in progress / not a cold class / failed.
    """
    lst = write_list(work / "restore-objects.lst", objects)
    res, out = _output(rclone, ["backend", "restore", os.fsencode(destination),
                                "--files-from-raw", str(lst), "-o", f"priority={tier}",
                                "-o", f"lifetime={int(days)}"])
    if res.returncode != 0:
        raise classify(res, "backend restore")
    outcome = RequestOutcome()
    try:
        answers = json.loads(out) if out.strip() else []
    except ValueError as e:
        raise PermanentError(f"rclone backend restore printed no JSON: {out[:200]!r}") from e
    for item in answers:
        name, status = str(item.get("Remote", "")), str(item.get("Status", ""))
        if status == "OK":
            outcome.requested.append(name)
        elif _ALREADY.search(status):
            outcome.already.append(name)
        elif _NOT_COLD.search(status):
            outcome.not_cold.append(name)
        else:
            outcome.failed.append((name, status))
    return outcome


def download(rclone: Rclone, destination: str, objects: list[str], stage: Path,
             work: Path) -> Result:
    """Copy the objects into ``stage`` (same relative names); raise NotReady while thawing.

    ``--checksum`` makes a rerun skip what is already down and intact, so a check that finds
    half the objects thawed keeps them and fetches only the rest next time.
    """
    lst = write_list(work / "download-objects.lst", objects)
    res = rclone.copy(destination, str(stage), files_from=lst, storage_class=None,
                      log_name="download")
    if res.returncode == 0:
        return res
    text = "\n".join(res.tail)
    if _NOT_READY.search(text):
        raise NotReady(res.last_error)
    raise classify(res, "copy from the remote")


def fetch_small(rclone: Rclone, destination: str, names: list[str], into: Path,
                work: Path) -> None:
    """Copy trace files (STANDARD class, readable at once) into ``into``."""
    lst = write_list(work / "trace-objects.lst", names)
    res = rclone.copy(destination, str(into), files_from=lst, storage_class=None,
                      log_name="trace-download")
    if res.returncode != 0:
        raise classify(res, "copy of the archive record")
