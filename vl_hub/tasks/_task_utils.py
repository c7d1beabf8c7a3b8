"""Plumbing shared by the generative and answering tasks (captioning, VQA, video QA, dialogue).

* options: :func:`resolve_options` (unknown task options raise, listing the valid ones);
* pixels of a batch of image rows or video rows (:func:`batch_pixels`): images go through the processor,
  videos are decoded with :func:`vl_hub.processing.video.load_video` first (``(B, T, 3, S, S)``);
* text length limits that respect the model's position embeddings (:func:`text_length_limit`);
* the sharded evaluation loop (:func:`evaluation_records`): rows are split across processes by
  ``vl_hub.training.evaluation.eval_dataloader``, every batch's per-row records are gathered with
  ``gather_for_metrics`` (which drops the padding rows of the last batch) and deduplicated by row index, so each
  row counts once whatever the number of processes;
* :func:`main_process_metrics`: metrics computed once on the main process and broadcast to the others.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: key of the dataset row index that the evaluation collators receive in every row
ROW_INDEX = "__row_index__"

_MEDIA_COLUMNS = ("image", "video")


# ------------------------------------------------------------------------------------------------ options


def resolve_options(task_name: str, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``options``; raises for an option the task does not know.

    Args:
        task_name: for the error message.
        options: the user's task options (recipe ``task_options``).
        defaults: every valid option with its default value.
    """
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"task {task_name!r} got unknown option(s) {unknown}; valid options: {', '.join(sorted(defaults))}"
        )
    return {**defaults, **options}


def check_int(task_name: str, name: str, value: Any, minimum: int) -> int:
    """``value`` when it is an int ``>= minimum``; raises naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"task {task_name!r}: option {name} must be an int >= {minimum}, got {value!r}")
    return value


def check_mapping(task_name: str, name: str, value: Any) -> dict[str, Any]:
    """A copy of ``value`` when it is a mapping (e.g. ``generate_kwargs``); raises naming the option otherwise."""
    if not isinstance(value, Mapping):
        raise TypeError(f"task {task_name!r}: option {name} must be a mapping, got {type(value).__name__}: {value!r}")
    return dict(value)


def check_choice(task_name: str, name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` when it is one of ``allowed``; raises naming the choices otherwise."""
    if value not in allowed:
        raise ValueError(
            f"task {task_name!r}: option {name}={value!r} is not supported; use one of {', '.join(map(repr, allowed))}"
        )
    return value


def require_processor(task_name: str, processor: Any) -> Any:
    """The processor, or a clear error when the task was built without one."""
    if processor is None or not callable(processor):
        raise ValueError(
            f"task {task_name!r} needs the model's processor (images/videos + tokenizer) to build batches, got "
            f"{processor!r}; load it with AutoProcessor.from_pretrained(<model folder>) or vl_hub.load_model_and_processor"
        )
    if getattr(processor, "tokenizer", None) is None:
        raise ValueError(f"task {task_name!r}: the processor {type(processor).__name__} has no tokenizer")
    return processor


def text_length_limit(model: torch.nn.Module) -> int | None:
    """The text transformer's position limit (``config.text_config.max_position_embeddings``), if known."""
    text_config = getattr(getattr(model, "config", None), "text_config", None)
    limit = getattr(text_config, "max_position_embeddings", None)
    return int(limit) if limit else None


def capped_length(requested: int, model: torch.nn.Module) -> int:
    """``requested`` token count capped to the model's position limit (truncation never exceeds it)."""
    limit = text_length_limit(model)
    return requested if limit is None else min(requested, limit)


def forward_takes(model: torch.nn.Module, name: str) -> bool:
    """Whether the head's ``forward`` (under a DDP/compile wrapper too) takes the keyword ``name``."""
    import inspect

    head = getattr(model, "module", model)
    head = getattr(head, "_orig_mod", head)
    try:
        return name in inspect.signature(head.forward).parameters
    except (TypeError, ValueError):
        return False


def distillation_alpha(model: torch.nn.Module, progress: Any | None) -> dict[str, float]:
    """``{"alpha": ...}`` for heads trained with momentum distillation (a ``forward(..., alpha=...)`` and a
    ``config.alpha``), ramped over the first epoch as LAVIS's ALBEF VQA does: ``alpha * min(1, i / iters_per_epoch)``
    in epoch 0 (``i``: batch index), ``alpha`` afterwards; ``{}`` for other heads or outside the trainer
    (``progress``: the trainer's ``task.training_progress``)."""
    config = getattr(getattr(model, "module", model), "config", None)
    base = getattr(config, "alpha", None)
    if progress is None or base is None or not forward_takes(model, "alpha"):
        return {}
    if progress.epoch > 0:
        return {"alpha": float(base)}
    return {"alpha": float(base) * min(1.0, progress.iteration_in_epoch / max(1, progress.iterations_per_epoch))}


# ------------------------------------------------------------------------------------------------ pixels


def media_column(rows: Sequence[Mapping[str, Any]], task_name: str) -> str:
    """``"image"`` or ``"video"``: the media column of the rows (every schema holds exactly one)."""
    if not rows:
        raise ValueError(f"task {task_name!r} got an empty batch of rows")
    for column in _MEDIA_COLUMNS:
        if column in rows[0]:
            return column
    raise ValueError(
        f"task {task_name!r}: rows have no 'image' or 'video' column (columns: {sorted(rows[0])}); "
        "load the dataset with vl_hub.load_dataset so its rows follow a vl_hub task schema"
    )


def collate_generator() -> np.random.Generator:
    """A numpy generator drawn from torch's global RNG, which the trainer seeds per batch
    (``vl_hub.training.data.SeededCollate``): random frame sampling is reproducible and differs per batch."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def _image_size(processor: Any) -> int | None:
    """The processor's image/frame side: its image processor's, its video processor's (ALPRO) or its own."""
    for owner in (getattr(processor, "image_processor", None), getattr(processor, "video_processor", None), processor):
        size = getattr(owner, "image_size", None)
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    return None


