"""``AlbefConfig``: ALBEF-base defaults, validation with clear errors, the MED settings it builds, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig

import vl_hub  # noqa: F401  (registers vlhub_albef)
from tests.models.albef.reference_utils import albef_config_from_reference
from vl_hub.models.albef.configuration_albef import (
    AlbefConfig,
    AlbefTextConfig,
    AlbefVisionConfig,
)


def test_defaults_are_albef_base(reference_dir: Path) -> None:
    config = AlbefConfig()
    text, vision = config.text_config, config.vision_config
    assert isinstance(text, AlbefTextConfig) and isinstance(vision, AlbefVisionConfig)
    assert (vision.image_size, vision.patch_size, vision.hidden_size, vision.num_hidden_layers) == (384, 16, 768, 12)
    assert (text.vocab_size, text.hidden_size, text.num_hidden_layers, text.fusion_layer) == (30522, 768, 12, 6)
    assert (text.cls_token_id, text.sep_token_id, text.pad_token_id, text.mask_token_id) == (101, 102, 0, 103)
    assert text.encoder_width == 768 and config.num_decoder_layers == 6
    assert (config.embed_dim, config.queue_size, config.k_test, config.temp) == (256, 65536, 128, 0.07)
    assert config.model_type == "vlhub_albef" and config.use_distill
    # the tiny fixture's BERT config maps field by field
    med = json.loads((reference_dir / "albef_med_config.json").read_text())
    tiny = albef_config_from_reference(json.loads((reference_dir / "albef_retrieval.json").read_text())).text_config
    for key in ("hidden_size", "num_hidden_layers", "fusion_layer", "vocab_size", "intermediate_size", "encoder_width"):
        assert getattr(tiny, key) == med[key], key


def test_med_settings_of_encoder_and_decoder() -> None:
    config = AlbefConfig(text_config={"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128},
                         vision_config={"hidden_size": 32, "num_attention_heads": 4})
    encoder = config.text_config.to_med_settings()
    assert encoder.fusion_layer == 6 and encoder.encoder_width == 32
    assert [encoder.has_cross_attention(i) for i in (5, 6)] == [False, True]
    assert list(encoder.layer_range("text")) == list(range(6)) and list(encoder.layer_range("fusion")) == list(range(6, 12))
    decoder = config.text_config.to_med_settings(fusion_layer=0, num_hidden_layers=config.num_decoder_layers)
    assert decoder.num_hidden_layers == 6 and decoder.has_cross_attention(0)
    assert AlbefConfig(decoder_num_hidden_layers=3).num_decoder_layers == 3


def test_round_trip_through_auto_config(tmp_path: Path) -> None:
    config = AlbefConfig(embed_dim=32, use_distill=False, id2label={0: "a", 1: "b", 2: "c"},
                         text_config={"fusion_layer": 4}, vision_config={"image_size": 224})
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is AlbefConfig and type(loaded.text_config) is AlbefTextConfig
    assert (loaded.embed_dim, loaded.use_distill, loaded.num_labels) == (32, False, 3)
    assert (loaded.text_config.fusion_layer, loaded.vision_config.image_size) == (4, 224)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["vision_config"]["model_type"] == "vlhub_albef_vision_model"


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"text_config": {"fusion_layer": 12}}, ("AlbefTextConfig.fusion_layer=12", "[0, num_hidden_layers=12)")),
        ({"text_config": {"hidden_size": 100}}, ("hidden_size=100", "num_attention_heads=12")),
        ({"text_config": {"mask_token_id": 40000}}, ("mask_token_id=40000", "outside the vocabulary")),
        ({"vision_config": {"image_size": 30}}, ("AlbefVisionConfig.image_size=30", "patch_size=16")),
        ({"temp": 0.9}, ("temp=0.9", "[0.001, 0.5]")),
        ({"alpha": 1.5}, ("alpha=1.5",)),
        ({"queue_size": -1}, ("queue_size=-1", ">= 0")),
        ({"mlm_probability": 0.0}, ("mlm_probability=0.0", "(0, 1)")),
        ({"max_txt_len": 600}, ("max_txt_len=600", "max_position_embeddings=512")),
        ({"k_test": 0}, ("k_test", "positive")),
        ({"decoder_num_hidden_layers": 0}, ("decoder_num_hidden_layers", "positive")),
    ],
)
def test_bad_values_raise_with_the_value_and_the_range(kwargs: dict, fragments: tuple[str, ...]) -> None:
    with pytest.raises(Exception) as info:  # strict dataclasses wrap the ValueError
        AlbefConfig(**kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_wrong_types_are_refused() -> None:
    with pytest.raises(Exception, match="embed_dim"):
        AlbefConfig(embed_dim="256")
