"""RandAugment as LAVIS's ``RandomAugment`` (BLIP/ALBEF/ALPRO training), on PIL images.

Each call draws ``num_ops`` operations from ``ops`` (with replacement); each is applied with
probability ``prob`` (0.5), at a fixed ``magnitude`` on LAVIS's 0-10 scale. Magnitudes (LAVIS
``arg_dict``, ``MAX_LEVEL=10``; at ``magnitude=5``):

=================  ==================================================  ====================
op                 argument                                            at magnitude 5
=================  ==================================================  ====================
Brightness,        factor ``m / 10 * 1.8 + 0.1``                        1.0 (a no-op, as in
Sharpness,                                                              the original)
Color, Contrast
ShearX, ShearY     ``m / 10 * 0.3``, random sign                        +-0.15
TranslateX/Y       ``m / 10 * 10`` pixels (absolute), random sign       +-5 px
Rotate             ``m / 10 * 30`` degrees, random sign                 +-15 deg
Solarize           threshold ``int(m / 10 * 256)``                      128
Posterize          bits ``int(m / 10 * 4)``                             2
=================  ==================================================  ====================

Geometric ops fill uncovered pixels with grey ``(128, 128, 128)`` and sample bilinearly; their
matrices follow OpenCV's ``warpAffine`` conventions of the original (shear about the top-left pixel
centre, rotation about ``(W/2, H/2)`` in pixel-centre coordinates, counter-clockwise for positive
angles). The LAVIS implementation uses OpenCV; these ops are written with PIL/numpy and agree with it
up to interpolation rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

__all__ = [
    "ALL_RANDAUGMENT_OPS",
    "BLIP_RANDAUGMENT_OPS",
    "RandAugment",
    "RandAugmentStep",
    "apply_op",
]

MAX_LEVEL = 10.0
TRANSLATE_CONST = 10.0
FILL = (128, 128, 128)

# The list given to RandomAugment by blip_image_train (also ALBEF and ALPRO's video variant).
BLIP_RANDAUGMENT_OPS: tuple[str, ...] = (
    "Identity",
    "AutoContrast",
    "Brightness",
    "Sharpness",
    "Equalize",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
)
ALL_RANDAUGMENT_OPS: tuple[str, ...] = BLIP_RANDAUGMENT_OPS + ("Solarize", "Color", "Contrast", "Posterize")


class RandAugmentStep(NamedTuple):
    """One drawn operation: its name and its arguments (sign already drawn)."""

    name: str
    args: tuple


def _affine(image: Image.Image, data: tuple[float, ...], fill: tuple[int, ...]) -> Image.Image:
    # PIL maps each output pixel centre to an input position with ``data`` (inverse mapping).
    return image.transform(
        image.size, Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR, fillcolor=fill
    )


def _fill_for(image: Image.Image, fill: tuple[int, int, int]) -> tuple[int, ...] | int:
    bands = len(image.getbands())
    if bands == 1:
        return fill[0]
    if bands == 2:
        return (fill[0], 255)
    return tuple(fill[:3]) + (255,) * (bands - 3)


def _shear_x(image: Image.Image, factor: float, fill: tuple[int, int, int]) -> Image.Image:
    # OpenCV forward map x' = x + f*y about pixel centres; inverse in PIL's +0.5 pixel coordinates.
    return _affine(image, (1.0, -factor, 0.5 * factor, 0.0, 1.0, 0.0), _fill_for(image, fill))


def _shear_y(image: Image.Image, factor: float, fill: tuple[int, int, int]) -> Image.Image:
    return _affine(image, (1.0, 0.0, 0.0, -factor, 1.0, 0.5 * factor), _fill_for(image, fill))


def _translate_x(image: Image.Image, offset: float, fill: tuple[int, int, int]) -> Image.Image:
    # OpenCV shifts content by -offset: output x reads input x + offset.
    return _affine(image, (1.0, 0.0, offset, 0.0, 1.0, 0.0), _fill_for(image, fill))


def _translate_y(image: Image.Image, offset: float, fill: tuple[int, int, int]) -> Image.Image:
    return _affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, offset), _fill_for(image, fill))


def _rotate(image: Image.Image, degrees: float, fill: tuple[int, int, int]) -> Image.Image:
    width, height = image.size
    # cv2.getRotationMatrix2D centre (W/2, H/2) in pixel-centre coordinates = (W/2 + .5, H/2 + .5) in PIL's.
    cx, cy = width / 2 + 0.5, height / 2 + 0.5
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    # Inverse of the counter-clockwise rotation about (cx, cy).
    data = (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)
    return _affine(image, data, _fill_for(image, fill))


def _point(image: Image.Image, table: np.ndarray) -> Image.Image:
    return image.point(table.tolist() * len(image.getbands()))


def _brightness(image: Image.Image, factor: float) -> Image.Image:
    # LAVIS's table: truncation of v * factor (PIL's Brightness rounds instead).
    table = np.clip(np.arange(256, dtype=np.float32) * np.float32(factor), 0, 255).astype(np.uint8)
    return _point(image, table)


def _enhance(enhancer: type) -> Callable[[Image.Image, float], Image.Image]:
    def apply(image: Image.Image, factor: float) -> Image.Image:
        return image if factor == 1.0 else enhancer(image).enhance(factor)

    return apply


_OPS: dict[str, Callable[..., Image.Image]] = {
    "Identity": lambda image: image,
    "AutoContrast": lambda image: ImageOps.autocontrast(image),
    "Equalize": lambda image: ImageOps.equalize(image),
    "Brightness": _brightness,
    "Sharpness": _enhance(ImageEnhance.Sharpness),
    "Color": _enhance(ImageEnhance.Color),
    "Contrast": _enhance(ImageEnhance.Contrast),
    "Solarize": lambda image, threshold: ImageOps.solarize(image, threshold),
    "Posterize": lambda image, bits: ImageOps.posterize(image, bits),
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
    "Rotate": _rotate,
}


def apply_op(image: Image.Image, name: str, *args: object) -> Image.Image:
    """Applies RandAugment operation ``name`` with explicit arguments (see the module table).

    Args:
        image: an ``RGB`` (or ``L``) PIL image.
        name: one of :data:`ALL_RANDAUGMENT_OPS`.
        args: e.g. ``apply_op(img, "Rotate", 15.0, (128, 128, 128))``.

    Returns:
        a new image of the same size and mode.
    """
    if name not in _OPS:
        raise ValueError(f"unknown RandAugment op {name!r}; choose from {', '.join(ALL_RANDAUGMENT_OPS)}")
    return _OPS[name](image, *args)


class RandAugment:
    """LAVIS ``RandomAugment(N, M, isPIL=True, augs=...)`` on PIL images, with an explicit random generator.

    Args:
        num_ops: operations drawn per image (``N``; 2 in BLIP/ALBEF).
        magnitude: strength on the 0-10 scale (``M``; 5 in BLIP/ALBEF).
        ops: names to draw from; default the BLIP list.
        prob: probability that each drawn op is applied (0.5 in LAVIS's image version).
        replace: draw ops with replacement (LAVIS's image version) or without (its video version).
        fill: colour of pixels uncovered by geometric ops.
    """

    def __init__(
        self,
        num_ops: int = 2,
        magnitude: float = 5,
        ops: Sequence[str] = BLIP_RANDAUGMENT_OPS,
        prob: float = 0.5,
        replace: bool = True,
        fill: tuple[int, int, int] = FILL,
    ) -> None:
        unknown = [name for name in ops if name not in _OPS]
        if unknown or not ops:
            raise ValueError(
                f"unknown RandAugment ops {unknown} (or none given); choose from {', '.join(ALL_RANDAUGMENT_OPS)}"
            )
        if num_ops < 0 or (not replace and num_ops > len(ops)):
            raise ValueError(
                f"num_ops must be >= 0 (and <= len(ops) = {len(ops)} when replace=False); got {num_ops}"
            )
        if not 0 <= magnitude <= MAX_LEVEL:
            raise ValueError(f"magnitude must be in [0, {MAX_LEVEL:g}]; got {magnitude}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1]; got {prob}")
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.ops = tuple(ops)
        self.prob = prob
        self.replace = replace
        self.fill = tuple(int(v) for v in fill)

    def _args(self, name: str, rng: np.random.Generator) -> tuple:
        level = self.magnitude / MAX_LEVEL
        if name in ("Brightness", "Sharpness", "Color", "Contrast"):
            return (level * 1.8 + 0.1,)
        if name in ("ShearX", "ShearY"):
            value = level * 0.3
            return (-value if rng.random() > 0.5 else value, self.fill)
        if name in ("TranslateX", "TranslateY"):
            value = level * TRANSLATE_CONST
            return (-value if rng.random() > 0.5 else value, self.fill)
        if name == "Rotate":
            value = level * 30.0
            return (-value if rng.random() < 0.5 else value, self.fill)
        if name == "Solarize":
            return (int(level * 256),)
        if name == "Posterize":
            return (int(level * 4),)
        return ()

    def sample(self, rng: np.random.Generator) -> list[RandAugmentStep]:
        """Draws the operations to apply (skipped ones left out), in LAVIS's order of random draws.

        Reuse one plan with :meth:`apply` to augment all frames of a video identically.
        """
        names = rng.choice(len(self.ops), size=self.num_ops, replace=self.replace)
        plan = []
        for index in names:
            name = self.ops[int(index)]
            if rng.random() > self.prob:
                continue
            plan.append(RandAugmentStep(name, self._args(name, rng)))
        return plan

    @staticmethod
    def apply(image: Image.Image, plan: Sequence[RandAugmentStep]) -> Image.Image:
        """Applies a plan from :meth:`sample` to ``image``."""
        for step in plan:
            image = apply_op(image, step.name, *step.args)
        return image

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Augments one image: ``apply(image, sample(rng))``."""
        return self.apply(image, self.sample(rng))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}, ops={list(self.ops)}, "
            f"prob={self.prob}, replace={self.replace})"
        )
