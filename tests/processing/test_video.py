"""Frame sampling, decoding backends (decord / PyAV / torchcodec wrapper), load_video and the eval transform."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vl_hub.processing import video_backends as vb
from vl_hub.processing.video import (
    ALPRO_STRATEGIES,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    RANDOM_SAMPLING_MODES,
    SAMPLING_MODES,
    VideoEvalTransform,
    alpro_nlvl_rand_indices,
    alpro_rand_indices,
    alpro_uniform_indices,
    headtail_indices,
    load_video,
    middle_indices,
    random_indices,
    read_video_clip,
    sample_frame_indices,
    uniform_indices,
)
from vl_hub.processing.video_backends import (
    DecordBackend,
    FrameIndexError,
    PyAVBackend,
    TorchCodecBackend,
    VideoBackendUnavailableError,
    VideoDecodingError,
    available_backends,
    get_backend,
)

DECODERS = ["decord", "pyav"]

# -- videos -------------------------------------------------------------------------------------------

#: name -> make_mp4 kwargs. B-frames (libx264), no B-frames (mpeg4), AVI (packet pts in decode order;
#: decord seeks wrongly there), MPEG-PS (no index), a display-matrix rotation, and a longer video with
#: a 10-frame GOP so that decoders must seek.
VIDEOS: dict[str, dict] = {
    "x264.mp4": dict(codec="libx264"),
    "mpeg4.mp4": dict(codec="mpeg4"),
    "x264.avi": dict(codec="libx264", container="avi"),
    "mpeg2.mpg": dict(codec="mpeg2video", container="mpeg"),
    "rot90.mp4": dict(codec="libx264", rotation=90, height=40),  # shown 40 wide (decord can't do 48)
    "long.mp4": dict(codec="libx264", num_frames=90, gop=10),
}


@pytest.fixture(scope="module")
def videos(make_mp4: Callable[..., Path]) -> dict[str, Path]:
    return {name: make_mp4(name, **kwargs) for name, kwargs in VIDEOS.items()}


@pytest.fixture(scope="module")
def frame_code(make_mp4) -> Callable[[np.ndarray], int]:
    """Reads the frame number back from a decoded ``make_mp4`` frame."""
    return make_mp4.frame_code


def test_pyav_wheel_ships_the_test_encoders() -> None:
    # The fixtures need these encoders; if a PyAV wheel drops one, this says why everything else fails.
    for codec in ("libx264", "mpeg4"):
        assert av.codec.Codec(codec, "w").is_encoder


# -- sampling: hand-written expectations --------------------------------------------------------------


def test_uniform_matches_lavis_formula_and_hand_values() -> None:
    assert uniform_indices(24, 8).tolist() == [0, 3, 6, 9, 12, 15, 18, 21]
    assert uniform_indices(10, 4).tolist() == [0, 2, 5, 7]  # 0, 2.5, 5, 7.5 truncated
    assert uniform_indices(10, 3).tolist() == [0, 3, 6]  # 0, 3.33, 6.67
    # LAVIS's arange gives 8 values here (the last is 17, past the end); the extra one is dropped.
    assert np.arange(0, 17, 17 / 7).astype(int).tolist() == [0, 2, 4, 7, 9, 12, 14, 17]
    assert uniform_indices(17, 7).tolist() == [0, 2, 4, 7, 9, 12, 14]
    assert uniform_indices(5, None).tolist() == [0, 1, 2, 3, 4]
    for length in range(1, 120):
        for n in range(1, length + 1):
            expected = np.arange(0, length, length / n).astype(int)[:n]
            np.testing.assert_array_equal(uniform_indices(length, n), expected)


def test_deterministic_modes_hand_values() -> None:
    # segments of [0, 10) into 4: linspace -> 0, 2.5, 5, 7.5, 10 -> [0,2), [2,5), [5,7), [7,10)
    assert middle_indices(10, 4).tolist() == [1, 3, 6, 8]
    assert middle_indices(24, 8).tolist() == [1, 4, 7, 10, 13, 16, 19, 22]
    # ALPRO's arange(..., dtype=int) casts the step 2.5 to 2 first.
    assert np.arange(0, 10, 10 / 4, dtype=int).tolist() == [0, 2, 4, 6]
    assert alpro_uniform_indices(10, 4).tolist() == [0, 2, 4, 6]
    assert alpro_uniform_indices(24, 7).tolist() == [0, 3, 6, 9, 12, 15, 18]


def test_random_modes_respect_their_segments() -> None:
    rng = np.random.default_rng(0)
    segments = [(0, 2), (2, 5), (5, 7), (7, 10)]
    seen = [set() for _ in segments]
    for _ in range(300):
        idx = random_indices(10, 4, rng)
        for k, (lo, hi) in enumerate(segments):
            assert lo <= idx[k] < hi
            seen[k].add(int(idx[k]))
    assert seen == [set(range(lo, hi)) for lo, hi in segments]  # every frame of a segment is reachable

    # nlvl_rand: uniform points 0, 2, 5, 7 plus an offset below the gap to the next point (2, 3, 2, 3).
    seen = [set() for _ in range(4)]
    for _ in range(300):
        idx = alpro_nlvl_rand_indices(10, 4, rng)
        for k, (lo, hi) in enumerate(segments):
            assert lo <= idx[k] < hi
            seen[k].add(int(idx[k]))
    assert seen == [set(range(lo, hi)) for lo, hi in segments]

    for _ in range(50):
        idx = headtail_indices(24, 8, rng)
        head, tail = idx[:4], idx[4:]
        assert np.all(head < 12) and np.all(tail >= 12)
        assert len(set(head.tolist())) == 4 and len(set(tail.tolist())) == 4
        assert np.all(np.diff(head) > 0) and np.all(np.diff(tail) > 0)
        idx = alpro_rand_indices(24, 8, rng)
        assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < 24


@pytest.mark.parametrize("mode", SAMPLING_MODES)
def test_every_mode_takes_all_frames_when_n_equals_length(mode: str) -> None:
    rng = np.random.default_rng(1)
    assert sample_frame_indices(6, 6, mode, rng).tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("mode", SAMPLING_MODES)
def test_short_video_repeats_the_last_index(mode: str) -> None:
    idx = sample_frame_indices(3, 7, mode, np.random.default_rng(2))
    assert idx.shape == (7,) and idx.dtype == np.int64
    assert idx.min() >= 0 and idx.max() < 3
    if mode == "headtail":  # LAVIS: one frame of [0, 1), one of [1, 3), then the last repeated
        assert idx[0] == 0 and idx[1] in (1, 2) and np.all(idx[1:] == idx[1])
    else:
        assert idx.tolist() == [0, 1, 2, 2, 2, 2, 2]


def test_headtail_odd_and_single() -> None:
    rng = np.random.default_rng(3)
    idx = headtail_indices(24, 5, rng)  # LAVIS takes 2 + 2 and pads the last
    assert idx[:2].max() < 12 <= idx[2] and idx[3] == idx[4]
    one = headtail_indices(24, 1, rng)
    assert one.shape == (1,) and 12 <= one[0] < 24


@pytest.mark.parametrize("mode", RANDOM_SAMPLING_MODES)
def test_random_modes_are_reproducible_with_a_seed(mode: str) -> None:
    a = sample_frame_indices(300, 8, mode, np.random.default_rng(123))
    b = sample_frame_indices(300, 8, mode, np.random.default_rng(123))
    np.testing.assert_array_equal(a, b)
    draws = {tuple(sample_frame_indices(300, 8, mode, np.random.default_rng(s)).tolist()) for s in range(5)}
    assert len(draws) > 1


@settings(max_examples=150, deadline=None)
@given(
    length=st.integers(1, 400),
    n=st.integers(1, 64),
    mode=st.sampled_from(SAMPLING_MODES),
    seed=st.integers(0, 2**32 - 1),
)
def test_sampling_invariants(length: int, n: int, mode: str, seed: int) -> None:
    idx = sample_frame_indices(length, n, mode, np.random.default_rng(seed))
    assert idx.shape == (n,) and idx.dtype == np.int64
    assert idx.min() >= 0 and idx.max() < length
    assert np.all(np.diff(idx) >= 0)
    if n <= length:  # no repeats while frames remain (headtail: 2 * (n // 2) distinct, then the last again)
        distinct = len(set(idx.tolist()))
        assert distinct == (max(1, 2 * (n // 2)) if mode == "headtail" else n)


def test_sampling_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown sampling mode 'nope'.*uniform"):
        sample_frame_indices(10, 2, "nope")
    with pytest.raises(ValueError, match="ALPRO's 'rand' is vl_hub's 'alpro_rand'"):
        sample_frame_indices(10, 2, "rand")
    with pytest.raises(ValueError, match="positive int"):
        sample_frame_indices(10, 0)
    with pytest.raises(ValueError, match="0 frames"):
        sample_frame_indices(0, 4)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        sample_frame_indices(10, 4, "random", generator=42)  # type: ignore[arg-type]
    assert ALPRO_STRATEGIES["nlvl_uniform"] == "uniform" and set(ALPRO_STRATEGIES.values()) <= set(SAMPLING_MODES)


# -- decoding: frame i is frame i, and decord == PyAV ------------------------------------------------


@pytest.mark.parametrize("backend", DECODERS)
@pytest.mark.parametrize("name", list(VIDEOS))
def test_decoded_frame_i_is_frame_i(videos: dict[str, Path], backend: str, name: str, frame_code) -> None:
    decoder = get_backend(backend)
    length = VIDEOS[name].get("num_frames", 24)
    assert decoder.num_frames(videos[name]) == length
    assert decoder.fps(videos[name]) == 24.0
    # Out of order, repeated, and jumping back across keyframes: each row must be its own frame.
    indices = [length - 1, 0, 13, 13, 5, length // 2, 1, length - 2, 7]
    frames = decoder.get_frames(videos[name], indices)
    expected_hw = (64, 40) if name.startswith("rot90") else (48, 64)
    assert frames.shape == (len(indices), *expected_hw, 3) and frames.dtype == np.uint8
    assert [frame_code(f) for f in frames] == indices
    everything = decoder.get_frames(videos[name], list(range(length)))
    assert [frame_code(f) for f in everything] == list(range(length))


def test_decoded_pixels_match_what_was_encoded(videos: dict[str, Path], make_mp4) -> None:
    frames = get_backend("pyav").get_frames(videos["x264.mp4"], [0, 11, 23])
    for frame, i in zip(frames, [0, 11, 23]):
        error = np.abs(frame.astype(int) - make_mp4.coded_frame(i).astype(int))
        assert np.median(error) <= 2 and error.max() < 90  # lossy, but the picture is this frame's picture


@pytest.mark.parametrize("size", [None, (32, 32), (24, 40), (72, 100)])
@pytest.mark.parametrize("name", list(VIDEOS))
def test_decord_and_pyav_return_identical_frames(videos: dict[str, Path], name: str, size) -> None:
    length = VIDEOS[name].get("num_frames", 24)
    kwargs = {} if size is None else {"height": size[0], "width": size[1]}
    rng = np.random.default_rng(4)
    for indices in (list(range(length)), rng.integers(0, length, 12).tolist()):
        a = get_backend("decord").get_frames(videos[name], indices, **kwargs)
        b = get_backend("pyav").get_frames(videos[name], indices, **kwargs)
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # exact: same filter chain (rotate, bilinear scale, rgb24)


@pytest.mark.parametrize("mode", SAMPLING_MODES)
def test_sampling_modes_give_the_same_frames_from_both_backends(videos: dict[str, Path], mode: str, frame_code) -> None:
    path = videos["long.mp4"]
    clips = [
        read_video_clip(path, 8, mode, height=32, width=40, backend=name, generator=np.random.default_rng(7))
        for name in DECODERS
    ]
    np.testing.assert_array_equal(clips[0].indices, clips[1].indices)
    np.testing.assert_array_equal(clips[0].indices, sample_frame_indices(90, 8, mode, np.random.default_rng(7)))
    np.testing.assert_array_equal(clips[0].frames, clips[1].frames)
    assert clips[0].frames.shape == (8, 32, 40, 3)
    assert [frame_code(f) for f in clips[1].frames] == clips[1].indices.tolist()
    assert {c.backend for c in clips} == set(DECODERS) and clips[0].num_video_frames == 90


# -- load_video -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", DECODERS)
def test_load_video_shapes_types_and_short_videos(videos: dict[str, Path], backend: str, frame_code) -> None:
    frames = load_video(videos["x264.mp4"], 8, backend=backend)
    assert isinstance(frames, np.ndarray) and frames.shape == (8, 48, 64, 3) and frames.dtype == np.uint8
    assert [frame_code(f) for f in frames] == [0, 3, 6, 9, 12, 15, 18, 21]

    tensor = load_video(videos["x264.mp4"], 4, height=32, width=32, backend=backend, return_tensors="pt")
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (4, 32, 32, 3) and tensor.dtype == torch.uint8

    everything = load_video(videos["x264.mp4"], None, backend=backend)
    assert everything.shape[0] == 24

    padded = load_video(videos["x264.mp4"], 30, backend=backend)  # 24 frames -> the last one 6 more times
    assert [frame_code(f) for f in padded] == list(range(24)) + [23] * 6
    np.testing.assert_array_equal(padded[23], padded[29])


def test_load_video_uses_env_backend_and_rejects_bad_arguments(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(vb.BACKEND_ENV_VAR, "pyav")
    assert read_video_clip(videos["x264.mp4"], 2).backend == "pyav"
    with pytest.raises(ValueError, match="height and width must be given together"):
        load_video(videos["x264.mp4"], 2, height=32)
    with pytest.raises(ValueError, match="positive int"):
        load_video(videos["x264.mp4"], 2, height=0, width=32)
    with pytest.raises(ValueError, match="unknown sampling mode"):
        load_video(videos["x264.mp4"], 2, sampling="every_other")
    with pytest.raises(ValueError, match="return_tensors"):
        load_video(videos["x264.mp4"], 2, return_tensors="tf")  # type: ignore[arg-type]


# -- errors ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory: pytest.TempPathFactory, make_mp4: Callable[..., Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken")
    garbage = root / "x.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    whole = make_mp4("faststart_source.mp4", num_frames=48, gop=6)
    # Re-mux with the index first so a truncated copy still opens and lists frames it no longer has.
    faststart = root / "faststart.mp4"
    with av.open(str(whole)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = out
                dst.mux(packet)
    data = faststart.read_bytes()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    audio = root / "audio_only.m4a"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for _ in range(4):
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = 16000
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return {"garbage": garbage, "empty": empty, "truncated": truncated, "audio": audio, "dir": root}


@pytest.mark.parametrize("backend", DECODERS)
def test_missing_file(tmp_path: Path, backend: str) -> None:
    missing = tmp_path / "nope.mp4"
    for call in (
        lambda: get_backend(backend).num_frames(missing),
        lambda: get_backend(backend).get_frames(missing, [0]),
        lambda: load_video(missing, 4, backend=backend),
    ):
        with pytest.raises(FileNotFoundError, match="video file not found: .*nope.mp4.*Check the path"):
            call()


@pytest.mark.parametrize("backend", DECODERS)
@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("garbage", r"cannot open video .*x\.mp4.*corrupt.*ffprobe"),
        ("empty", r"empty\.mp4.* is empty \(0 bytes\).*Re-download"),
        ("dir", r"is a directory"),
        ("audio", r"audio_only\.m4a"),
        ("truncated", r"truncated\.mp4.*(truncated|damaged).*ffprobe"),
    ],
)
def test_unreadable_files_raise_video_decoding_error(broken_files, backend: str, kind: str, pattern: str) -> None:
    with pytest.raises(VideoDecodingError, match=pattern) as info:
        load_video(broken_files[kind], 8, backend=backend)
    assert isinstance(info.value, ValueError) and info.value.path is not None


@pytest.mark.parametrize("backend", DECODERS)
def test_truncated_file_never_returns_frames_it_does_not_have(broken_files, backend: str) -> None:
    # Whatever the backend can open, asking for the listed frames must fail loudly, not pad with black.
    with pytest.raises(VideoDecodingError, match="truncated.mp4"):
        get_backend(backend).get_frames(broken_files["truncated"], list(range(48)))


@pytest.mark.parametrize("backend", DECODERS)
def test_indices_past_the_end(videos: dict[str, Path], backend: str) -> None:
    decoder = get_backend(backend)
    with pytest.raises(FrameIndexError, match=r"\[24\] are out of range .*x264.mp4.*has 24 frames \(valid: 0..23\)"):
        decoder.get_frames(videos["x264.mp4"], [0, 24])
    with pytest.raises(IndexError):
        decoder.get_frames(videos["x264.mp4"], [-1])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        decoder.get_frames(videos["x264.mp4"], [])
    with pytest.raises(ValueError, match="integers"):
        decoder.get_frames(videos["x264.mp4"], [0.5])


def test_mpegts_pyav_reads_it_decord_refuses(make_mp4, frame_code) -> None:
    # decord shifts MPEG-TS frames (its frame 0 is the file's frame 6): refused rather than wrong.
    path = make_mp4("x264.ts", codec="libx264", container="mpegts")
    assert vb.sniff_container(path) == "mpegts"
    indices = [23, 0, 13, 5]
    assert [frame_code(f) for f in get_backend("pyav").get_frames(path, indices)] == indices
    with pytest.raises(VideoDecodingError, match=r"MPEG-TS.*x264\.ts.*backend='pyav'.*ffmpeg -i"):
        get_backend("decord").get_frames(path, indices)


def test_decord_width_bug_is_explained(videos: dict[str, Path], make_mp4, frame_code) -> None:
    # decord 0.6 cannot copy out frames of a few small widths (48 among them); say so and name the fix.
    with pytest.raises(VideoDecodingError, match="decord 0.6 fails to output frames 48 pixels wide.*backend='pyav'"):
        get_backend("decord").get_frames(videos["x264.mp4"], [0], height=32, width=48)
    frames = get_backend("pyav").get_frames(videos["x264.mp4"], [0], height=32, width=48)
    assert frames.shape == (1, 32, 48, 3)
    narrow = make_mp4("narrow48.mp4", width=48, height=32, num_frames=4)
    with pytest.raises(VideoDecodingError, match="decord 0.6 fails to output frames of this video's width.*backend='pyav'"):
        get_backend("decord").get_frames(narrow, [0])
    assert [frame_code(f) for f in get_backend("pyav").get_frames(narrow, [3, 0])] == [3, 0]


# -- backend selection ----------------------------------------------------------------------------------


def test_get_backend_explicit_env_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vb.BACKEND_ENV_VAR, raising=False)
    assert isinstance(get_backend("decord"), DecordBackend)
    assert isinstance(get_backend("pyav"), PyAVBackend)
    assert isinstance(get_backend(" PyAV "), PyAVBackend)
    assert get_backend("decord", num_threads=2).num_threads == 2
    assert isinstance(get_backend(), DecordBackend)  # decord is installed here, and preferred
    monkeypatch.setenv(vb.BACKEND_ENV_VAR, "pyav")
    assert isinstance(get_backend(), PyAVBackend)
    assert isinstance(get_backend("decord"), DecordBackend)  # an explicit name beats the variable
    monkeypatch.setattr(DecordBackend, "is_available", classmethod(lambda cls: False))
    monkeypatch.delenv(vb.BACKEND_ENV_VAR)
    assert isinstance(get_backend(), PyAVBackend)  # no decord, no torchcodec here -> PyAV
    assert available_backends() == ["pyav"]


def test_get_backend_unknown_and_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vb.BACKEND_ENV_VAR, raising=False)
    with pytest.raises(ValueError, match=r"unknown video backend 'opencv'.*known: decord, torchcodec, pyav.*available here: decord, pyav"):
        get_backend("opencv")
    monkeypatch.setenv(vb.BACKEND_ENV_VAR, "ffmpeg")
    with pytest.raises(ValueError, match=f"'ffmpeg' \\(from environment variable {vb.BACKEND_ENV_VAR}\\)"):
        get_backend()
    monkeypatch.delenv(vb.BACKEND_ENV_VAR)
    assert not TorchCodecBackend.is_available()  # torchcodec has no build for this CPU torch
    with pytest.raises(VideoBackendUnavailableError, match=r"'torchcodec'.*not available.*available backends: decord, pyav"):
        get_backend("torchcodec")
    for cls in (DecordBackend, TorchCodecBackend, PyAVBackend):
        monkeypatch.setattr(cls, "is_available", classmethod(lambda c: False))
    with pytest.raises(VideoBackendUnavailableError, match="pip install"):
        get_backend()


@pytest.fixture
def fake_torchcodec(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``torchcodec`` (decoding through PyAV) to exercise TorchCodecBackend's wrapper code.

    The real library cannot be imported against this CPU torch, so this checks our calls and
    conversions, not torchcodec itself.
    """
    pyav = PyAVBackend()

    class VideoDecoder:
        def __init__(self, path: str, *, dimension_order: str, seek_mode: str, num_ffmpeg_threads: int, device: str):
            assert (dimension_order, seek_mode, device) == ("NHWC", "exact", "cpu")
            self.path = path
            self.metadata = types.SimpleNamespace(num_frames=pyav.num_frames(path), average_fps=pyav.fps(path))

        def get_frames_at(self, indices: list[int]) -> types.SimpleNamespace:
            return types.SimpleNamespace(data=torch.from_numpy(pyav.get_frames(self.path, indices)))

    package = types.ModuleType("torchcodec")
    decoders = types.ModuleType("torchcodec.decoders")
    decoders.VideoDecoder = VideoDecoder  # type: ignore[attr-defined]
    package.decoders = decoders  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchcodec", package)
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", decoders)
    monkeypatch.setitem(sys.modules, "torchcodec.transforms", None)  # an old torchcodec: no decoder transforms
    vb._importable.cache_clear()
    yield
    vb._importable.cache_clear()


