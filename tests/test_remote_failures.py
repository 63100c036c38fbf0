"""Errors classed by cause (remotes.failures): real rclone runs where a server is needed
(moto on 127.0.0.1, a closed port), rclone's own message lines otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from archive_helpers import make_run, run_task, state, write_file
from s3server import RCLONE_TEST_FLAGS, S3Server

from froster_slurm.errors import EXIT_PERMANENT, PermanentError, TransientError
from froster_slurm.remotes.failures import find_cause
from froster_slurm.remotes.rclone import Result, classify

# Lines rclone 1.75 printed here (request ids shortened).
BAD_CLASS = ("Failed to copy: operation error S3: PutObject, https response error StatusCode: "
             "400, RequestID: NXCm7k, api error InvalidStorageClass: The storage class you "
             "specified is not valid")
NO_BUCKET = ("Failed to copy: operation error S3: PutObject, https response error StatusCode: "
             "404, api error NoSuchBucket: The specified bucket does not exist")
NO_REMOTE = 'Failed to create file system for "nosuch:b/t2": didn\'t find section in config ' \
            'file ("nosuch")'
RGW_CLASS = ("Failed to copy: operation error S3: PutObject, https response error StatusCode: "
             "400, RequestID: tx0000, HostID: x, api error InvalidArgument: UnknownError")
DENIED = "api error AccessDenied: Access Denied"
TOO_BIG = "api error EntityTooLarge: Your proposed upload exceeds the maximum allowed size"
NO_HASH = "big.bin: Failed to read hash: hash type not supported"
THROTTLED = "api error SlowDown: Please reduce your request rate. StatusCode: 503"
REFUSED = 'dial tcp 127.0.0.1:9: connect: connection refused'
TIMEOUT = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
ONE_UPSTREAM = ('Failed to create file system for "un:froster/src/u/": union can\'t point to a '
                "single upstream - check the value of the upstreams setting")
SFTP_DOWN = ('Failed to create file system for "sftp:x": NewFs: couldn\'t connect SSH: dial '
             "tcp 127.0.0.1:2222: connect: connection refused")


@pytest.mark.parametrize(("line", "name"), [
    (BAD_CLASS, "storage-class"), (NO_BUCKET, "missing-bucket"), (NO_REMOTE, "not-configured"),
    (DENIED, "access-denied"), (TOO_BIG, "too-large"), (NO_HASH, "hash-unsupported"),
    (ONE_UPSTREAM, "bad-remote-config"),
    (RGW_CLASS, "bad-request"), ("Failed to copy: s3 upload: 400 Bad Request: status code: 400",
                                 "bad-request")])
def test_misconfiguration_and_rejected_requests_are_permanent(line: str, name: str) -> None:
    cause = find_cause([line])
    assert cause is not None and cause.name == name and cause.permanent
    err = classify(Result(1, ["Attempt 1/3 failed: " + REFUSED, line]), "copy")
    assert isinstance(err, PermanentError) and err.exit_code == EXIT_PERMANENT
    assert str(err).startswith(cause.words)  # plain words first, rclone's line after


@pytest.mark.parametrize("line", [THROTTLED, REFUSED, TIMEOUT, SFTP_DOWN,
                                  "StatusCode: 400, api error RequestTimeout: idle too long",
                                  "StatusCode: 500, api error InternalError"])
def test_network_5xx_and_throttling_stay_transient(line: str) -> None:
    cause = find_cause([line])
    assert cause is not None and not cause.permanent
    assert isinstance(classify(Result(1, [line]), "copy"), TransientError)


def test_an_unknown_failure_is_transient_and_bounded() -> None:
    assert isinstance(classify(Result(1, ["something odd happened"]), "copy"), TransientError)


@pytest.mark.s3
def test_an_unknown_storage_class_fails_the_task_at_once_with_exit_70(
        tmp_path: Path, s3: S3Server) -> None:
    """Before: rclone's bare 400 was retried as transient for ~30 minutes."""
    folder = os.fsencode(tmp_path / "data")
    write_file(folder + b"/a.bin", os.urandom(70 * 1024))
    run_dir = make_run(tmp_path / "state", [folder], s3.remote,
                       rclone_config=str(s3.rclone_config), rclone_flags=RCLONE_TEST_FLAGS,
                       storage_class="DEEP_ARCHIV", max_attempts=5)
    p = run_task(run_dir, 0)
    assert p.returncode == EXIT_PERMANENT, p.stderr[-2000:]
    st = state(run_dir, 0)
    assert (st["state"], st["error_kind"], st.get("failures", 0)) == ("failed", "permanent", 0)
    assert st["error"].startswith("the remote does not accept this storage class")


def test_a_remote_that_is_not_configured_fails_the_task_at_once(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path / "data")
    write_file(folder + b"/a.bin", b"x" * 5000)
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    run_dir = make_run(tmp_path / "state", [folder], "nosuch:bucket",
                       rclone_config=str(conf), max_attempts=5)
    p = run_task(run_dir, 0)
    assert p.returncode == EXIT_PERMANENT, p.stderr[-2000:]
    assert "not configured" in state(run_dir, 0)["error"]
