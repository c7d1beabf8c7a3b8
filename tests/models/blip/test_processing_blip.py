"""BLIP processor: LAVIS token ids and pixels from the golden fixtures, every image mode, training
augmentation, video frames, truncation, decoding, errors, and the save -> Auto*.from_pretrained round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

import vl_hub  # noqa: F401  (registers the BLIP processor with the Auto classes)
from tests.common.processor_tester import ProcessorTesterMixin
from tests.common.reference import load_reference
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.image_processing_blip import BlipImageProcessor, VlHubBlipImageProcessor
from vl_hub.models.blip.processing_blip import BlipProcessor, VlHubBlipProcessor, build_blip_tokenizer
from vl_hub.processing.image import InvalidImageError

VOCAB = Path(__file__).resolve().parents[2] / "fixtures" / "bert_vocab.txt"
SIZE = 32


def _image(seed: int, height: int = 40, width: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_blip_tokenizer(VOCAB)


@pytest.fixture()
def processor(tokenizer: Any) -> VlHubBlipProcessor:
    return BlipProcessor(BlipImageProcessor(image_size=SIZE), tokenizer)


# ---------------------------------------------------------------------------------------------- round trips


class TestBlipProcessorRoundTrip(ProcessorTesterMixin):
    auto_class = AutoProcessor

    def get_processor(self, tmp_path: Path) -> VlHubBlipProcessor:
        image_processor = BlipImageProcessor(image_size=SIZE, image_mean=(0.5, 0.4, 0.3), image_std=(0.2, 0.25, 0.3))
        return BlipProcessor(image_processor, build_blip_tokenizer(VOCAB), max_txt_len=12, prompt="a picture of ")

    def get_sample_inputs(self) -> dict[str, Any]:
        return {
            "images": [_image(0), _image(1, 30, 20)],
            "text": ["A dog (brown) running on the grass!", "two people riding horses on the beach, at dusk"],
            "text_mode": "caption",
        }

    def test_settings_and_sub_processors_survive(self, tmp_path: Path) -> None:
        processor = self.get_processor(tmp_path)
        processor.save_pretrained(tmp_path)
        loaded = AutoProcessor.from_pretrained(tmp_path)
        assert isinstance(loaded, VlHubBlipProcessor)
        assert (loaded.max_txt_len, loaded.prompt, loaded.max_words) == (12, "a picture of ", 50)
        assert loaded.image_processor.to_dict() == processor.image_processor.to_dict()
        assert (loaded.bos_token_id, loaded.enc_token_id, loaded.tokenizer.enc_token_id) == (230, 231, 231)

        image_processor = AutoImageProcessor.from_pretrained(tmp_path)
        assert type(image_processor) is VlHubBlipImageProcessor
        assert image_processor.to_dict() == processor.image_processor.to_dict()
        images = self.get_sample_inputs()["images"]
        assert torch.equal(image_processor(images).pixel_values, processor(images=images).pixel_values)

        tok = AutoTokenizer.from_pretrained(tmp_path)
        assert len(tok) == 232 and tok.bos_token == "[DEC]" and tok.convert_tokens_to_ids("[ENC]") == 231
        texts = ["a dog on the grass", "[ENC] two cats"]
        assert tok(texts)["input_ids"] == processor.tokenizer(texts)["input_ids"]

    def test_image_processor_alone(self, tmp_path: Path) -> None:
        image_processor = BlipImageProcessor(image_size=SIZE, do_augment=True, seed=3, randaugment_magnitude=7)
        image_processor.save_pretrained(tmp_path)
        saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
        assert saved["image_processor_type"] == "VlHubBlipImageProcessor"
        assert (saved["image_size"], saved["do_augment"], saved["seed"], saved["randaugment_magnitude"]) == (
            SIZE,
            True,
            3,
            7.0,
        )
        loaded = AutoImageProcessor.from_pretrained(tmp_path)
        assert type(loaded) is VlHubBlipImageProcessor and loaded.to_dict() == image_processor.to_dict()
        # Same seed, same augmentation stream.
        assert torch.equal(loaded(_image(5)).pixel_values, image_processor(_image(5)).pixel_values)
        override = AutoImageProcessor.from_pretrained(tmp_path, image_size=16, do_augment=False)
        assert (override.image_size, override.do_augment) == (16, False)

    def test_transformers_blip_checkpoints_not_taken_over(self, tmp_path: Path) -> None:
        # A transformers BLIP folder (as Salesforce/blip-* on the Hub) must still load transformers' classes.
        from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
        from transformers.models.blip.processing_blip import BlipProcessor as TransformersBlipProcessor

        config = {
            "image_processor_type": "BlipImageProcessor",
            "processor_class": "BlipProcessor",
            "do_normalize": True,
            "do_resize": True,
            "size": {"height": 384, "width": 384},
        }
        (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
        build_blip_tokenizer(VOCAB).save_pretrained(tmp_path)
        assert type(AutoImageProcessor.from_pretrained(tmp_path, backend="pil")) is BlipImageProcessorPil
        assert type(AutoProcessor.from_pretrained(tmp_path, backend="pil")) is TransformersBlipProcessor

    def test_registered_for_blip_config(self) -> None:
        from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

        assert PROCESSOR_MAPPING[BlipConfig] is VlHubBlipProcessor
        assert IMAGE_PROCESSOR_MAPPING[BlipConfig]["pil"] is VlHubBlipImageProcessor


# ---------------------------------------------------------------------------------------------- tokenizer


def test_tokenizer_special_tokens_match_reference(reference_dir: Path, tokenizer: Any) -> None:
    spec = json.loads((reference_dir / "blip_feature_extractor.json").read_text())["tokenizer"]
    assert len(tokenizer) == spec["base_vocab_size"] + 2
    assert tokenizer.bos_token == spec["bos_token"] and tokenizer.bos_token_id == spec["bos_token_id"]
    assert tokenizer.enc_token_id == spec["enc_token_id"] == tokenizer.convert_tokens_to_ids(spec["enc_token"])
    for name in ("pad", "unk", "cls", "sep", "mask"):
        assert getattr(tokenizer, f"{name}_token_id") == spec[f"{name}_token_id"], name


def test_tokenizer_reads_the_vocab(tokenizer: Any, tmp_path: Path) -> None:
    ids = tokenizer("a dog running on the grass", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids and len(ids) == 6
    assert tokenizer.convert_ids_to_tokens(ids) == ["a", "dog", "running", "on", "the", "grass"]
    assert tokenizer("A DOG")["input_ids"] == tokenizer("a dog")["input_ids"]  # lower-case
    # A folder holding vocab.txt, and a folder saved by save_pretrained, give the same tokenizer.
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "vocab.txt").write_text(VOCAB.read_text())
    tokenizer.save_pretrained(tmp_path / "saved")
    for source in (tmp_path / "vocab", tmp_path / "saved"):
        other = build_blip_tokenizer(source)
        assert len(other) == 232 and other.enc_token_id == 231 and other.bos_token_id == 230
        assert other("a dog running")["input_ids"] == tokenizer("a dog running")["input_ids"]


# (fixture, strings key, ids key, mask key, token put at position 0 by the LAVIS head, max_length)
REFERENCE_TEXTS = [
    ("blip_feature_extractor", "text_input_strings", "text_input_ids", "text_attention_mask", None, 35),
    ("blip_feature_extractor", "text_input_strings", "multimodal_input_ids", "text_attention_mask", "enc", 35),
    ("blip_caption", "text_input_strings", "decoder_input_ids", "decoder_attention_mask", "bos", 40),
    ("blip_vqa", "question_strings", "question_input_ids", "question_attention_mask", "enc", 35),
    ("blip_vqa", "answer_list", "answer_list_ids", "answer_list_attention_mask", "bos", 35),
    ("blip_image_text_matching", "pair_text_strings", "itm_input_ids", "itm_attention_mask", "enc", 35),
    ("blip_image_text_matching", "itc_text_strings", "itc_input_ids", "itc_attention_mask", None, 35),
    ("blip_nlvr", "text_strings", "input_ids", "attention_mask", "enc", 35),
]


@pytest.mark.parametrize(("name", "strings", "ids", "mask", "first", "max_length"), REFERENCE_TEXTS)
def test_token_ids_equal_lavis(
    reference_dir: Path,
    processor: VlHubBlipProcessor,
    name: str,
    strings: str,
    ids: str,
    mask: str,
    first: str | None,
    max_length: int,
) -> None:
    ref = load_reference(reference_dir, name)
    out = processor(text=ref.meta["inputs"][strings], max_length=max_length)
    assert set(out.keys()) == {"input_ids", "attention_mask"}
    input_ids = out["input_ids"].clone()
    assert (input_ids[:, 0] == processor.cls_token_id).all()
    if first == "enc":
        input_ids[:, 0] = processor.enc_token_id
    elif first == "bos":
        input_ids[:, 0] = processor.bos_token_id
    assert input_ids.dtype == torch.int64
    assert torch.equal(input_ids, ref.inp(ids))
    assert torch.equal(out["attention_mask"], ref.inp(mask))


def test_special_id_properties(processor: VlHubBlipProcessor) -> None:
    assert (processor.pad_token_id, processor.cls_token_id, processor.sep_token_id) == (0, 2, 3)
    assert (processor.bos_token_id, processor.dec_token_id, processor.enc_token_id) == (230, 230, 231)
    assert processor.eos_token_id == processor.sep_token_id


# ---------------------------------------------------------------------------------------------- images


def _hwc(pixels_uint8: torch.Tensor) -> list[np.ndarray]:
    return [image.permute(1, 2, 0).numpy() for image in pixels_uint8]


@pytest.mark.parametrize(
    ("name", "raw", "normalised"),
    [
        ("blip_feature_extractor", "image_uint8", "image"),
        ("blip_caption", "image_uint8", "image"),
        ("blip_vqa", "image_uint8", "image"),
        ("blip_image_text_matching", "image_uint8", "image"),
        ("blip_nlvr", "image0_uint8", "image0"),
        ("blip_nlvr", "image1_uint8", "image1"),
    ],
)
def test_eval_pixels_equal_lavis(
    reference_dir: Path, processor: VlHubBlipProcessor, name: str, raw: str, normalised: str
) -> None:
    ref = load_reference(reference_dir, name)
    arrays = _hwc(ref.inp(raw))
    pixel_values = processor(images=arrays).pixel_values
    assert pixel_values.dtype == torch.float32 and pixel_values.shape == ref.inp(normalised).shape
    torch.testing.assert_close(pixel_values, ref.inp(normalised), atol=1e-6, rtol=0)
    # PIL input, and a (B, H, W, 3) array, give the same tensor.
    as_pil = processor(images=[Image.fromarray(a) for a in arrays]).pixel_values
    assert torch.equal(as_pil, pixel_values)
    assert torch.equal(processor(images=np.stack(arrays)).pixel_values, pixel_values)


def test_resize_is_bicubic_to_square(processor: VlHubBlipProcessor) -> None:
    array = _image(3, 45, 70)
    expected = np.asarray(Image.fromarray(array).resize((SIZE, SIZE), Image.Resampling.BICUBIC), dtype=np.float32)
    mean = np.array(processor.image_processor.image_mean, dtype=np.float32)
    std = np.array(processor.image_processor.image_std, dtype=np.float32)
    expected = ((expected / 255 - mean) / std).transpose(2, 0, 1)
    got = processor(images=array).pixel_values
    assert got.shape == (1, 3, SIZE, SIZE)
    np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-5)


def test_every_image_mode_becomes_rgb(processor: VlHubBlipProcessor, tmp_path: Path) -> None:
    rgb = _image(7, 24, 24)
    gray = Image.fromarray(rgb[..., 0], "L")
    rgba_array = np.concatenate([rgb, np.full((24, 24, 1), 128, np.uint8)], axis=-1)
    composited = ((rgb.astype(np.uint32) * 128 + 255 * 127 + 127) // 255).astype(np.uint8)  # over white
    palette = Image.fromarray(rgb).convert("P")
    grey16 = (rgb[..., 1].astype(np.uint16) * 257).astype(np.uint16)  # exactly 8-bit values scaled to 16 bits
    cases = {
        "L": (gray, gray.convert("RGB")),
        "1": (gray.convert("1"), gray.convert("1").convert("RGB")),
        "RGBA": (Image.fromarray(rgba_array, "RGBA"), Image.fromarray(composited)),
        "RGBA array": (rgba_array, Image.fromarray(composited)),
        "LA": (Image.fromarray(rgba_array, "RGBA").convert("LA"), None),
        "P": (palette, palette.convert("RGB")),
        "I;16": (Image.fromarray(grey16), Image.fromarray(rgb[..., 1], "L").convert("RGB")),
        "uint16 array": (grey16, Image.fromarray(rgb[..., 1], "L").convert("RGB")),
        "2-D array": (rgb[..., 2], Image.fromarray(rgb[..., 2], "L").convert("RGB")),
    }
    for label, (source, expected_rgb) in cases.items():
        got = processor(images=source).pixel_values
        assert got.shape == (1, 3, SIZE, SIZE) and got.dtype == torch.float32, label
        assert torch.isfinite(got).all(), label
        if expected_rgb is not None:
            assert torch.equal(got, processor(images=expected_rgb).pixel_values), label
    # Paths decode to the same pixels as the array.
    path = tmp_path / "image.png"
    Image.fromarray(rgb).save(path)
    assert torch.equal(processor(images=[str(path), path]).pixel_values, processor(images=[rgb, rgb]).pixel_values)


def test_train_mode_is_seeded(tokenizer: Any) -> None:
    images = [_image(0), _image(1)]

    def run(seed: int | None) -> list[torch.Tensor]:
        image_processor = BlipImageProcessor(image_size=SIZE, do_augment=True, seed=seed)
        return [image_processor(images).pixel_values for _ in range(2)]

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], first[1])  # the stream advances between calls
    eval_pixels = BlipImageProcessor(image_size=SIZE)(images).pixel_values
    assert first[0].shape == eval_pixels.shape and not torch.equal(first[0], eval_pixels)
    # Without a seed, torch's global RNG governs the draws.
    torch.manual_seed(5)
    a = run(None)[0]
    torch.manual_seed(5)
    assert torch.equal(a, run(None)[0])
    # The per-call override, through the processor.
    processor = BlipProcessor(BlipImageProcessor(image_size=SIZE, seed=0), tokenizer)
    assert torch.equal(processor(images=images).pixel_values, eval_pixels)
    assert not torch.equal(processor(images=images, do_augment=True).pixel_values, eval_pixels)


# ---------------------------------------------------------------------------------------------- videos


def test_video_frames(processor: VlHubBlipProcessor) -> None:
    frames = [_image(i, 36, 48) for i in range(4)]
    per_image = processor(images=frames).pixel_values  # (4, 3, S, S)
    as_lists = processor(videos=[frames, frames[::-1]]).pixel_values
    assert as_lists.shape == (2, 4, 3, SIZE, SIZE) and as_lists.dtype == torch.float32
    assert torch.equal(as_lists[0], per_image) and torch.equal(as_lists[1], per_image.flip(0))
    stacked = np.stack(frames)  # (T, H, W, 3)
    assert torch.equal(processor(videos=[stacked, stacked[::-1]]).pixel_values, as_lists)
    assert torch.equal(processor(videos=np.stack([stacked, stacked[::-1]])).pixel_values, as_lists)
    assert torch.equal(processor(videos=stacked).pixel_values, as_lists[:1])  # one video
    assert torch.equal(processor(videos=frames).pixel_values, as_lists[:1])  # one video as its frame list
    with_text = processor(videos=[frames, frames], text=["a video", "another one"])
    assert with_text.pixel_values.shape == (2, 4, 3, SIZE, SIZE) and with_text.input_ids.shape[0] == 2


def test_video_frames_share_one_augmentation() -> None:
    image_processor = BlipImageProcessor(image_size=SIZE, do_augment=True, seed=0)
    frame = _image(9)
    pixels = image_processor(videos=[[frame] * 3, [frame] * 3]).pixel_values
    assert pixels.shape == (2, 3, 3, SIZE, SIZE)
    assert torch.equal(pixels[0, 0], pixels[0, 1]) and torch.equal(pixels[0, 0], pixels[0, 2])
    assert not torch.equal(pixels[0, 0], pixels[1, 0])  # each video draws its own


# ---------------------------------------------------------------------------------------------- text


def test_truncation_keeps_sep_last(processor: VlHubBlipProcessor) -> None:
    long_text = " ".join(["a dog running on the grass"] * 20)  # 120 words
    out = processor(text=[long_text, "a dog"], max_length=8)
    assert out.input_ids.shape == (2, 8)
    assert out.input_ids[0, -1].item() == processor.sep_token_id and out.attention_mask[0].all()
    assert out.input_ids[1].tolist() == [2, 16, 55, 3, 0, 0, 0, 0]
    default = processor(text=long_text)  # max_txt_len
    assert default.input_ids.shape == (1, processor.max_txt_len) and default.input_ids[0, -1].item() == 3


def test_text_modes_and_prompt(processor: VlHubBlipProcessor, tokenizer: Any) -> None:
    caption = processor(text="A Dog (brown) runs!  On the grass.", text_mode="caption", prompt="a picture of ")
    expected = tokenizer("a picture of a dog brown runs on the grass", return_tensors="pt")["input_ids"]
    assert torch.equal(caption.input_ids, expected)
    question = processor(text="What color is the cat's (left) ear?", text_mode="question")
    assert torch.equal(
        question.input_ids, tokenizer("what color is the cat's left ear?", return_tensors="pt")["input_ids"]
    )
    raw = processor(text="two people riding horses on the beach .")
    assert raw.input_ids[0, -2].item() == tokenizer.convert_tokens_to_ids(".")  # no normaliser by default
    # The processor's own prompt applies in caption mode only.
    captioner = BlipProcessor(processor.image_processor, tokenizer, prompt="a picture of ")
    assert torch.equal(
        captioner(text="a dog", text_mode="caption").input_ids,
        tokenizer("a picture of a dog", return_tensors="pt")["input_ids"],
    )
    assert torch.equal(captioner(text="a dog").input_ids, tokenizer("a dog", return_tensors="pt")["input_ids"])
    # Generation start: the prompt alone, once per image.
    start = captioner(images=[_image(0), _image(1)], prompt="a picture of ")
    assert start.input_ids.tolist() == [[2, 16, 74, 19, 3]] * 2 and start.pixel_values.shape[0] == 2


def test_decode_strips_special_tokens_and_prompt(tokenizer: Any) -> None:
    processor = BlipProcessor(BlipImageProcessor(image_size=SIZE), tokenizer, prompt="A picture of ")
    generated = torch.tensor([[230, 16, 74, 19, 16, 55, 120, 3, 0], [230, 16, 74, 19, 82, 57, 220, 3, 0]])
    assert processor.batch_decode(generated) == ["a picture of a dog playing", "a picture of two cats"]
    assert processor.batch_decode(generated, prompt=True) == ["a dog playing", "two cats"]
    assert processor.batch_decode(generated, prompt="a picture ") == ["of a dog playing", "of two cats"]
    assert processor.decode(generated[1], prompt=True) == "two cats"
    assert processor.decode([231, 2, 16, 55, 3]) == "a dog"


def test_return_tensors_np(processor: VlHubBlipProcessor) -> None:
    out = processor(images=[_image(0)], text=["a dog"], return_tensors="np")
    assert isinstance(out["pixel_values"], np.ndarray) and out["pixel_values"].dtype == np.float32
    assert isinstance(out["input_ids"], np.ndarray) and out["input_ids"].tolist() == [[2, 16, 55, 3]]
    assert "token_type_ids" not in out


# ---------------------------------------------------------------------------------------------- errors


def test_bad_input_is_named(processor: VlHubBlipProcessor, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to process"):
        processor()
    missing = tmp_path / "missing.jpg"
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        processor(images=str(missing))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not an image at all")
    with pytest.raises(InvalidImageError, match="corrupt.jpg"):
        processor(images=[corrupt])
    with pytest.raises(ValueError, match="images is an empty list"):
        processor(images=[])
    with pytest.raises(ValueError, match="text is an empty list"):
        processor(text=[])
    with pytest.raises(ValueError, match="videos is an empty list"):
        processor(videos=[])
    with pytest.raises(ValueError, match="same number of frames"):
        processor(videos=[[_image(0)] * 2, [_image(1)] * 3])
    with pytest.raises(ValueError, match="videos="):
        processor(images=[[_image(0), _image(1)]])
    with pytest.raises(ValueError, match="either images or videos"):
        processor(images=_image(0), videos=[_image(0)])
    with pytest.raises(TypeError, match=r"text\[1\] must be a string"):
        processor(text=["a dog", 3])
    with pytest.raises(ValueError, match="text_mode"):
        processor(text="a dog", text_mode="answer")
    with pytest.raises(ValueError, match="channel-first"):
        processor(images=np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(TypeError, match="unknown settings"):
        BlipImageProcessor(img_size=32)


def test_tokenizer_without_blip_tokens_is_refused(tmp_path: Path) -> None:
    from transformers import BertTokenizerFast

    vocab = {line.rstrip("\n"): i for i, line in enumerate(VOCAB.read_text().splitlines(keepends=True))}
    plain = BertTokenizerFast(vocab=vocab)
    with pytest.raises(ValueError, match="build_blip_tokenizer"):
        BlipProcessor(BlipImageProcessor(image_size=SIZE), plain)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_blip_tokenizer(tmp_path / "nowhere")


def test_processor_pickles_for_dataloader_workers(tokenizer: Any) -> None:
    import pickle

    processor = BlipProcessor(BlipImageProcessor(image_size=SIZE, do_augment=True, seed=4), tokenizer)
    copy = pickle.loads(pickle.dumps(processor))
    inputs = {"images": [_image(0)], "text": ["a dog"]}
    a, b = processor(**inputs), copy(**inputs)
    assert torch.equal(a.pixel_values, b.pixel_values) and torch.equal(a.input_ids, b.input_ids)
