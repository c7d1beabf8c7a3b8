"""ALBEF classification heads: ``AlbefForNLVR`` (LAVIS parity, alternating images, shared cross-attention key/value)
and ``AlbefForVisualEntailment`` (SNLI-VE, momentum distillation)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from tests.common.model_tester import ModelTesterMixin, assert_raises_clear
from tests.models.albef.reference_utils import load_albef_reference, tiny_albef_config
from vl_hub.auto import (
    AutoModelForImagePairClassification,
    AutoModelForImageTextClassification,
)
from vl_hub.models.albef.modeling_albef_nlvr import (
    AlbefForNLVR,
    AlbefForVisualEntailment,
)

ATOL = 1e-4
SNLI_VE_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}


def make_text(batch_size: int, length: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """``[CLS] w... [SEP] [PAD]*`` ids; row 1 is padded."""
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


def nlvr_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return {"pixel_values_0": make_images(batch_size), "pixel_values_1": make_images(batch_size, seed=2),
            **make_text(batch_size)}


def nlvr_config(**overrides):
    # 4 layers, fusion from layer 2: layer 2 attends image 0, layer 3 image 1, with one shared key/value (fast)
    return tiny_albef_config(**overrides)


def snli_config(**overrides):
    return tiny_albef_config(id2label=SNLI_VE_LABELS, **overrides)


def eval_loss(model: torch.nn.Module, inputs: dict) -> float:
    """The plain cross-entropy (eval mode: no distillation term, no EMA step)."""
    model.eval()
    with torch.no_grad():
        return model(**inputs).loss.item()


def train_steps(model: torch.nn.Module, inputs: dict, steps: int = 12, lr: float = 5e-3) -> tuple[float, float]:
    """``(eval loss before, eval loss after)`` ``steps`` AdamW steps on the training loss (distilled with
    ``use_distill``: its floor is ``alpha`` times the momentum targets' entropy, so the CE is what is compared)."""
    before = eval_loss(model, inputs)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        loss = model(**inputs).loss
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return before, eval_loss(model, inputs)


# ---------------------------------------------------------------------------------------------- NLVR: LAVIS parity
@pytest.fixture(scope="module")
def nlvr_reference(reference_dir: Path):
    model, ref = load_albef_reference(reference_dir, "albef_nlvr", AlbefForNLVR)
    with torch.no_grad():
        out = model(
            pixel_values_0=ref.inp("image0"),
            pixel_values_1=ref.inp("image1"),
            input_ids=ref.inp("input_ids"),
            attention_mask=ref.inp("attention_mask"),
        )
    return model, ref, out


def test_nlvr_reference_is_the_18_layer_architecture(nlvr_reference) -> None:
    model, _, _ = nlvr_reference
    text = model.config.text_config
    assert (text.num_hidden_layers, text.fusion_layer) == (18, 6)
    layers = model.text_encoder.encoder.layer
    assert [layer.crossattention is not None for layer in layers] == [False] * 6 + [True] * 12
    for first in range(6, 18, 2):
        a, b = layers[first].crossattention.self, layers[first + 1].crossattention.self
        assert a.key.weight is b.key.weight and a.value.bias is b.value.bias
        assert a.query.weight is not b.query.weight
    assert layers[8].crossattention.self.key.weight is not layers[6].crossattention.self.key.weight


def test_nlvr_parity_encoder_last_hidden_state(nlvr_reference) -> None:
    _, ref, out = nlvr_reference
    torch.testing.assert_close(out.encoder_last_hidden_state, ref.out("encoder_last_hidden_state"), atol=ATOL, rtol=0)


def test_nlvr_parity_logits(nlvr_reference) -> None:
    _, ref, out = nlvr_reference
    torch.testing.assert_close(out.logits, ref.out("logits"), atol=ATOL, rtol=0)


def test_nlvr_stacked_pixel_values_and_image_order(nlvr_reference) -> None:
    model, ref, out = nlvr_reference
    text = {"input_ids": ref.inp("input_ids"), "attention_mask": ref.inp("attention_mask")}
    with torch.no_grad():
        stacked = model(pixel_values=torch.stack([ref.inp("image0"), ref.inp("image1")], dim=1), **text)
        swapped = model(pixel_values_0=ref.inp("image1"), pixel_values_1=ref.inp("image0"), **text)
    torch.testing.assert_close(stacked.logits, out.logits, atol=1e-6, rtol=0)
    assert stacked.image_embeds.shape == (2, 2, 17, 64)
    assert (swapped.logits - out.logits).abs().max() > 1e-3  # fusion layer l attends image (l - 6) % 2


def test_nlvr_save_load_keeps_the_sharing(tmp_path: Path, nlvr_reference) -> None:
    model, ref, out = nlvr_reference
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImagePairClassification.from_pretrained(tmp_path).eval()
    layers = loaded.text_encoder.encoder.layer
    assert layers[16].crossattention.self.value.weight is layers[17].crossattention.self.value.weight
    with torch.no_grad():
        again = loaded(ref.inp("image0"), ref.inp("image1"), ref.inp("input_ids"), ref.inp("attention_mask"))
    torch.testing.assert_close(again.logits, out.logits, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------- VE: LAVIS parity
@pytest.fixture(scope="module")
def ve_reference(reference_dir: Path):
    model, ref = load_albef_reference(reference_dir, "albef_classification", AlbefForVisualEntailment)
    with torch.no_grad():
        out = model(ref.inp("image"), ref.inp("input_ids"), ref.inp("attention_mask"))
    return model, ref, out


def test_visual_entailment_parity_encoder_last_hidden_state(ve_reference) -> None:
    _, ref, out = ve_reference
    torch.testing.assert_close(out.encoder_last_hidden_state, ref.out("encoder_last_hidden_state"), atol=ATOL, rtol=0)


def test_visual_entailment_parity_logits(ve_reference) -> None:
    model, ref, out = ve_reference
    assert model.config.num_labels == 3
    torch.testing.assert_close(out.logits, ref.out("logits"), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------- tiny models
class TestAlbefForNLVR(ModelTesterMixin):
    model_class = AlbefForNLVR
    auto_class = AutoModelForImagePairClassification
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "logits": (2, 2),
        "encoder_last_hidden_state": (2, 7, 64),
        "image_embeds": (2, 2, 17, 64),
    }

    def get_config(self):
        return nlvr_config()

    def get_inputs(self, batch_size: int = 2):
        return nlvr_inputs(batch_size)

    def get_loss_inputs(self, batch_size: int = 2):
        return {**nlvr_inputs(batch_size), "labels": torch.tensor([0, 1])[:batch_size]}


class TestAlbefForVisualEntailment(ModelTesterMixin):
    model_class = AlbefForVisualEntailment
    auto_class = AutoModelForImageTextClassification
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "logits": (2, 3),
        "encoder_last_hidden_state": (2, 7, 64),
        "image_embeds": (2, 17, 64),
    }

    def get_config(self):
        return snli_config()

    def get_inputs(self, batch_size: int = 2):
        return {"pixel_values": make_images(batch_size), **make_text(batch_size)}

    def get_loss_inputs(self, batch_size: int = 2):
        return {**self.get_inputs(batch_size), "labels": torch.tensor([0, 2])[:batch_size]}


def test_nlvr_tiny_layers_alternate_images_and_share_key_value() -> None:
    torch.manual_seed(0)
    model = AlbefForNLVR(nlvr_config()).eval()
    layers = model.text_encoder.encoder.layer
    assert layers[2].crossattention.self.key is layers[3].crossattention.self.key
    image0, image1 = make_images(2), make_images(2, seed=2)
    text = make_text(2)
    with torch.no_grad():
        out = model(image0, image1, **text)
        # by hand: text layers, then layer 2 on image 0 and layer 3 on image 1
        embeds0, embeds1 = model.visual_encoder(image0), model.visual_encoder(image1)
        hidden = model.text_encoder(input_ids=text["input_ids"], attention_mask=text["attention_mask"], mode="text")
        mask = (1.0 - text["attention_mask"][:, None, None, :].float()) * -10000.0
        h = hidden.last_hidden_state
        for layer, image in ((layers[2], embeds0), (layers[3], embeds1)):
            h, _, _ = layer(h, mask, image, None, run_cross_attention=True)
    torch.testing.assert_close(out.encoder_last_hidden_state, h, atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_distill", [False, True])
def test_nlvr_training_lowers_the_loss(use_distill: bool) -> None:
    torch.manual_seed(0)
    model = AlbefForNLVR(nlvr_config(use_distill=use_distill))
    inputs = {**nlvr_inputs(4), "labels": torch.tensor([0, 1, 1, 0])}
    before, after = train_steps(model, inputs)
    assert after < 0.6 * before, (before, after)
    if use_distill:
        layers = model.text_encoder_m.encoder.layer
        assert layers[2].crossattention.self.value is layers[3].crossattention.self.value
        assert not any(p.requires_grad for _, _, p in model.named_momentum_parameter_pairs())


@pytest.mark.parametrize("use_distill", [False, True])
def test_visual_entailment_training_lowers_the_loss(use_distill: bool) -> None:
    torch.manual_seed(0)
    model = AlbefForVisualEntailment(snli_config(use_distill=use_distill))
    inputs = {"pixel_values": make_images(4), **make_text(4), "labels": torch.tensor([0, 1, 2, 1])}
    before, after = train_steps(model, inputs)
    assert after < 0.6 * before, (before, after)


def test_visual_entailment_distillation_loss_by_hand() -> None:
    """Training step with labels: EMA update first, then (1 - alpha) CE + alpha CE(logits, softmax(logits_m))."""
    torch.manual_seed(0)
    model = AlbefForVisualEntailment(snli_config(use_distill=True, momentum=0.5))
    with torch.no_grad():
        for _, param, _ in model.named_momentum_parameter_pairs():
            param.add_(0.05 * torch.randn_like(param))
    online = {n: p.detach().clone() for n, p, _ in model.named_momentum_parameter_pairs()}
    before_m = {n: p.detach().clone() for n, _, p in model.named_momentum_parameter_pairs()}
    inputs = {"pixel_values": make_images(3), **make_text(3), "labels": torch.tensor([0, 1, 2])}
    model.train()
    out = model(**inputs, alpha=0.3)
    for name, _, param_m in model.named_momentum_parameter_pairs():
        torch.testing.assert_close(param_m, 0.5 * before_m[name] + 0.5 * online[name], atol=1e-6, rtol=0)
    with torch.no_grad():
        hidden_m = model.text_encoder_m(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
            encoder_hidden_states=model.visual_encoder_m(inputs["pixel_values"]), mode="multimodal",
        ).last_hidden_state
        logits_m = model.cls_head_m(hidden_m[:, 0])
    torch.testing.assert_close(out.logits_m, logits_m, atol=1e-6, rtol=0)
    soft = -(out.logits.log_softmax(1) * logits_m.softmax(1)).sum(1).mean()
    expected = 0.7 * F.cross_entropy(out.logits, inputs["labels"]) + 0.3 * soft
    torch.testing.assert_close(out.loss, expected, atol=1e-6, rtol=0)
    model.eval()  # no distillation outside training: plain CE, no EMA step
    with torch.no_grad():
        plain = model(**inputs, alpha=0.3)
    torch.testing.assert_close(plain.loss, F.cross_entropy(plain.logits, inputs["labels"]), atol=1e-6, rtol=0)
    assert plain.logits_m is None


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors() -> None:
    torch.manual_seed(0)
    nlvr = AlbefForNLVR(nlvr_config()).eval()
    ve = AlbefForVisualEntailment(snli_config()).eval()
    text = make_text(2)
    one, two = make_images(2), make_images(2, seed=2)
    assert_raises_clear(lambda: nlvr(pixel_values_0=one, **text), ValueError, "two images", "only pixel_values_0")
    assert_raises_clear(lambda: nlvr(pixel_values=one, **text), ValueError, "two images", "(2, 3, 32, 32)")
    assert_raises_clear(lambda: nlvr(**text), ValueError, "two images", "no images")
    assert_raises_clear(lambda: nlvr(one, make_images(3), **text), ValueError, "same shape")
    assert_raises_clear(lambda: nlvr(one, two, **text, pixel_values=torch.stack([one, two], 1)), ValueError, "not both")
    assert_raises_clear(lambda: nlvr(one, two, **make_text(3)), ValueError, "batch sizes differ")
    assert_raises_clear(lambda: nlvr(one, two, **text, labels=torch.tensor([0, 2])), ValueError, "label 2", "0 (False), 1 (True)")
    assert_raises_clear(lambda: ve(one, **text, labels=torch.tensor([0, 3])), ValueError,
                        "label 3 is out of range", "0 (entailment), 1 (neutral), 2 (contradiction)")
    assert_raises_clear(lambda: ve(one, **text, labels=torch.tensor([0.0, 1.0])), ValueError, "integer class indices")
    assert_raises_clear(lambda: ve(one, **text, labels=torch.tensor([0])), ValueError, "(batch=2,)")
    assert_raises_clear(lambda: ve(torch.randn(2, 3, 30, 30), **text), ValueError, "patch size 8")
    assert_raises_clear(lambda: ve(input_ids=text["input_ids"]), ValueError, "pixel_values is missing")
    assert_raises_clear(lambda: ve(one), ValueError, "input_ids is missing")
    assert_raises_clear(
        lambda: AlbefForNLVR(tiny_albef_config(text_config={"num_hidden_layers": 5})), ValueError, "even number",
        "3 fusion layers",
    )
    assert_raises_clear(lambda: AlbefForVisualEntailment(tiny_albef_config(num_labels=1)), ValueError, "at least 2 classes")


def test_distilled_heads_round_trip_with_their_momentum_copies(tmp_path: Path) -> None:
    """use_distill: the momentum copies (NLVR: with their own shared key/value) are saved and loaded back frozen."""
    torch.manual_seed(0)
    model = AlbefForNLVR(nlvr_config(use_distill=True)).eval()
    with torch.no_grad():
        for _, _, param_m in model.named_momentum_parameter_pairs():
            param_m.add_(0.1)  # make them differ from the online weights
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImagePairClassification.from_pretrained(tmp_path).eval()
    layers = loaded.text_encoder_m.encoder.layer
    assert layers[2].crossattention.self.key.weight is layers[3].crossattention.self.key.weight
    for (name, _, a), (_, _, b) in zip(model.named_momentum_parameter_pairs(), loaded.named_momentum_parameter_pairs()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
        assert not b.requires_grad
