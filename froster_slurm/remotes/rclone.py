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

Failure classes (``classify``): the cause in rclone's messages decides first
(``froster_slurm.remotes.failures``: a bad storage class or an unknown remote is permanent, a
refused connection or a 503 transient, whatever the exit code), then the code (rclone: 1 usage
but also many network errors, 2 uncategorised, 3 directory not found, 4 file not found, 5
temporary, 6 less serious, 7 fatal, 8 transfer limit, 9 no files transferred); an unknown
failure counts as transient, bounded by ``max_attempts``.
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

from ..archive.inventory import SourceChanged
from ..archive.names import rclone_local, redact
from ..errors import PermanentError, TransientError
from ..util.paths import display
from .exe import find_rclone
from .failures import explain, find_cause
from .storage_classes import NO_CLASS

# Environment variables that would weaken the checksum guarantees behind our back.
DROP_ENV = ("AWS_CA_BUNDLE", "RCLONE_S3_DISABLE_CHECKSUM", "RCLONE_IGNORE_CHECKSUM",
            "RCLONE_SIZE_ONLY", "RCLONE_IGNORE_SIZE", "RCLONE_NO_CHECK_DEST",
            "RCLONE_CHECKSUM", "RCLONE_DOWNLOAD")

_SOURCE_CHANGED = re.compile(r"source file is being updated|can't copy - source file", re.I)
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
    """Turn a failed rclone run into SourceChanged, TransientError or PermanentError.

    The cause is found by ``remotes.failures`` (one classifier for every rclone call); a
    permanent cause is said in plain words, with rclone's own last line after it.
    """
    detail = f"rclone {what} failed (exit {result.returncode}): {result.last_error}"
    if _SOURCE_CHANGED.search("\n".join(result.tail)):
        return SourceChanged(detail)
    cause = find_cause(result.tail)
    if cause is not None:
        kind = PermanentError if cause.permanent else TransientError
        return kind(explain(cause, detail))
    if result.returncode < 0:  # killed by a signal: try again
        return TransientError(detail)
    if result.returncode in (3, 4):
        return SourceChanged(detail)
    if result.returncode == 7:
        return PermanentError(detail)
    return TransientError(detail)


