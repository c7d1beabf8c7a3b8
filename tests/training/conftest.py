"""Trainer tests: one torch thread (tiny tensors; more threads only contend on a busy 2-core box)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_and_fresh_accelerate() -> Iterator[None]:
    """One intra-op thread, and Accelerate's process-wide singletons reset between tests (each test
    builds its own ``Accelerator`` with its own mixed precision / accumulation)."""
    from accelerate.state import AcceleratorState, GradientState

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    try:
        yield
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def toy_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """``(data_dir, dataset_cache_dir)`` shared by the trainer tests (the toy data is prepared once)."""
    from tests.training.toy import write_toy_data

    root = tmp_path_factory.mktemp("toy")
    return write_toy_data(root / "data"), root / "cache"
