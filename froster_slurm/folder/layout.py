"""The archived folder's file names, which of them are ours, and where versions live.

docs/archive-format.md is the description of the whole format; this module is the one place
that spells the names (the writer, ``froster_slurm.archive``, and the readers, restore, purge,
catalog rebuild, all take them from here).

On a re-archive our own trace files must not be archived as data, but a user's file that only
happens to share a name must never be skipped or overwritten.  So a trace file counts as ours
only when its content says so: the JSON record carries ``"format": "froster-slurm-archive"``,
our HTML pages carry a ``<meta name="generator" content="froster-slurm">`` tag, and the
manifest is ours when the record beside it is.
"""

from __future__ import annotations

import json
import os
import stat

from ..archive.names import join_remote
from .schema import RECORD_FORMAT

RECORD_NAME = b"Froster.archive.json"
MANIFEST_NAME = b"Froster.manifest.md5"
INDEX_NAME = b"index.html"
INDEX_ALT_NAME = b"Froster.index.html"
BUNDLES_DIR = b"Froster.bundles"
VERSIONS_DIR = b"Froster.versions"  # later versions of an archive, beside the first
TMP_PREFIX = b".Froster-"
TMP_SUFFIX = b".tmp"
GENERATOR_META = b'<meta name="generator" content="froster-slurm">'
BUNDLE_DIR_REMOTE = BUNDLES_DIR.decode()  # bundles: <destination>/Froster.bundles/RUN-INDEX/
VERSIONS_DIR_REMOTE = VERSIONS_DIR.decode()  # version N >= 2: <base>/Froster.versions/N
TRACE_STORAGE_CLASS = "STANDARD"  # the trace copies beside the data: readable without a thaw

# Top-level names our objects use at the destination: a user's entry with one of these names
# travels inside a bundle so it can never collide with them.
RESERVED_TOP = frozenset({RECORD_NAME, MANIFEST_NAME, INDEX_ALT_NAME, BUNDLES_DIR,
                          VERSIONS_DIR})


def _read_head(path: bytes, limit: int = 1 << 16) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def is_our_record(path: bytes) -> bool:
    """A JSON archive record written by froster-slurm."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return False
            data = json.loads(f.read())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == RECORD_FORMAT


def is_our_page(path: bytes) -> bool:
    """An HTML page written by froster-slurm (it carries our generator tag near the top)."""
    head = _read_head(path)
    return head is not None and GENERATOR_META in head


def our_top_level(folder: bytes, names: set[bytes]) -> set[bytes]:
    """Which of the folder's top-level ``names`` are froster-slurm's own trace files."""
    found: set[bytes] = set()
    record_ours = RECORD_NAME in names and is_our_record(os.path.join(folder, RECORD_NAME))
    if record_ours:
        found.add(RECORD_NAME)
        if MANIFEST_NAME in names:
            found.add(MANIFEST_NAME)
    for page in (INDEX_NAME, INDEX_ALT_NAME):
        if page in names and is_our_page(os.path.join(folder, page)):
            found.add(page)
    found.update(n for n in names if n.startswith(TMP_PREFIX) and n.endswith(TMP_SUFFIX))
    return found


def tmp_name() -> bytes:
    """A fresh name for a trace file being written (``our_top_level`` knows it as ours)."""
    return TMP_PREFIX + os.urandom(6).hex().encode() + TMP_SUFFIX


def bundle_dir(run_tag: str, index: int) -> str:
    """The bundles of one archive, relative to its destination: one folder per archive, so a
    later re-archive never mixes its bundles with older ones."""
    return f"{BUNDLE_DIR_REMOTE}/{run_tag}-{index}"


def version_destination(base: str, version: int) -> str:
    """Where version ``version`` of a folder lives, given the folder's base destination."""
    if version <= 1:
        return base
    return join_remote(base, f"{VERSIONS_DIR_REMOTE}/{version}")


def index_name_for(folder: bytes) -> bytes:
    """``index.html`` unless someone else's index.html is there; then ``Froster.index.html``."""
    path = os.path.join(folder, INDEX_NAME)
    if not os.path.lexists(path) or is_our_page(path):
        return INDEX_NAME
    return INDEX_ALT_NAME
