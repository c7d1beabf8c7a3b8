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
from typing import Any

import torch

from vl_hub.modeling_outputs import RetrievalScores

__all__ = [
    "ItmScoreFn",
    "PairLogitsFn",
    "brute_force_scores",
    "itc_similarity",
    "length_bucketed_scorer",
    "rerank_top_k",
]

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


def _column_thresholds(
    sim: torch.Tensor, k: int, texts: range, rows_per_chunk: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which images are in each text query's top-k, in ``O(M)`` memory: ``(threshold (m,), tie_columns (T,),
    tie_top (T, k))``. Image ``i`` is in text ``j``'s top-k iff ``sim[i, j] >= threshold[j]``, except for the few
    columns whose k-th value is tied with a (k+1)-th: those keep their exact ``topk`` indices."""
    sim_t = sim.t()
    threshold = sim.new_empty(len(texts))
    tie_columns, tie_top = [], []
    for start in range(texts.start, texts.stop, rows_per_chunk):
        stop = min(start + rows_per_chunk, texts.stop)
        values, indices = sim_t[start:stop].topk(k, dim=1)
        kth = values[:, -1]
        threshold[start - texts.start : stop - texts.start] = kth
        ties = ((sim_t[start:stop] >= kth[:, None]).sum(dim=1) > k).nonzero().flatten()
        if ties.numel():
            tie_columns.append(ties + (start - texts.start))
            tie_top.append(indices[ties])
    if not tie_columns:
        return threshold, sim.new_empty(0, dtype=torch.long), sim.new_empty(0, k, dtype=torch.long)
    return threshold, torch.cat(tie_columns), torch.cat(tie_top)


def _score_pairs_in_calls(
    itm_score_fn: ItmScoreFn, image_index: torch.Tensor, text_index: torch.Tensor, pairs_per_call: int, sim: torch.Tensor
) -> torch.Tensor:
    """ITM logits ``(P,)`` of the pairs, ``pairs_per_call`` per call of ``itm_score_fn``."""
    logits = sim.new_empty(image_index.numel())
    for start in range(0, image_index.numel(), pairs_per_call):
        stop = min(start + pairs_per_call, image_index.numel())
        scores = itm_score_fn(image_index[start:stop], text_index[start:stop])
        if scores.shape != (stop - start,):
            raise ValueError(
                f"itm_score_fn returned shape {tuple(scores.shape)} for {stop - start} pairs; it must return one "
                "'match' logit per pair, shape (P,)"
            )
        logits[start:stop] = scores.to(device=sim.device, dtype=sim.dtype)
    return logits


def _block_logits(
    needed: torch.Tensor, row_offset: int, column_offset: int, itm_score_fn: ItmScoreFn, pairs_per_call: int,
    sim: torch.Tensor,
) -> torch.Tensor:
    """Scores the ``True`` entries of ``needed (b, c)`` (rows = images ``row_offset + r``, columns = texts
    ``column_offset + c``) image by image; returns ``(b, c)`` logits, NaN where not needed."""
    rows, columns = needed.nonzero(as_tuple=True)  # row-major: the pairs of one image are adjacent
    logits = torch.full(needed.shape, float("nan"), dtype=sim.dtype, device=sim.device)
    if rows.numel():
        logits[rows, columns] = _score_pairs_in_calls(
            itm_score_fn, rows + row_offset, columns + column_offset, pairs_per_call, sim
        )
    return logits


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

    The pairs are scored image by image: blocks of images are visited in order, and each block's pairs (its image
    queries' top-k texts, plus every text query whose top-k holds one of its images) go to ``itm_score_fn`` sorted
    by image, so a call touches few distinct images (a scorer that projects each distinct image's cross-attention
    keys/values once per call does so about once per image overall). Working memory is bounded by the block
    (``O(pairs_per_call)``) plus one threshold per text query; nothing ``N x k`` or ``N x M`` is built besides the
    outputs.

    Args:
        sim: ``(N_images, N_texts)`` ITC similarity (e.g. :func:`itc_similarity`).
        itm_score_fn: scores a batch of pairs, ``(image_index (P,), text_index (P,)) -> match logit (P,)``; called
            with at most ``pairs_per_call`` pairs, in increasing image order.
        k_test: candidates re-scored per query (clamped to the number of candidates).
        pairs_per_call: upper bound on pairs per ITM call (memory bound).
        reuse_itm: score a pair found in both directions' top-k only once (``False``: once per direction, as the
            original).
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
    num_images, num_texts = sim.shape
    # The original's topk fails when k_test exceeds the candidates; re-scoring all of them is the natural meaning.
    k_i2t = min(k_test, num_texts)
    k_t2i = min(k_test, num_images)
    budget = 16 * max(pairs_per_call, k_test)  # elements of the (block x texts) working tensors
    threshold, tie_columns, tie_top = _column_thresholds(sim, k_t2i, texts, max(1, budget // num_images))
    score_i2t = sim.new_full((len(images), num_texts), float("nan"))
    score_t2i = sim.new_full((len(texts), num_images), float("nan"))
    # image blocks: every image for the text queries' candidates, only the image queries for their own top-k
    first, last = (0, num_images) if len(texts) else (images.start, images.stop)
    rows_per_block = max(1, budget // num_texts)
    for start in range(first, last, rows_per_block):
        stop = min(start + rows_per_block, last)
        member = sim[start:stop, texts.start : texts.stop] >= threshold  # (b, m): image in the text's top-k
        if tie_columns.numel():
            block_images = torch.arange(start, stop, device=sim.device)
            member[:, tie_columns] = (tie_top[None] == block_images[:, None, None]).any(dim=-1)
        q_start, q_stop = max(start, images.start), min(stop, images.stop)  # image queries inside the block
        top = sim[q_start:q_stop].topk(k_i2t, dim=1).indices if q_stop > q_start else None
        chosen = None
        if top is not None:
            chosen = torch.zeros(q_stop - q_start, num_texts, dtype=torch.bool, device=sim.device)
            chosen.scatter_(1, top, True)
        if reuse_itm:
            needed = torch.zeros(stop - start, num_texts, dtype=torch.bool, device=sim.device)
            needed[:, texts.start : texts.stop] = member
            if chosen is not None:
                needed[q_start - start : q_stop - start] |= chosen
            i2t_logits = t2i_logits = _block_logits(needed, start, 0, itm_score_fn, pairs_per_call, sim)
            t2i_logits = t2i_logits[:, texts.start : texts.stop]
            i2t_logits = i2t_logits[q_start - start : q_stop - start]
        else:
            i2t_logits = None
            if chosen is not None:
                i2t_logits = _block_logits(chosen, q_start, 0, itm_score_fn, pairs_per_call, sim)
            t2i_logits = _block_logits(member, start, texts.start, itm_score_fn, pairs_per_call, sim)
        if chosen is not None:
            score_i2t[q_start - images.start : q_stop - images.start] = i2t_logits.masked_fill(~chosen, float("nan"))
        if len(texts):
            score_t2i[:, start:stop] = t2i_logits.masked_fill(~member, float("nan")).t()
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


PairLogitsFn = Callable[[Any, torch.Tensor, torch.Tensor, "int | None"], torch.Tensor]
"""``pair_logits(images, image_slot (P,), text_index (P,), length) -> (P,)``: the ITM "match" logit of pair ``p`` =
(image ``image_slot[p]`` of the call's distinct images, text ``text_index[p]`` cut to its first ``length`` tokens;
``None``: uncut, so ``ids[rows, :length]`` works either way).
``images`` is what ``prepare(unique_images (U,))`` returned for the call (by default ``unique_images`` itself: the
indices of the call's distinct images in the whole set)."""


def length_bucketed_scorer(
    pair_logits: PairLogitsFn,
    attention_mask: torch.Tensor | None,
    buckets: int = 4,
    prepare: Callable[[torch.Tensor], Any] | None = None,
) -> ItmScoreFn:
    """An :data:`ItmScoreFn` that prepares the distinct images of each call once and cuts text padding.

    The pairs of a call are sorted by text length and split into ``buckets`` groups; each group runs with its texts
    cut to the group's longest one (right padding only: the cut columns are masked out anyway, so the logits are
    those of the full-length texts up to float rounding). The original pads every text to ``max_length`` (35) for
    ITM; COCO captions average about 14 tokens.

    Args:
        pair_logits: see :data:`PairLogitsFn`.
        attention_mask: ``(M, L)`` 0/1 mask of all texts; ``None`` or a mask that is not right-padded disables the
            cut (every group keeps ``L`` tokens).
        buckets: length groups per call (1: sort nothing, cut to the call's longest text).
        prepare: ``prepare(unique (U,)) -> images`` once per call, shared by its groups (e.g. move the distinct
            images to the device and project their cross-attention keys/values once).
    """
    lengths = None
    if attention_mask is not None:
        lengths = attention_mask.sum(dim=1)
        right_padded = torch.equal(
            attention_mask.bool(),
            torch.arange(attention_mask.shape[1], device=attention_mask.device)[None, :] < lengths[:, None],
        )
        if not right_padded:
            lengths = None

    def score(image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        unique, slot = torch.unique(image_index, return_inverse=True)
        images = unique if prepare is None else prepare(unique)
        if lengths is None:
            return pair_logits(images, slot, text_index, None)
        pair_lengths = lengths[text_index.to(lengths.device)].to(text_index.device)
        order = pair_lengths.argsort(stable=True)
        out: torch.Tensor | None = None
        for part in order.tensor_split(min(buckets, order.numel())):
            logits = pair_logits(images, slot[part], text_index[part], int(pair_lengths[part].max()))
            if out is None:
                out = logits.new_empty(order.numel())
            out[part.to(out.device)] = logits
        return out

    return score
