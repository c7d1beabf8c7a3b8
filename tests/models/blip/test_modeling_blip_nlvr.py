"""BLIP classification heads: ``BlipForNLVR`` (LAVIS parity, twin cross-attention) and
``BlipForImageTextClassification`` (SNLI-VE style, momentum distillation)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from tests.common.model_tester import ModelTesterMixin, assert_raises_clear
from tests.models.blip.reference_utils import load_blip_reference, tiny_blip_config
from vl_hub.auto import (
    AutoModelForImagePairClassification,
    AutoModelForImageTextClassification,
)
from vl_hub.models.blip.modeling_blip_nlvr import (
    BlipForImageTextClassification,
    BlipForNLVR,
    NlvrTwinCrossAttention,
)

ATOL = 1e-4
SNLI_VE_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}


def make_text(batch_size: int, length: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """``[CLS] w... [SEP] [PAD]*`` ids (the tokenizer's; the heads put ``[ENC]`` first); row 1 is padded."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 230, (batch_size, length), generator=g)
    input_ids[:, 0] = 2
    input_ids[:, -1] = 3
    attention_mask = torch.ones_like(input_ids)
    if batch_size > 1:
        input_ids[1, length - 3 :] = torch.tensor([3, 0, 0])
        attention_mask[1, length - 2 :] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def make_images(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def make_images_and_text(batch_size: int) -> dict[str, torch.Tensor]:
    return {"pixel_values": make_images(batch_size), **make_text(batch_size)}


def nlvr_config(**overrides):
    # 3 text layers with the merge from layer 2: layers 0-1 average the two images, layer 2 merges them.
    return tiny_blip_config(text_config={"num_hidden_layers": 3}, nlvr_merge_layer=2, **overrides)


def snli_config(**overrides):
    return tiny_blip_config(id2label=SNLI_VE_LABELS, **overrides)


def train_steps(model: torch.nn.Module, inputs: dict, steps: int = 8, lr: float = 3e-3) -> list[float]:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# ---------------------------------------------------------------------------------------------- NLVR: LAVIS parity
@pytest.fixture(scope="module")
def nlvr_reference(reference_dir: Path):
    model, ref = load_blip_reference(reference_dir, "blip_nlvr", BlipForNLVR)
    with torch.no_grad():
        out = model(
            pixel_values_0=ref.inp("image0"),
            pixel_values_1=ref.inp("image1"),
            input_ids=ref.inp("input_ids"),
            attention_mask=ref.inp("attention_mask"),
        )
    return model, ref, out


def test_nlvr_reference_is_the_8_layer_merge_at_6_architecture(nlvr_reference) -> None:
    model, _, _ = nlvr_reference
    assert model.config.text_config.num_hidden_layers == 8 and model.config.nlvr_merge_layer == 6
    merges = [layer.crossattention.output.merge_layer is not None for layer in model.text_encoder.encoder.layer]
    assert merges == [False] * 6 + [True] * 2


def test_nlvr_parity_encoder_last_hidden_state(nlvr_reference) -> None:
    _, ref, out = nlvr_reference
    torch.testing.assert_close(out.encoder_last_hidden_state, ref.out("encoder_last_hidden_state"), atol=ATOL, rtol=0)


def test_nlvr_parity_logits(nlvr_reference) -> None:
    _, ref, out = nlvr_reference
    torch.testing.assert_close(out.logits, ref.out("logits"), atol=ATOL, rtol=0)


def test_nlvr_stacked_pixel_values_and_cls_ids_give_the_same_logits(nlvr_reference) -> None:
    model, ref, out = nlvr_reference
    cls_ids = ref.inp("input_ids").clone()
    cls_ids[:, 0] = ref.meta["tokenizer"]["cls_token_id"]  # the head puts [ENC] back at position 0
    with torch.no_grad():
        stacked = model(
            pixel_values=torch.stack([ref.inp("image0"), ref.inp("image1")], dim=1),
            input_ids=cls_ids,
            attention_mask=ref.inp("attention_mask"),
        )
    torch.testing.assert_close(stacked.logits, out.logits, atol=1e-6, rtol=0)
    assert stacked.image_embeds.shape == (2, 2, 17, 64)


def test_nlvr_image_order_matters(nlvr_reference) -> None:
    """The two images have their own projections (self0/self1): swapping them changes the result."""
    model, ref, out = nlvr_reference
    with torch.no_grad():
        swapped = model(
            pixel_values_0=ref.inp("image1"),
            pixel_values_1=ref.inp("image0"),
            input_ids=ref.inp("input_ids"),
            attention_mask=ref.inp("attention_mask"),
        )
    assert (swapped.logits - out.logits).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------- NLVR: tiny model
class TestBlipForNLVR(ModelTesterMixin):
    model_class = BlipForNLVR
    auto_class = AutoModelForImagePairClassification
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"logits": (2, 2), "encoder_last_hidden_state": (2, 7, 64), "image_embeds": (2, 2, 17, 64)}

    def get_config(self):
        return nlvr_config()

    def get_inputs(self, batch_size: int = 2):
        return {"pixel_values": make_images(batch_size, 2), **make_text(batch_size)}

    def get_loss_inputs(self, batch_size: int = 2):
        return {**self.get_inputs(batch_size), "labels": torch.arange(batch_size) % 2}


def test_nlvr_twin_cross_attention_layout() -> None:
    model = BlipForNLVR(nlvr_config()).eval()
    for i, layer in enumerate(model.text_encoder.encoder.layer):
        assert isinstance(layer.crossattention, NlvrTwinCrossAttention)
        assert (layer.crossattention.output.merge_layer is not None) == (i >= 2)
    names = {n for n, _ in model.named_parameters()}
    for suffix in ("self0.query.weight", "self1.value.bias", "output.dense0.weight", "output.dense1.bias",
                   "output.LayerNorm.weight"):
        assert f"text_encoder.encoder.layer.0.crossattention.{suffix}" in names
    assert "text_encoder.encoder.layer.2.crossattention.output.merge_layer.weight" in names
    assert "text_encoder.encoder.layer.1.crossattention.output.merge_layer.weight" not in names
    assert not any("token_type" in n for n in names)
    assert {n for n in names if n.startswith("cls_head.")} == {
        "cls_head.0.weight", "cls_head.0.bias", "cls_head.2.weight", "cls_head.2.bias"
    }


def test_nlvr_twin_output_averages_below_merge_layer() -> None:
    """Layer 0 output == LayerNorm((dense0(ctx0) + dense1(ctx1)) / 2 + h), computed by hand from the projections."""
    torch.manual_seed(0)
    model = BlipForNLVR(nlvr_config()).eval()
    block = model.text_encoder.encoder.layer[0].crossattention
    h = torch.randn(2, 5, 64)
    images = [torch.randn(2, 17, 64), torch.randn(2, 17, 64)]
    with torch.no_grad():
        out, probs = block(h, images, None, output_attentions=True)
        contexts = []
        for attention, states in zip((block.self0, block.self1), images):
            q = attention.query(h).view(2, 5, 4, 16).transpose(1, 2)
            k = attention.key(states).view(2, 17, 4, 16).transpose(1, 2)
            v = attention.value(states).view(2, 17, 4, 16).transpose(1, 2)
            p = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1)
            contexts.append((p @ v).transpose(1, 2).reshape(2, 5, 64))
        mixed = (block.output.dense0(contexts[0]) + block.output.dense1(contexts[1])) / 2
        expected = block.output.LayerNorm(mixed + h)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert probs.shape == (2, 2, 4, 5, 17)


