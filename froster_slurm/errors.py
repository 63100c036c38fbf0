"""One error hierarchy for the whole tool.

The CLI maps every ``FrosterError`` to its ``exit_code`` and prints one line; anything else is a
bug and keeps its traceback.  Exit codes follow sysexits(3) where one fits, so job scripts and
wrappers can tell a user mistake (64/65/66) from a transient failure (75) that is worth a retry.
"""

from __future__ import annotations

import os

# Exit codes, defined once: Python code uses these names; job scripts get them rendered in.
EXIT_OK = 0
EXIT_INCOMPLETE = 3
EXIT_USAGE = 64  # EX_USAGE
EXIT_DATAERR = 65  # EX_DATAERR
EXIT_NOINPUT = 66  # EX_NOINPUT
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: an external program failed
EXIT_PERMANENT = 70  # EX_SOFTWARE: failed for good, a retry cannot help
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: transient, worth a retry after a delay
EXIT_CONFIG = 78  # EX_CONFIG


def exit_codes() -> dict[str, int]:
    """Every ``EXIT_<NAME>`` above as NAME -> code: job scripts get ``FROSTER_EXIT_<NAME>``."""
    return {k[5:]: v for k, v in globals().items() if k.startswith("EXIT_") and isinstance(v, int)}


class FrosterError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code = 1


class UserError(FrosterError):
    """Bad arguments or input the user can fix (EX_USAGE)."""

    exit_code = EXIT_USAGE


class DataError(FrosterError):
    """Input data that cannot be read as promised, e.g. a malformed crawl file (EX_DATAERR)."""

    exit_code = EXIT_DATAERR


class NotFoundError(UserError):
    """A file, folder, run or template that does not exist (EX_NOINPUT)."""

    exit_code = EXIT_NOINPUT


class ConfigError(UserError):
    """A bad config key or value; the message lists what is valid (EX_CONFIG)."""

    exit_code = EXIT_CONFIG


class TemplateError(FrosterError):
    """A template that cannot be rendered: unknown or missing placeholder, bad syntax."""

    exit_code = EXIT_CONFIG


class ExternalCommandError(FrosterError):
    """An external program (sbatch, rclone, pwalk, ...) failed.

    Carries the argument list, exit code and stderr so the caller can decide whether the failure
    is transient, and so the user sees what ran.
    """

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, cmd: list[str | bytes], returncode: int, stderr: str, message: str = ""):
        self.cmd = [os.fsdecode(c) for c in cmd]
        self.returncode = returncode
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "(no stderr)"
        msg = message or f"{self.cmd[0]} failed with exit code {returncode}: {detail}"
        super().__init__(msg)


class SlurmError(ExternalCommandError):
    """A Slurm command (sbatch, squeue, scontrol, scancel, sacct) failed."""


class TransientError(FrosterError):
    """A failure worth retrying later: remote unreachable, throttled, time limit (EX_TEMPFAIL)."""

    exit_code = EXIT_TEMPFAIL


class BusyError(FrosterError):
    """The thing asked for is still being worked on (a run's jobs are live): try again once it
    ends.  EX_TEMPFAIL, like a transient failure, so a wrapper can wait and ask again."""

    exit_code = EXIT_TEMPFAIL


class PermanentError(FrosterError):
    """A failure that retrying will not fix: unreadable file, folder gone, repeated mismatch."""

    exit_code = EXIT_PERMANENT


class IncompleteError(FrosterError):
    """The work finished but some of it could not be done (e.g. a crawl with errors)."""

    exit_code = EXIT_INCOMPLETE
