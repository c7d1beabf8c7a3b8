"""ALPRO video processor: LAVIS's ``alpro_video_eval`` / ``alpro_video_train`` as a transformers 5 video processor.

Evaluation (``do_augment=False``, LAVIS ``alpro_video_eval``): ``num_frames`` frames sampled ``"uniform"`` (LAVIS
``load_video``'s default) and resized to ``S x S`` in the decoder, ``/255``, ``(x - mean) / std``.

Training (``do_augment=True``, LAVIS ``alpro_video_train``): frames sampled ``"headtail"`` and decoded at ``S x S``,
then one RandomResizedCrop(S, scale=(0.5, 1)) with bicubic ``F.interpolate`` for the whole clip, one horizontal flip
(p = 0.5), one RandAugment plan (2 of the BLIP operations, magnitude 5, always applied, drawn without replacement as
LAVIS's ``VideoRandomAugment``) applied to every frame, then the same normalisation. LAVIS draws the sign of
rotations/shears/translations anew for each frame; here one plan, signs included, holds for the whole clip so that
the frames stay geometrically consistent.

Why ``VideoProcessorMixin`` and not ``BaseVideoProcessor``: transformers 5's ``BaseVideoProcessor`` is a
``TorchvisionBackend`` (declared ``@requires(backends=("vision", "torchvision"))``) and transformers replaces its
``AutoVideoProcessor`` / ``VIDEO_PROCESSOR_MAPPING`` by placeholders that raise when torchvision is missing. vl_hub does
not depend on torchvision, so this class builds on the backend-free ``VideoProcessorMixin`` (the same
``video_preprocessor_config.json`` / nested ``processor_config.json`` format, ``from_pretrained`` /
``save_pretrained`` / ``to_dict``), decodes with vl_hub's backends (decord, torchcodec or PyAV) and transforms with
torch. ``register_processing`` adds it to ``AutoVideoProcessor`` when torchvision is importable;
:class:`~vl_hub.models.alpro.processing_alpro.AlproProcessor` loads it without that Auto class.

Output: ``pixel_values`` float32 ``(B, T, 3, S, S)`` -- what the ALPRO heads and the vl_hub tasks take (transformers'
own video processors call it ``pixel_values_videos``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.image_processing_base import BatchFeature
from transformers.video_processing_utils import VideoProcessorMixin

from vl_hub.processing.image import load_image
from vl_hub.processing.randaugment import BLIP_RANDAUGMENT_OPS, RandAugment
from vl_hub.processing.transforms import normalize, pil_to_uint8_tensor, random_resized_crop_params
from vl_hub.processing.video import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    SAMPLING_MODES,
    VideoEvalTransform,
    read_video_clip,
    sample_frame_indices,
)

__all__ = ["AlproVideoProcessor", "AlproVideoProcessorKwargs"]

ReturnTensors = Literal["pt", "np"] | None

# Keys transformers writes into saved configs next to the settings.
_SERVICE_KEYS = ("video_processor_type", "image_processor_type", "processor_class", "auto_map")
_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)


class AlproVideoProcessorKwargs(TypedDict, total=False):
    """Settings of :class:`AlproVideoProcessor`; ``from_pretrained(dir, **kwargs)`` may override any of them."""

    image_size: int
    num_frames: int
    sampling: str
    train_sampling: str
    image_mean: Sequence[float]
    image_std: Sequence[float]
    do_augment: bool
    min_scale: float
    max_scale: float
    hflip_prob: float
    randaugment_num_ops: int
    randaugment_magnitude: float
    video_backend: str | None
    seed: int | None


def _describe(value: Any) -> str:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return type(value).__name__


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


class AlproVideoProcessor(VideoProcessorMixin):
    """ALPRO video processor: video files or sampled frames -> ``pixel_values (B, T, 3, S, S)``.

    Args:
        image_size: frame side ``S`` (224).
        num_frames: frames sampled per video file (LAVIS ``n_frms``: 8 for retrieval, 16 for QA).
        sampling: frame sampling of evaluation (``"uniform"``; any of ``vl_hub.processing.video.SAMPLING_MODES``).
        train_sampling: frame sampling of training (``"headtail"`` as LAVIS's ``alpro_video_train``).
        image_mean, image_std: per-channel normalisation (OpenAI CLIP's constants, as LAVIS).
        do_augment: use the training transform by default.
        min_scale, max_scale: crop-area range of the training crop.
        hflip_prob: training flip probability.
        randaugment_num_ops, randaugment_magnitude: RandAugment ``N`` and ``M`` (``N = 0`` turns it off).
        video_backend: ``"decord"``, ``"torchcodec"``, ``"pyav"`` or ``None`` (decord when installed, else
            torchcodec, else PyAV; see :func:`vl_hub.processing.video_backends.get_backend`).
        seed: randomness of training sampling/augmentation. An int makes it reproducible (each DataLoader worker
            gets its own stream); ``None`` draws from torch's global RNG, so ``torch.manual_seed`` governs it.
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values"]
    valid_kwargs = AlproVideoProcessorKwargs

    def __init__(
        self,
        image_size: int = 224,
        num_frames: int = 8,
        sampling: str = "uniform",
        train_sampling: str = "headtail",
        image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
        image_std: Sequence[float] = OPENAI_CLIP_STD,
        do_augment: bool = False,
        min_scale: float = 0.5,
        max_scale: float = 1.0,
        hflip_prob: float = 0.5,
        randaugment_num_ops: int = 2,
        randaugment_magnitude: float = 5.0,
        video_backend: str | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(k for k in kwargs if k not in _SERVICE_KEYS)
        if unknown:
            raise TypeError(
                f"AlproVideoProcessor got unknown settings {unknown}; valid ones are "
                f"{sorted(AlproVideoProcessorKwargs.__annotations__)}"
            )
        super().__init__()
        for name, value in (("image_size", image_size), ("num_frames", num_frames)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, value in (("sampling", sampling), ("train_sampling", train_sampling)):
            if value not in SAMPLING_MODES:
                raise ValueError(f"{name}={value!r} is not a sampling mode; choose one of {', '.join(SAMPLING_MODES)}")
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1; got min_scale={min_scale}, max_scale={max_scale}")
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1]; got {hflip_prob}")
        if not isinstance(do_augment, bool):
            raise TypeError(f"do_augment must be a bool; got {do_augment!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None; got {type(seed).__name__}: {seed!r}")
        self.image_size = image_size
        self.num_frames = num_frames
        self.sampling = sampling
        self.train_sampling = train_sampling
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.do_augment = do_augment
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.hflip_prob = float(hflip_prob)
        self.randaugment_num_ops = int(randaugment_num_ops)
        self.randaugment_magnitude = float(randaugment_magnitude)
        self.video_backend = video_backend
        self.seed = seed
        # Built now so that bad settings fail at construction, not at the first batch.
        self._eval_transform = VideoEvalTransform(image_size, "bilinear", self.image_mean, self.image_std)
        self._randaugment = (
            RandAugment(self.randaugment_num_ops, self.randaugment_magnitude, BLIP_RANDAUGMENT_OPS, prob=1.0, replace=False)
            if self.randaugment_num_ops
            else None
        )
        self._generator: np.random.Generator | None = None
        self._generator_worker: int | None = None

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The settings (what the saved config holds), without the transform objects."""
        return {
            "video_processor_type": type(self).__name__,
            "image_size": self.image_size,
            "num_frames": self.num_frames,
            "sampling": self.sampling,
            "train_sampling": self.train_sampling,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "do_augment": self.do_augment,
            "min_scale": self.min_scale,
            "max_scale": self.max_scale,
            "hflip_prob": self.hflip_prob,
            "randaugment_num_ops": self.randaugment_num_ops,
            "randaugment_magnitude": self.randaugment_magnitude,
            "video_backend": self.video_backend,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ randomness
    def _rng(self, generator: np.random.Generator | None) -> np.random.Generator:
        if generator is not None:
            if not isinstance(generator, np.random.Generator):
                raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
            return generator
        if self.seed is None:
            return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        worker = torch.utils.data.get_worker_info()
        worker_id = -1 if worker is None else worker.id
        if self._generator is None or self._generator_worker != worker_id:
            # Each DataLoader worker gets its own stream; a copy forked from the parent would repeat it.
            self._generator = np.random.default_rng([self.seed] if worker is None else [self.seed, worker_id])
            self._generator_worker = worker_id
        return self._generator

    # ------------------------------------------------------------------ frames
    def sample_indices(
        self, num_video_frames: int, train: bool = False, generator: np.random.Generator | None = None
    ) -> np.ndarray:
        """Indices ``int64 (num_frames,)`` of the frames to decode from a video of ``num_video_frames`` frames
        (``sampling`` or ``train_sampling``); a shorter video repeats its last frame, as the original loaders."""
        mode = self.train_sampling if train else self.sampling
        return sample_frame_indices(num_video_frames, self.num_frames, mode, self._rng(generator) if train else generator)

    def load_video(
        self,
        path: str | os.PathLike[str],
        train: bool = False,
        num_frames: int | None = None,
        sampling: str | None = None,
        generator: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Decodes the sampled frames of one file at ``S x S`` -> ``uint8 (T, S, S, 3)``.

        Raises:
            FileNotFoundError: the file does not exist (the message names it).
            VideoDecodingError: the file is empty, corrupt or not a video (the message names it).
        """
        mode = sampling or (self.train_sampling if train else self.sampling)
        clip = read_video_clip(
            path,
            num_frames or self.num_frames,
            mode,
            height=self.image_size,
            width=self.image_size,
            backend=self.video_backend,
            generator=self._rng(generator) if train or generator is not None else None,
        )
        return clip.frames  # type: ignore[return-value]

    def _video_list(self, videos: Any) -> list[Any]:
        """One video or a batch -> list of videos, each a path, a ``(T, H, W, 3)`` array or a list of frames."""
        if _is_path(videos):
            return [videos]
        if isinstance(videos, (np.ndarray, torch.Tensor)):
            if videos.ndim == 4:
                return [videos]
            if videos.ndim == 5:
                return list(videos)
            raise ValueError(
                f"a video array must be (T, H, W, 3), or (B, T, H, W, 3) for a batch; got shape {tuple(videos.shape)}"
            )
        if not isinstance(videos, (list, tuple)):
            raise TypeError(
                f"videos must be a path, a (T, H, W, 3) uint8 array, a list of frames, or a list of those; got "
                f"{_describe(videos)}"
            )
        if len(videos) == 0:
            raise ValueError("videos is an empty list; pass at least one video (a path, frames or a (T, H, W, 3) array)")
        first = videos[0]
        if isinstance(first, Image.Image) or (isinstance(first, (np.ndarray, torch.Tensor)) and first.ndim in (2, 3)):
            return [list(videos)]  # one video given as its list of frames
        return list(videos)

    def _frames(self, video: Any, index: int, train: bool, num_frames: int | None, sampling: str | None,
                generator: np.random.Generator | None) -> torch.Tensor:
        """One video -> ``uint8 (T, H, W, 3)`` torch frames (files are decoded; frames are taken as given)."""
        if _is_path(video):
            return torch.from_numpy(np.ascontiguousarray(self.load_video(video, train, num_frames, sampling, generator)))
        if isinstance(video, (np.ndarray, torch.Tensor)):
            frames = torch.from_numpy(np.ascontiguousarray(video)) if isinstance(video, np.ndarray) else video.cpu()
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise ValueError(
                    f"videos[{index}] is {_describe(video)}; a video array must be uint8 (T, H, W, 3) RGB frames"
                )
            if frames.dtype != torch.uint8:
                raise ValueError(
                    f"videos[{index}] has dtype {frames.dtype}; pass uint8 RGB frames (0..255), e.g. from "
                    "vl_hub.processing.video.load_video"
                )
            return frames
        if isinstance(video, (list, tuple)):
            if not video:
                raise ValueError(f"videos[{index}] has no frames; each video needs at least one frame")
            pixels = [np.asarray(load_image(frame.cpu().numpy() if isinstance(frame, torch.Tensor) else frame)) for frame in video]
            shapes = {p.shape for p in pixels}
            if len(shapes) > 1:
                raise ValueError(f"videos[{index}] has frames of different sizes {sorted(shapes)}; frames must match")
            return torch.from_numpy(np.stack(pixels))
        raise TypeError(f"videos[{index}] is {_describe(video)}; pass a path, a (T, H, W, 3) array or a list of frames")

    def _augment(self, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``uint8 (T, H, W, 3)`` -> normalised ``(T, 3, S, S)`` with one crop, flip and RandAugment plan per clip."""
        size = self.image_size
        clip = frames.permute(0, 3, 1, 2).float()
        height, width = clip.shape[-2:]
        top, left, crop_h, crop_w = random_resized_crop_params(
            width, height, (self.min_scale, self.max_scale), _CROP_RATIO, rng
        )
        clip = F.interpolate(
            clip[:, :, top : top + crop_h, left : left + crop_w], size=(size, size), mode="bicubic", align_corners=False
        )
        if rng.random() < self.hflip_prob:
            clip = clip.flip(-1)
        # LAVIS casts to uint8 before RandAugment (truncation); bicubic overshoot is clamped first.
        clip = clip.clamp(0.0, 255.0).to(torch.uint8)
        if self._randaugment is not None:
            plan = self._randaugment.sample(rng)
            if plan:
                clip = torch.stack(
                    [
                        pil_to_uint8_tensor(RandAugment.apply(Image.fromarray(frame.permute(1, 2, 0).numpy()), plan))
                        for frame in clip
                    ]
                )
        return normalize(clip, self.image_mean, self.image_std)

    # ------------------------------------------------------------------ processing
    def preprocess(
        self,
        videos: Any,
        return_tensors: ReturnTensors = "pt",
        do_augment: bool | None = None,
        num_frames: int | None = None,
        sampling: str | None = None,
        generator: np.random.Generator | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Videos -> model inputs.

        Args:
            videos: one video or a list of them. A video is a file path (decoded here: ``num_frames`` frames sampled
                with ``sampling`` / ``train_sampling``, resized to ``S x S`` in the decoder), a ``uint8 (T, H, W, 3)``
                array/tensor, or a list of frames (PIL images or arrays); frames given directly are used as given
                (already sampled). A ``(B, T, H, W, 3)`` array is a batch.
            return_tensors: ``"pt"`` (torch), ``"np"`` or ``None`` (numpy).
            do_augment: overrides ``do_augment`` for this call (training transform + training sampling).
            num_frames: overrides ``num_frames`` for files in this call.
            sampling: overrides the sampling mode for files in this call.
            generator: randomness for this call (training sampling and augmentation).

        Returns:
            ``BatchFeature`` with ``pixel_values`` float32 ``(B, T, 3, S, S)``.

        Raises:
            FileNotFoundError / VideoDecodingError: a missing or unreadable file (named in the message).
            ValueError / TypeError: empty input, videos of different frame counts, non-uint8 frames, bad arrays.
        """
        if kwargs:
            raise TypeError(
                f"unexpected arguments {sorted(kwargs)}; preprocess takes videos, return_tensors, do_augment, "
                "num_frames, sampling, generator"
            )
        if return_tensors not in ("pt", "np", None):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None; got {return_tensors!r}")
        if videos is None:
            raise ValueError("no input: pass videos=... (a path, frames or a (T, H, W, 3) array, or a list of those)")
        if sampling is not None and sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling={sampling!r} is not a sampling mode; choose one of {', '.join(SAMPLING_MODES)}")
        train = self.do_augment if do_augment is None else bool(do_augment)
        rng = self._rng(generator) if train else generator
        clips = [
            self._frames(video, i, train, num_frames, sampling, rng) for i, video in enumerate(self._video_list(videos))
        ]
        counts = sorted({clip.shape[0] for clip in clips})
        if len(counts) > 1:
            raise ValueError(
                f"videos in one batch must have the same number of frames; got {counts}. Pass files (sampled to "
                f"num_frames={self.num_frames}) or sample a fixed number of frames per video"
            )
        if train:
            pixel_values = torch.stack([self._augment(clip, rng) for clip in clips])  # type: ignore[arg-type]
        else:
            pixel_values = torch.stack([self._eval_transform(clip) for clip in clips])
        if return_tensors != "pt":
            pixel_values = pixel_values.numpy()
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)

    def __call__(self, videos: Any = None, **kwargs: Any) -> BatchFeature:
        """Same as :meth:`preprocess`."""
        return self.preprocess(videos, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"
