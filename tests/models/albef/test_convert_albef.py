"""Conversion of LAVIS ALBEF checkpoints (``vl_hub/models/albef/convert_albef_checkpoint.py``) and the catalogue."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoProcessor

from tests.common.model_tester import assert_raises_clear
from tests.common.reference import Reference, load_reference
from tests.models.albef.reference_utils import albef_config_from_reference
from vl_hub.auto import AutoModelForImageTextRetrieval, AutoVlHubModel
from vl_hub.models.albef.catalogue import ALBEF_CATALOGUE, lookup
from vl_hub.models.albef.convert_albef_checkpoint import (
    convert_albef_checkpoint,
    head_class_for,
    load_lavis_checkpoint,
    main,
    read_checkpoint,
    vqa_state_from_pretraining,
)
from vl_hub.models.albef.modeling_albef import AlbefForImageTextRetrieval, AlbefModel
from vl_hub.models.albef.modeling_albef_generation import AlbefForQuestionAnswering
from vl_hub.models.albef.modeling_albef_nlvr import AlbefForVisualEntailment
from vl_hub.models.albef.processing_albef import AlbefProcessor

REPO = Path(__file__).resolve().parents[3]
VOCAB = REPO / "tests" / "fixtures" / "bert_vocab.txt"
LOGGER = "vl_hub.models.albef.convert_albef_checkpoint"


@pytest.fixture(scope="module")
def feature_ref(reference_dir: Path) -> Reference:
    return load_reference(reference_dir, "albef_feature_extractor")


@pytest.fixture(scope="module")
def retrieval_ref(reference_dir: Path) -> Reference:
    return load_reference(reference_dir, "albef_retrieval")


def _image_features(model, ref: Reference) -> torch.Tensor:
    with torch.no_grad():
        return model.extract_features(ref.inp("image"), mode="image").image_embeds_proj


@pytest.mark.parametrize("fmt", ["pth", "pth-wrapped", "safetensors"])
def test_reads_pth_and_safetensors(feature_ref: Reference, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / ("ckpt.safetensors" if fmt == "safetensors" else "ckpt.pth")
    # safetensors refuses shared storage: LAVIS stores the tied MLM decoder weight as its own tensor there too
    weights = {k: v.clone() for k, v in feature_ref.weights.items()}
    if fmt == "safetensors":
        save_file(weights, str(path))
    else:
        torch.save({"model": weights, "epoch": 3} if fmt == "pth-wrapped" else weights, str(path))
    assert read_checkpoint(path).keys() == feature_ref.weights.keys()
    model = load_lavis_checkpoint(path, albef_config_from_reference(feature_ref.meta), AlbefModel)
    torch.testing.assert_close(_image_features(model, feature_ref), feature_ref.out("image_embeds_proj"), atol=1e-4, rtol=0)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "config": logging.getLogger("x")}, str(path))
    assert_raises_clear(lambda: read_checkpoint(path), ValueError, "weights_only=True")


def test_masked_lm_encoder_is_read_as_plain_bert(feature_ref: Reference, caplog: pytest.LogCaptureFixture) -> None:
    """LAVIS rename_text_keys: text_encoder.bert.* -> text_encoder.*, the unused MLM head dropped with a log line."""
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model, report = load_lavis_checkpoint(
            feature_ref.weights, albef_config_from_reference(feature_ref.meta), AlbefModel, return_report=True
        )
    assert "AlbefModel: dropped" in caplog.text and "text_encoder.* (" in caplog.text
    assert "text_encoder.cls.predictions.decoder.weight" in report.dropped
    assert "text_encoder.bert.embeddings.position_ids" in report.dropped
    assert not report.missing and not report.unexpected
    torch.testing.assert_close(
        model.text_encoder.embeddings.word_embeddings.weight,
        feature_ref.weights["text_encoder.bert.embeddings.word_embeddings.weight"], atol=0, rtol=0,
    )
    torch.testing.assert_close(model.temp.detach(), feature_ref.weights["temp"], atol=0, rtol=0)


def test_retrieval_checkpoint_into_feature_extractor(retrieval_ref: Reference, caplog: pytest.LogCaptureFixture) -> None:
    config = albef_config_from_reference(retrieval_ref.meta)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model, report = load_lavis_checkpoint(retrieval_ref.weights, config, AlbefModel, return_report=True)
    for group in ("visual_encoder_m.*", "text_encoder_m.*", "image_queue", "idx_queue", "queue_ptr", "itm_head.*"):
        assert group in caplog.text, group
    assert not report.missing and not report.unexpected
    torch.testing.assert_close(_image_features(model, retrieval_ref)[:, 0], retrieval_ref.out("image_feat"), atol=1e-4, rtol=0)


def test_retrieval_from_a_pretraining_checkpoint(feature_ref: Reference) -> None:
    """LAVIS fine-tunes retrieval from ALBEF.pth: the masked-LM encoder is renamed, the momentum copies the checkpoint
    lacks start as copies of the online weights, idx_queue fresh; only itm_head is missing (new head)."""
    config = albef_config_from_reference(feature_ref.meta, queue_size=16)
    model, report = load_lavis_checkpoint(
        feature_ref.weights, config, AlbefForImageTextRetrieval, strict=False, return_report=True
    )
    assert report.missing == ["itm_head.bias", "itm_head.weight"] and not report.unexpected
    assert all(torch.equal(p, p_m) for _, p, p_m in model.named_momentum_parameter_pairs())
    assert {"idx_queue", "image_queue", "text_encoder_m.embeddings.word_embeddings.weight"} <= set(report.filled)


def _with_momentum(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(weights)
    for key, value in weights.items():
        head = key.split(".", 1)[0]
        if head in ("visual_encoder", "text_encoder", "cls_head"):
            out[key.replace(head, head + "_m", 1)] = value + 0.5 if value.is_floating_point() else value
    return out


def test_momentum_copies_follow_the_config(reference_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """use_distill=True keeps a checkpoint's *_m copies; use_distill=False drops them with a log line."""
    ref = load_reference(reference_dir, "albef_classification")
    weights = _with_momentum(ref.weights)
    kept = load_lavis_checkpoint(weights, albef_config_from_reference(ref.meta, use_distill=True), AlbefForVisualEntailment)
    torch.testing.assert_close(kept.cls_head_m[2].weight, weights["cls_head_m.2.weight"], atol=0, rtol=0)
    assert not any(p.requires_grad for _, _, p in kept.named_momentum_parameter_pairs())
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dropped, report = load_lavis_checkpoint(
            weights, albef_config_from_reference(ref.meta, use_distill=False), AlbefForVisualEntailment,
            return_report=True,
        )
    assert "with this config: dropped" in caplog.text and "cls_head_m.2.weight" in report.dropped
    assert not hasattr(dropped, "cls_head_m")
    with torch.no_grad():
        for model in (kept, dropped):
            logits = model(ref.inp("image"), ref.inp("input_ids"), ref.inp("attention_mask")).logits
            torch.testing.assert_close(logits, ref.out("logits"), atol=1e-4, rtol=0)


