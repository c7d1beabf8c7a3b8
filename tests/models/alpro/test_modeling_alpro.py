"""ALPRO heads: model tester on each head, retrieval scoring, frame counts, bad input, Auto classes and hub loading
(losses and training: ``test_alpro_training.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, PreTrainedModel

from tests.common.model_tester import ModelTesterMixin, assert_raises_clear
from tests.models.alpro.alpro_test_utils import make_inputs, tiny_alpro_config, tiny_model
from vl_hub.auto import AutoModelForVideoQuestionAnswering, AutoModelForVideoTextRetrieval, AutoVlHubModel
from vl_hub.models.alpro.configuration_alpro import AlproConfig
from vl_hub.models.alpro.modeling_alpro import (
    AlproForVideoQuestionAnswering,
    AlproForVideoTextRetrieval,
    AlproModel,
)
from vl_hub.retrieval_scoring import brute_force_scores


class _AlproTester(ModelTesterMixin):
    def get_config(self) -> AlproConfig:
        return tiny_alpro_config()

    def build_model(self, seed: int = 0) -> PreTrainedModel:
        return tiny_model(self.model_class, seed=seed)

    def get_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        return make_inputs(batch_size)


class TestAlproModel(_AlproTester):
    model_class = AlproModel
    auto_class = AutoModel
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "video_embeds": (2, 5, 64),
        "video_embeds_proj": (2, 5, 32),
        "video_feat": (2, 32),
        "text_embeds": (2, 10, 64),
        "text_feat": (2, 32),
        "multimodal_embeds": (2, 15, 64),
    }
    # the ITC loss reads the text layers only: the fusion layers (2, 3) get no gradient from it
    no_grad_parameters = ("text_encoder.encoder.layer.2.", "text_encoder.encoder.layer.3.")

    def get_loss_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        return {**make_inputs(batch_size), "return_loss": True}


class TestAlproForVideoTextRetrieval(_AlproTester):
    model_class = AlproForVideoTextRetrieval
    auto_class = AutoModelForVideoTextRetrieval
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"itm_logits": (2, 2), "video_embeds": (2, 5, 64)}

    def get_loss_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        return {**make_inputs(batch_size), "return_loss": True}


class TestAlproForVideoQuestionAnswering(_AlproTester):
    model_class = AlproForVideoQuestionAnswering
    auto_class = AutoModelForVideoQuestionAnswering
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "logits": (2, 5),
        "video_embeds": (2, 5, 64),
        "text_embeds": (2, 10, 64),
        "multimodal_embeds": (2, 15, 64),
    }

    def get_loss_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        return {**make_inputs(batch_size), "labels": torch.tensor([1, 4, 0, 2][:batch_size])}


# ---------------------------------------------------------------------------------------------- retrieval scoring
def test_retrieval_scores_are_lavis_rule_on_all_pairs() -> None:
    """Batched top-k re-scoring equals LAVIS's rule applied to the matching logits of every pair."""
    model = tiny_model(AlproForVideoTextRetrieval)
    videos = make_inputs(4, seed=1)["pixel_values"]
    texts = make_inputs(5, seed=2)
    ids, mask = texts["input_ids"], texts["attention_mask"]
    with torch.no_grad():
        video_embeds, video_feat = model.encode_videos(videos)
        _, text_feat = model.encode_texts(ids, mask)
        vi, tj = torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij")
        itm_all = model.itm_match_logits(video_embeds[vi.reshape(-1)], ids[tj.reshape(-1)], mask[tj.reshape(-1)])
        expected = brute_force_scores(itm_all.view(4, 5), video_feat @ text_feat.t(), k_test=3)
        for pairs_per_call in (3, 1024):
            got = model.retrieval_scores(videos, ids, mask, k_test=3, batch_size=2, pairs_per_call=pairs_per_call)
            torch.testing.assert_close(got.score_i2t, expected.score_i2t, atol=1e-5, rtol=0)
            torch.testing.assert_close(got.score_t2i, expected.score_t2i, atol=1e-5, rtol=0)
    assert (got.score_i2t > -100).sum(1).tolist() == [3] * 4  # k_test candidates per video


