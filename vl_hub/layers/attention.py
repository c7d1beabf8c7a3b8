"""Scaled dot-product attention with an SDPA path and an eager path that give the same numbers.

Every attention block in vl_hub (ViT, BERT self/cross-attention, TimeSformer, CLIP) projects its own
queries/keys/values (their parameter names follow the original checkpoints) and calls
:func:`scaled_dot_product_attention` here, so the choice between ``"sdpa"`` and ``"eager"`` is made
in one place.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

AttnImplementation = Literal["sdpa", "eager"]
ATTN_IMPLEMENTATIONS: tuple[str, ...] = ("sdpa", "eager")


def check_attn_implementation(value: str | None) -> str:
    """Returns ``value`` (``None`` -> ``"sdpa"``) or raises listing the supported implementations."""
    if value is None:
        return "sdpa"
    if value not in ATTN_IMPLEMENTATIONS:
        raise ValueError(
            f"attn_implementation={value!r} is not supported; use one of {', '.join(ATTN_IMPLEMENTATIONS)}"
        )
    return value


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    implementation: str = "sdpa",
    return_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention ``softmax(q k^T * scale + mask) v``.

    Args:
        query: ``(batch, heads, q_len, head_dim)``.
        key, value: ``(batch, heads, kv_len, head_dim)``.
        attn_mask: additive float mask broadcastable to ``(batch, heads, q_len, kv_len)`` (0 keeps,
            large negative drops) or a boolean mask (``True`` keeps).
        dropout_p: attention-probability dropout (pass 0 in eval).
        is_causal: apply a causal mask (only when ``attn_mask`` is ``None``).
        scale: defaults to ``head_dim ** -0.5``.
        implementation: ``"sdpa"`` (``torch.nn.functional.scaled_dot_product_attention``) or
            ``"eager"`` (explicit softmax; needed to read or hook attention probabilities).
        return_weights: also return the probabilities ``(batch, heads, q_len, kv_len)``; forces eager.

    Returns:
        ``(output (batch, heads, q_len, head_dim), probabilities or None)``.
    """
    if implementation == "sdpa" and not return_weights:
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
        )
        return out, None
    if implementation not in ATTN_IMPLEMENTATIONS:
        check_attn_implementation(implementation)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if is_causal and attn_mask is None:
        q_len, kv_len = scores.shape[-2:]
        keep = torch.ones(q_len, kv_len, dtype=torch.bool, device=scores.device).tril(kv_len - q_len)
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    elif attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attn_mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return torch.matmul(probs, value), probs


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(batch, len, heads*head_dim)`` -> ``(batch, heads, len, head_dim)``."""
    b, n, d = x.shape
    return x.view(b, n, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(batch, heads, len, head_dim)`` -> ``(batch, len, heads*head_dim)``."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype, value: float = -10000.0) -> torch.Tensor:
    """A ``(batch, len)`` / ``(batch, q, len)`` 0/1 keep-mask -> additive ``(batch, 1, q|1, len)`` mask.

    ``value`` is BERT's ``-10000`` (as the originals); ``exp(-10000)`` is exactly 0 in float32.
    """
    if mask.dim() == 2:
        mask = mask[:, None, None, :]
    elif mask.dim() == 3:
        mask = mask[:, None, :, :]
    return (1.0 - mask.to(dtype)) * value
