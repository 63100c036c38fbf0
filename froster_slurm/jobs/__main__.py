"""The one job-side entry point: ``python -m froster_slurm.jobs STAGE RUN_DIR [INDEX]``.

Every rendered job script runs this, with the interpreter recorded at submission.  Each stage
module is imported only when its stage runs (a crawl shard never imports the archive stack).

    crawl RUN_DIR INDEX              crawl shard INDEX of the plan (INDEX defaults to 0)
    rank RUN_DIR                     rank, select, submit the archive array(s) and finalize
    archive RUN_DIR INDEX            archive task INDEX: the folders of batch INDEX
    interrupted RUN_DIR INDEX CODE   archive task INDEX's process ended with CODE: count it
    retry-delay RUN_DIR INDEX        seconds before archive task INDEX's requeue
    status RUN_DIR INDEX TEXT        set archive task INDEX's live status line
    chain RUN_DIR NUMBER             queue the next archive array of submission NUMBER
    finalize RUN_DIR                 summary, catalog, the retry command
    restore RUN_DIR                  one pass of a guarded restore (TEMPFAIL: not yet)
    retry-delay RUN_DIR              seconds before the restore job's requeue
    purge RUN_DIR                    purge the run's folders (0, 3 some not purged)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import EXIT_OK, EXIT_USAGE, FrosterError

# The stage lines of the docstring above (indented by four spaces) are the usage text.
USAGE = "usage: python -m froster_slurm.jobs STAGE RUN_DIR [INDEX]\n" + "\n".join(
    "  " + line.strip() for line in (__doc__ or "").splitlines() if line.startswith("    "))


class _Usage(Exception):
    """Bad arguments: the usage text, exit 64."""


def _index(rest: list[str]) -> int:
    if not rest:
        raise _Usage("a task INDEX is needed")
    try:
        return int(rest[0])
    except ValueError:
        raise _Usage(f"not a task index: {rest[0]!r}") from None


def _run_job(body: Callable[[], int]) -> int:
    """crawl, rank, finalize: an error is one line on stderr and the job's Comment."""
    from ..scheduler.injob import set_status

    try:
        return body()
    except FrosterError as e:
        print(f"froster-slurm: error: {e}", file=sys.stderr, flush=True)
        set_status(f"failed: {e}")
        return e.exit_code


def _crawl(run_dir: Path, rest: list[str]) -> int:
    from ..run.rundir import Run
    from .crawl_stage import crawl

    index = _index(rest) if rest else 0
    return _run_job(lambda: crawl(Run(run_dir), index))


def _rank(run_dir: Path, rest: list[str]) -> int:
    from ..run.rundir import Run
    from .rank_stage import rank

    return _run_job(lambda: rank(Run(run_dir)))


def _finalize(run_dir: Path, rest: list[str]) -> int:
    from ..run.rundir import Run
    from .finalize_stage import finalize_job

    return _run_job(lambda: finalize_job(Run(run_dir)))


def _chain(run_dir: Path, rest: list[str]) -> int:
    """The chain job: the array it waited for has ended; queue the next (submit.chain)."""
    from ..run.rundir import Run, run_config
    from ..scheduler.injob import job_ref
    from ..submit.chain import advance
    from ..submit.pipeline import backend_for_run

    number = _index(rest)

    def step() -> int:
        run = Run(run_dir)
        queued = advance(run, backend_for_run(run, run_config(run)), number,
                         caller=job_ref())
        print("chain: queued " + ("; ".join(f"{stage} job {' '.join(ids)}"
                                            for stage, ids in queued.items()) or "nothing"),
              flush=True)
        return EXIT_OK

    return _run_job(step)


def _archive(run_dir: Path, rest: list[str]) -> int:
    from .archive_stage import archive_batch

    return archive_batch(run_dir, _index(rest))


def _interrupted(run_dir: Path, rest: list[str]) -> int:
    from .archive_stage import interrupted_batch

    index = _index(rest)
    return interrupted_batch(run_dir, index, int(rest[1]) if len(rest) > 1 else 1)


def _status(run_dir: Path, rest: list[str]) -> int:
    from ..run.taskstate import task_paths
    from ..scheduler.injob import set_status

    set_status(" ".join(rest[1:]), task_paths(run_dir, _index(rest)).status_path)
    return EXIT_OK


def _retry_delay(run_dir: Path, rest: list[str]) -> int:
    """With an INDEX: an archive task's delay; without: the restore job's."""
    if rest:
        from .archive_stage import retry_delay_batch

        print(retry_delay_batch(run_dir, _index(rest)))
        return EXIT_OK
    from .restore_stage import retry_delay

    def show() -> int:
        print(retry_delay(run_dir))
        return EXIT_OK

    return _guarded(show)


def _restore(run_dir: Path, rest: list[str]) -> int:
    from .restore_stage import run_restore

    return _guarded(lambda: run_restore(run_dir))


def _purge(run_dir: Path, rest: list[str]) -> int:
    from .purge_stage import run_purge_job

    return _guarded(lambda: run_purge_job(run_dir))


def _guarded(body: Callable[[], int]) -> int:
    """restore, purge: an error is one line on stderr and its exit code."""
    try:
        return body()
    except FrosterError as e:
        print(f"froster-slurm: error: {e}", file=sys.stderr, flush=True)
        return e.exit_code


STAGES: dict[str, Callable[[Path, list[str]], int]] = {
    "crawl": _crawl, "rank": _rank, "archive": _archive, "interrupted": _interrupted,
    "retry-delay": _retry_delay, "status": _status, "chain": _chain, "finalize": _finalize,
    "restore": _restore, "purge": _purge,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in STAGES:
        print(USAGE, file=sys.stderr)
        return EXIT_USAGE
    try:
        return STAGES[args[0]](Path(args[1]), args[2:])
    except _Usage as e:
        print(f"{e}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
