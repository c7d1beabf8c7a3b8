"""BatchPlan: shuffled passes, process sharding, resumable slices, ratio mixing, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from vl_hub.training.mixing import BatchPlan


def _rows(refs: list) -> np.ndarray:
    return np.concatenate([r.indices for r in refs]) if refs else np.zeros(0, dtype=np.int64)


def test_single_dataset_epoch_is_one_shuffled_pass() -> None:
    plan = BatchPlan([50], batch_size=8, num_processes=1, seed=3)
    assert plan.iterations_per_epoch == 6  # 50 // 8, remainder dropped
    epoch0 = _rows(plan.process_batches(0, 6, 0))
    epoch1 = _rows(plan.process_batches(6, 12, 0))
    assert len(np.unique(epoch0)) == 48 and len(np.unique(epoch1)) == 48  # no row twice in an epoch
    assert not np.array_equal(epoch0, epoch1)  # reshuffled every epoch
    again = BatchPlan([50], batch_size=8, num_processes=1, seed=3)
    assert np.array_equal(_rows(again.process_batches(0, 12, 0)), np.concatenate([epoch0, epoch1]))
    other_seed = BatchPlan([50], batch_size=8, num_processes=1, seed=4)
    assert not np.array_equal(_rows(other_seed.process_batches(0, 6, 0)), epoch0)


def test_processes_split_the_global_batches() -> None:
    single = BatchPlan([70], batch_size=4, num_processes=1, seed=0)
    double = BatchPlan([70], batch_size=4, num_processes=2, seed=0)
    assert double.iterations_per_epoch == 8  # 70 // (4 * 2)
    p0, p1 = double.process_batches(0, 8, 0), double.process_batches(0, 8, 1)
    assert [r.index for r in p0] == list(range(0, 16, 2)) and [r.index for r in p1] == list(range(1, 16, 2))
    assert not set(_rows(p0)) & set(_rows(p1))  # disjoint within an epoch
    assert len(set(_rows(p0)) | set(_rows(p1))) == 64
    # the global batch g is the same rows whatever the process count (same seed, same pass)
    global_refs = single.global_batches(range(16))
    interleaved = [r for pair in zip(p0, p1, strict=True) for r in pair]
    assert all(
        np.array_equal(a.indices, b.indices) and a.seed == b.seed for a, b in zip(global_refs, interleaved, strict=True)
    )


def test_resuming_mid_epoch_gives_the_same_batches() -> None:
    plan = BatchPlan([40, 30], batch_size=4, num_processes=2, seed=9, ratios=[2.0, 1.0])
    full = plan.process_batches(0, 25, 1)
    fresh = BatchPlan([40, 30], batch_size=4, num_processes=2, seed=9, ratios=[2.0, 1.0])
    tail = fresh.process_batches(13, 25, 1)
    assert [r.index for r in tail] == [r.index for r in full[13:]]
    assert all(np.array_equal(a.indices, b.indices) and a.seed == b.seed for a, b in zip(tail, full[13:], strict=True))


def test_ratios_pick_whole_batches_from_one_dataset_by_weight() -> None:
    plan = BatchPlan([400, 200, 100], batch_size=5, num_processes=1, seed=1, ratios=[0.6, 0.3, 0.1])
    refs = plan.process_batches(0, 6000, 0)
    which = np.array([np.unique(plan.dataset_of(r.indices)) for r in refs], dtype=object)
    assert all(len(w) == 1 for w in which)  # a batch never mixes datasets (LAVIS MultiIterLoader)
    counts = np.bincount([int(w[0]) for w in which], minlength=3) / len(refs)
    assert counts == pytest.approx([0.6, 0.3, 0.1], abs=0.02)
    # the small dataset is cycled in passes: within each pass no row repeats
    small = [r.indices for r in refs if plan.dataset_of(r.indices)[0] == 2]
    per_pass = plan.batches_per_pass[2]
    first_pass = np.concatenate(small[:per_pass])
    assert len(np.unique(first_pass)) == len(first_pass) == 100
    assert first_pass.min() == 600 and first_pass.max() == 699  # offsets into the concatenation


def test_concatenation_without_ratios_mixes_rows_of_all_datasets() -> None:
    plan = BatchPlan([30, 18], batch_size=6, num_processes=1, seed=0)
    assert plan.iterations_per_epoch == 8
    rows = _rows(plan.process_batches(0, 8, 0))
    assert sorted(rows.tolist()) == list(range(48))


def test_collate_seeds_are_distinct_and_stable() -> None:
    plan = BatchPlan([64], batch_size=4, seed=5)
    seeds = [r.seed for r in plan.process_batches(0, 16, 0)]
    assert len(set(seeds)) == 16
    assert seeds == [BatchPlan([64], batch_size=4, seed=5).collate_seed(g) for g in range(16)]


def test_too_small_dataset_is_explained() -> None:
    with pytest.raises(ValueError, match=r"tiny has 7 rows, fewer than one batch per process \(4 rows x 2 processes\)"):
        BatchPlan([100, 7], batch_size=4, num_processes=2, ratios=[1, 1], names=["big", "tiny"])
    with pytest.raises(ValueError, match="process_index 2 outside 0..1"):
        BatchPlan([100], batch_size=4, num_processes=2).process_batches(0, 1, 2)
