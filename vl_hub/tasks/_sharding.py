"""Row sharding and tensor gathering for the matching tasks' evaluation (retrieval, classification, NLVR,
entailment, pre-training, feature extraction).

The evaluation split is cut into fixed batches of ``batch_size`` rows (the same batches whatever the number of
processes, so in-batch quantities such as pre-training losses do not depend on it); each process takes a
contiguous block of batches, computes per-row tensors and :func:`gather_rows` concatenates them in row order on
every process. Nothing is padded by repeating rows, so nothing has to be dropped again: each process reports how
many of its rows are real and the padding is cut out after the gather.

Only ``accelerator.num_processes``, ``accelerator.process_index``, ``accelerator.device`` and
``accelerator.gather(tensor)`` are used (``accelerate.Accelerator`` or ``PartialState``-like objects); ``None``
means one process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ShardPlan", "batch_bounds", "check_map_style", "even_split", "gather_rows", "map_rows", "plan_shards", "process_info", "rows_of", "to_device"]


def batch_bounds(num_rows: int, batch_size: int, min_batch: int = 1) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` batches of ``batch_size`` rows covering ``num_rows``.

    A last batch with fewer than ``min_batch`` rows is merged into the one before it (heads that draw in-batch
    negatives need two rows). ``num_rows == 0`` gives no batch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if batch_size < min_batch:
        raise ValueError(f"batch_size={batch_size} is below the {min_batch} rows a batch needs here; raise it")
    bounds = [(start, min(start + batch_size, num_rows)) for start in range(0, num_rows, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_batch:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


@dataclass(frozen=True)
class ShardPlan:
    """What one process evaluates.

    Attributes:
        batches: ``[start, stop)`` row ranges this process runs. A process that owns no batch runs the first
            batch of the split as a placeholder (so that its result tensors have the right shapes for the gather)
            and reports 0 real rows.
        counts: real rows of every process, in process order (they sum to the split's size).
        rank: this process's index.
    """

    batches: list[tuple[int, int]]
    counts: list[int]
    rank: int

    @property
    def num_real_rows(self) -> int:
        """Rows of this process that count (0 for a placeholder)."""
        return self.counts[self.rank]

    @property
    def rows(self) -> range:
        """The real rows of this process as a range of dataset indices (empty for a placeholder)."""
        if not self.num_real_rows:
            return range(0)
        return range(self.batches[0][0], self.batches[0][0] + self.num_real_rows)


def process_info(accelerator: Any | None) -> tuple[int, int]:
    """``(process_index, num_processes)``; ``(0, 1)`` without an accelerator."""
    if accelerator is None:
        return 0, 1
    return int(accelerator.process_index), int(accelerator.num_processes)


def plan_shards(num_rows: int, batch_size: int, accelerator: Any | None, min_batch: int = 1) -> ShardPlan:
    """The batches of :func:`batch_bounds` split into contiguous blocks, one per process (``B // P`` batches each,
    one more for the first ``B % P`` processes)."""
    rank, world = process_info(accelerator)
    bounds = batch_bounds(num_rows, batch_size, min_batch)
    blocks = [bounds[a:b] for a, b in _balanced_blocks(len(bounds), world)]
    counts = [sum(stop - start for start, stop in block) for block in blocks]
    mine = blocks[rank] or bounds[:1]
    return ShardPlan(batches=mine, counts=counts, rank=rank)


def gather_rows(
    accelerator: Any | None, local: torch.Tensor, counts: Sequence[int], chunk_rows: int | None = None
) -> torch.Tensor:
    """Concatenates every process's real rows in process order; the result is on every process.

    Args:
        accelerator: ``None`` for one process.
        local: ``(n_local, ...)`` this process's rows; only the first ``counts[rank]`` are real (a placeholder
            process computed rows it does not own).
        counts: real rows per process (:attr:`ShardPlan.counts`).
        chunk_rows: gather at most this many rows per process at a time, so that only ``P * chunk_rows`` rows are
            ever on the accelerator's device at once (``local`` kept on the CPU stays there); ``None``: one gather.

    Returns:
        ``(sum(counts), ...)`` on ``local``'s device.
    """
    rank, world = process_info(accelerator)
    own = local[: counts[rank]]
    if world == 1:
        return own
    if len(counts) != world:
        raise ValueError(f"counts has {len(counts)} entries for {world} processes")
    width = max(counts)
    if width == 0:
        return own
    step = width if chunk_rows is None else max(1, int(chunk_rows))
    parts: list[list[torch.Tensor]] = [[] for _ in range(world)]
    for offset in range(0, width, step):
        rows = min(step, width - offset)
        piece = own[offset : offset + rows]
        if piece.shape[0] < rows:
            piece = torch.cat([piece, piece.new_zeros(rows - piece.shape[0], *piece.shape[1:])])
        # collectives move bool poorly on some backends; uint8 round-trips exactly
        payload = piece.to(torch.uint8) if piece.dtype == torch.bool else piece
        gathered = accelerator.gather(payload.contiguous().to(accelerator.device)).to(local.device)
        for r, count in enumerate(counts):
            real = min(rows, max(0, count - offset))
            if real:
                parts[r].append(gathered[r * rows : r * rows + real])
    out = torch.cat([chunk for per_process in parts for chunk in per_process])
    return out.bool() if local.dtype == torch.bool else out


def rows_of(dataset: Any, start: int, stop: int) -> list[dict[str, Any]]:
    """Rows ``start .. stop - 1`` of a map-style dataset as a list of dicts (one slice read for a
    ``datasets.Dataset``)."""
    if hasattr(dataset, "features") and hasattr(dataset, "select"):
        columns = dataset[start:stop]
        names = list(columns)
        return [dict(zip(names, values, strict=True)) for values in zip(*(columns[n] for n in names), strict=True)]
    return [dict(dataset[i]) for i in range(start, stop)]


def check_map_style(dataset: Any, task_name: str) -> None:
    """Raises unless ``dataset`` supports ``len`` and indexing (evaluation shards rows by index)."""
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(
            f"task {task_name!r} evaluates a map-style dataset (datasets.Dataset), got {type(dataset).__name__}; "
            "materialise a streaming dataset with datasets.Dataset.from_list(list(stream)) or load it without "
            "streaming=True"
        )


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of ``batch`` moved to ``device`` (other values kept)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def even_split(num: int, accelerator: Any | None) -> tuple[slice, list[int]]:
    """This process's contiguous block of ``num`` items (sizes differ by at most one across processes) and the
    block sizes of every process."""
    rank, world = process_info(accelerator)
    bounds = _balanced_blocks(num, world)
    return slice(*bounds[rank]), [stop - start for start, stop in bounds]


def _balanced_blocks(num: int, world: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of ``world`` contiguous blocks covering ``num`` items, sizes differing by at most one."""
    sizes = [num // world + (r < num % world) for r in range(world)]
    starts = [sum(sizes[:r]) for r in range(world)]
    return [(start, start + size) for start, size in zip(starts, sizes, strict=True)]


def map_rows(
    dataset: Any,
    step: Callable[[list[dict[str, Any]], int], Mapping[str, torch.Tensor]],
    batch_size: int,
    accelerator: Any | None,
    progress: bool = False,
    desc: str = "",
    min_batch: int = 1,
) -> dict[str, torch.Tensor]:
    """Runs ``step`` on this process's batches of rows and gathers its per-row outputs from every process.

    Args:
        dataset: map-style rows, identical on every process.
        step: ``(a batch of B rows, index of its first row) -> {name: (B, ...) tensor}`` (the same names every
            batch; the index lets a step seed its randomness per batch, independently of the process count).
        batch_size, min_batch: see :func:`batch_bounds`.
        accelerator: ``None`` for one process.
        progress, desc: progress bar.

    Returns:
        ``{name: (N, ...)}`` for the whole split in row order, on every process.
    """
    from tqdm.auto import tqdm

    plan = plan_shards(len(dataset), batch_size, accelerator, min_batch)
    if not plan.batches:
        raise ValueError("the evaluation split is empty; nothing to evaluate")
    outputs: dict[str, list[torch.Tensor]] = {}
    for start, stop in tqdm(plan.batches, desc=desc, disable=not progress, dynamic_ncols=True):
        for name, value in step(rows_of(dataset, start, stop), start).items():
            if value.shape[:1] != (stop - start,):
                raise ValueError(f"step returned {name} of shape {tuple(value.shape)} for a batch of {stop - start} rows")
            outputs.setdefault(name, []).append(value)
    return {name: gather_rows(accelerator, torch.cat(values), plan.counts) for name, values in outputs.items()}
