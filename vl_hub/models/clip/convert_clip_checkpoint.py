"""Converts CLIP checkpoints into vl_hub CLIP heads: OpenAI / open_clip, LAVIS and transformers ``CLIPModel``.

* **OpenAI / open_clip** (``RN50.pt``, ``ViT-B-32.pt`` ... TorchScript archives or plain state dicts, open_clip
  ``{"state_dict": {"module.*": ...}}``): names are OpenAI's; the architecture is read off the tensors as OpenAI's
  ``build_model`` does (:func:`config_from_openai_state_dict`). The text weights move under ``text.``.
* **LAVIS** (``clip`` / ``clip_feature_extractor``): LAVIS's CLIP is open_clip's, so its names are OpenAI's too.
* **transformers** (a folder with ``config.json`` + ``model.safetensors``/``pytorch_model.bin`` of a ``CLIPModel``):
  names are mapped (q/k/v projections fused into ``in_proj_weight``, ``*_projection.weight`` transposed, ...) and the
  config is translated (:func:`config_from_transformers`). :func:`to_transformers_state_dict` /
  :func:`to_transformers_config` go the other way (ViT towers only: transformers has no ResNet CLIP).

:func:`convert` writes a ready checkpoint folder (``config.json`` naming the head in ``architectures``,
``model.safetensors``, the processor files); the ``vl-hub convert --from {openai,lavis,transformers}`` command
calls it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vl_hub.models.clip.configuration_clip import ClipConfig
from vl_hub.models.clip.modeling_clip import ClipForZeroShotClassification, ClipModel, ClipPreTrainedModel

logger = logging.getLogger(__name__)

__all__ = [
    "SOURCE_KINDS",
    "config_from_openai_state_dict",
    "config_from_transformers",
    "convert",
    "convert_openai_state_dict",
    "convert_transformers_state_dict",
    "load_clip_checkpoint",
    "read_clip_checkpoint",
    "to_openai_state_dict",
    "to_transformers_config",
    "to_transformers_state_dict",
]

SOURCE_KINDS: tuple[str, ...] = ("openai", "lavis", "transformers")

# Entries of OpenAI's TorchScript state dict / open_clip models that are not weights.
_OPENAI_NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size", "attn_mask")
# Top-level OpenAI names of the text tower (everything that is not visual.* or logit_scale).
_OPENAI_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


# ---------------------------------------------------------------------------------------------- reading
def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def _unwrap(checkpoint: Any, source: str) -> dict[str, torch.Tensor]:
    """``{"state_dict": ...}`` / ``{"model": ...}`` wrappers and DDP ``module.`` prefixes removed."""
    for key in ("state_dict", "model"):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, Mapping) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(
            f"{source} holds a {type(checkpoint).__name__}, not a state dict of tensors (nor a dict with a "
            "'state_dict'/'model' entry); pass the CLIP model's state_dict()"
        )
    state = dict(checkpoint)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def read_clip_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Reads an original CLIP checkpoint file into a flat CPU state dict.

    Accepts ``.safetensors``; PyTorch files (``.pt``/``.pth``/``.bin``) through ``torch.load(weights_only=True)``
    (open_clip / LAVIS checkpoints, ``{"state_dict"|"model": ...}`` unwrapped, ``module.`` stripped); and OpenAI's
    TorchScript archives (``RN50.pt``, ``ViT-B-32.pt``, ...) through ``torch.jit.load`` (no Python unpickling).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass a .pt/.pth/.bin/.safetensors file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return _unwrap(load_file(str(path)), str(path))
    if _is_torchscript_archive(path):
        module = torch.jit.load(str(path), map_location="cpu")
        return {k: v.detach().clone() for k, v in module.state_dict().items()}
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the fix
        raise ValueError(
            f"could not read {str(path)!r} with torch.load(weights_only=True): {err}. vl_hub never unpickles "
            "arbitrary objects; re-save the state dict alone (torch.save(model.state_dict(), p)) or as .safetensors"
        ) from err
    return _unwrap(checkpoint, str(path))


# ---------------------------------------------------------------------------------------------- OpenAI / LAVIS
def _strip_non_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = _unwrap(state_dict, "state_dict")
    state = {k: v for k, v in state.items() if k not in _OPENAI_NON_WEIGHTS}
    if "text_projection" not in state or not ("visual.proj" in state or "visual.attnpool.positional_embedding" in state):
        sample = sorted(state)[:8]
        hint = ""
        if any(k.startswith("text.") for k in state):
            hint = " (an open_clip CustomTextCLIP with an HF text tower, which vl_hub does not support)"
        elif any(k.startswith("visual.trunk.") for k in state):
            hint = " (an open_clip timm image tower, which vl_hub does not support)"
        raise ValueError(
            "not an OpenAI-layout CLIP state dict: it needs 'text_projection' and 'visual.proj' (ViT) or "
            f"'visual.attnpool.*' (ResNet){hint}; first keys: {sample}"
        )
    if "logit_bias" in state:
        raise ValueError("the state dict has 'logit_bias' (a SigLIP model), which is not CLIP; vl_hub cannot convert it")
    return state


def _count_blocks(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    indices = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return len(indices)


def config_from_openai_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    hidden_act: str = "quick_gelu",
    vision_overrides: Mapping[str, Any] | None = None,
    text_overrides: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> ClipConfig:
    """The architecture of an OpenAI-layout state dict, read off the tensors as OpenAI's ``build_model`` does.

    ViT when ``visual.proj`` exists (width = ``conv1`` channels, depth = number of blocks, patch = ``conv1`` kernel,
    image size = patch x grid of ``visual.positional_embedding``), else ModifiedResNet (blocks per stage counted,
    width = ``layer1.0.conv1`` channels, image size = 32 x the attention-pool grid). Text: context and vocabulary from
    the embeddings, width from ``ln_final``, depth counted, heads ``width // 64``; ``embed_dim`` from
    ``text_projection``. Heads follow OpenAI's rule; ``vision_overrides``/``text_overrides``/``overrides`` replace
    inferred fields (e.g. ``text_overrides={"heads": 2}`` for a model built with explicit heads, as LAVIS tests do).

    Args:
        state_dict: OpenAI / open_clip / LAVIS names (``module.`` prefixes and non-weight entries are ignored).
        hidden_act: ``"quick_gelu"`` for OpenAI weights (and LAVIS, which loads them); ``"gelu"`` for open_clip
            models trained without QuickGELU (most LAION ones).

    Returns:
        The :class:`ClipConfig`.
    """
    state = _strip_non_weights(state_dict)
    if "visual.proj" in state:
        conv = state["visual.conv1.weight"]
        patch = int(conv.shape[-1])
        grid = round(math.sqrt(state["visual.positional_embedding"].shape[0] - 1))
        if grid * grid + 1 != state["visual.positional_embedding"].shape[0]:
            raise ValueError("visual.positional_embedding does not hold a square grid plus the class token")
        vision: dict[str, Any] = {
            "image_size": patch * grid,
            "patch_size": patch,
            "width": int(conv.shape[0]),
            "layers": _count_blocks(state, "visual.transformer.resblocks."),
            "mlp_ratio": state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / conv.shape[0],
        }
    else:
        counts = [_count_blocks(state, f"visual.layer{stage}.") for stage in (1, 2, 3, 4)]
        pos = state["visual.attnpool.positional_embedding"].shape[0]
        grid = round(math.sqrt(pos - 1))
        if grid * grid + 1 != pos:
            raise ValueError("visual.attnpool.positional_embedding does not hold a square grid plus the mean token")
        vision = {"image_size": grid * 32, "width": int(state["visual.layer1.0.conv1.weight"].shape[0]), "layers": counts}
    vision["hidden_act"] = hidden_act
    width = int(state["ln_final.weight"].shape[0])
    text: dict[str, Any] = {
        "vocab_size": int(state["token_embedding.weight"].shape[0]),
        "context_length": int(state["positional_embedding"].shape[0]),
        "width": width,
        "layers": _count_blocks(state, "transformer.resblocks."),
        "mlp_ratio": state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        "hidden_act": hidden_act,
    }
    vocab = text["vocab_size"]
    # OpenAI's BPE vocabulary puts <|startoftext|>, <|endoftext|> last; other vocabularies keep the defaults only
    # where they fit.
    text.update({"bos_token_id": vocab - 2, "eos_token_id": vocab - 1, "pad_token_id": vocab - 1})
    vision.update(vision_overrides or {})
    text.update(text_overrides or {})
    kwargs: dict[str, Any] = {"embed_dim": int(state["text_projection"].shape[1])}
    kwargs.update(overrides)
    return ClipConfig(vision_config=vision, text_config=text, **kwargs)


def convert_openai_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI / open_clip / LAVIS names -> vl_hub names: ``visual.*`` and ``logit_scale`` unchanged, the top-level
    text names moved under ``text.``. Raises listing keys that belong to neither."""
    state = _strip_non_weights(state_dict)
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith("visual.") or key == "logit_scale":
            out[key] = value
        elif key.startswith(_OPENAI_TEXT_PREFIXES):
            out["text." + key] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{len(unknown)} keys are not part of an OpenAI-layout CLIP: {sorted(unknown)[:20]}")
    return out


