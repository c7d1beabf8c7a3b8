"""ALBEF k-test retrieval scoring: vl_hub's batched scorer vs the original per-query loop (LAVIS ``compute_sim_matrix``).

Setting: a tiny ALBEF (the test configuration: ViT 32 px / patch 8 / width 64 / depth 2, BERT hidden 64 with 2 text +
2 fusion layers) with random weights, 1,000 images x 5,000 texts (5 captions per image, padded to 35 tokens as LAVIS
does), ``k_test`` 128 (LAVIS's ALBEF retrieval evaluation). Both sides share the same ITC features (encoding is timed
once, separately); what is compared is the ITM re-scoring of each query's top-k:

* **original**: LAVIS's loops -- one ITM forward of ``k`` pairs per image and per text, the ids run through every text
  layer each time (``compute_sim_matrix``);
* **vl_hub**: :meth:`AlbefForImageTextRetrieval.score_pairs` -- the candidates of many queries in one ITM forward
  (``pairs_per_call`` pairs), a pair found in both directions scored once, and ITM running only the fusion layers on
  the cached text-layer states (``text_embeds``);
* **vl_hub (ids)**: the same without the cached states (every layer from the ids, as LAVIS), to separate the two gains.

Both score matrices must agree (same -100 mask, scores within 1e-4) and give identical recall@1/5/10 before timings are
printed. Run: ``python benchmarks/bench_albef.py [--images 1000] [--texts 5000] [--k-test 128] [--device cpu|cuda]
[--threads N]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from vl_hub.metrics.retrieval import retrieval_metrics
from vl_hub.models.albef.configuration_albef import AlbefConfig
from vl_hub.models.albef.modeling_albef import AlbefForImageTextRetrieval

TEXT_LENGTH = 35  # LAVIS compute_sim_matrix pads every text to max_length=35


def tiny_config() -> AlbefConfig:
    """The test suite's tiny ALBEF (vocab 230: [PAD]=0, [CLS]=2, [SEP]=3)."""
    return AlbefConfig(
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 4},
        text_config={"vocab_size": 230, "hidden_size": 64, "num_hidden_layers": 4, "fusion_layer": 2,
                     "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 64,
                     "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "cls_token_id": 2,
                     "bos_token_id": 2, "sep_token_id": 3, "eos_token_id": 3, "mask_token_id": 4},
        embed_dim=32, queue_size=8, use_distill=False,
    )