def test_torchcodec_is_preferred_over_pyav_and_wrapped(
    videos: dict[str, Path], fake_torchcodec: None, monkeypatch: pytest.MonkeyPatch, frame_code) -> None:
    monkeypatch.delenv(vb.BACKEND_ENV_VAR, raising=False)
    assert available_backends() == ["decord", "torchcodec", "pyav"]
    monkeypatch.setattr(DecordBackend, "is_available", classmethod(lambda cls: False))
    backend = get_backend()
    assert isinstance(backend, TorchCodecBackend)
    path = videos["x264.mp4"]
    frames = backend.get_frames(path, [5, 1, 5])
    np.testing.assert_array_equal(frames, get_backend("pyav").get_frames(path, [5, 1, 5]))
    assert backend.num_frames(path) == 24 and backend.fps(path) == 24.0
    resized = backend.get_frames(path, [0, 23], height=24, width=40)  # resized after decoding (old torchcodec)
    assert resized.shape == (2, 24, 40, 3) and [frame_code(f) for f in resized] == [0, 23]
    with pytest.raises(FrameIndexError):
        backend.get_frames(path, [24])
    with pytest.raises(ValueError, match="non-empty") as info:  # our own ValueError, not re-wrapped
        backend.get_frames(path, [])
    assert not isinstance(info.value, VideoDecodingError)


