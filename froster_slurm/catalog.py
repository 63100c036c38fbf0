"""The catalog: every archived folder, in one DuckDB file (per user, or shared by an admin).

DuckDB lets one process write a database file at a time, so every access takes an ``flock``
on ``<catalog>.lock`` first (shared to read, exclusive to write).  Finalize jobs are also
serialised by Slurm (one job name, ``--dependency=singleton``); the lock covers the local
backend and people running ``catalog`` while a finalize writes.  The catalog is derived data:
``rebuild`` recreates it from the JSON records left in the archived folders.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .errors import DataError
from .paths import display

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
    record        VARCHAR,           -- the whole JSON record
    PRIMARY KEY (folder, destination)
)
"""


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

    def to_json_obj(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["folder"] = os.fsdecode(self.folder)
        return d


@contextmanager
def _locked(path: Path, exclusive: bool) -> Iterator[duckdb.DuckDBPyConnection | None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if not exclusive and not path.exists():
            yield None
            return
        con = duckdb.connect(str(path), read_only=not exclusive)
        try:
            if exclusive:
                con.execute(SCHEMA)
            yield con
        finally:
            con.close()


def entry_from_record(record: dict[str, Any]) -> tuple[Any, ...]:
    """A catalog row from an archive JSON record (the file beside each manifest)."""
    try:
        folder = os.fsencode(record["source"])
        return (folder, display(folder), os.fsencode(record["destination"]),
                record.get("archived_at"),
                record.get("user"), record.get("host"), record.get("storage_class"),
                int(record.get("bytes", 0)), int(record.get("files", 0)),
                record.get("run_id"), record.get("state", "archived"),
                json.dumps(record, ensure_ascii=True))
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"archive record lacks a field the catalog needs: {e}") from e


def add_records(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Insert or replace rows (one per folder and destination); returns how many."""
    rows = [entry_from_record(r) for r in records]
    if not rows:
        return 0
    with _locked(path, exclusive=True) as con:
        assert con is not None
        con.executemany("INSERT OR REPLACE INTO archives VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    return len(rows)


def entries(path: Path, prefix: bytes | None = None) -> list[Entry]:
    """Catalog rows, optionally only folders at or below ``prefix``, newest first."""
    with _locked(path, exclusive=False) as con:
        if con is None:
            return []
        rows = con.execute(
            "SELECT folder, destination, archived_at, archived_by, host, storage_class, bytes, "
            "files, run_id, state FROM archives ORDER BY archived_at DESC, folder").fetchall()
    out = [Entry(bytes(r[0]), os.fsdecode(bytes(r[1])), *r[2:]) for r in rows]
    if prefix:
        p = prefix.rstrip(b"/")
        out = [e for e in out if e.folder == p or e.folder.startswith(p + b"/")]
    return out


def lookup(path: Path, folder: bytes) -> Entry | None:
    for e in entries(path, folder):
        if e.folder == folder:
            return e
    return None


def rebuild(path: Path, roots: Iterable[bytes], record_name: bytes) -> int:
    """Recreate the catalog from every ``record_name`` JSON file found below ``roots``."""
    records = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            if record_name in files:
                with open(os.path.join(dirpath, record_name), "rb") as f:
                    records.append(json.loads(f.read()))
    with _locked(path, exclusive=True) as con:
        assert con is not None
        con.execute("DELETE FROM archives")
    return add_records(path, records)
