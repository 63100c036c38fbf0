"""The catalog: every archived folder and every version of its archive, in DuckDB files.

One catalog path, ``P`` (per user by default; an admin may point everyone at one).  Who owns a
row is decided by the file system, not by the rows: DuckDB has no row permissions, so a file
anyone can write is a file anyone can rewrite.  Hence

* ``P`` holds the rows of the user who owns ``P`` (who created it);
* every other user writes ``P.users/<uid>.duckdb``, a file of their own, in a directory that is
  world-writable and sticky like ``/tmp`` (created so when ``P``'s directory is writable,
  otherwise an admin makes it: ``mkdir -m 1777 P.users``); without one, writing is refused
  with that instruction, never a traceback;
* reading merges ``P`` and every ``P.users/<uid>.duckdb`` actually owned by ``<uid>``; a
  file planted under another user's number is skipped and reported.  Each row carries its
  owner (the file's owner);
* ``lookup`` (restore of a folder that is gone) trusts only rows owned by the caller or by the
  owner of the folder (its nearest existing parent), so another user's row cannot send a
  restore to their data.

DuckDB lets one process write a database file at a time, so every access takes an ``flock``
on ``<file>.lock`` first (shared to read, exclusive to write; a reader that cannot create or
write another user's lock file opens it read-only, or reads without it).  That lock alone
keeps concurrent finalize jobs apart: they are not serialised across runs by Slurm (one run's
finalize waiting days for its archive must not hold back another's).  The catalog is derived
data: ``rebuild`` recreates the caller's rows from the records left in the archived folders,
skipping (and reporting) records that are broken, not ours, copied from another folder, or
owned by someone else.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pwd
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ..errors import DataError, UserError
from ..folder import layout
from ..folder.schema import RecordError, check_format
from ..folder.schema import read_head as record_head
from ..util.paths import display

SCHEMA = """
CREATE TABLE IF NOT EXISTS archives (
    folder        BLOB NOT NULL,     -- exact path bytes
    folder_text   VARCHAR NOT NULL,  -- for people: UTF-8, other bytes shown as \\xNN
    destination   BLOB NOT NULL,     -- exact bytes of the remote path (os.fsdecode for str)
    archived_at   VARCHAR,
    archived_by   VARCHAR,
    host          VARCHAR,
    storage_class VARCHAR,
    bytes         BIGINT,
    files         BIGINT,
    run_id        VARCHAR,
    state         VARCHAR,           -- archived | purged | restored
    version       INTEGER,
    objects       BIGINT,
    record_path   BLOB,              -- the record in the folder; NULL: only beside the data
    PRIMARY KEY (folder, destination)
)
"""
# A catalog file written before a column existed gets it on its next write.  Rows stopped
# holding the whole JSON record (issue 16: a 1,000-file folder's record is ~300 KB; the column
# was never read back, the record stays in the folder and beside the data): a file that still
# has the column keeps its objects count and loses the column, then a checkpoint lets DuckDB
# reuse its blocks.  ``catalog rebuild`` recreates every row from the folders' records anyway.
MIGRATIONS = ("ALTER TABLE archives ADD COLUMN IF NOT EXISTS version INTEGER",
              "ALTER TABLE archives ADD COLUMN IF NOT EXISTS objects BIGINT",
              "ALTER TABLE archives ADD COLUMN IF NOT EXISTS record_path BLOB")
# A query by path (restore's lookup) is an index probe: ~5 ms at 1M rows, not a scan (~60 ms).
# Made after the migrations: DuckDB refuses to drop a column of a table with an index.
INDEX = "CREATE INDEX IF NOT EXISTS archives_folder ON archives (folder)"
COLUMNS = ("folder", "folder_text", "destination", "archived_at", "archived_by", "host",
           "storage_class", "bytes", "files", "run_id", "state", "version", "objects",
           "record_path")
COLUMN_TYPES = ("BLOB", "VARCHAR", "BLOB", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR",
                "BIGINT", "BIGINT", "VARCHAR", "VARCHAR", "INTEGER", "BIGINT", "BLOB")
BATCH_ROWS = 5000  # rows per INSERT: bounded memory, few round trips
USERS_DIR_SUFFIX = ".users"


@dataclass(frozen=True)
class Entry:
    folder: bytes
    destination: str
    archived_at: str
    archived_by: str
    host: str
    storage_class: str
    bytes: int
    files: int
    run_id: str
    state: str
    version: int = 1
    owner_uid: int = -1
    objects: int = 0
    record_path: bytes | None = None  # the record in the folder (None: only beside the data)

    @property
    def owner(self) -> str:
        return _user_name(self.owner_uid)

    def to_json_obj(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["folder"] = os.fsdecode(self.folder)
        d["record_path"] = os.fsdecode(self.record_path) if self.record_path else None
        d["owner"] = self.owner
        return d


@dataclass
class Rebuilt:
    """What ``rebuild`` did: rows written, and each record it skipped with the reason."""

    added: int = 0
    skipped: list[tuple[bytes, str]] = field(default_factory=list)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def users_dir(path: Path) -> Path:
    return path.with_name(path.name + USERS_DIR_SUFFIX)


def own_file(path: Path) -> Path:
    """The file this user's rows go to (module docstring); creates ``P.users`` if it may."""
    uid = os.geteuid()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = path.parent
        if not parent.exists() or os.access(parent, os.W_OK | os.X_OK) or \
                not users_dir(path).is_dir():
            return path  # ours to create (or a clear error when we cannot)
        st = os.stat(parent)  # an admin's folder with only P.users in it: a shard of ours
    if st.st_uid == uid:
        return path
    udir = users_dir(path)
    try:
        os.mkdir(udir, 0o1777)
        os.chmod(udir, 0o1777)  # the umask took bits off
    except FileExistsError:
        pass
    except OSError as e:
        raise UserError(
            f"the catalog {path} belongs to {_user_name(st.st_uid)}; your rows would go to "
            f"{udir}/ which does not exist and cannot be created ({e.strerror}). Ask an admin "
            f"to run `mkdir -m 1777 {udir}`, or set `catalog` to a file of your own") from e
    dst = os.lstat(udir)
    open_to_all = bool(dst.st_mode & 0o002)
    if not stat.S_ISDIR(dst.st_mode) or not os.access(udir, os.W_OK | os.X_OK) or \
            (open_to_all and not dst.st_mode & stat.S_ISVTX):
        raise UserError(f"{udir} is not a sticky folder you can write per-user catalog rows "
                        f"into; an admin fixes it with `chmod 1777 {udir}`")
    mine = udir / f"{uid}.duckdb"
    try:
        if os.stat(mine).st_uid != uid:
            raise UserError(f"{mine} should hold your catalog rows but belongs to "
                            f"{_user_name(os.stat(mine).st_uid)}; ask an admin to remove it")
    except FileNotFoundError:
        pass
    return mine