#: LAVIS's CLIP (``lavis.models.clip_models.model.CLIP``) uses open_clip's = OpenAI's names.
convert_lavis_state_dict = convert_openai_state_dict


def to_openai_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """vl_hub names -> OpenAI names (inverse of :func:`convert_openai_state_dict`)."""
    return {(k[len("text.") :] if k.startswith("text.") else k): v for k, v in state_dict.items()}


# ---------------------------------------------------------------------------------------------- transformers
_HF_LAYER = re.compile(r"^(text|vision)_model\.encoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER_RENAMES = {
    "self_attn.out_proj.weight": "attn.out_proj.weight",
    "self_attn.out_proj.bias": "attn.out_proj.bias",
    "layer_norm1.weight": "ln_1.weight",
    "layer_norm1.bias": "ln_1.bias",
    "layer_norm2.weight": "ln_2.weight",
    "layer_norm2.bias": "ln_2.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight",
    "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight",
    "mlp.fc2.bias": "mlp.c_proj.bias",
}
_HF_RENAMES = {
    "text_model.embeddings.token_embedding.weight": "text.token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "text.positional_embedding",
    "text_model.final_layer_norm.weight": "text.ln_final.weight",
    "text_model.final_layer_norm.bias": "text.ln_final.bias",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
    "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "logit_scale": "logit_scale",
}
_HF_TRANSPOSED = {"text_projection.weight": "text.text_projection", "visual_projection.weight": "visual.proj"}


