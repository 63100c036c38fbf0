"""Proof for crypt remotes: ``rclone cryptcheck`` before the data goes cold.

A crypt remote cannot give the md5 of our plain data (``lsf --hash MD5`` prints nothing), so
the size+md5 listing that proves every other remote proves only sizes here.  ``rclone
cryptcheck SRC CRYPT:DST`` reads each object's nonce (its first 32 bytes), encrypts the local
file with it and compares the result's md5 with the md5 the underlying remote holds: a proof
of content, nothing downloaded but the headers.  It cannot read a nonce out of Deep Archive,
so with a cold class that must be thawed the data is uploaded in STANDARD, proven, and then
moved to the cold class by a server-side tier change on the S3 backend itself (``rclone
settier`` with the encrypted names; rclone offers it for ``provider = AWS``).  The tier of
every object is then read back (``lsjson --metadata``).  Where rclone cannot change the tier
(other S3 providers: Ceph RGW answers "does not support settier") and the class needs a thaw,
preflight refuses before anything is queued (``preflight._crypt_cold``) and the task again
before uploading, instead of leaving unproven data behind.  A remote in ``remotes.no_thaw``
(Ceph RGW, whose cold classes read at once) is uploaded straight into its class and proven
by cryptcheck there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import PermanentError
from ..remotes.rclone import Rclone, classify
from ..remotes.resolve import RemoteInfo, config_dump
from ..remotes.thaw import stored_names, targets
from .names import join_remote
from .verify import Expect, Report, check_remote, listing


def cryptcheck(rclone: Rclone, src: bytes | str, dst: str, names: list[str], work: Path,
               log_name: str) -> dict[str, str]:
    """``rclone cryptcheck --one-way`` of ``names`` (relative to both): name -> one of
    'match', 'differ', 'missing', 'error'."""
    work.mkdir(parents=True, exist_ok=True)
    lst = work / f"{log_name}.lst"
    combined = work / f"{log_name}.combined"
    lst.write_bytes(b"".join(os.fsencode(n) + b"\n" for n in sorted(names)))
    combined.unlink(missing_ok=True)
    res = rclone.run(["cryptcheck", os.fsencode(src), os.fsencode(dst), "--one-way",
                      "--files-from-raw", str(lst), "--combined", str(combined)], log_name)
    kinds = {"=": "match", "*": "differ", "-": "missing", "!": "error"}
    out: dict[str, str] = {}
    if combined.exists():
        for raw in combined.read_bytes().split(b"\n"):
            if len(raw) > 2 and raw[1:2] == b" " and raw[:1].decode() in kinds:
                out[os.fsdecode(raw[2:])] = kinds[raw[:1].decode()]
    if res.returncode != 0 and not out:
        raise classify(res, "cryptcheck")
    for name in names:
        out.setdefault(name, "missing")
    return out


def can_set_tier(info: RemoteInfo) -> bool:
    """rclone changes an S3 object's tier in place only with ``provider = AWS``."""
    s3 = [b for b in info.backends if b.type == "s3"]
    return bool(s3) and all(b.provider.lower() == "aws" for b in s3)


def set_tier(rclone: Rclone, destination: str, objects: list[str], tier: str, work: Path
             ) -> None:
    """Move ``objects`` (names under the crypt destination) to ``tier`` on the S3 backend,
    then read every object's tier back; raise if one is not there."""
    for n, (root, names) in enumerate(targets(rclone, config_dump(rclone), destination,
                                              objects)):
        lst = work / f"settier-{n}.lst"
        lst.write_bytes(b"".join(os.fsencode(k) + b"\n" for k in sorted(names)))
        res = rclone.run(["settier", tier, os.fsencode(root), "--files-from-raw", str(lst)],
                         "settier")
        if res.returncode != 0 or any("Failed to settier" in t for t in res.tail):
            raise classify(res, "settier")
    res, raw = rclone.capture(["lsjson", "-R", "--files-only", "--metadata",
                               os.fsencode(destination.rstrip("/") + "/")], "settier")
    if res.returncode != 0:
        raise classify(res, "lsjson --metadata")
    tiers = {str(e.get("Path")): str((e.get("Metadata") or {}).get("tier", ""))
             for e in json.loads(raw or b"[]")}
    # JSON shows a name's invalid UTF-8 bytes as U+FFFD: compare in that form
    wrong = [o for o in objects if tiers.get(_as_json_name(o), "") != tier]
    if wrong:
        raise PermanentError(f"{len(wrong)} object(s) are not in {tier} after the tier change "
                             f"(e.g. {wrong[0]}: {tiers.get(wrong[0]) or 'not listed'})")


