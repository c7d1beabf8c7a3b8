"""BLIP encoder heads: ``BlipModel`` (feature extractor) and ``BlipForImageTextRetrieval`` (ITM/ITC, training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.models.blip.reference_utils import load_blip_reference
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval, BlipModel

ATOL = 1e-4


# ---------------------------------------------------------------------------------------------- LAVIS parity
@pytest.fixture(scope="module")
def feature_reference(reference_dir: Path):
    model, ref = load_blip_reference(reference_dir, "blip_feature_extractor", BlipModel)
    with torch.no_grad():
        image = model.extract_features(ref.inp("image"), mode="image")
        text = model.extract_features(
            input_ids=ref.inp("text_input_ids"), attention_mask=ref.inp("text_attention_mask"), mode="text"
        )
        # [CLS] ids on purpose: the head puts [ENC] at position 0 itself (LAVIS got the [ENC] ids).
        multimodal = model.extract_features(
            ref.inp("image"), ref.inp("text_input_ids"), ref.inp("text_attention_mask"), mode="multimodal"
        )
    return ref, image, text, multimodal


@pytest.mark.parametrize(
    ("name", "mode", "field"),
    [
        ("image_embeds", "image", "image_embeds"),
        ("image_embeds_proj", "image", "image_embeds_proj"),
        ("text_embeds", "text", "text_embeds"),
        ("text_embeds_proj", "text", "text_embeds_proj"),
        ("multimodal_embeds", "multimodal", "multimodal_embeds"),
    ],
)
def test_feature_extractor_parity(feature_reference, name: str, mode: str, field: str) -> None:
    ref, image, text, multimodal = feature_reference
    out = {"image": image, "text": text, "multimodal": multimodal}[mode][field]
    torch.testing.assert_close(out, ref.out(name), atol=ATOL, rtol=0)


def test_feature_extractor_parity_itc_sim_cls(feature_reference) -> None:
    ref, image, text, _ = feature_reference
    sim = image.image_embeds_proj[:, 0] @ text.text_embeds_proj[:, 0].t()
    torch.testing.assert_close(sim, ref.out("itc_sim_cls"), atol=ATOL, rtol=0)
    # get_*_features are exactly those CLS rows
    torch.testing.assert_close(image.image_feat, image.image_embeds_proj[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(text.text_feat, text.text_embeds_proj[:, 0], atol=1e-6, rtol=0)


def test_multimodal_ids_are_enc_replaced(feature_reference) -> None:
    ref = feature_reference[0]
    expected = ref.inp("text_input_ids").clone()
    expected[:, 0] = ref.meta["tokenizer"]["enc_token_id"]
    assert torch.equal(expected, ref.inp("multimodal_input_ids"))


@pytest.fixture(scope="module")
def itm_reference(reference_dir: Path):
    return load_blip_reference(reference_dir, "blip_image_text_matching", BlipForImageTextRetrieval)


def test_image_text_matching_parity_itm_logits(itm_reference) -> None:
    model, ref = itm_reference
    with torch.no_grad():
        out = model(ref.inp("pair_image"), ref.inp("itm_input_ids"), ref.inp("itm_attention_mask"), match_head="itm")
    torch.testing.assert_close(out.itm_logits, ref.out("itm_logits"), atol=ATOL, rtol=0)


def test_image_text_matching_parity_itc_sim(itm_reference) -> None:
    model, ref = itm_reference
    with torch.no_grad():
        out = model(ref.inp("image"), ref.inp("itc_input_ids"), ref.inp("itc_attention_mask"), match_head="itc")
    torch.testing.assert_close(out.itc_sim, ref.out("itc_sim"), atol=ATOL, rtol=0)
