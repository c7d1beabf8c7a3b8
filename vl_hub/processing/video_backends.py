"""Video decoding backends: one interface over decord, torchcodec and PyAV, chosen at run time.

Every backend returns RGB ``uint8`` frames ``(T, H, W, 3)`` for frame indices counted in presentation
order (frame ``i`` is the ``i``-th frame a player shows). decord and PyAV return *identical* bytes for
the same file, indices and output size: :class:`PyAVBackend` builds the same FFmpeg filter chain that
decord builds (display-matrix rotation, then ``scale=W:H:flags=bilinear``, then RGB24) and identifies
frames the way decord does, so the pixels agree exactly, with and without resizing (checked on MP4,
MOV, MKV, WebM, FLV, AVI, MPEG-PS; H.264 with B-frames, MPEG-4, MPEG-2, VP9; rotated videos).
torchcodec's own resize (bilinear with antialiasing) differs from that chain, so
:class:`TorchCodecBackend` matches the others exactly only at the native size.

Where decord itself returns wrong frames, it is worked around or refused, never trusted: after a seek in
AVI or MPEG-PS files decord lands on the wrong frame, so those are read sequentially; in MPEG-TS files
all its frames are shifted, so it refuses them (PyAV reads them). decord 0.6 also cannot output frames
8, 12, 16, 24, 48 or 72 pixels wide; that error says so and points to PyAV.

Choosing a backend (:func:`get_backend`): an explicit name, else the environment variable
``VLHUB_VIDEO_BACKEND``, else the first importable of decord, torchcodec, PyAV.

Errors are never raw decoder exceptions: a missing file raises :class:`FileNotFoundError`; an empty,
corrupt or truncated file raises :class:`VideoDecodingError` (a :class:`ValueError`); an index past the
last frame raises :class:`FrameIndexError` (a :class:`VideoDecodingError` and an :class:`IndexError`).
Each names the file and says what to do.
"""

from __future__ import annotations

import functools
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "BACKEND_ENV_VAR",
    "BACKEND_PREFERENCE",
    "DecordBackend",
    "FrameIndexError",
    "PyAVBackend",
    "TorchCodecBackend",
    "VideoBackend",
    "VideoBackendUnavailableError",
    "VideoDecodingError",
    "available_backends",
    "check_video_file",
    "get_backend",
    "sniff_container",
]

#: Environment variable naming the backend to use when none is passed explicitly.
BACKEND_ENV_VAR = "VLHUB_VIDEO_BACKEND"

PathLike = str | os.PathLike[str]

_REPAIR_HINT = (
    "Check the file with `ffprobe {path}`; re-download it, or re-encode it "
    "(`ffmpeg -i {path} -c:v libx264 -pix_fmt yuv420p fixed.mp4`)"
)


