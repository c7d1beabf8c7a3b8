"""Converts original ALPRO checkpoints (LAVIS ``alpro_models``, the ALPRO repository's releases) into vl_hub heads.

What LAVIS's ``AlproBase.load_from_pretrained`` does to a checkpoint, done here before loading:

* ``bert.`` is removed from the text-encoder keys (original ALPRO checkpoints hold ``text_encoder.bert.*``, LAVIS
  models ``text_encoder.*``), and LAVIS's ``visual_encoder.model.*`` (the TimeSformer wrapper) becomes
  ``visual_encoder.*``;
* ``visual_encoder.model.pos_embed`` saved for another patch count is resized along the flattened patch axis with
  nearest-neighbour interpolation (the cls row kept), exactly LAVIS's ``resize_spatial_embedding`` -- a 1-D resize,
  not the 2-D grid interpolation of the ViT families;
* ``visual_encoder.model.time_embed`` saved for another frame count is resized with nearest-neighbour interpolation
  (LAVIS ``resize_temporal_embedding``), e.g. the 8-frame pre-trained checkpoint loaded into a 16-frame QA model.

The rest is the family-neutral bookkeeping of :mod:`vl_hub.models._lavis_conversion` (``position_ids`` buffers
dropped, state a head does not keep dropped with a log line -- the MLM head ``text_encoder.cls.*`` of pre-training
checkpoints, and for the QA head the contrastive projections, ``itm_head`` and ``temp`` --, strict key checking).

:func:`convert` writes a complete vl_hub checkpoint folder (model, ``AlproProcessor`` with the tokenizer and video
processor, the answer vocabulary as ``id2label`` for QA) from a catalogue entry::

    python -m vl_hub.models.alpro.convert_alpro_checkpoint alpro_qa:msrvtt alpro_msrvtt_qa.pth out/ \
        --vocab bert-base-uncased/vocab.txt --answers train_ans2label.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from vl_hub.layers.timesformer import interpolate_time_embed
from vl_hub.models import _lavis_conversion
from vl_hub.models._lavis_conversion import LoadReport, read_checkpoint, unwrap_state_dict
from vl_hub.models.alpro.configuration_alpro import AlproConfig

logger = logging.getLogger(__name__)

__all__ = [
    "LoadReport",
    "convert",
    "convert_lavis_state_dict",
    "fit_video_embeddings",
    "load_answer_vocabulary",
    "load_lavis_checkpoint",
    "read_checkpoint",
    "resize_spatial_embedding",
    "resize_temporal_embedding",
]

ModelT = TypeVar("ModelT", bound=PreTrainedModel)

POS_EMBED_KEY = "visual_encoder.pos_embed"
TIME_EMBED_KEY = "visual_encoder.time_embed"


def resize_spatial_embedding(pos_embed: torch.Tensor, num_patches: int) -> torch.Tensor:
    """LAVIS's ``resize_spatial_embedding``: ``pos_embed (1, 1+P0, D)`` -> ``(1, 1+num_patches, D)``, the patch rows
    resampled as one flattened sequence with ``F.interpolate(mode="nearest")``, the cls row kept."""
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1 or pos_embed.shape[1] < 2:
        raise ValueError(f"pos_embed must have shape (1, 1 + patches, D), got {tuple(pos_embed.shape)}")
    if num_patches < 1:
        raise ValueError(f"num_patches must be >= 1, got {num_patches}")
    if pos_embed.shape[1] == num_patches + 1:
        return pos_embed
    patches = pos_embed[:, 1:].float().transpose(1, 2)
    resized = F.interpolate(patches, size=num_patches, mode="nearest").transpose(1, 2).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], resized], dim=1)


def resize_temporal_embedding(time_embed: torch.Tensor, num_frames: int) -> torch.Tensor:
    """LAVIS's ``resize_temporal_embedding``: ``time_embed (1, T0, D)`` -> ``(1, num_frames, D)``, nearest."""
    return interpolate_time_embed(time_embed, num_frames, mode="nearest")