def batch_pixels(
    processor: Any,
    rows: Sequence[Mapping[str, Any]],
    column: str,
    train: bool,
    num_frames: int = 8,
    sampling: str = "uniform",
) -> torch.Tensor:
    """``pixel_values`` of a batch: images ``(B, 3, S, S)`` or video frames ``(B, T, 3, S, S)``.

    Args:
        processor: the model's processor (called with ``images=`` / ``videos=`` and ``do_augment``).
        rows: dataset rows holding ``column``.
        column: ``"image"`` (PIL images) or ``"video"`` (file paths, decoded here).
        train: use the processor's training augmentation.
        num_frames: frames sampled per video.
        sampling: frame sampling mode (``vl_hub.processing.video.SAMPLING_MODES``); random modes draw from
            :func:`collate_generator`.
    """
    if column == "image":
        return processor(images=[row["image"] for row in rows], do_augment=train)["pixel_values"]
    from vl_hub.processing.video import RANDOM_SAMPLING_MODES, load_video

    size = _image_size(processor)
    generator = collate_generator() if sampling in RANDOM_SAMPLING_MODES else None
    # decoded straight at the model's resolution, as LAVIS's video processors let the decoder resize
    videos = [
        load_video(row["video"], num_frames, sampling, height=size, width=size, generator=generator) for row in rows
    ]
    return processor(videos=videos, do_augment=train)["pixel_values"]


# ------------------------------------------------------------------------------------------------ evaluation


class IndexedRows(torch.utils.data.Dataset):
    """A map-style view of ``dataset`` whose rows carry their index under :data:`ROW_INDEX`."""

    def __init__(self, dataset: Any) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"evaluation needs a map-style dataset (datasets.Dataset or a list of rows), got "
                f"{type(dataset).__name__}; a streaming dataset can be materialised with "
                "datasets.Dataset.from_list(list(stream))"
            )
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = dict(self.dataset[index])
        row[ROW_INDEX] = int(index)
        return row

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        getitems = getattr(self.dataset, "__getitems__", None)
        rows = getitems(indices) if getitems is not None else [self.dataset[i] for i in indices]
        return [{**row, ROW_INDEX: int(i)} for row, i in zip(rows, indices, strict=True)]


def row_indices(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """The dataset indices of evaluation rows (``-1`` where a caller passed rows without one)."""
    return [int(row.get(ROW_INDEX, -1)) for row in rows]


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a parameterless module)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """``model.eval()`` under ``torch.no_grad()``, restoring the training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def evaluation_records(
    dataset: Any,
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]],
    predict: Callable[[dict[str, Any]], list[tuple[Any, ...]]],
    model: torch.nn.Module,
    accelerator: Any | None,
    batch_size: int,
    progress: bool,
    desc: str,
) -> list[tuple[Any, ...]]:
    """Runs ``predict`` over ``dataset`` sharded across processes; returns every row's record once, in row order.

    Args:
        dataset: map-style rows (a ``datasets.Dataset``), identical on every process.
        collate: rows -> batch; it receives each row's index under :data:`ROW_INDEX` and should pass the indices
            on (e.g. as a list under ``"row_index"``).
        predict: batch -> one record per row, a tuple whose first item is the row index (int). Records are plain
            Python objects (gathered with ``gather_object``), so they can hold strings and ground truth.
        model: the model (its device receives the batches when there is no accelerator).
        accelerator: an ``accelerate.Accelerator`` or ``None`` (one process).
        batch_size: rows per process per batch.
        progress: show a progress bar.
        desc: progress bar label.
    """
    from accelerate.utils import send_to_device
    from tqdm.auto import tqdm

    from vl_hub.training.evaluation import eval_dataloader, gather_for_metrics

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    loader = eval_dataloader(IndexedRows(dataset), collate, batch_size, accelerator)
    device = model_device(model)
    gathered: list[tuple[Any, ...]] = []
    for batch in tqdm(loader, desc=desc, disable=not progress, dynamic_ncols=True):
        if accelerator is None:
            batch = send_to_device(batch, device)
        gathered.extend(gather_for_metrics(accelerator, list(predict(batch))))
    # gather_for_metrics already drops the last batch's padding; keying by row index also covers loaders whose
    # remainder accelerate cannot know
    unique = {int(record[0]): record for record in gathered}
    return [unique[i] for i in sorted(unique)]


def main_process_metrics(accelerator: Any | None, compute: Callable[[], dict[str, float]]) -> dict[str, float]:
    """``compute()`` on the main process, broadcast to every process (an error is re-raised on all of them)."""
    if accelerator is None or getattr(accelerator, "num_processes", 1) == 1:
        return compute()
    from accelerate.utils import broadcast_object_list

    box: list[Any] = [None]
    if accelerator.is_main_process:
        try:
            box[0] = ("ok", compute())
        except Exception as err:  # noqa: BLE001 - the other processes would wait forever in the broadcast otherwise
            box[0] = ("error", err)
    broadcast_object_list(box, from_process=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value


def split_unavailable(metrics: Mapping[str, Any], unavailable: dict[str, str]) -> dict[str, float]:
    """Numeric metrics of ``metrics``; entries ``<name>_unavailable`` (a reason string) go to ``unavailable``
    and are logged once, as evaluation results must be numbers."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, str):
            name = key.removesuffix("_unavailable")
            if unavailable.get(name) != value:
                warnings.warn(f"{name} not computed: {value}", stacklevel=3)
            unavailable[name] = value
        else:
            out[key] = float(value)
    return out
