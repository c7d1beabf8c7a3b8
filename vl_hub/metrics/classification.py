"""Top-k classification accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Percent of rows whose label is among the ``k`` highest scores, for each ``k``.

    Args:
        logits: ``(N, C)`` scores.
        labels: ``(N,)`` class indices in ``[0, C)``.

    Returns ``{"top1": ..., "top5": ...}``; ``k`` larger than ``C`` is clipped to ``C``.
    """
    if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"expected logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("topk_accuracy needs at least one example")
    num_classes = logits.shape[1]
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); got values in [{labels.min()}, {labels.max()}]")
    top = logits.topk(min(max(ks), num_classes), dim=1).indices
    hit = top == labels[:, None]
    return {f"top{k}": 100.0 * hit[:, : min(k, num_classes)].any(dim=1).float().mean().item() for k in ks}