def fit_video_embeddings(
    state_dict: dict[str, torch.Tensor], config: AlproConfig, report: LoadReport | None = None
) -> dict[str, torch.Tensor]:
    """Resizes ``visual_encoder.pos_embed`` / ``time_embed`` of a converted state dict (in place) to the patch count and
    frame count of ``config`` the way LAVIS does at load time; records the keys in ``report.interpolated``."""
    vision = config.vision_config
    num_patches = (vision.image_size // vision.patch_size) ** 2
    if POS_EMBED_KEY in state_dict and state_dict[POS_EMBED_KEY].shape[1] != num_patches + 1:
        logger.info(
            "resizing %s from %d to %d positions (LAVIS resize_spatial_embedding)",
            POS_EMBED_KEY, state_dict[POS_EMBED_KEY].shape[1], num_patches + 1,
        )
        state_dict[POS_EMBED_KEY] = resize_spatial_embedding(state_dict[POS_EMBED_KEY], num_patches)
        if report is not None:
            report.interpolated.append(POS_EMBED_KEY)
    if TIME_EMBED_KEY in state_dict and state_dict[TIME_EMBED_KEY].shape[1] != vision.num_frames:
        logger.info(
            "resizing %s from %d to %d frames (LAVIS resize_temporal_embedding)",
            TIME_EMBED_KEY, state_dict[TIME_EMBED_KEY].shape[1], vision.num_frames,
        )
        state_dict[TIME_EMBED_KEY] = resize_temporal_embedding(state_dict[TIME_EMBED_KEY], vision.num_frames)
        if report is not None:
            report.interpolated.append(TIME_EMBED_KEY)
    return state_dict


def convert_lavis_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    head_class: type[PreTrainedModel],
    report: LoadReport | None = None,
) -> dict[str, torch.Tensor]:
    """Maps a LAVIS / original ALPRO state dict onto the parameter names of ``head_class`` (renames ``bert.`` and
    ``visual_encoder.model.`` away, drops what the head does not keep; see the module docstring).

    Args:
        state_dict: ``model.state_dict()`` of a LAVIS ALPRO model, or a checkpoint dict with a ``"model"`` entry.
        head_class: an ALPRO head (its ``_lavis_renames`` / ``_lavis_unused_state`` are honoured).
        report: filled with what was dropped, when given.

    Returns:
        A new state dict (tensors shared with the input).
    """
    state = unwrap_state_dict(state_dict, "state_dict")
    # LAVIS removes "bert." wherever it appears (load_from_pretrained); the heads' renames cover the two prefixes
    # where it does in ALPRO checkpoints, anything else is reported as unexpected.
    return _lavis_conversion.convert_lavis_state_dict(state, head_class, report, logger)


def load_lavis_checkpoint(
    state_dict_or_path: Mapping[str, torch.Tensor] | str | os.PathLike[str],
    config: AlproConfig,
    head_class: type[ModelT],
    strict: bool = True,
    return_report: bool = False,
) -> ModelT | tuple[ModelT, LoadReport]:
    """Builds ``head_class(config)`` and loads a LAVIS / original ALPRO checkpoint into it.

    Args:
        state_dict_or_path: a state dict, or a ``.pth``/``.pt``/``.safetensors`` file (read with
            ``torch.load(weights_only=True)``; a ``"model"`` entry is unwrapped).
        config: the head's config (``vision_config.num_frames`` / ``image_size`` decide the resizing of the video
            embeddings, as LAVIS's ``n_frms`` / ``image_size``).
        head_class: :class:`~vl_hub.models.alpro.modeling_alpro.AlproForVideoTextRetrieval`,
            :class:`~vl_hub.models.alpro.modeling_alpro.AlproForVideoQuestionAnswering` or
            :class:`~vl_hub.models.alpro.modeling_alpro.AlproModel`.
        strict: raise when keys are missing or unexpected after conversion (``False``: log them, as LAVIS's
            ``strict=False`` load; e.g. a pre-trained checkpoint into the QA head leaves the classifier fresh).
        return_report: also return the :class:`LoadReport`.

    Returns:
        The model in eval mode (and the report).
    """
    state = read_checkpoint(state_dict_or_path) if isinstance(state_dict_or_path, (str, os.PathLike)) else state_dict_or_path
    report = LoadReport()
    converted = fit_video_embeddings(convert_lavis_state_dict(state, head_class, report), config, report)
    model, second = _lavis_conversion.load_lavis_checkpoint(
        converted, config, head_class, strict=strict, return_report=True, log=logger
    )
    report.filled, report.missing, report.unexpected = second.filled, second.missing, second.unexpected
    report.interpolated += second.interpolated
    return (model, report) if return_report else model  # type: ignore[return-value]


