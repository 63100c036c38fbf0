"""One job per restore target (and per purged folder): stable job names.

Why both a name check and ``--dependency=singleton``: singleton only stops two jobs of one
name from RUNNING together; it does not stop a second ``restore`` from queueing a second job
that would download everything again.  So before submitting, the manager asks the backend for
the live jobs of the stable name (``Backend.named``) and submits nothing when one is already
queued.  The job itself, when objects are still thawing, requeues itself with a later start,
so there is always exactly one job waiting and never two running.
"""

from __future__ import annotations

import hashlib
import os


def job_name(kind: str, path: bytes) -> str:
    """``froster-restore-<12 hex>``: the same path always gives the same name."""
    return f"froster-{kind}-{hashlib.sha1(os.fsencode(path)).hexdigest()[:12]}"