def rclone_env(base: dict[str, str] | None = None,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    """rclone's environment: ``base`` (default ours) without DROP_ENV, plus ``extra`` (the
    remote's credentials, which must never go on the command line: see remotes/secrets.py)."""
    env = dict(os.environ if base is None else base)
    for name in DROP_ENV:
        env.pop(name, None)
    env.update(extra or {})
    return env


@dataclass
class Answer:
    """What one short rclone command said (``query``)."""

    cmd: list[str | bytes]
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    missing: bool = False  # the executable is not there (returncode 127)
    timed_out: bool = False  # no answer within the timeout (returncode 124)


def query(exe: str, args: Sequence[str | bytes], *, config: str = "",
          flags: Sequence[str] = (), env: dict[str, str] | None = None,
          timeout: float | None = 600) -> Answer:
    """Run one short rclone command to its end: besides ``Rclone.run`` the only place that
    starts rclone (argument list, stdin closed, ``rclone_env``, secrets only through ``env``).

    A missing executable or a timeout is an ``Answer`` too, so each caller words it its way:
    a job fails (``Rclone.capture``), a pre-submission check reports (``submit.preflight``).
    """
    cmd: list[str | bytes] = [exe, *args, *flags]
    if config:
        cmd += ["--config", config]
    try:
        proc = subprocess.run(cmd, capture_output=True, env=rclone_env(extra=env),
                              stdin=subprocess.DEVNULL, timeout=timeout)
    except FileNotFoundError:
        return Answer(cmd, 127, missing=True)
    except subprocess.TimeoutExpired:
        return Answer(cmd, 124, timed_out=True)
    return Answer(cmd, proc.returncode, proc.stdout, proc.stderr)


# A log file keeps its last RCLONE_LOG_KEEP bytes: trimmed once it has twice that, so a task
# that requeues for days (or rclone -vv on a million files) cannot fill the run directory.
RCLONE_LOG_KEEP = 256 * 1024


def bound_log(path: Path, keep: int = RCLONE_LOG_KEEP) -> None:
    """Cut ``path`` to its last ``keep`` bytes (whole lines) once it passes ``2 * keep``."""
    try:
        size = path.stat().st_size
        if size <= 2 * keep:
            return
        with open(path, "rb") as f:
            f.seek(size - keep)
            tail = f.read()
        tail = tail[tail.find(b"\n") + 1:]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(b"# (older lines dropped: this log keeps its last %d KiB)\n" % (keep // 1024))
            f.write(tail)
        os.replace(tmp, path)
    except OSError:
        pass  # a log that cannot be trimmed is no reason to fail the task


class Rclone:
    """One configured rclone: executable, config file, extra flags, transfers, log dir."""

    def __init__(self, exe: str, config: str = "", flags: Sequence[str] = (),
                 transfers: int = 4, log_dir: Path | None = None, stats_every: str = "5s",
                 env: dict[str, str] | None = None):
        self.exe = find_rclone(exe)
        self.env = dict(env or {})
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
            stdout_path: Path | None = None, pass_fds: tuple[int, ...] = ()) -> Result:
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
            for fd in pass_fds:
                target = os.readlink(f"/proc/self/fd/{fd}".encode())
                log.write(f"# /dev/fd/{fd} = {display(target)}\n")
            log.flush()
        out = open(stdout_path, "wb") if stdout_path is not None else None
        try:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                        stdout=out or log or subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, env=rclone_env(extra=self.env),
                                        pass_fds=pass_fds)
            except FileNotFoundError as e:
                raise PermanentError(f"rclone executable not found: {self.exe}") from e
            try:
                assert proc.stderr is not None
                for raw in proc.stderr:
                    line = raw.decode("utf-8", "backslashreplace").rstrip("\n")
                    if log is not None:
                        log.write(redact(line) + "\n")
                    # parsed before redaction (which can break the JSON), redacted after
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
                bound_log(Path(log.name))
        return result

    def capture(self, args: Sequence[str | bytes], log_name: str | None = None,
                timeout: float | None = 600) -> tuple[Result, bytes]:
        """Run a short rclone query and return its standard output (never logged: ``config
        dump`` prints secrets).  Its stderr goes to the log ``log_name`` when given."""
        answer = query(self.exe, args, config=self.config, flags=self.flags, env=self.env,
                       timeout=timeout)
        if answer.missing:
            raise PermanentError(f"rclone executable not found: {self.exe}")
        if answer.timed_out:
            raise TransientError(f"rclone {os.fsdecode(args[0])} did not answer within "
                                 f"{timeout:.0f}s")
        err = redact(answer.stderr.decode("utf-8", "backslashreplace"))
        result = Result(answer.returncode, [ln for ln in err.splitlines() if ln.strip()]
                        [-TAIL_LINES:])
        if log_name and self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{log_name}.log", "a", encoding="utf-8") as log:
                log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} "
                          f"{redact(' '.join(display(os.fsencode(c)) for c in answer.cmd))}\n"
                          f"{err}# exit {answer.returncode}\n")
            bound_log(self.log_dir / f"{log_name}.log")
        return result, answer.stdout

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
            result.tail.append(redact(msg))
            del result.tail[:-TAIL_LINES]

    def copy(self, src: bytes | str | Path, dst: str | Path, *, files_from: Path | None,
             storage_class: str | None, log_name: str,
             progress: Callable[[int, int], None] | None = None,
             extra: Sequence[str] = ()) -> Result:
        """``rclone copy --checksum SRC DST [--files-from-raw LIST]`` with the storage class.

        A ``str`` is rclone text (a remote, or a destination ``names.destination`` spelt);
        ``bytes`` and ``Path`` are local paths, spelt for rclone here (``rclone_local``), so a
        folder named with ``␊`` or ``‛`` is the folder meant, not its decoded look-alike."""
        fds: list[int] = []
        try:
            args: list[str | bytes] = ["copy", _arg(src, fds), _arg(dst, fds), "--checksum",
                                       "--transfers", str(self.transfers)]
            if files_from is not None:
                args += ["--files-from-raw", str(files_from), "--no-traverse"]
            if storage_class and storage_class != NO_CLASS:  # "none": no classes
                args += ["--s3-storage-class", storage_class]
            args += list(extra)  # after --transfers: rclone takes the last value
            return self.run(args, log_name, progress, pass_fds=tuple(fds))
        finally:
            for fd in fds:
                os.close(fd)

    def lsf(self, folder: str, names_file: Path, out: Path, log_name: str,
            hashes: bool = True) -> Result:
        """``rclone lsf -R --files-only --format shp [--hash MD5] --files-from-raw LIST
        FOLDER`` into ``out``: size, md5 and name of exactly the listed objects that exist
        (``archive.verify.listing`` reads it; the format is documented there)."""
        args: list[str | bytes] = ["lsf", "-R", "--files-only", "--format", "shp",
                                   "--separator", "|", "--files-from-raw", str(names_file),
                                   os.fsencode(folder)]
        if hashes:
            args[1:1] = ["--hash", "MD5"]
        return self.run(args, log_name, stdout_path=out)

    def begin_step(self, step: str) -> None:
        """An archive task starts (or starts again) ``step``: nothing to do for a folder's own
        rclone; a batch's shared one replays per step (``archive.shared``)."""

    def md5sum(self, dst: str, files_from: Path, out: Path, log_name: str) -> Result:
        """``rclone md5sum DST --files-from-raw LIST`` into ``out``: the md5 the remote
        reports for exactly those objects (S3: ETag, or the md5 rclone stored in a multipart
        object's metadata; nothing is downloaded).  A listed object that does not exist is
        left out of the report; one whose hash is unknown gets an empty hash."""
        args: list[str | bytes] = ["md5sum", os.fsencode(dst), "--files-from-raw",
                                   str(files_from)]
        return self.run(args, log_name, stdout_path=out)


def _arg(where: bytes | str | Path, fds: list[int]) -> bytes:
    """rclone text as it is; a local directory (bytes, Path) as rclone can reach it.

    rclone reads a command-line path in its "standard" encoding, and a literal ``‛``
    (U+201B) on disk cannot be spelt in it at all (``s‛s`` and ``s‛‛s`` on disk both list as
    ``s‛‛s``, and neither spelling finds ``s‛s``).  A path holding a character that encoding
    touches is therefore handed over as ``/dev/fd/N`` of a directory descriptor we opened
    (created first if missing: a copy's destination); the kernel resolves it, not rclone.
    """
    if isinstance(where, str):
        return os.fsencode(where)
    raw = os.fsencode(where)
    if rclone_local(raw) == raw:
        return raw
    os.makedirs(raw, mode=0o700, exist_ok=True)
    fd = os.open(raw, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fds.append(fd)
    return f"/dev/fd/{fd}".encode()


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
