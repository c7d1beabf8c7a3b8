"""ITC with queues and momentum distillation, queue helpers and CLIP loss against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.common.reference import load_reference
from vl_hub.losses.contrastive import (
    clamp_temperature_,
    clip_logits,
    clip_loss,
    concat_queue,
    contrastive_targets,
    dequeue_and_enqueue_,
    distill_alpha,
    distill_weight,
    enqueue_,
    image_text_contrastive_loss,
    momentum_update_,
    soft_cross_entropy,
)


def _reference_direction(queries, keys, temp, targets):
    """-mean_i sum_j t_ij log softmax_j(q_i . k_j / temp), with explicit scalar loops."""
    total = 0.0
    for i, q in enumerate(queries):
        logits = [sum(a * b for a, b in zip(q, k)) / temp for k in keys]
        log_z = math.log(sum(math.exp(v) for v in logits))
        total += -sum(t * (v - log_z) for t, v in zip(targets[i], logits))
    return total / len(queries)


def _reference_targets(num_rows, ids, ids_all):
    if ids is None:
        return [[1.0 if j == i else 0.0 for j in range(len(ids_all))] for i in range(num_rows)]
    rows = []
    for i in range(num_rows):
        pos = [1.0 if ids[i] == other else 0.0 for other in ids_all]
        rows.append([p / sum(pos) for p in pos])
    return rows


def _softmax(values):
    m = max(values)
    exps = [math.exp(v - m) for v in values]
    return [e / sum(exps) for e in exps]


def _normalized(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1)


def test_identity_features_hand_value() -> None:
    # sim = I / temp; each row: -log(e^{1/t} / (e^{1/t} + 1)) = log(1 + e^{-1/t})
    eye = torch.eye(2)
    for temp in (1.0, 0.5):
        out = image_text_contrastive_loss(eye, eye, temp)
        expected = math.log(1 + math.exp(-1 / temp))
        assert out.loss.item() == pytest.approx(expected, abs=1e-6)
        assert out.loss_i2t.item() == pytest.approx(expected, abs=1e-6)
        assert out.loss_t2i.item() == pytest.approx(expected, abs=1e-6)
    torch.testing.assert_close(out.targets_i2t, eye)


def test_queue_hand_value() -> None:
    # One pair [1, 0]; text queue holds [0, 1], image queue holds [1, 0].
    feat = torch.tensor([[1.0, 0.0]])
    out = image_text_contrastive_loss(
        feat, feat, 1.0, image_queue=torch.tensor([[1.0], [0.0]]), text_queue=torch.tensor([[0.0], [1.0]])
    )
    # i2t logits [1, 0] -> log(1 + e^-1); t2i logits [1, 1] -> log 2
    assert out.loss_i2t.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert out.loss_t2i.item() == pytest.approx(math.log(2), abs=1e-6)
    assert out.loss.item() == pytest.approx((math.log(1 + math.exp(-1)) + math.log(2)) / 2, abs=1e-6)
    assert out.sim_i2t.shape == (1, 2)
    torch.testing.assert_close(out.targets_i2t, torch.tensor([[1.0, 0.0]]))


def test_idx_positives_hand_value() -> None:
    # ids [7, 7, 9], sim = I: rows 0 and 1 split their target over columns 0 and 1.
    eye = torch.eye(3)
    out = image_text_contrastive_loss(eye, eye, 1.0, idx=torch.tensor([7, 7, 9]))
    expected_targets = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(out.targets_i2t, expected_targets)
    # rows 0,1: log(e+2) - 1/2 ; row 2: log(e+2) - 1
    assert out.loss.item() == pytest.approx(math.log(math.e + 2) - 2 / 3, abs=1e-6)


@pytest.mark.parametrize("use_idx", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_matches_loop_reference_with_queue_momentum_and_idx(use_idx: bool, alpha: float) -> None:
    n, q, d, temp = 3, 4, 5, 0.07
    image_feat, text_feat = _normalized(n, d, seed=0), _normalized(n, d, seed=1)
    image_feat_m, text_feat_m = _normalized(n, d, seed=2), _normalized(n, d, seed=3)
    image_queue, text_queue = _normalized(q, d, seed=4).t(), _normalized(q, d, seed=5).t()
    idx = torch.tensor([3, 8, 3]) if use_idx else None
    idx_queue = torch.tensor([[8, -100, 3, 1]]) if use_idx else None

    out = image_text_contrastive_loss(
        image_feat,
        text_feat,
        temp,
        image_feat_m=image_feat_m,
        text_feat_m=text_feat_m,
        image_queue=image_queue,
        text_queue=text_queue,
        idx=idx,
        idx_queue=idx_queue,
        alpha=alpha,
    )

    text_keys = text_feat_m.tolist() + text_queue.t().tolist()
    image_keys = image_feat_m.tolist() + image_queue.t().tolist()
    ids = None if idx is None else idx.tolist()
    ids_all = None if idx is None else idx.tolist() + idx_queue[0].tolist()
    hard = _reference_targets(n, ids, ids_all if ids_all is not None else list(range(n + q)))

    def targets(momentum_queries, keys):
        rows = []
        for i, qm in enumerate(momentum_queries):
            soft = _softmax([sum(a * b for a, b in zip(qm, k)) / temp for k in keys])
            rows.append([alpha * s + (1 - alpha) * h for s, h in zip(soft, hard[i])])
        return rows

    t_i2t = targets(image_feat_m.tolist(), text_keys)
    t_t2i = targets(text_feat_m.tolist(), image_keys)
    loss_i2t = _reference_direction(image_feat.tolist(), text_keys, temp, t_i2t)
    loss_t2i = _reference_direction(text_feat.tolist(), image_keys, temp, t_t2i)
    assert out.loss_i2t.item() == pytest.approx(loss_i2t, rel=1e-9)
    assert out.loss_t2i.item() == pytest.approx(loss_t2i, rel=1e-9)
    assert out.loss.item() == pytest.approx((loss_i2t + loss_t2i) / 2, rel=1e-9)
    torch.testing.assert_close(out.targets_i2t, torch.tensor(t_i2t, dtype=torch.float64))


def test_distillation_alpha_zero_equals_plain_targets() -> None:
    n, d = 4, 6
    image_feat, text_feat = _normalized(n, d, seed=10), _normalized(n, d, seed=11)
    image_m, text_m = _normalized(n, d, seed=12), _normalized(n, d, seed=13)
    queues = {"image_queue": _normalized(8, d, seed=14).t(), "text_queue": _normalized(8, d, seed=15).t()}
    distilled = image_text_contrastive_loss(
        image_feat, text_feat, 0.1, image_feat_m=image_m, text_feat_m=text_m, alpha=0.0, **queues
    )
    plain_targets = contrastive_targets(n, n + 8, dtype=torch.float64)
    sim_i2t = image_feat @ concat_queue(text_m, queues["text_queue"]).t() / 0.1
    sim_t2i = text_feat @ concat_queue(image_m, queues["image_queue"]).t() / 0.1
    plain = (soft_cross_entropy(sim_i2t, plain_targets) + soft_cross_entropy(sim_t2i, plain_targets)) / 2
    assert torch.equal(distilled.targets_i2t, plain_targets)
    torch.testing.assert_close(distilled.loss, plain, rtol=0, atol=0)
    # With distillation on, the targets move away from one-hot.
    on = image_text_contrastive_loss(
        image_feat, text_feat, 0.1, image_feat_m=image_m, text_feat_m=text_m, alpha=0.4, **queues
    )
    assert not torch.allclose(on.loss, plain)
    torch.testing.assert_close(on.targets_i2t.sum(1), torch.ones(n, dtype=torch.float64))


def test_gradients_reach_online_features_and_temperature_only() -> None:
    image_feat = _normalized(3, 4, seed=20).float().requires_grad_(True)
    text_feat = _normalized(3, 4, seed=21).float().requires_grad_(True)
    image_m = _normalized(3, 4, seed=22).float().requires_grad_(True)
    text_m = _normalized(3, 4, seed=23).float().requires_grad_(True)
    temp = torch.nn.Parameter(torch.tensor(0.07))
    out = image_text_contrastive_loss(image_feat, text_feat, temp, image_feat_m=image_m, text_feat_m=text_m, alpha=0.4)
    out.loss.backward()
    assert image_feat.grad is not None and image_feat.grad.abs().sum() > 0
    assert text_feat.grad is not None and text_feat.grad.abs().sum() > 0
    assert temp.grad is not None and temp.grad.abs() > 0
    assert image_m.grad is None and text_m.grad is None


def test_contrastive_targets() -> None:
    torch.testing.assert_close(contrastive_targets(2, 3), torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    targets = contrastive_targets(2, 4, idx=torch.tensor([1, 2]), idx_all=torch.tensor([1, 2, 1, 5]))
    torch.testing.assert_close(targets, torch.tensor([[0.5, 0.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="idx_all"):
        contrastive_targets(2, 4, idx=torch.tensor([1, 2]))


def test_bad_arguments_raise() -> None:
    feat = torch.eye(2)
    with pytest.raises(ValueError, match="image_feat_m"):
        image_text_contrastive_loss(feat, feat, 1.0, alpha=0.4)
    with pytest.raises(ValueError, match="shape of image_feat"):
        image_text_contrastive_loss(feat, torch.eye(3), 1.0)
    with pytest.raises(ValueError, match="idx_queue"):
        queue = torch.zeros(2, 4)
        image_text_contrastive_loss(feat, feat, 1.0, image_queue=queue, text_queue=queue, idx=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="alpha"):
        image_text_contrastive_loss(feat, feat, 1.0, image_feat_m=feat, text_feat_m=feat, alpha=1.5)


def test_enqueue_writes_and_wraps() -> None:
    queue = torch.zeros(2, 4)
    ptr = enqueue_(queue, torch.tensor([[1.0, 2.0], [3.0, 4.0]]), 0)
    assert ptr == 2
    torch.testing.assert_close(queue, torch.tensor([[1.0, 3.0, 0.0, 0.0], [2.0, 4.0, 0.0, 0.0]]))
    ptr = enqueue_(queue, torch.tensor([[5.0, 6.0], [7.0, 8.0]]), ptr)
    assert ptr == 0
    torch.testing.assert_close(queue, torch.tensor([[1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 8.0]]))
    ids = torch.full((1, 4), -100)
    assert enqueue_(ids, torch.tensor([9, 8]), 2) == 0
    assert ids.tolist() == [[-100, -100, 9, 8]]


def test_enqueue_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="not a multiple of the"):
        enqueue_(torch.zeros(2, 5), torch.zeros(2, 2), 0)
    with pytest.raises(ValueError, match="pointer"):
        enqueue_(torch.zeros(2, 4), torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="do not fit"):
        enqueue_(torch.zeros(2, 4), torch.zeros(2, 3), 0)


def test_dequeue_and_enqueue_moves_shared_pointer() -> None:
    image_queue, text_queue, idx_queue = torch.zeros(3, 6), torch.zeros(3, 6), torch.full((1, 6), -100)
    queue_ptr = torch.zeros(1, dtype=torch.long)
    keys = (torch.ones(2, 3), 2 * torch.ones(2, 3), torch.tensor([4, 5]))
    assert dequeue_and_enqueue_((image_queue, text_queue, idx_queue), keys, queue_ptr) == 2
    assert queue_ptr.tolist() == [2]
    assert dequeue_and_enqueue_((image_queue, text_queue, idx_queue), keys, queue_ptr) == 4
    assert idx_queue.tolist() == [[4, 5, 4, 5, -100, -100]]
    assert text_queue[:, :4].eq(2).all() and text_queue[:, 4:].eq(0).all()


def test_concat_queue() -> None:
    batch = torch.tensor([[1.0, 2.0]])
    queue = torch.tensor([[3.0, 5.0], [4.0, 6.0]])
    torch.testing.assert_close(concat_queue(batch, queue), torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert concat_queue(torch.tensor([1]), torch.tensor([[2, 3]])).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="same D"):
        concat_queue(batch, torch.zeros(3, 2))


def test_clip_loss_hand_value() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    assert clip_loss(logits).item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)
    # Asymmetric: image rows [[1, 0], [3, 0]] -> CE rows log(1+e^-1), log(1+e^3); text = transpose.
    logits = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    row_i = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(3))) / 2
    row_t = (math.log(1 + math.exp(2)) + math.log(1 + math.exp(0))) / 2  # transpose rows [1, 3], [0, 0]
    assert clip_loss(logits).item() == pytest.approx((row_i + row_t) / 2, abs=1e-6)
    with pytest.raises(ValueError, match="square"):
        clip_loss(torch.zeros(2, 3))


def test_clip_loss_matches_lavis(reference_dir) -> None:
    ref = load_reference(reference_dir, "clip_vit")
    per_image, per_text = clip_logits(
        ref.out("image_embeds_proj"), ref.out("text_embeds_proj"), ref.out("logit_scale_exp")
    )
    torch.testing.assert_close(per_image, ref.out("logits_per_image"), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(per_text, ref.out("logits_per_text"), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clip_loss(per_image, per_text), ref.out("clip_loss"), atol=1e-5, rtol=1e-5)


def test_clamp_temperature() -> None:
    temp = torch.nn.Parameter(torch.tensor(0.9))
    assert clamp_temperature_(temp) is temp
    assert temp.item() == pytest.approx(0.5)
    temp.data.fill_(1e-5)
    clamp_temperature_(temp)
    assert temp.item() == pytest.approx(0.001)
    assert temp.grad is None and temp.requires_grad


def test_distill_weight_default_override_off_and_range() -> None:
    assert distill_weight(None, 0.4) == 0.4
    assert distill_weight(0.25, 0.4) == 0.25
    assert distill_weight(1, 0.4) == 1.0
    assert distill_weight(0.3, 0.4, use_distill=False) == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=rf"alpha={bad} is out of range.*\[0, 1\]"):
            distill_weight(bad, 0.4)
    with pytest.raises(ValueError, match="alpha=2.0"):
        distill_weight(None, 2.0)  # a bad default is caught too


def test_distill_alpha_ramp() -> None:
    assert distill_alpha(0.4, 0, 0, 10) == 0.0
    assert distill_alpha(0.4, 0, 5, 10) == pytest.approx(0.1)
    assert distill_alpha(0.4, 1, 0, 10) == pytest.approx(0.2)
    assert distill_alpha(0.4, 3, 7, 10) == pytest.approx(0.4)


def test_momentum_update() -> None:
    online = [torch.ones(2, 2), torch.full((3,), 2.0)]
    momentum = [torch.zeros(2, 2), torch.full((3,), 4.0)]
    momentum_update_(online, momentum, 0.9)
    torch.testing.assert_close(momentum[0], torch.full((2, 2), 0.1))
    torch.testing.assert_close(momentum[1], torch.full((3,), 3.8))
    with pytest.raises(ValueError, match="differ"):
        momentum_update_(online, momentum[:1], 0.9)
