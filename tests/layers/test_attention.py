"""SDPA and eager attention agree; masks zero out probabilities exactly."""

from __future__ import annotations

import pytest
import torch

from vl_hub.layers.attention import (
    additive_mask,
    check_attn_implementation,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
)


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_equals_eager(causal: bool) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 7, 8, generator=g) for _ in range(3))
    mask = None
    if not causal:
        keep = torch.ones(2, 7)
        keep[1, 5:] = 0
        mask = additive_mask(keep, torch.float32)
    a, _ = scaled_dot_product_attention(q, k, v, mask, is_causal=causal, implementation="sdpa")
    b, probs = scaled_dot_product_attention(q, k, v, mask, is_causal=causal, implementation="eager", return_weights=True)
    assert (a - b).abs().max() <= 1e-5
    if not causal:
        assert torch.all(probs[1, :, :, 5:] == 0)
    else:
        assert torch.all(probs[..., 0, 1:] == 0)


def test_heads_round_trip() -> None:
    x = torch.randn(2, 5, 12)
    assert torch.equal(merge_heads(split_heads(x, 3)), x)


def test_unknown_implementation_is_named() -> None:
    with pytest.raises(ValueError, match="flash"):
        check_attn_implementation("flash")
