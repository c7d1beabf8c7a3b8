"""Two-stage image-text retrieval scoring shared by the ITC + ITM families (BLIP, ALBEF, ALPRO).

LAVIS's ``compute_sim_matrix`` ranks every text for every image (and vice versa) by the contrastive
similarity, keeps each query's ``k_test`` best candidates and re-scores only those with the image-text matching
(ITM) head::

    score_i2t[i, j] = itm_logit(i, j)[match] + sim[i, j]    for j in topk_k(sim[i, :]),   -100 elsewhere
    score_t2i[j, i] = itm_logit(i, j)[match] + sim[i, j]    for i in topk_k(sim[:, j]),   -100 elsewhere

The original runs one ITM forward of ``k_test`` pairs per query. Here the candidates of several queries go through
one ITM call (``pairs_per_call`` pairs at most, so memory stays bounded whatever ``N`` and ``M``), and a pair that is
in both an image's and a text's top-k is scored once (``reuse_itm``). Nothing larger than the ``(N, M)`` matrices
is ever built.

The module knows nothing about the model: the caller passes the similarity matrix and a callable that scores a
batch of ``(image index, text index)`` pairs, so every family (and any device placement of the cached features)
plugs in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vl_hub.modeling_outputs import RetrievalScores

__all__ = ["ItmScoreFn", "brute_force_scores", "itc_similarity", "rerank_top_k"]

ItmScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``itm_score_fn(image_index (P,), text_index (P,)) -> (P,)``: the ITM "match" logit of each pair."""

FILL_VALUE = -100.0


