"""AdamW with LAVIS's weight-decay groups (``BaseModel.get_optimizer_params`` / ``RunnerBase.optimizer``).

LAVIS exempts from weight decay every trainable parameter with fewer than two dimensions (biases,
LayerNorm/BatchNorm weights, scalar temperatures) and every one whose name contains ``bias``, ``ln``
or ``bn`` (substring match, as LAVIS does); embedding tables are 2-d and decay like any matrix.
Frozen parameters (``requires_grad=False``) are left out. A model may define its own
``get_optimizer_params(weight_decay, lr_scale)`` (the LAVIS hook, e.g. for layer-wise rates); then its
groups are used as they are.
"""

from __future__ import annotations

from typing import Any

import torch

#: name substrings that exempt a parameter from weight decay (LAVIS).
NO_DECAY_SUBSTRINGS: tuple[str, ...] = ("bias", "ln", "bn")


def decays(name: str, param: torch.Tensor) -> bool:
    """Whether LAVIS applies weight decay to parameter ``name``."""
    return param.ndim >= 2 and not any(s in name for s in NO_DECAY_SUBSTRINGS)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """``[{"params": decayed, "weight_decay": wd}, {"params": the rest, "weight_decay": 0}]``.

    Raises:
        ValueError: the model has no trainable parameter.
    """
    hook = getattr(model, "get_optimizer_params", None)
    if callable(hook):
        groups = list(hook(weight_decay=weight_decay, lr_scale=1))
    else:
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            (decay if decays(name, param) else no_decay).append(param)
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
    groups = [g for g in groups if len(g["params"]) > 0]
    if not groups:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameter (all have requires_grad=False); unfreeze some to train"
        )
    return groups


def build_optimizer(model: torch.nn.Module, args: Any) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` with the run's ``init_lr``, betas and epsilon."""
    return torch.optim.AdamW(
        param_groups(model, args.weight_decay),
        lr=args.init_lr,
        betas=(args.beta1, args.beta2),
        eps=args.adam_epsilon,
        weight_decay=args.weight_decay,
    )
