"""The one list of storage classes: exact names, suggestions for misspellings."""

from froster_slurm.storage_classes import (
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
