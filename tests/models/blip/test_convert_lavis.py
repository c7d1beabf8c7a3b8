"""Conversion of LAVIS BLIP checkpoints (``vl_hub/models/blip/convert_blip_checkpoint.py``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from safetensors.torch import save_file

from tests.common.model_tester import assert_raises_clear
from tests.common.reference import Reference, load_reference
from tests.models.blip.reference_utils import blip_config_from_reference
from vl_hub.layers.vit import interpolate_pos_embed
from vl_hub.models.blip.convert_blip_checkpoint import (
    convert_lavis_state_dict,
    load_lavis_checkpoint,
    read_checkpoint,
)
from vl_hub.models.blip.modeling_blip import (
    BlipForImageTextRetrieval,
    BlipModel,
    BlipPreTrainedModel,
)


@pytest.fixture(scope="module")
def itm_ref(reference_dir: Path) -> Reference:
    return load_reference(reference_dir, "blip_image_text_matching")


def _itm_logits(model: BlipForImageTextRetrieval, ref: Reference) -> torch.Tensor:
    with torch.no_grad():
        return model(ref.inp("pair_image"), ref.inp("itm_input_ids"), ref.inp("itm_attention_mask")).itm_logits


def _retrieval_state(ref: Reference, queue_size: int = 8) -> dict[str, torch.Tensor]:
    """What a LAVIS ``BlipRetrieval`` state dict holds on top of ``BlipITM``'s: momentum copies (perturbed, so they
    are told apart from the online weights), queues, pointer, temperature."""
    weights = dict(ref.weights)
    for key, value in ref.weights.items():
        head = key.split(".", 1)[0]
        if head in ("visual_encoder", "text_encoder", "vision_proj", "text_proj"):
            weights[key.replace(head, head + "_m", 1)] = value + 0.5 if value.is_floating_point() else value
    weights["image_queue"] = torch.randn(32, queue_size)
    weights["text_queue"] = torch.randn(32, queue_size)
    weights["idx_queue"] = torch.arange(queue_size)[None]
    weights["queue_ptr"] = torch.tensor([4])
    weights["temp"] = torch.tensor(0.05)
    return weights


@pytest.mark.parametrize("fmt", ["pth", "pth-wrapped", "safetensors"])
def test_reads_pth_and_safetensors(itm_ref: Reference, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / ("ckpt.safetensors" if fmt == "safetensors" else "ckpt.pth")
    if fmt == "safetensors":
        save_file(dict(itm_ref.weights), str(path))
    else:
        torch.save({"model": itm_ref.weights, "epoch": 3} if fmt == "pth-wrapped" else itm_ref.weights, str(path))
    assert read_checkpoint(path).keys() == itm_ref.weights.keys()
    model = load_lavis_checkpoint(path, blip_config_from_reference(itm_ref.meta), BlipForImageTextRetrieval)
    torch.testing.assert_close(_itm_logits(model, itm_ref), itm_ref.out("itm_logits"), atol=1e-4, rtol=0)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "config": logging.getLogger("x")}, str(path))
    assert_raises_clear(lambda: read_checkpoint(path), ValueError, "weights_only=True", "re-save the weights")
    assert_raises_clear(lambda: read_checkpoint(tmp_path / "nope.pth"), FileNotFoundError, "does not exist")
    torch.save([torch.zeros(1)], str(path))
    assert_raises_clear(lambda: read_checkpoint(path), ValueError, "not a state dict")


def test_position_ids_are_dropped(itm_ref: Reference) -> None:
    assert "text_encoder.embeddings.position_ids" in itm_ref.weights
    converted = convert_lavis_state_dict(itm_ref.weights, BlipForImageTextRetrieval)
    assert "text_encoder.embeddings.position_ids" not in converted
    assert len(converted) == len(itm_ref.weights) - 1


def test_training_state_is_dropped_with_a_log_line(itm_ref: Reference, caplog: pytest.LogCaptureFixture) -> None:
    weights = _retrieval_state(itm_ref)
    with caplog.at_level(logging.INFO, logger="vl_hub.models.blip.convert_blip_checkpoint"):
        model, report = load_lavis_checkpoint(
            weights, blip_config_from_reference(itm_ref.meta), BlipModel, return_report=True
        )
    message = "\n".join(r.getMessage() for r in caplog.records)
    assert "BlipModel: dropped" in message
    for group in ("visual_encoder_m.*", "text_encoder_m.*", "image_queue", "queue_ptr", "itm_head.*"):
        assert group in message, (group, message)
    assert "itm_head.weight" in report.dropped and "text_proj_m.weight" in report.dropped
    assert not report.missing and not report.unexpected
    torch.testing.assert_close(model.temp.detach(), torch.tensor(0.05))  # BlipModel keeps temp
    with torch.no_grad():
        feat = model.get_image_features(itm_ref.inp("image"))
        retrieval = load_lavis_checkpoint(itm_ref.weights, model.config, BlipForImageTextRetrieval)
        torch.testing.assert_close(feat, retrieval.get_image_features(itm_ref.inp("image")), atol=0, rtol=0)


def test_retrieval_checkpoint_keeps_momentum_and_queues(itm_ref: Reference) -> None:
    weights = _retrieval_state(itm_ref)
    config = blip_config_from_reference(itm_ref.meta, queue_size=8)
    model = load_lavis_checkpoint(weights, config, BlipForImageTextRetrieval)
    torch.testing.assert_close(model.text_proj_m.weight, weights["text_proj_m.weight"], atol=0, rtol=0)
    torch.testing.assert_close(model.image_queue, weights["image_queue"], atol=0, rtol=0)
    assert torch.equal(model.idx_queue, weights["idx_queue"])
    assert model.queue_ptr.item() == 0  # reset after loading, as LAVIS
    assert not any(p.requires_grad for _, _, p in model.named_momentum_parameter_pairs())
    torch.testing.assert_close(_itm_logits(model, itm_ref), itm_ref.out("itm_logits"), atol=1e-4, rtol=0)


def test_inference_checkpoint_into_training_head_copies_online_weights(itm_ref: Reference) -> None:
    config = blip_config_from_reference(itm_ref.meta, queue_size=8)
    model, report = load_lavis_checkpoint(itm_ref.weights, config, BlipForImageTextRetrieval, return_report=True)
    assert all(torch.equal(p, p_m) for _, p, p_m in model.named_momentum_parameter_pairs())
    assert {"temp", "image_queue", "idx_queue", "queue_ptr", "visual_encoder_m.pos_embed"} <= set(report.filled)
    torch.testing.assert_close(model.temp.detach(), torch.tensor(config.temp))
    assert model.image_queue.shape == (32, 8)


def test_queue_of_another_size_keeps_the_fresh_queue(itm_ref: Reference) -> None:
    weights = _retrieval_state(itm_ref, queue_size=16)
    model = load_lavis_checkpoint(weights, blip_config_from_reference(itm_ref.meta, queue_size=8), BlipForImageTextRetrieval)
    assert model.image_queue.shape == (32, 8) and model.idx_queue.shape == (1, 8)


def test_missing_and_unexpected_keys_are_reported(itm_ref: Reference, caplog: pytest.LogCaptureFixture) -> None:
    config = blip_config_from_reference(itm_ref.meta)
    weights = dict(itm_ref.weights)
    del weights["itm_head.bias"]
    weights["foo.weight"] = torch.zeros(2)
    assert_raises_clear(
        lambda: load_lavis_checkpoint(weights, config, BlipForImageTextRetrieval),
        ValueError, "1 missing keys", "itm_head.bias", "1 unexpected keys", "foo.weight", "strict=False",
    )
    with caplog.at_level(logging.WARNING):
        model, report = load_lavis_checkpoint(weights, config, BlipForImageTextRetrieval, strict=False, return_report=True)
    assert report.missing == ["itm_head.bias"] and report.unexpected == ["foo.weight"]
    assert "itm_head.bias" in caplog.text
    torch.testing.assert_close(model.itm_head.weight, itm_ref.weights["itm_head.weight"], atol=0, rtol=0)


def test_wrong_config_names_the_mismatched_tensors(itm_ref: Reference) -> None:
    config = blip_config_from_reference(itm_ref.meta, embed_dim=16)
    assert_raises_clear(
        lambda: load_lavis_checkpoint(itm_ref.weights, config, BlipForImageTextRetrieval),
        ValueError, "vision_proj.weight: checkpoint (32, 64) vs model (16, 64)", "wrong config",
    )


def test_pos_embed_is_interpolated_to_the_config_grid(reference_dir: Path) -> None:
    ref = load_reference(reference_dir, "blip_feature_extractor")
    config = blip_config_from_reference(ref.meta, vision_config={"image_size": 48})
    model, report = load_lavis_checkpoint(ref.weights, config, BlipModel, return_report=True)
    assert report.interpolated == ["visual_encoder.pos_embed"]
    expected = interpolate_pos_embed(ref.weights["visual_encoder.pos_embed"], (6, 6))
    torch.testing.assert_close(model.visual_encoder.pos_embed.detach(), expected, atol=0, rtol=0)


class _TinyCaptioner(BlipPreTrainedModel):
    """A decoder head for the tied-weight tests (the real captioning head lives elsewhere)."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "text_decoder.cls.predictions.decoder.weight": "text_decoder.bert.embeddings.word_embeddings.weight"
    }
    _lavis_renames = (("decoder_alias.", "text_decoder."),)

    def __init__(self, config):
        super().__init__(config)
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_decoder = self.build_text_decoder(config)
        self.post_init()


