"""Converts original BLIP checkpoints (LAVIS ``blip_models``) into vl_hub BLIP heads.

vl_hub's BLIP heads use LAVIS's own submodule names, so the conversion is the family-neutral bookkeeping of
:mod:`vl_hub.models._lavis_conversion` (``position_ids`` dropped, tied names checked/filled, training state a head
lacks dropped with a log line, ``pos_embed`` interpolated); this module runs it with its own logger.
:func:`load_lavis_checkpoint` builds the head, loads the converted weights and raises, listing them, when keys are
missing or unexpected (``strict=False`` logs them instead).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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

logger = logging.getLogger(__name__)

__all__ = [
    "TRAINING_STATE_PATTERNS",
    "LoadReport",
    "convert_lavis_state_dict",
    "load_lavis_checkpoint",
    "read_checkpoint",
    "tied_key_pairs",
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
