"""One classifier for rclone failures: permanent (a retry cannot help) or transient.

Why by cause and not by exit code: rclone exits 1 for a refused connection and for a bad
storage class alike, and S3 servers answer a bad request with a bare 400.  So each known cause
is a pattern over rclone's error lines with a sentence a person understands.  The last error
line that matches a cause decides (rclone prints earlier attempts first, the final error last);
a known permanent cause wins over transient noise from earlier attempts.  With no known cause
an rclone run that failed counts as transient (bounded by ``max_attempts``): a failure we
cannot name is more often the network than the request.

Permanent causes fail a task at once (``errors.EXIT_PERMANENT``) and the run does not
advise ``retry`` with the same settings; transient ones keep their back-off (``EXIT_TEMPFAIL``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    """A known reason rclone failed: its pattern, whether a retry can help, plain words."""

    name: str
    pattern: re.Pattern[str]
    permanent: bool
    words: str
    fix: str = ""


def _c(name: str, pattern: str, permanent: bool, words: str, fix: str = "") -> Cause:
    return Cause(name, re.compile(pattern, re.I), permanent, words, fix)


# Order matters only within one line: the first cause that matches it names it.
CAUSES: tuple[Cause, ...] = (
    _c("storage-class", r"InvalidStorageClass|invalid storage class|"
       r"InvalidArgument.*(storage|class)|storage.?class.*(not valid|invalid|unknown)",
       True, "the remote does not accept this storage class",
       "choose a class the remote defines (--storage-class; Ceph RGW knows only the classes "
       "its zone placement defines)"),
    _c("not-configured", r"didn't find section in config file|"
       r"NOTICE: Config file .* not found|unknown backend|couldn't find remote",
       True, "this rclone remote is not configured",
       "run `rclone config` (or check archive.rclone_config), then `froster-slurm check`"),
    _c("access-denied", r"AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|"
       r"\b403\b|Forbidden|permission denied|not authorized|authentication failed|"
       r"unable to authenticate|InvalidToken|ExpiredToken",
       True, "the remote refused access (credentials or permissions)",
       "check the remote's credentials and the bucket policy"),
    _c("missing-bucket", r"NoSuchBucket|bucket does not exist|InvalidBucketName|"
       r"directory not found.*bucket", True, "the bucket does not exist",
       "create the bucket, or correct the remote's path"),
    _c("hash-unsupported", r"hash (type )?(is )?(unsupported|not supported)|"
       r"hash unsupported|doesn't support (md5|hash)", True,
       "the remote cannot report the checksum verify needs",
       "use a remote that reports md5 (S3, local, sftp with md5sum), or crypt (checked with "
       "cryptcheck)"),
    _c("too-large", r"EntityTooLarge|object too large|file too large|too big|"
       r"exceeds the maximum|MaxObjectSize|QuotaExceeded|quota exceeded",
       True, "the object is larger than the remote allows (or over quota)",
       "split the file, or archive to a remote without this limit"),
    _c("name-too-long", r"KeyTooLong|name too long|file name too long|too long for",
       True, "a name is too long for the remote", ""),
    _c("bad-flag", r"unknown flag|unknown command|unknown shorthand|invalid argument .* for",
       True, "rclone was called with an option it does not know (another rclone version?)",
       "check archive.rclone and archive.rclone_flags"),
    _c("not-implemented", r"\b501\b|NotImplemented", True,
       "the remote does not implement this request", ""),
    _c("throttled", r"SlowDown|Throttl|TooManyRequests|\b429\b|RequestLimitExceeded",
       False, "the remote is throttling requests"),
    _c("server-error", r"\b50[0234]\b|InternalError|ServiceUnavailable|server misbehaving|"
       r"StatusCode: 5\d\d", False, "the remote had a server error"),
    _c("timeout", r"timed? ?out|timeout|context deadline exceeded|RequestTimeout",
       False, "the remote did not answer in time"),
    _c("connection", r"connection refused|connection reset|broken pipe|no such host|"
       r"network is unreachable|dial tcp|TLS handshake|unexpected EOF|\bEOF\b|"
       r"send request failed|temporary failure|try again", False,
       "the remote could not be reached"),
    _c("corrupted", r"corrupted on transfer", False, "data was corrupted on the way; resent"),
    # After the network causes: "Failed to create file system for X: dial tcp ... refused"
    # stays transient; what remains is rclone refusing the remote's own settings (a union
    # with one upstream, a missing option), which no retry changes.
    _c("bad-remote-config", r"Failed to create file system for", True,
       "rclone cannot set this remote up from its config",
       "check it with `rclone lsf REMOTE:` and `froster-slurm check --to REMOTE:`"),
    # Last: a plain 400 is a request the server will refuse again (Ceph RGW answers an
    # undefined storage class with "400 InvalidArgument: UnknownError", rclone 1.60 with a
    # bare "status code: 400"); the transient 400s (RequestTimeout) matched above.
    _c("bad-request", r"api error InvalidArgument|InvalidRequest|status ?code: 400\b",
       True, "the remote rejected the request as invalid (with S3 most often a storage class "
       "it does not define)", "check --storage-class against the classes the remote defines"),
)


def find_cause(lines: Iterable[str]) -> Cause | None:
    """The cause named by the last error line that matches one (see the module docstring)."""
    found_transient: Cause | None = None
    for line in reversed(list(lines)):
        for cause in CAUSES:
            if cause.pattern.search(line):
                if cause.permanent:
                    return cause
                found_transient = found_transient or cause
                break
    return found_transient


def explain(cause: Cause | None, detail: str) -> str:
    """Plain words first, the fix, then rclone's own last line for whoever debugs it."""
    if cause is None:
        return detail
    fix = f"; {cause.fix}" if cause.fix else ""
    return f"{cause.words}{fix} ({detail})"