def test_nlvr_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = BlipForNLVR(nlvr_config())
    inputs = {"pixel_values": make_images(4, 2), **make_text(4), "labels": torch.tensor([0, 1, 1, 0])}
    losses = train_steps(model, inputs)
    assert losses[-1] < 0.9 * losses[0], losses


def test_nlvr_gradient_checkpointing_reaches_both_image_paths() -> None:
    """The two image states travel to every layer as a list; checkpointed layers must still pass them gradients."""
    torch.manual_seed(0)
    model = BlipForNLVR(nlvr_config())
    inputs = {"pixel_values": make_images(2, 2), **make_text(2), "labels": torch.tensor([0, 1])}
    reference = model.train()(**inputs).loss
    model.activation_checkpointing_enable()
    loss = model(**inputs).loss
    loss.backward()
    torch.testing.assert_close(loss, reference, atol=1e-6, rtol=0)
    assert model.visual_encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    for layer in model.text_encoder.encoder.layer:
        assert layer.crossattention.self0.key.weight.grad.abs().sum() > 0
        assert layer.crossattention.self1.key.weight.grad.abs().sum() > 0


def test_nlvr_bad_inputs_raise_clear_errors() -> None:
    model = BlipForNLVR(nlvr_config()).eval()
    text = make_text(2)
    image = make_images(2)
    pair = make_images(2, 2)
    assert_raises_clear(lambda: model(pixel_values_0=image, **text), ValueError,
                        "NLVR needs two images per example", "only pixel_values_0")
    assert_raises_clear(lambda: model(pixel_values_1=image, **text), ValueError, "only pixel_values_1")
    assert_raises_clear(lambda: model(pixel_values=image, **text), ValueError,
                        "NLVR needs two images per example", "(2, 3, 32, 32)", "(batch, 2, 3, H, W)")
    assert_raises_clear(lambda: model(pixel_values=make_images(2, 3), **text), ValueError, "(2, 3, 3, 32, 32)")
    assert_raises_clear(lambda: model(pixel_values=pair, pixel_values_0=image, **text), ValueError, "not both")
    assert_raises_clear(lambda: model(pixel_values_0=image, pixel_values_1=make_images(3), **text), ValueError,
                        "must have the same shape")
    assert_raises_clear(lambda: model(pixel_values=make_images(3, 2), **text), ValueError, "batch sizes differ")
    assert_raises_clear(lambda: model(pixel_values=pair, **text, labels=torch.tensor([0, 2])), ValueError,
                        "label 2 is out of range", "0 (False), 1 (True)")
    assert_raises_clear(lambda: model(pixel_values=pair, **text, labels=torch.tensor([-1, 0])), ValueError,
                        "label -1 is out of range")
    assert_raises_clear(lambda: model(pixel_values=pair, **text, labels=torch.tensor([0.0, 1.0])), ValueError,
                        "integer class indices")
    assert_raises_clear(lambda: model(pixel_values=pair, **text, labels=torch.tensor([0, 1, 1])), ValueError,
                        "(batch=2,)")


