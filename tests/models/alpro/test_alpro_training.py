"""ALPRO training: the retrieval loss rebuilt by hand (LAVIS ``AlproRetrieval.forward``), QA cross-entropy, and a few
optimiser steps (plain loop and ``transformers.Trainer``) lowering each head's loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from tests.models.alpro.alpro_test_utils import lively_model, make_inputs, tiny_model
from vl_hub.losses import sample_hard_negatives
from vl_hub.models.alpro.modeling_alpro import (
    AlproForVideoQuestionAnswering,
    AlproForVideoTextRetrieval,
    AlproModel,
)


# ---------------------------------------------------------------------------------------------- retrieval loss
def test_retrieval_loss_is_lavis_vtc_plus_vtm_with_hard_negatives() -> None:
    """The loss rebuilt by hand from the head's own blocks: in-batch VTC with the temperature, and VTM on
    ``[positives; (text b, negative video); (negative text, video b)]`` with the negatives LAVIS would draw."""
    model = tiny_model(AlproForVideoTextRetrieval)
    batch = make_inputs(4)
    torch.manual_seed(123)
    with torch.no_grad():
        out = model(**batch, return_loss=True)
        video_embeds, video_feat = model.encode_videos(batch["pixel_values"])
        text_embeds, text_feat = model.encode_texts(batch["input_ids"], batch["attention_mask"])
        sim = video_feat @ text_feat.t() / model.temp
        targets = torch.arange(4)
        itc = (F.cross_entropy(sim, targets) + F.cross_entropy(sim.t(), targets)) / 2
        torch.manual_seed(123)  # the same multinomial draws as inside forward
        neg = sample_hard_negatives(sim, sim.t())
        mask = batch["attention_mask"]
        pos = model.fuse(text_embeds, mask, video_embeds)[:, 0]
        text_neg_video = model.fuse(text_embeds, mask, video_embeds[neg.image_for_text])[:, 0]
        neg_text_video = model.fuse(text_embeds[neg.text_for_image], mask[neg.text_for_image], video_embeds)[:, 0]
        logits = model.itm_head(torch.cat([pos, text_neg_video, neg_text_video]))
        labels = torch.tensor([1] * 4 + [0] * 8)
        itm = F.cross_entropy(logits, labels)
    assert (neg.image_for_text != torch.arange(4)).all() and (neg.text_for_image != torch.arange(4)).all()
    torch.testing.assert_close(out.sim_v2t, sim, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss_itc, itc, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.itm_logits, logits, atol=1e-5, rtol=0)
    assert torch.equal(out.itm_labels, labels)
    torch.testing.assert_close(out.loss_itm, itm, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, out.loss_itc + out.loss_itm, atol=0, rtol=0)


def test_retrieval_loss_clamps_the_temperature() -> None:
    model = tiny_model(AlproForVideoTextRetrieval)
    with torch.no_grad():
        model.temp.fill_(0.9)
    model(**make_inputs(2), return_loss=True)
    assert model.temp.item() == pytest.approx(0.5)


def _eval_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], **extra: Any) -> float:
    model.eval()
    torch.manual_seed(0)  # fixed hard negatives for comparable numbers
    with torch.no_grad():
        return float(model(**batch, **extra).loss)


def _train(model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int = 6, **extra: Any) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, **extra).loss
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize(
    ("head", "extra"),
    [
        (AlproForVideoTextRetrieval, {"return_loss": True}),
        (AlproForVideoQuestionAnswering, {"labels": torch.tensor([0, 1, 2, 3])}),
        (AlproModel, {"return_loss": True}),
    ],
)
def test_training_steps_lower_the_loss(head: type[PreTrainedModel], extra: dict[str, Any]) -> None:
    model = lively_model(head)
    batch = make_inputs(4, seed=3)
    before = _eval_loss(model, batch, **extra)
    _train(model, batch, **extra)
    after = _eval_loss(model, batch, **extra)
    assert after < 0.8 * before, (before, after)


def test_qa_trains_with_transformers_trainer(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    model = lively_model(AlproForVideoQuestionAnswering)
    batch = {**make_inputs(4, seed=5), "labels": torch.tensor([4, 3, 2, 1])}
    rows = [{k: v[i] for k, v in batch.items()} for i in range(4)]
    before = _eval_loss(model, batch)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=6, learning_rate=1e-3, report_to=[],
        use_cpu=True, save_strategy="no", logging_steps=1, disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=rows).train()
    assert _eval_loss(model, batch) < 0.8 * before


def test_qa_ignores_labels_outside_the_vocabulary() -> None:
    model = tiny_model(AlproForVideoQuestionAnswering)
    batch = make_inputs(3)
    with torch.no_grad():
        out = model(**batch, labels=torch.tensor([1, -100, 3]))
        logits = model(**batch).logits
    torch.testing.assert_close(out.loss, F.cross_entropy(logits[[0, 2]], torch.tensor([1, 3])), atol=1e-6, rtol=0)
    none = model(**batch, labels=torch.full((3,), -100))
    assert none.loss.item() == 0.0 and none.loss.requires_grad
    assert model.predict_answers(**batch) == [model.config.id2label[i] for i in logits.argmax(-1).tolist()]


def test_activation_checkpointing_gives_the_same_loss_and_gradients() -> None:
    batch = make_inputs(3)
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(AlproForVideoTextRetrieval)
        if checkpointing:
            model.activation_checkpointing_enable()
        model.train()
        torch.manual_seed(0)  # same hard negatives
        model(**batch, return_loss=True).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert sum(getattr(m, "gradient_checkpointing", False) for m in model.modules()) == 6  # 2 video + 4 text layers
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=0, msg=name)
