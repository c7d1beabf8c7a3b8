"""Decoding speed of the video backends on a generated clip (not a test).

Writes an H.264 video with PyAV (default 640x360, 30 fps, 300 frames, keyframe every 60 frames), then
times each available backend on LAVIS-style reads: ``n`` uniformly sampled frames, at native size and
resized in the decoder, and checks that decord and PyAV return identical frames.

    python benchmarks/bench_video_decode.py [--frames 300] [--width 640] [--height 360] [--n 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def write_video(path: Path, num_frames: int, width: int, height: int, gop: int) -> None:
    """Moving gradients plus noise, so the encoder produces realistic P/B frames."""
    import av

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "preset": "veryfast"}
        for i in range(num_frames):
            img = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy + i) % 256], -1)
            img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())


def main() -> None:
    from vl_hub.processing.video import load_video
    from vl_hub.processing.video_backends import available_backends

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--gop", type=int, default=60)
    parser.add_argument("--n", type=int, default=8, help="frames sampled per read")
    parser.add_argument("--size", type=int, default=224, help="decoder resize target (square)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mp4"
        write_video(path, args.frames, args.width, args.height, args.gop)
        print(f"video: {args.width}x{args.height}, {args.frames} frames, GOP {args.gop}; sampling {args.n} frames")
        results: dict[tuple[str, str], np.ndarray] = {}
        for backend in available_backends():
            for label, size in (("native", {}), (f"{args.size}px", {"height": args.size, "width": args.size})):
                load_video(path, args.n, backend=backend, **size)  # warm-up (PyAV builds its packet index once)
                start = time.perf_counter()
                for _ in range(args.repeat):
                    frames = load_video(path, args.n, backend=backend, **size)
                elapsed = (time.perf_counter() - start) / args.repeat
                results[(backend, label)] = frames
                print(f"  {backend:10s} {label:7s} {elapsed * 1000:8.1f} ms per read  {tuple(frames.shape)}")
        for label in ("native", f"{args.size}px"):
            if ("decord", label) in results and ("pyav", label) in results:
                same = np.array_equal(results[("decord", label)], results[("pyav", label)])
                print(f"decord == pyav ({label}): {same}")


if __name__ == "__main__":
    main()
