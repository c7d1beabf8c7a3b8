"""ALBEF processor: LAVIS token ids and pixels of every ALBEF fixture, the save -> AutoProcessor round trip, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, AutoProcessor

import vl_hub  # noqa: F401  (registers the ALBEF processor with the Auto classes)
from tests.common.model_tester import assert_raises_clear
from tests.common.processor_tester import ProcessorTesterMixin
from tests.common.reference import load_reference
from vl_hub.models.albef.configuration_albef import AlbefConfig
from vl_hub.models.albef.processing_albef import (
    AlbefImageProcessor,
    AlbefProcessor,
    build_albef_tokenizer,
)
from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
from vl_hub.models.blip.processing_blip import build_blip_tokenizer
from vl_hub.processing.text import pre_question

VOCAB = Path(__file__).resolve().parents[2] / "fixtures" / "bert_vocab.txt"


def _image(seed: int, height: int = 40, width: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def processor() -> AlbefProcessor:
    return AlbefProcessor(AlbefImageProcessor(image_size=32), build_albef_tokenizer(VOCAB))


class TestAlbefProcessorRoundTrip(ProcessorTesterMixin):
    auto_class = AutoProcessor

    def get_processor(self, tmp_path: Path) -> AlbefProcessor:
        image_processor = AlbefImageProcessor(image_size=32, image_mean=(0.5, 0.4, 0.3), image_std=(0.2, 0.25, 0.3))
        return AlbefProcessor(image_processor, build_albef_tokenizer(VOCAB), max_txt_len=12, max_words=20)

    def get_sample_inputs(self) -> dict[str, Any]:
        return {
            "images": [_image(0), _image(1, 30, 20)],
            "text": ["What is the man (left) holding?", "how many dogs are there"],
            "text_mode": "question",
        }

    def test_settings_and_sub_processors_survive(self, tmp_path: Path) -> None:
        processor = self.get_processor(tmp_path)
        processor.save_pretrained(tmp_path)
        loaded = AutoProcessor.from_pretrained(tmp_path)
        assert type(loaded) is AlbefProcessor
        assert (loaded.max_txt_len, loaded.max_words, loaded.prompt) == (12, 20, "")
        assert loaded.image_processor.to_dict() == processor.image_processor.to_dict()
        assert len(loaded.tokenizer) == 230 and (loaded.bos_token_id, loaded.mask_token_id) == (2, 4)
        assert type(AutoImageProcessor.from_pretrained(tmp_path)) is VlHubBlipImageProcessor

    def test_registered_for_albef_config(self) -> None:
        from transformers.models.auto.image_processing_auto import (
            IMAGE_PROCESSOR_MAPPING,
        )
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

        assert PROCESSOR_MAPPING[AlbefConfig] is AlbefProcessor
        assert IMAGE_PROCESSOR_MAPPING[AlbefConfig]["pil"] is VlHubBlipImageProcessor


def test_tokenizer_matches_the_reference(reference_dir: Path, processor: AlbefProcessor) -> None:
    spec = json.loads((reference_dir / "albef_feature_extractor.json").read_text())["tokenizer"]
    tok = processor.tokenizer
    assert len(tok) == spec["vocab_size"] == 230
    for name in ("pad", "unk", "cls", "sep", "mask"):
        assert getattr(tok, f"{name}_token_id") == spec[f"{name}_token_id"], name
    assert (processor.cls_token_id, processor.bos_token_id, processor.sep_token_id, processor.pad_token_id) == (2, 2, 3, 0)


# (fixture, strings key, ids key, mask key, tokenizer settings LAVIS used)
REFERENCE_TEXTS = [
    ("albef_feature_extractor", "text_input_strings", "input_ids", "attention_mask", {"padding": "longest"}),
    ("albef_retrieval", "texts", "input_ids", "attention_mask", {"padding": "max_length", "max_length": 35}),
    ("albef_vqa", "question_strings", "question_input_ids", "question_attention_mask", {"max_length": 25}),
    ("albef_vqa", "answer_list", "answer_list_ids", "answer_list_attention_mask", {}),
    ("albef_nlvr", "text_strings", "input_ids", "attention_mask", {"max_length": 40}),
    ("albef_classification", "text_strings", "input_ids", "attention_mask", {"max_length": 40}),
]


@pytest.mark.parametrize(("name", "strings", "ids", "mask", "settings"), REFERENCE_TEXTS)
def test_token_ids_match_lavis(
    reference_dir: Path, processor: AlbefProcessor, name: str, strings: str, ids: str, mask: str, settings: dict
) -> None:
    ref = load_reference(reference_dir, name)
    out = processor(text=ref.meta["inputs"][strings], **settings)
    assert torch.equal(out["input_ids"], ref.inp(ids))
    assert torch.equal(out["attention_mask"], ref.inp(mask))
    assert (out["input_ids"][:, 0] == 2).all()  # [CLS] first: ALBEF never replaces it


@pytest.mark.parametrize(("name", "key"), [("albef_feature_extractor", "image"), ("albef_nlvr", "image1")])
def test_pixels_match_lavis(reference_dir: Path, processor: AlbefProcessor, name: str, key: str) -> None:
    ref = load_reference(reference_dir, name)
    images = [image.permute(1, 2, 0).numpy() for image in ref.inp(f"{key}_uint8")]
    torch.testing.assert_close(processor(images=images)["pixel_values"], ref.inp(key), atol=1e-6, rtol=0)


def test_question_normaliser_and_truncation(processor: AlbefProcessor) -> None:
    out = processor(text=["What IS the man holding???", "a " * 60], text_mode="question", max_length=8)
    texts = processor.batch_decode(out["input_ids"])
    assert texts[0] == processor.tokenizer.decode(
        processor.tokenizer(pre_question("What IS the man holding???"), max_length=8, truncation=True)["input_ids"],
        skip_special_tokens=True,
    )
    assert texts[0].startswith("what is the man holding")
    assert out["input_ids"].shape[1] == 8 and out["input_ids"][1, -1] == 3  # truncated texts keep [SEP]
    augmented = processor(images=[_image(3)], do_augment=True)["pixel_values"]
    assert augmented.shape == (1, 3, 32, 32)


def test_bad_settings_raise_clear_errors(processor: AlbefProcessor) -> None:
    blip_tokenizer = build_blip_tokenizer(VOCAB)
    image_processor = AlbefImageProcessor(image_size=32)
    assert_raises_clear(lambda: AlbefProcessor(image_processor, build_albef_tokenizer(VOCAB), max_txt_len=1),
                        ValueError, "max_txt_len", ">= 2")
    assert_raises_clear(lambda: AlbefProcessor(image_processor, blip_tokenizer, max_words=0), ValueError, "max_words")
    tokenizer = build_albef_tokenizer(VOCAB)
    tokenizer.mask_token = None
    assert_raises_clear(lambda: AlbefProcessor(image_processor, tokenizer), ValueError, "[MASK]", "build_albef_tokenizer")
    assert_raises_clear(lambda: processor.enc_token_id, AttributeError, "no [ENC] token")
    assert_raises_clear(lambda: processor(), ValueError, "nothing to process")
    assert_raises_clear(lambda: build_albef_tokenizer(VOCAB.parent / "missing.txt"), FileNotFoundError, "does not exist")
