"""Converts original BLIP checkpoints into vl_hub BLIP heads and checkpoint folders.

LAVIS (``blip_models``): vl_hub's BLIP heads use LAVIS's own submodule names, so the conversion is the family-neutral
bookkeeping of :mod:`vl_hub.models._lavis_conversion` (``position_ids`` dropped, tied names checked/filled, training
state a head lacks dropped with a log line, ``pos_embed`` interpolated); this module runs it with its own logger.
:func:`load_lavis_checkpoint` builds the head, loads the converted weights and raises, listing them, when keys are
missing or unexpected (``strict=False`` logs them instead). :func:`convert_lavis_checkpoint` writes a folder for a
catalogue entry (``blip_caption:base_coco``).

transformers (``transformers.models.blip``): :func:`convert_transformers_checkpoint` reads a ``BlipModel`` /
``BlipForConditionalGeneration`` / ``BlipForImageTextRetrieval`` / ``BlipForQuestionAnswering`` folder (config.json +
weights + tokenizer, no network), builds the :class:`BlipConfig`, maps the weights strictly and writes the folder.

``VLHUB_CONVERTERS`` (end of the module) plugs both into ``vl-hub convert``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import PreTrainedModel

from vl_hub.models import _lavis_conversion
from vl_hub.models._lavis_conversion import (
    TRAINING_STATE_PATTERNS,
    LoadReport,
    read_checkpoint,
    tied_key_pairs,
)
from vl_hub.models.blip.configuration_blip import BlipConfig

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CAPTION_PROMPT",
    "TRAINING_STATE_PATTERNS",
    "TRANSFORMERS_HEADS",
    "TRANSFORMERS_MODEL_TYPES",
    "VLHUB_CONVERTERS",
    "LoadReport",
    "TransformersConversionReport",
    "blip_config_from_transformers",
    "blip_head_class",
    "convert_lavis_checkpoint",
    "convert_lavis_state_dict",
    "convert_transformers_checkpoint",
    "convert_transformers_state_dict",
    "load_lavis_checkpoint",
    "load_transformers_checkpoint",
    "load_transformers_state_dict",
    "read_checkpoint",
    "save_blip_checkpoint",
    "tied_key_pairs",
    "transformers_architecture",
]

ModelT = TypeVar("ModelT", bound=PreTrainedModel)


def convert_lavis_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    head_class: type[PreTrainedModel],
    report: LoadReport | None = None,
) -> dict[str, torch.Tensor]:
    """Maps a LAVIS BLIP state dict onto the parameter names of ``head_class``
    (:func:`vl_hub.models._lavis_conversion.convert_lavis_state_dict`, logging here)."""
    return _lavis_conversion.convert_lavis_state_dict(state_dict, head_class, report, logger)


def load_lavis_checkpoint(
    state_dict_or_path: Mapping[str, torch.Tensor] | str | os.PathLike[str],
    config: Any,
    head_class: type[ModelT],
    strict: bool = True,
    return_report: bool = False,
) -> ModelT | tuple[ModelT, LoadReport]:
    """Builds ``head_class(config)`` and loads a LAVIS BLIP checkpoint into it
    (:func:`vl_hub.models._lavis_conversion.load_lavis_checkpoint`, logging here).

    Returns:
        The model in eval mode (and the :class:`LoadReport` with ``return_report=True``).
    """
    return _lavis_conversion.load_lavis_checkpoint(
        state_dict_or_path, config, head_class, strict=strict, return_report=return_report, log=logger
    )


# ============================================================================================== transformers BLIP
# transformers' own BLIP checkpoints (``transformers.models.blip``, e.g. ``Salesforce/blip-image-captioning-base``):
# the BERT parts already carry LAVIS's names (``text_encoder.*``, ``text_decoder.bert.*``, ``text_decoder.cls.*``),
# only the ViT is renamed (fused ``qkv`` is kept as it is: both store it as one ``(3D, D)`` matrix, q/k/v stacked).

#: transformers' BLIP head -> the vl_hub head holding the same model
TRANSFORMERS_HEADS: dict[str, str] = {
    "BlipModel": "BlipModel",
    "BlipForConditionalGeneration": "BlipForConditionalGeneration",
    "BlipForImageTextRetrieval": "BlipForImageTextRetrieval",
    "BlipForQuestionAnswering": "BlipForQuestionAnswering",
}

#: LAVIS's ``max_txt_len`` of the corresponding LAVIS model (BlipFeatureExtractor, BlipCaption, BlipITM, BlipVQA)
_TRANSFORMERS_MAX_TXT_LEN = {
    "BlipModel": 30,
    "BlipForConditionalGeneration": 40,
    "BlipForImageTextRetrieval": 35,
    "BlipForQuestionAnswering": 35,
}

#: BLIP's captioning prompt (LAVIS ``blip_caption_*.yaml``); the default prompt of converted captioners
DEFAULT_CAPTION_PROMPT = "a picture of "

_HF_VISION_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^vision_model\.embeddings\.class_embedding$", "visual_encoder.cls_token"),
        (r"^vision_model\.embeddings\.position_embedding$", "visual_encoder.pos_embed"),
        (r"^vision_model\.embeddings\.patch_embedding\.(weight|bias)$", r"visual_encoder.patch_embed.proj.\1"),
        (r"^vision_model\.encoder\.layers\.(\d+)\.self_attn\.qkv\.(weight|bias)$", r"visual_encoder.blocks.\1.attn.qkv.\2"),
        (
            r"^vision_model\.encoder\.layers\.(\d+)\.self_attn\.projection\.(weight|bias)$",
            r"visual_encoder.blocks.\1.attn.proj.\2",
        ),
        (r"^vision_model\.encoder\.layers\.(\d+)\.layer_norm([12])\.(weight|bias)$", r"visual_encoder.blocks.\1.norm\2.\3"),
        (r"^vision_model\.encoder\.layers\.(\d+)\.mlp\.(fc[12])\.(weight|bias)$", r"visual_encoder.blocks.\1.mlp.\2.\3"),
        (r"^vision_model\.post_layernorm\.(weight|bias)$", r"visual_encoder.norm.\1"),
    )
)
# transformers keys that carry no weight of the vl_hub head: position-id buffers (positions are computed at run
# time) and, for BlipModel only, the BERT pooler (see convert_transformers_state_dict)
_HF_POSITION_IDS = re.compile(r"(^|\.)position_ids$")
_HF_POOLER = re.compile(r"^text_model\.pooler\.")
# ITC temperature bounds of BLIP (clamped the same way during training)
_TEMP_RANGE = (0.001, 0.5)


@dataclass
class TransformersConversionReport:
    """What :func:`convert_transformers_state_dict` did.

    Attributes:
        architecture: transformers' head class name (``BlipForConditionalGeneration``, ...).
        head: the vl_hub head class name.
        renamed: number of tensors mapped to a new name.
        dropped: transformers keys that are not weights of the vl_hub head (``position_ids`` buffers; BlipModel's
            ``text_model.pooler.*``).
        added: vl_hub keys created by the conversion (BlipModel's zero projection biases, ``temp``).
        filled: tied keys the checkpoint did not store, filled from their source.
        initialised: vl_hub keys the checkpoint cannot hold and that keep the head's initialisation
            (BlipForImageTextRetrieval: momentum copies = online weights, fresh ITC queues, ``temp``).
    """

    architecture: str = ""
    head: str = ""
    renamed: int = 0
    dropped: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)


def _config_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    raise TypeError(f"expected a transformers BlipConfig or its config.json dict, got {type(config).__name__}")


def _square(value: Any, name: str) -> int:
    """transformers allows ``image_size``/``patch_size`` as ``(h, w)``; BLIP's ViT is square."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"vision_config.{name}={list(value)} is not square; vl_hub's BLIP ViT needs one size")
        value = value[0]
    return int(value)


def _check_act(owner: str, settings: Mapping[str, Any]) -> None:
    act = settings.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(
            f"{owner}.hidden_act={act!r}: BLIP (and vl_hub's ViT/MED layers) use exact 'gelu'; this checkpoint "
            "cannot be converted without changing its outputs"
        )


def transformers_architecture(config: Any, state_dict: Mapping[str, torch.Tensor] | None = None) -> str:
    """transformers' BLIP head of a checkpoint: ``config.architectures[0]``, else read off the weight names
    (``text_model.*`` -> BlipModel, ``itm_head.*`` -> ITR, encoder + decoder -> VQA, decoder only -> captioning).

    Raises ``ValueError`` naming the supported heads.
    """
    names = list(_config_dict(config).get("architectures") or [])
    for name in names:
        if name in TRANSFORMERS_HEADS:
            return name
    if names:
        raise ValueError(
            f"config.architectures={names} names no supported transformers BLIP head; supported: "
            f"{', '.join(TRANSFORMERS_HEADS)}"
        )
    if state_dict is None:
        raise ValueError("config.json has no 'architectures'; pass the weights so the head can be recognised")
    keys = set(state_dict)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("text_model."):
        return "BlipModel"
    if has("itm_head."):
        return "BlipForImageTextRetrieval"
    if has("text_decoder.") and has("text_encoder."):
        return "BlipForQuestionAnswering"
    if has("text_decoder."):
        return "BlipForConditionalGeneration"
    raise ValueError("the weights match no transformers BLIP head (no text_model/text_encoder/text_decoder keys)")


def blip_config_from_transformers(
    hf_config: Any,
    architecture: str | None = None,
    tokenizer: Any = None,
    prompt: str | None = None,
    **overrides: Any,
) -> BlipConfig:
    """The vl_hub :class:`BlipConfig` of a transformers BLIP config (object or ``config.json`` dict).

    Vision: ``image_size``, ``patch_size``, ``hidden_size``, layers, heads, ``mlp_ratio = intermediate_size /
    hidden_size``, ``layer_norm_eps`` (transformers' checkpoints use their own value, 1e-5, kept so outputs stay
    theirs), attention dropout. Text: the BERT sizes, dropouts, ``layer_norm_eps``; ``encoder_width`` = the vision
    width. Token ids: ``bos_token_id`` (``[DEC]``), ``sep_token_id`` (also the end of generation: BLIP stops at
    ``[SEP]``; transformers' ``eos_token_id`` is unused by its BLIP), ``pad_token_id``; ``cls_token_id`` and
    ``enc_token_id`` from ``tokenizer`` (``[CLS]``, ``[ENC]``) or, without one, ``enc = bos + 1`` (the
    ``[DEC]``, ``[ENC]`` pair appended to the BERT vocabulary) and transformers' BERT ``[CLS]`` = 101 when it exists.
    ``embed_dim`` = ``image_text_hidden_size`` (``projection_dim`` for ``BlipModel``); ``label_smoothing`` = the text
    config's (transformers' training setting); ``max_txt_len`` = LAVIS's value for the head (30/40/35/35).
    Captioning: ``prompt`` (default :data:`DEFAULT_CAPTION_PROMPT`, BLIP's) and its decoder ids from the tokenizer;
    other heads get no prompt.

    Args:
        hf_config: transformers ``BlipConfig`` or its dict.
        architecture: transformers' head (default :func:`transformers_architecture`).
        tokenizer: the checkpoint's tokenizer (BERT with ``[DEC]``/``[ENC]``), for the special ids and the prompt.
        prompt: captioning prompt (``""``: captions start from ``[DEC]`` alone, as transformers' ``generate``).
        overrides: ``BlipConfig`` fields that win (``vision_config``/``text_config`` dicts are merged).

    Raises:
        ValueError: an activation other than GELU, a non-square ViT, special ids outside the vocabulary, or a
            captioning prompt without a tokenizer.
    """
    from vl_hub.models.blip.modeling_blip_generation import caption_prompt_ids

    cfg = _config_dict(hf_config)
    architecture = architecture or transformers_architecture(cfg)
    if architecture not in TRANSFORMERS_HEADS:
        raise ValueError(f"architecture={architecture!r} is not one of {', '.join(TRANSFORMERS_HEADS)}")
    vision, text = _config_dict(cfg.get("vision_config") or {}), _config_dict(cfg.get("text_config") or {})
    _check_act("vision_config", vision)
    _check_act("text_config", text)
    width = int(vision.get("hidden_size", 768))
    intermediate = int(vision.get("intermediate_size", 4 * width))
    vision_kwargs = {
        "image_size": _square(vision.get("image_size", 384), "image_size"),
        "patch_size": _square(vision.get("patch_size", 16), "patch_size"),
        "hidden_size": width,
        "num_hidden_layers": int(vision.get("num_hidden_layers", 12)),
        "num_attention_heads": int(vision.get("num_attention_heads", 12)),
        "mlp_ratio": intermediate / width,
        "qkv_bias": True,
        "layer_norm_eps": float(vision.get("layer_norm_eps", 1e-5)),
        "attention_dropout": float(vision.get("attention_dropout", 0.0)),
    }
    if int(width * vision_kwargs["mlp_ratio"]) != intermediate:
        raise ValueError(f"vision intermediate_size={intermediate} is not representable as a ratio of {width}")

    vocab = int(text.get("vocab_size", 30524))
    bos = text.get("bos_token_id", 30522)
    sep = text.get("sep_token_id", 102)
    pad = text.get("pad_token_id", 0)
    if tokenizer is not None:
        cls_id = tokenizer.cls_token_id
        enc_id = tokenizer.convert_tokens_to_ids("[ENC]")
        dec_id = tokenizer.convert_tokens_to_ids("[DEC]")
        if dec_id != bos:
            raise ValueError(
                f"the tokenizer's [DEC] is id {dec_id} but the checkpoint's text_config.bos_token_id is {bos}; "
                "pass the tokenizer saved with this checkpoint"
            )
        if len(tokenizer) > vocab:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the text model only {vocab} embeddings")
    else:
        cls_id = 101 if vocab > 101 else None
        enc_id = bos + 1 if bos is not None else None
    for name, value in (("[ENC]", enc_id), ("bos_token_id", bos), ("sep_token_id", sep), ("pad_token_id", pad)):
        if value is None or not 0 <= int(value) < vocab:
            raise ValueError(
                f"{name}={value} is outside the text vocabulary [0, {vocab}); BLIP needs [DEC], [ENC], [SEP] and "
                "[PAD] ids (pass the checkpoint's tokenizer)"
            )
    text_kwargs = {
        "vocab_size": vocab,
        "hidden_size": int(text.get("hidden_size", 768)),
        "num_hidden_layers": int(text.get("num_hidden_layers", 12)),
        "num_attention_heads": int(text.get("num_attention_heads", 8)),
        "intermediate_size": int(text.get("intermediate_size", 3072)),
        "max_position_embeddings": int(text.get("max_position_embeddings", 512)),
        "layer_norm_eps": float(text.get("layer_norm_eps", 1e-12)),
        "hidden_dropout_prob": float(text.get("hidden_dropout_prob", 0.0)),
        "attention_probs_dropout_prob": float(text.get("attention_probs_dropout_prob", 0.0)),
        "encoder_width": width,
        "pad_token_id": int(pad),
        "bos_token_id": int(bos),
        "eos_token_id": int(sep),
        "sep_token_id": int(sep),
        "cls_token_id": cls_id,
        "enc_token_id": int(enc_id),
    }
    fields: dict[str, Any] = {
        "embed_dim": int(cfg.get("projection_dim", 512) if architecture == "BlipModel" else cfg.get("image_text_hidden_size", 256)),
        "max_txt_len": min(_TRANSFORMERS_MAX_TXT_LEN[architecture], text_kwargs["max_position_embeddings"]),
        "label_smoothing": float(text.get("label_smoothing", cfg.get("label_smoothing", 0.0))),
        "prompt": "",
        "prompt_input_ids": None,
    }
    if architecture == "BlipModel":
        fields["temp"] = _temperature(float(cfg.get("logit_scale_init_value", 2.6592)))
    if architecture == "BlipForImageTextRetrieval":
        # an inference checkpoint (LAVIS BlipITM): no ITC queues; set queue_size before training with queues
        fields["queue_size"] = 0
    if architecture == "BlipForConditionalGeneration":
        prompt = DEFAULT_CAPTION_PROMPT if prompt is None else prompt
        fields["prompt"] = prompt
        if prompt:
            if tokenizer is None:
                raise ValueError(
                    f"the captioning prompt {prompt!r} needs the tokenizer to become decoder ids; pass tokenizer= (or "
                    "prompt='' to caption from [DEC] alone, as transformers' generate does)"
                )
            fields["prompt_input_ids"] = caption_prompt_ids(tokenizer, prompt, bos_token_id=int(bos))
    vision_kwargs.update(overrides.pop("vision_config", None) or {})
    text_kwargs.update(overrides.pop("text_config", None) or {})
    fields.update(overrides)
    return BlipConfig(vision_config=vision_kwargs, text_config=text_kwargs, **fields)


def _temperature(logit_scale: float) -> float:
    """transformers' CLIP-style ``logit_scale`` -> BLIP's ITC temperature ``exp(-logit_scale)``, in BLIP's range."""
    import math

    temp = math.exp(-logit_scale)
    low, high = _TEMP_RANGE
    if not low <= temp <= high:
        logger.warning("logit_scale=%.4f gives temperature %.5f outside BLIP's [%s, %s]: clamped", logit_scale, temp, low, high)
    return min(max(temp, low), high)


def convert_transformers_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    architecture: str,
    report: TransformersConversionReport | None = None,
) -> dict[str, torch.Tensor]:
    """Maps a transformers BLIP state dict onto the parameter names of the vl_hub head (:data:`TRANSFORMERS_HEADS`).

    * ViT: ``vision_model.embeddings.class_embedding`` -> ``visual_encoder.cls_token``, ``position_embedding`` ->
      ``pos_embed``, ``patch_embedding`` -> ``patch_embed.proj``, ``encoder.layers.i.self_attn.{qkv,projection}``
      -> ``blocks.i.attn.{qkv,proj}``, ``layer_norm{1,2}`` -> ``norm{1,2}``, ``mlp`` as is, ``post_layernorm`` ->
      ``norm``;
    * text: ``text_encoder.*``/``text_decoder.*`` as they are (LAVIS's names); BlipModel's ``text_model.*`` ->
      ``text_encoder.*``;
    * BlipModel: ``visual_projection``/``text_projection`` (no bias) -> ``vision_proj``/``text_proj`` with zero
      biases; ``logit_scale`` -> ``temp = exp(-logit_scale)``. Its BERT pooler (``text_model.pooler``) is dropped:
      transformers' ``BlipModel`` pools text with ``tanh(dense(CLS))`` and image features with a second
      ``post_layernorm``, neither of which exists in BLIP (LAVIS ``BlipFeatureExtractor`` projects the CLS states),
      so the projected ITC features of a converted BlipModel are LAVIS's, not transformers' ``BlipModel``'s; the
      encoder states (unimodal and multimodal) are identical;
    * ``position_ids`` buffers are dropped.

    Raises:
        ValueError: listing keys with no vl_hub counterpart (nothing is silently lost).
    """
    if architecture not in TRANSFORMERS_HEADS:
        raise ValueError(f"architecture={architecture!r} is not one of {', '.join(TRANSFORMERS_HEADS)}")
    report = report if report is not None else TransformersConversionReport()
    report.architecture, report.head = architecture, TRANSFORMERS_HEADS[architecture]
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if _HF_POSITION_IDS.search(key) or (architecture == "BlipModel" and _HF_POOLER.match(key)):
            report.dropped.append(key)
            continue
        new = _rename_transformers_key(key, architecture)
        if new is None:
            if architecture == "BlipModel" and key == "logit_scale":
                out["temp"] = torch.tensor(_temperature(float(value)), dtype=value.dtype)
                report.added.append("temp")
                continue
            unknown.append(key)
            continue
        report.renamed += int(new != key)
        out[new] = value
    if unknown:
        raise ValueError(
            f"{len(unknown)} tensors of the transformers {architecture} checkpoint have no vl_hub counterpart: "
            f"{unknown[:20]}; is it a BLIP checkpoint of that class?"
        )
    if architecture == "BlipModel":
        for proj in ("vision_proj", "text_proj"):
            weight = out.get(f"{proj}.weight")
            if weight is not None:
                out[f"{proj}.bias"] = torch.zeros(weight.shape[0], dtype=weight.dtype)
                report.added.append(f"{proj}.bias")
    return out


