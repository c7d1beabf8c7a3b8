"""Input checks of the CLIP heads: clear errors instead of failures deep inside torch."""

from __future__ import annotations

import torch

from vl_hub.models.clip.configuration_clip import ClipTextConfig, ClipVisionConfig

__all__ = ["check_choice", "check_input_ids", "check_pixel_values", "check_same_batch"]


def check_pixel_values(pixel_values: torch.Tensor | None, vision_config: ClipVisionConfig) -> torch.Tensor:
    """Validates ``(B, 3, H, W)`` images or ``(B, T, 3, H, W)`` video frames; returns them unchanged.

    ViT: ``H`` and ``W`` must be multiples of the patch size (other sizes than ``image_size`` interpolate the
    positional table). ResNet: at least 32 px. Anything else raises with the shape received and the fix.
    """
    if pixel_values is None:
        raise ValueError("pixel_values is missing: pass images (B, 3, H, W); run the processor on images")
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
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values has dtype {pixel_values.dtype}; expected normalised floats -- pass images through the processor"
        )
    if pixel_values.shape[0] == 0 or (pixel_values.dim() == 5 and pixel_values.shape[1] == 0):
        raise ValueError(f"pixel_values is empty (shape {tuple(pixel_values.shape)}); pass at least one image/frame")
    h, w = pixel_values.shape[-2:]
    size = vision_config.image_size
    if vision_config.is_resnet:
        if h < 32 or w < 32:
            raise ValueError(
                f"image size {h}x{w} is too small for the CLIP ResNet (it reduces resolution by 32); resize to "
                f"{size}x{size} (the processor does)"
            )
    else:
        p = vision_config.patch_size
        if h % p or w % p:
            raise ValueError(
                f"image size {h}x{w} is not a multiple of the patch size {p}; resize and crop to {size}x{size} "
                f"(the processor does) or another multiple of {p}"
            )
    return pixel_values


def check_input_ids(
    input_ids: torch.Tensor | None,
    text_config: ClipTextConfig,
    attention_mask: torch.Tensor | None = None,
    name: str = "input_ids",
) -> torch.Tensor:
    """Validates ``(B, L)`` token ids against the context length and the vocabulary (and the mask's shape)."""
    if input_ids is None:
        raise ValueError(f"{name} is missing: pass token ids (B, L); run the processor/tokenizer on the text")
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"{name} must be (batch, length) token ids, got {shape}")
    if input_ids.is_floating_point():
        raise ValueError(f"{name} has dtype {input_ids.dtype}; expected integer token ids")
    batch, length = input_ids.shape
    if batch == 0 or length == 0:
        raise ValueError(f"{name} is empty (shape {(batch, length)}); each text needs at least its start/end tokens")
    if length > text_config.context_length:
        raise ValueError(
            f"{name} has {length} tokens but the CLIP text tower has context_length={text_config.context_length}; "
            f"truncate the text (the processor does: truncation=True, max_length={text_config.context_length}, "
            "which keeps <|endoftext|> last)"
        )
    low, high = torch.aminmax(input_ids)
    if low < 0 or high >= text_config.vocab_size:
        raise ValueError(
            f"{name} has ids outside the vocabulary [0, {text_config.vocab_size}): min {int(low)}, max {int(high)}; "
            "use this model's tokenizer"
        )
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} differs from {name} shape {tuple(input_ids.shape)}"
        )
    return input_ids


def check_same_batch(num_images: int, num_texts: int, what: str) -> None:
    """Raises when ``what`` (e.g. the contrastive loss) needs one text per image and the counts differ."""
    if num_images != num_texts:
        raise ValueError(
            f"batch sizes differ: {num_images} images but {num_texts} texts; {what} pairs image i with text i, so "
            "pass one text per image (repeat images that have several captions)"
        )


def check_choice(name: str, value: str | None, allowed: tuple[str | None, ...]) -> str | None:
    """Returns ``value`` when it is one of ``allowed``; raises naming the choices otherwise."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; use one of {', '.join(repr(a) for a in allowed)}")
    return value
