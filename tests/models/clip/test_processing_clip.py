"""CLIP processor: byte-level BPE tokenizer built from local files (ids, truncation keeping <|endoftext|> last,
round trips), the CLIP image transform, the processor through AutoProcessor."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

from tests.common.processor_tester import ProcessorTesterMixin
from tests.models.clip.clip_test_utils import (
    CONTEXT,
    MERGES,
    VOCAB,
    random_image,
    tiny_processor,
    tiny_tokenizer,
    write_bpe_files,
)
from vl_hub.models.clip.image_processing_clip import ClipImageProcessor
from vl_hub.models.clip.processing_clip import (
    BOS_TOKEN,
    EOS_TOKEN,
    ClipProcessor,
    build_clip_tokenizer,
    byte_unicode_table,
    clip_vocab_from_merges,
)
from vl_hub.processing.transforms import ClipEvalTransform

SOT, EOT = VOCAB[BOS_TOKEN], VOCAB[EOS_TOKEN]


def word_ids(*words: str) -> list[int]:
    return [VOCAB[w + "</w>"] for w in words]


# ---------------------------------------------------------------------------------------------- tokenizer
def test_byte_table_is_a_bijection_onto_visible_characters() -> None:
    table = byte_unicode_table()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord("a")] == "a" and table[ord("!")] == "!"
    assert table[ord(" ")] == "Ġ" and table[0] == "Ā"  # chr(256 + k) for the unprintable bytes
    assert all(not c.isspace() for c in table.values())


def test_vocab_layout_puts_the_end_of_text_token_last() -> None:
    assert len(VOCAB) == 512 + len(MERGES) + 2
    assert VOCAB["a"] == 97 - 33 and VOCAB["a</w>"] == 256 + 97 - 33  # printable bytes start at '!'
    assert EOT == len(VOCAB) - 1 and SOT == len(VOCAB) - 2


def test_known_words_encode_to_their_merged_tokens() -> None:
    tok = tiny_tokenizer()
    ids = tok("A  Photo of\tthe CAT")["input_ids"]
    assert ids == [SOT, *word_ids("a", "photo", "of", "the", "cat"), EOT]
    assert tok.decode(ids, skip_special_tokens=True) == "a photo of the cat"


def test_unknown_words_fall_back_to_bytes() -> None:
    tok = tiny_tokenizer()
    ids = tok("zebra!")["input_ids"]
    table = byte_unicode_table()
    expected = [VOCAB[table[ord(c)]] for c in "zebr"] + [VOCAB["a</w>"], VOCAB["!</w>"]]
    assert ids == [SOT, *expected, EOT]


def test_long_text_is_truncated_keeping_end_of_text_last() -> None:
    tok = tiny_tokenizer()
    words = ["cat", "dog", "car", "bird"] * 8  # 32 words, far past the 16-token context
    ids = tok(" ".join(words), truncation=True, max_length=CONTEXT)["input_ids"]
    # OpenAI tokenize(truncate=True): tokens[:context] with the last one replaced by <|endoftext|>
    full = [SOT, *word_ids(*words), EOT]
    expected = full[:CONTEXT]
    expected[-1] = EOT
    assert ids == expected and len(ids) == CONTEXT


def test_processor_truncates_by_default_and_refuses_overlong_text_without_truncation() -> None:
    processor = tiny_processor()
    long_text = " ".join(["photo"] * 40)
    batch = processor(text=[long_text, "a cat"])
    assert batch["input_ids"].shape == (2, CONTEXT)
    assert batch["input_ids"][0, -1].item() == EOT and batch["input_ids"][0, 0].item() == SOT
    # the short text is right-padded with <|endoftext|> and masked
    assert batch["input_ids"][1].tolist() == [SOT, *word_ids("a", "cat"), EOT] + [EOT] * (CONTEXT - 4)
    assert batch["attention_mask"][1].tolist() == [1] * 4 + [0] * (CONTEXT - 4)
    with pytest.raises(ValueError, match="more than the context length 16"):
        processor(text=long_text, truncation=False)
    with pytest.raises(ValueError, match="max_length must be an int in"):
        processor(text="a cat", max_length=CONTEXT + 1)


def test_pad_to_max_length_like_openai() -> None:
    batch = tiny_processor()(text="the dog", padding="max_length")
    assert batch["input_ids"].shape == (1, CONTEXT)


def test_tokenizer_round_trip_through_save_and_auto(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    tok.save_pretrained(tmp_path)
    texts = ["a small red car", "The BIG dog of the picture", "zebra?"]
    expected = tok(texts)["input_ids"]
    for loaded in (AutoTokenizer.from_pretrained(tmp_path), build_clip_tokenizer(tmp_path, context_length=CONTEXT)):
        assert loaded(texts)["input_ids"] == expected
        assert loaded.model_max_length == CONTEXT
        assert (loaded.bos_token, loaded.eos_token) == (BOS_TOKEN, EOS_TOKEN)


def test_tokenizer_from_vocab_json_and_merges_txt(tmp_path: Path) -> None:
    folder = write_bpe_files(tmp_path / "bpe")
    texts = ["a photo of a bird", "red car!"]
    expected = tiny_tokenizer()(texts)["input_ids"]
    assert build_clip_tokenizer(folder)(texts)["input_ids"] == expected
    assert build_clip_tokenizer(folder / "vocab.json", folder / "merges.txt")(texts)["input_ids"] == expected


def test_tokenizer_from_openai_style_gzipped_merges(tmp_path: Path) -> None:
    path = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in MERGES) + "\n")
    tok = build_clip_tokenizer(path, context_length=CONTEXT)
    assert tok.get_vocab() == {**VOCAB, **{t: i for t, i in tok.get_vocab().items() if t not in VOCAB}}
    assert len(tok) == len(VOCAB)
    assert tok("the small bird")["input_ids"] == [SOT, *word_ids("the", "small", "bird"), EOT]


def test_tokenizer_source_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_clip_tokenizer(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="holds no tokenizer.json"):
        build_clip_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="lacks"):
        build_clip_tokenizer({"a": 0}, [])
    bad = tmp_path / "merges.txt"
    bad.write_text("#version: 0.2\na b c\n")
    with pytest.raises(ValueError, match="line 1"):
        build_clip_tokenizer(bad)
    with pytest.raises(ValueError, match="twice"):
        clip_vocab_from_merges([("a", "b"), ("a", "b")])


# ---------------------------------------------------------------------------------------------- images
def test_eval_transform_is_shorter_side_resize_and_center_crop() -> None:
    processor = ClipImageProcessor(image_size=32)
    images = [random_image(48, 40, seed=1), random_image(30, 70, seed=2)]
    pixels = processor(images)["pixel_values"]
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, ClipEvalTransform(32).batch(images), atol=0, rtol=0)
    # by hand for the first image: resize 40 -> 32 (48 -> 38), crop 3 px from the left
    resized = images[0].resize((38, 32), Image.Resampling.BICUBIC).crop((3, 0, 35, 32))
    raw = torch.from_numpy(np.asarray(resized, dtype=np.float32)).permute(2, 0, 1) / 255
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(3, 1, 1)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(3, 1, 1)
    torch.testing.assert_close(pixels[0], (raw - mean) / std, atol=1e-6, rtol=0)


def test_grayscale_rgba_and_arrays_become_rgb() -> None:
    processor = ClipImageProcessor(image_size=32)
    gray = random_image(40, 40).convert("L")
    rgba = random_image(40, 40).convert("RGBA")
    array = np.asarray(random_image(40, 40))
    assert processor([gray, rgba, array])["pixel_values"].shape == (3, 3, 32, 32)


def test_videos_and_training_crops() -> None:
    processor = ClipImageProcessor(image_size=32, seed=0)
    video = [random_image(40, 48, seed=i) for i in range(3)]
    assert processor(videos=[video, video])["pixel_values"].shape == (2, 3, 3, 32, 32)
    augmented = processor(videos=[video, video], do_augment=True)["pixel_values"]
    assert augmented.shape == (2, 3, 3, 32, 32)
    # the same frames in one video get the same crop: identical frames stay identical
    same = processor(videos=[[video[0], video[0]]], do_augment=True)["pixel_values"]
    torch.testing.assert_close(same[0, 0], same[0, 1], atol=0, rtol=0)
    assert processor(random_image(), do_augment=True)["pixel_values"].shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({}, ValueError, "no input"),
        ({"images": []}, ValueError, "empty list"),
        ({"images": [random_image()], "videos": [[random_image()]]}, ValueError, "either images or videos"),
        ({"videos": [[random_image()], [random_image(), random_image()]]}, ValueError, "same number of frames"),
        ({"images": [3]}, TypeError, "images[0] is int"),
    ],
)
def test_image_processor_bad_input(kwargs: dict, error: type, fragment: str) -> None:
    with pytest.raises(error) as info:
        ClipImageProcessor(image_size=32)(**kwargs)
    assert fragment in str(info.value)


def test_image_processor_round_trip(tmp_path: Path) -> None:
    processor = ClipImageProcessor(image_size=48, min_scale=0.8)
    processor.save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is ClipImageProcessor and loaded.to_dict() == processor.to_dict()
    with pytest.raises(TypeError, match="unknown settings"):
        ClipImageProcessor(crop_pct=0.9)


# ---------------------------------------------------------------------------------------------- processor
class TestClipProcessor(ProcessorTesterMixin):
    auto_class = AutoProcessor

    def get_processor(self, tmp_path: Path) -> ClipProcessor:
        return tiny_processor()

    def get_sample_inputs(self) -> dict[str, Any]:
        return {"images": [random_image(), random_image(seed=3)], "text": ["a photo of a cat", "a red car", "dog"]}


def test_processor_outputs_and_decoding() -> None:
    processor = tiny_processor()
    batch = processor(images=random_image(), text=["a photo of a cat", "a big dog"])
    assert set(batch) == {"pixel_values", "input_ids", "attention_mask"}
    assert batch["pixel_values"].shape == (1, 3, 32, 32) and batch["input_ids"].dtype == torch.int64
    assert processor.batch_decode(batch["input_ids"]) == ["a photo of a cat", "a big dog"]
    assert processor.eos_token_id == EOT and processor.bos_token_id == SOT
    with pytest.raises(ValueError, match="nothing to process"):
        processor()
    with pytest.raises(TypeError, match="text\\[1\\] must be a string"):
        processor(text=["a", 3])


def test_processor_rejects_a_non_clip_tokenizer(fixtures_dir: Path) -> None:
    from transformers import BertTokenizerFast

    vocab = {line.rstrip("\n"): i for i, line in enumerate((fixtures_dir / "bert_vocab.txt").open())}
    with pytest.raises(ValueError, match="CLIP needs"):
        ClipProcessor(ClipImageProcessor(), BertTokenizerFast(vocab=vocab))
