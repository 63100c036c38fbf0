"""The catalog keeps exact folder bytes, survives concurrent writers and can be rebuilt."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from froster_slurm.catalog import store as catalog


def record(folder: bytes, dest: str = "s3test:b/x", **kw) -> dict:
    return {"format": "froster-slurm-archive", "source": os.fsdecode(folder),
            "destination": dest,
            "archived_at": "2026-11-26T10:00:00Z",
            "user": "alice", "host": "n1", "storage_class": "DEEP_ARCHIVE", "bytes": 10,
            "files": 2, **kw}


def test_non_utf8_folder_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "cat.duckdb"
    folder = b"/data/caf\xe9/new\nline"
    dest = "s3test:b/froster" + os.fsdecode(folder)
    assert catalog.add_records(db, [record(folder, dest)]) == 1
    [e] = catalog.entries(db)
    assert e.folder == folder
    assert e.destination == dest
    assert os.fsencode(json.loads(json.dumps(e.to_json_obj()))["folder"]) == folder
    assert catalog.lookup(db, folder) is not None
    assert catalog.entries(db, b"/data/caf\xe9") == [e]
    assert catalog.entries(db, b"/data/ca") == []


def test_replace_not_duplicate_and_empty_catalog(tmp_path: Path) -> None:
    db = tmp_path / "cat.duckdb"
    assert catalog.entries(db) == []
    catalog.add_records(db, [record(b"/a")])
    catalog.add_records(db, [record(b"/a", bytes=99)])
    assert [e.bytes for e in catalog.entries(db)] == [99]


def test_concurrent_writers_do_not_corrupt(tmp_path: Path) -> None:
    db = tmp_path / "cat.duckdb"
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(5):
                catalog.add_records(db, [record(f"/w{k}/{i}".encode())])
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(catalog.entries(db)) == 20


def test_rebuild_from_records_in_folders(tmp_path: Path) -> None:
    for name in (b"p1", b"p\xe92"):
        d = os.path.join(os.fsencode(tmp_path), b"tree", name)
        os.makedirs(d)
        with open(os.path.join(d, b"rec.json"), "w") as f:
            json.dump(record(d), f)
    db = tmp_path / "cat.duckdb"
    catalog.add_records(db, [record(b"/stale")])
    done = catalog.rebuild(db, [os.fsencode(tmp_path / "tree")], b"rec.json")
    assert (done.added, done.skipped) == (2, [])
    assert sorted(os.path.basename(e.folder) for e in catalog.entries(db)) == [b"p1", b"p\xe92"]


def test_cli_rebuild_reads_the_records_an_archive_left(tmp_path: Path,
                                                       capsys) -> None:  # noqa: ANN001
    """`catalog rebuild` finds the archive's own record files (their real name)."""
    from froster_slurm.cli import main
    from froster_slurm.folder.layout import RECORD_NAME

    d = tmp_path / "tree" / "proj"
    d.mkdir(parents=True)
    (d / os.fsdecode(RECORD_NAME)).write_text(json.dumps(record(os.fsencode(d))))
    assert main(["catalog", "rebuild", str(tmp_path / "tree")]) == 0
    assert "1 archived folders" in capsys.readouterr().out
    assert main(["catalog", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["folder"] == str(d)


# --- issue 16: rows without the record, read in bounded memory ---------------------------------

# The layout catalog files had before issue 16 (the whole record in every row).
OLD_SCHEMA = """
CREATE TABLE archives (
    folder BLOB NOT NULL, folder_text VARCHAR NOT NULL, destination BLOB NOT NULL,
    archived_at VARCHAR, archived_by VARCHAR, host VARCHAR, storage_class VARCHAR,
    bytes BIGINT, files BIGINT, run_id VARCHAR, state VARCHAR, record VARCHAR,
    PRIMARY KEY (folder, destination))
"""


def full_record(folder: bytes, files: int, **kw) -> dict:
    from scale_runs import synthetic_record

    rec = synthetic_record(folder, "r1", 0, files)
    rec.update(kw)
    return rec


def test_rows_keep_what_queries_need_and_not_the_record(tmp_path: Path) -> None:
    db = tmp_path / "cat.duckdb"
    rec = full_record(b"/data/p", 500, version=2, previous=[
        {"version": 1, "destination": "s3test:b/v1", "archived_at": "2026-01-01T00:00:00Z",
         "files": 4, "bytes": 40}])
    with catalog.writer(db) as w:
        w.add(rec, b"/data/p/Froster.archive.json")
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    cols = [r[0] for r in con.execute("DESCRIBE archives").fetchall()]
    con.close()
    assert "record" not in cols and {"objects", "record_path", "version"} <= set(cols)
    new, old = catalog.entries(db)
    assert (new.version, new.files, new.objects, new.record_path) == \
        (2, 500, 1, b"/data/p/Froster.archive.json")
    assert (old.version, old.files, old.destination, old.record_path) == \
        (1, 4, "s3test:b/v1", None)
    assert catalog.lookup(db, b"/data/p", 1) == old
    assert catalog.versions_of(db, b"/data/p") == [1, 2]


def test_old_catalog_file_is_migrated_on_its_next_write(tmp_path: Path) -> None:
    """A file of the pre-issue-16 layout reads as it is, and its first write drops the record
    column (keeping each row's object count from it), adds the new columns and the index."""
    import duckdb

    db = tmp_path / "cat.duckdb"
    con = duckdb.connect(str(db))
    con.execute(OLD_SCHEMA)
    old = full_record(b"/old/caf\xe9", 50, objects=7)
    row = catalog.entry_from_record(old)
    con.execute("INSERT INTO archives VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*row[:11], json.dumps(old)])
    con.execute("INSERT INTO archives VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [b"/old/broken", "/old/broken", b"s3:x", None, None, None, None, 1, 1, None,
                 "archived", "not json"])
    con.close()
    [a, b] = sorted(catalog.entries(db), key=lambda e: e.folder)  # read-only: not migrated
    assert (a.folder, a.files, a.version, a.objects) == (b"/old/broken", 1, 1, 0)
    assert (b.folder, b.files, b.version) == (b"/old/caf\xe9", 50, 1)
    assert catalog.add_records(db, [record(b"/new")]) == 1
    con = duckdb.connect(str(db), read_only=True)
    cols = {r[0] for r in con.execute("DESCRIBE archives").fetchall()}
    indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    con.close()
    assert "record" not in cols and "archives_folder" in indexes
    got = {e.folder: e for e in catalog.entries(db)}
    assert set(got) == {b"/new", b"/old/broken", b"/old/caf\xe9"}
    assert (got[b"/old/caf\xe9"].objects, got[b"/old/broken"].objects) == (7, 0)
    assert catalog.lookup(db, b"/old/caf\xe9").destination == old["destination"]
    catalog.add_records(db, [record(b"/new", bytes=5)])  # the migrated file takes writes
    assert catalog.lookup(db, b"/new").bytes == 5


def test_many_rows_batched_and_subtree_query_exact(tmp_path: Path) -> None:
    """Rows stream in batches (more than one), the same key twice in a batch keeps the last,
    and a subtree query returns exactly the folder and what is below it, never a sibling
    whose name only starts the same (``/d/a-b``, ``/d/a.b``, ``/d/ab``)."""
    db = tmp_path / "cat.duckdb"
    names = [b"/d/a", b"/d/a/x", b"/d/a/\xff", b"/d/a-b", b"/d/a.b", b"/d/ab", b"/d/a0",
             b"/d/a/y/z"]
    n = catalog.BATCH_ROWS + 10
    with catalog.writer(db) as w:
        for i in range(n):
            w.add(record(b"/bulk/%d" % i))
        for name in names:
            w.add(record(name, bytes=1))
            w.add(record(name, bytes=2))
    assert w.added == n + 2 * len(names)
    assert len(catalog.entries(db)) == n + len(names)
    under = sorted(e.folder for e in catalog.entries(db, b"/d/a/"))
    assert under == [b"/d/a", b"/d/a/x", b"/d/a/y/z", b"/d/a/\xff"]
    assert {e.bytes for e in catalog.entries(db, b"/d")} == {2}
    assert [e.folder for e in catalog.entries(db, b"/d/a", exact=True)] == [b"/d/a"]
