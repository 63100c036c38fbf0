"""The MaxArraySize chunking of an archive submission, as pure arithmetic (no sbatch).

Slurm accepts array task ids 0 .. MaxArraySize-1, so a run of N folders becomes
ceil(N / MaxArraySize) arrays; task t of the array at offset O archives folder O + t.
"""

from __future__ import annotations

import pytest

from froster_slurm.submit.pipeline import ArrayChunk, array_spec, chunk_indices, plan_archive_arrays

pytestmark = pytest.mark.unit


def test_n_folders_below_the_limit_are_one_array_at_offset_zero() -> None:
    assert plan_archive_arrays(list(range(5)), 1001, 4) == [ArrayChunk(0, [0, 1, 2, 3, 4],
                                                                       "0-4%4")]


def test_n_over_the_limit_gives_offsets_that_are_multiples_of_it_and_a_short_last_chunk(
        ) -> None:
    chunks = plan_archive_arrays(list(range(2500)), 1000, 8)
    assert [c.offset for c in chunks] == [0, 1000, 2000]
    assert [len(c.tasks) for c in chunks] == [1000, 1000, 500]
    assert [c.array for c in chunks] == ["0-999%8", "0-999%8", "0-499%8"]
    assert all(max(c.tasks) < 1000 for c in chunks)  # every task id is one Slurm accepts
    # every folder exactly once, in order, at offset + task id
    assert [f for c in chunks for f in c.folders] == list(range(2500))


def test_n_exactly_the_limit_is_one_full_array_and_one_more_starts_a_second() -> None:
    assert plan_archive_arrays(list(range(1001)), 1001, 2) == [
        ArrayChunk(0, list(range(1001)), "0-1000%2")]
    last = plan_archive_arrays(list(range(1002)), 1001, 2)
    assert [(c.offset, c.tasks, c.array) for c in last][1:] == [(1001, [0], "0%2")]


def test_max_array_size_one_makes_one_single_task_array_per_folder() -> None:
    chunks = plan_archive_arrays([0, 1, 2], 1, 3)
    assert [(c.offset, c.tasks, c.array) for c in chunks] == [
        (0, [0], "0%3"), (1, [0], "0%3"), (2, [0], "0%3")]


def test_no_folders_is_no_array() -> None:
    assert plan_archive_arrays([], 1001, 4) == []
    assert chunk_indices([], 1) == []


def test_a_retry_of_some_folders_keeps_each_in_its_own_chunk_and_compacts_the_spec() -> None:
    # Folders 3, 4, 5, 9 and 2007 of a run, MaxArraySize 1001: 2007 = offset 2002 + task 5.
    chunks = plan_archive_arrays([9, 2007, 3, 4, 5, 4], 1001, 2)
    assert [(c.offset, c.tasks, c.array) for c in chunks] == [
        (0, [3, 4, 5, 9], "3-5,9%2"), (2002, [5], "5%2")]
    assert [f for c in chunks for f in c.folders] == [3, 4, 5, 9, 2007]


def test_the_throttle_string_is_at_least_one() -> None:
    assert plan_archive_arrays([0, 1], 10, 0)[0].array == "0-1%1"
    assert plan_archive_arrays([0, 1], 10, -3)[0].array == "0-1%1"
    assert plan_archive_arrays([0, 1], 10, 250)[0].array == "0-1%250"


def test_array_spec_compacts_runs() -> None:
    assert array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert array_spec([4]) == "4"
    assert array_spec([]) == ""


def test_a_limit_below_one_or_a_negative_index_is_refused() -> None:
    with pytest.raises(ValueError, match="MaxArraySize"):
        chunk_indices([0], 0)
    with pytest.raises(ValueError, match="negative"):
        chunk_indices([-1], 10)
