"""ALPRO against LAVIS's golden outputs (``alpro_retrieval``, ``alpro_qa``): weights loaded through the conversion
code, every ``out.*`` tensor reproduced from the ``in.*`` tensors (atol 1e-4), one test per output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.common.reference import Reference
from tests.models.alpro.alpro_test_utils import load_alpro_reference, tiny_processor
from vl_hub.models.alpro.modeling_alpro import AlproForVideoQuestionAnswering, AlproForVideoTextRetrieval, AlproModel

ATOL = 1e-4


def _videos(ref: Reference) -> torch.Tensor:
    """LAVIS feeds ``(B, 3, T, H, W)``; vl_hub heads take ``(B, T, 3, H, W)``."""
    return ref.inp("video").transpose(1, 2)


# ---------------------------------------------------------------------------------------------- retrieval
@pytest.fixture(scope="module")
def retrieval(reference_dir: Path) -> tuple[Reference, dict[str, torch.Tensor]]:
    model, ref = load_alpro_reference(reference_dir, "alpro_retrieval", AlproForVideoTextRetrieval)
    ids, mask = ref.inp("input_ids"), ref.inp("attention_mask")
    with torch.no_grad():
        video_embeds, video_feat = model.encode_videos(_videos(ref))
        text_embeds, text_feat = model.encode_texts(ids, mask, token_type_ids=ref.inp("token_type_ids"))
        n_video, n_text = video_embeds.shape[0], ids.shape[0]
        # every (video i, text j) pair in one batched matching pass
        vi, tj = torch.meshgrid(torch.arange(n_video), torch.arange(n_text), indexing="ij")
        vi, tj = vi.reshape(-1), tj.reshape(-1)
        states = model.encode_multimodal(video_embeds[vi], ids[tj], mask[tj])
        all_pairs = model.itm_head(states[:, 0]).view(n_video, n_text, 2)
        scores = model.retrieval_scores(_videos(ref), ids, mask, k_test=ref.meta["inputs"]["k_test"])
    outputs = {
        "video_embeds": video_embeds,
        "video_feat": video_feat,
        "text_embeds": text_embeds,
        "text_feat": text_feat,
        "sims_v2t": scores.sim,
        "vtm_logits_all_pairs": all_pairs,
        "score_v2t": scores.score_i2t,
        "score_t2v": scores.score_t2i,
    }
    return ref, outputs


@pytest.mark.parametrize(
    "name",
    ["video_embeds", "video_feat", "text_embeds", "text_feat", "sims_v2t", "vtm_logits_all_pairs", "score_v2t",
     "score_t2v"],
)
def test_retrieval_parity(retrieval: tuple[Reference, dict[str, torch.Tensor]], name: str) -> None:
    ref, outputs = retrieval
    torch.testing.assert_close(outputs[name], ref.out(name), rtol=0, atol=ATOL)


def test_retrieval_forward_heads_match_the_reference(reference_dir: Path) -> None:
    """``forward`` (pairs, ITC matrix) and the default token types (none given = 0) give the LAVIS values too."""
    model, ref = load_alpro_reference(reference_dir, "alpro_retrieval", AlproForVideoTextRetrieval)
    ids, mask = ref.inp("input_ids"), ref.inp("attention_mask")
    with torch.no_grad():
        itm = model(_videos(ref), ids, mask).itm_logits
        itc = model(_videos(ref), ids, mask, match_head="itc").itc_sim
    diagonal = ref.out("vtm_logits_all_pairs").diagonal(dim1=0, dim2=1).t()
    torch.testing.assert_close(itm, diagonal, rtol=0, atol=ATOL)
    torch.testing.assert_close(itc, ref.out("sims_v2t"), rtol=0, atol=ATOL)


def test_feature_model_loads_retrieval_checkpoint(reference_dir: Path) -> None:
    """``AlproModel`` takes the retrieval checkpoint (dropping ``itm_head``) and gives the same features."""
    model, ref = load_alpro_reference(reference_dir, "alpro_retrieval", AlproModel)
    with torch.no_grad():
        video = model.extract_features(_videos(ref), mode="video")
        text = model.extract_features(input_ids=ref.inp("input_ids"), attention_mask=ref.inp("attention_mask"), mode="text")
    torch.testing.assert_close(video.video_embeds, ref.out("video_embeds"), rtol=0, atol=ATOL)
    torch.testing.assert_close(video.video_feat, ref.out("video_feat"), rtol=0, atol=ATOL)
    torch.testing.assert_close(text.text_feat, ref.out("text_feat"), rtol=0, atol=ATOL)


# ---------------------------------------------------------------------------------------------- QA
@pytest.fixture(scope="module")
def qa(reference_dir: Path) -> tuple[Reference, dict[str, torch.Tensor]]:
    model, ref = load_alpro_reference(reference_dir, "alpro_qa", AlproForVideoQuestionAnswering)
    with torch.no_grad():
        out = model(_videos(ref), ref.inp("input_ids"), ref.inp("attention_mask"), labels=ref.inp("answers"))
    outputs = {
        "text_embeds": out.text_embeds,
        "video_embeds": out.video_embeds,
        "fusion_last_hidden_state": out.multimodal_embeds,
        "logits": out.logits,
        "loss": out.loss,
    }
    return ref, outputs


@pytest.mark.parametrize("name", ["text_embeds", "video_embeds", "fusion_last_hidden_state", "logits", "loss"])
def test_qa_parity(qa: tuple[Reference, dict[str, torch.Tensor]], name: str) -> None:
    ref, outputs = qa
    torch.testing.assert_close(outputs[name], ref.out(name), rtol=0, atol=ATOL)


def test_qa_classify_answers_is_lavis_predict(reference_dir: Path) -> None:
    model, ref = load_alpro_reference(reference_dir, "alpro_qa", AlproForVideoQuestionAnswering)
    with torch.no_grad():
        logits = model.classify_answers(_videos(ref), ref.inp("input_ids"), ref.inp("attention_mask"))
    torch.testing.assert_close(logits, ref.out("logits"), rtol=0, atol=ATOL)
    expected = [model.config.id2label[i] for i in ref.out("logits").argmax(-1).tolist()]
    assert model.predict_answers(_videos(ref), ref.inp("input_ids"), ref.inp("attention_mask")) == expected


# ---------------------------------------------------------------------------------------------- processor
@pytest.mark.parametrize("name", ["alpro_retrieval", "alpro_qa"])
def test_processor_reproduces_lavis_inputs(reference_dir: Path, fixtures_dir: Path, name: str) -> None:
    """uint8 frames -> the fixture's normalised video; strings -> the ids LAVIS's tokenizer gave (max_length)."""
    from tests.common.reference import load_reference

    ref = load_reference(reference_dir, name)
    frames = ref.inp("video_uint8").permute(0, 2, 3, 4, 1)  # (B, T, H, W, 3)
    strings = ref.meta["inputs"].get("texts") or ref.meta["inputs"]["question_strings"]
    max_len = ref.inp("input_ids").shape[1]
    processor = tiny_processor(fixtures_dir, image_size=frames.shape[2], num_frames=frames.shape[1])
    out = processor(videos=list(frames), text=strings, text_mode="question", max_length=max_len)
    torch.testing.assert_close(out["pixel_values"], _videos(ref), rtol=0, atol=1e-6)
    assert torch.equal(out["input_ids"], ref.inp("input_ids"))
    assert torch.equal(out["attention_mask"], ref.inp("attention_mask"))