def readable_files(path: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """Every catalog file to read with its owner's uid, and the files skipped (and why)."""
    out: list[tuple[Path, int]] = []
    problems: list[str] = []
    try:
        out.append((path, os.stat(path).st_uid))
    except FileNotFoundError:
        pass
    udir = users_dir(path)
    try:
        names = sorted(os.listdir(udir))
    except (FileNotFoundError, NotADirectoryError):
        names = []
    except PermissionError:
        problems.append(f"{udir}: not readable; other users' rows are not shown")
        names = []
    for name in names:
        stem, dot, ext = name.partition(".")
        if ext != "duckdb" or not dot:
            continue
        p = udir / name
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if not stem.isdigit() or int(stem) != st.st_uid or not stat.S_ISREG(st.st_mode):
            problems.append(f"{p}: not owned by user {stem} (owner {_user_name(st.st_uid)}); "
                            "skipped")
            continue
        out.append((p, st.st_uid))
    return out, problems


@contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A connection to one catalog file under its flock (None: a reader and no file)."""
    lock_path = str(path) + ".lock"
    if exclusive:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = _open_lock(lock_path, create=True)
    else:
        if not path.exists():
            yield None
            return
        lock_fd = _open_lock(lock_path, create=False)
    try:
        if lock_fd is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        con = _connect(path, read_only=not exclusive)
        try:
            if exclusive:
                _migrate(con)
            yield con
        finally:
            con.close()
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a catalog file of any earlier layout to ``SCHEMA`` (see ``MIGRATIONS``)."""
    con.execute(SCHEMA)
    for sql in MIGRATIONS:
        con.execute(sql)
    if "record" in _columns(con):
        _drop_records(con)
    con.execute(INDEX)


def _drop_records(con: duckdb.DuckDBPyConnection) -> None:
    """The ``record`` column of files written before issue 16 goes (see ``MIGRATIONS``)."""
    # A thousand records at a time (they were up to ~1.7 KB per file each): Python's JSON,
    # not DuckDB's, which refuses the lone surrogates of a name that is not UTF-8.
    while True:
        rows = con.execute("SELECT rowid, record FROM archives WHERE objects IS NULL "
                           "LIMIT 1000").fetchall()
        if not rows:
            break
        fill = []
        for rowid, text in rows:
            try:
                objects = int(json.loads(text).get("objects") or 0)
            except (ValueError, TypeError, AttributeError):
                objects = 0  # no record, or not one: the count is unknown
            fill.append((objects, rowid))
        con.execute("UPDATE archives SET objects = u.o FROM (SELECT unnest($1::BIGINT[]) AS o, "
                    "unnest($2::BIGINT[]) AS r) AS u WHERE archives.rowid = u.r",
                    [[f[0] for f in fill], [f[1] for f in fill]])
    con.execute("ALTER TABLE archives DROP COLUMN record")
    con.execute("CHECKPOINT")


def _columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("DESCRIBE archives").fetchall()}


