"""The archived-folder format (froster_slurm/folder, docs/archive-format.md): the archive
stage's writer and restore's reader agree byte for byte on a tree of hostile names, old records
still read, and the doc lists exactly the fields the writer emits."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from froster_slurm.archive.bundle import build_all, make_plan
from froster_slurm.archive.hashing import md5_file
from froster_slurm.archive.inventory import FILE, take_inventory
from froster_slurm.archive.trace import build_record, manifest_bytes
from froster_slurm.errors import DataError
from froster_slurm.folder import layout, manifest, schema
from froster_slurm.folder.indexpage import index_html
from froster_slurm.folder.schema import ArchiveRecord, RecordEntry, RecordError
from froster_slurm.restore.record import read_local

DOC = Path(__file__).resolve().parent.parent / "docs" / "archive-format.md"

# Names every target treats differently: md5sum escapes (\\, \n, \r), not UTF-8, rclone's own
# encodings (control pictures, the ‛ quote, full-width), shell syntax, a leading dash.
HOSTILE = [b"plain.txt", b"new\nline", b"back\\slash", b"cr\rx", b"caf\xe9", b"\xff\xfe",
           b"$(touch PWNED)", b"-rf", b"a\"b'c", b"sp ace", b"pic\xe2\x90\x8ax",
           b"q\xe2\x80\x9bq", b"full\xef\xbc\x8fwidth", b"tab\tx", b"\\n literal"]


def hostile_tree(root: Path) -> bytes:
    top = os.fsencode(root / "folder")
    os.mkdir(top)
    sub = os.path.join(top, b"sub\ndir \xe9")
    os.mkdir(sub)
    os.mkdir(os.path.join(top, b"empty \\ dir"))
    for i, name in enumerate(HOSTILE):
        for where in (top, sub):
            with open(os.path.join(where, name), "wb") as f:
                f.write(name * (1 + i * 700))  # some above the bundle threshold, some below
    os.link(os.path.join(top, b"plain.txt"), os.path.join(sub, b"hard\nlink"))
    os.symlink(b"../caf\xe9\n-> odd", os.path.join(sub, b"link \xff"))
    return top


def write_archive(folder: bytes, work: Path) -> tuple[ArchiveRecord, bytes, Any, Any]:
    """What the archive stage does at its record step, minus the remote: inventory, plan,
    bundles, md5s, then the record and manifest written into the folder."""
    inv = take_inventory(folder)
    plan = make_plan(inv, threshold=4096, bundle_size=1 << 20)
    bundles = build_all(inv, plan, work / "bundles", workers=1)
    md5s = {i: md5_file(inv.path_of(e), e) for i, e in enumerate(inv.entries) if e.kind == FILE}
    data = manifest_bytes(inv, md5s)
    meta = {"run_id": "20261202-1", "index": 3, "destination": "arc:bucket/p/folder",
            "version": 2, "previous": [{"version": 1, "destination": "arc:bucket/p/folder"}],
            "storage_class": "DEEP_ARCHIVE", "archived_at": "2026-12-02T12:00:00Z",
            "user": "alice", "host": "node1", "remote": {"type": "s3"},
            "stored": {"big": [1, "0" * 32]}}
    record = build_record(inv, plan, bundles, md5s, meta=meta,
                          bundle_dir=layout.bundle_dir("20261202-1", 3),
                          manifest_md5=manifest.md5_hex(data), manifest_lines=data.count(b"\n"),
                          index_name=layout.INDEX_NAME)
    with open(os.path.join(folder, layout.MANIFEST_NAME), "wb") as f:
        f.write(data)
    with open(os.path.join(folder, layout.RECORD_NAME), "wb") as f:
        f.write(record.dump())
    return record, data, inv, bundles


def test_a_hostile_tree_round_trips_through_writer_and_reader(tmp_path: Path) -> None:
    folder = hostile_tree(tmp_path)
    record, data, inv, bundles = write_archive(folder, tmp_path / "work")
    raw = record.dump()
    assert raw.isascii()
    back = schema.loads(raw)
    assert back == record  # every field, names as exact bytes
    assert back.dump() == raw  # and written again byte for byte

    arch = read_local(folder)  # restore's and purge's reader, with its cross-checks
    assert arch is not None and arch.record == record
    files = {e.rel: e for e in inv.entries if e.kind == FILE}
    assert set(arch.files) == set(files) and len(files) > 2 * len(HOSTILE)
    assert manifest.parse(data) == {rel: f.md5 for rel, f in arch.files.items()}
    assert {e.path for e in record.entries} == {e.rel for e in inv.entries}
    assert arch.links[b"sub\ndir \xe9/link \xff"].target == b"../caf\xe9\n-> odd"
    linked = [f for f in arch.files.values() if f.hardlink_to]
    pair = {b"plain.txt", b"sub\ndir \xe9/hard\nlink"}
    assert len(linked) == 1 and {linked[0].rel, linked[0].hardlink_to} == pair
    assert arch.dirs[b"empty \\ dir"].empty

    # GNU md5sum itself accepts the manifest from the folder.
    check = subprocess.run(["md5sum", "--quiet", "-c", os.fsdecode(layout.MANIFEST_NAME)],
                           cwd=folder, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # Each bundle's tar members are the record's entries for it, raw bytes, dirs with a '/'.
    assert record.bundles and [b.name for b in record.bundles] == [
        f"{record.bundle_dir}/{b.name}" for b in bundles]
    for b, built in zip(record.bundles, bundles, strict=True):
        with tarfile.open(tmp_path / "work" / "bundles" / built.name,
                          encoding="utf-8", errors="surrogateescape") as tar:
            names = [os.fsencode(m.name) + (b"/" if m.isdir() else b"") for m in tar]
        want = [record.entries[i].path + (b"/" if record.entries[i].type == "dir" else b"")
                for i in b.members]
        assert names == want
        assert b.md5 == hashlib.md5((tmp_path / "work" / "bundles" / built.name)
                                    .read_bytes()).hexdigest()


def test_the_page_is_a_function_of_the_record_and_escapes_names(tmp_path: Path) -> None:
    folder = hostile_tree(tmp_path)
    record, _data, _inv, _bundles = write_archive(folder, tmp_path / "work")
    with open(os.path.join(folder, b"<script>x"), "wb"):
        pass
    record.entries.append(RecordEntry(b"<script>x", "file", 0o100644, 0, size=0, md5="0" * 32,
                                      bundle="b"))
    page = index_html(folder, record)
    assert "<script>x" not in page and "&lt;script&gt;x" in page
    assert page == index_html(folder, schema.loads(record.dump()))
    assert layout.GENERATOR_META.decode() in page


def test_md5sum_lines_are_the_lines_gnu_md5sum_writes(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path)
    odd = [n for n in HOSTILE if b"/" not in n]
    for n in odd:
        with open(os.path.join(folder, n), "wb") as f:
            f.write(n)
    ours_text = manifest.build((n, hashlib.md5(n).hexdigest()) for n in odd)
    theirs = subprocess.run(["md5sum", "--", *sorted(odd)], cwd=folder, capture_output=True,
                            check=True).stdout
    assert ours_text == theirs
    assert manifest.parse(ours_text) == {n: hashlib.md5(n).hexdigest() for n in odd}


def test_md5sum_name_escaping_round_trips() -> None:
    for rel in (b"plain", b"back\\slash", b"new\nline", b"cr\rx", b"caf\xe9", b"\\n literal"):
        line = manifest.line("0" * 32, rel)
        name = line[1:] if line.startswith(b"\\") else line
        name = name.rstrip(b"\n").split(b"  ", 1)[1]
        assert (manifest.unescape(name) if line.startswith(b"\\") else name) == rel
        assert manifest.parse(line) == {rel: "0" * 32}
    with pytest.raises(DataError, match="line 2"):
        manifest.parse(b"0" * 32 + b"  a\nnot a line\n")


def _minimal(**more: Any) -> dict[str, Any]:
    return {"format": schema.RECORD_FORMAT, "source": "/p/x", "destination": "r:p/x",
            "entries": [{"path": "f", "type": "file", "mode": 0o100644, "mtime_ns": 1,
                         "size": 1, "md5": "A" * 32, "object": None, "bundle": "b"}], **more}


def test_an_old_record_reads_with_defaults_and_unknown_fields_survive_a_rewrite() -> None:
    old = _minimal(later_field={"kept": True})  # no version, previous, remote, root...
    rec = ArchiveRecord.from_json(old)
    assert (rec.version, rec.previous, rec.remote, rec.stored, rec.root) == (1, [], {}, {}, None)
    assert rec.entries[0].md5 == "a" * 32 and rec.entries[0].uid is None
    rec.state = "purged"
    again = schema.loads(rec.dump())
    assert again.extra == {"later_field": {"kept": True}} and again.state == "purged"
    assert schema.loads(rec.dump()).to_json()["later_field"] == {"kept": True}


def test_a_newer_or_foreign_or_garbled_record_is_refused() -> None:
    with pytest.raises(RecordError, match="newer froster-slurm"):
        ArchiveRecord.from_json(_minimal(format_version=schema.FORMAT_VERSION + 1))
    with pytest.raises(RecordError, match="not a froster-slurm"):
        ArchiveRecord.from_json({**_minimal(), "format": "other"})
    with pytest.raises(RecordError, match="lacks or garbles"):
        ArchiveRecord.from_json({**_minimal(), "entries": [{"path": "f", "type": "file"}]})
    with pytest.raises(RecordError, match="not valid JSON"):
        schema.loads(b"{")


def test_read_head_is_the_record_without_its_per_file_parts(tmp_path: Path) -> None:
    """read_head (the catalog's and finalize's reader) on what the archive task writes
    (json_bytes) equals the parsed record
    minus HEAVY_KEYS, for hostile names, a version block and a one-line value far longer than
    its read size; a record laid out otherwise (one line of JSON) is read whole."""
    import io
    import json

    from scale_runs import synthetic_record

    folder = b"/data/caf\xe9/new\nline/\" ]\n}"
    rec = synthetic_record(folder, "r1", 0, 3000)
    rec.update(previous=[
        {"version": 1, "destination": "s3:b/v1 ]", "archived_at": "2026-01-01T00:00:00Z"},
        {"version": 2, "destination": "s3:b/v2", "archived_at": "2026-02-01T00:00:00Z"}],
        version=3, stored={f"o{k}": [k, "f" * 32] for k in range(20000)},
        excluded=["x" * 70000, "y"], note="a ]\n line,")
    data = schema.json_bytes(rec)
    assert len(max(data.split(b"\n"), key=len)) > 1 << 16  # "stored" spans many reads
    want = {k: v for k, v in json.loads(data).items() if k not in schema.HEAVY_KEYS}
    assert schema.read_head(io.BytesIO(data)) == want
    assert os.fsencode(want["source"]) == folder
    one_line = json.dumps(rec).encode()
    assert schema.read_head(io.BytesIO(one_line)) == want
    for broken in (data[:len(data) // 2], b"{\n nonsense\n}\n", b"[1, 2]"):
        try:
            schema.read_head(io.BytesIO(broken))
        except ValueError:
            continue
        raise AssertionError(f"{broken[:40]!r} was accepted")


# ---- the doc cannot go stale ------------------------------------------------------------------

def documented_fields() -> set[str]:
    """Every first-column name of the doc's ``| field | type | meaning |`` tables."""
    out: set[str] = set()
    in_table = False
    for line in DOC.read_text().splitlines():
        if line.strip() == "| field | type | meaning |":
            in_table = True
            continue
        if in_table and line.startswith("|---"):
            continue
        if in_table and line.startswith("| `"):
            m = re.match(r"\| `([^`]+)` \|", line)
            assert m, line
            out.add(m.group(1))
            continue
        in_table = False
    return out


