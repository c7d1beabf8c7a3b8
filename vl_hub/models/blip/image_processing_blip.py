"""BLIP image processor: LAVIS's ``blip_image_eval`` / ``blip_image_train`` transforms as a transformers 5
image processor (saved as ``preprocessor_config.json``, loaded by ``AutoImageProcessor`` after ``import vl_hub``).

The class is named ``VlHubBlipImageProcessor`` because transformers owns the name ``BlipImageProcessor``
and resolves saved ``image_processor_type`` names through its own classes first; ``BlipImageProcessor``
is kept as an alias in this module.
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
from vl_hub.processing.randaugment import RandAugment
from vl_hub.processing.transforms import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ImageEvalTransform, ImageTrainTransform

__all__ = ["BlipImageProcessor", "VlHubBlipImageProcessor", "VlHubBlipImageProcessorKwargs"]

ReturnTensors = Literal["pt", "np"] | None

# Keys that transformers writes into saved configs next to ours; they carry no setting.
_SERVICE_KEYS = ("image_processor_type", "processor_class", "feature_extractor_type", "auto_map")


class VlHubBlipImageProcessorKwargs(TypedDict, total=False):
    """Settings of :class:`VlHubBlipImageProcessor`; ``from_pretrained(dir, **kwargs)`` may override any of them."""

    image_size: int
    image_mean: Sequence[float]
    image_std: Sequence[float]
    do_augment: bool
    min_scale: float
    max_scale: float
    hflip_prob: float
    randaugment_num_ops: int
    randaugment_magnitude: float
    seed: int | None


def _is_frame_like(value: Any) -> bool:
    """One image: a path, a PIL image, or a 2-D/3-D array or tensor."""
    if isinstance(value, (str, os.PathLike, Image.Image)):
        return True
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.ndim in (2, 3)
    return False


def _to_source(value: Any) -> Any:
    # load_image reads numpy, not torch: tensors are taken as the same (H, W[, C]) layout.
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def _describe(value: Any) -> str:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return type(value).__name__


class VlHubBlipImageProcessor(BaseImageProcessor):
    """BLIP/ALBEF image processor: images ``-> pixel_values (B, 3, S, S)``, videos ``-> (B, T, 3, S, S)``.

    Evaluation (``do_augment=False``, LAVIS ``blip_image_eval``): bicubic resize to ``S x S``, ``/255``,
    ``(x - mean) / std`` in float32. Training (``do_augment=True``, LAVIS ``blip_image_train``):
    RandomResizedCrop(S, scale=(min_scale, max_scale)) bicubic, horizontal flip (``hflip_prob``),
    RandAugment(``randaugment_num_ops``, ``randaugment_magnitude``), then the same normalisation.

    Every input is decoded by :func:`vl_hub.processing.image.load_image`: paths, PIL images of any mode
    (grayscale, RGBA over white, palette, 16-bit, CMYK ...) and ``(H, W)``/``(H, W, 3|4)`` arrays all
    become 8-bit RGB first.

    Args:
        image_size: output side ``S`` (384 for BLIP base).
        image_mean, image_std: per-channel normalisation (OpenAI CLIP constants, as LAVIS).
        do_augment: use the training transform.
        min_scale, max_scale: crop-area range of the training crop.
        hflip_prob: training flip probability.
        randaugment_num_ops, randaugment_magnitude: RandAugment ``N`` and ``M`` (``N = 0`` turns it off).
        seed: training randomness. An int makes the sequence of augmentations reproducible (each
            DataLoader worker gets its own stream); ``None`` draws from torch's global RNG, so
            ``torch.manual_seed`` governs it.
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values"]
    valid_kwargs = VlHubBlipImageProcessorKwargs

    def __init__(
        self,
        image_size: int = 384,
        image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
        image_std: Sequence[float] = OPENAI_CLIP_STD,
        do_augment: bool = False,
        min_scale: float = 0.5,
        max_scale: float = 1.0,
        hflip_prob: float = 0.5,
        randaugment_num_ops: int = 2,
        randaugment_magnitude: float = 5.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(k for k in kwargs if k not in _SERVICE_KEYS)
        if unknown:
            raise TypeError(
                f"VlHubBlipImageProcessor got unknown settings {unknown}; valid ones are "
                f"{sorted(VlHubBlipImageProcessorKwargs.__annotations__)}"
            )
        super().__init__()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None; got {type(seed).__name__}: {seed!r}")
        if not isinstance(do_augment, bool):
            raise TypeError(f"do_augment must be a bool; got {do_augment!r}")
        self.image_size = image_size
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.do_augment = do_augment
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.hflip_prob = float(hflip_prob)
        self.randaugment_num_ops = randaugment_num_ops
        self.randaugment_magnitude = float(randaugment_magnitude)
        self.seed = seed
        # Built now so that bad settings fail at construction, not at the first batch.
        self._eval_transform = ImageEvalTransform(image_size, self.image_mean, self.image_std)
        self._train_transform = ImageTrainTransform(
            image_size,
            min_scale=self.min_scale,
            max_scale=self.max_scale,
            hflip_prob=self.hflip_prob,
            randaugment=RandAugment(randaugment_num_ops, self.randaugment_magnitude) if randaugment_num_ops else None,
            mean=self.image_mean,
            std=self.image_std,
            seed=seed,
        )

    # ------------------------------------------------------------------ serialisation

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
            "hflip_prob": self.hflip_prob,
            "randaugment_num_ops": self.randaugment_num_ops,
            "randaugment_magnitude": self.randaugment_magnitude,
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
            if len(images) == 0:
                raise ValueError("images is an empty list; pass at least one image (a path, PIL image or array)")
            out = []
            for i, image in enumerate(images):
                if isinstance(image, (list, tuple)) or (
                    isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim == 4
                ):
                    raise ValueError(
                        f"images[{i}] is {_describe(image)}, a sequence of frames; pass videos with videos=... "
                        "(each video a list of frames or a (T, H, W, 3) uint8 array)"
                    )
                if not _is_frame_like(image):
                    raise TypeError(
                        f"images[{i}] is {_describe(image)}; each image must be a path, a PIL image or an "
                        "(H, W[, C]) array"
                    )
                out.append(_to_source(image))
            return out
        raise TypeError(f"images must be a path, a PIL image, an array, or a list of those; got {_describe(images)}")

    @staticmethod
    def _video_list(videos: Any) -> list[list[Any]]:
        """One video or a batch of videos -> list (videos) of lists (frames)."""
        if isinstance(videos, (np.ndarray, torch.Tensor)):
            if videos.ndim == 4:
                return [[_to_source(frame) for frame in videos]]
            if videos.ndim == 5:
                return [[_to_source(frame) for frame in video] for video in videos]
            raise ValueError(
                f"a video array must be (T, H, W, 3), or (B, T, H, W, 3) for a batch; got shape {tuple(videos.shape)}"
            )
        if not isinstance(videos, (list, tuple)):
            raise TypeError(
                f"videos must be a (T, H, W, 3) array, a list of frames, or a list of those; got {_describe(videos)}"
            )
        if len(videos) == 0:
            raise ValueError(
                "videos is an empty list; pass at least one video (a list of frames or a (T, H, W, 3) array)"
            )
        if _is_frame_like(videos[0]):
            videos = [videos]  # a single video given as its list of frames
        out = []
        for i, video in enumerate(videos):
            if isinstance(video, (np.ndarray, torch.Tensor)) and video.ndim == 4:
                frames = [_to_source(frame) for frame in video]
            elif isinstance(video, (list, tuple)):
                frames = []
                for j, frame in enumerate(video):
                    if not _is_frame_like(frame):
                        raise TypeError(
                            f"videos[{i}][{j}] is {_describe(frame)}; a frame must be a path, a PIL image or an "
                            "(H, W[, C]) array"
                        )
                    frames.append(_to_source(frame))
            else:
                raise TypeError(
                    f"videos[{i}] is {_describe(video)}; each video must be a list of frames or a (T, H, W, 3) array"
                )
            if not frames:
                raise ValueError(f"videos[{i}] has no frames; each video needs at least one frame")
            out.append(frames)
        lengths = sorted({len(frames) for frames in out})
        if len(lengths) > 1:
            raise ValueError(
                f"videos in one batch must have the same number of frames; got {lengths}. Sample a fixed number "
                "of frames per video (vl_hub.processing.video.load_video(path, n_frames))"
            )
        return out

    # ------------------------------------------------------------------ processing

    def _transform_images(self, images: list[Any], do_augment: bool) -> torch.Tensor:
        """list of B images -> ``(B, 3, S, S)`` float32."""
        pil_images = [load_image(image) for image in images]
        transform = self._train_transform if do_augment else self._eval_transform
        return transform.batch(pil_images)

    def _transform_videos(self, videos: list[list[Any]], do_augment: bool) -> torch.Tensor:
        """B videos of T frames -> ``(B, T, 3, S, S)`` float32."""
        if not do_augment:
            frames = [load_image(frame) for video in videos for frame in video]
            pixels = self._eval_transform.batch(frames)
            return pixels.view(len(videos), len(videos[0]), *pixels.shape[1:])
        out = []
        transform = self._train_transform
        # One seed per video, shared by its frames: every frame gets the same crop, flip and RandAugment.
        generator = transform._rng_for_call(None)
        for video in videos:
            video_seed = int(generator.integers(0, 2**63 - 1))
            out.append(
                torch.stack([transform(load_image(frame), rng=np.random.default_rng(video_seed)) for frame in video])
            )
        return torch.stack(out)

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
            images: one image (path, PIL image, ``(H, W[, C])`` array or tensor), a list of them, or a
                ``(B, H, W, C)`` array.
            videos: one video (a list of frames or a ``(T, H, W, 3)`` uint8 array), a list of videos, or a
                ``(B, T, H, W, 3)`` array. All videos need the same ``T``.
            return_tensors: ``"pt"`` (torch), ``"np"`` (numpy) or ``None`` (numpy as well).
            do_augment: overrides the processor's ``do_augment`` for this call.

        Returns:
            ``BatchFeature`` with ``pixel_values``: float32 ``(B, 3, S, S)`` for images,
            ``(B, T, 3, S, S)`` for videos.

        Raises:
            ValueError/TypeError: no input, both inputs, empty lists, ragged videos, unsupported values.
            FileNotFoundError / InvalidImageError: a path that does not exist or is not a readable image.
        """
        if kwargs:
            raise TypeError(
                f"unexpected arguments {sorted(kwargs)}; preprocess takes images, videos, return_tensors, do_augment"
            )
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None; got {return_tensors!r}")
        augment = self.do_augment if do_augment is None else do_augment
        if images is None and videos is None:
            raise ValueError("no input: pass images=... (one image or a list) or videos=... (frames per video)")
        if images is not None and videos is not None:
            raise ValueError("pass either images or videos, not both: the model takes one pixel_values tensor")
        if images is not None:
            pixel_values = self._transform_images(self._image_list(images), augment)
        else:
            pixel_values = self._transform_videos(self._video_list(videos), augment)
        if return_tensors != "pt":
            pixel_values = pixel_values.numpy()
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)

    def __call__(self, images: Any = None, videos: Any = None, **kwargs: Any) -> BatchFeature:
        """Same as :meth:`preprocess`."""
        return self.preprocess(images, videos=videos, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


#: The name the BLIP brief uses; the class itself is named ``VlHubBlipImageProcessor`` (see the module docstring).
BlipImageProcessor = VlHubBlipImageProcessor
