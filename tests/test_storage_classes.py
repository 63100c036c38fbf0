"""The one list of storage classes: exact names, suggestions for misspellings."""

from froster_slurm.remotes.storage_classes import (
    S3_STORAGE_CLASSES,
    is_s3_class,
    suggest,
    unknown_class_message,
)


def test_every_s3_name_the_issue_names_is_known():
    for name in ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER",
                 "GLACIER_IR", "DEEP_ARCHIVE", "REDUCED_REDUNDANCY"):
        assert is_s3_class(name)
    assert len(set(S3_STORAGE_CLASSES)) == len(S3_STORAGE_CLASSES)


def test_case_and_typos_are_not_accepted_but_suggested():
    assert not is_s3_class("deep_archive")
    assert suggest("deep_archive") == "DEEP_ARCHIVE"
    assert suggest("DEEP_ARCHIV") == "DEEP_ARCHIVE"
    assert suggest("GLACIERIR") == "GLACIER_IR"
    assert suggest("zzzz") is None


def test_message_is_one_line_with_the_hint():
    msg = unknown_class_message("DEEP_ARCHIV")
    assert "\n" not in msg
    assert "did you mean DEEP_ARCHIVE?" in msg
    assert "STANDARD_IA" in msg


def test_a_remote_without_classes_is_recorded_as_such(tmp_path, capsys):
    """A local folder as the remote: the record, index.html and the catalog say 'none' and
    index.html does not warn about Glacier restores; restore needs no thaw."""
    import json
    import os

    from archive_helpers import write_file

    from froster_slurm.cli import main

    folder = tmp_path / "lab" / "proj"
    write_file(os.fsencode(folder / "big.bin"), os.urandom(2 * 1024 * 1024))
    write_file(os.fsencode(folder / "small.txt"), b"small")
    assert main(["archive", str(folder), "--to", str(tmp_path / "remote"), "--backend",
                 "local"]) == 0
    err = capsys.readouterr().err
    assert "has no storage classes" in err and "storage class 'none'" in err
    record = json.loads((folder / "Froster.archive.json").read_text())
    assert (record["storage_class"], record["trace_storage_class"]) == ("none", "none")
    page = (folder / "index.html").read_text()
    assert '<td id="storage-class">none</td>' in page
    assert "no storage classes" in page and "Glacier" not in page
    assert main(["catalog", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["storage_class"] == "none"
    assert main(["restore", str(folder), "--to", str(tmp_path / "back"), "--backend",
                 "local"]) == 0
    out = capsys.readouterr()
    assert "Glacier" not in out.out + out.err
    assert (tmp_path / "back" / "big.bin").read_bytes() == (folder / "big.bin").read_bytes()
