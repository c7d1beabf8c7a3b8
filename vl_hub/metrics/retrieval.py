"""Recall@K and ranks for image-text (or video-text) retrieval from a score matrix."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _gt_ranks(scores: torch.Tensor, positives: Sequence[Sequence[int]]) -> torch.Tensor:
    """Rank (0-based) of the best-ranked positive per row. ``scores``: (N, M)."""
    if scores.shape[0] != len(positives):
        raise ValueError(f"scores has {scores.shape[0]} rows but {len(positives)} ground-truth lists were given")
    order = scores.argsort(dim=1, descending=True)
    # rank_of[i, j] = position of column j in row i's ranking
    rank_of = torch.empty_like(order)
    rank_of.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    rows = [i for i, pos in enumerate(positives) for _ in pos]
    cols = [j for pos in positives for j in pos]
    is_positive = torch.zeros(scores.shape, dtype=torch.bool)
    is_positive[rows, cols] = True
    missing = (~is_positive.any(dim=1)).nonzero().flatten()
    if len(missing):
        raise ValueError(f"query {missing[0].item()} has no ground-truth match; every query needs at least one")
    return rank_of.masked_fill(~is_positive, scores.shape[1]).min(dim=1).values


def _summary(ranks: torch.Tensor, prefix: str, ks: Sequence[int]) -> dict[str, float]:
    """``{prefix}r1 … {prefix}r_mean, {prefix}mean_rank, {prefix}median_rank`` from 0-based ranks."""
    out = {f"{prefix}r{k}": 100.0 * (ranks < k).float().mean().item() for k in ks}
    out[f"{prefix}r_mean"] = sum(out[f"{prefix}r{k}"] for k in ks) / len(ks)
    out[f"{prefix}mean_rank"] = (ranks.float() + 1).mean().item()
    # torch.median returns the lower of the two middle values; use the usual definition
    out[f"{prefix}median_rank"] = float((ranks.float() + 1).quantile(0.5).item())
    return out


def recall_at_k(
    scores: torch.Tensor, positives: Sequence[Sequence[int]], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """One direction: ``scores`` (queries, candidates) and each query's positive candidate indices.

    Returns ``r1, r5, r10, r_mean`` (percent), ``mean_rank`` and ``median_rank`` (1-based).
    """
    return _summary(_gt_ranks(scores.float().cpu(), positives), "", ks)


def retrieval_metrics(
    scores_i2t: torch.Tensor,
    scores_t2i: torch.Tensor,
    img2txt: Sequence[Sequence[int]],
    txt2img: Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@K (percent), mean and median rank (1-based) in both directions, as LAVIS reports them.

    Args:
        scores_i2t: ``(num_images, num_texts)`` similarity scores.
        scores_t2i: ``(num_texts, num_images)`` similarity scores.
        img2txt: for each image, the indices of its texts.
        txt2img: for each text, the index of its image.
        ks: the K of recall@K.

    Returns ``txt_r1 … txt_r_mean`` (image→text), ``img_r1 …`` (text→image), ``r_mean`` (average of both).
    """
    i2t = _gt_ranks(scores_i2t.float().cpu(), img2txt)
    t2i = _gt_ranks(scores_t2i.float().cpu(), [[j] for j in txt2img])
    out = {**_summary(i2t, "txt_", ks), **_summary(t2i, "img_", ks)}
    out["r_mean"] = (out["txt_r_mean"] + out["img_r_mean"]) / 2
    return out