def _hf_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, (str, os.PathLike)):
        return json.loads(Path(config).read_text(encoding="utf-8"))
    if isinstance(config, Mapping):
        return dict(config)
    return config.to_dict()


def config_from_transformers(hf_config: Any) -> ClipConfig:
    """A transformers ``CLIPConfig`` (object, dict or ``config.json`` path) as a :class:`ClipConfig`.

    ``hidden_size``/``num_hidden_layers``/``num_attention_heads``/``intermediate_size`` become
    ``width``/``layers``/``heads``/``mlp_ratio``; ``max_position_embeddings`` the context length;
    ``projection_dim`` ``embed_dim``. transformers pools at the first ``eos_token_id`` except for legacy configs
    with ``eos_token_id == 2``, which pool at ``argmax(input_ids)``: both are kept.
    """
    cfg = _hf_dict(hf_config)
    model_type = cfg.get("model_type")
    if model_type not in ("clip", None):
        raise ValueError(f"config model_type is {model_type!r}; only transformers CLIP ('clip') checkpoints convert")
    vision, text = cfg.get("vision_config") or {}, cfg.get("text_config") or {}

    def act(owner: str, value: str) -> str:
        if value not in ("quick_gelu", "gelu"):
            raise ValueError(f"{owner}.hidden_act={value!r} has no vl_hub CLIP equivalent; supported: quick_gelu, gelu")
        return value

    if vision.get("num_channels", 3) != 3:
        raise ValueError(f"vision_config.num_channels={vision['num_channels']}; vl_hub CLIP takes RGB (3) images")
    v_width = vision.get("hidden_size", 768)
    t_width = text.get("hidden_size", 512)
    eos = text.get("eos_token_id", 49407)
    if isinstance(eos, list):
        eos = eos[0]
    vocab = text.get("vocab_size", 49408)
    if eos == 2:
        # legacy transformers configs: pooled at argmax(ids), which the EOT as the largest id reproduces
        eos = vocab - 1
    return ClipConfig(
        vision_config={
            "image_size": vision.get("image_size", 224),
            "patch_size": vision.get("patch_size", 32),
            "width": v_width,
            "layers": vision.get("num_hidden_layers", 12),
            "heads": vision.get("num_attention_heads", 12),
            "mlp_ratio": vision.get("intermediate_size", 3072) / v_width,
            "hidden_act": act("vision_config", vision.get("hidden_act", "quick_gelu")),
            "layer_norm_eps": vision.get("layer_norm_eps", 1e-5),
        },
        text_config={
            "vocab_size": vocab,
            "context_length": text.get("max_position_embeddings", 77),
            "width": t_width,
            "layers": text.get("num_hidden_layers", 12),
            "heads": text.get("num_attention_heads", 8),
            "mlp_ratio": text.get("intermediate_size", 2048) / t_width,
            "hidden_act": act("text_config", text.get("hidden_act", "quick_gelu")),
            "layer_norm_eps": text.get("layer_norm_eps", 1e-5),
            "pad_token_id": text.get("pad_token_id", 1),
            "bos_token_id": text.get("bos_token_id", 49406),
            "eos_token_id": eos,
        },
        embed_dim=cfg.get("projection_dim", 512),
        logit_scale_init_value=cfg.get("logit_scale_init_value", math.log(1 / 0.07)),
    )


