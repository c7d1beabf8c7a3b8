"""Datasets of a run (loaded and checked before anything trains) and the training DataLoader.

:func:`load_run_datasets` loads every training, validation and test dataset of the arguments with
``vl_hub.load_dataset`` and checks each against the task's schema, so a missing file (its download
instructions) or an incompatible dataset fails first, not after the model is loaded.

:func:`train_dataloader` serves the batches of a :class:`~vl_hub.training.mixing.BatchPlan`: one
Arrow ``take`` per batch (``Dataset.__getitems__``), ``task.collate_train(rows)`` run under the
batch's own seed, and a DataLoader generator of its own so that building a loader never draws from
the global RNG (dropout stays identical across a resume).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vl_hub.training.arguments import DatasetArguments, TrainingArguments
from vl_hub.training.mixing import BatchPlan, BatchRef


@dataclass
class RunDatasets:
    """The loaded datasets of a run; ``*_specs`` are parallel to the dataset lists."""

    train: list[Any] = field(default_factory=list)
    train_specs: list[DatasetArguments] = field(default_factory=list)
    eval: list[Any] = field(default_factory=list)
    eval_specs: list[DatasetArguments] = field(default_factory=list)
    test: list[Any] = field(default_factory=list)
    test_specs: list[DatasetArguments] = field(default_factory=list)


def load_one(spec: DatasetArguments, cache_dir: str | None = None) -> Any:
    """``vl_hub.load_dataset`` for one spec (a ``datasets.Dataset`` of ``spec.split``), cut to ``max_samples``.

    Raises:
        FileNotFoundError: the dataset's files are missing (the message has its download instructions).
        KeyError / ValueError: unknown dataset, config, option or split.
    """
    import datasets

    from vl_hub.data.load import load_dataset

    ds = load_dataset(
        spec.name,
        data_dir=spec.data_dir,
        split=spec.split,
        cache_dir=cache_dir,
        config_name=spec.config,
        **spec.options,
    )
    if not isinstance(ds, datasets.Dataset):
        raise TypeError(f"dataset {spec.display_name}: expected one split, got {type(ds).__name__}")
    if spec.max_samples is not None and spec.max_samples < len(ds):
        ds = ds.select(range(spec.max_samples))
    return ds


def load_run_datasets(
    args: TrainingArguments, task_cls: type, training: bool = True, main_process_first: Any = None
) -> RunDatasets:
    """Loads (preparing once, on the main process first) and checks every dataset of ``args``.

    Args:
        args: the run arguments.
        task_cls: the task class; its ``check_dataset`` validates each dataset's schema.
        training: also load ``args.datasets`` (``False`` for evaluation-only runs).
        main_process_first: ``accelerator.main_process_first`` so that processes don't prepare the
            same cache concurrently.
    """
    import contextlib

    out = RunDatasets()
    groups = [("eval", args.eval_datasets), ("test", args.test_datasets)]
    if training:
        groups.insert(0, ("train", args.datasets))
    ctx = main_process_first() if main_process_first is not None else contextlib.nullcontext()
    with ctx:
        for kind, specs in groups:
            for spec in specs:
                ds = load_one(spec, args.dataset_cache_dir)
                task_cls.check_dataset(ds, spec.display_name)
                getattr(out, kind).append(ds)
                getattr(out, f"{kind}_specs").append(spec)
    return out


def build_plan(
    datasets_: Sequence[Any], specs: Sequence[DatasetArguments], args: TrainingArguments, num_processes: int
) -> BatchPlan:
    """The batch plan of the training datasets (ratios from the specs, or concatenation)."""
    ratios = [s.ratio for s in specs]
    return BatchPlan(
        lengths=[len(d) for d in datasets_],
        batch_size=args.batch_size_train,
        num_processes=num_processes,
        seed=args.seed,
        ratios=None if all(r is None for r in ratios) else [float(r) for r in ratios],  # type: ignore[arg-type]
        names=[s.display_name for s in specs],
    )


class RowSource(torch.utils.data.Dataset):
    """Rows of the concatenated training datasets, fetched one batch at a time.

    ``__getitems__(ref)`` receives a :class:`BatchRef` (the DataLoader passes the batch sampler's items
    through) and returns ``(ref.seed, rows)``.
    """

    def __init__(self, datasets_: Sequence[Any], plan: BatchPlan) -> None:
        self.datasets = list(datasets_)
        self.plan = plan

    def __len__(self) -> int:
        return int(self.plan.offsets[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        d = int(self.plan.dataset_of(np.asarray([index]))[0])
        return self.datasets[d][int(index - self.plan.offsets[d])]

    def _take(self, d: int, local: np.ndarray) -> list[dict[str, Any]]:
        ds = self.datasets[d]
        getitems = getattr(ds, "__getitems__", None)
        keys = local.tolist()
        return list(getitems(keys)) if getitems is not None else [ds[i] for i in keys]

    def __getitems__(self, ref: BatchRef) -> tuple[int, list[dict[str, Any]]]:
        which = self.plan.dataset_of(ref.indices)
        local = ref.indices - self.plan.offsets[which]
        first = int(which[0])
        if (which == first).all():
            return ref.seed, self._take(first, local)
        rows: list[Any] = [None] * len(ref.indices)
        for d in np.unique(which).tolist():
            positions = np.flatnonzero(which == d)
            for pos, row in zip(positions.tolist(), self._take(d, local[positions]), strict=True):
                rows[pos] = row
        return ref.seed, rows


class SeededCollate:
    """Runs ``collate(rows)`` with Python, NumPy and torch seeded by the batch seed, then restores the
    caller's RNG states (so that data augmentation never moves the training RNG)."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], Any]) -> None:
        self.collate = collate

    def __call__(self, item: tuple[int, list[dict[str, Any]]]) -> Any:
        seed, rows = item
        py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed % (1 << 32))
        # the CPU generator only: torch.manual_seed would also queue a lazy CUDA seeding per batch
        torch.default_generator.manual_seed(seed)
        try:
            return self.collate(rows)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)


def train_dataloader(
    datasets_: Sequence[Any],
    plan: BatchPlan,
    collate: Callable[[list[dict[str, Any]]], Any],
    start: int,
    stop: int,
    process_index: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over iterations ``start .. stop-1`` of this process (batches already assigned)."""
    refs = plan.process_batches(start, stop, process_index)
    generator = torch.Generator()
    generator.manual_seed(plan.collate_seed(start * plan.num_processes + process_index) % (1 << 63))
    return DataLoader(
        RowSource(datasets_, plan),
        batch_sampler=refs,  # type: ignore[arg-type]  # items are BatchRefs, consumed by RowSource.__getitems__
        collate_fn=SeededCollate(collate),
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=generator,
    )