def test_vqa_from_a_pretraining_checkpoint(reference_dir: Path, feature_ref: Reference) -> None:
    """LAVIS AlbefVQA.load_from_pretrained: the answer decoder starts from the pre-trained fusion layers (renumbered),
    embeddings and MLM head; the question encoder keeps all layers."""
    vqa_meta = load_reference(reference_dir, "albef_vqa").meta
    config = albef_config_from_reference(vqa_meta)
    state = vqa_state_from_pretraining(feature_ref.weights, fusion_layer=config.text_config.fusion_layer)
    model = load_lavis_checkpoint(state, config, AlbefForQuestionAnswering)
    w = feature_ref.weights
    decoder = model.text_decoder
    torch.testing.assert_close(decoder.bert.encoder.layer[0].crossattention.self.key.weight,
                               w["text_encoder.bert.encoder.layer.2.crossattention.self.key.weight"], atol=0, rtol=0)
    torch.testing.assert_close(decoder.bert.encoder.layer[1].output.dense.bias,
                               w["text_encoder.bert.encoder.layer.3.output.dense.bias"], atol=0, rtol=0)
    torch.testing.assert_close(decoder.bert.embeddings.word_embeddings.weight,
                               w["text_encoder.bert.embeddings.word_embeddings.weight"], atol=0, rtol=0)
    torch.testing.assert_close(decoder.cls.predictions.transform.dense.weight,
                               w["text_encoder.cls.predictions.transform.dense.weight"], atol=0, rtol=0)
    torch.testing.assert_close(model.text_encoder.encoder.layer[0].attention.self.query.weight,
                               w["text_encoder.bert.encoder.layer.0.attention.self.query.weight"], atol=0, rtol=0)


def test_pos_embed_is_interpolated(feature_ref: Reference) -> None:
    config = albef_config_from_reference(feature_ref.meta, vision_config={"image_size": 48})
    model, report = load_lavis_checkpoint(feature_ref.weights, config, AlbefModel, return_report=True)
    assert report.interpolated == ["visual_encoder.pos_embed"] and model.visual_encoder.pos_embed.shape == (1, 37, 64)


