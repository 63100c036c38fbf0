"""The storage classes froster-slurm knows, defined once.

`config set archive.storage_class`, the checks before a run is queued (`preflight.py`), the
archive record and the cost estimate all read this module, so a class name is spelt in one
place.  The S3 names are the ones AWS S3 accepts for ``x-amz-storage-class`` (rclone passes the
value through unchanged); a misspelt one (``DEEP_ARCHIV``) otherwise surfaces hours later as a
bare ``status code: 400`` inside the job.

``NO_CLASS`` is what the record, catalog and index.html say for a remote that has no storage
classes at all (a local path, sftp, an alias of a local path, ...): they must never claim a
class the data is not in.
"""

from __future__ import annotations

import difflib

# Every storage class S3 accepts, most used for archiving first.
S3_STORAGE_CLASSES: tuple[str, ...] = (
    "DEEP_ARCHIVE",
    "GLACIER",
    "GLACIER_IR",
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "REDUCED_REDUNDANCY",
    "OUTPOSTS",
    "SNOW",
    "EXPRESS_ONEZONE",
)

# Classes whose objects must be restored (thawed) before they can be read.
THAW_CLASSES: tuple[str, ...] = ("GLACIER", "DEEP_ARCHIVE")

# Classes the Glacier family shares (index.html warns about restore times for these).
GLACIER_CLASSES: tuple[str, ...] = ("GLACIER", "DEEP_ARCHIVE", "GLACIER_IR")

# What a remote without storage classes records instead of a class name.
NO_CLASS = "none"


def is_s3_class(name: str) -> bool:
    """True when ``name`` is an S3 storage class, spelt exactly (S3 is case-sensitive)."""
    return name in S3_STORAGE_CLASSES


def suggest(name: str) -> str | None:
    """The known class closest to a misspelt ``name`` ("DEEP_ARCHIV" -> "DEEP_ARCHIVE")."""
    upper = name.strip().upper().replace("-", "_").replace(" ", "_")
    if upper in S3_STORAGE_CLASSES:
        return upper
    close = difflib.get_close_matches(upper, S3_STORAGE_CLASSES, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_class_message(name: str, what: str = "storage class") -> str:
    """One line: the bad name, "did you mean", and every valid name."""
    hint = suggest(name)
    mean = f"did you mean {hint}? " if hint else ""
    return (f"{what} {name!r} is not an S3 storage class; {mean}"
            f"valid: {', '.join(S3_STORAGE_CLASSES)}")
