"""``python -m froster_slurm.task archive|interrupted|retry-delay RUN_DIR INDEX ...``: the job
entry of versions before the one job entry (``froster_slurm.jobs``), kept for their scripts.

Why it exists: a run's sbatch scripts are rendered once, at submission, and an archive task
requeues itself for days.  A run submitted before an upgrade still runs its old script, and
that script calls this module; without it every such requeue would fail with "No module named
froster_slurm.task" and the run would stall half archived.  The arguments are the same as
the job entry's (a run of that age has no ``batches.txt``, so task INDEX is folder INDEX),
so this hands them over unchanged.
"""

from __future__ import annotations

import sys

from .jobs.__main__ import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
