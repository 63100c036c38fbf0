"""Step 5, verify: the remote's own md5 of every object against the hashes we computed.

Nothing is downloaded: ``rclone check --checkfile md5 SUMFILE DEST --one-way`` compares our
sum file with the hashes the remote reports (S3: the ETag of a single-part object, and for a
multipart object the md5 rclone stored in its metadata at upload; local: md5 of the file).
Every expected object must come back as ``=`` in rclone's combined report.  Missing (``+``),
different (``*``), unreadable (``!``) or absent from the report all fail, and so does rclone's
"N hashes could not be checked" notice, which rclone 1.60 prints with exit code 0.

The same check, run before an upload that resumes, tells which objects are already there and
intact, so they are not sent again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .rclone import Rclone, access_failed, classify


@dataclass
class Report:
    """What the remote holds compared with what it should hold."""

    expected: int
    matched: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unchecked: int = 0

    @property
    def ok(self) -> bool:
        return (len(self.matched) == self.expected and not self.missing and not self.differ
                and not self.errors and self.unchecked == 0)

    def summary(self) -> str:
        parts = [f"{len(self.matched)}/{self.expected} objects match"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing (e.g. {self.missing[0]})")
        if self.differ:
            parts.append(f"{len(self.differ)} with a different md5 (e.g. {self.differ[0]})")
        if self.errors:
            parts.append(f"{len(self.errors)} not checkable (e.g. {self.errors[0]})")
        if self.unchecked:
            parts.append(f"{self.unchecked} hashes could not be checked")
        return ", ".join(parts)


def write_sumfile(path: Path, expected: dict[str, str]) -> None:
    """md5sum-style lines rclone reads: ``<md5>  <path relative to the destination>``.

    Only object-safe names reach this file (no newline, valid UTF-8), so no escaping is
    needed; rclone's sum-file reader takes the rest of the line as the name.
    """
    with open(path, "w", encoding="utf-8") as f:
        for rel, md5 in sorted(expected.items()):
            f.write(f"{md5}  {rel}\n")


def check_remote(rclone: Rclone, expected: dict[str, str], dst: str, work: Path,
                 log_name: str) -> Report:
    """Compare ``expected`` (relative name -> md5) with what ``dst`` holds.

    Raises (transient/permanent) only when the check itself could not run, e.g. the remote is
    unreachable; a remote that answers with wrong or missing objects gives a Report.
    """
    report = Report(expected=len(expected))
    if not expected:
        return report
    work.mkdir(parents=True, exist_ok=True)
    sumfile = work / f"{log_name}.md5"
    combined = work / f"{log_name}.combined"
    write_sumfile(sumfile, expected)
    combined.unlink(missing_ok=True)
    res = rclone.check(sumfile, dst, combined, log_name)
    status: dict[str, str] = {}
    try:
        for line in combined.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            if len(line) >= 2 and line[1] == " ":
                status[line[2:]] = line[0]
    except FileNotFoundError:
        pass
    if res.returncode == 3 and not status:
        report.missing = sorted(expected)  # the destination folder does not exist yet
        return report
    listed = any(s in "=+*" for s in status.values())
    if res.returncode != 0 and (not listed or access_failed(res)):
        # The remote could not be listed or read: rclone then calls everything "missing",
        # which must not count as a failed verification.
        raise classify(res, "check")
    for rel in sorted(expected):
        s = status.get(rel)
        if s == "=":
            report.matched.add(rel)
        elif s == "+":
            report.missing.append(rel)
        elif s == "*":
            report.differ.append(rel)
        else:
            report.errors.append(rel)
    report.unchecked = res.unchecked
    return report
