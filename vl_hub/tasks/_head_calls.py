"""Family-agnostic calls into the matching heads (retrieval, classification, NLVR, entailment, pre-training,
feature extraction).

Heads of every family expose the same method names for a task (``get_image_features``, ``get_text_features``,
``encode_images``, ``itm_match_logits``, ``forward(..., labels=..., idx=..., alpha=..., return_loss=...)``); what
differs is which optional arguments a head's ``forward`` takes (CLIP has no ``idx``, BLIP pre-training has no
``return_loss``). :func:`forward_losses` passes only the arguments a head accepts, so the tasks never branch on the
family name.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "accepted_arguments",
    "check_ramp_epochs",
    "forward_losses",
    "image_index",
    "loss_parts",
    "ramped_alpha",
    "tokenize",
]


@functools.lru_cache(maxsize=64)
def _parameters(fn: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    params = inspect.signature(fn).parameters.values()
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return frozenset(p.name for p in params), takes_any


def accepted_arguments(fn: Callable[..., Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``arguments`` that ``fn`` takes as keywords (all of them when it takes ``**kwargs``);
    ``None`` values are dropped so that heads keep their defaults."""
    names, takes_any = _parameters(fn)
    return {k: v for k, v in arguments.items() if v is not None and (takes_any or k in names)}


def loss_parts(output: Any) -> dict[str, torch.Tensor]:
    """``{"loss": total, "<part>": value, ...}`` from a head output: ``loss`` first, then each ``loss_<part>`` field
    (``loss_itc`` -> ``itc``) that is set."""
    loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
    if loss is None:
        raise ValueError(
            f"{type(output).__name__} has no loss: the head was not given what its training loss needs "
            "(labels / idx / return_loss)"
        )
    items = output.items() if isinstance(output, Mapping) else vars(output).items()
    parts = {name[len("loss_") :]: value for name, value in items if name.startswith("loss_") and value is not None}
    return {"loss": loss, **parts}


def forward_losses(
    head: torch.nn.Module, model: Callable[..., Any], inputs: Mapping[str, Any], **optional: Any
) -> dict[str, torch.Tensor]:
    """Runs ``model(**inputs, **optional)`` and returns :func:`loss_parts` of its output.

    Args:
        head: the unwrapped head (its ``forward`` signature decides which ``optional`` arguments are passed).
        model: what to call: the head itself or its distributed wrapper (DDP/FSDP only wrap ``forward``).
        inputs: arguments every head of the task takes (``pixel_values``, ``input_ids``, ...).
        optional: arguments only some heads take (``idx``, ``alpha``, ``return_loss``); the others are dropped.
    """
    return loss_parts(model(**inputs, **accepted_arguments(type(head).forward, optional)))


def _normalises_captions(processor: Any) -> bool:
    names, _ = _parameters(type(processor).__call__)
    return "text_mode" in names


def tokenize(processor: Any, texts: Sequence[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids (N, L), attention_mask (N, L))`` of ``texts``, padded to the longest.

    Processors with caption normalisers (BLIP's ``text_mode="caption"``: LAVIS ``pre_caption``) apply them, as the
    original's ``blip_caption`` text processor does for retrieval, NLVR and entailment; others tokenise as given.
    """
    kwargs: dict[str, Any] = {"text": list(texts), "return_tensors": "pt"}
    if max_length is not None:
        kwargs["max_length"] = max_length
    if _normalises_captions(processor):
        kwargs["text_mode"] = "caption"
    encoded = processor(**kwargs)
    return encoded["input_ids"], encoded["attention_mask"]


def image_index(image_ids: Sequence[str]) -> torch.Tensor:
    """``(B,)`` int64 ids of images from their string ids: a 56-bit hash, the same in every process and DataLoader
    worker, so captions of one image are positives of each other in ITC (and never hard negatives), also across
    batches through the ``idx`` queue (LAVIS numbers images consecutively; any injective id works)."""
    return torch.tensor(
        [int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=7).digest(), "big") for i in image_ids],
        dtype=torch.long,
    )


def ramped_alpha(head: torch.nn.Module, progress: Any | None, ramp_epochs: float | None) -> float | None:
    """The momentum-distillation weight of this training step, ramped as LAVIS does:
    ``config.alpha * min(1, (epoch * iters_per_epoch + iteration) / (ramp_epochs * iters_per_epoch))`` (LAVIS:
    2 epochs for retrieval and pre-training, 1 for classification heads).

    Args:
        head: the unwrapped head (its ``config.alpha`` is the final weight).
        progress: the trainer's ``task.training_progress`` (``None`` outside a trainer).
        ramp_epochs: ramp length in epochs; ``None`` or 0 turns the ramp off.

    Returns:
        ``None`` (the head keeps ``config.alpha``) without progress, ramp or ``config.alpha``.
    """
    base = getattr(getattr(head, "config", None), "alpha", None)
    if progress is None or not ramp_epochs or base is None:
        return None
    per_epoch = max(1, int(progress.iterations_per_epoch))
    done = progress.epoch * per_epoch + progress.iteration_in_epoch
    return float(base) * min(1.0, done / (ramp_epochs * per_epoch))


def check_ramp_epochs(task_name: str, value: Any) -> float | None:
    """The ``alpha_ramp_epochs`` option: ``None`` or a number >= 0."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise ValueError(f"task {task_name!r}: option alpha_ramp_epochs must be a number >= 0 or None, got {value!r}")
    return value
