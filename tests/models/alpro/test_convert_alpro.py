"""ALPRO conversion: original key layouts (``bert.``, ``visual_encoder.model.``), LAVIS's embedding resizing, head
mismatches, checkpoint files, the converted folder through the Auto classes, and the catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModel, AutoProcessor

from tests.common.model_tester import assert_raises_clear
from tests.common.reference import Reference, load_reference
from tests.models.alpro.alpro_test_utils import alpro_config_from_reference
from vl_hub.auto import AutoModelForVideoQuestionAnswering
from vl_hub.models.alpro.catalogue import ALPRO_CATALOGUE, lookup
from vl_hub.models.alpro.convert_alpro_checkpoint import (
    convert,
    load_answer_vocabulary,
    load_lavis_checkpoint,
    resize_spatial_embedding,
    resize_temporal_embedding,
)
from vl_hub.models.alpro.modeling_alpro import AlproForVideoQuestionAnswering, AlproForVideoTextRetrieval

ATOL = 1e-4
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="module")
def retrieval_ref(reference_dir: Path) -> Reference:
    return load_reference(reference_dir, "alpro_retrieval")


@pytest.fixture(scope="module")
def qa_ref(reference_dir: Path) -> Reference:
    return load_reference(reference_dir, "alpro_qa")


def _text_feat(model: AlproForVideoTextRetrieval, ref: Reference) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_texts(ref.inp("input_ids"), ref.inp("attention_mask"))[1]


def _original_layout(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fixture's LAVIS state dict as the original ALPRO repository saves it: ``text_encoder.bert.*`` plus the
    pre-training MLM head ``text_encoder.cls.*``."""
    out = {k.replace("text_encoder.", "text_encoder.bert.", 1): v for k, v in weights.items()}
    out["text_encoder.cls.predictions.bias"] = torch.zeros(230)
    out["text_encoder.cls.predictions.transform.dense.weight"] = torch.zeros(64, 64)
    return out


def test_original_bert_layout_converts_to_the_same_model(retrieval_ref: Reference) -> None:
    config = alpro_config_from_reference(retrieval_ref.meta)
    model, report = load_lavis_checkpoint(
        _original_layout(retrieval_ref.weights), config, AlproForVideoTextRetrieval, return_report=True
    )
    torch.testing.assert_close(_text_feat(model, retrieval_ref), retrieval_ref.out("text_feat"), rtol=0, atol=ATOL)
    assert "text_encoder.cls.predictions.bias" in report.dropped
    assert "text_encoder.bert.embeddings.position_ids" in report.dropped
    assert not report.missing and not report.unexpected
    assert "visual_encoder.pos_embed" in model.state_dict()  # LAVIS's visual_encoder.model.* renamed


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_checkpoint_files_load(tmp_path: Path, retrieval_ref: Reference, suffix: str) -> None:
    path = tmp_path / f"alpro{suffix}"
    if suffix == ".pth":
        torch.save({"model": dict(retrieval_ref.weights), "epoch": 3}, path)
    else:
        save_file({k: v.contiguous() for k, v in retrieval_ref.weights.items()}, str(path))
    model = load_lavis_checkpoint(path, alpro_config_from_reference(retrieval_ref.meta), AlproForVideoTextRetrieval)
    torch.testing.assert_close(_text_feat(model, retrieval_ref), retrieval_ref.out("text_feat"), rtol=0, atol=ATOL)


