"""``python -m froster_slurm.restore restore|purge|retry-delay RUN_DIR``: what job scripts run.

Exit codes: 0 done; 75 not yet (objects still thawing) or a transient failure, requeue after
``retry-delay``; 70 failed for good (the reason is in restore.json); 3 some folders of a purge
job were not purged (each one's reason is in purge.json and the job log).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import FrosterError

USAGE = "usage: python -m froster_slurm.restore restore|purge|retry-delay RUN_DIR"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 64
    what, run_dir = args[0], Path(args[1])
    try:
        if what == "restore":
            from .job import run_restore

            return run_restore(run_dir)
        if what == "retry-delay":
            from .job import retry_delay

            print(retry_delay(run_dir))
            return 0
        if what == "purge":
            from .purge_run import run_purge_job

            return run_purge_job(run_dir)
    except FrosterError as e:
        print(f"froster-slurm: error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    print(USAGE, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