def _open_lock(lock_path: str, create: bool) -> int | None:
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(lock_path, flags | os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        return None
    except PermissionError as e:
        if create:
            raise UserError(f"cannot write the catalog lock {lock_path}: {e.strerror}") from e
    try:
        return os.open(lock_path, flags | os.O_RDONLY)  # another user's: a shared lock is enough
    except OSError:
        return None


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    for attempt in range(20):
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as e:
            text = str(e)
            if "ermission denied" in text:
                raise UserError(f"cannot {'read' if read_only else 'write'} the catalog "
                                f"{path}: permission denied") from e
            if attempt == 19 or "lock" not in text.lower():
                raise DataError(f"cannot open the catalog {path}: {text.splitlines()[0]}") \
                    from e
            time.sleep(0.25)  # its owner is writing it without a lock we could share
        except duckdb.Error as e:
            raise DataError(f"cannot open the catalog {path}: {str(e).splitlines()[0]}") \
                from e
    raise AssertionError("unreachable")


def entry_from_record(record: dict[str, Any], record_path: bytes | None = None
                      ) -> tuple[Any, ...]:
    """A catalog row from an archive JSON record, or its head (``record_head``), or a version
    link (see ``versions``).  ``record_path``: where the record was found in the folder."""
    try:
        folder = os.fsencode(record["source"])
        return (folder, display(folder), os.fsencode(record["destination"]),
                record.get("archived_at"),
                record.get("user"), record.get("host"), record.get("storage_class"),
                int(record.get("bytes") or 0), int(record.get("files") or 0),
                record.get("run_id"), record.get("state", "archived"),
                int(record.get("version") or 1), int(record.get("objects") or 0),
                record_path)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"archive record lacks a field the catalog needs: {e}") from e


