"""The catalog keeps exact folder bytes, survives concurrent writers and can be rebuilt."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from froster_slurm import catalog


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
    from froster_slurm.archive.ours import RECORD_NAME
    from froster_slurm.cli import main

    d = tmp_path / "tree" / "proj"
    d.mkdir(parents=True)
    (d / os.fsdecode(RECORD_NAME)).write_text(json.dumps(record(os.fsencode(d))))
    assert main(["catalog", "rebuild", str(tmp_path / "tree")]) == 0
    assert "1 archived folders" in capsys.readouterr().out
    assert main(["catalog", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["folder"] == str(d)
