"""Momentum encoders and feature queues shared by the ALBEF/BLIP training heads (LAVIS ``MomentumDistilationMixin``
and ``SharedQueueMixin``).

* :class:`MomentumMixin`: EMA copies ``*_m`` of submodules (copy, freeze, update; copies a checkpoint lacks start
  as copies of the online weights);
* :func:`init_contrastive_state_`: the learned ITC temperature and the queues as LAVIS starts them;
* :func:`concat_all_gather`: the features every process enqueues; :func:`all_gather_with_grad` /
  :func:`gather_local_first`: features of every process with their gradients flowing back to their owners.

The losses themselves (ITC with queues and distillation, the EMA step, enqueueing) are tensor functions in
:mod:`vl_hub.losses`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from vl_hub.losses import momentum_update_

__all__ = [
    "MomentumMixin",
    "all_gather_with_grad",
    "concat_all_gather",
    "gather_local_first",
    "init_contrastive_state_",
    "is_distributed",
]


class MomentumMixin:
    """Momentum (EMA) copies of submodules (LAVIS ``MomentumDistilationMixin``), for ``PreTrainedModel`` heads.

    A head lists ``(online, momentum)`` attribute names in :meth:`momentum_names` (default: the class attribute
    ``_momentum_names``), builds both modules, and calls :meth:`copy_params` after ``post_init`` (the
    initialisation draws the copies independently; LAVIS starts them equal). Momentum parameters never get
    gradients. The head's config must have a ``momentum`` field.
    """

    _momentum_names: ClassVar[tuple[tuple[str, str], ...]] = ()

    def momentum_names(self) -> tuple[tuple[str, str], ...]:
        """``(online, momentum)`` submodule names, e.g. ``("visual_encoder", "visual_encoder_m")``."""
        return self._momentum_names

    def momentum_parameter_pairs(self) -> Iterator[tuple[nn.Parameter, nn.Parameter]]:
        """Every ``(online parameter, momentum parameter)`` pair, in module order (shared parameters once)."""
        for online, momentum in self.momentum_names():
            params = list(getattr(self, online).parameters())
            params_m = list(getattr(self, momentum).parameters())
            if len(params) != len(params_m):
                raise RuntimeError(f"{online} and {momentum} have different parameter lists")
            yield from zip(params, params_m)

    def named_momentum_parameter_pairs(self) -> Iterator[tuple[str, nn.Parameter, nn.Parameter]]:
        """``(momentum parameter name, online parameter, momentum parameter)`` for every pair."""
        for online, momentum in self.momentum_names():
            for (name, param), param_m in zip(
                getattr(self, online).named_parameters(), getattr(self, momentum).parameters()
            ):
                yield f"{momentum}.{name}", param, param_m

    @torch.no_grad()
    def copy_params(self) -> None:
        """Sets every momentum parameter to its online parameter and freezes it (LAVIS ``copy_params``)."""
        for param, param_m in self.momentum_parameter_pairs():
            if param_m.device.type != "meta":
                param_m.copy_(param)
            param_m.requires_grad_(False)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``p_m = momentum * p_m + (1 - momentum) * p`` for every pair (LAVIS ``_momentum_update``)."""
        pairs = list(self.momentum_parameter_pairs())
        if pairs:
            params, params_m = zip(*pairs)
            momentum_update_(params, params_m, self.config.momentum)  # type: ignore[attr-defined]

    def tie_weights(self, missing_keys: set[str] | None = None, recompute_mapping: bool = True) -> None:
        """transformers' tying, then the momentum bookkeeping that every load needs.

        ``from_pretrained`` re-creates parameters with ``requires_grad=True`` and then calls this method, so the
        momentum copies are frozen again here. A momentum parameter the checkpoint lacked (``missing_keys``, e.g. a
        training head loaded from an inference checkpoint) starts as a copy of its online parameter, as LAVIS's
        ``copy_params`` does, instead of a random draw.
        """
        super().tie_weights(missing_keys=missing_keys, recompute_mapping=recompute_mapping)  # type: ignore[misc]
        with torch.no_grad():
            for name, param, param_m in self.named_momentum_parameter_pairs():
                if missing_keys and name in missing_keys and param_m.device.type != "meta":
                    param_m.copy_(param)
                param_m.requires_grad_(False)


def init_contrastive_state_(module: nn.Module, temp: float) -> None:
    """The tensors an ITC head holds itself, as LAVIS starts them: ``temp`` = ``temp``; ``image_queue`` /
    ``text_queue`` ``(E, Q)`` random unit columns; ``idx_queue`` -100; ``queue_ptr`` 0. Absent attributes are skipped.

    Goes through ``transformers.initialization`` so that values loaded from a checkpoint are never touched.
    """
    temp_param = getattr(module, "temp", None)
    if isinstance(temp_param, nn.Parameter):
        init.constant_(temp_param, float(temp))
    for name in ("image_queue", "text_queue"):
        queue = getattr(module, name, None)
        if isinstance(queue, torch.Tensor) and queue.device.type != "meta":
            init.copy_(queue, F.normalize(torch.randn(queue.shape, device=queue.device), dim=0).to(queue.dtype))
    for name, value in (("idx_queue", -100), ("queue_ptr", 0)):
        buffer = getattr(module, name, None)
        if isinstance(buffer, torch.Tensor) and buffer.device.type != "meta":
            init.constant_(buffer, value)


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised ``torch.distributed`` group."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def concat_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenates ``tensor`` over every process (no gradient); itself when not distributed."""
    import torch.distributed as dist

    if not is_distributed():
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


class _AllGatherWithGrad(torch.autograd.Function):
    """``all_gather`` whose backward hands each process the summed gradient of its own rows (LAVIS ``GatherLayer``);
    works with every backend (gloo included)."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor) -> tuple[torch.Tensor, ...]:
        import torch.distributed as dist

        gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, local.contiguous())
        return tuple(gathered)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        stacked = torch.stack(grads)
        dist.all_reduce(stacked)
        return stacked[dist.get_rank()]


def all_gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """``local (B, ...)`` of every process concatenated in rank order ``(P*B, ...)``, gradients flowing back to each
    owner (LAVIS ``all_gather_with_grad``); ``local`` itself in a single process. Every process needs the same ``B``."""
    if not is_distributed():
        return local
    return torch.cat(_AllGatherWithGrad.apply(local), dim=0)


def gather_local_first(local: torch.Tensor) -> torch.Tensor:
    """``local (B, E)`` followed by the features of every other process (their gradients flow back to their owners);
    ``local`` itself in a single process. LAVIS gathers in rank order; putting this process first only permutes the
    columns, which changes neither the softmax losses nor the in-batch block the hard negatives come from."""
    import torch.distributed as dist

    if not is_distributed():
        return local
    gathered = _AllGatherWithGrad.apply(local)
    rank = dist.get_rank()
    return torch.cat([local] + [g for i, g in enumerate(gathered) if i != rank], dim=0)
