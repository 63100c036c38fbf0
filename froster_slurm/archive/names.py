"""How one name is written in each place it goes: object keys, md5sum lines, shell commands.

Names are bytes.  Each target has its own rules, and getting one wrong either loses data or runs
a command nobody asked for, so every rule lives here:

* an individual remote object needs a name every rclone backend stores and lists back
  unchanged (``is_object_safe``); anything else travels inside a tar bundle, which keeps raw
  bytes;
* the destination folder itself comes from the source path and cannot be bundled: its control
  characters become control pictures (``encode_ctl``), and the result is quoted for rclone's
  command line, which would otherwise decode those pictures back (``rclone_std``);
* md5sum manifest lines are ``froster_slurm.folder.manifest``'s (the folder format);
* restore commands shown to people quote any byte for bash (``shell_quote``);
* credentials embedded in an rclone remote string never reach a log, state file or page
  (``redact``).
"""

from __future__ import annotations

import os
import re
import shlex

# Characters rclone's encodings use as replacements or quote marks (control pictures, the
# "‛" quote, full-width ASCII).  A name holding them may be rewritten by some backend, so it is
# bundled rather than trusted to round-trip as an object key.
_RCLONE_SPECIAL = re.compile("[\u2400-\u2421\u201b\uff01-\uff5e]")
MAX_OBJECT_REL = 700  # bytes; S3 keys are at most 1024 and the destination prefix needs room
QUOTE = "\u201b"  # rclone's quote character for literal look-alikes


def is_object_safe(rel: bytes) -> bool:
    """True when ``rel`` (a path relative to the folder) can be an object key as it is.

    Valid UTF-8, no control characters (C0, DEL, C1), no character rclone uses in its own
    encodings, components of at most 255 bytes, and short enough for an S3 key.
    """
    if not rel or len(rel) > MAX_OBJECT_REL:
        return False
    try:
        text = rel.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        return False
    if _RCLONE_SPECIAL.search(text):
        return False
    return all(part and len(part.encode()) <= 255 for part in text.split("/"))


def encode_ctl(path: bytes) -> str:
    """The source path as the remote's name for it: control bytes become control pictures.

    ``\\n`` -> ``␊`` (U+240A), any byte 0x01-0x1F -> U+2400+byte, DEL -> ``␡``; a literal
    control picture or ``‛`` already in the name gets a ``‛`` in front, so the mapping is
    reversible and two different folders never share a destination.  Other bytes are kept
    (non-UTF-8 ones as surrogateescape; rclone stores them reversibly).  Control characters
    must go: S3 (moto at least) cannot take a newline in a key.
    """
    out = []
    for ch in os.fsdecode(path):
        o = ord(ch)
        if o < 0x20:
            out.append(chr(0x2400 + o))
        elif o == 0x7F:
            out.append("\u2421")
        elif 0x2400 <= o <= 0x2421 or ch == QUOTE:
            out.append(QUOTE + ch)
        else:
            out.append(ch)
    return "".join(out)


# Characters rclone's "Standard" path encoding (Zero, Slash, Ctl, Del, Dot) decodes when it
# reads a path from its command line; a literal one must be quoted with ‛ to survive.
_STD_SPECIAL = {chr(c) for c in range(0x2400, 0x2420)} | {"\u2421", "\uff0f", QUOTE}


def rclone_std(name: str) -> str:
    """One path component written so rclone's command line reads back exactly ``name``.

    rclone decodes control pictures (``␊`` means a newline), ``／`` (a slash) and ``．``
    names on its command line; quoting them with ``‛`` keeps them literal.
    """
    if name in ("\uff0e", "\uff0e\uff0e"):
        return "".join(QUOTE + c for c in name)
    if not any(c in _STD_SPECIAL for c in name):
        return name
    return "".join(QUOTE + c if c in _STD_SPECIAL else c for c in name)


def rclone_local(path: bytes | str | os.PathLike) -> bytes:
    """A local path spelt so that rclone's command line reads back exactly ``path``.

    rclone reads a path argument in its "standard" encoding: ``/tmp/a␊b`` would name
    ``/tmp/a<newline>b``.  Every component goes through ``rclone_std``; other bytes are kept.
    """
    raw = os.fsencode(path)
    return b"/".join(os.fsencode(rclone_std(os.fsdecode(c))) if c else c
                     for c in raw.split(b"/"))


def is_local_remote(remote: str) -> bool:
    """An absolute local path rather than an rclone ``name:path`` remote."""
    return remote.startswith("/")


def destination(remote: str, prefix: str, folder: bytes) -> str:
    """Where a folder's data lands: ``REMOTE/<prefix>/<absolute folder without the leading />``.

    The result is rclone command-line text (``os.fsencode`` gives the argument bytes): give it
    to rclone as it is, e.g. in a restore command; it is also what the record calls
    ``destination``.  For ordinary paths it is the plain path.
    """
    folder = os.path.normpath(folder)
    if not folder.startswith(b"/"):
        raise ValueError("folder must be absolute")
    tail = "/".join(rclone_std(encode_ctl(c)) for c in folder.lstrip(b"/").split(b"/") if c)
    parts = [p for p in (prefix.strip("/"), tail) if p]
    base = remote.rstrip("/") if remote not in ("/",) else ""
    if base.endswith(":"):
        return base + "/".join(parts)
    return base + "/" + "/".join(parts)


def join_remote(base: str, rel: str) -> str:
    """``base/rel`` for an rclone path (``name:`` roots take no slash)."""
    if base.endswith((":", "/")):
        return base + rel
    return base + "/" + rel


def shell_quote(path: bytes | str) -> str:
    """A bash word that expands to exactly ``path`` (any bytes).

    Printable UTF-8 uses ordinary single quotes; anything else uses ``$'...'`` with ``\\xHH``
    escapes, which bash turns back into the raw bytes.
    """
    raw = os.fsencode(path)
    try:
        text = raw.decode("utf-8")
        if not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
            return shlex.quote(text)
    except UnicodeDecodeError:
        pass
    out = []
    for b in raw:
        if b == 0x27:
            out.append("\\'")
        elif b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "$'" + "".join(out) + "'"


_SECRET_PARAM = re.compile(
    r"(?i)(?:(?<=[,:\s?&])|^)((?:x-amz-)?[a-z0-9_-]*(?:secret|key|pass|password|token|sas|"
    r"auth|credential|session|signature)[a-z0-9_-]*)=(\"[^\"]*\"|'[^']*'|[^,:\s&]*)")
_URL_PASSWORD = re.compile(r"(?i)(://[^/\s:@]+:)[^@\s/]+@")
# rclone >= 1.7x with -vv: ``Setting --s3-access-key-id "VALUE" from environment variable``.
_SECRET_FLAG = re.compile(
    r"(?i)(--[a-z0-9-]*(?:secret|key|pass|password|token|sas|auth|credential|session|"
    r"signature)[a-z0-9-]*) (\"(?:[^\"\\]|\\.)*\"|'[^']*')")


def redact(text: str) -> str:
    """Hide credential values from rclone connection strings and URLs in ``text``.

    Option names may be spelt with dashes too: rclone -vv logs ``Setting default for
    s3-secret-access-key="..." from environment variable ...``.
    """
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)
    text = _SECRET_FLAG.sub(lambda m: f'{m.group(1)} "***"', text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}***@", text)
