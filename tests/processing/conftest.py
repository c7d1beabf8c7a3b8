"""Shared fixtures for processing tests: ``make_mp4`` writes small videos with known per-frame content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: Levels 10 apart keep frame numbers readable after lossy coding (errors stay far below 5).
CODE_STEP = 10
BLOCK = 8


def coded_frame(i: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frame ``i`` (``0 <= i < 625``) of a ``make_mp4`` video: uint8 ``(H, W, 3)``.

    The background encodes the frame number: red ``10 * (i % 25)``, blue ``10 * (i // 25)``, green 128;
    a white ``8 x 8`` block in the top rows moves right by 2 px per frame.
    """
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = CODE_STEP * (i % 25)
    img[..., 1] = 128
    img[..., 2] = CODE_STEP * (i // 25)
    x = (2 * i) % (width - BLOCK)
    img[:BLOCK, x : x + BLOCK] = 255
    return img


def frame_code(frame: np.ndarray) -> int:
    """Reads back ``i`` from a decoded :func:`coded_frame` (any size or rotation): the median colour of
    its bottom half (the median ignores the moving block)."""
    bottom = np.median(frame[frame.shape[0] // 2 :].reshape(-1, 3), axis=0)
    return int(round(bottom[0] / CODE_STEP)) + 25 * int(round(bottom[2] / CODE_STEP))


class Mp4Maker:
    """Writes videos with PyAV: ``make_mp4(name, num_frames=24, codec="libx264", ...) -> Path``.

    Frames come from :func:`coded_frame`; :meth:`frame_code` reads the number back from a decoded frame.
    Options: ``width``, ``height``, ``fps``, ``gop`` (keyframe interval; small values make decoders
    seek), ``container`` (``None``: from the suffix), ``rotation`` (display-matrix degrees). libx264 is
    encoded with B-frames (x264's default preset). A name already written is returned as is.
    """

    coded_frame = staticmethod(coded_frame)
    frame_code = staticmethod(frame_code)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self,
        name: str,
        num_frames: int = 24,
        codec: str = "libx264",
        width: int = 64,
        height: int = 48,
        fps: int = 24,
        gop: int = 6,
        container: str | None = None,
        rotation: int | None = None,
    ) -> Path:
        import av

        path = self.root / name
        if path.exists():
            return path
        with av.open(str(path), "w", format=container) as out:
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                stream.options = {"g": str(gop), "crf": "12"}
            else:
                stream.codec_context.gop_size = gop
                stream.codec_context.bit_rate = 2_000_000
            if rotation is not None:
                stream.set_display_rotation(rotation)
            for i in range(num_frames):
                frame = av.VideoFrame.from_ndarray(coded_frame(i, height, width), format="rgb24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        return path


@pytest.fixture(scope="session")
def make_mp4(tmp_path_factory: pytest.TempPathFactory) -> Mp4Maker:
    """A :class:`Mp4Maker` writing into a session temporary folder."""
    return Mp4Maker(tmp_path_factory.mktemp("videos"))
