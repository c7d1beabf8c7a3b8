"""The family-neutral core of LAVIS checkpoint conversion (BLIP, ALBEF, ...).

vl_hub heads use LAVIS's own submodule names (``visual_encoder``, ``text_encoder``, ``text_decoder``,
``vision_proj``, ``itm_head``, ``*_m`` momentum copies, ``image_queue``, ...), so converting a LAVIS state dict is
mostly bookkeeping:

* ``*.embeddings.position_ids`` buffers (HF BERT 4.x) are dropped: positions are computed at run time;
* tied tensors that LAVIS stores once under each name (``<lm>.cls.predictions.decoder.weight`` = the word
  embeddings, ``cls.predictions.decoder.bias`` = ``cls.predictions.bias``, plus a head's ``_tied_weights_keys``)
  must agree; a checkpoint that stores only one of the names gets the other filled in;
* training-only state a head does not have (momentum copies ``*_m.*``, feature queues, ``queue_ptr``, ``temp``,
  and for some heads submodules of a pre-training checkpoint such as ``text_decoder``) is dropped with one log line
  listing it. Each head declares these patterns in its ``_lavis_unused_state`` class attribute (regular
  expressions matched against the LAVIS key), and may rename prefixes with ``_lavis_renames``;
* ``visual_encoder(_m).pos_embed`` saved at another resolution is bicubically interpolated to the config's grid (as
  LAVIS's ``load_from_pretrained`` does).

:func:`load_lavis_checkpoint` builds the head, loads the converted weights and raises, listing them, when keys are
missing or unexpected (``strict=False`` logs them instead). Each family's ``convert_<family>_checkpoint`` module
re-exports these functions with its own logger.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import PreTrainedModel

from vl_hub.layers.vit import interpolate_pos_embed

logger = logging.getLogger(__name__)

__all__ = [
    "TRAINING_STATE_PATTERNS",
    "LoadReport",
    "convert_lavis_state_dict",
    "load_lavis_checkpoint",
    "read_checkpoint",
    "summarise_keys",
    "tied_key_pairs",
    "unwrap_state_dict",
]

ModelT = TypeVar("ModelT", bound=PreTrainedModel)

#: LAVIS state that only training heads carry (momentum encoders, queues); the default of ``_lavis_unused_state``.
TRAINING_STATE_PATTERNS: tuple[str, ...] = (
    r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)*_m\.",  # visual_encoder_m.*, text_encoder_m.*, vision_proj_m.*, ...
    r"^(image|text|idx)_queue$",
    r"^queue_ptr$",
)

_POSITION_IDS = re.compile(r"(^|\.)embeddings\.position_ids$")
# (tied target suffix, source suffix) within one LM model prefix (``text_decoder.`` / ``text_encoder.``)
_LM_TIES: tuple[tuple[str, str], ...] = (
    ("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
    ("cls.predictions.decoder.bias", "cls.predictions.bias"),
)


@dataclass
class LoadReport:
    """What :func:`load_lavis_checkpoint` did.

    Attributes:
        dropped: LAVIS keys removed on purpose (``position_ids`` buffers, training state the head lacks).
        filled: tied keys that the checkpoint stored under one name only and were filled from the other.
        interpolated: ``pos_embed`` keys resized to the config's patch grid.
        missing: head keys the checkpoint did not provide (after conversion).
        unexpected: converted keys the head does not have.
    """

    dropped: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    interpolated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Reads a LAVIS checkpoint: ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``, the ``"model"`` entry
    when present) or ``.safetensors``.

    Returns:
        The flat state dict ``{name: tensor}`` on CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass a .pth or .safetensors file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"could not read {str(path)!r} with torch.load(weights_only=True): {err}. vl_hub never unpickles "
            "arbitrary objects; re-save the weights alone, e.g. torch.save(torch.load(p, weights_only=False)"
            "['model'], 'weights.pth') in a trusted environment, or convert them to .safetensors"
        ) from err
    return unwrap_state_dict(checkpoint, str(path))


def unwrap_state_dict(checkpoint: Any, source: str) -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` state dict of a checkpoint (its ``"model"`` entry when present); raises naming
    ``source`` when it holds anything else."""
    if isinstance(checkpoint, Mapping) and "model" in checkpoint and isinstance(checkpoint["model"], Mapping):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, Mapping) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        kind = type(checkpoint).__name__
        raise ValueError(
            f"{source} holds a {kind}, not a state dict of tensors (or a dict with a 'model' state dict); "
            "pass model.state_dict() of the LAVIS model"
        )
    return dict(checkpoint)


