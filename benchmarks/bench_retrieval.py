"""Retrieval re-ranking: vl_hub's batched k-test (``vl_hub.retrieval_scoring.rerank_top_k``) against a per-query loop
like the original's (LAVIS ``compute_sim_matrix``: for each image, one ITM forward on its ``k_test`` best texts;
then for each text, one ITM forward on its ``k_test`` best images).

Both sides get the same ITC similarity and the same ITM callable ``itm(image_index (P,), text_index (P,)) -> (P,)``,
so they compute the same scores; the script checks that the score matrices match and that the recalls
(``vl_hub.metrics.retrieval_metrics``) are identical before printing any timing.

Data: ``N`` random image features and ``5 N`` caption features, each caption a noisy copy of its image's feature
(so recalls are neither 0 nor 100), L2-normalised, ``E = 256`` (BLIP's ITC width).

ITM callables (``--backend``):

* ``cost-model`` (default): precomputed random features and a cheap ITM with the cost profile of a real ITM forward
  on an accelerator: every call waits ``--call-latency-ms`` on the host (what a launch-bound forward costs: a
  12-layer BERT forward issues about 200 kernels, ~2 ms, almost independent of the batch until the device is full)
  and then computes a per-pair logit from the features (a 32-wide product, small per-pair work). This is the
  regime the batching targets: per-query calls of ``k_test`` pairs leave the device idle between launches.
* ``tiny-blip``: the real ITM forward (``BlipForImageTextRetrieval.itm_match_logits``) of a random BLIP (default
  the tiny test one: 17 image tokens of width 64, 2-layer width-64 text encoder; ``--text-width 768 --heads 12
  --image-tokens 577 --image-width 768 --text-layers L`` gives BLIP-base width at reduced depth) on random image
  tokens and captions, on this machine's CPU. The per-query loop repeats each image's tokens per pair and projects
  its cross-attention keys/values for every pair, as the original does; vl_hub's batched scorer projects each unique
  image of a call once and gathers the keys/values per pair (``--batched-per-pair`` also times the batched scorer
  without that reuse). At BLIP-base width the key/value projection of 577 image tokens dominates a pair's cost, so
  the reuse is where the speed-up comes from on a CPU.

* ``blip-base``: the public API end to end, ``BlipForImageTextRetrieval.score_pairs``, against LAVIS's loop calling
  ``itm_match_logits`` per query (image tokens gathered per pair, captions at their padded 35 tokens), on a
  BLIP-base-sized model (12 text layers, 577 image tokens = 384 px) in bf16 on a GPU (float32 on a CPU); captions
  have COCO-like lengths (mean ~14 tokens). Prints both sides' recalls, the score difference and peak memory (GPU
  allocator, or resident memory on a CPU). At full depth and ``k_test`` 128 the loop takes ~70 s on an H100 but
  days on a small CPU; ``--device cpu --k-test 16 --text-layers 2 --pairs-per-call 1024`` keeps BLIP-base's layer
  shapes at 1,000 x 5,000 (loop ~30 min on 2 cores; on a CPU, 1,024 pairs per call, ``score_pairs``' default, is
  faster and leaner than 8,192).

Memory: peak resident memory (``VmHWM``, reset through ``/proc/self/clear_refs``) while scoring, minus the memory
held before, minus the three ``(N, M)`` float32 output matrices (sim, score_i2t, score_t2i), i.e. the working
memory of the re-ranking, as ``N`` grows. The batched scorer's working memory is bounded by ``pairs_per_call``; the
same scorer with one call per direction (no chunking) grows with ``N * k``.

Run: ``python benchmarks/bench_retrieval.py [--images 1000] [--k-test 256] [--pairs-per-call 8192]
[--call-latency-ms 2] [--sizes 250,500,1000] [--backend cost-model|tiny-blip|blip-base] [--device cuda] ...``. Timings are single runs (the loop
takes seconds to minutes); torch uses one thread so that both sides see the same CPU.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from vl_hub.metrics import retrieval_metrics
from vl_hub.retrieval_scoring import FILL_VALUE, itc_similarity, rerank_top_k

EMBED_DIM = 256
CAPTIONS_PER_IMAGE = 5


def make_features(num_images: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[list[int]], list[int]]:
    """``(image_feat (N, E), text_feat (5N, E), img2txt, txt2img)``; caption ``5 i + c`` belongs to image ``i``."""
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(num_images, EMBED_DIM, generator=g), dim=-1)
    noise = torch.randn(num_images * CAPTIONS_PER_IMAGE, EMBED_DIM, generator=g)
    text = F.normalize(image.repeat_interleave(CAPTIONS_PER_IMAGE, dim=0) + 3.5 * noise / EMBED_DIM**0.5, dim=-1)
    img2txt = [list(range(CAPTIONS_PER_IMAGE * i, CAPTIONS_PER_IMAGE * (i + 1))) for i in range(num_images)]
    txt2img = [j // CAPTIONS_PER_IMAGE for j in range(num_images * CAPTIONS_PER_IMAGE)]
    return image, text, img2txt, txt2img


class CountingItm:
    """Wraps an ITM callable; counts calls and scored pairs."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn
        self.calls = 0
        self.pairs = 0

    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.pairs += image_index.numel()
        return self.fn(image_index, text_index)