def convert_transformers_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers ``CLIPModel`` names -> vl_hub names (q/k/v fused into ``in_proj_*`` in that order, projection
    matrices transposed, ``position_ids`` buffers dropped). Raises listing keys it cannot place."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state_dict.items():
        if key.endswith("position_ids"):
            continue
        if key in _HF_RENAMES:
            out[_HF_RENAMES[key]] = value
        elif key in _HF_TRANSPOSED:
            out[_HF_TRANSPOSED[key]] = value.t().contiguous()
        elif match := _HF_LAYER.match(key):
            tower, index, rest = match.groups()
            prefix = f"{'text' if tower == 'text' else 'visual'}.transformer.resblocks.{index}."
            if rest in _HF_LAYER_RENAMES:
                out[prefix + _HF_LAYER_RENAMES[rest]] = value
            elif m := re.match(r"^self_attn\.([qkv])_proj\.(weight|bias)$", rest):
                qkv.setdefault((prefix, m.group(2)), {})[m.group(1)] = value
            else:
                unknown.append(key)
        else:
            unknown.append(key)
    for (prefix, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"{prefix}: the checkpoint lacks some of q/k/v_proj.{kind} ({sorted(parts)})")
        out[f"{prefix}attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    if unknown:
        raise ValueError(f"{len(unknown)} keys of the transformers checkpoint have no vl_hub place: {sorted(unknown)[:20]}")
    return out


def to_transformers_config(config: ClipConfig) -> Any:
    """A transformers ``CLIPConfig`` with the architecture of a ViT :class:`ClipConfig`."""
    from transformers import CLIPConfig

    vision, text = config.vision_config, config.text_config
    if vision.is_resnet:
        raise ValueError("transformers has no ResNet CLIP; only ViT towers convert to transformers")
    return CLIPConfig(
        text_config={
            "vocab_size": text.vocab_size,
            "hidden_size": text.width,
            "intermediate_size": int(text.width * text.mlp_ratio),
            "num_hidden_layers": text.layers,
            "num_attention_heads": text.num_heads,
            "max_position_embeddings": text.context_length,
            "hidden_act": text.hidden_act,
            "layer_norm_eps": text.layer_norm_eps,
            "pad_token_id": text.pad_token_id,
            "bos_token_id": text.bos_token_id,
            # transformers pools at the first eos; ours at argmax when the EOT is the largest id: the same id
            "eos_token_id": text.eos_token_id if text.eos_token_id is not None else text.vocab_size - 1,
            "projection_dim": config.embed_dim,
        },
        vision_config={
            "hidden_size": vision.width,
            "intermediate_size": int(vision.width * vision.mlp_ratio),
            "num_hidden_layers": vision.layers,
            "num_attention_heads": vision.num_heads,
            "image_size": vision.image_size,
            "patch_size": vision.patch_size,
            "hidden_act": vision.hidden_act,
            "layer_norm_eps": vision.layer_norm_eps,
            "projection_dim": config.embed_dim,
        },
        projection_dim=config.embed_dim,
        logit_scale_init_value=config.logit_scale_init_value,
    )


def to_transformers_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """vl_hub names -> transformers ``CLIPModel`` names (inverse of :func:`convert_transformers_state_dict`)."""
    inverse = {v: k for k, v in _HF_RENAMES.items()}
    inverse_layer = {v: k for k, v in _HF_LAYER_RENAMES.items()}
    transposed = {v: k for k, v in _HF_TRANSPOSED.items()}
    block = re.compile(r"^(text|visual)\.transformer\.resblocks\.(\d+)\.(.+)$")
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in inverse:
            out[inverse[key]] = value
        elif key in transposed:
            out[transposed[key]] = value.t().contiguous()
        elif match := block.match(key):
            tower, index, rest = match.groups()
            prefix = f"{'text' if tower == 'text' else 'vision'}_model.encoder.layers.{index}."
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = rest.rsplit("_", 1)[1]
                for name, part in zip("qkv", value.chunk(3, dim=0)):
                    out[f"{prefix}self_attn.{name}_proj.{kind}"] = part.contiguous()
            elif rest in inverse_layer:
                out[prefix + inverse_layer[rest]] = value
            else:
                raise ValueError(f"{key} has no transformers CLIP counterpart")
        else:
            raise ValueError(f"{key} has no transformers CLIP counterpart (ResNet towers do not convert)")
    return out


def _read_transformers_folder(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} has no config.json; pass a folder saved by transformers' CLIPModel.save_pretrained")
    weights = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    weights = [w for w in weights if not w.name.endswith(".index.json")]
    if not weights:
        raise FileNotFoundError(f"{folder} has no model.safetensors / pytorch_model.bin weights")
    state: dict[str, torch.Tensor] = {}
    for file in weights:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(str(file)))
        else:
            state.update(torch.load(str(file), map_location="cpu", weights_only=True))
    return json.loads(config_file.read_text(encoding="utf-8")), state