def written_fields() -> set[str]:
    """Every field the writer can emit, from ``to_json`` of a record with every optional
    section set and one entry of each type (a hard link included)."""
    entries = [RecordEntry(b"a", "file", 1, 1, 0, 0, size=1, md5="0" * 32, object="a",
                           sparse=True),
               RecordEntry(b"b", "file", 1, 1, 0, 0, size=1, md5="0" * 32, bundle="x",
                           hardlink_to=b"a"),
               RecordEntry(b"c", "symlink", 1, 1, 0, 0, target=b"a", bundle="x"),
               RecordEntry(b"d", "dir", 1, 1, 0, 0, empty=True, bundle="x")]
    rec = ArchiveRecord(source=b"/p", destination="r:p", entries=entries,
                        manifest=schema.ManifestInfo("m", "0" * 32, 1),
                        bundles=[schema.BundleRecord("x", "0" * 32, 1, [1, 2, 3])],
                        root=schema.RootInfo(1, 1, 0, 0),
                        skipped=[schema.Skipped(b"s", "why")], excluded=[b"e"],
                        purge={}, last_purge={}, restored={}, copies=[])
    rec.previous = [rec.link()]
    d = rec.to_json()
    out = set(d)
    for key in ("manifest", "root"):
        out |= {f"{key}.{k}" for k in d[key]}
    for key in ("entries", "bundles", "skipped", "previous"):
        out |= {f"{key}[].{k}" for item in d[key] for k in item}
    return out


def test_the_doc_lists_every_field_the_writer_emits_and_no_other() -> None:
    documented, written = documented_fields(), written_fields()
    assert written - documented == set(), "fields missing from docs/archive-format.md"
    assert documented - written == set(), "docs/archive-format.md lists fields never written"


def test_the_typed_record_and_its_json_name_the_same_fields() -> None:
    """A field added to a dataclass but not to ``to_json`` (or the reverse) fails here, and the
    test above then ties ``to_json`` to the doc."""
    written = written_fields()
    top = {f.name for f in dataclasses.fields(ArchiveRecord)} - {"extra"}
    assert top == {w for w in written if "." not in w}
    assert top == set(schema.KNOWN_FIELDS)
    for cls, key in ((RecordEntry, "entries[]"), (schema.BundleRecord, "bundles[]"),
                     (schema.ManifestInfo, "manifest"), (schema.RootInfo, "root"),
                     (schema.Skipped, "skipped[]")):
        assert {f"{key}.{f.name}" for f in dataclasses.fields(cls)} == \
            {w for w in written if w.startswith(key + ".")}, cls.__name__
    assert {f"previous[].{k}" for k in schema.LINK_FIELDS} == \
        {w for w in written if w.startswith("previous[].")}
