"""The feed-forward block and stochastic depth shared by the ViT and TimeSformer blocks.

Parameter names (``fc1``, ``fc2``) follow timm/LAVIS so that original checkpoints load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """``fc2(dropout(GELU(fc1(x))))`` followed by dropout, with the exact (erf) GELU of timm/LAVIS.

    Args:
        in_features: input width ``D``.
        hidden_features: inner width (``int(D * mlp_ratio)`` in the vision blocks).
        out_features: output width; defaults to ``in_features``.
        dropout: dropout after the activation and after ``fc2`` (0 in every LAVIS vision config).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(dropout) if dropout > 0.0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``hidden_states: (..., in_features)`` -> ``(..., out_features)``."""
        hidden_states = self.drop(self.act(self.fc1(hidden_states)))
        return self.drop(self.fc2(hidden_states))


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Stochastic depth: zeroes whole rows of ``x`` (dim 0) with probability ``drop_prob`` and rescales
    the kept rows by ``1 / (1 - drop_prob)``; identity in eval mode or when ``drop_prob`` is 0.

    ``x: (N, ...)`` where each of the ``N`` rows is dropped or kept as a whole.
    """
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    mask_shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = x.new_empty(mask_shape).bernoulli_(keep_prob)
    return x * mask.div_(keep_prob)


class DropPath(nn.Module):
    """Module form of :func:`drop_path` (stochastic depth on the residual branch).

    Args:
        drop_prob: probability of dropping a row; must lie in ``[0, 1)``.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}; use 0.0 to disable stochastic depth")
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, ...)`` -> same shape."""
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
