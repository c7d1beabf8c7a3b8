"""Language-modelling losses of the BERT-based decoders and encoders (LAVIS ``med.py``), and MLM masking.

* :func:`lm_loss`: next-token loss of ``BertLMHeadModel`` (captioning, VQA answer decoding): logits at
  position ``t`` predict token ``t + 1``; label smoothing 0.1 always (also when the loss ranks VQA
  answers); ``reduction="none"`` returns the per-sequence **sum**.
* :func:`masked_lm_loss`: ``BertForMaskedLM`` (ALBEF pretraining): no shift, no label smoothing,
  optional distillation towards the momentum model's distribution.
* :func:`mask_tokens`: ALBEF's 15 % masking with the 80/10/10 rule.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["lm_loss", "mask_tokens", "masked_lm_loss"]


def _check_logits_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"expected logits (B, L, V) and labels (B, L); got logits {tuple(logits.shape)} and labels "
            f"{tuple(labels.shape)}"
        )


def lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    label_smoothing: float = 0.1,
    reduction: Literal["mean", "none"] = "mean",
    ignore_index: int = -100,
    soft_labels: torch.Tensor | None = None,
    alpha: float = 0.0,
) -> torch.Tensor:
    """Shifted next-token cross-entropy, as ``BertLMHeadModel`` computes it.

    Args:
        logits: ``(B, L, V)`` un-shifted decoder logits (position ``t`` predicts token ``t + 1``).
        labels: ``(B, L)`` token ids with ``ignore_index`` on positions without loss (padding, prompt).
        label_smoothing: 0.1 in every LAVIS decoder.
        reduction: ``"mean"`` over the non-ignored target tokens of the batch -> ``()``; ``"none"`` ->
            ``(B,)`` the **sum** over each sequence's tokens (ignored tokens add 0).
        ignore_index: label value that carries no loss.
        soft_labels: ``(B, L - 1, V)`` momentum-model distribution over the shifted positions (ALBEF VQA
            distillation), or ``None``. Needs ``reduction="none"``.
        alpha: weight of the distillation term: ``(1 - alpha) * ce + alpha * sum_t(-sum_v log p * q)``
            over the non-ignored positions.

    Returns:
        ``()`` for ``"mean"``, ``(B,)`` for ``"none"``.
    """
    _check_logits_labels(logits, labels)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none'; got {reduction!r}")
    if logits.shape[1] < 2:
        raise ValueError(f"lm_loss needs sequences of at least 2 tokens to shift; got length {logits.shape[1]}")
    batch, _, vocab = logits.shape
    shifted_logits = logits[:, :-1, :]
    shifted_labels = labels[:, 1:]
    loss = F.cross_entropy(
        shifted_logits.reshape(-1, vocab),
        shifted_labels.reshape(-1),
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    if reduction == "none":
        loss = loss.view(batch, -1).sum(dim=1)
    if soft_labels is None:
        return loss
    if reduction != "none":
        raise ValueError(
            "lm_loss with soft_labels (distillation) is defined per sequence, as in ALBEF VQA; use reduction='none'"
        )
    if soft_labels.shape != shifted_logits.shape:
        raise ValueError(
            f"soft_labels must match the shifted logits {tuple(shifted_logits.shape)} (B, L - 1, V); got "
            f"{tuple(soft_labels.shape)}"
        )
    distill = -(F.log_softmax(shifted_logits, dim=-1) * soft_labels).sum(dim=-1)
    distill = (distill * (shifted_labels != ignore_index)).sum(dim=1)
    return (1 - alpha) * loss + alpha * distill


def masked_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_labels: torch.Tensor | None = None,
    alpha: float = 0.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Masked-LM cross-entropy (no shift, no label smoothing), optionally distilled (ALBEF ``BertForMaskedLM``).

    Args:
        logits: ``(B, L, V)``.
        labels: ``(B, L)`` original ids at masked positions, ``ignore_index`` elsewhere.
        soft_labels: ``(B, L, V)`` momentum-model probabilities, or ``None``.
        alpha: ``(1 - alpha) * ce + alpha * mean over masked positions of (-sum_v log p * q)``.
        ignore_index: label value that carries no loss.

    Returns:
        ``()`` the loss (NaN when no position is masked, as the original).
    """
    _check_logits_labels(logits, labels)
    vocab = logits.shape[-1]
    loss = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1), ignore_index=ignore_index)
    if soft_labels is None:
        return loss
    if soft_labels.shape != logits.shape:
        raise ValueError(
            f"soft_labels must have the logits' shape {tuple(logits.shape)}; got {tuple(soft_labels.shape)}"
        )
    distill = -(F.log_softmax(logits, dim=-1) * soft_labels).sum(dim=-1)
    distill = distill[labels != ignore_index].mean()
    return (1 - alpha) * loss + alpha * distill


def mask_tokens(
    input_ids: torch.Tensor,
    vocab_size: int,
    mask_token_id: int,
    pad_token_id: int,
    cls_token_id: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
    ignore_index: int = -100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ALBEF masked-LM corruption (BERT's 80/10/10 rule); the inputs are not modified.

    Each token except ``[PAD]`` and ``[CLS]`` is selected with ``probability``; a selected token becomes
    ``[MASK]`` with probability 0.8, else a uniformly random id in ``[0, vocab_size)`` with probability
    0.5 (so 10 % overall), else stays (10 %).

    Args:
        input_ids: ``(B, L)`` token ids.
        vocab_size: size of the vocabulary random replacements are drawn from.
        mask_token_id, pad_token_id, cls_token_id: special ids of the tokenizer.
        probability: selection probability (0.15 in ALBEF).
        generator: ``torch.Generator`` on ``input_ids``' device for reproducible masks.
        ignore_index: label of the positions that were not selected.

    Returns:
        ``(masked_input_ids (B, L), labels (B, L))``: labels hold the original id at selected positions
        and ``ignore_index`` elsewhere.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1]; got {probability}")
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive; got {vocab_size}")
    device = input_ids.device
    shape = input_ids.shape

    def draw(p: float) -> torch.Tensor:
        return torch.bernoulli(torch.full(shape, p, device=device), generator=generator).bool()

    selected = draw(probability) & (input_ids != pad_token_id) & (input_ids != cls_token_id)
    labels = input_ids.masked_fill(~selected, ignore_index)
    to_mask = draw(0.8) & selected
    to_random = draw(0.5) & selected & ~to_mask
    random_ids = torch.randint(vocab_size, shape, device=device, generator=generator, dtype=input_ids.dtype)
    masked = input_ids.masked_fill(to_mask, mask_token_id)
    masked = torch.where(to_random, random_ids, masked)
    return masked, labels
