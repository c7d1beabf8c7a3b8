"""ALPRO configs from the LAVIS fixtures, a tiny config for unit tests, tiny inputs and a local processor.

Every ALPRO parity test goes through :func:`load_alpro_reference`, so the fixture weights are loaded by the conversion
code (``convert_alpro_checkpoint.load_lavis_checkpoint``), never by a test-only shortcut.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import PreTrainedModel

import vl_hub.models.alpro as alpro_family
from tests.common.reference import Reference, load_reference
from vl_hub.models.alpro.configuration_alpro import AlproConfig
from vl_hub.models.alpro.convert_alpro_checkpoint import load_lavis_checkpoint
from vl_hub.models.alpro.processing_alpro import AlproProcessor, build_alpro_tokenizer
from vl_hub.models.alpro.video_processing_alpro import AlproVideoProcessor

alpro_family.register()  # idempotent; `import vl_hub` does it once the family is listed in _registration

ModelT = TypeVar("ModelT", bound=PreTrainedModel)

# constructor keyword -> AlproConfig field
_CONSTRUCTOR_FIELDS = {
    "embed_dim": ("embed_dim", int),
    "max_txt_len": ("max_txt_len", int),
    "temp": ("temp", float),
    "num_classes": ("num_labels", int),
}

#: the tiny test architecture: TimeSformer 32 px / patch 16 / 4 frames / width 64 / depth 2 / 4 heads; BERT hidden 64 /
#: 4 heads / intermediate 128 / 4 layers (2 text + 2 fusion) / 64 positions / the 230-token fixture vocabulary.
TINY_VISION: dict[str, Any] = {
    "image_size": 32, "patch_size": 16, "num_frames": 4, "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "drop_path_rate": 0.0,
}
TINY_TEXT: dict[str, Any] = {
    "vocab_size": 230, "hidden_size": 64, "num_hidden_layers": 4, "fusion_layer": 2, "num_attention_heads": 4,
    "intermediate_size": 128, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0, "pad_token_id": 0, "cls_token_id": 2, "sep_token_id": 3,
}


def _constructor_kwargs(constructor: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in re.findall(r"(\w+)=([-+0-9.eE]+)(?=[,)])", constructor):
        if name in _CONSTRUCTOR_FIELDS:
            field, cast = _CONSTRUCTOR_FIELDS[name]
            found[field] = cast(value)
    return found


def alpro_config_from_reference(meta: dict[str, Any], **overrides: Any) -> AlproConfig:
    """The :class:`AlproConfig` of an ALPRO fixture's JSON ``meta``: ``construction.visual_encoder`` (TimeSformer),
    ``construction.bert_config``, the constructor's keywords (``embed_dim``, ``max_txt_len``, ``temp``,
    ``num_classes`` -> ``num_labels``) and the special ids of ``meta["tokenizer"]``."""
    construction = meta["construction"]
    tsf, bert, tok = construction["visual_encoder"], construction["bert_config"], meta["tokenizer"]
    vision = {
        "image_size": tsf["image_size"],
        "patch_size": tsf["patch_size"],
        "num_frames": tsf["n_frms"],
        "hidden_size": tsf["embed_dim"],
        "num_hidden_layers": tsf["depth"],
        "num_attention_heads": tsf["num_heads"],
        "mlp_ratio": float(tsf["mlp_ratio"]),
        "qkv_bias": tsf["qkv_bias"],
        "layer_norm_eps": tsf["layer_norm_eps"],
        "drop_path_rate": tsf["drop_path_rate"],
        "attention_dropout": tsf["attn_drop_rate"],
    }
    if not bert.get("add_type_embeddings") or bert.get("add_cross_attention"):
        raise ValueError(f"fixture {meta.get('name')!r} is not an ALPRO BERT config: {bert}")
    text = {
        "vocab_size": bert["vocab_size"],
        "hidden_size": bert["hidden_size"],
        "num_hidden_layers": bert["num_hidden_layers"],
        "fusion_layer": bert["fusion_layer"],
        "num_attention_heads": bert["num_attention_heads"],
        "intermediate_size": bert["intermediate_size"],
        "max_position_embeddings": bert["max_position_embeddings"],
        "type_vocab_size": bert["type_vocab_size"],
        "layer_norm_eps": bert["layer_norm_eps"],
        "hidden_dropout_prob": bert["hidden_dropout_prob"],
        "attention_probs_dropout_prob": bert["attention_probs_dropout_prob"],
        "pad_token_id": tok["pad_token_id"],
        "cls_token_id": tok["cls_token_id"],
        "sep_token_id": tok["sep_token_id"],
    }
    fields: dict[str, Any] = _constructor_kwargs(construction.get("constructor", ""))
    if "embed_dim" in construction:
        fields["embed_dim"] = construction["embed_dim"]
    if "num_classes" in construction:
        fields["num_labels"] = construction["num_classes"]
    if "k_test" in meta.get("inputs", {}):
        fields["k_test"] = meta["inputs"]["k_test"]
    vision.update(overrides.pop("vision_config", None) or {})
    text.update(overrides.pop("text_config", None) or {})
    fields.update(overrides)
    return AlproConfig(vision_config=vision, text_config=text, **fields)


def load_alpro_reference(
    reference_dir: Path, name: str, head_class: type[ModelT], **overrides: Any
) -> tuple[ModelT, Reference]:
    """Loads fixture ``name`` and ``head_class`` with its LAVIS weights (through ``load_lavis_checkpoint``).

    Returns:
        ``(model in eval mode, Reference)``.
    """
    ref = load_reference(reference_dir, name)
    config = alpro_config_from_reference(ref.meta, **overrides)
    return load_lavis_checkpoint(ref.weights, config, head_class).eval(), ref


def tiny_alpro_config(**overrides: Any) -> AlproConfig:
    """The tiny ALPRO of the unit tests (see :data:`TINY_VISION` / :data:`TINY_TEXT`): ``embed_dim`` 32, 5 answer
    classes, ``k_test`` 2, ``max_txt_len`` 16; no dropout. ``overrides``: ``AlproConfig`` fields (tower dicts merged)."""
    vision = {**TINY_VISION, **(overrides.pop("vision_config", None) or {})}
    text = {**TINY_TEXT, **(overrides.pop("text_config", None) or {})}
    fields: dict[str, Any] = {
        "embed_dim": 32, "k_test": 2, "max_txt_len": 16, "num_labels": 5,
        "id2label": {i: a for i, a in enumerate(["cooking", "dog", "yes", "no", "man"])},
    }
    fields.update(overrides)
    return AlproConfig(vision_config=vision, text_config=text, **fields)


def tiny_model(head_class: type[ModelT], seed: int = 0, **overrides: Any) -> ModelT:
    """A tiny head with every path live: ``temporal_fc`` of the later TimeSformer blocks starts at zero (LAVIS), so it
    is given small random weights here for the temporal attention to matter."""
    torch.manual_seed(seed)
    model = head_class(tiny_alpro_config(**overrides))
    with torch.no_grad():
        for block in model.visual_encoder.blocks:
            block.temporal_fc.weight.normal_(0.0, 0.05)
    return model.eval()


def lively_model(head_class: type[ModelT], seed: int = 0, **overrides: Any) -> ModelT:
    """:func:`tiny_model` with weights re-drawn as the LAVIS fixtures were (embeddings ``N(0, 0.25^2)``, Linear weights
    ``N(0, 1/fan_in)``): BERT's 0.02 initialisation makes every text's ``[CLS]`` state nearly identical, so a few
    optimiser steps could not separate random inputs; training tests start from here."""
    model = tiny_model(head_class, seed=seed, **overrides)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.25)
            elif isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / math.sqrt(module.in_features))
    return model


def make_inputs(batch: int = 2, frames: int = 4, length: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random normalised videos ``(B, T, 3, 32, 32)`` and padded ids ``(B, L)`` (``[CLS]`` ... ``[SEP]``, row ``b``
    padded after ``L - b`` tokens)."""
    gen = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch, frames, 3, 32, 32, generator=gen)
    input_ids = torch.randint(5, 230, (batch, length), generator=gen)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    input_ids[:, 0] = 2
    for b in range(batch):
        end = max(2, length - b)
        input_ids[b, end - 1] = 3
        input_ids[b, end:] = 0
        attention_mask[b, end:] = 0
    return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}


def tiny_processor(fixtures_dir: Path, **video_kwargs: Any) -> AlproProcessor:
    """An :class:`AlproProcessor` with the 230-token fixture vocabulary (32 px, 4 frames unless overridden)."""
    settings = {"image_size": 32, "num_frames": 4, **video_kwargs}
    return AlproProcessor(
        AlproVideoProcessor(**settings), build_alpro_tokenizer(fixtures_dir / "bert_vocab.txt"), max_txt_len=16
    )
