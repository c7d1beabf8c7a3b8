"""ALPRO video input and model throughput (not a test).

1. Decoded-and-preprocessed clips per second, decord vs PyAV: a generated H.264 mp4 (default 10 s, 640x360, 30 fps)
   goes through :class:`~vl_hub.models.alpro.video_processing_alpro.AlproVideoProcessor` -- 8 frames resized to
   224 px in the decoder, then normalised (evaluation: ``uniform`` sampling; training: ``headtail`` sampling plus
   the clip-wise crop / flip / RandAugment). The two backends must give identical evaluation tensors before anything
   is timed.
2. ALPRO forward throughput (clips per second) of the retrieval matching pass (video encoder, text layers, fusion
   layers, ``itm_head``) and of the QA head, for the tiny test configuration and the base-sized catalogue
   architecture (TimeSformer-B/16 + BERT-base, random weights).

Timings are interleaved (one call of each contender per round) and the median of the rounds is reported, so the
contenders see the same machine load. Float32 on the CPU, bf16 autocast on a GPU.

Run: ``python benchmarks/bench_video.py [--seconds 10] [--width 640] [--height 360] [--frames 8] [--size 224]
[--clips 4] [--batch 2] [--repeats 3] [--device cpu|cuda] [--skip-base]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved_medians
from bench_video_decode import write_video

from vl_hub.models.alpro.catalogue import lookup
from vl_hub.models.alpro.configuration_alpro import AlproConfig
from vl_hub.models.alpro.modeling_alpro import AlproForVideoQuestionAnswering, AlproForVideoTextRetrieval
from vl_hub.models.alpro.video_processing_alpro import AlproVideoProcessor
from vl_hub.processing.video_backends import available_backends

#: frame rate of the generated video (``bench_video_decode.write_video`` encodes at 30 fps)
FPS = 30

TINY = {
    "vision_config": {"image_size": 32, "patch_size": 16, "num_frames": 4, "hidden_size": 64, "num_hidden_layers": 2,
                      "num_attention_heads": 4},
    "text_config": {"vocab_size": 230, "hidden_size": 64, "num_hidden_layers": 4, "fusion_layer": 2,
                    "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 64},
    "embed_dim": 32, "max_txt_len": 16, "num_labels": 5,
}


def bench_decoding(path: Path, frames: int, size: int, clips: int, repeats: int) -> None:
    backends = [b for b in ("decord", "pyav") if b in available_backends()]
    processors = {b: AlproVideoProcessor(image_size=size, num_frames=frames, video_backend=b, seed=0) for b in backends}
    paths = [str(path)] * clips
    if len(backends) == 2:
        a, b = (processors[name](videos=str(path))["pixel_values"] for name in backends)
        print(f"decord and PyAV give identical evaluation tensors: {torch.equal(a, b)}")
    contenders = {}
    for name, processor in processors.items():
        contenders[f"{name} eval"] = lambda p=processor: p(videos=paths)
        contenders[f"{name} train"] = lambda p=processor: p(videos=paths, do_augment=True)
    medians = interleaved_medians(contenders, repeats=repeats, warmup=1)
    print(f"\n{clips} clips per call, {frames} frames at {size}px (median of {repeats}):")
    for name, seconds in medians.items():
        print(f"  {name:12s} {clips / seconds:8.2f} clips/s   ({seconds / clips * 1000:7.1f} ms per clip)")
    if "decord eval" in medians and "pyav eval" in medians:
        print(f"  decord / PyAV speed (eval): {medians['pyav eval'] / medians['decord eval']:.2f}x")


def _inputs(config: AlproConfig, batch: int, device: str) -> dict[str, torch.Tensor]:
    vision, text = config.vision_config, config.text_config
    gen = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(batch, vision.num_frames, 3, vision.image_size, vision.image_size, generator=gen)
    input_ids = torch.randint(1000 % text.vocab_size, text.vocab_size, (batch, config.max_txt_len), generator=gen)
    mask = torch.ones_like(input_ids)
    mask[:, config.max_txt_len // 2 :] = 0  # half the text is padding, as with max_length padding
    return {"pixel_values": pixel_values.to(device), "input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def bench_forward(name: str, config: AlproConfig, batch: int, repeats: int, device: str) -> None:
    start = time.perf_counter()
    torch.manual_seed(0)
    retrieval = AlproForVideoTextRetrieval(config).to(device).eval()
    qa = AlproForVideoQuestionAnswering(config).to(device).eval()
    built = time.perf_counter() - start
    inputs = _inputs(config, batch, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

    def run(model: torch.nn.Module) -> None:
        with torch.inference_mode(), autocast:
            model(**inputs)
        if device == "cuda":
            torch.cuda.synchronize()

    medians = interleaved_medians({"retrieval ITM": lambda: run(retrieval), "QA": lambda: run(qa)}, repeats=repeats, warmup=1)
    vision = config.vision_config
    params = sum(p.numel() for p in retrieval.parameters()) / 1e6
    print(
        f"\n{name}: {params:.1f}M parameters, {vision.num_frames} frames x {vision.image_size}px, "
        f"{config.max_txt_len} text tokens, batch {batch} (built in {built:.1f}s):"
    )
    for head, seconds in medians.items():
        print(f"  {head:14s} {batch / seconds:9.2f} clips/s   ({seconds / batch * 1000:8.1f} ms per clip)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--gop", type=int, default=60)
    parser.add_argument("--frames", type=int, default=8, help="frames sampled per clip")
    parser.add_argument("--size", type=int, default=224, help="frame size after decoding")
    parser.add_argument("--clips", type=int, default=4, help="clips per processor call")
    parser.add_argument("--batch", type=int, default=2, help="clips per forward pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-base", action="store_true", help="time only the tiny model")
    args = parser.parse_args()

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"load average {load[0]:.1f} / {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.mp4"
        num_frames = round(args.seconds * FPS)
        write_video(path, num_frames, args.width, args.height, args.gop)
        print(f"video: {args.width}x{args.height}, {FPS} fps, {num_frames} frames ({args.seconds:g} s), "
              f"GOP {args.gop}, {path.stat().st_size / 1e6:.1f} MB")
        bench_decoding(path, args.frames, args.size, args.clips, args.repeats)

    bench_forward("tiny ALPRO", AlproConfig(**TINY), args.batch, args.repeats, args.device)
    if not args.skip_base:
        base = lookup("alpro_retrieval:msrvtt").config()
        base.num_labels = lookup("alpro_qa:msrvtt").num_answers
        bench_forward("base ALPRO (alpro_retrieval:msrvtt architecture, QA head 1500 classes)", base, args.batch,
                      args.repeats, args.device)


if __name__ == "__main__":
    main()