# ---------------------------------------------------------------------------------------------- loading / writing
def _head_and_config_from_catalogue(model_type: str) -> tuple[type[ClipPreTrainedModel], ClipConfig, Any]:
    from vl_hub.models.clip.catalogue import lookup

    entry = lookup(model_type)
    head = ClipForZeroShotClassification if entry.head == "ClipForZeroShotClassification" else ClipModel
    return head, entry.config(), entry


def _load_into(
    head_class: type[ClipPreTrainedModel], config: ClipConfig, converted: dict[str, torch.Tensor], strict: bool
) -> ClipPreTrainedModel:
    # Shapes and names are checked on a parameter-free (meta) copy first: a wrong config fails fast, before the
    # real model (hundreds of millions of parameters for ViT-L) is allocated.
    with torch.device("meta"):
        own = head_class(config).state_dict()
    missing = sorted(k for k in own if k not in converted)
    unexpected = sorted(k for k in converted if k not in own)
    bad = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if bad:
        raise ValueError(
            f"{len(bad)} tensors do not fit {head_class.__name__} built from this config (wrong model type / config "
            "for this checkpoint?):\n  " + "\n  ".join(bad[:20])
        )
    if missing or unexpected:
        message = f"{len(missing)} missing keys {missing[:20]}; {len(unexpected)} unexpected keys {unexpected[:20]}"
        if strict:
            raise ValueError(f"loading into {head_class.__name__}: {message}. Pass strict=False to load anyway")
        logger.warning("loading into %s: %s", head_class.__name__, message)
    model = head_class(config)
    own = model.state_dict()
    with torch.no_grad():
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in converted.items() if k in own}, strict=False)
    return model.eval()


def load_clip_checkpoint(
    source_kind: str,
    src: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    config: ClipConfig | None = None,
    head_class: type[ClipPreTrainedModel] | None = None,
    model_type: str | None = None,
    strict: bool = True,
) -> ClipPreTrainedModel:
    """Builds a CLIP head holding an original checkpoint's weights.

    Args:
        source_kind: ``"openai"`` (OpenAI / open_clip), ``"lavis"`` or ``"transformers"``.
        src: a checkpoint file or state dict (openai, lavis), or a transformers checkpoint folder.
        config: the architecture; default: ``model_type``'s catalogue entry, else read off the checkpoint
            (:func:`config_from_openai_state_dict` / :func:`config_from_transformers`).
        head_class: :class:`ClipModel` (default) or :class:`ClipForZeroShotClassification`; default from the
            catalogue entry when ``model_type`` is given.
        model_type: a catalogue entry, ``"clip:ViT-B-32"``, ``"clip_feature_extractor:RN50"`` or just ``"ViT-B-16"``.
        strict: raise when keys are missing or unexpected.

    Returns:
        The head in eval mode (float32).
    """
    if source_kind not in SOURCE_KINDS:
        raise ValueError(f"source_kind={source_kind!r} is not supported; use one of {', '.join(SOURCE_KINDS)}")
    catalogue_head = None
    if model_type is not None:
        catalogue_head, catalogue_config, _ = _head_and_config_from_catalogue(model_type)
        config = config or catalogue_config
    head_class = head_class or catalogue_head or ClipModel
    if source_kind == "transformers":
        if isinstance(src, Mapping):
            raise TypeError("source_kind='transformers' takes a checkpoint folder (config.json + weights), not a dict")
        hf_config, state = _read_transformers_folder(Path(src))
        config = config or config_from_transformers(hf_config)
        converted = convert_transformers_state_dict(state)
    else:
        state = read_clip_checkpoint(src) if isinstance(src, (str, os.PathLike)) else _unwrap(src, "state_dict")
        config = config or config_from_openai_state_dict(state)
        converted = convert_openai_state_dict(state)
    converted = {k: v.float() if v.is_floating_point() else v for k, v in converted.items()}
    return _load_into(head_class, config, converted, strict)


