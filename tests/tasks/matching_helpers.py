"""Shared pieces of the matching-task tests (retrieval, classification, NLVR, entailment, pre-training, feature
extraction): tiny BLIP processor/models, dataset loaders, a threaded stand-in for N Accelerate processes, and the
"a few optimiser steps lower the loss" check."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch

import vl_hub
from tests.common.builder_tester import dummy_dir
from tests.models.blip.reference_utils import tiny_blip_config
from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
from vl_hub.models.blip.processing_blip import VlHubBlipProcessor, build_blip_tokenizer

VOCAB = Path(__file__).resolve().parents[1] / "fixtures" / "bert_vocab.txt"


def blip_processor(max_txt_len: int = 20) -> VlHubBlipProcessor:
    """BLIP processor of the tiny models: 32 px images, the 230-token fixture vocabulary + [DEC]/[ENC]."""
    return VlHubBlipProcessor(VlHubBlipImageProcessor(image_size=32), build_blip_tokenizer(VOCAB), max_txt_len=max_txt_len)


def tiny_blip(head: type, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A tiny BLIP head (``tiny_blip_config(**overrides)``) with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return head(tiny_blip_config(**overrides)).eval()


def dummy_split(name: str, split: str, cache_dir: Path) -> datasets.Dataset:
    """A split of a builder's ``dummy/`` fixture."""
    return vl_hub.load_dataset(name, data_dir=dummy_dir(name), cache_dir=cache_dir, split=split)


def shapes_split(config: str, split: str, cache_dir: Path, **counts: Any) -> datasets.Dataset:
    """A split of the synthetic ``vl_hub_shapes`` set at 32 px (``num_train=..`` etc. in ``counts``)."""
    return vl_hub.load_dataset(
        "vl_hub_shapes", config_name=config, cache_dir=cache_dir, split=split, image_size=32, **counts
    )


class _ThreadGroup:
    """All-gather between threads: what ``torch.distributed`` does between processes."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.barrier = threading.Barrier(world)
        self.slots: list[torch.Tensor | None] = [None] * world

    def all_gather(self, rank: int, tensor: torch.Tensor) -> torch.Tensor:
        self.slots[rank] = tensor
        self.barrier.wait()
        shapes = {tuple(t.shape[1:]) for t in self.slots}
        rows = {t.shape[0] for t in self.slots}
        if len(shapes) != 1 or len(rows) != 1:
            # accelerate's gather needs equal shapes on every process as well
            raise RuntimeError(f"gather of different shapes across processes: {[tuple(t.shape) for t in self.slots]}")
        out = torch.cat(list(self.slots))
        self.barrier.wait()
        return out


class ThreadAccelerator:
    """The part of ``accelerate.Accelerator`` the tasks use, for process ``rank`` of a :class:`_ThreadGroup`."""

    def __init__(self, group: _ThreadGroup, rank: int) -> None:
        self.group = group
        self.process_index = rank
        self.num_processes = group.world
        self.is_main_process = rank == 0
        self.device = torch.device("cpu")
        self.gather_calls = 0

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        self.gather_calls += 1
        return self.group.all_gather(self.process_index, tensor)


def run_processes(world: int, fn: Callable[[ThreadAccelerator], Any]) -> list[Any]:
    """Runs ``fn(accelerator)`` as ``world`` simulated processes (threads) and returns their results in rank
    order; an exception in any of them is re-raised (the others are released from their barrier)."""
    group = _ThreadGroup(world)
    results: list[Any] = [None] * world
    errors: list[BaseException] = []

    def target(rank: int) -> None:
        try:
            with torch.no_grad():
                results[rank] = fn(ThreadAccelerator(group, rank))
        except BaseException as err:  # noqa: BLE001 - re-raised below
            errors.append(err)
            group.barrier.abort()

    threads = [threading.Thread(target=target, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def losses_over_steps(task: Any, model: torch.nn.Module, batch: dict[str, Any], steps: int, lr: float) -> list[float]:
    """Total loss of ``task.training_step`` on the same batch over ``steps`` AdamW steps (train mode)."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    values = []
    for _ in range(steps):
        out = task.training_step(model, batch)
        assert next(iter(out)) == "loss"
        values.append(float(out["loss"].detach()))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    model.eval()
    return values
