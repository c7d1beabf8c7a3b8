"""Image-text matching (ITM): hard-negative mining and the matching loss, as in ALBEF and BLIP.

For every text a negative image is drawn from the batch with probability growing with the
image-text similarity, and for every image a negative text likewise; pairs that are positives
(the diagonal, or the same image id) are never drawn. The ITM head then sees
``[positives (N); (text, negative image) (N); (image, negative text) (N)]`` with labels
``[1]*N + [0]*2N`` (column 1 of the logits means "match").

Sampling weights in the originals (``torch.multinomial`` normalises the weights per row, so only their
ratios matter):

* BLIP pretraining: ``softmax(sim) + 1e-4``, positives zeroed -> ``epsilon=1e-4``.
* BLIP retrieval, ALBEF pretraining and ALBEF retrieval: ``softmax(sim)`` restricted to the negatives
  -> ``epsilon=0`` (ALBEF retrieval adds its 1e-4 *inside* the softmax, which changes nothing).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["HardNegatives", "hard_negative_weights", "itm_labels", "itm_loss", "sample_hard_negatives"]


class HardNegatives(NamedTuple):
    """Indices drawn by :func:`sample_hard_negatives`.

    Attributes:
        image_for_text: ``(N,)`` index of the negative image paired with text ``i``.
        text_for_image: ``(N,)`` index of the negative text paired with image ``i``.
    """

    image_for_text: torch.Tensor
    text_for_image: torch.Tensor


def _positive_mask(
    num_rows: int, num_cols: int, idx: torch.Tensor | None, idx_candidates: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    if idx is None:
        if num_rows != num_cols:
            raise ValueError(
                f"without ids the positives are the diagonal, which needs a square similarity; got ({num_rows}, "
                f"{num_cols}). Pass idx and idx_candidates, or slice sim[:, :batch_size]"
            )
        return torch.eye(num_rows, dtype=torch.bool, device=device)
    idx = idx.reshape(-1).to(device)
    idx_candidates = idx if idx_candidates is None else idx_candidates.reshape(-1).to(device)
    if idx.numel() != num_rows or idx_candidates.numel() != num_cols:
        raise ValueError(
            f"similarity is ({num_rows}, {num_cols}) but got {idx.numel()} row ids and {idx_candidates.numel()} "
            "candidate ids; pass one id per row and per column"
        )
    return idx[:, None] == idx_candidates[None, :]


def hard_negative_weights(
    sim: torch.Tensor,
    idx: torch.Tensor | None = None,
    idx_candidates: torch.Tensor | None = None,
    epsilon: float = 0.0,
) -> torch.Tensor:
    """Per-row sampling weights for hard negatives; positives get weight 0.

    Args:
        sim: ``(N, M)`` similarity logits (already divided by the temperature).
        idx: ``(N,)`` ids of the rows; ``None`` makes the diagonal the only positives (``M == N``).
        idx_candidates: ``(M,)`` ids of the columns; defaults to ``idx``.
        epsilon: added to the softmax before zeroing the positives (1e-4 in BLIP pretraining).

    Returns:
        ``(N, M)`` float32 weights, each row a distribution over the negatives.

    Raises:
        ValueError: when a row has no negative (every candidate shares its id).
    """
    if sim.dim() != 2:
        raise ValueError(f"sim must be (N, M); got shape {tuple(sim.shape)}")
    with torch.no_grad():
        positives = _positive_mask(sim.shape[0], sim.shape[1], idx, idx_candidates, sim.device)
        no_negative = positives.all(dim=1)
        if bool(no_negative.any()):  # one host sync per step, instead of one per row in the original
            row = int(no_negative.nonzero()[0, 0])
            raise ValueError(
                f"row {row} has no negative to sample: every candidate in the batch has its id. ITM needs at least "
                "two different images per batch; shuffle the data or enlarge the batch"
            )
        sim = sim.detach().float()
        if epsilon == 0.0:
            # Softmax over the negatives only: the same distribution as softmax-then-zero, without the
            # underflow to an all-zero row when the positive dominates.
            weights = F.softmax(sim.masked_fill(positives, float("-inf")), dim=1)
        else:
            weights = (F.softmax(sim, dim=1) + epsilon).masked_fill(positives, 0.0)
            weights = weights / weights.sum(dim=1, keepdim=True)
    return weights


def sample_hard_negatives(
    sim_i2t: torch.Tensor,
    sim_t2i: torch.Tensor,
    idx: torch.Tensor | None = None,
    epsilon: float = 0.0,
    generator: torch.Generator | None = None,
) -> HardNegatives:
    """Draws one hard negative text per image and one hard negative image per text (all rows at once).

    Args:
        sim_i2t: ``(N, N)`` image-to-text similarities of the batch (e.g. ``itc.sim_i2t[:, :N]``).
        sim_t2i: ``(N, N)`` text-to-image similarities of the batch.
        idx: ``(N,)`` image ids; same-id pairs are positives and never drawn. ``None``: the diagonal.
        epsilon: see :func:`hard_negative_weights`.
        generator: a ``torch.Generator`` on ``sim``'s device for reproducible draws.

    Returns:
        :class:`HardNegatives` with ``image_for_text (N,)`` and ``text_for_image (N,)`` long indices.
    """
    if sim_i2t.dim() != 2 or sim_i2t.shape[0] != sim_i2t.shape[1] or sim_t2i.shape != sim_i2t.shape:
        raise ValueError(
            f"sim_i2t and sim_t2i must both be square (N, N) batch similarities; got {tuple(sim_i2t.shape)} and "
            f"{tuple(sim_t2i.shape)} (slice the queue columns off: sim[:, :batch_size])"
        )
    weights_t2i = hard_negative_weights(sim_t2i, idx, epsilon=epsilon)
    weights_i2t = hard_negative_weights(sim_i2t, idx, epsilon=epsilon)
    image_for_text = torch.multinomial(weights_t2i, 1, generator=generator).squeeze(1)
    text_for_image = torch.multinomial(weights_i2t, 1, generator=generator).squeeze(1)
    return HardNegatives(image_for_text=image_for_text, text_for_image=text_for_image)


def itm_labels(batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Labels ``(3 * batch_size,)`` of ``[positives; text+negative image; image+negative text]``: ``[1]*N + [0]*2N``."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; got {batch_size}")
    labels = torch.zeros(3 * batch_size, dtype=torch.long, device=device)
    labels[:batch_size] = 1
    return labels


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the ITM head (column 1 = match).

    Args:
        logits: ``(K, 2)``.
        labels: ``(K,)`` in ``{0, 1}``.

    Returns:
        ``()`` mean loss.
    """
    if logits.dim() != 2 or logits.shape[1] != 2:
        raise ValueError(f"ITM logits must be (K, 2); got shape {tuple(logits.shape)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"ITM labels must be ({logits.shape[0]},) to match the logits; got {tuple(labels.shape)}")
    return F.cross_entropy(logits, labels.to(device=logits.device, dtype=torch.long))
