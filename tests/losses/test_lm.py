"""LM loss (shift, label smoothing, per-sequence sums), masked-LM loss and the 80/10/10 masking."""

from __future__ import annotations

import math

import pytest
import torch

from tests.common.reference import load_reference
from vl_hub.losses.lm import lm_loss, mask_tokens, masked_lm_loss


def _smoothed_ce(logits: list[float], target: int, eps: float) -> float:
    """-(sum_v q_v log p_v) with q = (1 - eps) onehot + eps / V."""
    log_z = math.log(sum(math.exp(v) for v in logits))
    vocab = len(logits)
    return -sum(((1 - eps) * (v == target) + eps / vocab) * (x - log_z) for v, x in enumerate(logits))


def test_hand_value_with_shift_and_smoothing() -> None:
    # Position 0 predicts label[1] = 1 with p = [1/4, 3/4]; position 1's target is ignored; the last
    # position predicts nothing.
    logits = torch.tensor([[[0.0, math.log(3)], [5.0, -5.0], [9.0, 9.0]]])
    labels = torch.tensor([[0, 1, -100]])
    expected = -(0.05 * math.log(1 / 4) + 0.95 * math.log(3 / 4))
    assert lm_loss(logits, labels).item() == pytest.approx(expected, abs=1e-6)
    assert lm_loss(logits, labels, reduction="none").tolist() == pytest.approx([expected], abs=1e-6)
    assert lm_loss(logits, labels, label_smoothing=0.0).item() == pytest.approx(math.log(4 / 3), abs=1e-6)


def test_reduction_none_sums_per_sequence_and_mean_averages_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([[2, 3, 1, -100], [2, 0, -100, -100]])
    per_token = {}
    for b in range(2):
        for t in range(3):
            target = int(labels[b, t + 1])
            if target != -100:
                per_token[(b, t)] = _smoothed_ce(logits[b, t].tolist(), target, 0.1)
    sums = [sum(v for (b, _), v in per_token.items() if b == row) for row in range(2)]
    assert lm_loss(logits, labels, reduction="none").tolist() == pytest.approx(sums, rel=1e-9)
    mean = sum(per_token.values()) / len(per_token)
    assert lm_loss(logits, labels).item() == pytest.approx(mean, rel=1e-9)


def test_matches_lavis_caption_loss(reference_dir) -> None:
    ref = load_reference(reference_dir, "blip_caption")
    loss = lm_loss(ref.out("decoder_logits"), ref.out("decoder_labels"))
    torch.testing.assert_close(loss, ref.out("loss"), atol=1e-5, rtol=1e-5)


def test_distillation_terms() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([[0, 1, 2], [0, 3, -100]])
    soft = torch.softmax(torch.randn(2, 2, 4, generator=g, dtype=torch.float64), dim=-1)
    plain = lm_loss(logits, labels, reduction="none")
    torch.testing.assert_close(lm_loss(logits, labels, reduction="none", soft_labels=soft, alpha=0.0), plain)
    distill = []
    for b in range(2):
        total = 0.0
        for t in range(2):
            if int(labels[b, t + 1]) == -100:
                continue
            log_p = torch.log_softmax(logits[b, t], dim=-1)
            total += -(log_p * soft[b, t]).sum().item()
        distill.append(total)
    mixed = lm_loss(logits, labels, reduction="none", soft_labels=soft, alpha=0.4)
    assert mixed.tolist() == pytest.approx([0.6 * p + 0.4 * d for p, d in zip(plain.tolist(), distill)], rel=1e-9)
    with pytest.raises(ValueError, match="reduction='none'"):
        lm_loss(logits, labels, soft_labels=soft, alpha=0.4)


def test_masked_lm_loss_hand_value() -> None:
    logits = torch.tensor([[[0.0, math.log(3)], [0.0, 0.0]]])
    labels = torch.tensor([[1, -100]])
    assert masked_lm_loss(logits, labels).item() == pytest.approx(math.log(4 / 3), abs=1e-6)
    soft = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])
    # distill at the masked position: -(0.5 log 1/4 + 0.5 log 3/4)
    distill = -(0.5 * math.log(1 / 4) + 0.5 * math.log(3 / 4))
    value = masked_lm_loss(logits, labels, soft_labels=soft, alpha=0.4).item()
    assert value == pytest.approx(0.6 * math.log(4 / 3) + 0.4 * distill, abs=1e-6)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"\(B, L, V\)"):
        lm_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction"):
        lm_loss(torch.zeros(1, 3, 2), torch.zeros(1, 3, dtype=torch.long), reduction="sum")  # type: ignore[arg-type]


PAD, CLS, MASK = 0, 2, 4


def _ids() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (200, 100), generator=g)
    ids[:, 0] = CLS
    ids[:, 80:] = PAD
    return ids


def test_mask_tokens_rules() -> None:
    ids = _ids()
    original = ids.clone()
    masked, labels = mask_tokens(ids, 1000, MASK, PAD, CLS, probability=1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ids, original), "inputs must not be modified"
    special = (ids == PAD) | (ids == CLS)
    assert (labels[special] == -100).all() and torch.equal(masked[special], ids[special])
    selected = ~special
    assert torch.equal(labels[selected], ids[selected])
    n = selected.sum().item()
    to_mask = ((masked == MASK) & selected).sum().item() / n
    unchanged = ((masked == ids) & selected).sum().item() / n
    random_other = ((masked != MASK) & (masked != ids) & selected).sum().item() / n
    assert to_mask == pytest.approx(0.8, abs=0.02)
    assert unchanged == pytest.approx(0.1, abs=0.02)
    assert random_other == pytest.approx(0.1, abs=0.02)


def test_mask_tokens_probability_and_seed() -> None:
    ids = _ids()
    g = torch.Generator().manual_seed(2)
    masked, labels = mask_tokens(ids, 1000, MASK, PAD, CLS, probability=0.15, generator=g)
    selectable = (ids != PAD) & (ids != CLS)
    rate = (labels != -100).sum().item() / selectable.sum().item()
    assert rate == pytest.approx(0.15, abs=0.02)
    assert torch.equal(masked[labels == -100], ids[labels == -100])
    again = mask_tokens(ids, 1000, MASK, PAD, CLS, probability=0.15, generator=torch.Generator().manual_seed(2))
    assert torch.equal(again[0], masked) and torch.equal(again[1], labels)
    other = mask_tokens(ids, 1000, MASK, PAD, CLS, probability=0.15, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(other[1], labels)
    none_masked, none_labels = mask_tokens(ids, 1000, MASK, PAD, CLS, probability=0.0)
    assert torch.equal(none_masked, ids) and (none_labels == -100).all()
