"""Image loading and conversion to 8-bit RGB, for every PIL mode a dataset may hold.

Conversions, all checked pixel by pixel in the tests:

* ``L``, ``1``: grey replicated to three channels (``1`` -> 0 / 255).
* ``LA``, ``La``, ``RGBA``, ``RGBa``, ``PA`` and palette images with a transparent colour: alpha is
  composited over a background, **white by default** (``round(c * a / 255 + bg * (255 - a) / 255)``);
  PIL's ``convert("RGB")`` would instead drop alpha and show whatever colour hides under transparent
  pixels (often black).
* ``P``: palette looked up.
* ``I;16`` (and ``I;16B``/``I;16L``) and ``I`` with values in ``[0, 65535]``: scaled from 16 to 8 bits
  (``round(v / 257)``); PIL's ``convert("RGB")`` clips them at 255, which turns most 16-bit images white.
* ``F``: taken as ``[0, 1]`` and scaled by 255; values outside raise.
* ``CMYK``: ``round((255 - c) * (255 - k) / 255)`` per channel (uncalibrated, the same on every Pillow).
* ``YCbCr``, ``LAB``, ``HSV``, ``RGBX``: PIL's conversion.

Files are decoded completely on load, with PIL's ``LOAD_TRUNCATED_IMAGES`` forced off unless
``allow_truncated=True``, so a truncated download raises instead of silently returning grey rows.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = ["ImageSource", "InvalidImageError", "load_image", "numpy_to_pil", "to_rgb"]

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]

WHITE = (255, 255, 255)

_ALPHA_MODES = frozenset({"LA", "La", "RGBA", "RGBa", "PA"})
_UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_PIL_CONVERTIBLE = frozenset({"YCbCr", "LAB", "HSV", "RGBX", "L", "P"})
_TRUNCATION_LOCK = threading.Lock()


class InvalidImageError(OSError, ValueError):
    """A file that is not a readable image (truncated, corrupt or another format); its message names the file."""


def _uint16_to_uint8(values: np.ndarray) -> np.ndarray:
    # round(v / 257): 65535 -> 255 exactly, with integer arithmetic.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _composite(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """``(H, W, 4)`` uint8 -> ``(H, W, 3)`` uint8, alpha composited over ``background``."""
    color = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    bg = np.asarray(background, dtype=np.uint32)
    return ((color * alpha + bg * (255 - alpha) + 127) // 255).astype(np.uint8)


def _check_background(background: tuple[int, int, int]) -> tuple[int, int, int]:
    values = tuple(int(v) for v in background)
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"background must be an (R, G, B) triple of ints in [0, 255]; got {background!r}")
    return values  # type: ignore[return-value]


def to_rgb(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Converts a PIL image of any supported mode to 8-bit ``RGB`` (see the module docstring for each mode).

    Args:
        image: the image; an ``RGB`` image is returned as is.
        background: colour under transparent pixels (white by default).

    Returns:
        an ``RGB`` image of the same size.

    Raises:
        ValueError: for a mode with no sound 8-bit reading (``I`` outside ``[0, 65535]``, ``F`` outside
        ``[0, 1]``, or an unknown mode), saying how to convert it yourself.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    background = _check_background(background)
    if mode == "P" and "transparency" in image.info:
        mode = "PA"
        image = image.convert("RGBA")
    if mode in _ALPHA_MODES:
        if mode == "La":
            image = image.convert("LA")  # PIL cannot go from premultiplied La to RGBA directly
        rgba = np.asarray(image.convert("RGBA"))
        return Image.fromarray(_composite(rgba, background), "RGB")
    if mode in ("1", "L") or mode in _PIL_CONVERTIBLE:
        return image.convert("RGB")
    if mode == "CMYK":
        cmyk = np.asarray(image).astype(np.uint32)
        keep = 255 - cmyk[..., 3:4]
        rgb = ((255 - cmyk[..., :3]) * keep + 127) // 255
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    if mode in _UINT16_MODES:
        grey = _uint16_to_uint8(np.asarray(image))
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "I":
        values = np.asarray(image)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or high > 65535:
            raise ValueError(
                f"32-bit integer image (mode I) has values in [{low}, {high}], outside the 16-bit range this loader "
                "scales to 8 bits; rescale it to uint8 yourself and pass the array"
            )
        return Image.fromarray(_uint16_to_uint8(values), "L").convert("RGB")
    if mode == "F":
        return Image.fromarray(_float_to_uint8(np.asarray(image), "float image (mode F)"), "L").convert("RGB")
    raise ValueError(
        f"image mode {mode!r} is not supported; convert it to RGB with PIL (image.convert('RGB')) before passing it"
    )


def _float_to_uint8(values: np.ndarray, what: str) -> np.ndarray:
    if values.size and (not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0):
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        raise ValueError(
            f"{what} must hold finite values in [0, 1]; got values in [{low}, {high}]. Divide by 255 if it is "
            "[0, 255], or convert it to uint8 yourself"
        )
    return np.round(values.astype(np.float64) * 255.0).astype(np.uint8)


def numpy_to_pil(array: np.ndarray) -> Image.Image:
    """Wraps an ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` array as a PIL image.

    Dtypes: ``uint8``; ``uint16`` (16-bit, scaled to 8); ``bool`` (0/255); floats (``[0, 1]``); other
    integers when their values lie in ``[0, 255]``. Four channels mean RGBA.

    Raises:
        ValueError: for channel-first arrays, other shapes, or values outside the dtype's range.
    """
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        raise ValueError(
            f"image array of shape {array.shape} looks channel-first (C, H, W); pass array.transpose(1, 2, 0)"
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {array.shape}")
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.uint16:
        pixels = _uint16_to_uint8(array)
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        pixels = _float_to_uint8(array, f"{array.dtype} image array")
    elif np.issubdtype(array.dtype, np.integer):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if low < 0 or high > 255:
            raise ValueError(
                f"{array.dtype} image array has values in [{low}, {high}]; integer arrays other than uint16 must be "
                "in [0, 255] (cast 16-bit data to np.uint16)"
            )
        pixels = array.astype(np.uint8)
    else:
        raise ValueError(
            f"image array dtype {array.dtype} is not supported; use uint8, uint16, bool or float in [0, 1]"
        )
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[-1] if pixels.ndim == 3 else 2]
    return Image.fromarray(np.ascontiguousarray(pixels), mode)


@contextmanager
def _truncated_images(allowed: bool) -> Iterator[None]:
    """Sets PIL's global ``LOAD_TRUNCATED_IMAGES`` for the duration of one decode.

    PIL reads the flag as a module global; another library may have switched it on for the whole
    process, which would silently fill the missing part of truncated files with grey.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES == allowed:
        yield
        return
    with _TRUNCATION_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = allowed
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)


def _open_file(
    path: Path, background: tuple[int, int, int], allow_truncated: bool, exif_transpose: bool
) -> Image.Image:
    if not path.exists():
        raise FileNotFoundError(f"image file {path} does not exist; check the path and that the download is complete")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not an image file")
    hint = "re-download it, or skip it (datasets: skip_invalid=True)"
    try:
        image = Image.open(path)
    except UnidentifiedImageError as err:
        raise InvalidImageError(f"{path} is not an image PIL can read (unknown or corrupt header); {hint}") from err
    except Image.DecompressionBombError as err:
        raise InvalidImageError(f"{path}: {err}; raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file") from err
    returned_as_is = False
    try:
        try:
            with _truncated_images(allow_truncated):
                image.load()
        except _DECODE_ERRORS as err:
            raise InvalidImageError(
                f"image file {path} cannot be decoded, it is truncated or corrupt ({type(err).__name__}: {err}); {hint}"
            ) from err
        oriented = ImageOps.exif_transpose(image) if exif_transpose else image
        converted = to_rgb(oriented, background)
        if converted is image:
            if getattr(image, "fp", None) is None:
                # PIL already closed the file after decoding a single-frame image: no copy needed.
                returned_as_is = True
                return image
            # Multi-frame formats keep the file open, and closing it frees the pixels: detach them first.
            converted = image.copy()
        return converted
    finally:
        if not returned_as_is:
            image.close()


def load_image(
    source: ImageSource,
    *,
    background: tuple[int, int, int] = WHITE,
    exif_transpose: bool = False,
    allow_truncated: bool = False,
) -> Image.Image:
    """Loads ``source`` as an 8-bit ``RGB`` PIL image.

    Args:
        source: a file path (``str``/``PathLike``), a PIL image of any supported mode, or a numpy array
            (see :func:`numpy_to_pil`).
        background: colour that transparent pixels are composited over (white by default).
        exif_transpose: rotate/flip files by their EXIF orientation tag. Off by default because the
            original LAVIS pipelines (and their published numbers) read the stored pixel order.
        allow_truncated: decode truncated files anyway (missing rows become grey). Off: they raise.

    Returns:
        an ``RGB`` image.

    Raises:
        FileNotFoundError: the path does not exist (the message names it).
        InvalidImageError: (an ``OSError`` and ``ValueError``) the file is truncated, corrupt or not an
            image; the message names the file and says to re-download or skip it.
        ValueError: for an unsupported mode, dtype or shape.
        TypeError: for any other kind of ``source``.
    """
    if isinstance(source, Image.Image):
        if exif_transpose:
            source = ImageOps.exif_transpose(source)
        return to_rgb(source, background)
    if isinstance(source, np.ndarray):
        return to_rgb(numpy_to_pil(source), background)
    if isinstance(source, (str, os.PathLike)):
        return _open_file(Path(source), background, allow_truncated, exif_transpose)
    raise TypeError(
        f"load_image takes a path, a PIL.Image.Image or a numpy array; got {type(source).__name__}"
    )
