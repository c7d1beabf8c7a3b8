"""ClipConfig: defaults, tower selection, validation with clear errors, serialisation round trips."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig

from tests.models.clip.clip_test_utils import tiny_config
from vl_hub.models.clip.configuration_clip import ClipConfig, ClipTextConfig, ClipVisionConfig


def test_defaults_are_openai_vit_b_32() -> None:
    config = ClipConfig()
    vision, text = config.vision_config, config.text_config
    assert config.model_type == "vlhub_clip"
    assert (vision.image_size, vision.patch_size, vision.width, vision.layers, vision.num_heads) == (224, 32, 768, 12, 12)
    assert (text.vocab_size, text.context_length, text.width, text.layers, text.num_heads) == (49408, 77, 512, 12, 8)
    assert (text.bos_token_id, text.eos_token_id) == (49406, 49407)
    assert vision.hidden_act == text.hidden_act == "quick_gelu"
    assert vision.layer_norm_eps == text.layer_norm_eps == 1e-5
    assert config.embed_dim == 512
    assert config.logit_scale_init_value == pytest.approx(math.log(1 / 0.07)) == pytest.approx(2.6592600)
    assert not vision.is_resnet


def test_resnet_tower_from_four_block_counts_tuple_stored_as_list() -> None:
    config = ClipConfig(vision_config={"layers": (3, 4, 6, 3), "width": 64}, embed_dim=1024)
    assert config.vision_config.is_resnet
    assert config.vision_config.layers == [3, 4, 6, 3]
    # OpenAI: attention-pool heads = 32 * width // 64
    assert config.vision_config.num_heads == 32


def test_argmax_pooling_when_eot_is_largest_id() -> None:
    assert ClipTextConfig().pooling_eos_token_id is None
    assert ClipTextConfig(vocab_size=100, eos_token_id=7, bos_token_id=6, pad_token_id=0).pooling_eos_token_id == 7


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"vision_config": {"layers": [3, 4, 6]}}, "needs 4 block counts"),
        ({"vision_config": {"image_size": 225}}, "not a multiple of patch_size=32"),
        ({"vision_config": {"width": 32}}, "set heads explicitly"),
        ({"vision_config": {"width": 64, "heads": 5}}, "does not divide the attention width 64"),
        ({"vision_config": {"layers": [1, 1, 1, 1], "width": 3}}, "even number"),
        ({"text_config": {"heads": 7}}, "does not divide the attention width 512"),
        ({"text_config": {"eos_token_id": 50000}}, "outside the vocabulary [0, 49408)"),
        ({"text_config": {"layers": 0}}, "layers must be a positive int"),
        ({"embed_dim": 0}, "embed_dim must be a positive int"),
        ({"vision_config": {"attention_dropout": 1.5}}, "attention_dropout=1.5 is out of range"),
    ],
)
def test_invalid_architectures_raise_naming_the_value(kwargs: dict, fragment: str) -> None:
    with pytest.raises(StrictDataclassError, match=None) as info:
        ClipConfig(**kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("kwargs", "fragment"), [({"hidden_act": "relu"}, "quick_gelu"), ({"mlp_ratio": "4"}, "mlp_ratio")])
def test_field_types_are_checked(kwargs: dict, fragment: str) -> None:
    with pytest.raises(StrictDataclassError) as info:
        ClipVisionConfig(**kwargs)
    assert fragment in str(info.value)


def test_json_and_auto_config_round_trip(tmp_path: Path) -> None:
    config = tiny_config(resnet=True)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is ClipConfig
    without_path = lambda d: {k: v for k, v in d.items() if k != "_name_or_path"}  # noqa: E731
    assert without_path(loaded.to_dict()) == without_path(config.to_dict())
    assert loaded.vision_config.layers == [1, 1, 1, 1]
    assert isinstance(loaded.text_config, ClipTextConfig)
