"""Grad-CAM of image-text matching: against an independent LAVIS-style computation, word merging, layers, the
overlay, and the two tabs built on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vl_hub.data import synthetic
from vl_hub.demo import tab_matching
from vl_hub.demo.gradcam import compute_gradcam, cross_attention_layers, default_layer, jet, overlay_heatmap
from vl_hub.demo.inputs import DemoInputError
from vl_hub.demo.models import ModelBundle


@pytest.fixture(scope="module")
def image() -> Image.Image:
    _, scenes = synthetic.scenes_for("image_text", 0, "test", 1, 64)
    return synthetic.draw(scenes[0].objects, 64)


def lavis_gradcam(head, image: Image.Image, text: str, layer: int, enc_token_id: int | None) -> torch.Tensor:
    """LAVIS's recipe written out: ``.backward()`` into retained attention gradients, loops over tokens and heads.
    Returns ``(T, P)`` maps of the text tokens (special tokens excluded)."""
    model, processor = head.model, head.processor
    batch = processor(images=[image], text=[text], text_mode="caption", prompt="")
    ids = batch["input_ids"].clone()
    if enc_token_id is not None:
        ids[:, 0] = enc_token_id
    transformer = getattr(model, "text_transformer", None) or model.text_encoder
    image_embeds = model.visual_encoder(batch["pixel_values"])
    out = transformer(input_ids=ids, attention_mask=batch["attention_mask"], encoder_hidden_states=image_embeds,
                      mode="multimodal", output_attentions=True)
    attention = out.cross_attentions[layer]
    attention.retain_grad()
    model.zero_grad()
    model.itm_head(out.last_hidden_state[:, 0])[:, 1].sum().backward()
    grad = attention.grad
    heads, length = attention.shape[1], ids.shape[1]
    maps = []
    for t in range(1, length - 1):
        total = torch.zeros(attention.shape[-1] - 1)
        for h in range(heads):
            total += (attention[0, h, t, 1:] * grad[0, h, t, 1:].clamp(min=0)).detach()
        maps.append(total / heads)
    model.zero_grad()
    return torch.stack(maps)


def assert_maps_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    scale = float(expected.abs().max())
    assert scale > 0, "the reference maps are all zero: the check would be vacuous"
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * scale)


def test_blip_gradcam_equals_the_lavis_recipe_and_the_itm_forward(blip_bundle: ModelBundle, image) -> None:
    head = blip_bundle.head_for("itm")
    text = "a red circle on the left"
    result = compute_gradcam(head, image, text, layer=0)
    enc = head.model.config.text_config.enc_token_id
    expected = lavis_gradcam(head, image, text, 0, enc)
    side = int(expected.shape[1] ** 0.5)
    assert result.token_maps.shape == (len(text.split()), side, side)
    assert_maps_close(result.token_maps.flatten(1), expected)
    assert_maps_close(result.average_map, expected.mean(0).view(side, side))
    batch = head.processor(images=[image], text=[text], text_mode="caption", prompt="")
    with torch.no_grad():
        logits = head.model(**batch, match_head="itm").itm_logits
    assert result.itm_probability == pytest.approx(float(logits.softmax(-1)[0, 1]), abs=1e-5)
    assert result.words == text.split() and result.tokens == text.split()
    torch.testing.assert_close(result.word_maps, result.token_maps)  # one piece per word


def test_albef_gradcam_uses_fusion_layers_and_merges_word_pieces(albef_bundle: ModelBundle, image) -> None:
    head = albef_bundle.head_for("itm")
    assert cross_attention_layers(head) == [2]  # fusion layers 2 and 3; the last one cannot move the ITM score
    assert default_layer(head) == 2
    text = "a dog skateboard"
    result = compute_gradcam(head, image, text)
    assert result.tokens == ["a", "dog", "skate", "##board"]
    assert result.words == ["a", "dog", "skateboard"]
    torch.testing.assert_close(result.word_maps[2], result.token_maps[2:4].mean(0))
    assert_maps_close(result.token_maps.flatten(1), lavis_gradcam(head, image, text, 2, None))
    batch = head.processor(images=[image], text=[text], text_mode="caption")
    with torch.no_grad():
        logits = head.model(**batch, match_head="itm").itm_logits
    assert result.itm_probability == pytest.approx(float(logits.softmax(-1)[0, 1]), abs=1e-5)
    with pytest.raises(DemoInputError, match=r"Layer 1 has no cross-attention; choose one of \[2\]"):
        compute_gradcam(head, image, text, layer=1)


def test_the_last_layer_is_excluded_because_its_word_gradients_vanish(blip_bundle: ModelBundle, image) -> None:
    head = blip_bundle.head_for("itm")
    assert cross_attention_layers(head) == [0]  # two layers: the last is left out
    enc = head.model.config.text_config.enc_token_id
    assert float(lavis_gradcam(head, image, "a red circle", 1, enc).abs().max()) == 0.0


def test_gradcam_needs_words(blip_bundle: ModelBundle, image) -> None:
    with pytest.raises(DemoInputError, match="no words left"):
        compute_gradcam(blip_bundle.head_for("itm"), image, "...")


def test_jet_and_overlay_blend_by_the_map() -> None:
    np.testing.assert_allclose(jet(np.array([0.0, 0.5, 1.0])), [[0, 0, 0.5], [0.5, 1, 0.5], [0.5, 0, 0]])
    base = Image.new("RGB", (64, 32), (10, 200, 30))
    cam = torch.zeros(4, 4)
    cam[0, 0] = 1.0
    out = overlay_heatmap(base, cam)
    assert out.size == (512, 256)  # the short side enlarged to 256
    pixels = np.asarray(out)
    np.testing.assert_array_equal(pixels[0, 0], [128, 0, 0])  # weight 1: the jet colour of the peak
    np.testing.assert_array_equal(pixels[-1, -1], [10, 200, 30])  # weight 0: the image
    big = overlay_heatmap(Image.new("RGB", (2000, 1000)), cam)
    assert big.size == (640, 320)


def test_match_tab_reports_scores_and_a_heatmap(ctx, image, tmp_path) -> None:
    path = tmp_path / "shapes.png"
    image.save(path)
    scores, heatmap, status = tab_matching.match(ctx, None, str(path), "a red circle", "0")
    assert set(scores) == {"match", "no match"} and scores["match"] + scores["no match"] == pytest.approx(1.0)
    head = ctx.bundle(None).head_for("itm")
    assert scores["match"] == pytest.approx(compute_gradcam(head, image, "a red circle", 0).itm_probability)
    assert heatmap.size == (256, 256)
    assert "ITM P(match)" in status and "layer 0" in status
    assert tab_matching.layer_choices(ctx, None) == [tab_matching.AUTO_LAYER, "0"]
    assert tab_matching.layer_choices(ctx, "tiny CLIP") == [tab_matching.AUTO_LAYER]


def test_localisation_tab_gives_one_map_per_word(ctx, image, tmp_path) -> None:
    path = tmp_path / "shapes.png"
    image.save(path)
    items, status = tab_matching.localise(ctx, "tiny ALBEF", str(path), "A dog, skateboard!", tab_matching.AUTO_LAYER)
    captions = [caption for _, caption in items]
    assert captions == ["all words (average)", "a", "dog", ",", "skateboard"]
    assert all(isinstance(im, Image.Image) for im, _ in items)
    assert "5 word(s)" not in status and "4 word(s)" in status
    with pytest.raises(DemoInputError, match="cannot do image-text matching"):
        tab_matching.localise(ctx, "tiny CLIP", str(path), "a dog", tab_matching.AUTO_LAYER)
    with pytest.raises(DemoInputError, match="layer must be a number"):
        tab_matching.match(ctx, None, str(path), "a dog", "middle")
