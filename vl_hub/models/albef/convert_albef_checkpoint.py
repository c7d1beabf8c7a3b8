"""Converts original ALBEF checkpoints (LAVIS ``albef_models``, or the ALBEF repository's) into vl_hub ALBEF heads.

vl_hub's ALBEF heads use LAVIS's submodule names, so the conversion is the family-neutral bookkeeping of
:mod:`vl_hub.models._lavis_conversion` plus ALBEF's own renames, declared on each head:

* a ``BertForMaskedLM`` text encoder (pre-training / feature-extractor checkpoints: ``text_encoder.bert.*``,
  ``text_encoder.cls.*``) is read as ``text_encoder.*`` by the heads whose text encoder is a plain BERT (every head
  but :class:`~vl_hub.models.albef.modeling_albef_pretrain.AlbefForPreTraining`); its MLM head is dropped (LAVIS
  ``rename_text_keys``);
* ``*.embeddings.position_ids`` buffers are dropped, tied names checked or filled in (``cls.predictions.*``, the NLVR
  cross-attention keys/values shared by layer pairs), ``pos_embed`` interpolated to the config's grid;
* training state a head does not keep (momentum copies, queues, ``temp``, ``itm_head`` for :class:`AlbefModel`) is
  dropped with a log line; momentum copies a checkpoint lacks start as copies of the online weights.

:func:`vqa_state_from_pretraining` reproduces LAVIS's ``AlbefVQA.load_from_pretrained``: a VQA answer decoder
initialised from the fusion layers of a pre-training checkpoint.

Command line (reads ``.pth`` with ``torch.load(weights_only=True)`` or ``.safetensors``; never unpickles objects)::

    python -m vl_hub.models.albef.convert_albef_checkpoint --model-type albef_retrieval:coco \\
        albef_coco_retrieval_lavis.pt albef-retrieval-coco --vocab bert-base-uncased/vocab.txt
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import PreTrainedModel

from vl_hub.models import _lavis_conversion
from vl_hub.models._lavis_conversion import LoadReport, read_checkpoint
from vl_hub.models.albef.configuration_albef import AlbefConfig

logger = logging.getLogger(__name__)

__all__ = [
    "LoadReport",
    "convert_albef_checkpoint",
    "convert_lavis_state_dict",
    "head_class_for",
    "load_lavis_checkpoint",
    "main",
    "read_checkpoint",
    "vqa_state_from_pretraining",
]

ModelT = TypeVar("ModelT", bound=PreTrainedModel)


def convert_lavis_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    head_class: type[PreTrainedModel],
    report: LoadReport | None = None,
) -> dict[str, torch.Tensor]:
    """Maps a LAVIS ALBEF state dict onto the parameter names of ``head_class``
    (:func:`vl_hub.models._lavis_conversion.convert_lavis_state_dict` with the head's renames; logs here)."""
    return _lavis_conversion.convert_lavis_state_dict(state_dict, head_class, report, logger)


def load_lavis_checkpoint(
    state_dict_or_path: Mapping[str, torch.Tensor] | str | os.PathLike[str],
    config: Any,
    head_class: type[ModelT],
    strict: bool = True,
    return_report: bool = False,
) -> ModelT | tuple[ModelT, LoadReport]:
    """Builds ``head_class(config)`` and loads a LAVIS ALBEF checkpoint (state dict or ``.pth``/``.safetensors``
    path) into it; raises listing missing/unexpected keys (``strict=False``: logs them).

    Besides the head's class-level renames and drops, state the head does not have *for this config* is dropped with a
    log line (``head_class.lavis_unused_state_for(config)``: the momentum copies of a VQA / NLVR / visual-entailment
    head built with ``use_distill=False``).

    Returns:
        The model in eval mode (and the :class:`LoadReport` with ``return_report=True``).
    """
    state_dict = (
        read_checkpoint(state_dict_or_path)
        if isinstance(state_dict_or_path, (str, os.PathLike))
        else _lavis_conversion.unwrap_state_dict(state_dict_or_path, "state_dict")
    )
    patterns = [re.compile(p) for p in getattr(head_class, "lavis_unused_state_for", lambda _: ())(config)]
    dropped = [k for k in state_dict if any(p.search(k) for p in patterns)]
    if dropped:
        logger.info(
            "%s with this config: dropped %d LAVIS entries it does not have: %s",
            head_class.__name__, len(dropped), _lavis_conversion.summarise_keys(dropped),
        )
        state_dict = {k: v for k, v in state_dict.items() if k not in set(dropped)}
    model, report = _lavis_conversion.load_lavis_checkpoint(
        state_dict, config, head_class, strict=strict, return_report=True, log=logger
    )
    report.dropped.extend(dropped)
    return (model, report) if return_report else model


_TEXT_KEY = re.compile(r"^(text_encoder(?:_m)?)\.(?:bert\.)?(?:(embeddings\..+)|encoder\.layer\.(\d+)\.(.+)|(cls\..+))$")


def vqa_state_from_pretraining(state_dict: Mapping[str, torch.Tensor], fusion_layer: int) -> dict[str, torch.Tensor]:
    """A VQA starting point from a pre-training checkpoint (LAVIS ``AlbefVQA.load_from_pretrained``).

    The answer decoder ``text_decoder.*`` (and its momentum copy ``text_decoder_m.*`` from ``text_encoder_m.*``) gets
    the embeddings and the fusion layers ``[fusion_layer, N)`` of the pre-trained text encoder, renumbered from 0, and
    its MLM head as the LM head; the text encoder keeps all its weights.

    Args:
        state_dict: a LAVIS ``albef_pretrain`` state dict (``text_encoder.bert.*`` / ``text_encoder.cls.*``).
        fusion_layer: the text config's ``fusion_layer`` (6 in ALBEF-base).

    Returns:
        A state dict for :func:`load_lavis_checkpoint` with ``AlbefForQuestionAnswering``.
    """
    out = dict(state_dict)
    for key, value in state_dict.items():
        match = _TEXT_KEY.match(key)
        if match is None:
            continue
        prefix, embeddings, layer, rest, head = match.groups()
        decoder = prefix.replace("text_encoder", "text_decoder")
        if embeddings is not None:
            out[f"{decoder}.bert.{embeddings}"] = value
        elif head is not None:
            out[f"{decoder}.{head}"] = value
        elif int(layer) >= fusion_layer:
            out[f"{decoder}.bert.encoder.layer.{int(layer) - fusion_layer}.{rest}"] = value
    return out


def head_class_for(name: str) -> type[PreTrainedModel]:
    """The vl_hub head of a LAVIS model name (``albef_retrieval`` -> ``AlbefForImageTextRetrieval``)."""
    from vl_hub.models.albef import (
        modeling_albef,
        modeling_albef_generation,
        modeling_albef_nlvr,
        modeling_albef_pretrain,
    )

    heads: dict[str, type[PreTrainedModel]] = {
        "albef_feature_extractor": modeling_albef.AlbefModel,
        "albef_retrieval": modeling_albef.AlbefForImageTextRetrieval,
        "albef_vqa": modeling_albef_generation.AlbefForQuestionAnswering,
        "albef_nlvr": modeling_albef_nlvr.AlbefForNLVR,
        "albef_classification": modeling_albef_nlvr.AlbefForVisualEntailment,
        "albef_pretrain": modeling_albef_pretrain.AlbefForPreTraining,
    }
    if name not in heads:
        raise KeyError(f"unknown ALBEF model name {name!r}; valid: {', '.join(heads)}")
    return heads[name]


def convert_albef_checkpoint(
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    output_dir: str | os.PathLike[str],
    model_type: str,
    vocab_file: str | os.PathLike[str] | None = None,
    from_pretraining: bool = False,
    strict: bool = True,
    config: AlbefConfig | None = None,
) -> PreTrainedModel:
    """Converts a LAVIS ALBEF checkpoint into a vl_hub checkpoint folder.

    Writes ``config.json`` (``architectures`` names the vl_hub head), ``model.safetensors`` and, with
    ``vocab_file``, the processor (tokenizer + image processor at the entry's resolution and ``max_txt_len``), so
    that ``AutoModel...from_pretrained(output_dir)`` / ``AutoProcessor.from_pretrained(output_dir)`` load it after
    ``import vl_hub``.

    Args:
        source: the LAVIS ``.pth``/``.pt``/``.safetensors`` file, or its state dict.
        output_dir: the folder to write.
        model_type: catalogue entry ``"name:type"`` (``"albef_retrieval:coco"``, see
            :data:`vl_hub.models.albef.catalogue.ALBEF_CATALOGUE`).
        vocab_file: BERT ``vocab.txt`` (``bert-base-uncased``) to save the processor; ``None`` saves no processor.
        from_pretraining: ``albef_vqa`` only: ``source`` is a pre-training checkpoint; the answer decoder starts from
            its fusion layers (:func:`vqa_state_from_pretraining`).
        strict: raise on missing / unexpected keys.
        config: an :class:`AlbefConfig` replacing the entry's architecture (a custom or smaller model of the same
            head); ``None`` uses the catalogue's.

    Returns:
        The converted model.
    """
    from vl_hub.models.albef.catalogue import lookup

    entry = lookup(model_type)
    config = entry.config() if config is None else config
    head = head_class_for(entry.name)
    state_dict = read_checkpoint(source) if isinstance(source, (str, os.PathLike)) else dict(source)
    if from_pretraining:
        if entry.name != "albef_vqa":
            raise ValueError(f"from_pretraining only applies to albef_vqa entries, not {model_type!r}")
        state_dict = vqa_state_from_pretraining(state_dict, config.text_config.fusion_layer)
    model = load_lavis_checkpoint(state_dict, config, head, strict=strict)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    if vocab_file is not None:
        from vl_hub.models.albef.processing_albef import (
            AlbefProcessor,
            build_albef_tokenizer,
        )
        from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor

        processor = AlbefProcessor(
            VlHubBlipImageProcessor(image_size=config.vision_config.image_size), build_albef_tokenizer(vocab_file),
            max_txt_len=config.max_txt_len,
        )
        processor.save_pretrained(output_dir)
    logger.info("wrote %s (%s) to %s", head.__name__, model_type, output_dir)
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description="Convert a LAVIS ALBEF checkpoint into a vl_hub checkpoint folder")
    parser.add_argument("source", help="LAVIS .pth/.pt (read with weights_only=True) or .safetensors file")
    parser.add_argument("output_dir", help="folder to write (config.json, model.safetensors, processor files)")
    parser.add_argument("--model-type", required=True, help="catalogue entry NAME:TYPE, e.g. albef_retrieval:coco")
    parser.add_argument("--vocab", default=None, help="BERT vocab.txt to save the processor with the model")
    parser.add_argument("--from-pretraining", action="store_true", help="albef_vqa from a pre-training checkpoint")
    parser.add_argument("--no-strict", action="store_true", help="log missing/unexpected keys instead of raising")
    parser.add_argument("--config", default=None, help="AlbefConfig JSON (or folder) replacing the entry's architecture")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    config = None
    if args.config:
        config_path = Path(args.config)
        config = AlbefConfig.from_json_file(config_path) if config_path.is_file() else AlbefConfig.from_pretrained(config_path)
    convert_albef_checkpoint(
        args.source, args.output_dir, args.model_type, vocab_file=args.vocab,
        from_pretraining=args.from_pretraining, strict=not args.no_strict, config=config,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
