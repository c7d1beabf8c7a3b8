"""Visual dialogue metrics over ranked answer options: MRR, R@1/5/10, mean rank, NDCG."""

from __future__ import annotations

import torch


def option_ranks(scores: torch.Tensor) -> torch.Tensor:
    """1-based rank of every option per round. ``scores``: (rounds, options) -> (rounds, options)."""
    order = scores.argsort(dim=1, descending=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(1, scores.shape[1] + 1).expand_as(order))
    return ranks


def visdial_metrics(
    scores: torch.Tensor,
    gt_index: torch.Tensor,
    relevance: torch.Tensor | None = None,
) -> dict[str, float]:
    """Sparse metrics on the ground-truth answer and, with dense annotations, NDCG (VisDial v1.0).

    Args:
        scores: ``(rounds, 100)`` model scores of the answer options (higher is better).
        gt_index: ``(rounds,)`` index of the ground-truth option; rounds with -1 are left out of the
            sparse metrics.
        relevance: ``(rounds, 100)`` dense relevance in [0, 1] or ``None``; rows that are all NaN are
            left out. NDCG@k uses k = number of options with non-zero relevance, as the official code.

    Returns ``mrr``, ``r1``, ``r5``, ``r10`` (percent), ``mean_rank`` and ``ndcg`` (percent, when given).
    """
    if scores.dim() != 2 or gt_index.shape != scores.shape[:1]:
        raise ValueError(f"expected scores (rounds, options) and gt_index (rounds,), got {tuple(scores.shape)}, {tuple(gt_index.shape)}")
    ranks = option_ranks(scores.float())
    out: dict[str, float] = {}
    known = gt_index >= 0
    if known.any():
        gt_ranks = ranks[known].gather(1, gt_index[known].long()[:, None]).squeeze(1).float()
        out.update(
            mrr=(1.0 / gt_ranks).mean().item(),
            r1=100.0 * (gt_ranks <= 1).float().mean().item(),
            r5=100.0 * (gt_ranks <= 5).float().mean().item(),
            r10=100.0 * (gt_ranks <= 10).float().mean().item(),
            mean_rank=gt_ranks.mean().item(),
        )
    if relevance is not None:
        rel = relevance.float()
        rows = ~torch.isnan(rel).all(dim=1)
        if rows.any():
            rel, sc = rel[rows], scores[rows].float()
            k = (rel > 0).sum(dim=1).clamp(min=1)
            discounts = 1.0 / torch.log2(torch.arange(rel.shape[1], dtype=torch.float32) + 2.0)
            ranked_rel = rel.gather(1, sc.argsort(dim=1, descending=True))
            ideal_rel = rel.sort(dim=1, descending=True).values
            within_k = torch.arange(rel.shape[1])[None, :] < k[:, None]
            dcg = (ranked_rel * discounts * within_k).sum(dim=1)
            idcg = (ideal_rel * discounts * within_k).sum(dim=1)
            out["ndcg"] = 100.0 * (dcg / idcg.clamp(min=1e-12)).mean().item()
    if not out:
        raise ValueError("no round has a ground-truth index or dense relevance; nothing to score")
    return out
