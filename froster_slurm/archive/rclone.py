"""The rclone boundary: argument lists, a clean environment, logs, progress, failure classes.

Rules it enforces:

* argument lists only; paths are passed as bytes and are always absolute (``/x/-rf`` can never
  be read as a flag) or ``remote:path``;
* ``AWS_CA_BUNDLE`` is dropped from rclone's environment (rclone 1.60's S3 backend fails every
  call with it), and so are ``RCLONE_*`` variables that would switch checksums off;
* copies always use ``--checksum`` (size + mtime misses in-place changes) and never
  ``--s3-disable-checksum`` (multipart uploads then carry no md5 and cannot be verified);
* logs are JSON lines (``--use-json-log``) appended to the task's log directory, with any
  credential in a connection string redacted; the periodic stats give the upload progress.

Failure classes (``classify``): rclone exit codes are 1 usage (but also many network errors),
2 uncategorised, 3 directory not found, 4 file not found, 5 temporary, 6 less serious
(NoRetry), 7 fatal, 8 transfer limit, 9 no files transferred.  The message decides first
(a refused connection or a 503 is transient whatever the code; AccessDenied or an unknown
remote is permanent), then the code; an unknown failure counts as transient, bounded by
``max_attempts``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PermanentError, TransientError
from ..paths import display
from ..storage_classes import NO_CLASS
from .inventory import SourceChanged
from .names import redact

# Environment variables that would weaken the checksum guarantees behind our back.
DROP_ENV = ("AWS_CA_BUNDLE", "RCLONE_S3_DISABLE_CHECKSUM", "RCLONE_IGNORE_CHECKSUM",
            "RCLONE_SIZE_ONLY", "RCLONE_IGNORE_SIZE", "RCLONE_NO_CHECK_DEST",
            "RCLONE_CHECKSUM", "RCLONE_DOWNLOAD")

_SOURCE_CHANGED = re.compile(r"source file is being updated|can't copy - source file", re.I)
_TRANSIENT = re.compile(
    r"connection refused|connection reset|broken pipe|timed? ?out|timeout|no such host|"
    r"temporary failure|try again|TLS handshake|unexpected EOF|\bEOF\b|network is unreachable|"
    r"send request failed|context deadline exceeded|dial tcp|SlowDown|RequestTimeout|"
    r"Throttl|TooManyRequests|\b429\b|\b500\b|\b502\b|\b503\b|\b504\b|InternalError|"
    r"ServiceUnavailable|server misbehaving|corrupted on transfer", re.I)
_PERMANENT = re.compile(
    r"AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|NoSuchBucket|\b403\b|Forbidden|"
    r"didn't find section in config file|unknown flag|unknown command|unknown shorthand|"
    r"InvalidStorageClass|invalid storage class|permission denied|InvalidBucketName", re.I)
TAIL_LINES = 40


@dataclass
class Result:
    """How an rclone run ended: exit code, the last log messages, counters we care about."""

    returncode: int
    tail: list[str] = field(default_factory=list)

    @property
    def last_error(self) -> str:
        for line in reversed(self.tail):
            if line.strip():
                return line.strip()
        return "(no message)"


def classify(result: Result, what: str) -> Exception:
    """Turn a failed rclone run into SourceChanged, TransientError or PermanentError."""
    text = "\n".join(result.tail)
    msg = f"rclone {what} failed (exit {result.returncode}): {result.last_error}"
    if _SOURCE_CHANGED.search(text):
        return SourceChanged(msg)
    transient = bool(_TRANSIENT.search(text))
    if _PERMANENT.search(text) and not transient:
        return PermanentError(msg)
    if transient or result.returncode < 0:
        return TransientError(msg)
    if result.returncode in (3, 4):
        return SourceChanged(msg)
    if result.returncode == 7:
        return PermanentError(msg)
    return TransientError(msg)


def rclone_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for name in DROP_ENV:
        env.pop(name, None)
    return env


class Rclone:
    """One configured rclone: executable, config file, extra flags, transfers, log dir."""

    def __init__(self, exe: str, config: str = "", flags: Sequence[str] = (),
                 transfers: int = 4, log_dir: Path | None = None, stats_every: str = "5s"):
        self.exe = exe
        self.config = config
        self.flags = list(flags)
        self.transfers = transfers
        self.log_dir = log_dir
        self.stats_every = stats_every

    def _cmd(self, args: Sequence[str | bytes]) -> list[str | bytes]:
        cmd: list[str | bytes] = [self.exe, *args, *self.flags]
        if self.config:
            cmd += ["--config", self.config]
        # Ours last: for repeated scalar flags rclone takes the last value.
        cmd += ["--use-json-log", "-v", "--stats", self.stats_every,
                "--stats-log-level", "NOTICE"]
        return cmd

    def run(self, args: Sequence[str | bytes], log_name: str,
            progress: Callable[[int, int], None] | None = None,
            stdout_path: Path | None = None) -> Result:
        """Run rclone; read its JSON log as it comes; stop it if we are interrupted.

        Its standard output goes to ``stdout_path`` when given (a report to parse), else to
        the log.
        """
        cmd = self._cmd(args)
        result = Result(returncode=0)
        log = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / f"{log_name}.log", "a", encoding="utf-8", buffering=1)
            log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} "
                      f"{redact(' '.join(display(os.fsencode(c)) for c in cmd))}\n")
            log.flush()
        out = open(stdout_path, "wb") if stdout_path is not None else None
        try:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                        stdout=out or log or subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, env=rclone_env())
            except FileNotFoundError as e:
                raise PermanentError(f"rclone executable not found: {self.exe}") from e
            try:
                assert proc.stderr is not None
                for raw in proc.stderr:
                    line = redact(raw.decode("utf-8", "backslashreplace").rstrip("\n"))
                    if log is not None:
                        log.write(line + "\n")
                    self._digest(line, result, progress)
                result.returncode = proc.wait()
            except BaseException:
                _stop(proc)
                raise
        finally:
            if out is not None:
                out.close()
            if log is not None:
                log.write(f"# exit {result.returncode}\n")
                log.close()
        return result

    @staticmethod
    def _digest(line: str, result: Result, progress: Callable[[int, int], None] | None
                ) -> None:
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            stats = obj.get("stats")
            if isinstance(stats, dict):
                if progress is not None:
                    progress(int(stats.get("bytes") or 0), int(stats.get("totalBytes") or 0))
                return
            msg = str(obj.get("msg", "")).strip()
            if obj.get("object") is not None:
                msg = f"{obj['object']}: {msg}"
            level = str(obj.get("level", ""))
        else:
            msg, level = line.strip(), "error"
        if level in ("error", "warning", "notice", "critical") and msg:
            result.tail.append(msg)
            del result.tail[:-TAIL_LINES]

    def copy(self, src: bytes | str, dst: str, *, files_from: Path | None,
             storage_class: str | None, log_name: str,
             progress: Callable[[int, int], None] | None = None) -> Result:
        """``rclone copy --checksum SRC DST [--files-from-raw LIST]`` with the storage class."""
        args: list[str | bytes] = ["copy", os.fsencode(src), os.fsencode(dst), "--checksum",
                                   "--transfers", str(self.transfers)]
        if files_from is not None:
            args += ["--files-from-raw", str(files_from), "--no-traverse"]
        if storage_class and storage_class != NO_CLASS:  # "none": the remote has no classes
            args += ["--s3-storage-class", storage_class]
        return self.run(args, log_name, progress)

    def md5sum(self, dst: str, files_from: Path, out: Path, log_name: str) -> Result:
        """``rclone md5sum DST --files-from-raw LIST`` into ``out``: the md5 the remote
        reports for exactly those objects (S3: ETag, or the md5 rclone stored in a multipart
        object's metadata; nothing is downloaded).  A listed object that does not exist is
        left out of the report; one whose hash is unknown gets an empty hash."""
        args: list[str | bytes] = ["md5sum", os.fsencode(dst), "--files-from-raw",
                                   str(files_from)]
        return self.run(args, log_name, stdout_path=out)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate rclone (it finishes nothing half-way that a rerun cannot redo)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
