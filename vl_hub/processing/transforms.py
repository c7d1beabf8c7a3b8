"""Image transforms of the BLIP/ALBEF/CLIP processors, written with PIL, numpy and torch (no torchvision).

Each transform is a small callable: ``transform(image) -> (3, S, S) float32`` and
``transform.batch(images) -> (B, 3, S, S)``. Inputs may be PIL images of any mode, paths or arrays
(they go through :func:`vl_hub.processing.image.load_image`).

==========================  ==========================================================================
class                       LAVIS processor and steps
==========================  ==========================================================================
:class:`ImageEvalTransform`  ``blip_image_eval``: resize to (S, S) bicubic, /255, normalise
:class:`ImageTrainTransform` ``blip_image_train``: RandomResizedCrop(S, scale=(0.5, 1)) bicubic,
                            horizontal flip (p=0.5), RandAugment(2, 5), /255, normalise
:class:`ClipEvalTransform`   ``clip_image_eval``: resize the shorter side to S bicubic, center crop S,
                            /255, normalise
:class:`ClipTrainTransform`  ``clip_image_train``: RandomResizedCrop(S, scale=(0.9, 1)) bicubic, /255,
                            normalise
==========================  ==========================================================================

The arithmetic repeats torchvision's ``ToTensor`` + ``Normalize`` in float32 (``x / 255``, then
``(x - mean) / std``), and resizing is PIL's (which is what torchvision calls for PIL images), so the
tensors equal LAVIS's bit for bit.

Randomness: train transforms draw from a ``numpy.random.Generator``. Pass ``rng`` per call, or
``seed`` (an int: each DataLoader worker then gets its own stream ``(seed, worker_id)``; or a
``Generator``, used as is) at construction. With neither, every call seeds a fresh generator from
torch's global RNG, so ``torch.manual_seed`` and DataLoader's per-worker seeding make runs
reproducible and workers different.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from vl_hub.processing.image import ImageSource, load_image
from vl_hub.processing.randaugment import RandAugment

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "ClipEvalTransform",
    "ClipTrainTransform",
    "ImageEvalTransform",
    "ImageTrainTransform",
    "center_crop",
    "normalize",
    "pil_to_uint8_tensor",
    "random_resized_crop_params",
    "resize_shorter_side",
    "to_tensor",
]

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
BICUBIC = Image.Resampling.BICUBIC

RngLike = np.random.Generator | int | None


def pil_to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """``RGB`` PIL image -> ``(3, H, W)`` uint8 tensor."""
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image; got mode {image.mode!r} (use vl_hub.processing.image.load_image)")
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def normalize(
    pixels: torch.Tensor, mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD
) -> torch.Tensor:
    """``pixels`` ``(..., 3, H, W)``: uint8 are divided by 255 first; returns ``(x - mean) / std`` in float32."""
    if pixels.dim() < 3 or pixels.shape[-3] != len(mean) or len(mean) != len(std):
        raise ValueError(
            f"normalize needs (..., C, H, W) pixels with C = len(mean) = len(std); got {tuple(pixels.shape)}, "
            f"{len(mean)} means, {len(std)} stds"
        )
    if pixels.dtype == torch.uint8:
        pixels = pixels.to(torch.float32).div(255)
    mean_t = torch.as_tensor(mean, dtype=pixels.dtype, device=pixels.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=pixels.dtype, device=pixels.device).view(-1, 1, 1)
    return pixels.sub(mean_t).div(std_t)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """``RGB`` PIL image -> ``(3, H, W)`` float32 in ``[0, 1]`` (torchvision ``ToTensor``)."""
    return pil_to_uint8_tensor(image).to(torch.float32).div(255)


def resize_shorter_side(image: Image.Image, size: int, resample: int = BICUBIC) -> Image.Image:
    """Resizes so that the shorter side is ``size``, keeping the aspect ratio (torchvision ``Resize(int)``).

    The longer side becomes ``int(size * long / short)`` (truncated, as torchvision).
    """
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    return image.resize(new_size, resample)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Crops the central ``size x size`` region (torchvision ``CenterCrop``; offsets use Python's round)."""
    width, height = image.size
    if width < size or height < size:
        raise ValueError(f"center_crop({size}) needs an image at least that large; got {width}x{height}")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def random_resized_crop_params(
    width: int,
    height: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """torchvision ``RandomResizedCrop.get_params``: up to 10 tries, then a central fallback crop.

    Args:
        width, height: image size.
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio (width / height), sampled log-uniformly.
        rng: random generator.

    Returns:
        ``(top, left, crop_height, crop_width)``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        crop_w = int(round(math.sqrt(target_area * aspect_ratio)))
        crop_h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return top, left, crop_h, crop_w
    in_ratio = width / height
    if in_ratio < min(ratio):
        crop_w = width
        crop_h = int(round(crop_w / min(ratio)))
    elif in_ratio > max(ratio):
        crop_h = height
        crop_w = int(round(crop_h * max(ratio)))
    else:
        crop_w, crop_h = width, height
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def _check_size(image_size: int) -> int:
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive int; got {image_size!r}")
    return image_size


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError(f"mean and std need 3 values each (std > 0); got mean={mean!r}, std={std!r}")
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _as_rgb(image: ImageSource) -> Image.Image:
    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image
    return load_image(image)


class _Transform(abc.ABC):
    """Shared call/batch logic: subclasses implement ``_pixels(image, rng) -> (3, S, S) uint8``."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @abc.abstractmethod
    def _pixels(self, image: Image.Image, rng: np.random.Generator | None) -> torch.Tensor:
        """``image`` -> ``(3, S, S)`` uint8 pixels (the subclass's resize/crop/augmentation)."""

    def _rng_for_call(self, rng: RngLike) -> np.random.Generator | None:
        return None

    def __call__(self, image: ImageSource, rng: RngLike = None) -> torch.Tensor:
        """``image`` -> ``(3, S, S)`` float32, normalised."""
        return normalize(self._pixels(_as_rgb(image), self._rng_for_call(rng)), self.mean, self.std)

    def batch(self, images: Sequence[ImageSource], rng: RngLike = None) -> torch.Tensor:
        """``images`` -> ``(B, 3, S, S)`` float32, normalised in one pass."""
        if len(images) == 0:
            raise ValueError("batch() needs at least one image")
        generator = self._rng_for_call(rng)
        pixels = torch.stack([self._pixels(_as_rgb(image), generator) for image in images])
        return normalize(pixels, self.mean, self.std)


class ImageEvalTransform(_Transform):
    """BLIP/ALBEF evaluation transform (LAVIS ``blip_image_eval``): bicubic resize to ``(S, S)``, normalise.

    Args:
        image_size: output side ``S`` (384 for BLIP base, 224 for CLIP-sized models).
        mean, std: normalisation constants (OpenAI CLIP's by default, as LAVIS).
    """

    def __init__(
        self,
        image_size: int = 384,
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
    ) -> None:
        self.image_size = _check_size(image_size)
        self.mean, self.std = _check_stats(mean, std)

    def _pixels(self, image: Image.Image, rng: np.random.Generator | None) -> torch.Tensor:
        return pil_to_uint8_tensor(image.resize((self.image_size, self.image_size), BICUBIC))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size})"


