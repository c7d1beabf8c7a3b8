"""LAVIS learning-rate schedules (``lavis/common/optims.py``), as pure functions of (epoch, iteration).

LAVIS sets the rate before every iteration from the (inner) epoch and the iteration index inside it:

* first epoch: linear warmup ``min(init_lr, warmup_lr + (init_lr - warmup_lr) * step / max(warmup_steps, 1))``
  (``warmup_lr`` -1 means ``init_lr``: no warmup);
* later epochs, by schedule:
  ``linear_warmup_cosine_lr``: ``(init_lr - min_lr) * 0.5 * (1 + cos(pi * epoch / max_epoch)) + min_lr``;
  ``linear_warmup_step_lr``: ``max(min_lr, init_lr * lr_decay_rate ** epoch)``;
  ``constant_lr``: ``init_lr``.

The rate is constant within an epoch after the first (LAVIS decays per epoch, not per step). Every
parameter group gets the rate times its optional ``lr_scale`` (1 by default), the hook LAVIS's later
models use for layer-wise scaling. Schedules hold no state: resuming needs only the counters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def warmup_lr(step: int, warmup_steps: int, start_lr: float, max_lr: float) -> float:
    """Linear warmup from ``start_lr`` to ``max_lr`` over ``warmup_steps`` iterations (then ``max_lr``)."""
    return min(max_lr, start_lr + (max_lr - start_lr) * step / max(warmup_steps, 1))


def cosine_lr(epoch: int, max_epoch: int, init_lr: float, min_lr: float) -> float:
    """Half-cosine from ``init_lr`` (epoch 0) to ``min_lr`` (epoch ``max_epoch``)."""
    return (init_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * epoch / max_epoch)) + min_lr


def step_lr(epoch: int, init_lr: float, min_lr: float, decay_rate: float) -> float:
    """``init_lr * decay_rate ** epoch``, not below ``min_lr``."""
    return max(min_lr, init_lr * decay_rate**epoch)


@dataclass(frozen=True)
class LavisSchedule:
    """A LAVIS schedule; :meth:`lr` gives the rate for (epoch, iteration in that epoch).

    Args:
        name: ``linear_warmup_cosine_lr``, ``linear_warmup_step_lr`` or ``constant_lr``.
        init_lr: peak rate; min_lr: floor (cosine/step); max_epoch: epochs of the cosine.
        warmup_lr: warmup start rate, negative for ``init_lr``; warmup_steps: warmup iterations.
        decay_rate: per-epoch factor of the step schedule.
    """

    name: str
    init_lr: float
    min_lr: float = 0.0
    max_epoch: int = 1
    warmup_lr: float = -1.0
    warmup_steps: int = 0
    decay_rate: float | None = None

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown lr_sched {self.name!r}; valid: {', '.join(SCHEDULES)}")
        if self.name == "linear_warmup_step_lr" and self.decay_rate is None:
            raise ValueError("linear_warmup_step_lr needs decay_rate (lr_decay_rate)")
        if self.max_epoch < 1:
            raise ValueError(f"max_epoch must be >= 1, got {self.max_epoch}")

    @property
    def warmup_start_lr(self) -> float:
        """The rate warmup starts from (``init_lr`` when ``warmup_lr`` is negative)."""
        return self.warmup_lr if self.warmup_lr >= 0 else self.init_lr

    def lr(self, epoch: int, step: int) -> float:
        """The learning rate of iteration ``step`` of (inner) epoch ``epoch``."""
        if epoch == 0:
            return warmup_lr(step, self.warmup_steps, self.warmup_start_lr, self.init_lr)
        if self.name == "linear_warmup_cosine_lr":
            return cosine_lr(epoch, self.max_epoch, self.init_lr, self.min_lr)
        if self.name == "linear_warmup_step_lr":
            assert self.decay_rate is not None  # checked in __post_init__
            return step_lr(epoch, self.init_lr, self.min_lr, self.decay_rate)
        return self.init_lr


#: the schedules LAVIS registers (``registry.get_lr_scheduler_class``).
SCHEDULES: tuple[str, ...] = ("linear_warmup_cosine_lr", "linear_warmup_step_lr", "constant_lr")


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Sets every parameter group's rate to ``lr * group.get("lr_scale", 1)``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def build_schedule(args: object) -> LavisSchedule:
    """The schedule of :class:`~vl_hub.training.TrainingArguments` (``max_epoch`` = ``num_epochs``)."""
    return LavisSchedule(
        name=args.lr_sched,  # type: ignore[attr-defined]
        init_lr=args.init_lr,  # type: ignore[attr-defined]
        min_lr=args.min_lr,  # type: ignore[attr-defined]
        max_epoch=args.num_epochs,  # type: ignore[attr-defined]
        warmup_lr=args.warmup_lr,  # type: ignore[attr-defined]
        warmup_steps=args.warmup_steps,  # type: ignore[attr-defined]
        decay_rate=args.lr_decay_rate,  # type: ignore[attr-defined]
    )