# -- eval transform -------------------------------------------------------------------------------------


def test_eval_transform_matches_lavis_reference(reference_dir: Path) -> None:
    from tests.common.reference import load_reference

    for name in ("alpro_retrieval", "alpro_qa"):
        ref = load_reference(reference_dir, name)
        raw = ref.inp("video_uint8")  # (B, C, T, H, W) uint8
        frames = raw.permute(0, 2, 3, 4, 1)  # (B, T, H, W, 3), what load_video returns per video
        transform = VideoEvalTransform(raw.shape[-1], layout="CTHW")
        out = torch.stack([transform(video) for video in frames])  # (B, 3, T, H, W)
        torch.testing.assert_close(out, ref.inp("video"), rtol=0, atol=0)
        batched = VideoEvalTransform(raw.shape[-1])(frames)  # (B, T, 3, H, W), any leading dims
        torch.testing.assert_close(batched.permute(0, 2, 1, 3, 4), ref.inp("video"), rtol=0, atol=0)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_eval_transform_resize_and_normalise(interpolation: str) -> None:
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1)
    constant = np.full((3, 20, 30, 3), 255, dtype=np.uint8)
    out = VideoEvalTransform(16, interpolation=interpolation)(constant)
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.float32
    torch.testing.assert_close(out, ((1.0 - mean) / std).expand(3, 3, 16, 16))  # hand-computed

    checker = np.indices((20, 30)).sum(0) % 2 * 255
    frames = np.repeat(checker[None, :, :, None], 3, axis=-1).astype(np.uint8)  # (1, 20, 30, 3)
    out = VideoEvalTransform((16, 24), interpolation=interpolation)(torch.from_numpy(frames))
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    expected = torch.nn.functional.interpolate(x, size=(16, 24), mode=interpolation, align_corners=False)
    expected = (expected.clamp(0, 255) / 255.0 - mean) / std
    torch.testing.assert_close(out, expected)
    assert out.min() >= ((0 - mean) / std).min() - 1e-6 and out.max() <= ((1 - mean) / std).max() + 1e-6


def test_eval_transform_rejects_bad_input() -> None:
    transform = VideoEvalTransform(8)
    with pytest.raises(TypeError, match="uint8"):
        transform(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, 3\)"):
        transform(np.zeros((2, 8, 8, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="interpolation"):
        VideoEvalTransform(8, interpolation="nearest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_size"):
        VideoEvalTransform(0)


def test_load_video_then_transform(videos: dict[str, Path]) -> None:
    frames = load_video(videos["long.mp4"], 4, "middle", height=32, width=32)
    pixel_values = VideoEvalTransform(32)(frames)
    assert pixel_values.shape == (4, 3, 32, 32)
    recovered = (pixel_values * torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1) + torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)) * 255
    torch.testing.assert_close(recovered.round().to(torch.uint8).permute(0, 2, 3, 1), torch.from_numpy(frames), atol=1, rtol=0)