def test_time_and_position_embeddings_are_resized_like_lavis(retrieval_ref: Reference) -> None:
    """4 -> 8 frames and 3x3 -> 4x4 patches (48 -> 64 px), LAVIS's nearest resizing (1-D over the patch rows)."""
    config = alpro_config_from_reference(retrieval_ref.meta, vision_config={"num_frames": 8, "image_size": 64})
    model, report = load_lavis_checkpoint(retrieval_ref.weights, config, AlproForVideoTextRetrieval, return_report=True)
    time_old = retrieval_ref.weights["visual_encoder.model.time_embed"]
    pos_old = retrieval_ref.weights["visual_encoder.model.pos_embed"]
    time_new, pos_new = model.visual_encoder.time_embed, model.visual_encoder.pos_embed
    assert time_new.shape == (1, 8, 64) and pos_new.shape == (1, 17, 64)
    assert torch.equal(time_new[0], time_old[0].repeat_interleave(2, dim=0))  # nearest, 4 -> 8
    assert torch.equal(pos_new[0, 0], pos_old[0, 0])  # cls row kept
    rows = [1 + (i * 9) // 16 for i in range(16)]  # nearest along the flattened patch axis
    assert torch.equal(pos_new[0, 1:], pos_old[0, rows])
    assert sorted(report.interpolated) == ["visual_encoder.pos_embed", "visual_encoder.time_embed"]
    assert torch.equal(resize_temporal_embedding(time_old, 4), time_old)
    assert torch.equal(resize_spatial_embedding(pos_old, 9), pos_old)
    with pytest.raises(ValueError, match="pos_embed must have shape"):
        resize_spatial_embedding(pos_old[0], 4)


def test_head_mismatches_are_reported(retrieval_ref: Reference, qa_ref: Reference) -> None:
    qa_config = alpro_config_from_reference(qa_ref.meta)
    # retrieval -> QA: the contrastive state is dropped, the classifier is missing
    assert_raises_clear(
        lambda: load_lavis_checkpoint(retrieval_ref.weights, qa_config, AlproForVideoQuestionAnswering),
        ValueError, "missing keys", "classifier", "strict=False",
    )
    qa, report = load_lavis_checkpoint(
        retrieval_ref.weights, qa_config, AlproForVideoQuestionAnswering, strict=False, return_report=True
    )
    assert {"itm_head.weight", "vision_proj.weight", "text_proj.weight", "temp"} <= set(report.dropped)
    assert report.missing == ["classifier.0.bias", "classifier.0.weight", "classifier.2.bias", "classifier.2.weight"]
    assert torch.equal(qa.visual_encoder.pos_embed, retrieval_ref.weights["visual_encoder.model.pos_embed"])
    # QA -> retrieval: the classifier is unexpected
    assert_raises_clear(
        lambda: load_lavis_checkpoint(qa_ref.weights, alpro_config_from_reference(retrieval_ref.meta),
                                      AlproForVideoTextRetrieval),
        ValueError, "unexpected keys", "classifier",
    )
    # a config of another width: every shape named
    wide = alpro_config_from_reference(
        retrieval_ref.meta, vision_config={"hidden_size": 128}, text_config={"hidden_size": 128}
    )
    assert_raises_clear(
        lambda: load_lavis_checkpoint(retrieval_ref.weights, wide, AlproForVideoTextRetrieval),
        ValueError, "do not fit AlproForVideoTextRetrieval", "wrong config",
    )


def test_convert_writes_a_folder_the_auto_classes_load(tmp_path: Path, reference_dir: Path, qa_ref: Reference) -> None:
    answers = {"cooking": 0, "running": 1, "dog": 2, "man": 3, "yes": 4}
    (tmp_path / "train_ans2label.json").write_text(json.dumps(answers))
    src = tmp_path / "alpro_qa.pth"
    torch.save({"model": dict(qa_ref.weights)}, src)
    out = convert(
        "alpro_qa:msrvtt", src, tmp_path / "out", tokenizer=FIXTURES / "bert_vocab.txt",
        answers=tmp_path / "train_ans2label.json", config=alpro_config_from_reference(qa_ref.meta, max_txt_len=40),
    )
    model = AutoModelForVideoQuestionAnswering.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    assert type(model) is AlproForVideoQuestionAnswering and model.config.architectures == ["AlproForVideoQuestionAnswering"]
    assert model.config.id2label == {0: "cooking", 1: "running", 2: "dog", 3: "man", 4: "yes"}
    assert processor.num_frames == 4 and processor.image_size == 48 and processor.max_txt_len == 40
    inputs = processor(
        videos=list(qa_ref.inp("video_uint8").permute(0, 2, 3, 4, 1)),
        text=qa_ref.meta["inputs"]["question_strings"], text_mode="question",
    )
    with torch.no_grad():
        logits = model.classify_answers(**inputs)
    torch.testing.assert_close(logits, qa_ref.out("logits"), rtol=0, atol=ATOL)
    assert model.predict_answers(**inputs) == [model.config.id2label[i] for i in qa_ref.out("logits").argmax(-1).tolist()]
    assert type(AutoModel.from_pretrained(out)).__name__ == "AlproModel"
    with pytest.raises(ValueError, match="has 3 answers but alpro_qa:msrvtt has 5 classes"):
        convert("alpro_qa:msrvtt", src, tmp_path / "bad", answers=["a", "b", "c"],
                config=alpro_config_from_reference(qa_ref.meta))


def test_answer_vocabulary_readers() -> None:
    assert load_answer_vocabulary({"yes": 1, "no": 0}) == {0: "no", 1: "yes"}
    assert load_answer_vocabulary(["no", "yes"]) == {0: "no", 1: "yes"}
    with pytest.raises(ValueError, match="without gaps"):
        load_answer_vocabulary({"yes": 0, "no": 2})
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_answer_vocabulary("nowhere.json")


def test_catalogue_entries() -> None:
    assert sorted(ALPRO_CATALOGUE) == [
        ("alpro_qa", "msrvtt"), ("alpro_qa", "msvd"), ("alpro_retrieval", "didemo"), ("alpro_retrieval", "msrvtt"),
    ]
    qa_msrvtt, qa_msvd = lookup("alpro_qa:msrvtt"), lookup("alpro_qa:msvd")
    assert (qa_msrvtt.num_answers, qa_msvd.num_answers) == (1500, 2423)
    assert qa_msrvtt.config().num_labels == 1500 and qa_msvd.config().vision_config.num_frames == 16
    ret = lookup("alpro_retrieval:didemo")
    config = ret.config()
    assert config.max_txt_len == 50 and config.k_test == 1000 and config.vision_config.num_frames == 8
    assert config.text_config.fusion_layer == 6 and config.vision_config.hidden_size == 768
    assert ret.source_url.endswith("/LAVIS/models/ALPRO/alpro_didemo_retrieval.pt")
    assert qa_msvd.answers_url.endswith("/msvd/train_ans2label.json") and ret.answers_url is None
    assert ret.head_class() is AlproForVideoTextRetrieval and qa_msvd.head_class() is AlproForVideoQuestionAnswering
    assert ret.as_dict()["family"] == "alpro" and ret.repo_id == "vl-hub/alpro-retrieval-didemo"
    with pytest.raises(KeyError, match="alpro_qa:msvd"):
        lookup("alpro_qa:tgif")


def test_spatial_resize_is_lavis_formula_by_hand() -> None:
    pos = torch.arange(1 + 4, dtype=torch.float32).view(1, 5, 1).expand(1, 5, 2).contiguous()
    resized = resize_spatial_embedding(pos, 9)
    assert resized[0, :, 0].tolist() == [0, 1, 1, 1, 2, 2, 3, 3, 4, 4]
    expected = F.interpolate(pos[:, 1:].transpose(1, 2), size=9, mode="nearest").transpose(1, 2)
    assert torch.equal(resized[:, 1:], expected)
