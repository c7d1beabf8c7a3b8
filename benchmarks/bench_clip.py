"""Image and text embedding throughput of vl_hub's ClipModel vs transformers' CLIPModel on identical weights.

Both models are ViT-B/32-sized (OpenAI's architecture) with random weights: ours is initialised, mapped onto
transformers' names (``to_transformers_state_dict``) and loaded there; the mapping back
(``convert_transformers_state_dict``) must reproduce our state dict exactly, and both models must give the same
image and text embeddings before anything is timed. Timings are interleaved (one call of each contender per round)
and the median of the rounds is reported, so both sides see the same machine load. bf16 on a GPU when there is one,
float32 on the CPU.

Run: ``python benchmarks/bench_clip.py [--image-batch 32] [--text-batch 128] [--repeats 7] [--device cpu|cuda]``.
Prints items/s of each side and the ratio ours / transformers (>= 1.0: ours is not slower).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved_medians  # noqa: E402

from vl_hub.models.clip.catalogue import lookup  # noqa: E402
from vl_hub.models.clip.convert_clip_checkpoint import (  # noqa: E402
    convert_transformers_state_dict,
    to_transformers_config,
    to_transformers_state_dict,
)
from vl_hub.models.clip.modeling_clip import ClipModel  # noqa: E402


def model_pair(device: str, dtype: torch.dtype) -> tuple[ClipModel, torch.nn.Module]:
    """ViT-B/32: ours and transformers' CLIPModel holding the same (random) weights."""
    from transformers import CLIPModel

    torch.manual_seed(0)
    ours = ClipModel(lookup("ViT-B-32").config()).eval()
    hf_config = to_transformers_config(ours.config)
    hf_config._attn_implementation = "sdpa"
    hf = CLIPModel(hf_config).eval()
    mapped = to_transformers_state_dict(ours.state_dict())
    hf.load_state_dict(mapped, strict=True)
    back = convert_transformers_state_dict(hf.state_dict())
    mismatched = [k for k, v in ours.state_dict().items() if not torch.equal(v, back[k])]
    if mismatched or set(back) != set(ours.state_dict()):
        raise RuntimeError(f"the weight mapping does not round trip: {mismatched[:5]}")
    return ours.to(device, dtype), hf.to(device, dtype)


def make_inputs(image_batch: int, text_batch: int, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Images ``(B, 3, 224, 224)`` and texts ``(T, 77)`` padded OpenAI-style (lengths 8..60, right padding)."""
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(image_batch, 3, 224, 224, generator=g)
    lengths = torch.randint(8, 61, (text_batch,), generator=g)
    ids = torch.randint(0, 49406, (text_batch, 77), generator=g)
    positions = torch.arange(77)
    ids[:, 0] = 49406
    ids = torch.where(positions >= lengths[:, None], 49407, ids)  # <|endoftext|> then padding
    mask = (positions <= lengths[:, None]).long()
    return {"pixel_values": pixels.to(device, dtype), "input_ids": ids.to(device), "attention_mask": mask.to(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-batch", type=int, default=32)
    parser.add_argument("--text-batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    ours, hf = model_pair(args.device, dtype)
    inputs = make_inputs(args.image_batch, args.text_batch, args.device, dtype)
    pixels, ids, mask = inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"]

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        tol = 2e-2 if dtype == torch.bfloat16 else 1e-4
        ours_image, hf_image = ours.get_image_features(pixels), hf.get_image_features(pixel_values=pixels).pooler_output
        ours_text = ours.get_text_features(ids, mask)
        hf_text = hf.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        for name, a, b in (("image", ours_image, hf_image), ("text", ours_text, hf_text)):
            diff = (a.float() - b.float()).abs().max().item() / b.float().abs().max().item()
            if diff > tol:
                raise RuntimeError(f"{name} embeddings differ by {diff:.2e} (relative); the comparison is not fair")

        def run(fn):
            def call() -> None:
                fn()
                sync()

            return call

        image_times = interleaved_medians(
            {
                "ours": run(lambda: ours.get_image_features(pixels)),
                "transformers": run(lambda: hf.get_image_features(pixel_values=pixels)),
            },
            repeats=args.repeats,
        )
        text_times = interleaved_medians(
            {
                "ours": run(lambda: ours.get_text_features(ids, mask)),
                "transformers": run(lambda: hf.get_text_features(input_ids=ids, attention_mask=mask)),
            },
            repeats=args.repeats,
        )

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"CLIP ViT-B/32, random weights, {dtype}, {device_name}, median of {args.repeats} interleaved rounds")
    for what, times, count in (("image", image_times, args.image_batch), ("text", text_times, args.text_batch)):
        ours_rate, hf_rate = count / times["ours"], count / times["transformers"]
        print(
            f"{what:5s} embeddings: ours {ours_rate:9.1f}/s  transformers {hf_rate:9.1f}/s  "
            f"ratio ours/transformers {ours_rate / hf_rate:5.2f}  (batch {count})"
        )


if __name__ == "__main__":
    main()
