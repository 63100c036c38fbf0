#!/usr/bin/env python3
"""A stand-in for pwalk 3.0.0 for tests where the real binary is not installed.

pwalk is not packaged for Debian or PyPI, and its code may not be vendored here, so tests of
the ``--engine pwalk`` adapter run this script instead unless a real ``pwalk`` is on PATH
(``pwalk_exe()``; the tests pass against both).  It reproduces the behaviour the adapter has to
cope with, as read off pwalk's source and checked against the real binary:

- rows ``%ju,%ju,%ld,"%s","%s",...`` with control bytes deleted from the path and extension,
  each deletion logged ``Bad File: <raw text>`` on stderr, the extension's own line included;
- directories and the root have extension ``""``; a file's is after the last ``.`` of its name;
- ``--NoSnap`` skips directories named ``.snapshot`` only; ``-x`` leaves out entries on another
  device (counted in pw_fcount, not summed in pw_dirsum, nothing said);
- ``Locked Dir: <path>`` and no row for a directory opendir refuses; exit code 0.

Single-threaded and depth-first, so its row order differs from pwalk's (pwalk's is random).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys

ROW = b'%d,%d,%d,"%s","%s",%d,%d,%d,%d,%d,%d,"%07o",%d,%d,%d,%d,%d\n'


def escape(raw: bytes, err) -> bytes:
    out = bytes(b for b in raw if b >= 32).replace(b'"', b'""')
    if len(out.replace(b'""', b'"')) != len(raw):
        err.write(b"Bad File: " + raw + b"\n")
    return out


def row(out, err, path: bytes, ext: bytes | None, st, pino: int, depth: int, fcount: int,
        dirsum: int) -> None:
    qpath = escape(path, err)
    qext = escape(ext, err) if ext else b""
    out.write(ROW % (st.st_ino, pino, depth, qpath, qext, st.st_uid, st.st_gid, st.st_size,
                     st.st_dev, st.st_blocks, st.st_nlink, st.st_mode, st.st_atime,
                     st.st_mtime, st.st_ctime, fcount, dirsum))


def walk(out, err, path: bytes, st, pino: int, depth: int, opts: dict) -> None:
    try:
        names = [e.name for e in os.scandir(path)]
    except OSError:
        err.write(b"Locked Dir: " + path + b"\n")
        return
    count = total = 0
    for name in names:
        count += 1
        child = path + b"/" + name
        try:
            cst = os.lstat(child)
        except OSError as e:
            err.write(b"threadID=0,rdepth=0 lstat: '%s' %s\n" % (e.strerror.encode(), child))
            continue
        if opts["x"] and cst.st_dev != opts["dev"]:
            continue
        total += cst.st_size
        if stat.S_ISDIR(cst.st_mode):
            if opts["nosnap"] and name == b".snapshot":
                continue
            walk(out, err, child, cst, st.st_ino, depth + 1, opts)
        else:
            dot = name.rfind(b".")
            row(out, err, child, name[dot + 1:] if dot > 0 else None, cst, st.st_ino, depth,
                -1, 0)
    row(out, err, path, None, st, pino, depth - 1, count, total)


def main(argv: list[bytes]) -> int:
    opts = {"nosnap": False, "x": False}
    out, err = sys.stdout.buffer, sys.stderr.buffer
    while argv and argv[0].startswith(b"-"):
        flag = argv.pop(0)
        if flag == b"--NoSnap":
            opts["nosnap"] = True
        elif flag in (b"--one-file-system", b"-x"):
            opts["x"] = True
        elif flag == b"--header":
            out.write(b'inode,parent-inode,directory-depth,"filename","fileExtension",UID,GID,'
                      b'st_size,st_dev,st_blocks,st_nlink,"st_mode",st_atime,st_mtime,'
                      b'st_ctime,pw_fcount,pw_dirsum\n')
    root = argv[0]
    st = os.lstat(root)
    opts["dev"] = st.st_dev
    walk(out, err, root, st, 0, 0, opts)
    return 0


def pwalk_exe(bindir: str | os.PathLike) -> str:
    """The real pwalk when on PATH, else this stand-in installed as ``bindir/pwalk``."""
    real = shutil.which("pwalk")
    if real:
        return real
    os.makedirs(bindir, exist_ok=True)
    exe = os.path.join(bindir, "pwalk")
    with open(exe, "w") as f:
        f.write(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})"
                "\nimport pwalk_standin\n"
                "sys.exit(pwalk_standin.main([a.encode('utf-8', 'surrogateescape') "
                "for a in sys.argv[1:]]))\n")
    os.chmod(exe, 0o755)
    return exe


if __name__ == "__main__":
    sys.exit(main([os.fsencode(a) for a in sys.argv[1:]]))
