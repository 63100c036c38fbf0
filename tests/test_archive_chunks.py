"""Big files are planned (archive/chunks.py): part size for cold classes, buffers capped by
the task's memory, PUT counts, and files over S3's object limit refused before any upload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from archive_helpers import make_run, run_task, state
from s3server import RCLONE_TEST_FLAGS, S3Server

from froster_slurm.archive import chunks
from froster_slurm.errors import EXIT_PERMANENT, PermanentError

TB = 10**12
MiB = 1024**2


def test_cold_classes_use_64_mib_parts_and_far_fewer_puts() -> None:
    size = 40 * 10**9
    cold = chunks.plan(size, "DEEP_ARCHIVE", transfers=4, budget=4096 * MiB)
    assert cold.chunk == 64 * MiB and cold.requests(size) == 599
    warm = chunks.plan(size, "STANDARD", transfers=4, budget=4096 * MiB)
    assert warm.chunk == 5 * MiB and warm.requests(size) == 7_632
    assert cold.requests(100 * MiB) == 1  # under the 200 MiB cutoff: one PUT
    # 1 TB: 64 MiB parts would be 14,901 > S3's 10,000, so 96 MiB (not rclone's own raise)
    tb = chunks.plan(TB, "DEEP_ARCHIVE", transfers=4, budget=4096 * MiB)
    assert tb.chunk == 96 * MiB and tb.requests(TB) == 9_937
    assert "--s3-chunk-size=64Mi" in cold.flags()


def test_buffers_are_capped_by_memory_lowering_concurrency_then_transfers() -> None:
    p = chunks.plan(10 * 1024**3, "DEEP_ARCHIVE", transfers=4, budget=256 * MiB)
    assert (p.chunk, p.concurrency, p.transfers) == (64 * MiB, 1, 4) and p.memory <= 256 * MiB
    p = chunks.plan(10 * 1024**3, "DEEP_ARCHIVE", transfers=4, budget=100 * MiB)
    assert (p.chunk, p.concurrency, p.transfers) == (64 * MiB, 1, 1)
    p = chunks.plan(10 * 1024**3, "DEEP_ARCHIVE", transfers=4, budget=40 * MiB)
    assert p.memory <= 40 * MiB and p.chunk == 32 * MiB  # only now smaller parts
    # a 4 TiB file needs >= 420 MiB parts to fit in 10,000: never smaller, whatever the budget
    huge = chunks.plan(4 * 1024**4, "DEEP_ARCHIVE", transfers=4, budget=2048 * MiB)
    assert huge.chunk * 10_000 >= 4 * 1024**4 and huge.memory <= 2048 * MiB
    with pytest.raises(PermanentError, match="needs parts of at least"):
        chunks.plan(4 * 1024**4, "DEEP_ARCHIVE", transfers=4, budget=256 * MiB)


def test_memory_budget_comes_from_slurm_or_config() -> None:
    assert chunks.memory_budget(0, {"SLURM_MEM_PER_NODE": "4096"}) == 2048 * MiB
    assert chunks.memory_budget(300 * MiB, {"SLURM_MEM_PER_NODE": "4096"}) == 300 * MiB
    assert chunks.memory_budget(0, {}) == 1024 * MiB


@pytest.mark.s3
def test_a_file_over_the_s3_object_limit_is_refused_before_any_upload(
        tmp_path: Path, s3: S3Server) -> None:
    folder = tmp_path / "huge"
    folder.mkdir()
    with open(folder / "over-5TiB.img", "wb") as f:  # sparse: no data is written
        f.truncate(5 * 1024**4 + 1)
    (folder / "small.txt").write_bytes(b"small")
    run_dir = make_run(tmp_path / "state", [os.fsencode(folder)], s3.remote,
                       rclone_config=str(s3.rclone_config), rclone_flags=RCLONE_TEST_FLAGS)
    p = run_task(run_dir, 0)
    assert p.returncode == EXIT_PERMANENT, p.stderr[-2000:]
    st = state(run_dir, 0)
    assert "object limit of 5.0 TiB" in st["error"] and "over-5TiB.img" in st["error"]
    assert st["step"] == "inventory"
    assert not s3.list_keys("froster" + str(folder))


@pytest.mark.s3
def test_the_upload_uses_the_planned_parts(tmp_path: Path, s3: S3Server) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(300 * 1024))
    run_dir = make_run(tmp_path / "state", [os.fsencode(folder)], s3.remote,
                       rclone_config=str(s3.rclone_config), rclone_flags=RCLONE_TEST_FLAGS,
                       storage_class="DEEP_ARCHIVE")
    p = run_task(run_dir, 0)
    assert p.returncode == 0, p.stderr[-2000:]
    log = (run_dir / "tasks" / "0" / "logs" / "upload.log").read_text()
    assert "--s3-chunk-size=64Mi" in log and "--s3-upload-concurrency=4" in log
    assert "1 PUT requests" in p.stderr or "PUT requests" in p.stderr