def link_rows(record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows for the earlier versions a record links (``previous``), so a catalog rebuilt from
    the folders still lists every version."""
    out = []
    for link in record.get("previous") or []:
        if isinstance(link, dict) and link.get("destination"):
            out.append(entry_from_record({**link, "source": record.get("source"),
                                          "linked_from": record.get("version")}))
    return out


class Writer:
    """Rows going into this user's catalog file, ``BATCH_ROWS`` at a time: memory stays one
    batch whatever the number of folders.  Each batch takes the file's lock only while it is
    written, so a long finalize does not hold back readers or other runs' finalize jobs."""

    def __init__(self, path: Path, replace_all: bool = False):
        self.file = own_file(path)
        self._rows: list[tuple[Any, ...]] = []
        self._links: list[tuple[Any, ...]] = []
        self._clear = replace_all  # ``rebuild``: the first batch empties the file first
        self.added = 0

    def add(self, record: dict[str, Any], record_path: bytes | None = None) -> None:
        """One folder's row (its record or ``record_head``) and rows for its linked versions."""
        self._rows.append(entry_from_record(record, record_path))
        self._links.extend(link_rows(record))
        if len(self._rows) + len(self._links) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Links to earlier versions only fill rows that are missing (a full row is never
        replaced by a summary); a folder's own row replaces the one it had."""
        if not (self._rows or self._links or self._clear):
            return
        with _locked(self.file, exclusive=True) as con:
            assert con is not None
            con.execute("BEGIN TRANSACTION")
            if self._clear:
                con.execute("DELETE FROM archives")
            if self._links:
                _insert(con, "IGNORE", self._links)
            if self._rows:
                _insert(con, "REPLACE", self._rows)
            con.execute("COMMIT")
        self._clear = False
        self.added += len(self._rows)
        self._rows, self._links = [], []


def _insert(con: duckdb.DuckDBPyConnection, how: str, rows: list[tuple[Any, ...]]) -> None:
    """One INSERT per batch, each column passed as one list (``executemany`` runs a statement
    per row: ~1,200 rows/s here; this: ~100,000).

    Rows with the same key in one statement would clash, so the last of each key wins for
    REPLACE and the first for IGNORE, as they did row by row."""
    keyed = rows if how == "REPLACE" else rows[::-1]
    unique = list({(r[0], r[2]): r for r in keyed}.values())
    columns = [list(c) for c in zip(*unique, strict=True)]
    select = ", ".join(f"unnest(${i + 1}::{t}[])" for i, t in enumerate(COLUMN_TYPES))
    con.execute(f"INSERT OR {how} INTO archives ({', '.join(COLUMNS)}) SELECT {select}",
                columns)


@contextmanager
def writer(path: Path, replace_all: bool = False) -> Iterator[Writer]:
    """A ``Writer`` on this user's file of the catalog at ``path`` (see ``own_file``); the
    rows still buffered are written when the block ends without an exception."""
    w = Writer(path, replace_all)
    yield w
    w.flush()


def add_records(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Insert or replace this user's rows (one per folder and version); returns how many.

    Links to earlier versions only fill rows that are missing: a full row is never replaced by
    a summary."""
    records = list(records)
    if not records:
        return 0
    for r in records:  # a broken record is refused before the catalog is opened
        entry_from_record(r)
    with writer(path) as w:
        for r in records:
            w.add(r)
    return w.added


def _select(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]
            ) -> list[tuple[Any, ...]]:
    cols = _columns(con)
    pick = ", ".join(c if c in cols else d for c, d in (
        ("folder", ""), ("destination", ""), ("archived_at", ""), ("archived_by", ""),
        ("host", ""), ("storage_class", ""), ("bytes", ""), ("files", ""), ("run_id", ""),
        ("state", ""), ("version", "1"), ("objects", "0"), ("record_path", "NULL")))
    return con.execute(f"SELECT {pick} FROM archives{where}", params).fetchall()


def entries(path: Path, prefix: bytes | None = None,
            problems: list[str] | None = None, *, exact: bool = False) -> list[Entry]:
    """Every user's rows, optionally only folders at or below ``prefix`` (only ``prefix``
    itself with ``exact``), newest first.

    The folder filter runs in DuckDB (an index probe for one folder; a byte range for a
    subtree: every path below ``p/`` sorts between ``p/`` and ``p0``), so a query by path
    does not bring a million rows into Python.
    Files that were skipped (not owned by the user they claim) are appended to ``problems``.
    """
    files, skipped = readable_files(path)
    if problems is not None:
        problems.extend(skipped)
    where, params = "", []
    if prefix:
        p = prefix.rstrip(b"/") or b"/"
        below = p if p.endswith(b"/") else p + b"/"
        if exact:
            where, params = " WHERE folder = ?", [p]
        else:
            # p itself and everything below p/: both sort in [p, p0) (after p, before p0
            # come only names that continue with a byte below '/': siblings, not children)
            where = " WHERE folder >= ? AND folder < ? AND (folder = ? OR folder >= ?)"
            params = [p, below[:-1] + b"0", p, below]
    out: list[Entry] = []
    for f, uid in files:
        with _locked(f, exclusive=False) as con:
            if con is None:
                continue
            rows = _select(con, where, params)
        out.extend(Entry(bytes(r[0]), os.fsdecode(bytes(r[1])), *r[2:10],
                         version=int(r[10] or 1), owner_uid=uid, objects=int(r[11] or 0),
                         record_path=bytes(r[12]) if r[12] is not None else None)
                   for r in rows)
    out.sort(key=lambda e: (e.archived_at or "", e.version), reverse=True)
    return out


def trusted_owners(folder: bytes) -> set[int]:
    """Whose rows may describe ``folder``: the caller's, and the owner of the folder (or of its
    nearest existing parent, when the folder itself is gone)."""
    owners = {os.geteuid()}
    p = os.path.normpath(folder)
    while True:
        try:
            owners.add(os.lstat(p).st_uid)
            break
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR) or p in (b"/", b""):
                break
            p = os.path.dirname(p)
    return owners


def lookup(path: Path, folder: bytes, version: int | None = None) -> Entry | None:
    """The row of ``folder``'s latest version (or of ``version``), from a trusted owner."""
    trusted = trusted_owners(folder)
    rows = [e for e in entries(path, folder, exact=True)
            if e.folder == folder and e.owner_uid in trusted
            and (version is None or e.version == version)]
    if not rows:
        return None
    return max(rows, key=lambda e: (e.version, e.archived_at or ""))