def itc_similarity(image_feat: torch.Tensor, text_feat: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """Cosine similarity of normalised features, ``(N, E) x (M, E) -> (N, M)``, computed ``chunk_size`` rows at a
    time into one preallocated matrix (no temperature, as LAVIS's retrieval evaluation)."""
    if image_feat.dim() != 2 or text_feat.dim() != 2 or image_feat.shape[1] != text_feat.shape[1]:
        raise ValueError(
            f"itc_similarity needs image_feat (N, E) and text_feat (M, E) with the same E; got "
            f"{tuple(image_feat.shape)} and {tuple(text_feat.shape)}"
        )
    text_feat = text_feat.to(device=image_feat.device, dtype=image_feat.dtype)
    sim = image_feat.new_empty(image_feat.shape[0], text_feat.shape[0])
    for start in range(0, image_feat.shape[0], chunk_size):
        torch.matmul(image_feat[start : start + chunk_size], text_feat.t(), out=sim[start : start + chunk_size])
    return sim


def _check(sim: torch.Tensor, k_test: int, pairs_per_call: int) -> None:
    if sim.dim() != 2 or sim.numel() == 0:
        raise ValueError(f"sim must be a non-empty (N_images, N_texts) matrix; got shape {tuple(sim.shape)}")
    if not isinstance(k_test, int) or k_test < 1:
        raise ValueError(f"k_test must be a positive int; got {k_test!r}")
    if pairs_per_call < 1:
        raise ValueError(f"pairs_per_call must be positive; got {pairs_per_call}")


def _query_range(queries: slice | None, total: int, name: str) -> range:
    """``queries`` (a step-1 slice of query indices, ``None`` for all) as a range within ``[0, total)``."""
    if queries is None:
        return range(total)
    if not isinstance(queries, slice) or queries.step not in (None, 1):
        raise ValueError(f"{name} must be a slice with step 1 (a contiguous block of queries) or None; got {queries!r}")
    return range(total)[queries]


def _score_direction(
    sim: torch.Tensor,
    k: int,
    itm_score_fn: ItmScoreFn,
    queries_are_images: bool,
    pairs_per_call: int,
    queries: range,
    known_itm: torch.Tensor | None,
    known_offset: int = 0,
) -> torch.Tensor:
    """One direction. ``sim`` is ``(Q, C)`` oriented query x candidate; only the queries in ``queries`` are scored.
    Returns the ITM logits ``(len(queries), C)`` on each query's top-k and NaN elsewhere (NaN marks "not scored" so
    that the caller can turn it into -100 in place).

    ``known_itm`` (``(R, Q)``, NaN where unknown) holds logits already computed in the other direction for the
    candidates ``known_offset .. known_offset + R - 1``.
    """
    itm = sim.new_full((len(queries), sim.shape[1]), float("nan"))
    queries_per_call = max(1, pairs_per_call // k)
    for start in range(queries.start, queries.stop, queries_per_call):
        stop = min(start + queries_per_call, queries.stop)
        top_idx = sim[start:stop].topk(k, dim=1).indices  # (q, k)
        query_idx = torch.arange(start, stop, device=sim.device)[:, None].expand_as(top_idx)
        logits = torch.full(top_idx.shape, float("nan"), dtype=sim.dtype, device=sim.device)
        if known_itm is not None:
            local = top_idx - known_offset
            inside = (local >= 0) & (local < known_itm.shape[0])
            logits[inside] = known_itm[local[inside], query_idx[inside]]
        todo = torch.isnan(logits)
        q_todo, c_todo = query_idx[todo], top_idx[todo]
        if q_todo.numel():
            image_index, text_index = (q_todo, c_todo) if queries_are_images else (c_todo, q_todo)
            scores = itm_score_fn(image_index, text_index)
            if scores.shape != q_todo.shape:
                raise ValueError(
                    f"itm_score_fn returned shape {tuple(scores.shape)} for {q_todo.numel()} pairs; it must return "
                    "one 'match' logit per pair, shape (P,)"
                )
            logits[todo] = scores.to(device=sim.device, dtype=sim.dtype)
        itm[start - queries.start : stop - queries.start].scatter_(1, top_idx, logits)
    return itm


@torch.no_grad()
def rerank_top_k(
    sim: torch.Tensor,
    itm_score_fn: ItmScoreFn,
    k_test: int,
    pairs_per_call: int = 1024,
    reuse_itm: bool = True,
    image_queries: slice | None = None,
    text_queries: slice | None = None,
) -> RetrievalScores:
    """ITC ranking then ITM re-scoring of each query's top-k, in both directions (see the module docstring).

    Args:
        sim: ``(N_images, N_texts)`` ITC similarity (e.g. :func:`itc_similarity`).
        itm_score_fn: scores a batch of pairs, ``(image_index (P,), text_index (P,)) -> match logit (P,)``; called
            with at most ``max(pairs_per_call, k)`` pairs, always whole queries.
        k_test: candidates re-scored per query (clamped to the number of candidates).
        pairs_per_call: upper bound on pairs per ITM call (memory bound): ``pairs_per_call // k`` queries at once.
        reuse_itm: score a pair found in both directions' top-k only once.
        image_queries, text_queries: contiguous blocks of query indices to score (``slice(start, stop)``), ``None``
            for all of them. Distributed evaluation gives each process its own blocks of the full ``sim`` (every
            candidate stays visible) and concatenates the rows afterwards; an empty slice skips a direction.

    Returns:
        :class:`~vl_hub.modeling_outputs.RetrievalScores` with ``score_i2t (n, M)`` (the rows of ``image_queries``,
        all ``N`` by default), ``score_t2i (m, N)`` (the rows of ``text_queries``) and the full ``sim``.
    """
    _check(sim, k_test, pairs_per_call)
    images = _query_range(image_queries, sim.shape[0], "image_queries")
    texts = _query_range(text_queries, sim.shape[1], "text_queries")
    # The original's topk fails when k_test exceeds the candidates; re-scoring all of them is the natural meaning.
    k_i2t = min(k_test, sim.shape[1])
    k_t2i = min(k_test, sim.shape[0])
    score_i2t = _score_direction(sim, k_i2t, itm_score_fn, True, pairs_per_call, images, None)
    score_t2i = _score_direction(
        sim.t(), k_t2i, itm_score_fn, False, pairs_per_call, texts, score_i2t if reuse_itm else None, images.start
    )
    # itm + sim on the scored entries; NaN (unscored) + sim stays NaN and becomes -100. In place: no extra matrix.
    score_i2t.add_(sim[images.start : images.stop]).nan_to_num_(nan=FILL_VALUE)
    score_t2i.add_(sim.t()[texts.start : texts.stop]).nan_to_num_(nan=FILL_VALUE)
    return RetrievalScores(score_i2t=score_i2t, score_t2i=score_t2i, sim=sim)


@torch.no_grad()
def brute_force_scores(itm_all: torch.Tensor, sim: torch.Tensor, k_test: int) -> RetrievalScores:
    """The reference rule on precomputed all-pairs ITM logits ``itm_all (N, M)`` (tests, tiny sets only):
    per query, ``itm + sim`` on the ITC top-k and -100 elsewhere."""
    if itm_all.shape != sim.shape:
        raise ValueError(f"itm_all {tuple(itm_all.shape)} and sim {tuple(sim.shape)} must have the same shape")
    score_i2t = torch.full_like(sim, FILL_VALUE)
    score_t2i = torch.full_like(sim.t(), FILL_VALUE)
    for i in range(sim.shape[0]):
        top_sim, top_idx = sim[i].topk(min(k_test, sim.shape[1]))
        score_i2t[i, top_idx] = itm_all[i, top_idx] + top_sim
    for j in range(sim.shape[1]):
        top_sim, top_idx = sim[:, j].topk(min(k_test, sim.shape[0]))
        score_t2i[j, top_idx] = itm_all[top_idx, j] + top_sim
    return RetrievalScores(score_i2t=score_i2t, score_t2i=score_t2i, sim=sim)