def tied_key_pairs(keys: set[str] | list[str], head_class: type[PreTrainedModel] | None = None) -> list[tuple[str, str]]:
    """``(target, source)`` pairs of tied names relevant to ``keys``: every LM head found under any prefix
    (``<p>cls.predictions.decoder.weight`` <- ``<p>bert.embeddings.word_embeddings.weight``, decoder bias <-
    ``cls.predictions.bias``) plus the head class's ``_tied_weights_keys``."""
    keys = set(keys)
    pairs: list[tuple[str, str]] = []
    prefixes = {k[: -len(suffix)] for k in keys for suffix, _ in _LM_TIES if k.endswith(suffix)}
    prefixes |= {k[: -len(source)] for k in keys for _, source in _LM_TIES if k.endswith(source) and "cls." in source}
    for prefix in sorted(prefixes):
        pairs.extend((prefix + target, prefix + source) for target, source in _LM_TIES)
    declared = getattr(head_class, "_tied_weights_keys", None) if head_class is not None else None
    if isinstance(declared, Mapping):
        for target, source in declared.items():
            if (target, source) not in pairs and ("*" not in target and "*" not in source):
                pairs.append((target, source))
    return pairs


def convert_lavis_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    head_class: type[PreTrainedModel],
    report: LoadReport | None = None,
    log: logging.Logger | None = None,
) -> dict[str, torch.Tensor]:
    """Maps a LAVIS BLIP state dict onto the parameter names of ``head_class``.

    Args:
        state_dict: LAVIS ``model.state_dict()`` (or a checkpoint dict with a ``"model"`` entry).
        head_class: the vl_hub head (e.g. ``BlipForImageTextRetrieval``); its ``_lavis_renames`` (``(old_prefix,
            new_prefix)`` pairs), ``_lavis_unused_state`` (regexes of LAVIS keys it does not keep) and
            ``_tied_weights_keys`` are honoured.
        report: filled with what was dropped and filled in, when given.
        log: where the "dropped" line goes (default: this module's logger).

    Returns:
        A new state dict (tensors shared with the input, not copied).

    Raises:
        ValueError: when two names of one tied tensor hold different values.
    """
    report = report if report is not None else LoadReport()
    log = log or logger
    converted = unwrap_state_dict(state_dict, "state_dict")
    renames: tuple[tuple[str, str], ...] = tuple(getattr(head_class, "_lavis_renames", ()))
    unused = [re.compile(p) for p in getattr(head_class, "_lavis_unused_state", TRAINING_STATE_PATTERNS)]

    out: dict[str, torch.Tensor] = {}
    for key, value in converted.items():
        if _POSITION_IDS.search(key):
            report.dropped.append(key)
            continue
        if any(p.search(key) for p in unused):
            report.dropped.append(key)
            continue
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value

    for target, source in tied_key_pairs(out.keys(), head_class):
        has_target, has_source = target in out, source in out
        if has_target and has_source:
            a, b = out[target], out[source]
            if a.shape != b.shape or not torch.equal(a, b):
                raise ValueError(
                    f"{target!r} and {source!r} are one tied tensor in LAVIS but differ in this checkpoint "
                    f"(shapes {tuple(a.shape)} and {tuple(b.shape)}); the checkpoint is inconsistent"
                )
        elif has_target:
            out[source] = out[target]
            report.filled.append(source)
        elif has_source:
            out[target] = out[source]
            report.filled.append(target)

    training = [k for k in report.dropped if not _POSITION_IDS.search(k)]
    if training:
        log.info(
            "%s: dropped %d LAVIS entries this head does not have: %s",
            head_class.__name__,
            len(training),
            summarise_keys(training),
        )
    return out


def summarise_keys(keys: list[str]) -> str:
    """Groups keys by their first component (``visual_encoder_m.* (152)``) so a log line stays readable."""
    groups: dict[str, int] = {}
    for key in keys:
        head = key.split(".", 1)[0]
        groups[head] = groups.get(head, 0) + 1
    return ", ".join(g if g in keys and n == 1 else f"{g}.* ({n})" for g, n in groups.items())


