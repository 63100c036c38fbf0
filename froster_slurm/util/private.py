"""Files and directories only their owner may read: state, logs, frozen configs, secrets.

A run directory holds the settings, logs and (for on-the-fly remotes) the credentials of one
user's archive; on a shared cluster node every other account must be kept out.  Directories
are made 0700 and files 0600 at creation (``os.open`` with the mode, so there is no moment
in which they are readable), whatever the umask says.  A directory that already exists is
tightened to 0700 only when we own it and nobody else may write into it (``tighten=True``): a
shared ``state_dir`` an admin made group- or world-writable (1777, 2770) keeps its mode, and
the run directories inside it are private anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

from .atomic import write_atomic

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike, *, tighten: bool = False) -> Path:
    """Create ``path`` (and missing parents) as 0700; with ``tighten`` also make an existing
    directory we own, that no one else may write into, 0700."""
    p = Path(path)
    missing = []
    probe = p
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask; never wider than 0700
    if tighten and not missing and p.is_dir():
        st = p.stat()
        if st.st_uid == os.geteuid() and not st.st_mode & 0o022 and st.st_mode & 0o077:
            os.chmod(p, DIR_MODE)
    return p


def write_private(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` atomically into ``path`` as a 0600 file (never readable by others)."""
    write_atomic(path, data, mode=FILE_MODE)
