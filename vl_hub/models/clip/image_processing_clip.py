"""CLIP image processor: LAVIS's ``clip_image_eval`` / ``clip_image_train`` transforms as a transformers 5 image
processor (saved as ``preprocessor_config.json``, loaded by ``AutoImageProcessor`` after ``import vl_hub``).

transformers owns ``CLIPImageProcessor``; this class is ``ClipImageProcessor`` (registered for ``vlhub_clip``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypedDict

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from vl_hub.processing.image import load_image
from vl_hub.processing.transforms import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ClipEvalTransform, ClipTrainTransform

__all__ = ["ClipImageProcessor", "ClipImageProcessorKwargs"]

ReturnTensors = Literal["pt", "np"] | None

# Keys transformers writes into saved configs next to ours; they carry no setting.
_SERVICE_KEYS = ("image_processor_type", "processor_class", "feature_extractor_type", "auto_map")


class ClipImageProcessorKwargs(TypedDict, total=False):
    """Settings of :class:`ClipImageProcessor`; ``from_pretrained(dir, **kwargs)`` may override any of them."""

    image_size: int
    image_mean: Sequence[float]
    image_std: Sequence[float]
    do_augment: bool
    min_scale: float
    max_scale: float
    seed: int | None


def _is_frame_like(value: Any) -> bool:
    if isinstance(value, (str, os.PathLike, Image.Image)):
        return True
    return isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim in (2, 3)


def _to_source(value: Any) -> Any:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def _describe(value: Any) -> str:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return type(value).__name__


class ClipImageProcessor(BaseImageProcessor):
    """CLIP image processor: images ``-> pixel_values (B, 3, S, S)``, videos ``-> (B, T, 3, S, S)``.

    Evaluation (``do_augment=False``, LAVIS ``clip_image_eval`` = OpenAI's preprocessing): resize the shorter side
    to ``S`` (bicubic), center crop ``S x S``, ``/255``, ``(x - mean) / std``. Training (``do_augment=True``, LAVIS
    ``clip_image_train``): RandomResizedCrop(S, scale=(min_scale, max_scale)) bicubic, then the same normalisation.
    Inputs go through :func:`vl_hub.processing.image.load_image`: paths, PIL images of any mode and
    ``(H, W)``/``(H, W, 3|4)`` arrays become 8-bit RGB first.

    Args:
        image_size: output side ``S`` (224; 336 for ViT-L/14@336px).
        image_mean, image_std: per-channel normalisation (OpenAI's constants).
        do_augment: use the training transform.
        min_scale, max_scale: crop-area range of the training crop (LAVIS: 0.9, 1.0).
        seed: training randomness (an int makes it reproducible; ``None`` follows torch's global RNG).
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values"]
    valid_kwargs = ClipImageProcessorKwargs

    def __init__(
        self,
        image_size: int = 224,
        image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
        image_std: Sequence[float] = OPENAI_CLIP_STD,
        do_augment: bool = False,
        min_scale: float = 0.9,
        max_scale: float = 1.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(k for k in kwargs if k not in _SERVICE_KEYS)
        if unknown:
            raise TypeError(
                f"ClipImageProcessor got unknown settings {unknown}; valid ones are "
                f"{sorted(ClipImageProcessorKwargs.__annotations__)}"
            )
        super().__init__()
        if not isinstance(do_augment, bool):
            raise TypeError(f"do_augment must be a bool; got {do_augment!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None; got {type(seed).__name__}: {seed!r}")
        self.image_size = image_size
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.do_augment = do_augment
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.seed = seed
        # Built now so that bad settings fail at construction, not at the first batch.
        self._eval_transform = ClipEvalTransform(image_size, self.image_mean, self.image_std)
        self._train_transform = ClipTrainTransform(
            image_size, self.min_scale, self.max_scale, self.image_mean, self.image_std, seed=seed
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings (what ``preprocessor_config.json`` holds), without the transform objects."""
        return {
            "image_processor_type": type(self).__name__,
            "image_size": self.image_size,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "do_augment": self.do_augment,
            "min_scale": self.min_scale,
            "max_scale": self.max_scale,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _image_list(images: Any) -> list[Any]:
        """One image, a list of images or a ``(B, H, W, C)`` array -> list of single images."""
        if _is_frame_like(images):
            return [_to_source(images)]
        if isinstance(images, (np.ndarray, torch.Tensor)):
            if images.ndim == 4:
                return [_to_source(image) for image in images]
            raise ValueError(
                f"images array must be (H, W), (H, W, C) or a batch (B, H, W, C); got shape {tuple(images.shape)}"
            )
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("images is an empty list; pass at least one image (a path, PIL image or array)")
            out = []
            for i, image in enumerate(images):
                if not _is_frame_like(image):
                    hint = " (a sequence of frames? pass it with videos=...)" if isinstance(image, (list, tuple)) else ""
                    raise TypeError(
                        f"images[{i}] is {_describe(image)}; each image must be a path, a PIL image or an (H, W[, C]) "
                        f"array{hint}"
                    )
                out.append(_to_source(image))
            return out
        raise TypeError(f"images must be a path, a PIL image, an array, or a list of those; got {_describe(images)}")

    @staticmethod
    def _video_list(videos: Any) -> list[list[Any]]:
        """One video (frames list or ``(T, H, W, 3)``) or a batch of them -> list of frame lists (equal lengths)."""
        if isinstance(videos, (np.ndarray, torch.Tensor)):
            if videos.ndim == 4:
                return [[_to_source(frame) for frame in videos]]
            if videos.ndim == 5:
                return [[_to_source(frame) for frame in video] for video in videos]
            raise ValueError(f"a video array must be (T, H, W, 3) or (B, T, H, W, 3); got shape {tuple(videos.shape)}")
        if not isinstance(videos, (list, tuple)) or not videos:
            raise ValueError(
                f"videos must be a (T, H, W, 3) array or a non-empty list of frames / of videos; got {_describe(videos)}"
            )
        if _is_frame_like(videos[0]) and not (isinstance(videos[0], (np.ndarray, torch.Tensor)) and videos[0].ndim == 4):
            videos = [videos]
        out = []
        for i, video in enumerate(videos):
            frames = list(video) if isinstance(video, (list, tuple, np.ndarray, torch.Tensor)) else None
            if not frames or not all(_is_frame_like(f) for f in frames):
                raise TypeError(f"videos[{i}] is {_describe(video)}; each video must be a non-empty list of frames")
            out.append([_to_source(f) for f in frames])
        lengths = sorted({len(f) for f in out})
        if len(lengths) > 1:
            raise ValueError(
                f"videos in one batch must have the same number of frames; got {lengths}. Sample a fixed number of "
                "frames per video (vl_hub.processing.video.load_video(path, n_frames))"
            )
        return out

    # ------------------------------------------------------------------ processing
    def preprocess(
        self,
        images: Any = None,
        videos: Any = None,
        return_tensors: ReturnTensors = "pt",
        do_augment: bool | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Transforms images or videos into model inputs.

        Args:
            images: one image (path, PIL image, ``(H, W[, C])`` array or tensor), a list, or a ``(B, H, W, C)`` array.
            videos: one video (a list of frames or a ``(T, H, W, 3)`` array), a list of videos, or
                ``(B, T, H, W, 3)``. All videos need the same ``T``.
            return_tensors: ``"pt"``, ``"np"`` or ``None`` (numpy).
            do_augment: overrides :attr:`do_augment` for this call.

        Returns:
            ``BatchFeature`` with ``pixel_values`` float32 ``(B, 3, S, S)`` or ``(B, T, 3, S, S)``.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}; preprocess takes images, videos, return_tensors, do_augment")
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None; got {return_tensors!r}")
        if images is None and videos is None:
            raise ValueError("no input: pass images=... (one image or a list) or videos=... (frames per video)")
        if images is not None and videos is not None:
            raise ValueError("pass either images or videos, not both: the model takes one pixel_values tensor")
        augment = self.do_augment if do_augment is None else do_augment
        transform = self._train_transform if augment else self._eval_transform
        if images is not None:
            pixel_values = transform.batch([load_image(image) for image in self._image_list(images)])
        else:
            videos_ = self._video_list(videos)
            frames = [load_image(frame) for video in videos_ for frame in video]
            if augment:
                # One seed per video, a fresh generator per frame from it: all frames of a video get the same crop.
                generator = self._train_transform._rng_for_call(None)
                seeds = generator.integers(0, 2**62, len(videos_))
                per_video = len(videos_[0])
                pixel_values = torch.stack(
                    [transform(frame, rng=int(seeds[i // per_video])) for i, frame in enumerate(frames)]
                )
            else:
                pixel_values = transform.batch(frames)
            pixel_values = pixel_values.view(len(videos_), len(videos_[0]), *pixel_values.shape[1:])
        if return_tensors != "pt":
            pixel_values = pixel_values.numpy()
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)

    def __call__(self, images: Any = None, videos: Any = None, **kwargs: Any) -> BatchFeature:
        """Same as :meth:`preprocess`."""
        return self.preprocess(images, videos=videos, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"
