"""AlproConfig: typed fields are checked (strict dataclass), ranges validated with the bad value named, MED settings
and serialisation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.models.alpro.alpro_test_utils import tiny_alpro_config
from vl_hub.models.alpro.configuration_alpro import AlproConfig, AlproTextConfig, AlproVisionConfig


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"temp": "warm"}, ("temp",)),
        ({"k_test": 2.5}, ("k_test",)),
        ({"vision_config": {"interpolate_num_frames": "yes"}}, ("interpolate_num_frames",)),
        ({"vision_config": {"hidden_size": 32}}, ("hidden_size=32", "both widths")),
        ({"text_config": {"fusion_layer": 4}}, ("fusion_layer=4", "[1, num_hidden_layers=4)")),
        ({"text_config": {"fusion_layer": 0}}, ("fusion_layer=0", "one text-only layer")),
        ({"vision_config": {"image_size": 40}}, ("image_size=40", "patch_size=16")),
        ({"vision_config": {"num_frames": 0}}, ("num_frames", "positive int")),
        ({"vision_config": {"drop_path_rate": 1.5}}, ("drop_path_rate=1.5", "[0, 1)")),
        ({"text_config": {"pad_token_id": 400}}, ("pad_token_id=400", "vocabulary [0, 230)")),
        ({"max_txt_len": 100}, ("max_txt_len=100", "max_position_embeddings=64")),
        ({"temp": 0.9}, ("temp=0.9", "[0.001, 0.5]")),
    ],
)
def test_bad_values_raise_naming_the_field(kwargs: dict[str, Any], fragments: tuple[str, ...]) -> None:
    # strict dataclass errors wrap the ValueError/TypeError raised by the field checks and validate_architecture
    with pytest.raises(Exception) as info:
        tiny_alpro_config(**kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_defaults_are_alpro_base() -> None:
    config = AlproConfig()
    vision, text = config.vision_config, config.text_config
    assert (vision.image_size, vision.patch_size, vision.num_frames, vision.hidden_size, vision.num_hidden_layers) == (
        224, 16, 8, 768, 12,
    )
    assert (text.vocab_size, text.num_hidden_layers, text.fusion_layer, text.type_vocab_size) == (30522, 12, 6, 2)
    assert (config.embed_dim, config.temp, config.max_txt_len) == (256, 0.07, 35)
    settings = text.to_med_settings()
    assert settings.add_type_embeddings and not settings.add_cross_attention and settings.fusion_layer == 6
    assert list(settings.layer_range("text")) == list(range(6)) and list(settings.layer_range("fusion")) == list(range(6, 12))
    assert vision.timesformer_kwargs()["num_frames"] == 8


def test_round_trip_keeps_types_and_labels(tmp_path: Path) -> None:
    config = tiny_alpro_config(temp=0.1, vision_config={"mlp_ratio": 4, "interpolate_num_frames": True})
    config.save_pretrained(tmp_path)
    loaded = AlproConfig.from_pretrained(tmp_path)
    assert isinstance(loaded.vision_config, AlproVisionConfig) and isinstance(loaded.text_config, AlproTextConfig)
    assert loaded.vision_config.interpolate_num_frames and loaded.vision_config.mlp_ratio == 4
    assert loaded.id2label == config.id2label and loaded.num_labels == 5 and loaded.temp == 0.1
