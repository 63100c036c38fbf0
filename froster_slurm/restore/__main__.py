"""``python -m froster_slurm.restore restore|purge|retry-delay RUN_DIR``: the restore and
purge job entry of versions before the one job entry (``froster_slurm.jobs``), kept for the
scripts those versions rendered (a restore job requeues itself while objects thaw, for
hours or days, across an upgrade).  The arguments are the job entry's: handed over as they are.
"""

from __future__ import annotations

import sys

from ..jobs.__main__ import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
