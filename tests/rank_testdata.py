"""Hand-written pwalk crawls for the rank tests, with their figures worked out by hand.

Rows are formatted with pwalk's own printf template (see /work/shared/pwalk-format.md), so
these files are byte-for-byte what pwalk would write for such a tree.
"""

from __future__ import annotations

import gzip
from pathlib import Path

NOW = 1_700_000_000
DAY = 86400
HEADER = (b'inode,parent-inode,directory-depth,"filename","fileExtension",UID,GID,st_size,'
          b'st_dev,st_blocks,st_nlink,"st_mode",st_atime,st_mtime,st_ctime,pw_fcount,pw_dirsum\n')
REG, LNK, DIR, FIFO = 0o100644, 0o120777, 0o040755, 0o010644


def row(path: bytes, inode: int, *, mode: int = REG, size: int = 0, blocks: int = 0,
        nlink: int = 1, parent: int = 1, depth: int = 0, uid: int = 1000, gid: int = 1000,
        atime: int = NOW, mtime: int = NOW, fcount: int = -1, dirsum: int = 0,
        dev: int = 2049) -> bytes:
    """One row exactly as pwalk prints it (only ``"`` in the name is escaped, doubled)."""
    name = path.replace(b'"', b'""')
    return (b'%d,%d,%d,"%s","%s",%d,%d,%d,%d,%d,%d,"%07o",%d,%d,%d,%d,%d\n'
            % (inode, parent, depth, name, b"", uid, gid, size, dev, blocks, nlink, mode,
               atime, mtime, mtime, fcount, dirsum))


def tree_rows() -> list[bytes]:
    """The hand tree.  Figures (see EXPECTED): subdirectory inode sizes (4096) never count, a
    FIFO does not count, inode 50 has three paths (two in /r/sub, one in /r/sub/deep)."""
    t_old, t_mid = NOW - 400 * DAY, NOW - 100 * DAY
    return [
        row(b"/r", 1, mode=DIR, size=4096, blocks=8, parent=0, depth=-1, uid=0, gid=0,
            fcount=6, dirsum=100 + 5 + 0 + 4 * 4096),
        row(b"/r/a.dat", 2, size=100, blocks=8, atime=t_old, mtime=t_old),
        row(b"/r/link", 3, mode=LNK, size=5, atime=t_mid, mtime=t_old),
        row(b"/r/fifo", 4, mode=FIFO, size=0, atime=NOW, mtime=NOW),
        row(b"/r/sub", 10, mode=DIR, size=4096, blocks=8, uid=1001, gid=1001, fcount=4,
            dirsum=1000 + 1000 + 3000 + 4096),
        row(b"/r/sub/b.dat", 50, size=1000, blocks=8, nlink=3, parent=10, depth=1,
            atime=t_old, mtime=t_old),
        row(b"/r/sub/b2.dat", 50, size=1000, blocks=8, nlink=3, parent=10, depth=1,
            atime=t_old, mtime=t_old),
        row(b"/r/sub/c.dat", 51, size=3000, blocks=8, parent=10, depth=1, atime=t_old,
            mtime=t_old),
        row(b"/r/sub/deep", 20, mode=DIR, size=4096, blocks=8, parent=10, depth=1, uid=1002,
            gid=1002, fcount=2, dirsum=1007),
        row(b"/r/sub/deep/d.dat", 60, size=7, blocks=8, parent=20, depth=2, atime=t_mid,
            mtime=t_mid),
        row(b"/r/sub/deep/h.dat", 50, size=1000, blocks=8, nlink=3, parent=20, depth=2,
            atime=t_old, mtime=t_old),
        row(b"/r/caf\xe9", 30, mode=DIR, size=4096, blocks=8, fcount=1, dirsum=20),
        row(b"/r/caf\xe9/x\x85y.dat", 70, size=20, blocks=8, parent=30, depth=1,
            atime=t_old, mtime=t_old),
        row(b"/r/empty", 40, mode=DIR, size=4096, blocks=8, fcount=0, dirsum=0),
    ]


# folder -> (bytes, files, total_bytes, total_files, direct allocated, direct newest mtime,
#            direct newest atime, depth, uid)
EXPECTED = {
    b"/r": (105, 2, 4132, 6, 4096, NOW - 400 * DAY, NOW - 100 * DAY, -1, 0),
    b"/r/sub": (4000, 2, 4007, 3, 8192, NOW - 400 * DAY, NOW - 400 * DAY, 0, 1001),
    b"/r/sub/deep": (1007, 2, 1007, 2, 8192, NOW - 100 * DAY, NOW - 100 * DAY, 1, 1002),
    b"/r/caf\xe9": (20, 1, 20, 1, 4096, NOW - 400 * DAY, NOW - 400 * DAY, 0, 1000),
    b"/r/empty": (0, 0, 0, 0, 0, 0, 0, 0, 1000),
}


def write_csv(path: Path, rows: list[bytes], header: bool = True) -> Path:
    path.write_bytes((HEADER if header else b"") + b"".join(rows))
    return path


def write_gz(path: Path, rows: list[bytes], header: bool = True) -> Path:
    with gzip.open(path, "wb") as f:
        f.write((HEADER if header else b"") + b"".join(rows))
    return path