def prove(rclone: Rclone, info: RemoteInfo, expected: dict[str, Expect], dst: str,
          work: Path, log_name: str, sources: dict[str, bytes | str | Path],
          sizes_only: bool = False) -> Report:
    """The proof for ``dst``: size+md5 from the listing, or under crypt sizes from the listing
    and content by ``cryptcheck`` against the local copies in ``sources`` (remote sub-folder
    prefix, '' for the top, -> the local folder holding those names).  ``sizes_only``: the
    data is already cold, its content was proven before the tier change."""
    if info.hash_passthrough:
        return check_remote(rclone, expected, dst, work, log_name)
    report = check_remote(rclone, expected, dst, work, log_name, hashes=False)
    if sizes_only or not report.matched:
        return report
    prefixes = sorted(sources, key=len, reverse=True)
    groups: dict[str, list[str]] = {}
    for rel in sorted(report.matched):
        prefix = next(p for p in prefixes if not p or rel.startswith(p + "/"))
        groups.setdefault(prefix, []).append(rel)
    for n, (prefix, rels) in enumerate(sorted(groups.items())):
        inner = [r[len(prefix) + 1:] if prefix else r for r in rels]
        sub = join_remote(dst, prefix) if prefix else dst
        got = cryptcheck(rclone, sources[prefix], sub, inner, work, f"{log_name}-crypt{n}")
        for rel, name in zip(rels, inner, strict=True):
            status = got.get(name, "missing")
            if status == "match":
                continue
            report.matched.discard(rel)
            {"differ": report.differ, "missing": report.missing}.get(
                status, report.errors).append(rel)
            report.details[rel] = f"cryptcheck: {status}"
    return report


def _as_json_name(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def stored_listing(rclone: Rclone, destination: str, objects: list[str], work: Path,
                   log_name: str) -> dict[str, tuple[int, str]]:
    """Size and md5 of each object's ciphertext as the backend under the crypt stores it
    (our name -> (size, md5)); '' when the backend cannot tell an md5."""
    out: dict[str, tuple[int, str]] = {}
    for n, (_kind, root, names) in enumerate(stored_names(
            rclone, config_dump(rclone), destination, objects)):
        got = listing(rclone, root, list(names), work, f"{log_name}-{n}") or {}
        for key, rel in names.items():
            if key in got:
                out[rel] = got[key]
    return out


def check_stored(rclone: Rclone, destination: str, stored: dict[str, list],
                 expected: dict[str, Expect], work: Path, log_name: str) -> Report:
    """Purge's and restore's proof under crypt: every object's ciphertext still has the size
    and md5 it had when cryptcheck proved it at archive time (``record["stored"]``), read
    from the backend's own listing.  Objects the record has no stored proof for (the trace
    copy) are compared by size through the crypt remote."""
    report = Report(expected=len(expected))
    known = {rel: e for rel, e in expected.items() if rel in stored}
    if known:
        now = stored_listing(rclone, destination, sorted(known), work, log_name)
        for rel in sorted(known):
            size, md5 = (int(stored[rel][0]), str(stored[rel][1]))
            have = now.get(rel)
            if have is None:
                report.missing.append(rel)
            elif have[0] != size:
                report.wrong_size.append(rel)
                report.details[rel] = f"ciphertext of {have[0]} bytes, {size} archived"
            elif not md5 or have[1] != md5:
                report.differ.append(rel)
                report.details[rel] = f"ciphertext md5 {have[1] or 'unknown'}, {md5} archived"
            else:
                report.matched.add(rel)
    rest = {rel: e for rel, e in expected.items() if rel not in stored}
    if rest:
        other = check_remote(rclone, rest, destination, work, f"{log_name}-sizes", hashes=False)
        report.matched |= other.matched
        report.missing += other.missing
        report.wrong_size += other.wrong_size
        report.details.update(other.details)
    return report