def test_wrong_head_is_reported(retrieval_ref: Reference) -> None:
    config = albef_config_from_reference(retrieval_ref.meta)
    assert_raises_clear(
        lambda: load_lavis_checkpoint(retrieval_ref.weights, config, AlbefForQuestionAnswering), ValueError,
        "missing keys", "text_decoder", "strict=False",
    )


# ---------------------------------------------------------------------------------------------- catalogue + CLI
def test_catalogue_entries() -> None:
    expected = {
        ("albef_feature_extractor", "base"): "AlbefModel",
        ("albef_retrieval", "coco"): "AlbefForImageTextRetrieval",
        ("albef_retrieval", "flickr"): "AlbefForImageTextRetrieval",
        ("albef_vqa", "vqav2"): "AlbefForQuestionAnswering",
        ("albef_nlvr", "nlvr"): "AlbefForNLVR",
        ("albef_classification", "ve"): "AlbefForVisualEntailment",
        ("albef_pretrain", "base"): "AlbefForPreTraining",
    }
    assert {k: e.head for k, e in ALBEF_CATALOGUE.items()} == expected
    for (name, kind), entry in ALBEF_CATALOGUE.items():
        config = entry.config()
        assert head_class_for(name).__name__ == entry.head
        assert lookup(f"{name}:{kind}") is entry
        assert entry.source_url.startswith("https://storage.googleapis.com/sfr-")
        assert entry.repo_id.startswith("vl-hub/albef-")
        assert (REPO / entry.model_card).is_file(), entry.model_card
        assert config.text_config.fusion_layer == 6 and config.vision_config.patch_size == 16
        assert config.vision_config.image_size == entry.image_size
        assert entry.as_dict()["family"] == "albef"
    assert lookup("albef_nlvr:nlvr").config().text_config.num_hidden_layers == 18
    assert lookup("albef_vqa:vqav2").config().num_decoder_layers == 6
    assert lookup("albef_classification:ve").config().id2label == {0: "entailment", 1: "neutral", 2: "contradiction"}
    assert lookup("albef_retrieval:coco").config().queue_size == 65536
    assert_raises_clear(lambda: lookup("albef_retrieval:msrvtt"), KeyError, "albef_retrieval:coco", "albef_vqa:vqav2")


def test_convert_command_writes_a_loadable_folder(retrieval_ref: Reference, tmp_path: Path) -> None:
    """The CLI (catalogue entry + a tiny --config) writes config, weights and processor; the Auto classes load them."""
    source = tmp_path / "albef_coco_retrieval_lavis.pt"
    torch.save({"model": retrieval_ref.weights}, str(source))
    config = albef_config_from_reference(retrieval_ref.meta)
    config.save_pretrained(tmp_path / "cfg")
    out = tmp_path / "converted"
    assert main([str(source), str(out), "--model-type", "albef_retrieval:coco", "--vocab", str(VOCAB),
                 "--config", str(tmp_path / "cfg" / "config.json")]) == 0
    model = AutoModelForImageTextRetrieval.from_pretrained(out).eval()
    assert type(model) is AlbefForImageTextRetrieval and type(AutoVlHubModel.from_pretrained(out)) is AlbefForImageTextRetrieval
    processor = AutoProcessor.from_pretrained(out)
    assert isinstance(processor, AlbefProcessor) and processor.max_txt_len == config.max_txt_len
    assert processor.image_processor.image_size == 32
    ref_images = retrieval_ref.inp("image")
    scores = model.retrieval_scores(ref_images, retrieval_ref.inp("input_ids"),
                                    retrieval_ref.inp("attention_mask"), k_test=2)
    torch.testing.assert_close(scores.score_i2t, retrieval_ref.out("score_i2t"), atol=1e-4, rtol=0)
    torch.testing.assert_close(model.image_queue, retrieval_ref.weights["image_queue"], atol=0, rtol=0)
    assert ref_images.shape[0] == 3
    again = convert_albef_checkpoint(retrieval_ref.weights, tmp_path / "again", "albef_retrieval:coco", config=config)
    assert isinstance(again, AlbefForImageTextRetrieval) and not (tmp_path / "again" / "tokenizer.json").exists()
    assert_raises_clear(
        lambda: convert_albef_checkpoint(retrieval_ref.weights, tmp_path / "x", "albef_retrieval:coco", config=config,
                                         from_pretraining=True),
        ValueError, "only applies to albef_vqa",
    )
