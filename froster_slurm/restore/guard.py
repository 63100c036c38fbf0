"""One job per restore target (and per purged folder): stable job names and the squeue check.

Why both a name check and ``--dependency=singleton``: singleton only stops two jobs of one
name from RUNNING together; it does not stop a second ``restore`` from queueing a second job
that would download everything again.  So before submitting, the manager asks squeue for the
stable name and submits nothing when one is already queued.  The job itself, when objects are
still thawing, submits its successor with the same name, ``--begin`` later and singleton, so
there is always exactly one job waiting and never two running.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

from ..errors import SlurmError
from ..scheduler.slurm import ACTIVE_STATES, JobInfo, scrubbed_env
from ..util.identity import whoami


def job_name(kind: str, path: bytes) -> str:
    """``froster-restore-<12 hex>``: the same path always gives the same name."""
    return f"froster-{kind}-{hashlib.sha1(os.fsencode(path)).hexdigest()[:12]}"


def queued(name: str, user: str | None = None) -> list[JobInfo]:
    """This user's live jobs called ``name`` (empty when Slurm is not installed)."""
    if shutil.which("squeue") is None:
        return []
    cmd = ["squeue", "-h", "-u", user or whoami(), "--name", name,
           "-o", "%i\x1f%j\x1f%T\x1f%r\x1f%S"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=scrubbed_env(),
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SlurmError(cmd, proc.returncode, proc.stderr)
    out = []
    for line in proc.stdout.splitlines():
        f = line.split("\x1f")
        if len(f) == 5 and f[1] == name and f[2] in ACTIVE_STATES:
            out.append(JobInfo(f[0], f[1], f[2], reason=f[3], comment=f"start {f[4]}"))
    return out
