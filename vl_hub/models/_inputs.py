"""Input checks shared by the heads of the ViT + BERT families (BLIP, ALBEF): clear errors instead of failures deep
inside torch. The config arguments are read by attribute (``patch_size``, ``image_size``, ``vocab_size``,
``max_position_embeddings``), so any family's vision/text config works."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_choice", "check_pixel_values", "check_text"]


def check_pixel_values(pixel_values: torch.Tensor | None, vision_config: Any) -> torch.Tensor:
    """Validates ``(B, 3, H, W)`` images or ``(B, T, 3, H, W)`` video frames; returns them unchanged.

    Other resolutions are allowed when they are multiples of the patch size (position embeddings are
    interpolated); anything else raises with the shape received and the fix.
    """
    if pixel_values is None:
        raise ValueError("pixel_values is missing: this head needs images (B, 3, H, W); run the processor on images")
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() not in (4, 5):
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(
            f"pixel_values must be (batch, 3, H, W) images or (batch, frames, 3, H, W) video frames, got {shape}"
        )
    channels = pixel_values.shape[-3]
    if channels != 3:
        raise ValueError(
            f"pixel_values has {channels} channels at dim -3 (shape {tuple(pixel_values.shape)}); expected 3 (RGB). "
            "Channels-last arrays need .permute(0, 3, 1, 2); the processor converts grayscale/RGBA images to RGB"
        )
    h, w = pixel_values.shape[-2:]
    p = vision_config.patch_size
    if h % p or w % p:
        raise ValueError(
            f"image size {h}x{w} is not a multiple of the patch size {p}; resize to "
            f"{vision_config.image_size}x{vision_config.image_size} (the processor does) or another multiple of {p}"
        )
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values has dtype {pixel_values.dtype}; expected normalised floats — pass images through the processor"
        )
    return pixel_values


def check_text(
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    text_config: Any,
    batch_size: int | None = None,
    name: str = "input_ids",
) -> torch.Tensor:
    """Validates ``(B, L)`` ids (and mask) against the vocabulary, the position limit and the image batch."""
    if input_ids is None:
        raise ValueError(f"{name} is missing: this head needs text; run the processor on the text")
    if input_ids.dim() != 2:
        raise ValueError(f"{name} must be (batch, length), got shape {tuple(input_ids.shape)}")
    if input_ids.shape[1] > text_config.max_position_embeddings:
        raise ValueError(
            f"{name} has {input_ids.shape[1]} tokens but the text model has {text_config.max_position_embeddings} "
            "positions; truncate it (the processor does with truncation=True, max_length=config.max_txt_len)"
        )
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= text_config.vocab_size):
        raise ValueError(
            f"{name} has ids outside the vocabulary [0, {text_config.vocab_size}): min {int(input_ids.min())}, "
            f"max {int(input_ids.max())}; use this model's tokenizer"
        )
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} differs from {name} shape {tuple(input_ids.shape)}"
        )
    if batch_size is not None and input_ids.shape[0] != batch_size:
        raise ValueError(
            f"batch sizes differ: {batch_size} images but {input_ids.shape[0]} texts in {name}; pass one text per "
            "image (repeat the images for several texts per image)"
        )
    return input_ids


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """Returns ``value`` when it is one of ``allowed``; raises naming the choices otherwise."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; use one of {', '.join(repr(a) for a in allowed)}")
    return value
