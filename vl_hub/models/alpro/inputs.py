"""Input checks of the ALPRO heads: clear errors instead of failures deep inside torch.

Videos are ``pixel_values (B, T, 3, H, W)`` -- the layout of every transformers video model and of the other vl_hub
families' video paths; the heads hand the TimeSformer ``(B, 3, T, H, W)`` themselves. Text checks are the shared
ones of :mod:`vl_hub.models._inputs`.
"""

from __future__ import annotations

import torch

from vl_hub.models._inputs import check_choice, check_text
from vl_hub.models.alpro.configuration_alpro import AlproVisionConfig

__all__ = ["check_choice", "check_same_batch", "check_text", "check_video"]


def check_video(pixel_values: torch.Tensor | None, vision_config: AlproVisionConfig) -> torch.Tensor:
    """Validates a video batch ``(B, T, 3, H, W)`` and returns it unchanged.

    Raises ``ValueError`` naming the shape received and the fix for: a missing video, another rank (an image batch,
    one unbatched video), LAVIS's ``(B, 3, T, H, W)`` layout, a channel count other than 3, a frame count other than
    ``vision_config.num_frames`` (unless ``interpolate_num_frames``), frames that are not a multiple of the patch size,
    and integer pixels.
    """
    if pixel_values is None:
        raise ValueError(
            "pixel_values is missing: this head needs videos (batch, frames, 3, H, W); run the processor on videos"
        )
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor (batch, frames, 3, H, W), got {type(pixel_values).__name__}")
    shape = tuple(pixel_values.shape)
    frames_expected = vision_config.num_frames
    if pixel_values.dim() != 5:
        hint = ""
        if pixel_values.dim() == 4:
            hint = (
                "; one video (frames, 3, H, W)? add the batch axis with pixel_values.unsqueeze(0). A batch of images "
                "(batch, 3, H, W)? ALPRO takes videos: sample frames with the processor"
            )
        raise ValueError(
            f"pixel_values must be a video batch of rank 5, (batch, frames={frames_expected}, 3, H, W); got rank "
            f"{pixel_values.dim()} with shape {shape}{hint}"
        )
    batch, frames, channels, height, width = shape
    if channels != 3:
        if frames == 3:
            raise ValueError(
                f"pixel_values of shape {shape} looks like (batch, 3, frames, H, W), LAVIS's layout; vl_hub takes "
                "(batch, frames, 3, H, W): use pixel_values.permute(0, 2, 1, 3, 4)"
            )
        raise ValueError(
            f"pixel_values of shape {shape} has {channels} channels at dim 2; expected 3 (RGB) in the layout "
            "(batch, frames, 3, H, W). Channels-last frames need .permute(0, 1, 4, 2, 3)"
        )
    if frames != frames_expected and not vision_config.interpolate_num_frames:
        raise ValueError(
            f"pixel_values has {frames} frames per video (shape {shape}) but the model was configured for "
            f"vision_config.num_frames={frames_expected}; sample {frames_expected} frames (processor num_frames="
            f"{frames_expected}), or set config.vision_config.interpolate_num_frames=True to resize the temporal "
            "embedding at run time as LAVIS does"
        )
    patch = vision_config.patch_size
    if height % patch or width % patch:
        raise ValueError(
            f"frame size {height}x{width} is not a multiple of the patch size {patch}; resize to "
            f"{vision_config.image_size}x{vision_config.image_size} (the processor does) or another multiple of {patch}"
        )
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values has dtype {pixel_values.dtype}; expected normalised floats -- pass videos through the "
            "processor (uint8 frames are not normalised)"
        )
    if batch == 0:
        raise ValueError(f"pixel_values holds no video (shape {shape}); pass at least one")
    return pixel_values


def check_same_batch(pixel_values: torch.Tensor, input_ids: torch.Tensor) -> None:
    """Raises when the number of videos and texts differ (pairs ``(video b, text b)``)."""
    if pixel_values.shape[0] != input_ids.shape[0]:
        raise ValueError(
            f"batch sizes differ: {pixel_values.shape[0]} videos but {input_ids.shape[0]} texts; pass one text per "
            "video (repeat the videos for several texts per video)"
        )
