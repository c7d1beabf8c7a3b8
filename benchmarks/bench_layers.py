"""Forward throughput of vl_hub's ViT-B/16 and BERT-base text encoder vs transformers' ViTModel/BertModel.

Both sides get identical weights (ours are mapped onto the transformers modules) and identical inputs;
outputs are checked equal before timing. Prints items/s and the ratio ours / transformers (>= 1.0 means
ours is not slower). Run: ``python benchmarks/bench_layers.py [--batch 8] [--repeats 7] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from transformers import BertConfig, BertModel, ViTConfig, ViTModel

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved_medians  # noqa: E402

from vl_hub.layers.med import MedModel, MedSettings  # noqa: E402
from vl_hub.layers.vit import VisionTransformer  # noqa: E402


def vit_pair(device: str, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """ViT-B/16 at 224 px: ours and transformers' ViTModel holding the same weights."""
    ours = VisionTransformer(image_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12)
    hf = ViTModel(
        ViTConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  image_size=224, patch_size=16, layer_norm_eps=1e-6, qkv_bias=True, attn_implementation="sdpa"),
        add_pooling_layer=False,
    )
    torch.nn.init.normal_(ours.pos_embed, std=0.02)
    torch.nn.init.normal_(ours.cls_token, std=0.02)
    sd = ours.state_dict()
    mapped = {
        "embeddings.cls_token": sd["cls_token"],
        "embeddings.position_embeddings": sd["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "layernorm.weight": sd["norm.weight"],
        "layernorm.bias": sd["norm.bias"],
    }
    for i in range(12):
        b, h = f"blocks.{i}.", f"layers.{i}."
        q, k, v = sd[b + "attn.qkv.weight"].chunk(3)
        qb, kb, vb = sd[b + "attn.qkv.bias"].chunk(3)
        mapped.update({
            h + "attention.q_proj.weight": q, h + "attention.q_proj.bias": qb,
            h + "attention.k_proj.weight": k, h + "attention.k_proj.bias": kb,
            h + "attention.v_proj.weight": v, h + "attention.v_proj.bias": vb,
            h + "attention.o_proj.weight": sd[b + "attn.proj.weight"],
            h + "attention.o_proj.bias": sd[b + "attn.proj.bias"],
            h + "layernorm_before.weight": sd[b + "norm1.weight"], h + "layernorm_before.bias": sd[b + "norm1.bias"],
            h + "layernorm_after.weight": sd[b + "norm2.weight"], h + "layernorm_after.bias": sd[b + "norm2.bias"],
            h + "mlp.fc1.weight": sd[b + "mlp.fc1.weight"], h + "mlp.fc1.bias": sd[b + "mlp.fc1.bias"],
            h + "mlp.fc2.weight": sd[b + "mlp.fc2.weight"], h + "mlp.fc2.bias": sd[b + "mlp.fc2.bias"],
        })
    hf.load_state_dict(mapped, strict=True)
    return ours.to(device, dtype).eval(), hf.to(device, dtype).eval()


def bert_pair(device: str, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    """BERT-base text encoder: our MED in text mode and transformers' BertModel with the same weights."""
    settings = MedSettings(add_cross_attention=False, add_type_embeddings=True, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)
    ours = MedModel(settings)
    hf = BertModel(BertConfig(attn_implementation="sdpa"), add_pooling_layer=False)
    missing, unexpected = hf.load_state_dict(ours.state_dict(), strict=False)
    if [m for m in missing if "position_ids" not in m] or unexpected:
        raise RuntimeError(f"weight mapping failed: missing {missing}, unexpected {unexpected}")
    return ours.to(device, dtype).eval(), hf.to(device, dtype).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--text-len", type=int, default=35)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    print(f"device={args.device} dtype={args.dtype} threads={torch.get_num_threads()} batch={args.batch}")

    ours, hf = vit_pair(args.device, dtype)
    pixels = torch.randn(args.batch, 3, 224, 224, device=args.device, dtype=dtype)
    with torch.no_grad():
        diff = (ours(pixels) - hf(pixel_values=pixels).last_hidden_state).abs().max().item()
        times = interleaved_medians({"ours": lambda: ours(pixels), "transformers": lambda: hf(pixel_values=pixels)},
                                    repeats=args.repeats)
    print(f"ViT-B/16 224px : ours {args.batch / times['ours']:8.1f} img/s | ViTModel {args.batch / times['transformers']:8.1f} img/s"
          f" | ratio {times['transformers'] / times['ours']:.2f}x | max|diff| {diff:.1e}")

    ours, hf = bert_pair(args.device, dtype)
    ids = torch.randint(1000, 30000, (args.batch, args.text_len), device=args.device)
    mask = torch.ones_like(ids)
    mask[: args.batch // 2, args.text_len - 8 :] = 0
    with torch.no_grad():
        a = ours(input_ids=ids, attention_mask=mask, mode="text").last_hidden_state
        b = hf(input_ids=ids, attention_mask=mask).last_hidden_state
        diff = ((a - b).abs() * mask[..., None]).max().item()
        times = interleaved_medians(
            {"ours": lambda: ours(input_ids=ids, attention_mask=mask, mode="text"),
             "transformers": lambda: hf(input_ids=ids, attention_mask=mask)},
            repeats=args.repeats,
        )
    print(f"BERT-base L={args.text_len}: ours {args.batch / times['ours']:8.1f} seq/s | BertModel {args.batch / times['transformers']:8.1f} seq/s"
          f" | ratio {times['transformers'] / times['ours']:.2f}x | max|diff| {diff:.1e}")


if __name__ == "__main__":
    main()
