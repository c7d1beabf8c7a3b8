"""Hard-negative mining never draws a positive, follows the softmax weights, and the ITM loss by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vl_hub.losses.itm import hard_negative_weights, itm_labels, itm_loss, sample_hard_negatives


def test_weights_hand_values() -> None:
    ln2 = math.log(2)
    sim = torch.tensor([[5.0, ln2, 0.0], [0.0, 1.0, 0.0], [ln2, ln2, 9.0]])
    weights = hard_negative_weights(sim)
    # row 0: negatives e^{ln2}=2 and e^0=1 -> [0, 2/3, 1/3]; row 1: [1/2, 0, 1/2]; row 2: [1/2, 1/2, 0]
    expected = torch.tensor([[0.0, 2 / 3, 1 / 3], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    torch.testing.assert_close(weights, expected)


def test_weights_with_epsilon_as_blip_pretraining() -> None:
    sim = torch.tensor([[0.0, math.log(2), 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    eps = 1e-4
    weights = hard_negative_weights(sim, epsilon=eps)
    # row 0: softmax [1/4, 1/2, 1/4] + eps, diagonal zeroed, renormalised
    row0 = torch.tensor([0.0, 0.5 + eps, 0.25 + eps])
    torch.testing.assert_close(weights[0], row0 / row0.sum())


def test_weights_with_idx_positives() -> None:
    sim = torch.zeros(3, 3)
    weights = hard_negative_weights(sim, idx=torch.tensor([4, 4, 6]))
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    torch.testing.assert_close(weights, expected)
    # Rectangular: candidates from other ranks with their own ids.
    weights = hard_negative_weights(torch.zeros(1, 4), idx=torch.tensor([1]), idx_candidates=torch.tensor([1, 2, 1, 3]))
    torch.testing.assert_close(weights, torch.tensor([[0.0, 0.5, 0.0, 0.5]]))


def test_no_underflow_when_positive_dominates() -> None:
    sim = torch.tensor([[1e4, 0.0], [0.0, 1e4]])
    weights = hard_negative_weights(sim)
    torch.testing.assert_close(weights, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_row_without_negative_raises() -> None:
    with pytest.raises(ValueError, match="no negative"):
        hard_negative_weights(torch.zeros(3, 3), idx=torch.tensor([2, 2, 2]))
    with pytest.raises(ValueError, match="square"):
        hard_negative_weights(torch.zeros(2, 3))


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.integers(0, 3), min_size=2, max_size=8).filter(lambda v: len(set(v)) > 1),
    seed=st.integers(0, 2**31 - 1),
    epsilon=st.sampled_from([0.0, 1e-4]),
    use_idx=st.booleans(),
)
def test_hard_negatives_never_pick_a_positive(ids: list[int], seed: int, epsilon: float, use_idx: bool) -> None:
    n = len(ids)
    g = torch.Generator().manual_seed(seed)
    sim_i2t = torch.randn(n, n, generator=g) * 10
    sim_t2i = torch.randn(n, n, generator=g) * 10
    idx = torch.tensor(ids) if use_idx else None
    neg = sample_hard_negatives(sim_i2t, sim_t2i, idx=idx, epsilon=epsilon, generator=g)
    assert neg.image_for_text.shape == (n,) and neg.text_for_image.shape == (n,)
    assert neg.image_for_text.dtype == torch.long
    rows = torch.arange(n)
    if use_idx:
        assert (idx[neg.image_for_text] != idx).all()
        assert (idx[neg.text_for_image] != idx).all()
    else:
        assert (neg.image_for_text != rows).all()
        assert (neg.text_for_image != rows).all()


def test_sampling_is_seeded_and_follows_the_weights() -> None:
    ln2 = math.log(2)
    sim = torch.tensor([[0.0, ln2, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    first = sample_hard_negatives(sim, sim, generator=torch.Generator().manual_seed(3))
    second = sample_hard_negatives(sim, sim, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first.image_for_text, second.image_for_text)
    assert torch.equal(first.text_for_image, second.text_for_image)
    # One vectorised draw over 900 rows: column class c = j % 3 (also the id), class 1 has logit ln 2.
    # Rows of class 0 and 2 see negatives of class 1 (weight 2) and one other class (weight 1).
    classes = torch.arange(900) % 3
    big = (classes == 1).float()[None, :].expand(900, 900) * ln2
    neg = sample_hard_negatives(big, big, idx=classes, generator=torch.Generator().manual_seed(0))
    drawn = classes[neg.text_for_image[classes != 1]]
    assert (classes[neg.text_for_image] != classes).all()
    assert (drawn == 1).float().mean().item() == pytest.approx(2 / 3, abs=0.06)


def test_itm_labels_and_loss_hand_values() -> None:
    assert itm_labels(2).tolist() == [1, 1, 0, 0, 0, 0]
    logits = torch.tensor([[0.0, math.log(3)], [0.0, math.log(3)]])
    # p(match) = 3/4: label 1 -> log(4/3); label 0 -> log 4
    loss = itm_loss(logits, torch.tensor([1, 0]))
    assert loss.item() == pytest.approx((math.log(4 / 3) + math.log(4)) / 2, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        itm_loss(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        itm_loss(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