def _fit_pos_embed(state_dict: dict[str, torch.Tensor], model: PreTrainedModel, report: LoadReport) -> None:
    own = model.state_dict()
    for key, value in list(state_dict.items()):
        if not key.endswith("pos_embed") or key not in own or own[key].shape == value.shape:
            continue
        encoder = model.get_submodule(key.rsplit(".", 1)[0])
        grid = getattr(encoder, "grid_size", None)
        if grid is None:
            continue
        state_dict[key] = interpolate_pos_embed(value, tuple(grid))
        report.interpolated.append(key)


_MOMENTUM_KEY = re.compile(r"^([A-Za-z0-9_]+?)_m\.(.+)$")
# Training state an inference checkpoint lacks and that keeps the head's fresh value (temp: config.temp).
_KEEP_INIT_KEY = re.compile(r"^((image|text|idx)_queue|queue_ptr|temp)$")


def _fill_training_state(
    converted: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], report: LoadReport, log: logging.Logger
) -> None:
    """A training head loaded from an inference checkpoint: momentum copies start as copies of the online weights
    (LAVIS ``copy_params``); queues and ``temp`` keep their fresh initialisation, and so do queues saved with another
    ``queue_size`` (as LAVIS, which drops tensors whose shape differs) -- instead of being reported missing."""
    filled = []
    for key, value in own.items():
        if key in converted and not (_KEEP_INIT_KEY.match(key) and converted[key].shape != value.shape):
            continue
        match = _MOMENTUM_KEY.match(key)
        online = f"{match.group(1)}.{match.group(2)}" if match else None
        if online is not None and online in converted:
            converted[key] = converted[online]
            filled.append(key)
        elif _KEEP_INIT_KEY.match(key):
            converted[key] = value
            filled.append(key)
    if filled:
        log.info("training state the checkpoint lacks, initialised by the head: %s", summarise_keys(filled))
    report.filled.extend(filled)


def load_lavis_checkpoint(
    state_dict_or_path: Mapping[str, torch.Tensor] | str | os.PathLike[str],
    config: Any,
    head_class: type[ModelT],
    strict: bool = True,
    return_report: bool = False,
    log: logging.Logger | None = None,
) -> ModelT | tuple[ModelT, LoadReport]:
    """Builds ``head_class(config)`` and loads a LAVIS checkpoint into it.

    Args:
        state_dict_or_path: a LAVIS state dict, or a ``.pth``/``.safetensors`` file (see :func:`read_checkpoint`).
        config: the head's config (architecture must match the checkpoint).
        head_class: the vl_hub head class.
        strict: raise when keys are missing or unexpected after conversion (``False``: log them).
        return_report: also return the :class:`LoadReport`.
        log: where conversion messages go (default: this module's logger).

    Returns:
        The model in eval mode (and the report).

    Raises:
        ValueError: listing missing/unexpected keys (strict), or tensors whose shapes do not fit the config.
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        state_dict = read_checkpoint(state_dict_or_path)
    else:
        state_dict = state_dict_or_path
    report = LoadReport()
    log = log or logger
    converted = convert_lavis_state_dict(state_dict, head_class, report, log)
    model = head_class(config)
    _fit_pos_embed(converted, model, report)

    own = model.state_dict()
    _fill_training_state(converted, own, report, log)
    report.missing = sorted(k for k in own if k not in converted)
    report.unexpected = sorted(k for k in converted if k not in own)
    bad_shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if bad_shapes:
        raise ValueError(
            f"{len(bad_shapes)} tensors of the checkpoint do not fit {head_class.__name__} built from this config "
            "(wrong config for this checkpoint?):\n  " + "\n  ".join(bad_shapes[:20])
        )
    if report.missing or report.unexpected:
        message = (
            f"loading a LAVIS checkpoint into {head_class.__name__}: {len(report.missing)} missing keys "
            f"[{summarise_keys(report.missing)}] {report.missing[:20]}; {len(report.unexpected)} unexpected keys "
            f"[{summarise_keys(report.unexpected)}] {report.unexpected[:20]}"
        )
        if strict:
            raise ValueError(message + ". Pick the head that matches the checkpoint, or pass strict=False")
        log.warning(message)
    with torch.no_grad():
        model.load_state_dict({k: v for k, v in converted.items() if k in own}, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    if "queue_ptr" in own:
        # LAVIS resets it after loading so that the queue length stays a multiple of the new batch size.
        model.get_buffer("queue_ptr").zero_()
    model.eval()
    if report.interpolated:
        log.info("interpolated %s to the config's patch grid", report.interpolated)
    return (model, report) if return_report else model
