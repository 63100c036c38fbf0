"""The one lifecycle of a requeueable job (archive tasks, the restore job): stop signals,
attempt counting, back-off, exit codes and the requeue request.

Exit codes are ``errors.py``'s: ``EXIT_OK`` done; ``EXIT_TEMPFAIL`` run me again later (a
transient failure, a stop by a signal, objects still thawing); ``EXIT_PERMANENT`` failed for
good.  The job script's requeue tail (``jobscripts/requeue.sh``) gets the same codes rendered
in; the delay of a requeue travels in the task's ``requeue-after`` file (``requeue``).

Back-off, one rule for every stage: after the n-th transient failure in a row the next attempt
starts ``retry_delay * 2**(n-1)`` seconds later, never more than ``max_retry_delay`` (config
``archive.retry_delay``, default 60, and ``archive.max_retry_delay``, default 3600); the
``max_attempts``-th failure is final.  A stop by a signal is no failure: it requeues at once.

Signals: SIGUSR1 (Slurm's ``--signal=B:USR1@grace``: the time limit is near), SIGTERM (requeue,
cancel, the time limit itself) and SIGINT raise ``Stopped`` once, so the stage stops at a clean
point and records where it was.  USR1, not USR2: rclone uses USR2.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EXIT_TEMPFAIL
from ..scheduler import injob

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
TIME_LIMIT = "SIGUSR1"  # what Slurm sends ``grace`` seconds before the time limit
DEFAULT_MAX_RETRY_DELAY = 3600


class Stopped(BaseException):  # noqa: N818 - like KeyboardInterrupt: nothing may swallow it
    """A stop signal arrived: stop now, record where, resume on the next run.

    A BaseException, so no ``except Exception`` on the way up can swallow it.  ``str()`` is
    the signal's name (``SIGUSR1``, ``SIGTERM``, ``SIGINT``).
    """

    @property
    def by_time_limit(self) -> bool:
        """The time limit is near (USR1): the job's slot ends; a requeue resumes it."""
        return str(self) == TIME_LIMIT


# The stop signal this process got inside ``stop_signals`` (a batch ends at once after it).
_stopped: list[str] = []


@contextmanager
def stop_signals() -> Iterator[None]:
    """Inside: the first stop signal raises ``Stopped`` in the main thread; later ones are
    ignored, so the clean-up it starts (rclone stopped, the state written) runs to its end.

    On the way in the stop signals are unblocked (a batch blocked them after its last folder);
    on the way out, however it is left, they are blocked: once the outcome is known, a late
    signal must not interrupt writing it down (it stays pending: ``stopped`` sees it).
    """
    stopping = False

    def handler(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        _stopped.append(signal.Signals(signum).name)
        raise Stopped(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))


def stopped() -> str | None:
    """The stop signal this process got, if any: one that stopped work inside
    ``stop_signals``, else one still pending because it came while they were blocked (between
    two folders of a batch: the next folder would only start to be stopped at once)."""
    if _stopped:
        return _stopped[0]
    pending = signal.sigpending() & set(STOP_SIGNALS)
    return signal.Signals(min(pending)).name if pending else None


@dataclass(frozen=True)
class Retry:
    """What a transient failure leads to: ``failures`` counted so far (this one included) and
    the seconds before the next attempt, or ``final`` when it was the last allowed one."""

    failures: int
    max_attempts: int
    delay: int

    @property
    def final(self) -> bool:
        return self.failures >= self.max_attempts


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts``, ``retry_delay`` and ``max_retry_delay`` of the run's settings."""

    max_attempts: int = 5
    retry_delay: int = 60
    max_retry_delay: int = DEFAULT_MAX_RETRY_DELAY

    @classmethod
    def of(cls, settings: Any) -> RetryPolicy:
        """From an ``ArchiveSettings`` (archive and restore both run with one)."""
        return cls(max(1, int(settings.max_attempts)), max(0, int(settings.retry_delay)),
                   max(0, int(settings.max_retry_delay)))

    def delay(self, failures: int) -> int:
        """Seconds before the attempt after the ``failures``-th transient failure in a row."""
        if failures < 1:
            return 0
        # 2**n grows past any cap fast: stop doubling once the cap is reached
        delay = self.retry_delay
        for _ in range(failures - 1):
            if delay >= self.max_retry_delay:
                break
            delay *= 2
        return min(delay, self.max_retry_delay)

    def failed(self, failures_before: int) -> Retry:
        """Count one more transient failure after ``failures_before`` of them."""
        failures = max(0, int(failures_before)) + 1
        final = failures >= self.max_attempts
        return Retry(failures, self.max_attempts, 0 if final else self.delay(failures))


def requeue(requeue_file: Path, delay: float) -> int:
    """Ask to run again ``delay`` seconds from now: the task's ``requeue-after`` file says
    when (``injob.ask_requeue``), for the job script under Slurm and for the local backend.
    Returns ``EXIT_TEMPFAIL``, the code to end with."""
    injob.ask_requeue(requeue_file, delay)
    return EXIT_TEMPFAIL


def retry_delay(requeue_file: Path) -> int:
    """Seconds the job script should wait before requeueing (0 when due or never asked)."""
    return injob.requeue_delay(requeue_file)