def test_nlvr_cross_attention_rejects_one_image() -> None:
    model = BlipForNLVR(nlvr_config()).eval()
    assert_raises_clear(
        lambda: model.text_encoder(**make_text(2), encoder_hidden_states=torch.randn(2, 17, 64)),
        ValueError, "attends two images", "list of two",
    )


# ---------------------------------------------------------------------------------------------- classification
class TestBlipForImageTextClassification(ModelTesterMixin):
    model_class = BlipForImageTextClassification
    auto_class = AutoModelForImageTextClassification
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"logits": (2, 3), "encoder_last_hidden_state": (2, 7, 64), "image_embeds": (2, 17, 64)}

    def get_config(self):
        return snli_config(use_distill=True)

    def get_inputs(self, batch_size: int = 2):
        return {"pixel_values": make_images(batch_size), **make_text(batch_size)}

    def get_loss_inputs(self, batch_size: int = 2):
        return {**self.get_inputs(batch_size), "labels": torch.arange(batch_size) % 3}


def test_classification_head_layout_and_distillation_switch() -> None:
    plain = BlipForImageTextClassification(snli_config())
    names = {n.split(".")[0] for n, _ in plain.named_parameters()}
    assert names == {"visual_encoder", "text_encoder", "cls_head"}
    assert plain.cls_head[2].out_features == 3
    wide = BlipForImageTextClassification(snli_config(classifier_hidden_size=48))
    assert wide.cls_head[0].out_features == 48 and wide.cls_head[2].in_features == 48
    distill = BlipForImageTextClassification(snli_config(use_distill=True))
    for online, momentum in (("visual_encoder", "visual_encoder_m"), ("text_encoder", "text_encoder_m"),
                             ("cls_head", "cls_head_m")):
        pairs = zip(getattr(distill, online).parameters(), getattr(distill, momentum).parameters())
        assert all(torch.equal(p, m) and not m.requires_grad for p, m in pairs)