def test_tied_weights_stored_under_each_or_one_name(reference_dir: Path) -> None:
    ref = load_reference(reference_dir, "blip_caption")
    config = blip_config_from_reference(ref.meta)
    full = load_lavis_checkpoint(ref.weights, config, _TinyCaptioner)
    head = full.text_decoder.cls.predictions
    assert head.decoder.weight is full.text_decoder.bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(head.bias, ref.weights["text_decoder.cls.predictions.bias"], atol=0, rtol=0)

    # only one name of each tied pair, and under a renamed prefix
    single = {
        k.replace("text_decoder.", "decoder_alias.", 1): v
        for k, v in ref.weights.items()
        if k not in ("text_decoder.cls.predictions.decoder.weight", "text_decoder.cls.predictions.bias")
    }
    model, report = load_lavis_checkpoint(single, config, _TinyCaptioner, return_report=True)
    assert sorted(report.filled) == ["text_decoder.cls.predictions.bias", "text_decoder.cls.predictions.decoder.weight"]
    for key, value in full.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, atol=0, rtol=0)

    broken = dict(ref.weights)
    broken["text_decoder.cls.predictions.decoder.bias"] = broken["text_decoder.cls.predictions.bias"] + 1
    assert_raises_clear(
        lambda: load_lavis_checkpoint(broken, config, _TinyCaptioner), ValueError, "one tied tensor", "differ"
    )
