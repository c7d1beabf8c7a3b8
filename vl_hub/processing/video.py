"""Video frames for the models: which frames to take (sampling), decoding them, and the eval transform.

Sampling modes (pure functions of the video length and the frame count, plus a
``numpy.random.Generator`` for the random ones), each returning ``int64`` indices ``(n,)``:

============== ===================================================================================
``uniform``    LAVIS ``load_video``: ``arange(0, L, L / n)`` truncated to int (ALPRO's ``nlvl_uniform``)
``headtail``   LAVIS/ALPRO: ``n // 2`` distinct sorted frames from the first half, ``n // 2`` from the second
``random``     LAVIS-lineage ``load_video`` (SeViLA / X-InstructBLIP): split ``[0, L)`` into ``n`` equal
               segments (``linspace(0, L, n + 1)`` truncated), one uniformly random frame per segment
``middle``     the deterministic counterpart of ``random``: the middle frame of each segment
``alpro_uniform``   ALPRO's ``uniform``: ``arange(0, L, L / n, dtype=int)``, i.e. a constant integer
                    stride ``int(L / n)`` (numpy casts the step first), so the tail of the video is skipped
``alpro_rand``      ALPRO's ``rand``: ``n`` distinct frames drawn uniformly from the whole video, sorted
``alpro_nlvl_rand`` ALPRO's ``nlvl_rand``: the ``uniform`` points, each shifted by a random offset smaller
                    than the gap to the next point
============== ===================================================================================

Shared rules, as in the original loaders: a video with fewer frames than requested gives every frame
once and then repeats the last one (``n`` indices always come back, never an error); where the
original formula produced one index too many through floating-point rounding (``uniform`` for e.g.
17 frames and n=7 gives 8 values in LAVIS), the extra trailing index is dropped; ``headtail`` with an
odd ``n`` repeats its last index (LAVIS pads that way) and with ``n == 1`` draws its one frame from the
second half. :data:`ALPRO_STRATEGIES` maps ALPRO's config names onto these modes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vl_hub.processing.video_backends import PathLike, VideoBackend, get_backend

__all__ = [
    "ALPRO_STRATEGIES",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "RANDOM_SAMPLING_MODES",
    "SAMPLING_MODES",
    "VideoClip",
    "VideoEvalTransform",
    "alpro_nlvl_rand_indices",
    "alpro_rand_indices",
    "alpro_uniform_indices",
    "headtail_indices",
    "load_video",
    "middle_indices",
    "random_indices",
    "read_video_clip",
    "sample_frame_indices",
    "uniform_indices",
]

#: The normalisation of the BLIP / ALPRO / CLIP processors (OpenAI CLIP's statistics).
OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


# ----------------------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------------------


def _check_counts(num_video_frames: int, n: int | None) -> tuple[int, int]:
    """Validates ``(L, n)``; returns ``(n_requested, n_effective = min(n, L))``. ``n=None`` means all frames."""
    if isinstance(num_video_frames, bool) or not isinstance(num_video_frames, int | np.integer):
        raise TypeError(f"num_video_frames must be an int, got {type(num_video_frames).__name__}")
    if num_video_frames < 1:
        raise ValueError(
            f"cannot sample frames from a video with {num_video_frames} frames; the video is empty or its "
            "frame count could not be read."
        )
    if n is None:
        return int(num_video_frames), int(num_video_frames)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"the number of frames to sample must be a positive int (or None for all), got {n!r}")
    return int(n), min(int(n), int(num_video_frames))


def _pad_last(indices: np.ndarray, n: int) -> np.ndarray:
    """Exactly ``n`` indices: extra ones dropped, missing ones filled with the last index."""
    indices = np.asarray(indices, dtype=np.int64)[:n]
    if indices.size < n:
        indices = np.concatenate([indices, np.full(n - indices.size, indices[-1], dtype=np.int64)])
    return indices


def _rng(generator: np.random.Generator | None) -> np.random.Generator:
    if generator is None:
        return np.random.default_rng()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"generator must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), got "
            f"{type(generator).__name__}"
        )
    return generator


def _segments(num_video_frames: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` equal segments of ``[0, L)``: starts and ends ``(n,)``, boundaries truncated to int."""
    edges = np.linspace(0, num_video_frames, n + 1).astype(np.int64)
    return edges[:-1], edges[1:]