def test_itm_match_logits_with_cached_text_states_equals_recompute() -> None:
    model = tiny_model(AlproForVideoTextRetrieval)
    batch = make_inputs(3)
    with torch.no_grad():
        video_embeds = model.encode_videos(batch["pixel_values"])[0]
        text_embeds = model.encode_texts(batch["input_ids"], batch["attention_mask"])[0]
        a = model.itm_match_logits(video_embeds, batch["input_ids"], batch["attention_mask"])
        b = model.itm_match_logits(video_embeds, batch["input_ids"], batch["attention_mask"], text_embeds=text_embeds)
        c = model(**batch).itm_logits[:, 1]
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(a, c, atol=1e-6, rtol=0)


def test_feature_model_fields_are_normalised_projections() -> None:
    model = tiny_model(AlproModel)
    batch = make_inputs(2)
    with torch.no_grad():
        out = model(**batch)
        multimodal = model.extract_features(**batch, mode="multimodal")
    torch.testing.assert_close(out.video_feat, F.normalize(model.vision_proj(out.video_embeds[:, 0]), dim=-1))
    torch.testing.assert_close(out.text_feat, F.normalize(model.text_proj(out.text_embeds[:, 0]), dim=-1))
    torch.testing.assert_close(out.video_embeds_proj[:, 0], out.video_feat)
    torch.testing.assert_close(out.multimodal_embeds, multimodal.multimodal_embeds)
    # padding does not change the fused states of real tokens (mask [text mask ; ones])
    padded = {k: torch.cat([v, torch.zeros_like(v[:, :4])], dim=1) if k != "pixel_values" else v for k, v in batch.items()}
    with torch.no_grad():
        fused_padded = model(**padded).multimodal_embeds
    torch.testing.assert_close(fused_padded[:, :10], out.multimodal_embeds[:, :10], atol=1e-5, rtol=0)
    torch.testing.assert_close(fused_padded[:, 14:], out.multimodal_embeds[:, 10:], atol=1e-5, rtol=0)