def convert(
    source_kind: str,
    src: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    out_dir: str | os.PathLike[str],
    model_type: str | None = None,
    *,
    config: ClipConfig | None = None,
    head_class: type[ClipPreTrainedModel] | None = None,
    tokenizer: Any = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Converts an original CLIP checkpoint into a vl_hub checkpoint folder.

    Writes ``config.json`` (``architectures`` = the head class), ``model.safetensors`` and the processor files:
    ``preprocessor_config.json`` (:class:`~vl_hub.models.clip.image_processing_clip.ClipImageProcessor` at the
    model's resolution) and, when a tokenizer is available, the tokenizer files and ``processor_config.json``
    (:class:`~vl_hub.models.clip.processing_clip.ClipProcessor`). ``AutoModel`` / ``AutoProcessor``
    ``.from_pretrained(out_dir)`` load it after ``import vl_hub``.

    Args:
        source_kind: ``"openai"``, ``"lavis"`` or ``"transformers"``.
        src: checkpoint file / state dict (openai, lavis) or transformers folder.
        out_dir: output folder (created).
        model_type: catalogue entry (``"clip:ViT-B-32"``; head ``ClipForZeroShotClassification``;
            ``"clip_feature_extractor:..."``: ``ClipModel``); ``None`` reads the architecture off the checkpoint.
        config, head_class: override the catalogue / inferred choice (see :func:`load_clip_checkpoint`).
        tokenizer: a tokenizer object, or a source for
            :func:`~vl_hub.models.clip.processing_clip.build_clip_tokenizer` (tokenizer folder, ``vocab.json`` folder,
            OpenAI's ``bpe_simple_vocab_16e6.txt.gz``). Default: the transformers folder's own tokenizer; for openai /
            lavis sources none (a warning says the tokenizer files are missing).
        dtype: dtype of the saved weights.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    from vl_hub.models.clip.image_processing_clip import ClipImageProcessor
    from vl_hub.models.clip.processing_clip import ClipProcessor, build_clip_tokenizer

    model = load_clip_checkpoint(source_kind, src, config=config, head_class=head_class, model_type=model_type)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to(dtype).save_pretrained(out)

    context = model.config.text_config.context_length
    if tokenizer is None and source_kind == "transformers":
        folder = Path(src)  # type: ignore[arg-type]
        if (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file():
            tokenizer = folder
    if tokenizer is not None and not hasattr(tokenizer, "convert_tokens_to_ids"):
        tokenizer = build_clip_tokenizer(tokenizer, context_length=context)
    image_processor = ClipImageProcessor(image_size=model.config.vision_config.image_size)
    if source_kind == "transformers":
        image_processor = _image_processor_from_transformers(Path(src), image_processor)  # type: ignore[arg-type]
    if tokenizer is None:
        image_processor.save_pretrained(out)
        logger.warning(
            "no tokenizer given: %s holds the model and the image processor only; pass tokenizer= (e.g. OpenAI's "
            "bpe_simple_vocab_16e6.txt.gz or a CLIP tokenizer folder) to add the tokenizer and ClipProcessor",
            out,
        )
    else:
        tokenizer.model_max_length = context
        ClipProcessor(image_processor, tokenizer, context_length=context).save_pretrained(out)
    return out


def _image_processor_from_transformers(folder: Path, default: Any) -> Any:
    """The transformers folder's normalisation constants and crop size, when it has a preprocessor config."""
    from vl_hub.models.clip.image_processing_clip import ClipImageProcessor

    file = folder / "preprocessor_config.json"
    if not file.is_file():
        return default
    cfg = json.loads(file.read_text(encoding="utf-8"))
    crop = cfg.get("crop_size", default.image_size)
    size = crop.get("height", default.image_size) if isinstance(crop, Mapping) else int(crop)
    return ClipImageProcessor(
        image_size=size,
        image_mean=cfg.get("image_mean", default.image_mean),
        image_std=cfg.get("image_std", default.image_std),
    )
