"""vl_hub's BLIP vs transformers' BLIP on identical converted weights: ITM forward throughput and 30-token greedy
captioning latency / throughput.

Both sides are BLIP-base sized (ViT-B/16 at 384 px, BERT-base with cross-attention, 30524 tokens) with random
weights: transformers' ``BlipForImageTextRetrieval`` / ``BlipForConditionalGeneration`` are created first and
converted with ``vl_hub.models.blip.convert_blip_checkpoint.load_transformers_checkpoint`` (the same code as
``vl-hub convert --from transformers``), so both hold the same numbers. Before anything is timed the outputs are
checked: ITM logits equal (atol 1e-4 in float32, 5e-2 in bf16) and the greedy caption ids equal.

Timings are interleaved (one call of each contender per round, ``benchmarks/_timing.interleaved_medians``) and the
median of the rounds is reported, so both sides see the same machine load. float32 on the CPU, bf16 on a GPU.
Captioning generates exactly 30 new tokens per image (``min_length = max_length = 31`` counting ``[DEC]``), greedy,
with each side's KV cache (vl_hub's also keeps the image keys/values of the cross-attention from the first step). On
CUDA vl_hub's plain greedy calls go through its static decoder (``vl_hub.layers.med_greedy``: preallocated cache,
one CUDA graph per step); ``--static-cache on|off`` forces either path on any device.

Run: ``python benchmarks/bench_blip.py [--device cpu|cuda] [--itm-batch 8] [--caption-batch 4] [--repeats 5]``.
Prints items/s of each side and the ratio ours / transformers (bars: >= 1.0x on CPU; on GPU >= 1.3x ITM, >= 2x
captioning).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved_medians

from vl_hub.models.blip.convert_blip_checkpoint import load_transformers_checkpoint

NEW_TOKENS = 30
ENC, DEC, SEP, PAD, CLS = 30523, 30522, 102, 0, 101


def blip_base_config() -> Any:
    """transformers' BLIP-base (``Salesforce/blip-*-base``): ViT-B/16 at 384 px, BERT-base text, 256-d ITC."""
    import transformers

    return transformers.BlipConfig(
        vision_config={"image_size": 384, "patch_size": 16, "hidden_size": 768, "intermediate_size": 3072,
                       "num_hidden_layers": 12, "num_attention_heads": 12, "layer_norm_eps": 1e-5},
        text_config={"vocab_size": 30524, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                     "num_attention_heads": 12, "max_position_embeddings": 512, "bos_token_id": DEC,
                     "sep_token_id": SEP, "pad_token_id": PAD, "eos_token_id": SEP},
        image_text_hidden_size=256,
    )


