"""Turn downloaded objects into a verified copy of the folder, inside a staging directory.

Why not ``tarfile.extractall``: a bundle is data from the outside world.  Only members the
record lists for that bundle are written, each one through directories opened without
following links (``safefs.DirCache``), so a crafted member name (``../x``, an absolute path, a
name under a symlink member) cannot write outside the staging directory.  Names are the raw
bytes the archive stage wrote (pax ``hdrcharset=BINARY`` read back with surrogateescape).

After unpacking, every regular file of the record is hashed from disk and compared with the
manifest; nothing is placed into the target before all of them match.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import DataError
from ..util.paths import display
from .members import MemberCheck
from .record import Archive, Bundle
from .safefs import CHUNK, DirCache, hash_at, md5_path


def _clear(dfd: int, name: bytes) -> None:
    """Remove what an interrupted earlier unpack left at ``name`` (never a directory)."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dfd)


def extract_bundle(tar_path: Path, bundle: Bundle, data: DirCache, arch: Archive) -> int:
    """Write the bundle's members under the staging root; returns how many were written.

    Every member is first checked against the record (``members.MemberCheck``): listed for
    this bundle, once, of the record's type, hard links only within their own group, symlinks
    pointing where the record says.  Anything else refuses the whole bundle.
    """
    check = MemberCheck(arch, bundle)
    n = 0
    with tarfile.open(tar_path, "r:", encoding="utf-8", errors="surrogateescape") as tar:
        for m in tar:
            rel = check.check(m)
            dfd, name = data.parent_of(rel, create=True)
            if m.isdir():
                try:
                    os.mkdir(name, 0o700, dir_fd=dfd)
                except FileExistsError:
                    pass
            elif m.isreg():
                _clear(dfd, name)
                src = tar.extractfile(m)
                if src is None:
                    raise DataError(f"{bundle.name}: cannot read member {display(rel)}")
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                             os.O_CLOEXEC, 0o600, dir_fd=dfd)
                with os.fdopen(fd, "wb") as out:
                    while block := src.read(CHUNK):
                        out.write(block)
            elif m.issym():
                _clear(dfd, name)
                os.symlink(arch.links[rel].target, name, dir_fd=dfd)
            else:  # a hard link within its group (MemberCheck): link to the staged first name
                sfd, sname = data.parent_of(os.fsencode(m.linkname))
                _clear(dfd, name)
                os.link(sname, name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
            n += 1
    return n


def check_object(path: Path, want_md5: str, what: str) -> None:
    """A downloaded object must have the md5 the record names."""
    got = md5_path(os.fsencode(path))
    if got != want_md5:
        raise DataError(f"{what}: md5 {got} after download, the record says {want_md5}")


def verify_staged(arch: Archive, data: DirCache, workers: int,
                  skip: Callable[[bytes], bool] = lambda rel: False) -> int:
    """Hash every staged regular file against the manifest; raise DataError on the first
    mismatch or missing file.  Returns how many were checked."""
    jobs = [(rel, *data.parent_of(rel)) for rel in sorted(arch.files) if not skip(rel)]

    def one(job: tuple[bytes, int, bytes]) -> tuple[bytes, str | None]:
        rel, dfd, name = job
        try:
            return rel, hash_at(dfd, name).md5
        except FileNotFoundError:
            return rel, None

    bad: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for rel, md5 in pool.map(one, jobs):
            if md5 is None:
                bad.append(f"{display(rel)} is missing after the download")
            elif md5 != arch.files[rel].md5:
                bad.append(f"{display(rel)}: md5 {md5}, manifest {arch.files[rel].md5}")
    if bad:
        raise DataError(f"restored data does not match the manifest: {'; '.join(bad[:5])}"
                        f"{' ...' if len(bad) > 5 else ''}")
    return len(jobs)