class CostModelItm:
    """A cheap deterministic ITM over precomputed features with a fixed per-call latency (see the module docstring).

    ``logit(i, j) = tanh(sum(a_i * b_j))`` with ``a = image_feat @ P``, ``b = text_feat @ P`` (``P``: a fixed random
    ``(E, 32)`` projection, applied once up front like the cached image tokens of a real evaluation): the per-pair
    work is a gather and a 32-wide reduction, and depends only on the pair, not on the batch it comes in.
    """

    def __init__(self, image_feat: torch.Tensor, text_feat: torch.Tensor, call_latency_s: float) -> None:
        projection = torch.randn(EMBED_DIM, 32, generator=torch.Generator().manual_seed(1)) * 0.3
        self.image_itm, self.text_itm = image_feat @ projection, text_feat @ projection
        self.call_latency_s = call_latency_s

    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        if self.call_latency_s:
            time.sleep(self.call_latency_s)  # the host waits for the device: launch + synchronisation
        return torch.tanh((self.image_itm[image_index] * self.text_itm[text_index]).sum(dim=1))


class TinyBlipItm:
    """The real ITM forward of a randomly initialised BLIP (``BlipForImageTextRetrieval.itm_match_logits``) on random
    image tokens ``(N, image_tokens, image_width)`` and captions ``(M, 20)`` of 6-20 tokens.

    Default: the tiny test BLIP (17 image tokens of width 64, 2-layer width-64 text encoder). ``kv_reuse=True``
    projects the cross-attention keys/values of each unique image of a call once and gathers them per pair
    (``itm_match_logits(..., image_index=...)``, what ``score_pairs`` does); ``False`` repeats the image tokens per
    pair and projects them for every pair (the original's ``image_embeds[i].repeat(k_test, 1, 1)``).
    """

    def __init__(
        self,
        num_images: int,
        num_texts: int,
        text_width: int = 64,
        text_layers: int = 2,
        heads: int = 4,
        image_tokens: int = 17,
        image_width: int = 64,
    ) -> None:
        from vl_hub.models.blip.configuration_blip import BlipConfig
        from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval

        torch.manual_seed(0)
        config = BlipConfig(
            vision_config={"image_size": 32, "patch_size": 8, "hidden_size": image_width, "num_hidden_layers": 1,
                           "num_attention_heads": heads},
            text_config={"vocab_size": 232, "hidden_size": text_width, "num_hidden_layers": text_layers,
                         "num_attention_heads": heads, "intermediate_size": 4 * text_width if text_width > 64 else 128,
                         "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
                         "attention_probs_dropout_prob": 0.0, "pad_token_id": 0, "bos_token_id": 230,
                         "eos_token_id": 3, "sep_token_id": 3, "cls_token_id": 2, "enc_token_id": 231},
            embed_dim=32, queue_size=8,
        )
        self.model = BlipForImageTextRetrieval(config).eval()
        g = torch.Generator().manual_seed(2)
        self.image_embeds = torch.randn(num_images, image_tokens, image_width, generator=g)
        lengths = torch.randint(6, 21, (num_texts,), generator=g)
        self.mask = (torch.arange(20) < lengths[:, None]).long()
        ids = torch.randint(5, 230, (num_texts, 20), generator=g)
        ids[:, 0] = 2
        ids[torch.arange(num_texts), lengths - 1] = 3
        self.ids = ids.masked_fill(self.mask == 0, 0)
        self.kv_reuse = True

    @torch.no_grad()
    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        ids, mask = self.ids[text_index], self.mask[text_index]
        if not self.kv_reuse:
            return self.model.itm_match_logits(self.image_embeds[image_index], ids, mask)
        unique, inverse = torch.unique(image_index, return_inverse=True)
        return self.model.itm_match_logits(self.image_embeds[unique], ids, mask, image_index=inverse)