def _rename_transformers_key(key: str, architecture: str) -> str | None:
    """The vl_hub name of one transformers key, ``None`` when it has none."""
    if key.startswith("vision_model."):
        for pattern, replacement in _HF_VISION_RENAMES:
            if pattern.match(key):
                return pattern.sub(replacement, key)
        return None
    if architecture == "BlipModel":
        if key.startswith("text_model."):
            return "text_encoder." + key[len("text_model.") :]
        return {"visual_projection.weight": "vision_proj.weight", "text_projection.weight": "text_proj.weight"}.get(key)
    if key.startswith(("text_encoder.", "text_decoder.")):
        return key
    if architecture == "BlipForImageTextRetrieval" and key.split(".", 1)[0] in ("vision_proj", "text_proj", "itm_head"):
        return key
    return None


# training state of BlipForImageTextRetrieval that an inference checkpoint cannot hold
_INITIALISED_STATE = re.compile(r"^((image|text|idx)_queue|queue_ptr|temp)$")
_MOMENTUM_COPY = re.compile(r"^([A-Za-z0-9_]+?)_m\.(.+)$")


def load_transformers_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    config: BlipConfig,
    architecture: str,
    return_report: bool = False,
) -> PreTrainedModel | tuple[PreTrainedModel, TransformersConversionReport]:
    """Builds the vl_hub head of ``architecture`` from ``config`` and loads a transformers BLIP state dict, strictly.

    Every transformers tensor is used (or is one of the dropped ones listed in
    :func:`convert_transformers_state_dict`); every vl_hub key is loaded except the training state a
    transformers checkpoint cannot hold: BlipForImageTextRetrieval's momentum copies (set to the online weights,
    as LAVIS ``copy_params``), ITC queues and ``temp`` (fresh). Tied LM-head tensors missing from the file are filled
    from their sources.

    Returns:
        The head in eval mode, float32 (and the :class:`TransformersConversionReport`).

    Raises:
        ValueError: listing missing keys, or tensors whose shapes do not fit the config.
    """
    report = TransformersConversionReport()
    converted = convert_transformers_state_dict(state_dict, architecture, report)
    head_class = blip_head_class(TRANSFORMERS_HEADS[architecture])
    for target, source in tied_key_pairs(converted.keys(), head_class):
        if target in converted and source in converted:
            if not torch.equal(converted[target], converted[source]):
                raise ValueError(f"{target!r} and {source!r} are tied but differ in this checkpoint")
        elif source in converted:
            converted[target] = converted[source]
            report.filled.append(target)
        elif target in converted:
            converted[source] = converted[target]
            report.filled.append(source)
    model = head_class(config)
    own = model.state_dict()
    for key, value in own.items():
        if key in converted:
            continue
        match = _MOMENTUM_COPY.match(key)
        online = f"{match.group(1)}.{match.group(2)}" if match else None
        if online is not None and online in converted:
            converted[key] = converted[online]
            report.initialised.append(key)
        elif _INITIALISED_STATE.match(key):
            converted[key] = value
            report.initialised.append(key)
    missing = sorted(k for k in own if k not in converted)
    unexpected = sorted(k for k in converted if k not in own)
    bad_shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if bad_shapes or missing or unexpected:
        raise ValueError(
            f"the transformers {architecture} checkpoint does not fit {head_class.__name__} built from this config: "
            f"{len(bad_shapes)} shape mismatches {bad_shapes[:10]}; {len(missing)} missing keys {missing[:20]}; "
            f"{len(unexpected)} unexpected keys {unexpected[:20]}"
        )
    with torch.no_grad():
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in converted.items()}, strict=True)
    if hasattr(model, "momentum_parameter_pairs"):
        for _, param_m in model.momentum_parameter_pairs():  # momentum copies never get gradients
            param_m.requires_grad_(False)
    model.eval()
    if report.initialised:
        logger.info(
            "%s: training state a transformers checkpoint cannot hold, initialised by the head: %s",
            head_class.__name__,
            _lavis_conversion.summarise_keys(report.initialised),
        )
    return (model, report) if return_report else model