class ClipEvalTransform(_Transform):
    """CLIP evaluation transform (LAVIS ``clip_image_eval``): shorter side to ``S`` bicubic, center crop, normalise."""

    def __init__(
        self,
        image_size: int = 224,
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
    ) -> None:
        self.image_size = _check_size(image_size)
        self.mean, self.std = _check_stats(mean, std)

    def _pixels(self, image: Image.Image, rng: np.random.Generator | None) -> torch.Tensor:
        resized = resize_shorter_side(image, self.image_size, BICUBIC)
        return pil_to_uint8_tensor(center_crop(resized, self.image_size))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size})"


class _RandomTransform(_Transform):
    """Random transforms: resolves the generator of each call (see the module docstring)."""

    scale: tuple[float, float]
    ratio: tuple[float, float]

    def __init__(self, seed: np.random.Generator | int | None) -> None:
        if seed is not None and not isinstance(seed, (int, np.random.Generator)):
            raise TypeError(f"seed must be an int, a numpy.random.Generator or None; got {type(seed).__name__}")
        self._seed = seed
        self._generator: np.random.Generator | None = seed if isinstance(seed, np.random.Generator) else None
        self._generator_worker: int | None = None

    def _rng_for_call(self, rng: RngLike) -> np.random.Generator:
        if isinstance(rng, np.random.Generator):
            return rng
        if rng is not None:
            return np.random.default_rng(rng)
        if isinstance(self._seed, int):
            worker = torch.utils.data.get_worker_info()
            worker_id = -1 if worker is None else worker.id
            if self._generator is None or self._generator_worker != worker_id:
                # Each DataLoader worker gets its own stream; a copy forked from the parent would repeat it.
                key = [self._seed] if worker is None else [self._seed, worker_id]
                self._generator = np.random.default_rng(key)
                self._generator_worker = worker_id
            return self._generator
        if self._generator is not None:
            return self._generator
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))

    def _crop(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        top, left, crop_h, crop_w = random_resized_crop_params(image.width, image.height, self.scale, self.ratio, rng)
        cropped = image.crop((left, top, left + crop_w, top + crop_h))
        return cropped.resize((self.image_size, self.image_size), BICUBIC)


def _check_scale(min_scale: float, max_scale: float) -> tuple[float, float]:
    if not 0 < min_scale <= max_scale <= 1:
        raise ValueError(f"need 0 < min_scale <= max_scale <= 1; got min_scale={min_scale}, max_scale={max_scale}")
    return float(min_scale), float(max_scale)


class ImageTrainTransform(_RandomTransform):
    """BLIP/ALBEF training transform (LAVIS ``blip_image_train``).

    RandomResizedCrop(S, scale=(min_scale, max_scale), ratio=(3/4, 4/3), bicubic) -> horizontal flip
    with probability ``hflip_prob`` -> RandAugment -> /255 -> normalise.

    Args:
        image_size: output side ``S``.
        min_scale, max_scale: crop-area range, fraction of the image area.
        hflip_prob: flip probability (0.5).
        randaugment: a :class:`RandAugment` (default ``RandAugment(2, 5)`` with the BLIP op list), or
            ``None`` to skip it.
        mean, std: normalisation constants.
        seed: int, ``numpy.random.Generator`` or ``None`` (see the module docstring).
    """

    ratio = (3.0 / 4.0, 4.0 / 3.0)

    def __init__(
        self,
        image_size: int = 384,
        min_scale: float = 0.5,
        max_scale: float = 1.0,
        hflip_prob: float = 0.5,
        randaugment: RandAugment | None = RandAugment(2, 5),
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
        seed: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(seed)
        self.image_size = _check_size(image_size)
        self.scale = _check_scale(min_scale, max_scale)
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1]; got {hflip_prob}")
        self.hflip_prob = hflip_prob
        self.randaugment = randaugment
        self.mean, self.std = _check_stats(mean, std)

    def augment(self, image: Image.Image, rng: RngLike = None) -> Image.Image:
        """The PIL part (crop, flip, RandAugment) -> ``RGB`` image ``S x S``."""
        generator = self._rng_for_call(rng)
        return self._augment(_as_rgb(image), generator)

    def _augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        image = self._crop(image, rng)
        if rng.random() < self.hflip_prob:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.randaugment is not None:
            image = self.randaugment(image, rng)
        return image

    def _pixels(self, image: Image.Image, rng: np.random.Generator | None) -> torch.Tensor:
        return pil_to_uint8_tensor(self._augment(image, rng))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_size={self.image_size}, scale={self.scale}, hflip_prob={self.hflip_prob}, "
            f"randaugment={self.randaugment!r})"
        )


class ClipTrainTransform(_RandomTransform):
    """CLIP training transform (LAVIS ``clip_image_train``): RandomResizedCrop(S, scale=(0.9, 1)) bicubic, normalise."""

    ratio = (3.0 / 4.0, 4.0 / 3.0)

    def __init__(
        self,
        image_size: int = 224,
        min_scale: float = 0.9,
        max_scale: float = 1.0,
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
        seed: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(seed)
        self.image_size = _check_size(image_size)
        self.scale = _check_scale(min_scale, max_scale)
        self.mean, self.std = _check_stats(mean, std)

    def _pixels(self, image: Image.Image, rng: np.random.Generator | None) -> torch.Tensor:
        return pil_to_uint8_tensor(self._crop(image, rng))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size}, scale={self.scale})"