class VideoDecodingError(ValueError):
    """A video file exists but cannot be read: empty, corrupt, truncated, no video stream, bad request.

    Attributes:
        path: the file that failed.
    """

    def __init__(self, message: str, path: PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


class FrameIndexError(VideoDecodingError, IndexError):
    """A requested frame index is negative or not smaller than the video's frame count."""


class VideoBackendUnavailableError(ImportError):
    """A backend was asked for by name but its library is not installed (or fails to import)."""


def check_video_file(path: PathLike) -> Path:
    """Checks that ``path`` is an existing, non-empty regular file and returns it as a :class:`Path`.

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        VideoDecodingError: ``path`` is a directory or an empty (0-byte) file.
    """
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(
            f"video file not found: {str(p)!r}. Check the path (and the dataset's data_dir / video folder); "
            "if the dataset was downloaded partially, download the missing videos."
        )
    if p.is_dir():
        raise VideoDecodingError(
            f"{str(p)!r} is a directory, not a video file. Pass the path of a video file "
            "(.mp4, .avi, .webm, ...).",
            p,
        )
    if p.stat().st_size == 0:
        raise VideoDecodingError(
            f"video file {str(p)!r} is empty (0 bytes), probably an interrupted download. "
            "Re-download it, or drop this example (builders: skip_invalid=True).",
            p,
        )
    return p


def _check_output_size(height: int | None, width: int | None) -> tuple[int, int] | None:
    """Validates the optional decoder resize target; both given or neither."""
    if height is None and width is None:
        return None
    if height is None or width is None:
        raise ValueError(
            f"height and width must be given together (got height={height!r}, width={width!r}); "
            "pass both to resize every frame to (height, width), or neither to keep the native size."
        )
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(height), int(width)


def _check_indices(path: Path, indices: Sequence[int] | np.ndarray, num_frames: int) -> np.ndarray:
    """Validates frame indices against the video length; returns them as an int64 array ``(T,)``."""
    arr = np.asarray(indices)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"indices must be a non-empty 1-D sequence of frame numbers, got shape {arr.shape} "
            f"for video {str(path)!r}."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.floor(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"indices must be integers, got dtype {arr.dtype} for video {str(path)!r}.")
    arr = arr.astype(np.int64, copy=False)
    bad = arr[(arr < 0) | (arr >= num_frames)]
    if bad.size:
        raise FrameIndexError(
            f"frame indices {bad[:8].tolist()} are out of range for video {str(path)!r}, which has "
            f"{num_frames} frames (valid: 0..{num_frames - 1}). Sample indices from the video's own "
            "frame count (vl_hub.processing.video.sample_frame_indices does), and check that the file "
            "is complete.",
            path,
        )
    return arr


class VideoBackend(ABC):
    """One video decoding library behind a common interface.

    Subclasses implement ``_open``/``_num_frames``/``_fps``/``_decode`` (and ``_close`` where a handle
    holds resources); this class validates paths, sizes and indices, decodes each distinct frame once,
    restores the requested order (repeats included) and turns library exceptions into
    :class:`VideoDecodingError` naming the file.
    """

    #: The name :func:`get_backend` knows this backend by.
    name: ClassVar[str]
    #: The module whose import decides availability.
    module_name: ClassVar[str]

    @classmethod
    def is_available(cls) -> bool:
        """Whether the backend's library imports in this environment."""
        return _importable(cls.module_name)

    # -- public API ---------------------------------------------------------------------------------

    def num_frames(self, path: PathLike) -> int:
        """Number of frames in the video (decord's definition: video packets in the container)."""
        return self._run(path, None, lambda p, handle: self._guard(p, None, "decode", lambda: self._num_frames(handle)))

    def fps(self, path: PathLike) -> float:
        """Average frame rate of the video stream (frames per second)."""
        return self._run(path, None, lambda p, handle: self._guard(p, None, "decode", lambda: float(self._fps(handle))))

    def get_frames(
        self,
        path: PathLike,
        indices: Sequence[int] | np.ndarray,
        height: int | None = None,
        width: int | None = None,
    ) -> np.ndarray:
        """Decodes the frames at ``indices``.

        Args:
            path: video file.
            indices: frame numbers ``(T,)``, any order, repeats allowed; each in ``[0, num_frames)``.
            height, width: if given (both), the decoder resizes every frame to ``(height, width)``.

        Returns:
            ``uint8`` RGB frames ``(T, H, W, 3)``, frame ``t`` being video frame ``indices[t]``.
        """
        frames, _ = self.sample_frames(path, lambda _n: indices, height=height, width=width)
        return frames

    def sample_frames(
        self,
        path: PathLike,
        choose_indices: Callable[[int], Sequence[int] | np.ndarray],
        height: int | None = None,
        width: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Opens the video once, picks indices from its length and decodes them.

        Args:
            path: video file.
            choose_indices: called with the video's frame count; returns frame numbers ``(T,)``.
            height, width: optional decoder resize target, as in :meth:`get_frames`.

        Returns:
            ``(frames, indices)``: ``uint8`` RGB ``(T, H, W, 3)`` and the int64 indices ``(T,)`` used.
        """
        size = _check_output_size(height, width)

        def work(checked: Path, handle: Any) -> tuple[np.ndarray, np.ndarray]:
            n = self._guard(checked, size, "decode", lambda: self._num_frames(handle))
            if n < 1:
                raise VideoDecodingError(
                    f"video {str(checked)!r} has no frames (its video stream is empty). "
                    + _REPAIR_HINT.format(path=checked)
                    + ".",
                    checked,
                )
            idx = _check_indices(checked, choose_indices(n), n)
            unique, inverse = np.unique(idx, return_inverse=True)
            frames = self._guard(checked, size, "decode", lambda: self._decode(handle, unique))
            if (
                frames.dtype != np.uint8
                or frames.ndim != 4
                or frames.shape[0] != unique.size
                or frames.shape[-1] != 3
                or (size is not None and tuple(frames.shape[1:3]) != size)
            ):
                raise VideoDecodingError(
                    f"the {self.name} backend returned frames of shape {frames.shape} / {frames.dtype} for "
                    f"{unique.size} requested frames of video {str(checked)!r}; the file is probably damaged. "
                    + _REPAIR_HINT.format(path=checked)
                    + ".",
                    checked,
                )
            return frames[inverse.reshape(-1)], idx

        return self._run(path, size, work)

    # -- to implement ---------------------------------------------------------------------------------

    @abstractmethod
    def _open(self, path: Path, size: tuple[int, int] | None) -> Any:
        """Opens ``path`` for decoding at ``size`` (``(H, W)`` or native when None)."""

    def _close(self, handle: Any) -> None:  # noqa: B027 - most backends hold nothing to release
        """Releases the handle returned by :meth:`_open`."""

    @abstractmethod
    def _num_frames(self, handle: Any) -> int:
        """Frame count of the opened video."""

    @abstractmethod
    def _fps(self, handle: Any) -> float:
        """Average frame rate of the opened video."""

    @abstractmethod
    def _decode(self, handle: Any, indices: np.ndarray) -> np.ndarray:
        """Decodes the valid, sorted, unique ``indices (U,)`` into ``uint8 (U, H, W, 3)``."""

    @abstractmethod
    def _library_errors(self) -> tuple[type[BaseException], ...]:
        """The library's exception types, turned into :class:`VideoDecodingError`."""

    # -- shared machinery ---------------------------------------------------------------------------

    def _run(self, path: PathLike, size: tuple[int, int] | None, work: Callable[[Path, Any], Any]) -> Any:
        """Checks the file, opens it (library errors -> VideoDecodingError), runs ``work``, closes it."""
        checked = check_video_file(path)
        handle = self._guard(checked, size, "open", lambda: self._open(checked, size))
        try:
            return work(checked, handle)
        finally:
            self._close(handle)

    def _guard(self, path: Path, size: tuple[int, int] | None, stage: str, call: Callable[[], Any]) -> Any:
        """Runs one library call; its exceptions become :class:`VideoDecodingError` naming the file.

        Only library calls go through here, so vl_hub's own ValueErrors (bad indices) pass unchanged.
        """
        try:
            return call()
        except VideoDecodingError:
            raise
        except self._library_errors() as err:
            if stage == "open":
                advice = "The file is corrupt, truncated or not a video. " + _REPAIR_HINT.format(path=path) + "."
            else:
                advice = self._decode_error_advice(err, path, size)
            raise VideoDecodingError(
                f"cannot {stage} video {str(path)!r} with the {self.name} backend "
                f"({type(err).__name__}: {_short(err)}). {advice}",
                path,
            ) from err

    def _decode_error_advice(self, err: BaseException, path: Path, size: tuple[int, int] | None) -> str:
        """What to tell the user when decoding (not opening) fails."""
        others = [name for name in available_backends() if name != self.name]
        alternative = f" If it plays elsewhere, try backend={others[0]!r}." if others else ""
        return "The file is probably damaged or truncated. " + _REPAIR_HINT.format(path=path) + "." + alternative

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _short(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + "..."


@functools.cache
def _importable(module_name: str) -> bool:
    try:
        importlib.import_module(module_name)
    except Exception:  # a broken binary wheel raises OSError/RuntimeError, not only ImportError
        return False
    return True


def sniff_container(path: PathLike) -> str:
    """The container format from the file's first bytes: ``"mp4"`` (MP4/MOV/3GP), ``"matroska"``
    (MKV/WebM), ``"flv"``, ``"avi"``, ``"mpegts"``, ``"mpegps"`` or ``"unknown"``.

    Random access is reliable only in indexed containers; the backends read the others sequentially.
    """
    with open(path, "rb") as f:
        head = f.read(400)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:3] == b"FLV":
        return "flv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x00\x00\x01\xba":
        return "mpegps"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47 or len(head) > 196 and head[4] == 0x47 and head[196] == 0x47:
        return "mpegts"
    return "unknown"


# ----------------------------------------------------------------------------------------------------
# decord
# ----------------------------------------------------------------------------------------------------


class DecordBackend(VideoBackend):
    """decord's ``VideoReader`` (the decoder LAVIS uses). Resizing happens inside decord's FFmpeg graph.

    Args:
        num_threads: decoder threads (0: decord's default, automatic).
    """

    name = "decord"
    module_name = "decord"
    #: Containers where decord's seeking lands on the right frame (checked against frame contents).
    #: In AVI and MPEG-PS it returns wrong frames after a seek, so those are read from the start.
    SEEKABLE_CONTAINERS: ClassVar[frozenset[str]] = frozenset({"mp4", "matroska", "flv"})
    #: Frames decoded per ``get_batch`` call when reading sequentially (bounds memory).
    SEQUENTIAL_CHUNK: ClassVar[int] = 32

    def __init__(self, num_threads: int = 0) -> None:
        self.num_threads = num_threads

    def _library_errors(self) -> tuple[type[BaseException], ...]:
        import decord

        # decord raises DECORDError (from its C++ CHECKs) and plain RuntimeError ("Error reading ...").
        return (decord.DECORDError, RuntimeError)

    def _open(self, path: Path, size: tuple[int, int] | None) -> tuple[Any, bool]:
        import decord

        container = sniff_container(path)
        if container == "mpegts":
            # decord drops the first frames of MPEG-TS streams, so every index would be shifted.
            raise VideoDecodingError(
                f"decord returns shifted frames for MPEG-TS files such as {str(path)!r}. Use backend='pyav', "
                f"or remux the file: `ffmpeg -i {path} -c copy video.mp4`.",
                path,
            )
        height, width = size if size is not None else (-1, -1)
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height, num_threads=self.num_threads)
        return reader, container not in self.SEEKABLE_CONTAINERS

    def _num_frames(self, handle: tuple[Any, bool]) -> int:
        return len(handle[0])

    def _decode_error_advice(self, err: BaseException, path: Path, size: tuple[int, int] | None) -> str:
        if "DECORDArrayCopyFromTo" in str(err):
            # decord 0.6 cannot copy out frames of a few widths (8, 12, 16, 24, 48, 72 px), decoded or resized.
            if size is not None:
                return (
                    f"decord 0.6 fails to output frames {size[1]} pixels wide (a decord bug with some widths such "
                    "as 8, 12, 16, 24, 48 and 72, not a broken file). Choose another width, or use "
                    "backend='pyav', which returns the same frames."
                )
            return (
                "decord 0.6 fails to output frames of this video's width (a decord bug with some widths such "
                "as 8, 12, 16, 24, 48 and 72, not a broken file). Use backend='pyav', which returns the same "
                "frames, or resize in the decoder (height=, width=) to another width."
            )
        return super()._decode_error_advice(err, path, size)

    def _fps(self, handle: tuple[Any, bool]) -> float:
        return float(handle[0].get_avg_fps())

    def _decode(self, handle: tuple[Any, bool], indices: np.ndarray) -> np.ndarray:
        reader, sequential = handle
        if not sequential:
            return _decord_batch(reader, indices.tolist())
        # Contiguous reads from frame 0 never make decord seek; keep only the wanted frames.
        kept: list[np.ndarray] = []
        last = int(indices[-1])
        for start in range(0, last + 1, self.SEQUENTIAL_CHUNK):
            stop = min(start + self.SEQUENTIAL_CHUNK, last + 1)
            chunk = _decord_batch(reader, list(range(start, stop)))
            wanted = indices[(indices >= start) & (indices < stop)] - start
            kept.append(chunk[wanted])
        return np.concatenate(kept)

    def __repr__(self) -> str:
        return f"DecordBackend(num_threads={self.num_threads})"


def _decord_batch(reader: Any, indices: list[int]) -> np.ndarray:
    batch = reader.get_batch(indices)
    # decord.bridge may be set globally (LAVIS sets "torch"); accept any bridge's array type.
    frames = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
    return np.ascontiguousarray(frames)


# ----------------------------------------------------------------------------------------------------
# PyAV
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PacketIndex:
    """Presentation timestamps of every video packet, sorted (``pts (N,)``), and of the keyframes.

    ``pts`` is None when some packet has no timestamp; frames are then counted in decode output order.
    """

    count: int
    pts: np.ndarray | None
    key_pts: np.ndarray | None


@functools.lru_cache(maxsize=512)
def _pyav_packet_index(path: str, _size: int, _mtime_ns: int) -> _PacketIndex:
    """Demuxes (without decoding) the first video stream of ``path``; cached per file version."""
    import av

    pts: list[int] = []
    key: list[int] = []
    missing_pts = False
    with av.open(path) as container:
        stream = _first_video_stream(container, path)
        for packet in container.demux(stream):
            if packet.size == 0:  # PyAV's end-of-stream flush packet, not a frame
                continue
            if packet.pts is None:
                missing_pts = True
                pts.append(-1)
                continue
            pts.append(int(packet.pts))
            if packet.is_keyframe:
                key.append(int(packet.pts))
    if missing_pts:
        return _PacketIndex(len(pts), None, None)
    return _PacketIndex(len(pts), np.sort(np.asarray(pts, dtype=np.int64)), np.sort(np.asarray(key, dtype=np.int64)))


def _first_video_stream(container: Any, path: PathLike) -> Any:
    if not container.streams.video:
        raise VideoDecodingError(
            f"{str(path)!r} has no video stream (an audio-only or non-video file). Pass a video file.",
            path,
        )
    return container.streams.video[0]


@dataclass
class _PyAVHandle:
    path: Path
    size: tuple[int, int] | None
    index: _PacketIndex
    container: Any
    stream: Any


class PyAVBackend(VideoBackend):
    """PyAV (FFmpeg bindings). Frame ``i`` is the frame with the ``i``-th smallest packet timestamp, as
    in decord; frames are reached by seeking to the keyframe before them and decoding forward.

    RGB conversion and resizing go through the FFmpeg filter chain decord uses (display-matrix
    ``transpose`` filters, ``scale=W:H:flags=bilinear``, ``format=rgb24``), which makes the output
    byte-identical to :class:`DecordBackend`.

    Args:
        thread_type: PyAV decoder threading (``"SLICE"``, ``"FRAME"``, ``"AUTO"``) or None for PyAV's default.
    """

    name = "pyav"
    module_name = "av"
    #: FFmpeg demuxers whose seeking is exact enough (indexed containers). Others (MPEG-TS/PS, raw
    #: streams, ...) are decoded from the start, which is always right but slower for late frames.
    SEEKABLE_DEMUXERS: ClassVar[frozenset[str]] = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "flv"})

    def __init__(self, thread_type: str | None = None) -> None:
        self.thread_type = thread_type

    def _library_errors(self) -> tuple[type[BaseException], ...]:
        import av

        return (av.FFmpegError,)

    def _open(self, path: Path, size: tuple[int, int] | None) -> _PyAVHandle:
        import av

        stat = path.stat()
        index = _pyav_packet_index(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        container = av.open(str(path))
        try:
            stream = _first_video_stream(container, path)
            if self.thread_type is not None:
                stream.thread_type = self.thread_type
        except BaseException:
            container.close()
            raise
        return _PyAVHandle(path, size, index, container, stream)

    def _close(self, handle: _PyAVHandle) -> None:
        handle.container.close()

    def _num_frames(self, handle: _PyAVHandle) -> int:
        return handle.index.count

    def _fps(self, handle: _PyAVHandle) -> float:
        rate = handle.stream.average_rate or handle.stream.guessed_rate
        if not rate:
            raise VideoDecodingError(
                f"video {str(handle.path)!r} declares no frame rate. " + _REPAIR_HINT.format(path=handle.path) + ".",
                handle.path,
            )
        return float(rate)

    def _decode(self, handle: _PyAVHandle, indices: np.ndarray) -> np.ndarray:
        converter = _RGBConverter(handle.stream, handle.size)
        if handle.index.pts is None or handle.container.format.name not in self.SEEKABLE_DEMUXERS:
            frames = self._decode_sequential(handle, indices, converter)
        else:
            frames = self._decode_seeking(handle, indices, converter)
        return np.stack(frames)

    def _decode_sequential(self, handle: _PyAVHandle, indices: np.ndarray, converter: _RGBConverter) -> list[np.ndarray]:
        """Count decoded frames from the start (no seeking): for unindexed containers or missing timestamps."""
        wanted = set(indices.tolist())
        last = int(indices[-1])
        out: dict[int, np.ndarray] = {}
        for i, frame in enumerate(handle.container.decode(handle.stream)):
            if i in wanted:
                out[i] = converter(frame)
            if i >= last:
                break
        return [self._take(out, int(i), handle) for i in indices]

    def _decode_seeking(self, handle: _PyAVHandle, indices: np.ndarray, converter: _RGBConverter) -> list[np.ndarray]:
        """Seek to the keyframe at or before each target, then count decoded frames up to it.

        This is decord's rule (``SeekAccurate``): the first frame after a seek is identified by its
        timestamp, later ones by counting decoder output. Counting rather than matching timestamps
        keeps containers whose packet timestamps are decode-order numbers (AVI with B-frames) right.
        """
        pts_sorted, key_pts = handle.index.pts, handle.index.key_pts
        if pts_sorted is None or key_pts is None:  # the caller checked; keeps type checkers informed
            return self._decode_sequential(handle, indices, converter)
        key_pos = np.unique(np.searchsorted(pts_sorted, key_pts))
        position_of = {int(p): j for j, p in enumerate(pts_sorted.tolist())}
        container, stream = handle.container, handle.stream
        out: dict[int, np.ndarray] = {}
        frames_iter: Any = None
        frame: Any = None
        cur = -1  # position of `frame`, the frame decoded last
        for i in indices.tolist():
            j = int(np.searchsorted(key_pos, i, side="right")) - 1
            key = int(key_pos[j]) if j >= 0 else 0
            if frames_iter is None or i < cur or key > cur:
                frames_iter, frame, cur = _seek_to(container, stream, int(pts_sorted[key]), key, position_of)
                if frame is not None and cur > i:  # landed past the target: decode from the first frame
                    frames_iter, frame, cur = _seek_to(container, stream, int(pts_sorted[0]), 0, position_of)
            while frame is not None and cur < i:
                frame = next(frames_iter, None)
                cur += 1
            if frame is not None and cur == i:
                out[i] = converter(frame)
        return [self._take(out, int(i), handle) for i in indices]

    @staticmethod
    def _take(out: dict[int, np.ndarray], i: int, handle: _PyAVHandle) -> np.ndarray:
        if i not in out:
            raise VideoDecodingError(
                f"frame {i} of video {str(handle.path)!r} could not be decoded (the container lists "
                f"{handle.index.count} frames but the decoder did not produce this one); the file is "
                "probably truncated or damaged. " + _REPAIR_HINT.format(path=handle.path) + ".",
                handle.path,
            )
        return out[i]

    def __repr__(self) -> str:
        return f"PyAVBackend(thread_type={self.thread_type!r})"


def _seek_to(
    container: Any, stream: Any, pts: int, assumed_position: int, position_of: dict[int, int]
) -> tuple[Any, Any, int]:
    """Seeks to the keyframe at or before ``pts`` and decodes one frame.

    Returns ``(frame iterator, first frame or None at end of stream, its position)``; the position comes
    from the frame's timestamp, or is ``assumed_position`` when the timestamp is unknown.
    """
    container.seek(pts, stream=stream, backward=True, any_frame=False)
    frames_iter = container.decode(stream)
    frame = next(frames_iter, None)
    if frame is None:
        return frames_iter, None, assumed_position
    position = position_of.get(int(frame.pts), assumed_position) if frame.pts is not None else assumed_position
    return frames_iter, frame, position


class _RGBConverter:
    """Frame -> ``uint8 (H, W, 3)`` through the filter chain decord builds (see :class:`PyAVBackend`)."""

    def __init__(self, stream: Any, size: tuple[int, int] | None) -> None:
        self.stream = stream
        self.size = size
        self.graph: Any = None
        self.rotation: int | None = None

    def _build(self, rotation: int) -> None:
        from av.filter import Graph

        graph = Graph()
        chain = [graph.add_buffer(template=self.stream)]
        # decord rotates by the display matrix before scaling: quarter turns counter-clockwise.
        quarter_turns = round(rotation / 90) % 4
        transposes = {0: [], 1: ["2"], 2: ["1", "1"], 3: ["1"]}[quarter_turns]
        for direction in transposes:
            chain.append(graph.add("transpose", direction))
        # decord's libavfilter defaults to bilinear; say it explicitly, newer FFmpeg defaults to bicubic.
        scale_args = f"{self.size[1]}:{self.size[0]}:flags=bilinear" if self.size else "flags=bilinear"
        chain.append(graph.add("scale", scale_args))
        chain.append(graph.add("format", "rgb24"))
        chain.append(graph.add("buffersink"))
        for a, b in zip(chain, chain[1:]):
            a.link_to(b)
        graph.configure()
        self.graph, self.rotation = graph, rotation

    def __call__(self, frame: Any) -> np.ndarray:
        rotation = int(getattr(frame, "rotation", 0) or 0)
        if self.graph is None or rotation != self.rotation:
            self._build(rotation)
        self.graph.push(frame)
        return self.graph.pull().to_ndarray()


# ----------------------------------------------------------------------------------------------------
# torchcodec
# ----------------------------------------------------------------------------------------------------


class TorchCodecBackend(VideoBackend):
    """torchcodec's ``VideoDecoder`` (exact seek mode). Selected only where ``torchcodec`` imports.

    At the native size its frames are FFmpeg's RGB24 conversion, as with the other backends. With
    ``height``/``width`` it uses torchcodec's decoder-native ``Resize`` (bilinear with antialiasing),
    which is close to but not byte-identical with decord's bilinear scale; torchcodec versions without
    decoder transforms decode at native size and resize with ``torch`` (bilinear, antialiased).

    Args:
        num_threads: FFmpeg decoding threads (0: automatic).
        device: ``"cpu"`` or a CUDA device for NVDEC decoding; frames are returned on the CPU.
    """

    name = "torchcodec"
    module_name = "torchcodec.decoders"

    def __init__(self, num_threads: int = 0, device: str = "cpu") -> None:
        self.num_threads = num_threads
        self.device = device

    def _library_errors(self) -> tuple[type[BaseException], ...]:
        return (RuntimeError, ValueError)

    def _open(self, path: Path, size: tuple[int, int] | None) -> tuple[Any, tuple[int, int] | None]:
        from torchcodec.decoders import VideoDecoder

        kwargs: dict[str, Any] = {
            "dimension_order": "NHWC",
            "seek_mode": "exact",
            "num_ffmpeg_threads": self.num_threads,
            "device": self.device,
        }
        resize_after = None
        if size is not None:
            try:
                from torchcodec.transforms import Resize

                kwargs["transforms"] = [Resize(size=size)]
            except ImportError:  # torchcodec < 0.9 has no decoder transforms
                resize_after = size
        return VideoDecoder(str(path), **kwargs), resize_after

    def _num_frames(self, handle: tuple[Any, tuple[int, int] | None]) -> int:
        decoder, _ = handle
        return int(decoder.metadata.num_frames)

    def _fps(self, handle: tuple[Any, tuple[int, int] | None]) -> float:
        decoder, _ = handle
        return float(decoder.metadata.average_fps)

    def _decode(self, handle: tuple[Any, tuple[int, int] | None], indices: np.ndarray) -> np.ndarray:
        import torch

        decoder, resize_after = handle
        data = decoder.get_frames_at(indices=indices.tolist()).data  # (U, H, W, 3) uint8
        if resize_after is not None:
            x = data.permute(0, 3, 1, 2).float()
            x = torch.nn.functional.interpolate(x, size=resize_after, mode="bilinear", align_corners=False, antialias=True)
            data = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return np.ascontiguousarray(data.cpu().numpy())

    def __repr__(self) -> str:
        return f"TorchCodecBackend(num_threads={self.num_threads}, device={self.device!r})"


# ----------------------------------------------------------------------------------------------------
# selection
# ----------------------------------------------------------------------------------------------------

#: Known backends, in the order automatic selection tries them.
BACKEND_PREFERENCE: tuple[str, ...] = ("decord", "torchcodec", "pyav")

_BACKENDS: dict[str, type[VideoBackend]] = {
    "decord": DecordBackend,
    "torchcodec": TorchCodecBackend,
    "pyav": PyAVBackend,
}


def available_backends() -> list[str]:
    """Names of the backends whose library imports here, in preference order."""
    return [name for name in BACKEND_PREFERENCE if _BACKENDS[name].is_available()]


def get_backend(name: str | None = None, **kwargs: Any) -> VideoBackend:
    """Returns a backend instance.

    Args:
        name: ``"decord"``, ``"torchcodec"`` or ``"pyav"``. None: the environment variable
            ``VLHUB_VIDEO_BACKEND`` if set, else the first available of decord, torchcodec, PyAV.
        **kwargs: passed to the backend's constructor (e.g. ``num_threads``).

    Raises:
        ValueError: ``name`` (or the environment variable) is not a known backend name.
        VideoBackendUnavailableError: the named backend's library is not installed; or none is.
    """
    source = "name"
    if name is None:
        env = os.environ.get(BACKEND_ENV_VAR, "").strip()
        if env:
            name, source = env, f"environment variable {BACKEND_ENV_VAR}"
    if name is None:
        available = available_backends()
        if not available:
            raise VideoBackendUnavailableError(
                "no video decoding library is installed; install one of them: "
                "`pip install decord` or `pip install av` (or torchcodec matching your torch)."
            )
        return _BACKENDS[available[0]](**kwargs)
    key = name.strip().lower()
    if key not in _BACKENDS:
        raise ValueError(
            f"unknown video backend {name!r} (from {source}); known: {', '.join(BACKEND_PREFERENCE)}; "
            f"available here: {', '.join(available_backends()) or '(none)'}."
        )
    cls = _BACKENDS[key]
    if not cls.is_available():
        raise VideoBackendUnavailableError(
            f"video backend {key!r} (from {source}) is not available: `import {cls.module_name}` fails. "
            f"Install it, or choose one of the available backends: {', '.join(available_backends()) or '(none)'}."
        )
    return cls(**kwargs)
