"""Losses as functions of tensors: contrastive (ITC, queues, momentum distillation, CLIP), ITM, LM."""

from vl_hub.losses.contrastive import (
    ContrastiveOutput,
    clamp_temperature_,
    clip_logits,
    clip_loss,
    concat_queue,
    contrastive_targets,
    dequeue_and_enqueue_,
    distill_alpha,
    distill_weight,
    enqueue_,
    image_text_contrastive_loss,
    momentum_update_,
    soft_cross_entropy,
)
from vl_hub.losses.itm import HardNegatives, hard_negative_weights, itm_labels, itm_loss, sample_hard_negatives
from vl_hub.losses.lm import lm_loss, mask_tokens, masked_lm_loss

__all__ = [
    "ContrastiveOutput",
    "HardNegatives",
    "clamp_temperature_",
    "clip_logits",
    "clip_loss",
    "concat_queue",
    "contrastive_targets",
    "dequeue_and_enqueue_",
    "distill_alpha",
    "distill_weight",
    "enqueue_",
    "hard_negative_weights",
    "image_text_contrastive_loss",
    "itm_labels",
    "itm_loss",
    "lm_loss",
    "mask_tokens",
    "masked_lm_loss",
    "momentum_update_",
    "sample_hard_negatives",
    "soft_cross_entropy",
]