def make_data(num_images: int, num_texts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random images ``(N, 3, 32, 32)``; texts ``(M, 35)`` of 8..35 tokens (``[CLS] ... [SEP] [PAD]*``)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(num_images, 3, 32, 32, generator=g)
    lengths = torch.randint(8, TEXT_LENGTH + 1, (num_texts,), generator=g)
    ids = torch.randint(5, 230, (num_texts, TEXT_LENGTH), generator=g)
    positions = torch.arange(TEXT_LENGTH)
    ids[:, 0] = 2
    ids[positions[None] == (lengths[:, None] - 1)] = 3
    mask = (positions[None] < lengths[:, None]).long()
    return images, ids.masked_fill(mask == 0, 0), mask


@torch.no_grad()
def original_loops(model, image_embeds, image_feat, ids, mask, text_feat, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LAVIS ``compute_sim_matrix``: per image, then per text, one ITM forward of its top-k pairs (ids, every layer)."""
    sim = image_feat @ text_feat.t()
    score_i2t = torch.full_like(sim, -100.0)
    for i, sims in enumerate(sim):
        top_sim, top = sims.topk(k)
        states = model.text_encoder(
            input_ids=ids[top], attention_mask=mask[top], encoder_hidden_states=image_embeds[i].repeat(k, 1, 1),
            mode="multimodal",
        ).last_hidden_state
        score_i2t[i, top] = model.itm_head(states[:, 0])[:, 1] + top_sim
    score_t2i = torch.full_like(sim.t(), -100.0)
    for j, sims in enumerate(sim.t()):
        top_sim, top = sims.topk(k)
        states = model.text_encoder(
            input_ids=ids[j].repeat(k, 1), attention_mask=mask[j].repeat(k, 1), encoder_hidden_states=image_embeds[top],
            mode="multimodal",
        ).last_hidden_state
        score_t2i[j, top] = model.itm_head(states[:, 0])[:, 1] + top_sim
    return score_i2t, score_t2i


def _timed(fn):  # fn: any zero-argument callable
    """``(result, wall seconds, process CPU seconds)``. With one CPU thread the CPU time is the fair measure on a
    shared machine: other processes slow the wall clock of whichever contender runs while they do."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _check(name: str, reference: tuple[torch.Tensor, torch.Tensor], scores: tuple[torch.Tensor, torch.Tensor]) -> float:
    diff = 0.0
    for ref, ours in zip(reference, scores):
        if not torch.equal(ref == -100.0, ours == -100.0):
            raise RuntimeError(f"{name}: the scored (top-k) entries differ from the original's")
        diff = max(diff, (ref - ours).abs().max().item())
    if diff > 1e-4:
        raise RuntimeError(f"{name}: scores differ from the original's by {diff}")
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--k-test", type=int, default=128)
    parser.add_argument("--pairs-per-call", type=int, default=None,
                        help="ITM pairs per forward (default 512 on the CPU, where small batches stay in cache; 8192 on a GPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 avoids stalls on a busy box)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pairs_per_call is None:
        args.pairs_per_call = 8192 if args.device.startswith("cuda") else 512
    if args.texts % args.images:
        raise SystemExit("--texts must be a multiple of --images (each image has texts/images captions)")

    torch.manual_seed(0)
    model = AlbefForImageTextRetrieval(tiny_config()).eval().to(args.device)
    images, ids, mask = make_data(args.images, args.texts)
    images, ids, mask = images.to(args.device), ids.to(args.device), mask.to(args.device)
    with torch.no_grad():
        (image_embeds, image_feat), t_images, _ = _timed(lambda: model.encode_images(images))
        (text_embeds, text_feat), t_texts, _ = _timed(lambda: model.encode_texts(ids, mask))
    common = (image_embeds, image_feat, ids, mask, text_feat)

    original, wall_original, cpu_original = _timed(lambda: original_loops(model, *common, args.k_test))
    batched, wall_batched, cpu_batched = _timed(lambda: model.score_pairs(
        *common, k_test=args.k_test, pairs_per_call=args.pairs_per_call, text_embeds=text_embeds
    ))
    batched_ids, wall_batched_ids, cpu_batched_ids = _timed(lambda: model.score_pairs(
        *common, k_test=args.k_test, pairs_per_call=args.pairs_per_call
    ))

    diffs = [
        _check("vl_hub", original, (batched.score_i2t, batched.score_t2i)),
        _check("vl_hub (ids)", original, (batched_ids.score_i2t, batched_ids.score_t2i)),
    ]
    per_image = args.texts // args.images
    img2txt = [list(range(i * per_image, (i + 1) * per_image)) for i in range(args.images)]
    txt2img = [j // per_image for j in range(args.texts)]
    recalls = {
        name: retrieval_metrics(i2t.cpu(), t2i.cpu(), img2txt, txt2img)
        for name, (i2t, t2i) in {
            "original": original,
            "vl_hub": (batched.score_i2t, batched.score_t2i),
            "vl_hub (ids)": (batched_ids.score_i2t, batched_ids.score_t2i),
        }.items()
    }
    keys = ("txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10")
    if any(recalls[name][k] != recalls["original"][k] for name in recalls for k in keys):
        raise RuntimeError(f"recalls differ: {recalls}")

    print(f"device {args.device}; {args.images} images x {args.texts} texts, k_test {args.k_test}, "
          f"pairs_per_call {args.pairs_per_call}; torch threads {torch.get_num_threads()}; original: "
          f"{args.images + args.texts} ITM calls of {args.k_test} pairs")
    print(f"encoding (shared): images {t_images:.2f} s, texts {t_texts:.2f} s")
    rows = (
        ("original per-query loops", wall_original, cpu_original),
        ("vl_hub batched, ids", wall_batched_ids, cpu_batched_ids),
        ("vl_hub batched, fusion", wall_batched, cpu_batched),
    )
    print(f"{'':26s} {'wall s':>9s} {'speed-up':>9s} {'CPU s':>9s} {'speed-up':>9s}")
    for name, wall, cpu in rows:
        print(f"{name:26s} {wall:9.2f} {wall_original / wall:8.2f}x {cpu:9.2f} {cpu_original / cpu:8.2f}x")
    print(f"max |score diff| vs original: {max(diffs):.2e}; recalls identical: "
          + ", ".join(f"{k}={recalls['original'][k]:.2f}" for k in keys))


if __name__ == "__main__":
    main()