def versions_of(path: Path, folder: bytes) -> list[int]:
    trusted = trusted_owners(folder)
    return sorted({e.version for e in entries(path, folder, exact=True)
                   if e.folder == folder and e.owner_uid in trusted})


def _check_record(path: bytes, dirpath: bytes) -> dict[str, Any] | str:
    """The head of the record at ``path`` (``record_head``) if it may enter this user's
    catalog, else why not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        return f"not readable ({e.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        uid = os.geteuid()
        if uid != 0 and st.st_uid != uid:
            return (f"written by {_user_name(st.st_uid)}, not by you: their catalog rows "
                    "are theirs")
        if st.st_size > 1 << 30:
            return "too large for a record"
        with os.fdopen(fd, "rb") as f:
            fd = -1
            try:
                record = record_head(f)
            except (ValueError, UnicodeError):
                return "not valid JSON"
    finally:
        if fd >= 0:
            os.close(fd)
    try:
        check_format(record)
    except RecordError as e:
        return str(e)
    try:
        source = os.path.normpath(os.fsencode(record["source"]))
        entry_from_record(record)
    except (KeyError, TypeError, ValueError, DataError) as e:
        return f"lacks or garbles a field ({e})"
    if source != os.path.normpath(dirpath):
        return f"describes another folder ({display(source)}): copied or moved here"
    return record


def rebuild(path: Path, roots: Iterable[bytes],
            record_name: bytes = layout.RECORD_NAME) -> Rebuilt:
    """Recreate this user's rows from every ``record_name`` file found below ``roots``.

    Only the records' heads are kept while the trees are walked (outside the catalog's lock,
    which concurrent finalize jobs wait on); they are written in batches."""
    report = Rebuilt()
    heads: list[tuple[dict[str, Any], bytes]] = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            if record_name in files:
                rec_path = os.path.join(dirpath, record_name)
                got = _check_record(rec_path, dirpath)
                if isinstance(got, str):
                    report.skipped.append((rec_path, got))
                else:
                    heads.append((got, rec_path))
    with writer(path, replace_all=True) as w:
        for head, rec_path in heads:
            w.add(head, rec_path)
    report.added = w.added
    return report