def test_other_frame_counts_only_with_interpolation() -> None:
    strict = tiny_model(AlproForVideoQuestionAnswering)
    assert_raises_clear(lambda: strict(**make_inputs(2, frames=8)), ValueError, "8 frames", "num_frames=4", "interpolate_num_frames")
    loose = tiny_model(AlproForVideoQuestionAnswering, vision_config={"interpolate_num_frames": True})
    with torch.no_grad():
        assert loose(**make_inputs(2, frames=8)).logits.shape == (2, 5)


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors() -> None:
    model, retrieval, qa = tiny_model(AlproModel), tiny_model(AlproForVideoTextRetrieval), tiny_model(AlproForVideoQuestionAnswering)
    two, three = make_inputs(2), make_inputs(3)
    video = two["pixel_values"]
    # video rank / layout / channels / size / dtype
    assert_raises_clear(lambda: model(pixel_values=video[0]), ValueError, "rank 5", "unsqueeze(0)")
    assert_raises_clear(lambda: model(pixel_values=video[:, 0]), ValueError, "rank 5", "ALPRO takes videos")
    assert_raises_clear(lambda: model(pixel_values=video.transpose(1, 2)), ValueError, "(batch, 3, frames, H, W)", "permute(0, 2, 1, 3, 4)")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 4, 4, 32, 32)), ValueError, "4 channels", "RGB")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 4, 3, 30, 30)), ValueError, "30x30", "patch size 16")
    assert_raises_clear(lambda: model(pixel_values=video.long()), ValueError, "dtype", "processor")
    # frames vs config
    assert_raises_clear(lambda: retrieval(**make_inputs(2, frames=3)), ValueError, "3 frames", "num_frames=4")
    # missing modality
    assert_raises_clear(lambda: model(), ValueError, "neither")
    assert_raises_clear(lambda: retrieval(pixel_values=video), ValueError, "missing input_ids")
    assert_raises_clear(lambda: qa(input_ids=two["input_ids"]), ValueError, "missing pixel_values")
    assert_raises_clear(lambda: model.extract_features(input_ids=two["input_ids"], mode="video"), ValueError, "mode='video' needs pixel_values")
    assert_raises_clear(lambda: model.extract_features(pixel_values=video), ValueError, "missing input_ids")
    assert_raises_clear(lambda: model(pixel_values=video, return_loss=True), ValueError, "return_loss=True needs both")
    # mismatched batch
    assert_raises_clear(lambda: model(video, three["input_ids"]), ValueError, "batch sizes differ", "2 videos", "3 texts")
    assert_raises_clear(lambda: retrieval(video, three["input_ids"]), ValueError, "batch sizes differ")
    assert_raises_clear(lambda: retrieval(video, three["input_ids"], return_loss=True), ValueError, "batch sizes differ")
    assert_raises_clear(lambda: qa(video, three["input_ids"]), ValueError, "batch sizes differ")
    # text
    assert_raises_clear(lambda: model(input_ids=torch.full((2, 65), 5)), ValueError, "65 tokens", "64 positions")
    assert_raises_clear(lambda: model(input_ids=torch.full((1, 4), 300)), ValueError, "outside the vocabulary", "230")
    assert_raises_clear(lambda: model.extract_features(**two, mode="image"), ValueError, "mode='image'", "'video'")
    assert_raises_clear(lambda: retrieval(**two, match_head="cos"), ValueError, "match_head='cos'", "'itc'")
    # QA labels
    assert_raises_clear(lambda: qa(**two, labels=torch.tensor([0, 7])), ValueError, "[7]", "outside the answer vocabulary")
    assert_raises_clear(lambda: qa(**two, labels=torch.tensor([0, 1, 2])), ValueError, "labels must be (2,)")
    # a batch of one has no negative to mine
    assert_raises_clear(lambda: retrieval(**make_inputs(1), return_loss=True), ValueError, "no negative")


# ---------------------------------------------------------------------------------------------- auto / hub
def test_auto_classes_and_config_round_trip(tmp_path: Path) -> None:
    qa = tiny_model(AlproForVideoQuestionAnswering)
    qa.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is AlproConfig and config.model_type == "vlhub_alpro"
    assert config.id2label == qa.config.id2label and config.vision_config.num_frames == 4
    assert type(AutoVlHubModel.from_pretrained(tmp_path)) is AlproForVideoQuestionAnswering
    encoder = AutoModel.from_pretrained(tmp_path)  # the encoders of a QA checkpoint (projections fresh)
    assert type(encoder) is AlproModel
    assert torch.equal(encoder.visual_encoder.pos_embed, qa.visual_encoder.pos_embed)


def test_loads_by_repo_id_from_local_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    model = tiny_model(AlproForVideoTextRetrieval)
    src = tmp_path / "src"
    model.save_pretrained(src)
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--org--tiny-alpro" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in src.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (cache / "models--org--tiny-alpro" / "refs").mkdir()
    (cache / "models--org--tiny-alpro" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    assert hub_constants.HF_HUB_OFFLINE  # set by tests/conftest.py before huggingface_hub was imported

    inputs = make_inputs()
    loaded = AutoModelForVideoTextRetrieval.from_pretrained("org/tiny-alpro").eval()
    features = AutoModel.from_pretrained("org/tiny-alpro").eval()
    assert type(loaded) is AlproForVideoTextRetrieval and type(features) is AlproModel
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).itm_logits, model(**inputs).itm_logits, atol=0, rtol=0)
        torch.testing.assert_close(
            features.get_video_features(inputs["pixel_values"]), model.get_video_features(inputs["pixel_values"]),
            atol=0, rtol=0,
        )
