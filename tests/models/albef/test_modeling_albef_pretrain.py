"""ALBEF pre-training: ``AlbefForPreTraining`` (ITC + ITM + MLM with momentum distillation, queues, EMA)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForPreTraining

from tests.common.model_tester import ModelTesterMixin, _tensors, assert_raises_clear
from tests.models.albef.reference_utils import tiny_albef_config
from vl_hub.losses import masked_lm_loss
from vl_hub.models.albef.modeling_albef import AlbefForImageTextRetrieval, AlbefModel
from vl_hub.models.albef.modeling_albef_pretrain import AlbefForPreTraining


def make_batch(batch_size: int = 4, length: int = 9, seed: int = 0) -> dict[str, torch.Tensor]:
    """Image-caption pairs, captions padded to ``length`` as LAVIS pads to ``max_txt_len``; row 1 padded."""
    g = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch_size, 3, 32, 32, generator=g)
    input_ids = torch.randint(5, 230, (batch_size, length), generator=g)
    input_ids[:, 0] = 2
    input_ids[:, -1] = 3
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, length - 3 :] = torch.tensor([3, 0, 0])
    attention_mask[1, length - 2 :] = 0
    return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}


def with_mask(model: AlbefForPreTraining, batch: dict[str, torch.Tensor], seed: int = 1) -> dict[str, torch.Tensor]:
    """The batch plus a fixed MLM corruption (a seeded generator, as a collator would)."""
    masked, labels = model.mask_tokens(batch["input_ids"], generator=torch.Generator().manual_seed(seed))
    return {**batch, "masked_input_ids": masked, "mlm_labels": labels}


def tiny_pretrain(seed: int = 0, **overrides) -> AlbefForPreTraining:
    torch.manual_seed(seed)
    return AlbefForPreTraining(tiny_albef_config(**{"use_distill": True, **overrides})).eval()


class TestAlbefForPreTraining(ModelTesterMixin):
    model_class = AlbefForPreTraining
    auto_class = AutoModelForPreTraining
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "loss": (),
        "sim_i2t": (2, 2 + 8),
        "itm_logits": (6, 2),
        "mlm_logits": (2, 9, 230),
        "image_feat": (2, 32),
    }

    def get_config(self):
        return tiny_albef_config(use_distill=True)

    def get_inputs(self, batch_size: int = 2):
        inputs = make_batch(max(batch_size, 2))
        # every caption token except [CLS]/[PAD] masked: the MLM loss always has targets
        ids = inputs["input_ids"]
        labels = ids.masked_fill((ids == 0) | (ids == 2), -100)
        masked = ids.masked_fill(labels != -100, 4)
        return {**inputs, "masked_input_ids": masked, "mlm_labels": labels}

    def forward(self, model, inputs):
        torch.manual_seed(0)  # the ITM negatives are sampled
        return model(**inputs)

    def test_batch_invariance(self) -> None:
        """The losses need >= 2 pairs, so the per-example outputs are compared: the features of a pair do not
        depend on the rest of the batch."""
        model = self.build_model()
        inputs = self.get_inputs(2)
        with torch.no_grad():
            full = model.get_image_features(inputs["pixel_values"]), model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
            first = model.get_image_features(inputs["pixel_values"][:1]), model.get_text_features(inputs["input_ids"][:1], inputs["attention_mask"][:1])
            logits = model(**inputs).mlm_logits
            logits_one = model.text_encoder(
                input_ids=inputs["masked_input_ids"][:1], attention_mask=inputs["attention_mask"][:1],
                encoder_hidden_states=model.visual_encoder(inputs["pixel_values"][:1]),
            ).logits
        for a, b in zip(full, first):
            torch.testing.assert_close(a[:1], b, atol=1e-5, rtol=0)
        torch.testing.assert_close(logits[:1], logits_one, atol=1e-5, rtol=0)


def test_checkpoint_names_are_lavis_albef_pretrain() -> None:
    model = tiny_pretrain()
    names = set(model.state_dict())
    for name in ("text_encoder.bert.embeddings.word_embeddings.weight", "text_encoder.cls.predictions.bias",
                 "text_encoder.cls.predictions.transform.dense.weight",
                 "text_encoder_m.bert.encoder.layer.3.crossattention.self.key.weight", "itm_head.weight", "vision_proj_m.bias", "image_queue", "queue_ptr",
                 "temp"):
        assert name in names, name
    assert "idx_queue" not in names
    head = model.text_encoder.cls.predictions
    assert head.decoder.weight is model.text_encoder.bert.embeddings.word_embeddings.weight
    assert head.decoder.bias is head.bias


def test_losses_by_hand() -> None:
    """Eval mode (momentum == online): ITC with targets alpha * softmax(sim) + (1 - alpha) * diagonal over batch +
    queue; ITM CE of [1]*B + [0]*2B; MLM = (1 - alpha) CE + alpha * soft CE against the momentum model."""
    model = tiny_pretrain()
    batch = with_mask(model, make_batch())
    alpha = 0.3
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(**batch, alpha=alpha)
    targets = torch.zeros(4, 4 + 8)
    targets[:, :4] = torch.eye(4)

    def ce(sim):
        return -(sim.log_softmax(1) * (alpha * sim.softmax(1) + (1 - alpha) * targets)).sum(1).mean()

    torch.testing.assert_close(out.loss_itc, (ce(out.sim_i2t) + ce(out.sim_t2i)) / 2, atol=1e-5, rtol=0)
    assert torch.equal(out.itm_labels, torch.tensor([1] * 4 + [0] * 8))
    torch.testing.assert_close(out.loss_itm, F.cross_entropy(out.itm_logits, out.itm_labels), atol=1e-6, rtol=0)
    soft = out.mlm_logits.softmax(-1)  # the momentum model is the online model here
    expected_mlm = masked_lm_loss(out.mlm_logits, batch["mlm_labels"], soft_labels=soft, alpha=alpha)
    torch.testing.assert_close(out.loss_mlm, expected_mlm, atol=1e-5, rtol=0)
    assert (batch["mlm_labels"] != -100).any()
    torch.testing.assert_close(out.loss, out.loss_itc + out.loss_itm + out.loss_mlm, atol=0, rtol=0)
    # the ITM positives are the image-grounded [CLS] states of the ids through every layer
    with torch.no_grad():
        image_embeds, _ = model.encode_images(batch["pixel_values"])
        positive = model.itm_head(model.encode_multimodal(image_embeds, batch["input_ids"], batch["attention_mask"])[:, 0])
    torch.testing.assert_close(out.itm_logits[:4], positive, atol=1e-5, rtol=0)


def test_mlm_masking_follows_albef() -> None:
    model = tiny_pretrain(mlm_probability=0.5)
    ids = make_batch(8, length=30, seed=2)["input_ids"]
    masked, labels = model.mask_tokens(ids, generator=torch.Generator().manual_seed(0))
    selected = labels != -100
    assert not selected[(ids == 0) | (ids == 2)].any()  # never [PAD] or [CLS]
    assert torch.equal(labels[selected], ids[selected])
    assert 0.3 < selected.float().mean() < 0.6
    assert ((masked == 4) & ~selected).sum() == 0 and (masked[selected] == 4).float().mean() > 0.6
    assert torch.equal(masked[~selected], ids[~selected])
    again = model.mask_tokens(ids, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], masked) and torch.equal(again[1], labels)


def test_nothing_masked_gives_zero_mlm_loss() -> None:
    model = tiny_pretrain()
    batch = make_batch()
    out = model(**batch, masked_input_ids=batch["input_ids"], mlm_labels=torch.full_like(batch["input_ids"], -100))
    assert out.loss_mlm.item() == 0.0 and torch.isfinite(out.loss)


def test_pretraining_loss_with_distillation_decreases() -> None:
    model = tiny_pretrain(use_distill=True)
    batch = with_mask(model, make_batch())
    queues = {k: getattr(model, k).clone() for k in ("image_queue", "text_queue", "queue_ptr")}

    def eval_loss() -> float:
        state = {k: getattr(model, k).clone() for k in queues}
        for k, v in queues.items():
            getattr(model, k).copy_(v)
        model.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            loss = model(**batch, alpha=0.0).loss.item()
        for k, v in state.items():
            getattr(model, k).copy_(v)
        return loss

    before = eval_loss()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for _ in range(10):
        out = model(**batch, alpha=0.4)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    after = eval_loss()
    assert after < 0.7 * before, (before, after)


def test_training_step_updates_momentum_queue_and_temperature() -> None:
    model = tiny_pretrain(momentum=0.8)
    with torch.no_grad():
        model.temp.fill_(0.9)
        for _, param, _ in model.named_momentum_parameter_pairs():
            param.add_(0.01 * torch.randn_like(param))
    online = {n: p.detach().clone() for n, p, _ in model.named_momentum_parameter_pairs()}
    momentum = {n: p.detach().clone() for n, _, p in model.named_momentum_parameter_pairs()}
    batch = with_mask(model, make_batch())
    model.train()
    model(**batch)
    assert model.temp.item() == pytest.approx(0.5)  # clamped to [0.001, 0.5]
    for name, _, param_m in model.named_momentum_parameter_pairs():
        torch.testing.assert_close(param_m, 0.8 * momentum[name] + 0.2 * online[name], atol=1e-6, rtol=0)
    assert model.queue_ptr.item() == 4
    with torch.no_grad():
        states = model.text_encoder_m.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                           mode="text").last_hidden_state
        feat_m = F.normalize(model.text_proj_m(states[:, 0]), dim=-1)
    torch.testing.assert_close(model.text_queue[:, :4], feat_m.t(), atol=1e-6, rtol=0)


def test_eval_mode_leaves_the_model_untouched() -> None:
    model = tiny_pretrain()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model(**make_batch())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_saved_pretraining_checkpoint_round_trips_and_starts_fine_tuning(tmp_path: Path) -> None:
    """The pre-training head saves LAVIS's names (text_encoder.bert.*, cls.*) and round-trips through
    AutoModelForPreTraining; the heads with a plain BERT text encoder read that folder as LAVIS's rename_text_keys
    does (fine-tuning starts from pre-training) and save their own names again."""
    model = tiny_pretrain()
    model.save_pretrained(tmp_path / "pretrain")
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path / "pretrain").eval()
    assert type(loaded) is AlbefForPreTraining
    head = loaded.text_encoder.cls.predictions
    assert head.decoder.weight is loaded.text_encoder.bert.embeddings.word_embeddings.weight
    batch = make_batch()
    torch.manual_seed(0)
    with torch.no_grad():
        a = _tensors(model(**with_mask(model, batch)))
    torch.manual_seed(0)
    with torch.no_grad():
        b = _tensors(loaded(**with_mask(loaded, batch)))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)

    features = AutoModel.from_pretrained(tmp_path / "pretrain").eval()
    retrieval, info = AlbefForImageTextRetrieval.from_pretrained(tmp_path / "pretrain", output_loading_info=True)
    assert type(features) is AlbefModel and sorted(info["missing_keys"]) == ["idx_queue"]
    with torch.no_grad():
        expected = model.get_text_features(batch["input_ids"], batch["attention_mask"])
        torch.testing.assert_close(features.get_text_features(batch["input_ids"], batch["attention_mask"]), expected,
                                   atol=0, rtol=0)
    torch.testing.assert_close(retrieval.text_encoder_m.encoder.layer[3].output.dense.weight,
                               model.text_encoder_m.bert.encoder.layer[3].output.dense.weight, atol=0, rtol=0)
    torch.testing.assert_close(retrieval.image_queue, model.image_queue, atol=0, rtol=0)
    retrieval.save_pretrained(tmp_path / "retrieval")
    saved = load_file(str(tmp_path / "retrieval" / "model.safetensors"))
    assert "text_encoder.embeddings.word_embeddings.weight" in saved and not any(".bert." in k for k in saved)

    from vl_hub.models.albef.convert_albef_checkpoint import load_lavis_checkpoint

    converted = load_lavis_checkpoint(model.state_dict(), model.config, AlbefModel)
    with torch.no_grad():
        torch.testing.assert_close(converted.get_text_features(batch["input_ids"], batch["attention_mask"]), expected,
                                   atol=0, rtol=0)


def test_bad_inputs_raise_clear_errors() -> None:
    model = tiny_pretrain()
    batch = make_batch()
    one = {k: v[:1] for k, v in batch.items()}
    assert_raises_clear(lambda: model(**one), ValueError, "at least 2 pairs", "got 1")
    assert_raises_clear(lambda: model(pixel_values=batch["pixel_values"]), ValueError, "missing input_ids")
    assert_raises_clear(lambda: model(batch["pixel_values"], make_batch(3)["input_ids"]), ValueError, "batch sizes differ")
    assert_raises_clear(lambda: model(**batch, masked_input_ids=batch["input_ids"]), ValueError, "both masked_input_ids")
    assert_raises_clear(lambda: model(**batch, alpha=-0.1), ValueError, "alpha=-0.1")
    assert_raises_clear(
        lambda: AlbefForPreTraining(tiny_albef_config(text_config={"mask_token_id": None})), ValueError, "mask_token_id"
    )
