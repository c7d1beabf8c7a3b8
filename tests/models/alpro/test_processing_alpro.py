"""ALPRO processor on real files (mp4 written here) and in memory: frames decoded, sampling, short videos, errors,
training augmentation, text, Auto round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from tests.common.processor_tester import ProcessorTesterMixin
from tests.models.alpro.alpro_test_utils import tiny_alpro_config, tiny_processor
from tests.processing.conftest import Mp4Maker, frame_code
from vl_hub.models.alpro.processing_alpro import AlproProcessor, build_alpro_tokenizer
from vl_hub.models.alpro.video_processing_alpro import AlproVideoProcessor
from vl_hub.processing.video import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from vl_hub.processing.video_backends import VideoDecodingError, available_backends

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MEAN = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)
STD = torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1)


def _normalised(frames: np.ndarray) -> torch.Tensor:
    """``uint8 (T, H, W, 3)`` -> ``(T, 3, H, W)`` as LAVIS's eval processor computes it."""
    return (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD


def _codes(pixel_values: torch.Tensor) -> list[int]:
    """Frame numbers of a clip ``(T, 3, S, S)`` of :func:`coded_frame` frames (undo the normalisation first)."""
    pixels = ((pixel_values * STD + MEAN) * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return [frame_code(f) for f in pixels]


class TestAlproProcessorRoundTrip(ProcessorTesterMixin):
    auto_class = AutoProcessor

    def get_processor(self, tmp_path: Path) -> AlproProcessor:
        return tiny_processor(FIXTURES, num_frames=3, sampling="middle")

    def get_sample_inputs(self) -> dict[str, Any]:
        frames = np.random.default_rng(0).integers(0, 256, (2, 3, 40, 36, 3), dtype=np.uint8)
        return {"videos": list(frames), "text": ["A dog runs.", "what is the man cooking ?"], "text_mode": "caption"}


def test_saved_processor_keeps_every_setting(tmp_path: Path) -> None:
    processor = tiny_processor(FIXTURES, num_frames=3, sampling="alpro_uniform", train_sampling="alpro_rand", seed=7)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert loaded.video_processor.to_dict() == processor.video_processor.to_dict()
    assert loaded.max_txt_len == 16 and loaded.num_frames == 3 and loaded.image_size == 32
    assert AlproVideoProcessor.from_pretrained(tmp_path).to_dict() == processor.video_processor.to_dict()


# ---------------------------------------------------------------------------------------------- real files
def test_mp4_decodes_to_the_expected_frames(make_mp4: Mp4Maker) -> None:
    path = make_mp4("alpro_24.mp4", num_frames=24)
    processor = tiny_processor(FIXTURES)  # 4 frames, uniform, 32 px
    frames = processor.video_processor.load_video(path)
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    assert [frame_code(f) for f in frames] == [0, 6, 12, 18]  # LAVIS uniform: floor(k * 24 / 4)
    out = processor(videos=[str(path), path], text="a dog")
    assert out["pixel_values"].shape == (2, 4, 3, 32, 32)
    torch.testing.assert_close(out["pixel_values"][0], _normalised(frames), atol=1e-6, rtol=0)
    assert torch.equal(out["pixel_values"][0], out["pixel_values"][1])


@pytest.mark.parametrize("backend", [b for b in ("decord", "pyav") if b in available_backends()])
def test_backends_give_the_same_pixel_values(make_mp4: Mp4Maker, backend: str) -> None:
    path = make_mp4("alpro_24.mp4", num_frames=24)
    reference = tiny_processor(FIXTURES, video_backend="pyav")(videos=str(path))["pixel_values"]
    assert torch.equal(tiny_processor(FIXTURES, video_backend=backend)(videos=str(path))["pixel_values"], reference)


def test_video_shorter_than_the_frame_count_repeats_frames(make_mp4: Mp4Maker) -> None:
    """3 frames, 8 requested: every frame once, then the last repeated (8 frames always come back, so clips batch)."""
    path = make_mp4("alpro_short3.mp4", num_frames=3)
    processor = tiny_processor(FIXTURES, num_frames=8)
    out = processor(videos=[str(path), str(make_mp4("alpro_24.mp4", num_frames=24))])["pixel_values"]
    assert out.shape == (2, 8, 3, 32, 32)
    assert _codes(out[0]) == [0, 1, 2, 2, 2, 2, 2, 2]
    assert _codes(out[1]) == [0, 3, 6, 9, 12, 15, 18, 21]


def test_training_sampling_is_headtail_and_seeded(make_mp4: Mp4Maker) -> None:
    path = str(make_mp4("alpro_24.mp4", num_frames=24))
    processor = tiny_processor(FIXTURES, num_frames=4, randaugment_num_ops=0, hflip_prob=0.0, min_scale=1.0)
    for seed in range(5):
        out = processor(videos=path, do_augment=True, generator=np.random.default_rng(seed))["pixel_values"][0]
        # full-frame crop (scale 1, ratio 1 on a square decode), no flip, no RandAugment: the codes stay readable
        codes = _codes(out)
        assert codes[:2] == sorted(codes[:2]) and max(codes[:2]) < 12 <= min(codes[2:]), codes
    a = processor(videos=path, do_augment=True, generator=np.random.default_rng(1))["pixel_values"]
    b = processor(videos=path, do_augment=True, generator=np.random.default_rng(1))["pixel_values"]
    assert torch.equal(a, b)


def test_missing_and_corrupt_files_raise_naming_them(tmp_path: Path, make_mp4: Mp4Maker) -> None:
    processor = tiny_processor(FIXTURES)
    missing = tmp_path / "no_such_video.mp4"
    with pytest.raises(FileNotFoundError, match="no_such_video.mp4"):
        processor(videos=[str(make_mp4("alpro_24.mp4", num_frames=24)), str(missing)])
    corrupt = tmp_path / "corrupt_video.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(VideoDecodingError, match="corrupt_video.mp4"):
        processor(videos=str(corrupt))
    empty = tmp_path / "empty_video.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodingError, match="empty_video.mp4"):
        processor(videos=str(empty))


# ---------------------------------------------------------------------------------------------- in memory
def test_training_augmentation_is_one_plan_per_clip() -> None:
    """A clip of identical frames stays identical after crop, flip and RandAugment (one plan for all frames), while
    different calls draw different plans."""
    still = np.random.default_rng(0).integers(0, 256, (1, 48, 48, 3), dtype=np.uint8).repeat(4, axis=0)
    processor = tiny_processor(FIXTURES, randaugment_num_ops=2)
    outputs = []
    for seed in range(6):
        clip = processor(videos=still, do_augment=True, generator=np.random.default_rng(seed))["pixel_values"][0]
        assert clip.shape == (4, 3, 32, 32)
        assert all(torch.equal(clip[0], clip[t]) for t in range(1, 4))
        outputs.append(clip[0])
    assert len({tuple(o.flatten()[:64].tolist()) for o in outputs}) > 1
    # evaluation is deterministic and equals the plain resize + normalisation
    eval_a, eval_b = processor(videos=still)["pixel_values"], processor(videos=still)["pixel_values"]
    assert torch.equal(eval_a, eval_b)


def test_frames_at_another_size_are_resized_bilinearly() -> None:
    frames = np.random.default_rng(1).integers(0, 256, (4, 40, 56, 3), dtype=np.uint8)
    out = tiny_processor(FIXTURES)(videos=frames)["pixel_values"][0]
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(frames).permute(0, 3, 1, 2).float(), size=(32, 32), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(out, (expected / 255.0 - MEAN) / STD, atol=1e-5, rtol=0)


def test_text_is_normalised_and_padded_to_max_length() -> None:
    processor = tiny_processor(FIXTURES)
    out = processor(text=["A man (is) COOKING!", "a dog"], text_mode="question")
    assert out["input_ids"].shape == (2, 16) and "token_type_ids" not in out
    assert processor.normalize_text("A man (is) COOKING!", "question") == ["a man is cooking"]
    assert processor.batch_decode(out["input_ids"]) == ["a man is cooking", "a dog"]
    assert out["input_ids"][0, 0].item() == 2 and out["attention_mask"][1].tolist() == [1, 1, 1, 1] + [0] * 12
    assert processor(text="a dog", text_mode=None, max_length=8)["input_ids"].shape == (1, 8)


def test_processor_output_feeds_the_model() -> None:
    from vl_hub.models.alpro.modeling_alpro import AlproForVideoQuestionAnswering

    torch.manual_seed(0)
    model = AlproForVideoQuestionAnswering(tiny_alpro_config()).eval()
    frames = np.random.default_rng(2).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    inputs = tiny_processor(FIXTURES)(videos=list(frames), text=["what is it", "who cooks"], text_mode="question")
    with torch.no_grad():
        answers = model.predict_answers(**inputs)
    assert len(answers) == 2 and set(answers) <= set(model.config.id2label.values())


def test_bad_processor_inputs_raise_clear_errors(tmp_path: Path) -> None:
    processor = tiny_processor(FIXTURES)
    frames = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="ALPRO takes videos"):
        processor(images=frames[0])
    with pytest.raises(ValueError, match="nothing to process"):
        processor()
    with pytest.raises(ValueError, match="same number of frames"):
        processor(videos=[frames, frames[:3]])
    with pytest.raises(ValueError, match="uint8"):
        processor(videos=frames.astype(np.float32))
    with pytest.raises(ValueError, match="not a sampling mode"):
        AlproVideoProcessor(sampling="rand")
    with pytest.raises(TypeError, match="unknown settings"):
        AlproVideoProcessor(n_frms=8)
    with pytest.raises(ValueError, match="empty list"):
        processor(videos=[])
    with pytest.raises(FileNotFoundError, match="missing_vocab.txt"):
        build_alpro_tokenizer(tmp_path / "missing_vocab.txt")