def load_answer_vocabulary(source: str | os.PathLike[str] | Mapping[str, int] | Sequence[str]) -> dict[int, str]:
    """``id2label`` of a QA head from ALPRO/LAVIS's ``train_ans2label.json`` (``{answer: class}``), a list of answers
    in class order, or a mapping; raises when the classes are not exactly ``0 .. C-1``."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"answer vocabulary {str(path)!r} does not exist; pass train_ans2label.json")
        source = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(source, Mapping):
        id2label = {int(index): str(answer) for answer, index in source.items()}
        if len(id2label) != len(source):
            raise ValueError("the answer vocabulary maps two answers to one class; expected {answer: class} one to one")
    elif isinstance(source, Sequence) and not isinstance(source, str):
        id2label = {i: str(answer) for i, answer in enumerate(source)}
    else:
        raise TypeError(f"answers must be a path, a {{answer: class}} mapping or a list, got {type(source).__name__}")
    if sorted(id2label) != list(range(len(id2label))):
        raise ValueError(f"answer classes must be 0 .. {len(id2label) - 1} without gaps; got {sorted(id2label)[:10]}...")
    return id2label


def convert(
    model_type: str,
    src: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    out_dir: str | os.PathLike[str],
    *,
    tokenizer: Any = None,
    answers: str | os.PathLike[str] | Mapping[str, int] | Sequence[str] | None = None,
    config: AlproConfig | None = None,
    strict: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Converts an original ALPRO checkpoint into a vl_hub checkpoint folder.

    Writes ``config.json`` (``architectures`` = the head of the catalogue entry), ``model.safetensors`` and, when a
    tokenizer is given, the :class:`~vl_hub.models.alpro.processing_alpro.AlproProcessor` files (tokenizer + video
    processor at the entry's frame count and resolution). ``AutoModel`` / ``AutoProcessor`` ``.from_pretrained(out)``
    load it after ``import vl_hub``.

    Args:
        model_type: catalogue entry ``"alpro_retrieval:msrvtt"``, ``"alpro_retrieval:didemo"``, ``"alpro_qa:msrvtt"``,
            ``"alpro_qa:msvd"``.
        src: the checkpoint file (e.g. ``alpro_msrvtt_qa.pth``) or its state dict.
        out_dir: output folder (created).
        tokenizer: a tokenizer, or a ``bert-base-uncased`` ``vocab.txt`` / tokenizer folder for
            :func:`~vl_hub.models.alpro.processing_alpro.build_alpro_tokenizer`; ``None`` writes the model only.
        answers: QA answer vocabulary (``train_ans2label.json``, see :func:`load_answer_vocabulary`); ``None`` keeps
            ``LABEL_i`` names (with a warning).
        config: override the catalogue's architecture.
        strict: see :func:`load_lavis_checkpoint`.
        dtype: dtype of the saved weights.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    from vl_hub.models.alpro.catalogue import lookup
    from vl_hub.models.alpro.processing_alpro import AlproProcessor, build_alpro_tokenizer
    from vl_hub.models.alpro.video_processing_alpro import AlproVideoProcessor

    entry = lookup(model_type)
    config = config or entry.config()
    if answers is not None:
        id2label = load_answer_vocabulary(answers)
        if len(id2label) != config.num_labels:
            raise ValueError(
                f"the answer vocabulary has {len(id2label)} answers but {model_type} has {config.num_labels} classes; "
                "pass the train_ans2label.json of that dataset"
            )
        config.id2label = id2label
        config.label2id = {answer: index for index, answer in id2label.items()}
    elif entry.num_answers:
        logger.warning("no answer vocabulary given: %s keeps LABEL_i class names; pass answers=train_ans2label.json", out_dir)
    model = load_lavis_checkpoint(src, config, entry.head_class(), strict=strict)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to(dtype).save_pretrained(out)
    if tokenizer is None:
        logger.warning("no tokenizer given: %s holds the model only; pass tokenizer= (bert-base-uncased vocab.txt)", out)
        return out
    if not hasattr(tokenizer, "convert_tokens_to_ids"):
        tokenizer = build_alpro_tokenizer(tokenizer)
    video_processor = AlproVideoProcessor(image_size=config.vision_config.image_size, num_frames=config.vision_config.num_frames)
    AlproProcessor(video_processor, tokenizer, max_txt_len=config.max_txt_len).save_pretrained(out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m vl_hub.models.alpro.convert_alpro_checkpoint MODEL_TYPE SRC OUT [--vocab V]
    [--answers A]``."""
    parser = argparse.ArgumentParser(description="Convert an original ALPRO checkpoint into a vl_hub folder.")
    parser.add_argument("model_type", help="catalogue entry, e.g. alpro_qa:msrvtt")
    parser.add_argument("src", help="checkpoint file (.pth/.pt/.safetensors)")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--vocab", help="bert-base-uncased vocab.txt or tokenizer folder")
    parser.add_argument("--answers", help="train_ans2label.json of the QA dataset")
    parser.add_argument("--no-strict", action="store_true", help="log missing/unexpected keys instead of failing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    convert(args.model_type, args.src, args.out, tokenizer=args.vocab, answers=args.answers, strict=not args.no_strict)


if __name__ == "__main__":
    main()