class BlipBaseSetup:
    """A BLIP-base-sized ``BlipForImageTextRetrieval`` (random weights; BERT-base text encoder with cross-attention to
    ``image_tokens`` image tokens of width 768) on ``device`` in ``dtype``, random image tokens, and captions with
    COCO-like lengths (``[CLS] ... [SEP]``, 8-35 tokens, mean about 14) padded to 35 as LAVIS's evaluation does.

    ``ours()`` is the public API, ``model.score_pairs`` (image-by-image calls, keys/values of each distinct image
    projected once per call, padding cut per length group); ``loop_itm`` is LAVIS's ITM call: the pairs' image tokens
    gathered (``image_embeds[i].repeat(k_test, 1, 1)``) and every text at its padded 35 tokens.
    """

    def __init__(self, image_feat: torch.Tensor, text_feat: torch.Tensor, device: str, dtype: torch.dtype,
                 text_layers: int = 12, image_tokens: int = 577, pairs_per_call: int = 8192) -> None:
        from vl_hub.models.blip.configuration_blip import BlipConfig
        from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval

        torch.manual_seed(0)
        config = BlipConfig(
            vision_config={"image_size": 32, "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 1,
                           "num_attention_heads": 12},
            text_config={"vocab_size": 30524, "hidden_size": 768, "num_hidden_layers": text_layers,
                         "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
                         "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "pad_token_id": 0,
                         "bos_token_id": 30522, "eos_token_id": 102, "sep_token_id": 102, "cls_token_id": 101,
                         "enc_token_id": 30523},
            embed_dim=EMBED_DIM, queue_size=8,
        )
        self.model = BlipForImageTextRetrieval(config).to(device, dtype).eval()
        n, m = image_feat.shape[0], text_feat.shape[0]
        g = torch.Generator().manual_seed(2)
        self.image_embeds = torch.randn(n, image_tokens, 768, generator=g).to(device, dtype)
        lengths = (14 + 3.5 * torch.randn(m, generator=g)).round().long().clamp(8, 35)
        self.mask = (torch.arange(35) < lengths[:, None]).long()
        ids = torch.randint(1000, 30000, (m, 35), generator=g).masked_fill(self.mask == 0, 0)
        ids[:, 0] = 101
        ids[torch.arange(m), lengths - 1] = 102
        self.ids, self.mask = ids.to(device), self.mask.to(device)
        self.image_feat, self.text_feat = image_feat.to(device), text_feat.to(device)
        self.pairs_per_call = pairs_per_call
        self.mean_length = float(lengths.float().mean())

    @torch.no_grad()
    def ours(self, k: int) -> object:
        return self.model.score_pairs(self.image_embeds, self.image_feat, self.ids, self.mask, self.text_feat,
                                      k_test=k, pairs_per_call=self.pairs_per_call)

    @torch.no_grad()
    def loop_itm(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        return self.model.itm_match_logits(self.image_embeds[image_index], self.ids[text_index],
                                           self.mask[text_index]).float()


def run_blip_base(num_images: int, k: int, device: str, text_layers: int, image_tokens: int,
                  pairs_per_call: int) -> None:
    """The real-model comparison (see :class:`BlipBaseSetup`), timed with the device synchronised."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    image_feat, text_feat, img2txt, txt2img = make_features(num_images)
    setup = BlipBaseSetup(image_feat, text_feat, device, dtype, text_layers, image_tokens, pairs_per_call)
    print(f"blip-base: {text_layers} text layers, {image_tokens} image tokens of width 768, {dtype}, captions "
          f"mean {setup.mean_length:.1f} tokens padded to 35, pairs_per_call={pairs_per_call}, device={device}")
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        setup.ours(k)  # warm-up (kernel choice, allocator)
        sync()
    peak = _PeakMemory(cuda)
    start = time.perf_counter()
    ours = setup.ours(k)
    sync()
    ours_s = time.perf_counter() - start
    ours_peak = peak.mib()
    loop_itm = CountingItm(setup.loop_itm)
    peak = _PeakMemory(cuda)
    start = time.perf_counter()
    loop_i2t, loop_t2i = per_query_loop(ours.sim, loop_itm, k)
    sync()
    loop_s = time.perf_counter() - start
    loop_peak = peak.mib()
    same_mask = torch.equal(ours.score_i2t == FILL_VALUE, loop_i2t == FILL_VALUE) and torch.equal(
        ours.score_t2i == FILL_VALUE, loop_t2i == FILL_VALUE)
    max_diff = max((ours.score_i2t - loop_i2t).abs().max().item(), (ours.score_t2i - loop_t2i).abs().max().item())
    ours_metrics = retrieval_metrics(ours.score_i2t.cpu(), ours.score_t2i.cpu(), img2txt, txt2img)
    loop_metrics = retrieval_metrics(loop_i2t.cpu(), loop_t2i.cpu(), img2txt, txt2img)
    print(f"same top-k sets: {same_mask}; max |score diff| {max_diff:.2e} ({dtype}: padding cut and keys/values "
          "gathered instead of recomputed change the rounding)")
    for name, metrics in (("vl_hub", ours_metrics), ("loop", loop_metrics)):
        print(f"  {name:>6}: " + " ".join(f"{key}={metrics[key]:.2f}" for key in
                                          ("txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10", "r_mean")))
    if not same_mask or max_diff > (1e-4 if dtype == torch.float32 else 0.25):
        raise SystemExit("MISMATCH between vl_hub's scores and the per-query loop's")
    memory = "GPU peak MiB" if cuda else "RSS peak MiB"  # CPU: peak resident memory above the start of the side
    print(f"{'':>16} {'seconds':>9} {'ITM calls':>10} {'ITM pairs':>10} {memory:>13}")
    print(f"{'per-query loop':>16} {loop_s:>9.2f} {loop_itm.calls:>10} {loop_itm.pairs:>10} {loop_peak:>13.0f}")
    print(f"{'vl_hub':>16} {ours_s:>9.2f} {'':>10} {'':>10} {ours_peak:>13.0f}")
    print(f"speed-up: {loop_s / ours_s:.1f}x")


@torch.no_grad()
def per_query_loop(sim: torch.Tensor, itm: Callable, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LAVIS ``compute_sim_matrix``'s re-ranking: one ITM call per image query, then one per text query."""
    n, m = sim.shape
    k_i2t, k_t2i = min(k, m), min(k, n)  # as rerank_top_k (the original fails when k exceeds the candidates)
    score_i2t = torch.full((n, m), FILL_VALUE, device=sim.device)
    score_t2i = torch.full((m, n), FILL_VALUE, device=sim.device)
    for i in range(n):
        top_sim, top_idx = sim[i].topk(k_i2t)
        score_i2t[i, top_idx] = itm(torch.full((k_i2t,), i, device=sim.device), top_idx) + top_sim
    sim_t = sim.t()
    for j in range(m):
        top_sim, top_idx = sim_t[j].topk(k_t2i)
        score_t2i[j, top_idx] = itm(top_idx, torch.full((k_t2i,), j, device=sim.device)) + top_sim
    return score_i2t, score_t2i


def _hwm_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


class _PeakMemory:
    """Peak memory from construction to :meth:`mib`: CUDA's allocator peak, or on a CPU the resident-set peak above the
    resident set at construction (``VmHWM`` reset through ``/proc/self/clear_refs``)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            return
        try:  # hand memory freed by earlier runs back to the OS, so that new allocations raise the RSS again
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
        self.before = _rss_kib()

    def mib(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        return (_hwm_kib() - self.before) / 1024


def peak_working_mib(fn: Callable[[], object], output_bytes: int) -> float:
    """Peak resident memory while ``fn`` runs, above what was resident before, minus ``output_bytes``."""
    peak = _PeakMemory(cuda=False)
    result = fn()
    working = peak.mib()
    del result
    return working - output_bytes / 2**20


def run(num_images: int, k: int, pairs_per_call: int, backend: str, latency_ms: float,
        blip_shape: dict[str, int] | None = None, batched_per_pair: bool = False) -> dict[str, float]:
    image_feat, text_feat, img2txt, txt2img = make_features(num_images)
    sim = itc_similarity(image_feat, text_feat)
    if backend == "cost-model":
        base = CostModelItm(image_feat, text_feat, latency_ms / 1000)
    else:
        base = TinyBlipItm(image_feat.shape[0], text_feat.shape[0], **(blip_shape or {}))

    ours_itm, loop_itm = CountingItm(base), CountingItm(base)
    start = time.perf_counter()
    ours = rerank_top_k(sim, ours_itm, k, pairs_per_call)
    ours_s = time.perf_counter() - start
    extra: dict[str, float] = {}
    if isinstance(base, TinyBlipItm):
        base.kv_reuse = False  # the original: image tokens repeated and projected per pair
        if batched_per_pair:  # vl_hub before the key/value reuse: batched calls, per-pair projection
            start = time.perf_counter()
            old = rerank_top_k(sim, base, k, pairs_per_call)
            extra["batched_per_pair_s"] = time.perf_counter() - start
            extra["batched_per_pair_diff"] = max((old.score_i2t - ours.score_i2t).abs().max().item(),
                                                 (old.score_t2i - ours.score_t2i).abs().max().item())
    start = time.perf_counter()
    loop_i2t, loop_t2i = per_query_loop(sim, loop_itm, k)
    loop_s = time.perf_counter() - start

    same_mask = torch.equal(ours.score_i2t == FILL_VALUE, loop_i2t == FILL_VALUE) and torch.equal(
        ours.score_t2i == FILL_VALUE, loop_t2i == FILL_VALUE
    )
    max_diff = max((ours.score_i2t - loop_i2t).abs().max().item(), (ours.score_t2i - loop_t2i).abs().max().item())
    ours_metrics = retrieval_metrics(ours.score_i2t, ours.score_t2i, img2txt, txt2img)
    loop_metrics = retrieval_metrics(loop_i2t, loop_t2i, img2txt, txt2img)
    if not same_mask or max_diff > 1e-4 or ours_metrics != loop_metrics:
        raise SystemExit(
            f"MISMATCH: same top-k={same_mask}, max |score diff|={max_diff:.2e}\n ours={ours_metrics}\n loop={loop_metrics}"
        )
    return {
        "ours_s": ours_s, "loop_s": loop_s, "ours_calls": ours_itm.calls, "loop_calls": loop_itm.calls,
        "ours_pairs": ours_itm.pairs, "loop_pairs": loop_itm.pairs, "max_diff": max_diff,
        "txt_r1": ours_metrics["txt_r1"], "img_r1": ours_metrics["img_r1"], "r_mean": ours_metrics["r_mean"],
        **extra,
    }


def memory_sweep(sizes: list[int], k: int, pairs_per_call: int) -> None:
    print(f"\nworking memory of the re-ranking (MiB; peak RSS - RSS before - outputs), cost-model ITM without latency, k={k}")
    print(f"{'images':>7} {'texts':>6} {'outputs':>8} {'ours chunked':>13} {'ours unchunked':>15} {'per-query loop':>15}")
    for n in sizes:
        image_feat, text_feat, _, _ = make_features(n)
        m = text_feat.shape[0]
        outputs = 3 * n * m * 4
        args = (image_feat, text_feat, k, pairs_per_call)
        row = [peak_working_mib(functools.partial(variant, *args), outputs) for variant in _VARIANTS]
        print(f"{n:>7} {m:>6} {outputs / 2**20:>8.1f} {row[0]:>13.1f} {row[1]:>15.1f} {row[2]:>15.1f}")


def _chunked(image_feat: torch.Tensor, text_feat: torch.Tensor, k: int, pairs_per_call: int) -> object:
    itm = CostModelItm(image_feat, text_feat, 0.0)
    return rerank_top_k(itc_similarity(image_feat, text_feat, chunk_size=256), itm, k, pairs_per_call)


def _unchunked(image_feat: torch.Tensor, text_feat: torch.Tensor, k: int, pairs_per_call: int) -> object:
    itm = CostModelItm(image_feat, text_feat, 0.0)
    everything = (image_feat.shape[0] + text_feat.shape[0]) * k
    return rerank_top_k(image_feat @ text_feat.t(), itm, k, pairs_per_call=everything, reuse_itm=False)


def _loop(image_feat: torch.Tensor, text_feat: torch.Tensor, k: int, pairs_per_call: int) -> object:
    return per_query_loop(image_feat @ text_feat.t(), CostModelItm(image_feat, text_feat, 0.0), k)


#: memory sweep contenders: batched with chunks, batched with one call per direction, per-query loop
_VARIANTS = (_chunked, _unchunked, _loop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--k-test", type=int, default=256)
    parser.add_argument("--pairs-per-call", type=int, default=8192)
    parser.add_argument("--call-latency-ms", type=float, default=2.0)
    parser.add_argument("--backend", choices=("cost-model", "tiny-blip", "blip-base"), default="cost-model")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="blip-base only")
    parser.add_argument("--sizes", default="250,500,1000,2000", help="image counts of the memory sweep ('' to skip)")
    parser.add_argument("--text-width", type=int, default=64, help="tiny-blip: text encoder width (BLIP-base 768)")
    parser.add_argument("--text-layers", type=int, default=None,
                        help="text encoder depth (tiny-blip default 2, blip-base default 12)")
    parser.add_argument("--heads", type=int, default=4, help="tiny-blip: attention heads (BLIP-base 12)")
    parser.add_argument("--image-tokens", type=int, default=None,
                        help="image tokens (tiny-blip default 17, blip-base default 577 = 384 px)")
    parser.add_argument("--image-width", type=int, default=64, help="tiny-blip: image token width (BLIP-base 768)")
    parser.add_argument("--batched-per-pair", action="store_true",
                        help="tiny-blip: also time the batched scorer with per-pair key/value projection")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides get the same)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = args.backend == "blip-base"
    args.text_layers = args.text_layers or (12 if base else 2)
    args.image_tokens = args.image_tokens or (577 if base else 17)

    n, m = args.images, args.images * CAPTIONS_PER_IMAGE
    if args.backend == "blip-base":
        print(f"backend=blip-base  images={n}  texts={m}  k_test={args.k_test}")
        run_blip_base(n, args.k_test, args.device, args.text_layers, args.image_tokens, args.pairs_per_call)
        return
    print(f"backend={args.backend}  images={n}  texts={m}  k_test={args.k_test}  pairs_per_call={args.pairs_per_call}"
          + (f"  call latency={args.call_latency_ms} ms" if args.backend == "cost-model" else ""))
    shape = {"text_width": args.text_width, "text_layers": args.text_layers, "heads": args.heads,
             "image_tokens": args.image_tokens, "image_width": args.image_width}
    if args.backend == "tiny-blip":
        print("tiny-blip shape: " + ", ".join(f"{key}={value}" for key, value in shape.items())
              + "; per-query loop projects image keys/values per pair (as the original), vl_hub once per unique "
              "image per call")
    res = run(n, args.k_test, args.pairs_per_call, args.backend, args.call_latency_ms, shape, args.batched_per_pair)
    print(f"identical top-k and recalls (max |score diff| {res['max_diff']:.1e}); txt_r1={res['txt_r1']:.2f} "
          f"img_r1={res['img_r1']:.2f} r_mean={res['r_mean']:.2f}")
    print(f"{'':>16} {'seconds':>9} {'ITM calls':>10} {'ITM pairs':>10}")
    print(f"{'per-query loop':>16} {res['loop_s']:>9.2f} {res['loop_calls']:>10} {res['loop_pairs']:>10}")
    print(f"{'vl_hub batched':>16} {res['ours_s']:>9.2f} {res['ours_calls']:>10} {res['ours_pairs']:>10}")
    if "batched_per_pair_s" in res:
        print(f"{'batched, K/V per pair':>16} {res['batched_per_pair_s']:>9.2f}  (max |score diff| vs K/V reuse "
              f"{res['batched_per_pair_diff']:.1e})")
    print(f"speed-up: {res['loop_s'] / res['ours_s']:.1f}x")
    if args.sizes:
        memory_sweep([int(s) for s in args.sizes.split(",")], args.k_test, args.pairs_per_call)


if __name__ == "__main__":
    main()