def _read_transformers_folder(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``config.json`` and every weight shard (``model*.safetensors``, else ``pytorch_model*.bin``) of a folder."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json; pass a folder written by a transformers BLIP model's save_pretrained"
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("model_type") != "blip":
        raise ValueError(
            f"{folder}/config.json has model_type={config.get('model_type')!r}; the BLIP converter reads transformers "
            "BLIP checkpoints (model_type 'blip')"
        )
    shards = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not shards:
        raise FileNotFoundError(f"{folder} has no model*.safetensors (or pytorch_model*.bin) weights")
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        if shard.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(str(shard)))
        else:
            state.update(torch.load(str(shard), map_location="cpu", weights_only=True))
    return config, state


def _has_tokenizer_files(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"))


def _image_processor_settings(folder: Path | None, image_size: int) -> dict[str, Any]:
    """Resolution and normalisation of transformers' ``preprocessor_config.json`` (bicubic resize is BLIP's and
    vl_hub's; another resampling is reported, not copied)."""
    settings: dict[str, Any] = {"image_size": image_size}
    file = folder / "preprocessor_config.json" if folder is not None else None
    if file is None or not file.is_file():
        return settings
    pre = json.loads(file.read_text(encoding="utf-8"))
    size = pre.get("size")
    if isinstance(size, Mapping) and "height" in size:
        if size.get("width", size["height"]) != size["height"]:
            raise ValueError(f"{file}: size={size} is not square; BLIP resizes to S x S")
        settings["image_size"] = int(size["height"])
    elif isinstance(size, int):
        settings["image_size"] = size
    for key in ("image_mean", "image_std"):
        if pre.get(key) is not None:
            settings[key] = [float(v) for v in pre[key]]
    if pre.get("resample", 3) != 3:
        logger.warning("%s uses resample=%s; vl_hub's BLIP image processor resizes bicubically", file, pre["resample"])
    return settings


def load_transformers_checkpoint(
    src_folder_or_model: str | os.PathLike[str] | PreTrainedModel,
    tokenizer: Any = None,
    prompt: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
) -> tuple[PreTrainedModel, Any]:
    """A transformers BLIP checkpoint as a vl_hub head, in memory (no file written).

    Args:
        src_folder_or_model: a folder saved by a transformers ``Blip*`` model (``config.json`` + safetensors / bin
            shards; nothing is downloaded), or the transformers model itself.
        tokenizer: a tokenizer object, or a source for
            :func:`~vl_hub.models.blip.processing_blip.build_blip_tokenizer`; default: the folder's own tokenizer
            files (``[DEC]``/``[ENC]`` are added when missing).
        prompt: captioning prompt (default BLIP's ``"a picture of "``; ``""`` to start from ``[DEC]`` alone).
        config_overrides: ``BlipConfig`` fields that win over the converted ones.

    Returns:
        ``(model in eval mode, tokenizer or None)``.
    """
    from vl_hub.models.blip.processing_blip import build_blip_tokenizer

    folder: Path | None = None
    if isinstance(src_folder_or_model, PreTrainedModel):
        hf_config = src_folder_or_model.config.to_dict()
        hf_config["architectures"] = [type(src_folder_or_model).__name__]
        state = src_folder_or_model.state_dict()
    else:
        folder = Path(src_folder_or_model)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; pass a transformers BLIP checkpoint folder")
        hf_config, state = _read_transformers_folder(folder)
    if tokenizer is None and folder is not None and _has_tokenizer_files(folder):
        tokenizer = folder
    if tokenizer is not None and not hasattr(tokenizer, "convert_tokens_to_ids"):
        tokenizer = build_blip_tokenizer(tokenizer)
    architecture = transformers_architecture(hf_config, state)
    config = blip_config_from_transformers(
        hf_config, architecture, tokenizer=tokenizer, prompt=prompt, **dict(config_overrides or {})
    )
    model = load_transformers_state_dict(state, config, architecture)
    return model, tokenizer


def save_blip_checkpoint(
    model: PreTrainedModel,
    out_dir: str | os.PathLike[str],
    tokenizer: Any = None,
    image_processor_settings: Mapping[str, Any] | None = None,
) -> Path:
    """Writes a vl_hub BLIP checkpoint folder: ``config.json`` (``architectures`` = the head class),
    ``model.safetensors`` and the processor files (``preprocessor_config.json`` of
    :class:`~vl_hub.models.blip.image_processing_blip.VlHubBlipImageProcessor`; with a tokenizer also the tokenizer
    files and ``processor_config.json`` of :class:`~vl_hub.models.blip.processing_blip.VlHubBlipProcessor`, with
    ``config.max_txt_len`` and ``config.prompt``). ``AutoModel…`` / ``AutoProcessor.from_pretrained(out_dir)`` load
    it after ``import vl_hub``.

    Args:
        model: the vl_hub BLIP head.
        out_dir: the folder (created).
        tokenizer: the BLIP tokenizer; ``None`` writes the model and the image processor only (with a warning).
        image_processor_settings: :class:`VlHubBlipImageProcessor` arguments (default: the model's image size).
    """
    from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
    from vl_hub.models.blip.processing_blip import VlHubBlipProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    settings = {"image_size": model.config.vision_config.image_size, **dict(image_processor_settings or {})}
    image_processor = VlHubBlipImageProcessor(**settings)
    if tokenizer is None:
        image_processor.save_pretrained(out)
        logger.warning(
            "no tokenizer: %s holds the model and the image processor only; pass a tokenizer (BERT vocab.txt or a "
            "tokenizer folder) to add it and the BLIP processor",
            out,
        )
    else:
        VlHubBlipProcessor(
            image_processor, tokenizer, max_txt_len=model.config.max_txt_len, prompt=model.config.prompt or ""
        ).save_pretrained(out)
    return out


def convert_transformers_checkpoint(
    src_folder_or_model: str | os.PathLike[str] | PreTrainedModel,
    out_dir: str | os.PathLike[str],
    tokenizer: Any = None,
    prompt: str | None = None,
    config_overrides: Mapping[str, Any] | None = None,
) -> PreTrainedModel:
    """Converts a transformers BLIP checkpoint (``BlipModel``, ``BlipForConditionalGeneration``,
    ``BlipForImageTextRetrieval``, ``BlipForQuestionAnswering``) into a vl_hub checkpoint folder.

    Reads ``config.json`` and the weights (no network), builds the :class:`BlipConfig`
    (:func:`blip_config_from_transformers`), maps the weights strictly (:func:`load_transformers_state_dict`),
    picks the matching vl_hub head (:data:`TRANSFORMERS_HEADS`) and writes the folder with
    :func:`save_blip_checkpoint`; the processor is built from the checkpoint's tokenizer and its
    ``preprocessor_config.json`` (size, mean, std) on vl_hub's image processor.

    Args:
        src_folder_or_model: transformers checkpoint folder, or the transformers model.
        out_dir: the folder to write.
        tokenizer, prompt, config_overrides: see :func:`load_transformers_checkpoint`.

    Returns:
        The converted vl_hub model (eval mode).
    """
    model, tokenizer = load_transformers_checkpoint(
        src_folder_or_model, tokenizer=tokenizer, prompt=prompt, config_overrides=config_overrides
    )
    folder = None if isinstance(src_folder_or_model, PreTrainedModel) else Path(src_folder_or_model)
    settings = _image_processor_settings(folder, model.config.vision_config.image_size)
    save_blip_checkpoint(model, out_dir, tokenizer=tokenizer, image_processor_settings=settings)
    logger.info("wrote %s (from transformers) to %s", type(model).__name__, out_dir)
    return model


# ============================================================================================== LAVIS -> folder
def blip_head_class(name: str) -> type[PreTrainedModel]:
    """A vl_hub BLIP head class by name (``"BlipForConditionalGeneration"``, ``"BlipForNLVR"``, ...).

    Raises ``KeyError`` listing the BLIP heads.
    """
    from vl_hub.models.blip import _head_modules

    heads: dict[str, type[PreTrainedModel]] = {}
    for module in _head_modules():
        for cls_name in getattr(module, "AUTO_CLASSES", {}):
            heads[cls_name] = getattr(module, cls_name)
    if name not in heads:
        raise KeyError(f"no vl_hub BLIP head named {name!r}; BLIP heads: {', '.join(sorted(heads))}")
    return heads[name]


def _blip_tokenizer(tokenizer: Any, config: BlipConfig) -> Any:
    """Builds the tokenizer when given as a path and checks it agrees with ``config``'s special ids."""
    from vl_hub.models.blip.processing_blip import build_blip_tokenizer

    if not hasattr(tokenizer, "convert_tokens_to_ids"):
        tokenizer = build_blip_tokenizer(tokenizer)
    text = config.text_config
    found = {
        "bos_token_id ([DEC])": (tokenizer.convert_tokens_to_ids("[DEC]"), text.bos_token_id),
        "enc_token_id ([ENC])": (tokenizer.convert_tokens_to_ids("[ENC]"), text.enc_token_id),
        "sep_token_id ([SEP])": (tokenizer.sep_token_id, text.sep_token_id),
        "pad_token_id ([PAD])": (tokenizer.pad_token_id, text.pad_token_id),
    }
    wrong = {name: ids for name, ids in found.items() if ids[0] != ids[1]}
    if wrong or len(tokenizer) > text.vocab_size:
        details = "; ".join(f"{n}: tokenizer {a} vs config {b}" for n, (a, b) in wrong.items())
        raise ValueError(
            f"the tokenizer ({len(tokenizer)} tokens) does not fit the config (vocab {text.vocab_size}): {details or 'too many tokens'}. "
            "BLIP checkpoints use bert-base-uncased's vocab.txt (+ [DEC], [ENC]); pass that vocabulary, or a config "
            "written for your tokenizer"
        )
    return tokenizer


def convert_lavis_checkpoint(
    checkpoint: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    out_dir: str | os.PathLike[str],
    model_type: str,
    config: BlipConfig | None = None,
    tokenizer: Any = None,
    strict: bool = True,
) -> PreTrainedModel:
    """Converts an original LAVIS BLIP checkpoint into a vl_hub checkpoint folder.

    The head and architecture come from the catalogue entry ``model_type`` (``"blip_caption:base_coco"``, see
    :data:`vl_hub.models.blip.catalogue.BLIP_CATALOGUE`); the weights are loaded with :func:`load_lavis_checkpoint`
    and the folder is written by :func:`save_blip_checkpoint` (processor at the config's image size, the entry's
    ``max_txt_len`` and prompt).

    Args:
        checkpoint: the LAVIS ``.pth``/``.pt``/``.safetensors`` file (or its state dict).
        out_dir: the folder to write.
        model_type: catalogue entry ``"name:type"``.
        config: overrides the entry's architecture (e.g. a smaller test model); the entry still picks the head.
        tokenizer: BERT ``vocab.txt`` / tokenizer folder / tokenizer object (BLIP: ``bert-base-uncased``); it must
            agree with the config's special ids. The captioning prompt's decoder ids are recomputed with it.
            ``None``: no tokenizer files are written (warning).
        strict: raise on missing / unexpected keys (``False`` logs them).

    Returns:
        The converted model (eval mode).
    """
    from vl_hub.models.blip.catalogue import lookup
    from vl_hub.models.blip.modeling_blip_generation import caption_prompt_ids

    entry = lookup(model_type)
    config = config if config is not None else entry.config()
    if tokenizer is not None:
        tokenizer = _blip_tokenizer(tokenizer, config)
        if config.prompt:
            config.prompt_input_ids = caption_prompt_ids(tokenizer, config.prompt, config.text_config.bos_token_id)
    model = load_lavis_checkpoint(checkpoint, config, blip_head_class(entry.head), strict=strict)
    save_blip_checkpoint(model, out_dir, tokenizer=tokenizer)
    logger.info("wrote %s (%s, from LAVIS) to %s", entry.head, model_type, out_dir)
    return model


# ============================================================================================== vl-hub convert
# Settings a catalogue entry may lend to a transformers checkpoint (the architecture stays the checkpoint's).
_ENTRY_TRAINING_FIELDS = (
    "k_test", "max_txt_len", "queue_size", "alpha", "momentum", "negative_all_rank", "num_answer_candidates",
)


def _convert_from_lavis(
    src: Path, out_dir: Path, *, model_type: str | None, config_file: Path | None, tokenizer: Path | None, strict: bool
) -> Path:
    if model_type is None:
        raise ValueError("--from lavis needs --model-type NAME:TYPE (e.g. blip_caption:base_coco): LAVIS files hold no config")
    config = BlipConfig.from_json_file(str(config_file)) if config_file is not None else None
    convert_lavis_checkpoint(src, out_dir, model_type, config=config, tokenizer=tokenizer, strict=strict)
    return out_dir


def _convert_from_transformers(
    src: Path, out_dir: Path, *, model_type: str | None, config_file: Path | None, tokenizer: Path | None, strict: bool
) -> Path:
    if config_file is not None:
        raise ValueError("--config does not apply to --from transformers: the architecture is the checkpoint's config.json")
    if not strict:
        raise ValueError("--from transformers converts strictly (every tensor is mapped); --no-strict does not apply")
    overrides: dict[str, Any] = {}
    if model_type is not None:
        from vl_hub.models.blip.catalogue import lookup

        entry = lookup(model_type)
        hf_config, state = _read_transformers_folder(src)
        head = TRANSFORMERS_HEADS[transformers_architecture(hf_config, state)]
        if head != entry.head:
            raise ValueError(f"{src} holds a {head}, but --model-type {model_type} is a {entry.head}; pick a matching entry")
        overrides = {k: entry.config_kwargs[k] for k in _ENTRY_TRAINING_FIELDS if k in entry.config_kwargs}
    convert_transformers_checkpoint(src, out_dir, tokenizer=tokenizer, config_overrides=overrides)
    return out_dir


#: ``vl-hub convert`` sources this family converts (read by ``vl_hub.cli.convert``); each takes
#: ``(src, out_dir, *, model_type, config_file, tokenizer, strict)`` and returns the written folder.
VLHUB_CONVERTERS = {"lavis": _convert_from_lavis, "transformers": _convert_from_transformers}
#: ``model_type`` values of transformers ``config.json`` files this family converts
TRANSFORMERS_MODEL_TYPES = ("blip",)
