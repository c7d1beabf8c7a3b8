"""``ModelOutput`` dataclasses shared by the vl_hub heads (BLIP, ALBEF, ALPRO, ...).

Every field is optional (``None`` when the head did not compute it); ``loss`` comes first so that
``transformers.Trainer`` finds it at ``outputs[0]`` / ``outputs["loss"]``. Heads with outputs of their own
define them in their module with generic names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

__all__ = [
    "ImageTextFeatures",
    "ImageTextMatchingOutput",
    "ImageTextRetrievalOutput",
    "RetrievalScores",
]


@dataclass
class ImageTextFeatures(ModelOutput):
    """Unimodal and multimodal features (LAVIS ``BlipOutputFeatures`` / ``AlbefOutputFeatures``).

    Attributes:
        loss: ``()`` in-batch contrastive loss, when asked for (``return_loss=True``).
        image_embeds: ``(B, 1+N, D)`` every vision-encoder token (video: ``(B, T*(1+N), D)``, frames concatenated).
        image_embeds_proj: ``(B, 1+N, E)`` ``vision_proj`` of every token, L2-normalised per token.
        text_embeds: ``(B, L, H)`` unimodal text-encoder states (``[CLS]`` first).
        text_embeds_proj: ``(B, L, E)`` ``text_proj`` of every token, L2-normalised per token.
        multimodal_embeds: ``(B, L, H)`` image-grounded text-encoder states (``[ENC]`` first for BLIP).
        image_feat: ``(B, E)`` the normalised projected image CLS feature used for ITC (video: frame mean).
        text_feat: ``(B, E)`` the normalised projected text CLS feature used for ITC.
    """

    loss: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    image_embeds_proj: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    text_embeds_proj: torch.Tensor | None = None
    multimodal_embeds: torch.Tensor | None = None
    image_feat: torch.Tensor | None = None
    text_feat: torch.Tensor | None = None


@dataclass
class ImageTextMatchingOutput(ModelOutput):
    """Inference outputs of an image-text matching / retrieval head.

    Attributes:
        itm_logits: ``(B, 2)`` ITM logits of the pairs ``(image b, text b)``; column 1 means "match".
        itc_sim: ``(N_images, N_texts)`` cosine similarity of the projected CLS features (no temperature).
        image_embeds: ``(B, 1+N, D)`` vision-encoder tokens.
        image_feat: ``(N_images, E)`` normalised image features (ITC).
        text_feat: ``(N_texts, E)`` normalised text features (ITC).
    """

    itm_logits: torch.Tensor | None = None
    itc_sim: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    image_feat: torch.Tensor | None = None
    text_feat: torch.Tensor | None = None


@dataclass
class ImageTextRetrievalOutput(ModelOutput):
    """Training output of a retrieval head (ITC with momentum distillation + ITM with hard negatives).

    Attributes:
        loss: ``()`` ``loss_itc + loss_itm``.
        loss_itc: ``()`` image-text contrastive loss (LAVIS ``loss_ita``).
        loss_itm: ``()`` image-text matching loss over ``[positives; text+hard image; image+hard text]``.
        sim_i2t: ``(B, B + Q)`` image-to-text ITC logits (divided by the temperature; batch then queue).
        sim_t2i: ``(B, B + Q)`` text-to-image ITC logits.
        itm_logits: ``(3B, 2)`` ITM logits of ``[positives; text+hard image; image+hard text]``.
        itm_labels: ``(3B,)`` ``[1]*B + [0]*2B``.
    """

    loss: torch.Tensor | None = None
    loss_itc: torch.Tensor | None = None
    loss_itm: torch.Tensor | None = None
    sim_i2t: torch.Tensor | None = None
    sim_t2i: torch.Tensor | None = None
    itm_logits: torch.Tensor | None = None
    itm_labels: torch.Tensor | None = None


@dataclass
class RetrievalScores(ModelOutput):
    """Retrieval score matrices (LAVIS ``compute_sim_matrix``): ITM + ITC on each query's top-k, -100 elsewhere.

    Attributes:
        score_i2t: ``(N_images, N_texts)``.
        score_t2i: ``(N_texts, N_images)``.
        sim: ``(N_images, N_texts)`` the ITC similarity the top-k were chosen from.
    """

    score_i2t: torch.Tensor | None = None
    score_t2i: torch.Tensor | None = None
    sim: torch.Tensor | None = None
