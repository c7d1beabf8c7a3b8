"""BlipConfig: typed fields are checked (strict dataclass), ranges are validated with clear messages."""

from __future__ import annotations

import pytest

from vl_hub.models.blip import BlipConfig


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"prompt": 5}, "prompt"),
        ({"negative_all_rank": "yes"}, "negative_all_rank"),
        ({"temp": 2.0}, "temp=2.0"),
        ({"vision_config": {"image_size": 30, "patch_size": 8}}, "not a multiple of patch_size"),
        ({"text_config": {"hidden_size": 30, "num_attention_heads": 4}}, "not divisible"),
    ],
)
def test_bad_values_raise_naming_the_field(kwargs: dict, fragment: str) -> None:
    with pytest.raises(Exception, match=fragment):
        BlipConfig(**kwargs)


def test_ints_are_accepted_for_float_fields_and_round_trip(tmp_path) -> None:
    config = BlipConfig(momentum=1, vision_config={"mlp_ratio": 4})
    config.save_pretrained(tmp_path)
    loaded = BlipConfig.from_pretrained(tmp_path)
    assert loaded.momentum == 1 and loaded.vision_config.mlp_ratio == 4
    assert loaded.text_config.encoder_width == loaded.vision_config.hidden_size
