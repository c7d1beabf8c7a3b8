"""CLIP heads: logits and loss by hand, text pooling, features, video, hidden states, training steps, gradient
checkpointing, and clear errors for bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.common.model_tester import assert_raises_clear
from tests.models.clip.clip_test_utils import (
    CONTEXT,
    VOCAB_SIZE,
    random_ids,
    random_pixels,
    tiny_config,
)
from vl_hub.models.clip.modeling_clip import ClipModel, ClipOutput


# ---------------------------------------------------------------------------------------------- numerics
@pytest.fixture(scope="module")
def model() -> ClipModel:
    torch.manual_seed(0)
    return ClipModel(tiny_config()).eval()


def test_logits_and_loss_by_hand(model: ClipModel) -> None:
    pixels, ids = random_pixels(3), random_ids(3)
    with torch.no_grad():
        out = model(pixels, ids, return_loss=True)
        image = model.visual(pixels).embeds
        text = model.text(ids).embeds
    image_n, text_n = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    scale = model.logit_scale.exp()
    torch.testing.assert_close(out.logits_per_image, scale * image_n @ text_n.t(), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits_per_text, out.logits_per_image.t(), atol=1e-5, rtol=0)
    labels = torch.arange(3)
    loss = (F.cross_entropy(out.logits_per_image, labels) + F.cross_entropy(out.logits_per_image.t(), labels)) / 2
    torch.testing.assert_close(out.loss, loss, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.image_embeds, image, atol=0, rtol=0)
    torch.testing.assert_close(out.text_feat.norm(dim=-1), torch.ones(3), atol=1e-6, rtol=0)


def test_logit_scale_starts_at_ln_1_over_007() -> None:
    torch.manual_seed(0)
    fresh = ClipModel(tiny_config())
    assert fresh.logit_scale.item() == pytest.approx(2.6592600, abs=1e-6)
    assert fresh.logit_scale.exp().item() == pytest.approx(1 / 0.07, rel=1e-6)


def test_text_pools_at_first_eot_and_ignores_padding(model: ClipModel) -> None:
    ids = random_ids(2)
    padded = torch.cat([ids, torch.full((2, 3), VOCAB_SIZE - 1)], dim=1)  # more <|endoftext|> padding
    zero_padded = ids.clone()
    eot = (ids == VOCAB_SIZE - 1).int().argmax(dim=1)
    for row in range(2):
        zero_padded[row, eot[row] + 1 :] = 0  # OpenAI pads with 0
    with torch.no_grad():
        ref = model.get_text_features(ids)
        torch.testing.assert_close(model.get_text_features(padded), ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(model.get_text_features(zero_padded), ref, atol=1e-5, rtol=0)


def test_extract_features_modes(model: ClipModel) -> None:
    pixels, ids = random_pixels(2), random_ids(3)
    with torch.no_grad():
        image = model.extract_features(pixels, mode="image")
        text = model.extract_features(input_ids=ids)
        both = model.extract_features(pixels, ids, mode="both")
    assert image.text_embeds is None and text.image_embeds is None
    torch.testing.assert_close(image.image_embeds_proj, F.normalize(image.image_embeds, dim=-1))
    torch.testing.assert_close(image.image_feat, image.image_embeds_proj)
    torch.testing.assert_close(both.text_embeds_proj, text.text_embeds_proj)
    torch.testing.assert_close(both.image_embeds, model.get_image_features(pixels))
    torch.testing.assert_close(model.get_text_features(ids, normalize=True), text.text_feat)


def test_video_features_are_the_frame_mean(model: ClipModel) -> None:
    video = random_pixels(2, frames=3)
    with torch.no_grad():
        frames = model.get_image_features(video.flatten(0, 1)).view(2, 3, -1)
        out = model.encode_image(video, output_hidden_states=True)
        logits = model(video, random_ids(4)).logits_per_image
    torch.testing.assert_close(out.embeds, frames.mean(dim=1), atol=1e-6, rtol=0)
    assert out.last_hidden_state.shape == (2, 3, 17, 64)
    assert out.hidden_states[0].shape[:2] == (2, 3)
    assert logits.shape == (2, 4)


def test_one_image_many_prompts_and_tuple_output(model: ClipModel) -> None:
    with torch.no_grad():
        out = model(random_pixels(1), random_ids(5))
        as_tuple = model(random_pixels(1), random_ids(5), return_dict=False)
    assert out.logits_per_image.shape == (1, 5) and out.logits_per_text.shape == (5, 1)
    assert isinstance(out, ClipOutput) and isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out.logits_per_image)


def test_hidden_states_and_attentions(model: ClipModel) -> None:
    with torch.no_grad():
        out = model(random_pixels(2), random_ids(2), output_hidden_states=True, output_attentions=True)
    assert len(out.vision_model_output.hidden_states) == 3 and len(out.text_model_output.attentions) == 2
    assert out.text_model_output.attentions[0].shape == (2, 4, 10, 10)


def test_contrastive_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = ClipModel(tiny_config()).train()
    pixels, ids = random_pixels(4, seed=1), random_ids(4, seed=1)
    losses = []
    for _ in range(6):
        loss = model(pixels, ids, return_loss=True).loss
        model.zero_grad()
        loss.backward()
        with torch.no_grad():  # plain SGD (torch.optim's first step imports torch._dynamo: seconds of test time)
            for param in model.parameters():
                param -= 0.05 * param.grad
        model.clamp_logit_scale_()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8, losses
    assert 0.0 <= model.logit_scale.item() <= torch.log(torch.tensor(100.0)).item()


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = ClipModel(tiny_config()).train()
    inputs = {"pixel_values": random_pixels(2), "input_ids": random_ids(2), "return_loss": True}
    model(**inputs).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    model(**inputs).loss.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, plain[name], atol=1e-6, rtol=1e-5, msg=name)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "fragments"),
    [
        (lambda m: m(random_pixels(2), random_ids(3), return_loss=True), ("batch sizes differ: 2 images but 3 texts",)),
        (lambda m: m(random_pixels(2), torch.full((2, CONTEXT + 1), 5)), (f"{CONTEXT + 1} tokens", "context_length=16")),
        (lambda m: m(random_pixels(2, size=30), random_ids(2)), ("image size 30x30", "patch size 8")),
        (lambda m: m(torch.randn(2, 4, 32, 32), random_ids(2)), ("4 channels",)),
        (lambda m: m(torch.randn(3, 32, 32), random_ids(2)), ("(batch, 3, H, W)",)),
        (lambda m: m(random_pixels(2).to(torch.uint8), random_ids(2)), ("dtype torch.uint8",)),
        (lambda m: m(pixel_values=random_pixels(2)), ("missing input_ids", "get_image_features")),
        (lambda m: m(input_ids=random_ids(2)), ("missing pixel_values",)),
        (lambda m: m(random_pixels(1), torch.full((1, 4), VOCAB_SIZE)), ("outside the vocabulary",)),
        (lambda m: m(random_pixels(1), random_ids(1), torch.tensor([[0] * 3 + [1] * 7])), ("left padding",)),
        (lambda m: m(random_pixels(1), random_ids(1), torch.ones(1, 4)), ("attention_mask shape",)),
        (lambda m: m.extract_features(mode="image"), ("needs pixel_values",)),
        (lambda m: m.extract_features(random_pixels(1), random_ids(1), mode="multimodal"), ("no fused",)),
        (lambda m: m.extract_features(), ("got neither",)),
    ],
)
def test_bad_input_raises_clearly(model: ClipModel, call, fragments: tuple[str, ...]) -> None:
    assert_raises_clear(lambda: call(model), ValueError, *fragments)


def test_resnet_rejects_too_small_images() -> None:
    torch.manual_seed(0)
    resnet = ClipModel(tiny_config(resnet=True)).eval()
    assert_raises_clear(lambda: resnet.get_image_features(random_pixels(1, size=16)), ValueError, "too small")
