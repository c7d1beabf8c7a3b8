"""Builds ALBEF configs and models from the LAVIS golden fixtures (``/work/shared/reference/lavis/albef_*``).

Every ALBEF parity test goes through :func:`load_albef_reference`, so the fixture weights are loaded by the
conversion code (``convert_albef_checkpoint.load_lavis_checkpoint``), never by a test-only shortcut.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

from transformers import PreTrainedModel

from tests.common.reference import Reference, load_reference
from vl_hub.models.albef.configuration_albef import AlbefConfig
from vl_hub.models.albef.convert_albef_checkpoint import load_lavis_checkpoint

ModelT = TypeVar("ModelT", bound=PreTrainedModel)

# constructor keyword -> AlbefConfig field
_CONSTRUCTOR_FIELDS = {
    "embed_dim": ("embed_dim", int),
    "max_txt_len": ("max_txt_len", int),
    "queue_size": ("queue_size", int),
    "alpha": ("alpha", float),
    "momentum": ("momentum", float),
    "temp": ("temp", float),
    "num_classes": ("num_labels", int),
}


def _constructor_kwargs(constructor: str) -> dict[str, Any]:
    """Keyword arguments written in the fixture's ``construction.constructor`` string."""
    found: dict[str, Any] = {}
    for name, value in re.findall(r"(\w+)=([-+0-9.eE]+)(?=[,)])", constructor):
        if name in _CONSTRUCTOR_FIELDS:
            field, cast = _CONSTRUCTOR_FIELDS[name]
            found[field] = cast(value)
    distill = re.search(r"use_distill=(True|False)", constructor)
    if distill:
        found["use_distill"] = distill.group(1) == "True"
    return found


def albef_config_from_reference(meta: dict[str, Any], **overrides: Any) -> AlbefConfig:
    """The :class:`AlbefConfig` of an ALBEF fixture's JSON ``meta``.

    Reads ``construction.image_encoder`` (ViT), the BERT config the model was built with
    (``construction.effective_bert_config`` for NLVR's 18 layers, else ``construction.med_config``), the VQA
    ``decoder_config`` depth, the constructor's keywords (``embed_dim``, ``queue_size``, ``use_distill``,
    ``num_classes`` -> ``num_labels``, ...) and the special ids in ``meta["tokenizer"]``.

    Args:
        meta: the fixture JSON.
        overrides: ``AlbefConfig`` fields that win (``vision_config``/``text_config`` dicts are merged).
    """
    construction = meta["construction"]
    vit = construction["image_encoder"]
    med = construction.get("effective_bert_config") or construction["med_config"]
    tok = meta["tokenizer"]
    vision = {
        "image_size": vit["img_size"],
        "patch_size": vit["patch_size"],
        "hidden_size": vit["embed_dim"],
        "num_hidden_layers": vit["depth"],
        "num_attention_heads": vit["num_heads"],
        "mlp_ratio": vit.get("mlp_ratio", 4.0),
        "qkv_bias": vit.get("qkv_bias", True),
        "layer_norm_eps": vit.get("layer_norm_eps", 1e-6),
        "drop_path_rate": vit.get("drop_path_rate", 0.0),
    }
    if med.get("hidden_act", "gelu") != "gelu" or med.get("add_type_embeddings", False):
        raise ValueError(f"fixture {meta.get('name')!r} uses a BERT setting ALBEF does not: {med}")
    text = {
        "vocab_size": med["vocab_size"],
        "hidden_size": med["hidden_size"],
        "num_hidden_layers": med["num_hidden_layers"],
        "fusion_layer": med["fusion_layer"],
        "num_attention_heads": med["num_attention_heads"],
        "intermediate_size": med["intermediate_size"],
        "max_position_embeddings": med["max_position_embeddings"],
        "layer_norm_eps": med["layer_norm_eps"],
        "hidden_dropout_prob": med["hidden_dropout_prob"],
        "attention_probs_dropout_prob": med["attention_probs_dropout_prob"],
        "encoder_width": med.get("encoder_width", vit["embed_dim"]),
        "pad_token_id": tok["pad_token_id"],
        "cls_token_id": tok["cls_token_id"],
        "bos_token_id": tok["cls_token_id"],
        "sep_token_id": tok["sep_token_id"],
        "eos_token_id": tok["sep_token_id"],
        "mask_token_id": tok["mask_token_id"],
    }
    fields: dict[str, Any] = _constructor_kwargs(construction.get("constructor", ""))
    decoder = construction.get("decoder_config")
    if decoder is not None:
        fields["decoder_num_hidden_layers"] = decoder["num_hidden_layers"]
    vision.update(overrides.pop("vision_config", None) or {})
    text.update(overrides.pop("text_config", None) or {})
    fields.update(overrides)
    return AlbefConfig(vision_config=vision, text_config=text, **fields)


def load_albef_reference(
    reference_dir: Path, name: str, head_class: type[ModelT], **overrides: Any
) -> tuple[ModelT, Reference]:
    """Loads fixture ``name`` and ``head_class`` with its LAVIS weights (through ``load_lavis_checkpoint``).

    Returns:
        ``(model in eval mode, Reference)``.
    """
    ref = load_reference(reference_dir, name)
    config = albef_config_from_reference(ref.meta, **overrides)
    model = load_lavis_checkpoint(ref.weights, config, head_class)
    return model.eval(), ref


def tiny_albef_config(**overrides: Any) -> AlbefConfig:
    """The tiny ALBEF of the unit tests (mirrors the LAVIS fixtures): ViT 32 px / patch 8 / width 64 / depth 2 /
    4 heads; BERT hidden 64 / 4 heads / intermediate 128 / 4 layers with ``fusion_layer`` 2 / 64 positions / the
    plain 230-token vocab (``[PAD]``=0, ``[CLS]``=2, ``[SEP]``=3, ``[MASK]``=4); ``embed_dim`` 32; no dropout; queue
    of 8; no distillation.

    ``overrides``: ``AlbefConfig`` fields (``vision_config``/``text_config`` dicts are merged into the defaults).
    """
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    text = {
        "vocab_size": 230, "hidden_size": 64, "num_hidden_layers": 4, "fusion_layer": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "pad_token_id": 0, "cls_token_id": 2, "bos_token_id": 2,
        "sep_token_id": 3, "eos_token_id": 3, "mask_token_id": 4,
    }
    vision.update(overrides.pop("vision_config", None) or {})
    text.update(overrides.pop("text_config", None) or {})
    fields: dict[str, Any] = {
        "embed_dim": 32, "queue_size": 8, "k_test": 4, "max_txt_len": 20, "use_distill": False,
        "num_answer_candidates": 4,
    }
    fields.update(overrides)
    return AlbefConfig(vision_config=vision, text_config=text, **fields)