def uniform_indices(num_video_frames: int, n: int | None) -> np.ndarray:
    """LAVIS ``uniform``: frame ``floor(k * L / n)`` for ``k = 0..n-1`` (as float64 arithmetic gives it).

    Args:
        num_video_frames: ``L``, frames in the video.
        n: frames to sample (None: all).

    Returns:
        ``int64 (n,)``, non-decreasing.
    """
    n_req, n_eff = _check_counts(num_video_frames, n)
    step = num_video_frames / n_eff
    # numpy's arange computes start + k * step; the same product keeps LAVIS's exact integers.
    return _pad_last((np.arange(n_eff, dtype=np.float64) * step).astype(np.int64), n_req)


def middle_indices(num_video_frames: int, n: int | None) -> np.ndarray:
    """The middle frame of each of ``n`` equal segments (the LAVIS-lineage loaders' deterministic mode).

    Returns:
        ``int64 (n,)``, non-decreasing.
    """
    n_req, n_eff = _check_counts(num_video_frames, n)
    starts, ends = _segments(num_video_frames, n_eff)
    return _pad_last((starts + ends) // 2, n_req)


def random_indices(num_video_frames: int, n: int | None, generator: np.random.Generator | None = None) -> np.ndarray:
    """One uniformly random frame from each of ``n`` equal segments (sorted by construction).

    Args:
        num_video_frames: ``L``.
        n: frames to sample (None: all).
        generator: source of randomness; None draws fresh OS entropy.

    Returns:
        ``int64 (n,)``, strictly increasing when ``n <= L``.
    """
    n_req, n_eff = _check_counts(num_video_frames, n)
    starts, ends = _segments(num_video_frames, n_eff)
    widths = np.maximum(ends - starts, 1)  # every segment holds >= 1 frame once n <= L; max() is a guard
    offsets = np.floor(_rng(generator).random(n_eff) * widths).astype(np.int64)
    return _pad_last(starts + np.minimum(offsets, widths - 1), n_req)


def headtail_indices(num_video_frames: int, n: int | None, generator: np.random.Generator | None = None) -> np.ndarray:
    """LAVIS/ALPRO ``headtail``: ``n // 2`` distinct frames from ``[0, L // 2)``, ``n // 2`` from ``[L // 2, L)``.

    Each half is sorted; an odd ``n`` repeats the last index, ``n == 1`` takes one frame of the second half.

    Returns:
        ``int64 (n,)``, non-decreasing.
    """
    n_req, n_eff = _check_counts(num_video_frames, n)
    rng = _rng(generator)
    half = num_video_frames // 2
    k = n_eff // 2
    if k == 0:
        return _pad_last(np.sort(rng.choice(np.arange(half, num_video_frames), size=1, replace=False)), n_req)
    head = np.sort(rng.choice(half, size=k, replace=False))
    tail = np.sort(rng.choice(np.arange(half, num_video_frames), size=k, replace=False))
    return _pad_last(np.concatenate([head, tail]), n_req)


def alpro_uniform_indices(num_video_frames: int, n: int | None) -> np.ndarray:
    """ALPRO ``uniform``: ``k * int(L / n)`` (numpy's ``arange(..., dtype=int)`` truncates the step first).

    Returns:
        ``int64 (n,)``, non-decreasing.
    """
    n_req, n_eff = _check_counts(num_video_frames, n)
    stride = int(num_video_frames / n_eff)
    return _pad_last(np.arange(n_eff, dtype=np.int64) * stride, n_req)


def alpro_rand_indices(num_video_frames: int, n: int | None, generator: np.random.Generator | None = None) -> np.ndarray:
    """ALPRO ``rand``: ``n`` distinct frames drawn uniformly from the whole video, sorted.

    Returns:
        ``int64 (n,)``, strictly increasing when ``n <= L``.
    """
    n_req, n_eff = _check_counts(num_video_frames, n)
    return _pad_last(np.sort(_rng(generator).choice(num_video_frames, size=n_eff, replace=False)), n_req)


def alpro_nlvl_rand_indices(
    num_video_frames: int, n: int | None, generator: np.random.Generator | None = None
) -> np.ndarray:
    """ALPRO ``nlvl_rand``: each ``uniform`` point plus a random offset in ``[0, gap)``, where ``gap`` is the
    distance to the next point (to ``L`` for the last).

    Returns:
        ``int64 (n,)``, strictly increasing when ``n <= L``.
    """
    n_req, n_eff = _check_counts(num_video_frames, n)
    base = uniform_indices(num_video_frames, n_eff)
    gaps = np.diff(np.append(base, num_video_frames))
    offsets = np.floor(_rng(generator).random(n_eff) * gaps).astype(np.int64)
    return _pad_last(base + np.minimum(offsets, gaps - 1), n_req)


_DETERMINISTIC: dict[str, Callable[[int, int | None], np.ndarray]] = {
    "uniform": uniform_indices,
    "middle": middle_indices,
    "alpro_uniform": alpro_uniform_indices,
}
_RANDOM: dict[str, Callable[[int, int | None, np.random.Generator | None], np.ndarray]] = {
    "random": random_indices,
    "headtail": headtail_indices,
    "alpro_rand": alpro_rand_indices,
    "alpro_nlvl_rand": alpro_nlvl_rand_indices,
}

#: Every sampling mode :func:`sample_frame_indices` accepts.
SAMPLING_MODES: tuple[str, ...] = ("uniform", "headtail", "random", "middle", "alpro_uniform", "alpro_rand", "alpro_nlvl_rand")
#: The modes that draw from the generator.
RANDOM_SAMPLING_MODES: tuple[str, ...] = tuple(_RANDOM)

#: ALPRO's ``frm_sampling_strategy`` config values -> vl_hub sampling modes.
ALPRO_STRATEGIES: dict[str, str] = {
    "uniform": "alpro_uniform",
    "nlvl_uniform": "uniform",
    "rand": "alpro_rand",
    "nlvl_rand": "alpro_nlvl_rand",
    "headtail": "headtail",
}


def sample_frame_indices(
    num_video_frames: int,
    n: int | None,
    sampling: str = "uniform",
    generator: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices to decode from a video of ``num_video_frames`` frames.

    Args:
        num_video_frames: ``L``, frames in the video.
        n: frames to sample; None takes every frame.
        sampling: one of :data:`SAMPLING_MODES` (see the module docstring).
        generator: randomness for the random modes (ignored by the others); None uses fresh entropy.

    Returns:
        ``int64 (n,)`` indices in ``[0, L)``; repeats the last index when ``n > L``.
    """
    if sampling in _DETERMINISTIC:
        return _DETERMINISTIC[sampling](num_video_frames, n)
    if sampling in _RANDOM:
        return _RANDOM[sampling](num_video_frames, n, generator)
    hint = f" (ALPRO's {sampling!r} is vl_hub's {ALPRO_STRATEGIES[sampling]!r})" if sampling in ALPRO_STRATEGIES else ""
    raise ValueError(f"unknown sampling mode {sampling!r}{hint}; choose one of: {', '.join(SAMPLING_MODES)}")


# ----------------------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------------------


@dataclass
class VideoClip:
    """Sampled frames of one video.

    Attributes:
        frames: ``uint8 (T, H, W, 3)`` RGB, a numpy array or a torch tensor (``return_tensors``).
        indices: ``int64 (T,)``, the video frame of each row of ``frames``.
        num_video_frames: frames in the whole video.
        backend: name of the backend that decoded it.
    """

    frames: np.ndarray | torch.Tensor
    indices: np.ndarray
    num_video_frames: int
    backend: str


def _resolve_backend(backend: str | VideoBackend | None) -> VideoBackend:
    if isinstance(backend, VideoBackend):
        return backend
    if backend is None or isinstance(backend, str):
        return get_backend(backend)
    raise TypeError(f"backend must be a backend name, a VideoBackend or None, got {type(backend).__name__}")


def read_video_clip(
    path: PathLike,
    n_frames: int | None,
    sampling: str = "uniform",
    height: int | None = None,
    width: int | None = None,
    backend: str | VideoBackend | None = None,
    generator: np.random.Generator | None = None,
    return_tensors: Literal["np", "pt"] = "np",
) -> VideoClip:
    """Like :func:`load_video`, but also returns the sampled indices and the video's length."""
    if sampling not in SAMPLING_MODES:
        sample_frame_indices(1, 1, sampling)  # raises the descriptive error
    if return_tensors not in ("np", "pt"):
        raise ValueError(f"return_tensors must be 'np' or 'pt', got {return_tensors!r}")
    chosen = _resolve_backend(backend)
    seen: dict[str, int] = {}

    def choose(num_video_frames: int) -> np.ndarray:
        seen["n"] = num_video_frames
        return sample_frame_indices(num_video_frames, n_frames, sampling, generator)

    frames, indices = chosen.sample_frames(os.fspath(path), choose, height=height, width=width)
    out: np.ndarray | torch.Tensor = torch.from_numpy(frames) if return_tensors == "pt" else frames
    return VideoClip(frames=out, indices=indices, num_video_frames=seen["n"], backend=chosen.name)


def load_video(
    path: PathLike,
    n_frames: int | None,
    sampling: str = "uniform",
    height: int | None = None,
    width: int | None = None,
    backend: str | VideoBackend | None = None,
    generator: np.random.Generator | None = None,
    return_tensors: Literal["np", "pt"] = "np",
) -> np.ndarray | torch.Tensor:
    """Decodes ``n_frames`` sampled frames of a video (LAVIS ``load_video``, returned as ``(T, H, W, 3)``).

    Args:
        path: video file.
        n_frames: frames to return (None: every frame). Shorter videos repeat their last frame.
        sampling: one of :data:`SAMPLING_MODES`.
        height, width: resize in the decoder to ``(height, width)`` (both or neither), like LAVIS does
            with decord's ``VideoReader(height=, width=)``.
        backend: ``"decord"``, ``"torchcodec"``, ``"pyav"``, a :class:`VideoBackend`, or None for
            :func:`~vl_hub.processing.video_backends.get_backend`'s choice.
        generator: randomness for the random sampling modes.
        return_tensors: ``"np"`` (numpy) or ``"pt"`` (torch).

    Returns:
        ``uint8 (T, H, W, 3)`` RGB frames; LAVIS's layout ``(3, T, H, W)`` float is
        ``frames.permute(3, 0, 1, 2).float()``.

    Raises:
        FileNotFoundError: the file does not exist.
        VideoDecodingError: the file is empty, corrupt or unreadable by the backend.
        ValueError: bad ``n_frames``, ``sampling``, ``height``/``width``.
    """
    return read_video_clip(path, n_frames, sampling, height, width, backend, generator, return_tensors).frames


# ----------------------------------------------------------------------------------------------------
# eval transform
# ----------------------------------------------------------------------------------------------------


class VideoEvalTransform:
    """uint8 RGB frames ``(..., H, W, 3)`` -> normalised float32 ``(..., 3, S, S)`` (or ``(3, T, S, S)``).

    As LAVIS's video eval processors: frames are resized (only if not already ``S x S``; LAVIS lets the
    decoder resize) with ``torch.nn.functional.interpolate`` (``align_corners=False``, no antialiasing,
    like LAVIS's ``functional_video.resize``), then ``x / 255``, then ``(x - mean) / std`` per channel.
    Bicubic overshoot is clamped to ``[0, 255]`` before normalising.

    Args:
        image_size: ``S`` or ``(height, width)``.
        interpolation: ``"bilinear"`` (ALPRO) or ``"bicubic"`` (BLIP).
        mean, std: per-channel statistics (default: OpenAI CLIP's, used by BLIP/ALPRO/CLIP).
        layout: ``"TCHW"`` (default) or ``"CTHW"`` (LAVIS's/ALPRO's video layout) for ``(T, H, W, 3)`` input.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        interpolation: Literal["bilinear", "bicubic"] = "bilinear",
        mean: Sequence[float] = OPENAI_CLIP_MEAN,
        std: Sequence[float] = OPENAI_CLIP_STD,
        layout: Literal["TCHW", "CTHW"] = "TCHW",
    ) -> None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be 'bilinear' or 'bicubic', got {interpolation!r}")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need 3 values each and std > 0, got mean={mean!r}, std={std!r}")
        if layout not in ("TCHW", "CTHW"):
            raise ValueError(f"layout must be 'TCHW' or 'CTHW', got {layout!r}")
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.interpolation = interpolation
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.layout = layout

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Args:
            frames: ``uint8 (..., H, W, 3)``, e.g. ``(T, H, W, 3)`` from :func:`load_video`.

        Returns:
            float32 ``(..., 3, S, S)``; with ``layout="CTHW"`` and ``(T, H, W, 3)`` input, ``(3, T, S, S)``.
        """
        x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"frames must be a numpy array or torch tensor, got {type(frames).__name__}")
        if x.dtype != torch.uint8:
            raise TypeError(f"frames must be uint8 RGB (0..255), got dtype {x.dtype}; decode with load_video")
        if x.ndim < 3 or x.shape[-1] != 3:
            raise ValueError(f"frames must have shape (..., H, W, 3) with 3 RGB channels, got {tuple(x.shape)}")
        lead = x.shape[:-3]
        h, w = x.shape[-3], x.shape[-2]
        x = x.reshape(-1, h, w, 3).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
        if (h, w) != self.size:
            x = torch.nn.functional.interpolate(x, size=self.size, mode=self.interpolation, align_corners=False)
            if self.interpolation == "bicubic":
                x = x.clamp(0.0, 255.0)
        x = (x / 255.0 - self.mean) / self.std
        x = x.reshape(*lead, 3, *self.size)
        if self.layout == "CTHW":
            if x.ndim != 4:
                raise ValueError(f"layout='CTHW' needs (T, H, W, 3) frames, got {tuple(frames.shape)}")
            x = x.permute(1, 0, 2, 3).contiguous()
        return x

    def __repr__(self) -> str:
        return (
            f"VideoEvalTransform(image_size={self.size}, interpolation={self.interpolation!r}, "
            f"layout={self.layout!r})"
        )