def test_classification_loss_without_distillation_is_cross_entropy() -> None:
    torch.manual_seed(0)
    model = BlipForImageTextClassification(snli_config()).train()
    labels = torch.tensor([2, 0])
    out = model(**make_images_and_text(2), labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels), atol=1e-6, rtol=0)
    assert out.logits_m is None


def test_classification_distillation_loss_and_momentum_ema() -> None:
    torch.manual_seed(0)
    config = snli_config(use_distill=True, momentum=0.9)
    model = BlipForImageTextClassification(config).train()
    with torch.no_grad():  # online and momentum weights differ, as after some training
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    pairs = list(model.momentum_parameter_pairs())
    before = [(p.detach().clone(), m.detach().clone()) for p, m in pairs]
    inputs, labels, alpha = make_images_and_text(2), torch.tensor([1, 2]), 0.3
    out = model(**inputs, labels=labels, alpha=alpha)

    for (p, m), (p0, m0) in zip(pairs, before):
        torch.testing.assert_close(p, p0, atol=0, rtol=0)
        torch.testing.assert_close(m, 0.9 * m0 + 0.1 * p0, atol=1e-6, rtol=0)
    with torch.no_grad():  # logits_m come from the momentum model after its EMA step (LAVIS order)
        ids = inputs["input_ids"].clone()
        ids[:, 0] = 231
        hidden_m = model.text_encoder_m(
            input_ids=ids, attention_mask=inputs["attention_mask"],
            encoder_hidden_states=model.visual_encoder_m(inputs["pixel_values"]),
        ).last_hidden_state
        expected_m = model.cls_head_m(hidden_m[:, 0])
    torch.testing.assert_close(out.logits_m, expected_m, atol=1e-5, rtol=0)
    soft = -(F.log_softmax(out.logits, 1) * F.softmax(out.logits_m, 1)).sum(1).mean()
    expected = (1 - alpha) * F.cross_entropy(out.logits, labels) + alpha * soft
    torch.testing.assert_close(out.loss, expected, atol=1e-6, rtol=0)

    # eval mode: plain cross-entropy, momentum weights untouched
    model.eval()
    frozen = [m.detach().clone() for _, m in pairs]
    out = model(**inputs, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels), atol=1e-6, rtol=0)
    assert all(torch.equal(m, f) for (_, m), f in zip(pairs, frozen))


@pytest.mark.parametrize("use_distill", [False, True])
def test_classification_training_lowers_the_loss(use_distill: bool) -> None:
    torch.manual_seed(0)
    model = BlipForImageTextClassification(snli_config(use_distill=use_distill))
    inputs = {**make_images_and_text(3), "labels": torch.tensor([0, 1, 2])}
    losses = train_steps(model, inputs)
    assert losses[-1] < 0.9 * losses[0], losses


def test_classification_bad_inputs_raise_clear_errors() -> None:
    model = BlipForImageTextClassification(snli_config()).eval()
    inputs = make_images_and_text(2)
    assert_raises_clear(lambda: model(**inputs, labels=torch.tensor([0, 3])), ValueError,
                        "label 3 is out of range", "0 (entailment), 1 (neutral), 2 (contradiction)")
    assert_raises_clear(lambda: model(**inputs, labels=torch.tensor([[0, 1]])), ValueError, "(batch=2,)")
    assert_raises_clear(lambda: model(**inputs, alpha=1.5), ValueError, "alpha=1.5")
    assert_raises_clear(lambda: model(pixel_values=make_images(2, 4), input_ids=inputs["input_ids"]), ValueError,
                        "takes images (batch, 3, H, W)")
    assert_raises_clear(lambda: model(pixel_values=make_images(3), **make_text(2)), ValueError, "batch sizes differ")
    assert_raises_clear(lambda: model(input_ids=inputs["input_ids"]), ValueError, "pixel_values is missing")
    assert_raises_clear(lambda: BlipForImageTextClassification(tiny_blip_config(num_labels=1)), ValueError,
                        "at least 2 classes", "num_labels=1")
