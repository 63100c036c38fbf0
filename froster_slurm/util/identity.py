"""Who and where: the user and host names written into run settings, records and traces.

``getpass.getuser`` raises in a container or on a node whose passwd database has no entry
for the uid (``KeyError``, ``OSError``): the numeric uid then stands for the user, so that
writing a record never fails for lack of a name.
"""

from __future__ import annotations

import getpass
import os
import socket


def whoami() -> str:
    """The login name, else the numeric uid."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def hostname() -> str:
    return socket.gethostname()
