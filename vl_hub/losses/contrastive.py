"""Image-text contrastive losses: ALBEF/BLIP ITC with feature queues and momentum distillation, CLIP.

The ALBEF/BLIP recipe (LAVIS ``albef_pretrain``, ``albef_retrieval``, ``blip_pretrain``,
``blip_retrieval``) compares each L2-normalised image feature with every text key of the batch and of
a queue of past keys (and vice versa)::

    text_keys_all  = cat([text_feat_m or text_feat, text_queue.T])      # (N + Q, D)
    sim_i2t        = image_feat @ text_keys_all.T / temp                 # (N, N + Q)
    targets_i2t    = alpha * softmax(sim_i2t_m) + (1 - alpha) * hard_targets
    loss_i2t       = mean_rows(-sum(log_softmax(sim_i2t) * targets_i2t))
    loss           = (loss_i2t + loss_t2i) / 2

``hard_targets`` put 1 on the diagonal (pretraining), or spread 1 uniformly over every key that has
the same image id as the row (retrieval fine-tuning, where one image has several captions).

Queues are plain buffers of shape ``(D, Q)`` (ids: ``(1, Q)``) owned by the model; the helpers here
write into them and move the pointer. Gathering features across processes before enqueueing
(LAVIS's ``concat_all_gather``) is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "ContrastiveOutput",
    "clamp_temperature_",
    "clip_logits",
    "clip_loss",
    "concat_queue",
    "contrastive_targets",
    "dequeue_and_enqueue_",
    "distill_alpha",
    "enqueue_",
    "image_text_contrastive_loss",
    "momentum_update_",
    "soft_cross_entropy",
]


class ContrastiveOutput(NamedTuple):
    """What :func:`image_text_contrastive_loss` computed.

    Attributes:
        loss: ``()`` mean of the two directions.
        loss_i2t: ``()`` image-to-text term.
        loss_t2i: ``()`` text-to-image term.
        sim_i2t: ``(N, N + Q)`` image-to-text logits (already divided by ``temp``).
        sim_t2i: ``(N, N + Q)`` text-to-image logits.
        targets_i2t: ``(N, N + Q)`` soft targets of the image-to-text term (rows sum to 1).
        targets_t2i: ``(N, N + Q)`` soft targets of the text-to-image term.
    """

    loss: torch.Tensor
    loss_i2t: torch.Tensor
    loss_t2i: torch.Tensor
    sim_i2t: torch.Tensor
    sim_t2i: torch.Tensor
    targets_i2t: torch.Tensor
    targets_t2i: torch.Tensor


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``mean over rows of -sum(log_softmax(logits) * targets)``.

    Args:
        logits: ``(N, M)``.
        targets: ``(N, M)``, each row a probability distribution.

    Returns:
        ``()`` the loss.
    """
    if logits.shape != targets.shape or logits.dim() != 2:
        raise ValueError(
            f"soft_cross_entropy needs logits and targets of the same 2-D shape (N, M); got logits "
            f"{tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    return -(F.log_softmax(logits, dim=1) * targets).sum(dim=1).mean()


def contrastive_targets(
    num_rows: int,
    num_cols: int,
    idx: torch.Tensor | None = None,
    idx_all: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Hard contrastive targets ``(num_rows, num_cols)``, each row summing to 1.

    Without ids: one-hot on the diagonal (row ``i`` matches column ``i``; the queue columns that
    follow the batch are all negatives). With ids: ``pos = idx[:, None] == idx_all[None, :]``
    normalised per row, so every caption of the same image is a positive (BLIP/ALBEF retrieval).

    Args:
        num_rows: batch size ``N``.
        num_cols: number of keys ``M >= N`` (batch first, then the queue).
        idx: ``(N,)`` integer ids of the rows, or ``None``.
        idx_all: ``(M,)`` ids of the keys; its first ``N`` entries must be ``idx`` so that every
            row has at least itself as a positive (build it with :func:`concat_queue`).
        device, dtype: of the result (ignored for ``device`` when ``idx`` is given).
    """
    if num_cols < num_rows:
        raise ValueError(f"contrastive targets need num_cols >= num_rows; got {num_rows} rows, {num_cols} columns")
    if idx is None:
        targets = torch.zeros(num_rows, num_cols, device=device, dtype=dtype)
        targets.fill_diagonal_(1.0)
        return targets
    if idx_all is None:
        raise ValueError("contrastive_targets got idx but no idx_all; pass idx_all = concat_queue(idx, idx_queue)")
    idx = idx.reshape(-1)
    idx_all = idx_all.reshape(-1)
    if idx.numel() != num_rows or idx_all.numel() != num_cols:
        raise ValueError(
            f"contrastive_targets expected idx of {num_rows} and idx_all of {num_cols} ids; got "
            f"{idx.numel()} and {idx_all.numel()}"
        )
    positives = (idx[:, None] == idx_all[None, :]).to(dtype)
    # The batch block of idx_all is idx itself, so the diagonal is always positive and no row sums to 0.
    return positives / positives.sum(dim=1, keepdim=True)


def concat_queue(batch: torch.Tensor, queue: torch.Tensor | None) -> torch.Tensor:
    """Keys of the batch followed by the keys stored in a queue.

    Args:
        batch: ``(N, D)`` features or ``(N,)`` ids.
        queue: ``(D, Q)`` feature queue or ``(1, Q)`` / ``(Q,)`` id queue, or ``None`` (no queue).

    Returns:
        ``(N + Q, D)`` features or ``(N + Q,)`` ids.
    """
    if queue is None:
        return batch
    if batch.dim() == 1:
        return torch.cat([batch, queue.reshape(-1).to(batch.dtype)], dim=0)
    if batch.dim() != 2 or queue.dim() != 2 or queue.shape[0] != batch.shape[1]:
        raise ValueError(
            f"concat_queue needs batch (N, D) and queue (D, Q) with the same D; got batch "
            f"{tuple(batch.shape)} and queue {tuple(queue.shape)}"
        )
    return torch.cat([batch, queue.t().to(batch.dtype)], dim=0)


def _check_features(name: str, feat: torch.Tensor, like: torch.Tensor) -> None:
    if feat.shape != like.shape:
        raise ValueError(
            f"{name} must have the shape of image_feat {tuple(like.shape)} (N, D); got {tuple(feat.shape)}"
        )


def image_text_contrastive_loss(
    image_feat: torch.Tensor,
    text_feat: torch.Tensor,
    temp: torch.Tensor | float,
    *,
    image_feat_m: torch.Tensor | None = None,
    text_feat_m: torch.Tensor | None = None,
    image_queue: torch.Tensor | None = None,
    text_queue: torch.Tensor | None = None,
    idx: torch.Tensor | None = None,
    idx_queue: torch.Tensor | None = None,
    alpha: float = 0.0,
) -> ContrastiveOutput:
    """ALBEF/BLIP image-text contrastive (ITC) loss, optionally with queues and momentum distillation.

    The keys are the momentum features when given (LAVIS always compares the online features with the
    momentum keys), else the online features themselves (plain in-batch contrastive loss), followed by
    the queue. With ``alpha > 0`` the targets mix in ``softmax`` of the momentum similarities
    (computed without gradient). ``alpha = 0`` gives exactly the plain loss.

    Args:
        image_feat: ``(N, D)`` L2-normalised image features (online encoder).
        text_feat: ``(N, D)`` L2-normalised text features (online encoder).
        temp: temperature (scalar tensor, learnable in LAVIS, or float); see :func:`clamp_temperature_`.
        image_feat_m: ``(N, D)`` momentum image features, or ``None``.
        text_feat_m: ``(N, D)`` momentum text features, or ``None``.
        image_queue: ``(D, Q)`` queue of past image keys, or ``None``.
        text_queue: ``(D, Q)`` queue of past text keys, or ``None``.
        idx: ``(N,)`` image ids (positives = same id), or ``None`` for one-hot diagonal targets.
        idx_queue: ``(1, Q)`` or ``(Q,)`` ids of the queued keys; required with ``idx`` and queues.
        alpha: weight of the momentum-distillation targets, in ``[0, 1]`` (ramp it with
            :func:`distill_alpha`); ``> 0`` needs ``image_feat_m`` and ``text_feat_m``.

    Returns:
        :class:`ContrastiveOutput` with the loss, both terms, the logits and the targets.
    """
    if image_feat.dim() != 2:
        raise ValueError(f"image_feat must be (N, D); got shape {tuple(image_feat.shape)}")
    _check_features("text_feat", text_feat, image_feat)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    if (image_feat_m is None) != (text_feat_m is None):
        raise ValueError("pass both image_feat_m and text_feat_m (momentum features) or neither")
    if alpha > 0 and image_feat_m is None:
        raise ValueError(
            f"momentum distillation (alpha={alpha}) needs image_feat_m and text_feat_m; pass them or set alpha=0"
        )
    if (image_queue is None) != (text_queue is None):
        raise ValueError("pass both image_queue and text_queue or neither")
    if image_feat_m is not None:
        _check_features("image_feat_m", image_feat_m, image_feat)
        _check_features("text_feat_m", text_feat_m, image_feat)
    if idx is not None and image_queue is not None and idx_queue is None:
        raise ValueError("idx with queues needs idx_queue (the ids of the queued keys, shape (1, Q))")
    if image_queue is not None and image_queue.shape != text_queue.shape:
        raise ValueError(
            f"image_queue and text_queue must have the same (D, Q) shape; got {tuple(image_queue.shape)} and "
            f"{tuple(text_queue.shape)}"
        )

    num = image_feat.shape[0]
    if image_feat_m is not None:
        image_keys, text_keys = image_feat_m.detach(), text_feat_m.detach()
    else:
        # No momentum encoder: the batch keys are the online features and carry gradient.
        image_keys, text_keys = image_feat, text_feat
    image_keys_all = concat_queue(image_keys, None if image_queue is None else image_queue.detach())
    text_keys_all = concat_queue(text_keys, None if text_queue is None else text_queue.detach())

    sim_i2t = image_feat @ text_keys_all.t() / temp
    sim_t2i = text_feat @ image_keys_all.t() / temp

    with torch.no_grad():
        idx_all = None
        if idx is not None:
            idx = idx.reshape(-1).to(sim_i2t.device)
            if idx.numel() != num:
                raise ValueError(f"idx must hold one id per row ({num}); got {idx.numel()}")
            idx_all = concat_queue(idx, None if image_queue is None else idx_queue.to(idx.device))
        targets = contrastive_targets(
            num, sim_i2t.shape[1], idx, idx_all, device=sim_i2t.device, dtype=sim_i2t.dtype
        )
        targets_i2t = targets_t2i = targets
        if alpha > 0:
            sim_i2t_m = image_feat_m @ text_keys_all.t() / temp
            sim_t2i_m = text_feat_m @ image_keys_all.t() / temp
            targets_i2t = alpha * F.softmax(sim_i2t_m, dim=1) + (1 - alpha) * targets
            targets_t2i = alpha * F.softmax(sim_t2i_m, dim=1) + (1 - alpha) * targets

    loss_i2t = soft_cross_entropy(sim_i2t, targets_i2t)
    loss_t2i = soft_cross_entropy(sim_t2i, targets_t2i)
    return ContrastiveOutput(
        loss=(loss_i2t + loss_t2i) / 2,
        loss_i2t=loss_i2t,
        loss_t2i=loss_t2i,
        sim_i2t=sim_i2t,
        sim_t2i=sim_t2i,
        targets_i2t=targets_i2t,
        targets_t2i=targets_t2i,
    )


def enqueue_(queue: torch.Tensor, keys: torch.Tensor, ptr: int) -> int:
    """Writes ``keys`` into ``queue`` in place at column ``ptr`` and returns the next pointer.

    Args:
        queue: ``(D, Q)`` feature queue, or ``(1, Q)`` id queue.
        keys: ``(N, D)`` features, or ``(N,)`` ids (already gathered across processes).
        ptr: current write position, ``0 <= ptr < Q``.

    Returns:
        ``(ptr + N) % Q``.

    Raises:
        ValueError: when ``Q`` is not a multiple of ``N`` (as the original asserts), when the keys
        would run past the end of the queue, or when the shapes disagree.
    """
    if queue.dim() != 2:
        raise ValueError(f"queue must be (D, Q) (ids: (1, Q)); got shape {tuple(queue.shape)}")
    if keys.dim() == 1:
        keys = keys[:, None]
    size = queue.shape[1]
    num = keys.shape[0]
    if keys.dim() != 2 or keys.shape[1] != queue.shape[0]:
        raise ValueError(
            f"keys of shape {tuple(keys.shape)} do not fit queue {tuple(queue.shape)}; keys must be (N, D) with "
            f"D = {queue.shape[0]}"
        )
    if num == 0 or size % num != 0:
        raise ValueError(
            f"queue size {size} is not a multiple of the (global) batch size {num}; choose queue_size divisible "
            "by batch_size * world_size, or drop the last incomplete batch (drop_last=True)"
        )
    ptr = int(ptr)
    if not 0 <= ptr < size or ptr + num > size:
        raise ValueError(
            f"cannot write {num} keys at pointer {ptr} of a queue of {size}; the pointer must be a multiple of the "
            "batch size (did the batch size change between steps?)"
        )
    with torch.no_grad():
        queue[:, ptr : ptr + num] = keys.t().to(queue.dtype)
    return (ptr + num) % size


def dequeue_and_enqueue_(
    queues: Sequence[torch.Tensor], keys: Sequence[torch.Tensor], queue_ptr: torch.Tensor
) -> int:
    """Enqueues ``keys[i]`` into ``queues[i]`` for every i and advances ``queue_ptr`` (a ``(1,)`` buffer) in place.

    Args:
        queues: e.g. ``(image_queue (D, Q), text_queue (D, Q), idx_queue (1, Q))``.
        keys: matching ``(image_feat_m (N, D), text_feat_m (N, D), idx (N,))``.
        queue_ptr: ``(1,)`` long buffer holding the write position.

    Returns:
        The new pointer.
    """
    if len(queues) != len(keys) or not queues:
        raise ValueError(f"need one keys tensor per queue; got {len(queues)} queues and {len(keys)} keys")
    sizes = {q.shape[1] for q in queues}
    if len(sizes) != 1:
        raise ValueError(f"all queues must have the same length Q; got {sorted(sizes)}")
    ptr = int(queue_ptr.reshape(-1)[0])  # one host sync per training step, as in the original
    new_ptr = ptr
    for queue, key in zip(queues, keys):
        new_ptr = enqueue_(queue, key, ptr)
    queue_ptr.reshape(-1)[0] = new_ptr
    return new_ptr


def clamp_temperature_(temp: torch.Tensor, min_value: float = 0.001, max_value: float = 0.5) -> torch.Tensor:
    """Clamps the learnable temperature in place without recording gradient (LAVIS: ``temp.clamp_(0.001, 0.5)``).

    Returns:
        ``temp`` itself.
    """
    with torch.no_grad():
        temp.clamp_(min_value, max_value)
    return temp


def distill_alpha(alpha: float, epoch: int, iters: int, num_iters_per_epoch: int) -> float:
    """Momentum-distillation weight ramped up linearly over the first two epochs (LAVIS ``_rampup_factor``).

    Returns:
        ``alpha * min(1, (epoch * num_iters_per_epoch + iters) / (2 * num_iters_per_epoch))``.
    """
    if num_iters_per_epoch <= 0:
        raise ValueError(f"num_iters_per_epoch must be positive; got {num_iters_per_epoch}")
    return alpha * min(1.0, (epoch * num_iters_per_epoch + iters) / (2 * num_iters_per_epoch))


def distill_weight(alpha: float | None, default: float, use_distill: bool = True) -> float:
    """This step's momentum-distillation weight: ``alpha`` (``None``: ``default``, the config's), 0 without distillation.

    Raises:
        ValueError: ``alpha`` outside ``[0, 1]``.
    """
    alpha = default if alpha is None else float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} is out of range; the distillation weight must be in [0, 1]")
    return alpha if use_distill else 0.0


def momentum_update_(
    params: Iterable[torch.Tensor], params_m: Iterable[torch.Tensor], momentum: float
) -> None:
    """Exponential moving average ``p_m = momentum * p_m + (1 - momentum) * p`` in place, for all pairs at once.

    Args:
        params: parameters of the online model.
        params_m: the matching parameters of the momentum model (same order and shapes).
        momentum: e.g. 0.995.
    """
    params = [p.detach() for p in params]
    params_m = [p.detach() for p in params_m]
    if len(params) != len(params_m):
        raise ValueError(f"online and momentum models differ: {len(params)} vs {len(params_m)} parameters")
    if not params:
        return
    with torch.no_grad():
        torch._foreach_mul_(params_m, momentum)
        torch._foreach_add_(params_m, params, alpha=1.0 - momentum)


def clip_logits(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP logits ``logit_scale * image @ text.T`` and its transpose direction.

    Args:
        image_embeds: ``(N, D)`` L2-normalised image embeddings.
        text_embeds: ``(M, D)`` L2-normalised text embeddings.
        logit_scale: the *exponentiated* scale (``model.logit_scale.exp()``).

    Returns:
        ``(logits_per_image (N, M), logits_per_text (M, N))``.
    """
    if image_embeds.dim() != 2 or text_embeds.dim() != 2 or image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(
            f"clip_logits needs image (N, D) and text (M, D) embeddings; got {tuple(image_embeds.shape)} and "
            f"{tuple(text_embeds.shape)}"
        )
    logits_per_image = logit_scale * image_embeds @ text_embeds.t()
    logits_per_text = logit_scale * text_embeds @ image_embeds.t()
    return logits_per_image, logits_per_text


def clip_loss(logits_per_image: torch.Tensor, logits_per_text: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP symmetric cross-entropy (``ClipLoss`` with ``world_size=1``): pair ``i`` is the positive of row ``i``.

    Args:
        logits_per_image: ``(N, N)``.
        logits_per_text: ``(N, N)``; defaults to ``logits_per_image.T``.

    Returns:
        ``()`` ``(CE(logits_per_image, arange) + CE(logits_per_text, arange)) / 2``.
    """
    if logits_per_image.dim() != 2 or logits_per_image.shape[0] != logits_per_image.shape[1]:
        raise ValueError(
            f"clip_loss needs square (N, N) logits (one text per image); got {tuple(logits_per_image.shape)}"
        )
    if logits_per_text is None:
        logits_per_text = logits_per_image.t()
    elif logits_per_text.shape != logits_per_image.shape:
        raise ValueError(
            f"logits_per_text {tuple(logits_per_text.shape)} must have the shape of logits_per_image "
            f"{tuple(logits_per_image.shape)}"
        )
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
