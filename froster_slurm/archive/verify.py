"""Step 5, verify: size AND md5 of every object, from the remote's own listing, against ours.

This is the one proof function: the archive's verify step, purge's remote check and restore's
check before download all call ``check_remote``.

Nothing is downloaded: ``rclone lsf -R --files-only --format shp --hash MD5 --files-from-raw
LIST DEST`` asks the remote for the size and md5 of exactly the objects we uploaded (S3: the
ETag of a single-part object; for a multipart object the md5 rclone stored in its metadata at
upload; a local or sftp remote hashes its file).  ``lsf`` and not ``lsjson``: JSON turns a
name's invalid UTF-8 bytes into U+FFFD, ``lsf`` prints them as they are.

Why the size too: a multipart object's md5 is metadata that anyone who can write the bucket
can copy.  An object replaced by other data carrying the original's ``md5chksum`` passed an
md5-only check; its size gives it away.  (A forgery of the same size with copied metadata is
not detectable without reading the data back: restore hashes every byte it downloads.)

Failures: an object that is missing, has another size, another md5, or no md5 the remote can
tell ("could not be checked") fails the verification, each named.  Any rclone error (the remote
unreachable, access denied) raises instead: an unreadable remote is never mistaken for missing
objects.  With ``hashes=False`` (crypt remotes: the remote has no md5 of our plain data) only
sizes are compared here and the caller proves the content another way (``cryptcheck``).

The same check, run before an upload that resumes, tells which objects are already there and
intact, so they are not sent again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..remotes.rclone import Rclone, classify


class Expect(NamedTuple):
    """What one object must be: its md5 and its size in bytes."""

    md5: str
    size: int


@dataclass
class Report:
    """What the remote holds compared with what it should hold."""

    expected: int
    matched: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (len(self.matched) == self.expected and not self.missing and not self.differ
                and not self.wrong_size and not self.errors)

    def summary(self) -> str:
        parts = [f"{len(self.matched)}/{self.expected} objects match"]
        for names, what in ((self.missing, "missing"),
                            (self.wrong_size, "with another size"),
                            (self.differ, "with another md5"),
                            (self.errors, "whose md5 the remote could not tell")):
            if names:
                first = names[0]
                why = self.details.get(first, "")
                parts.append(f"{len(names)} {what} (e.g. {first}{': ' + why if why else ''})")
        return ", ".join(parts)


def listing(rclone: Rclone, dst: str, names: list[str], work: Path, log_name: str,
            hashes: bool = True) -> dict[str, tuple[int, str]] | None:
    """Size and md5 of each listed object that exists under ``dst`` (None: no such folder)."""
    work.mkdir(parents=True, exist_ok=True)
    names_file = work / f"{log_name}.lst"
    out = work / f"{log_name}.lsf"
    with open(names_file, "wb") as f:
        f.write(b"".join(os.fsencode(rel) + b"\n" for rel in sorted(names)))
    # A trailing slash: rclone 1.75 takes an S3 path it cannot HEAD (server down) for a
    # file and then fails with "can't limit to single files", hiding the real error.
    folder = dst if dst.endswith((":", "/")) else dst + "/"
    res = rclone.lsf(folder, names_file, out, log_name, hashes)
    if res.returncode == 3:  # directory not found: nothing was uploaded there yet
        return None
    if res.returncode != 0:
        raise classify(res, "lsf")
    got: dict[str, tuple[int, str]] = {}
    for raw in out.read_bytes().split(b"\n"):
        size, sep1, rest = raw.partition(b"|")
        md5, sep2, name = rest.partition(b"|")
        if not (sep1 and sep2) or not size.lstrip(b"-").isdigit():
            continue
        got[os.fsdecode(name)] = (int(size), md5.decode("ascii", "replace").strip().lower())
    return got


def check_remote(rclone: Rclone, expected: dict[str, Expect], dst: str, work: Path,
                 log_name: str, hashes: bool = True) -> Report:
    """Compare ``expected`` (name relative to ``dst`` -> Expect) with what ``dst`` holds.

    Raises (transient/permanent) when rclone fails, e.g. the remote is unreachable; a remote
    that answers with wrong or missing objects gives a Report naming them.
    """
    report = Report(expected=len(expected))
    if not expected:
        return report
    got = listing(rclone, dst, list(expected), work, log_name, hashes)
    if got is None:
        report.missing = sorted(expected)
        return report
    for rel, want in sorted(expected.items()):
        if not isinstance(want, Expect):  # an md5 alone is not proof: refuse, loudly
            raise TypeError(f"check_remote needs Expect(md5, size) for {rel!r}, got {want!r}")
        have = got.get(rel)
        if have is None:
            report.missing.append(rel)
            continue
        size, md5 = have
        if size != want.size:
            report.wrong_size.append(rel)
            report.details[rel] = f"{size} bytes on the remote, {want.size} archived"
        elif not hashes:
            report.matched.add(rel)
        elif not md5:
            report.errors.append(rel)
        elif md5 != want.md5.lower():
            report.differ.append(rel)
            report.details[rel] = f"md5 {md5} on the remote, {want.md5} archived"
        else:
            report.matched.add(rel)
    return report
