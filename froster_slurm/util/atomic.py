"""The one way a file is replaced: a reader sees the old content or the new, never half.

Every state, settings and result file of the tool (a run's ``run.toml`` and ``jobs.toml``, a
task's ``state.json`` and step markers, summaries, hotspots, folder lists, config files) is
written here: a temporary file in the same directory (a rename never crosses file systems),
the data, ``fsync`` of the file, ``rename`` over the old name, ``fsync`` of the directory, so
after a crash of the node the name points at the old data or at the whole new data.  Until
the rename the old file is not touched: a writer killed half way leaves it whole, plus at
worst its temporary file (``.NAME.PID.RANDOM.tmp``, hidden; removed on every error we see).

``mode`` gives the file exactly that mode whatever the umask (0600 for private.py's files);
without it a new file gets what ``open`` would give it (0666 less the umask).

Not for files inside a user's archived folder: those use ``restore/safefs.py`` and the
archive stage's ``.Froster-*.tmp`` names (``archive/ours.py``), which archive and purge
recognise as their own.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Iterator
from typing import BinaryIO, TextIO

PathArg = str | bytes | os.PathLike[str] | os.PathLike[bytes]

_NAME_KEEP = 200  # bytes of the file's name kept in the temporary name (NAME_MAX is 255)


def _tmp_path(path: bytes) -> bytes:
    head, name = os.path.split(path)
    tmp = b".%s.%d.%s.tmp" % (name[:_NAME_KEEP], os.getpid(), secrets.token_hex(4).encode())
    return os.path.join(head, tmp)


def fsync_dir(path: PathArg) -> None:
    """Make a rename or a new name in directory ``path`` durable.

    Best effort: a directory this user may not open, or a file system that cannot sync a
    directory (some network file systems answer EINVAL), is left as it is.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: PathArg, *, mode: int | None = None,
                sync: bool = True) -> Iterator[BinaryIO]:
    """An open binary file that replaces ``path`` when the block ends without an exception.

    On an exception the temporary file is removed and ``path`` is left as it was.
    ``sync=False``: whole but not flushed to the disk (``write_scratch``).
    """
    dest = os.fsencode(path)
    tmp = _tmp_path(dest)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # the umask filtered os.open's mode
        with os.fdopen(fd, "wb") as f:
            fd = -1  # closed by the file object from here on
            yield f  # type: ignore[misc]
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        fsync_dir(os.path.dirname(dest) or b".")


@contextlib.contextmanager
def atomic_text(path: PathArg, *, encoding: str = "utf-8", newline: str | None = None,
                mode: int | None = None) -> Iterator[TextIO]:
    """``atomic_file`` as a text stream (``encoding``/``newline`` as for ``open``)."""
    with atomic_file(path, mode=mode) as raw:
        f = io.TextIOWrapper(raw, encoding=encoding, newline=newline)  # type: ignore[arg-type]
        try:
            yield f
            f.flush()
        finally:
            f.detach()  # leave the raw file to atomic_file: it syncs and closes it


def write_atomic(path: PathArg, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` (``str`` is written as UTF-8)."""
    raw = data.encode() if isinstance(data, str) else data
    with atomic_file(path, mode=mode) as f:
        f.write(raw)


def write_scratch(path: PathArg, data: bytes | str) -> None:
    """Replace a working file that the next run rebuilds anyway (a list handed to rclone, a
    staged trace file before its upload): whole (temporary name + rename, so a reader never
    sees half of it) but not synced.  Durable files use ``write_atomic``; a batch's folders
    write these again in every round (``archive.shared``), and each sync costs a disk flush.
    """
    raw = data.encode() if isinstance(data, str) else data
    with atomic_file(path, sync=False) as f:
        f.write(raw)
