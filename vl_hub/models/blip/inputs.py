"""Input checks shared by the BLIP heads: clear errors instead of failures deep inside torch.

The family-neutral checks live in :mod:`vl_hub.models._inputs` (shared with ALBEF); :func:`with_first_token` is
BLIP's ``[ENC]``/``[DEC]`` substitution.
"""

from __future__ import annotations

import torch

from vl_hub.models._inputs import check_choice, check_pixel_values, check_text

__all__ = ["check_choice", "check_pixel_values", "check_text", "with_first_token"]


def with_first_token(input_ids: torch.Tensor, token_id: int | None, name: str = "token_id") -> torch.Tensor:
    """A copy of ``input_ids (B, L)`` whose position 0 is ``token_id``.

    BLIP puts ``[ENC]`` there for image-grounded encoding (ITM, multimodal features, VQA questions, NLVR) and
    ``[DEC]`` for decoding, where the tokenizer wrote ``[CLS]``. Idempotent: ids that already start with
    ``token_id`` come back equal.
    """
    if token_id is None:
        raise ValueError(f"{name} is not set in the text config; set it to the tokenizer's id for that token")
    ids = input_ids.clone()
    ids[:, 0] = token_id
    return ids