def model_pair(cls_name: str, device: str, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """transformers' model with random weights, and vl_hub's conversion of it."""
    import transformers

    torch.manual_seed(0)
    config = blip_base_config()
    theirs = getattr(transformers, cls_name)(config).eval()
    # vl_hub's captioner needs no tokenizer with prompt="" (captions start from [DEC], as transformers' generate)
    ours, _ = load_transformers_checkpoint(theirs, prompt="")
    return ours.to(device, dtype).eval(), theirs.to(device, dtype).eval()


def make_inputs(batch: int, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Images ``(B, 3, 384, 384)`` and captions ``(B, 35)`` with right padding (lengths 12..35)."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(12, 36, (batch,), generator=g)
    ids = torch.randint(1000, 30000, (batch, 35), generator=g)
    positions = torch.arange(35)
    ids[:, 0] = CLS
    ids[torch.arange(batch), lengths - 1] = SEP
    mask = (positions < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, PAD)
    return {
        "pixel_values": torch.randn(batch, 3, 384, 384, generator=g).to(device, dtype),
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
    }


def bench_itm(args: argparse.Namespace, dtype: torch.dtype) -> dict[str, float]:
    ours, theirs = model_pair("BlipForImageTextRetrieval", args.device, dtype)
    x = make_inputs(args.itm_batch, args.device, dtype)
    enc_ids = x["input_ids"].clone()
    enc_ids[:, 0] = ENC  # transformers' ITM reads the ids as given; vl_hub puts [ENC] itself (as LAVIS)

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours(**x).itm_logits

    def run_theirs() -> torch.Tensor:
        with torch.inference_mode():
            return theirs(input_ids=enc_ids, pixel_values=x["pixel_values"], attention_mask=x["attention_mask"]).itm_score

    atol = 1e-4 if dtype == torch.float32 else 5e-2
    diff = (run_ours().float() - run_theirs().float()).abs().max().item()
    if diff > atol:
        raise RuntimeError(f"ITM logits differ by {diff:.3g} (> {atol}): the two models are not the same")
    print(f"  verified: ITM logits max |diff| = {diff:.2e}")
    times = interleaved_medians(_sync({"vl_hub": run_ours, "transformers": run_theirs}, args.device), args.repeats, args.warmup)
    return {name: args.itm_batch / t for name, t in times.items()}


def bench_caption(args: argparse.Namespace, dtype: torch.dtype) -> tuple[dict[str, float], dict[str, float]]:
    ours, theirs = model_pair("BlipForConditionalGeneration", args.device, dtype)
    pixels = make_inputs(args.caption_batch, args.device, dtype)["pixel_values"]
    length = NEW_TOKENS + 1  # [DEC] + 30 new tokens, forced (min_length = max_length)
    settings = {"max_length": length, "min_length": length, "num_beams": 1, "do_sample": False}

    static = {"auto": None, "on": True, "off": False}[args.static_cache]

    def run_ours() -> torch.Tensor:
        with torch.inference_mode():
            return ours.generate(pixels, static_cache=static, **settings)

    def run_theirs() -> torch.Tensor:
        with torch.inference_mode():
            return theirs.generate(pixel_values=pixels, **settings)

    a, b = run_ours(), run_theirs()
    if a.shape != b.shape or a.shape[1] != length:
        raise RuntimeError(f"generated shapes differ: {tuple(a.shape)} vs {tuple(b.shape)} (expected length {length})")
    same = (a == b).float().mean().item()
    if dtype == torch.float32 and same < 1.0:
        raise RuntimeError(f"greedy ids differ ({same:.1%} equal): the two models are not the same")
    print(f"  verified: greedy caption ids {same:.1%} equal ({a.shape[0]} x {a.shape[1]})")
    with torch.inference_mode():  # vl_hub's two decoding paths (static decoder / GenerationMixin) on this device
        paths = [ours.generate(pixels, static_cache=flag, **settings) for flag in (True, False)]
    print(f"  vl_hub static decoder vs GenerationMixin path: ids {(paths[0] == paths[1]).float().mean().item():.1%} "
          f"equal; this run times static_cache={args.static_cache} (auto = static decoder on CUDA)")
    times = interleaved_medians(_sync({"vl_hub": run_ours, "transformers": run_theirs}, args.device), args.repeats, args.warmup)
    latency = {name: t for name, t in times.items()}
    throughput = {name: args.caption_batch * NEW_TOKENS / t for name, t in times.items()}
    return latency, throughput


def _sync(fns: dict, device: str) -> dict:
    if not device.startswith("cuda"):
        return fns

    def wrap(fn):  # type: ignore[no-untyped-def]
        def run():  # type: ignore[no-untyped-def]
            out = fn()
            torch.cuda.synchronize()
            return out

        return run

    return {name: wrap(fn) for name, fn in fns.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--itm-batch", type=int, default=None, help="default 4 on CPU, 64 on GPU")
    parser.add_argument("--caption-batch", type=int, default=None, help="default 2 on CPU, 32 on GPU")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--skip", choices=("itm", "caption"), default=None)
    parser.add_argument("--static-cache", choices=("auto", "on", "off"), default="auto",
                        help="vl_hub captioning path: auto (static decoder + CUDA graph on CUDA, generate on CPU)")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    args.itm_batch = args.itm_batch or (64 if gpu else 4)
    args.caption_batch = args.caption_batch or (32 if gpu else 2)
    dtype = torch.bfloat16 if gpu else torch.float32
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"device={args.device} dtype={str(dtype).replace('torch.', '')} torch={torch.__version__} "
        f"threads={torch.get_num_threads()} cpus={os.cpu_count()} loadavg(1/5/15 min)={load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} "
        f"repeats={args.repeats} (interleaved medians)"
    )
    start = time.perf_counter()
    if args.skip != "itm":
        print(f"ITM forward, batch {args.itm_batch} (image 384 px + 35-token text):")
        itm = bench_itm(args, dtype)
        ratio = itm["vl_hub"] / itm["transformers"]
        print(f"  vl_hub {itm['vl_hub']:.2f} pairs/s | transformers {itm['transformers']:.2f} pairs/s | ratio {ratio:.2f}x")
    if args.skip != "caption":
        print(f"greedy captioning, batch {args.caption_batch}, {NEW_TOKENS} new tokens:")
        latency, throughput = bench_caption(args, dtype)
        ratio = throughput["vl_hub"] / throughput["transformers"]
        print(
            f"  latency per batch: vl_hub {latency['vl_hub']:.2f} s | transformers {latency['transformers']:.2f} s\n"
            f"  throughput: vl_hub {throughput['vl_hub']:.1f} tokens/s | transformers {throughput['transformers']:.1f} "
            f"tokens/s | ratio {ratio:.2f}x"
        )
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
