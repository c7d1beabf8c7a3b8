"""Pieces shared by the BLIP and ALBEF image-text classification heads: NLVR2 (two images + text) and visual
entailment / image-text classification (LAVIS ``blip_nlvr.py``, ``blip_classification.py``, ``albef_nlvr.py``,
``albef_classification.py``).

Every one of these heads reads the image-grounded text encoder at position 0 through ``cls_head`` =
``Linear -> ReLU -> Linear`` (:func:`build_classifier_head`), validates its labels with :func:`check_class_labels`
and returns an :class:`ImageTextClassificationOutput`; the NLVR heads take their image pairs through
:func:`image_pair`, and the heads that distil from momentum copies share :class:`ClassifierMomentumMixin`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from vl_hub.layers.med import CrossAttentionFactory
from vl_hub.losses import soft_cross_entropy
from vl_hub.models._momentum import MomentumMixin

__all__ = [
    "NLVR_ID2LABEL",
    "NLVR_NUM_LABELS",
    "ClassifierMomentumMixin",
    "ImageTextClassificationOutput",
    "build_classifier_head",
    "check_class_labels",
    "classification_output",
    "classify",
    "image_pair",
    "pair_image_embeds",
]

NLVR_NUM_LABELS = 2
"""NLVR2 is binary: label 1 means the sentence is true of the image pair."""

NLVR_ID2LABEL: Mapping[int, str] = {0: "False", 1: "True"}
"""Names of the NLVR2 labels, for error messages."""


@dataclass
class ImageTextClassificationOutput(ModelOutput):
    """Output of the BLIP and ALBEF classification heads (NLVR, visual entailment).

    Attributes:
        loss: ``()`` cross-entropy (mixed with the distillation term when distilling); only with ``labels``.
        logits: ``(B, num_labels)`` class scores.
        logits_m: ``(B, num_labels)`` momentum-model scores (distillation training steps only).
        encoder_last_hidden_state: ``(B, L, H)`` image-grounded text encoder output (position 0 feeds ``cls_head``).
        image_embeds: ViT tokens: ``(B, 1+N, D)`` (classification) or
            ``(B, 2, 1+N, D)`` (NLVR: the two images of each example).
        hidden_states: the text encoder's per-layer states (``output_hidden_states=True``).
        attentions: the text encoder's self-attention probabilities (``output_attentions=True``).
        cross_attentions: cross-attention probabilities per layer; for BLIP NLVR ``(B, 2, heads, L, 1+N)`` (one per
            image).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    logits_m: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    image_embeds: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor | None, ...] | None = None


def build_classifier_head(config: Any, num_labels: int) -> nn.Sequential:
    """``Linear(H, C_h) -> ReLU -> Linear(C_h, num_labels)`` with ``C_h = config.classifier_hidden_size or H``.

    ``config`` is a BLIP or ALBEF config; ``H`` is its text hidden size. The module indices (``0``, ``2``) are
    LAVIS's ``cls_head`` names.
    """
    hidden = config.text_config.hidden_size
    inner = config.classifier_hidden_size or hidden
    return nn.Sequential(nn.Linear(hidden, inner), nn.ReLU(), nn.Linear(inner, num_labels))


def check_class_labels(
    labels: torch.Tensor, num_labels: int, batch_size: int, id2label: Mapping[int, str] | None = None
) -> torch.Tensor:
    """Validates ``labels: (B,)`` integer class indices in ``[0, num_labels)``; returns them as ``long``.

    The error names the valid labels (with their names from ``id2label``) and the value received.
    """
    valid = ", ".join(
        f"{i} ({id2label[i]})" if id2label is not None and i in id2label else str(i) for i in range(num_labels)
    )
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != batch_size:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(
            f"labels must be a (batch={batch_size},) tensor of class indices, got {shape}; valid labels: {valid}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be integer class indices (not {labels.dtype} scores or one-hot rows); valid labels: {valid}"
        )
    if labels.numel():
        low, high = torch.aminmax(labels)  # one host sync per step
        low, high = int(low), int(high)
        if low < 0 or high >= num_labels:
            bad = low if low < 0 else high
            raise ValueError(f"label {bad} is out of range; valid labels: {valid}")
    return labels.long()


def image_pair(
    pixel_values: torch.Tensor | None,
    pixel_values_0: torch.Tensor | None,
    pixel_values_1: torch.Tensor | None,
    check_images: Callable[[torch.Tensor, str], torch.Tensor],
) -> tuple[torch.Tensor, int]:
    """Both images of every example as one ViT batch ``(2B, 3, H, W)``: all first images, then all second ones.

    Args:
        pixel_values: ``(B, 2, 3, H, W)`` both images at once, or ``None``;
        pixel_values_0, pixel_values_1: ``(B, 3, H, W)`` the first and second images (when ``pixel_values`` is not
            given).
        check_images: the family's image check, ``check_images(images (B', 3, H, W), name) -> images``.

    Returns:
        ``(images (2B, 3, H, W), B)``.
    """
    how = "pass pixel_values of shape (batch, 2, 3, H, W) or both pixel_values_0 and pixel_values_1 (batch, 3, H, W)"
    if pixel_values is not None:
        if pixel_values_0 is not None or pixel_values_1 is not None:
            raise ValueError(f"got pixel_values and pixel_values_0/pixel_values_1; {how}, not both")
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 5 or pixel_values.shape[1] != 2:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"NLVR needs two images per example but pixel_values has shape {shape}; {how}")
        batch = pixel_values.shape[0]
        images = pixel_values.transpose(0, 1).reshape(2 * batch, *pixel_values.shape[2:])
        return check_images(images, "pixel_values"), batch
    if pixel_values_0 is None or pixel_values_1 is None:
        given = "pixel_values_0" if pixel_values_0 is not None else "pixel_values_1" if pixel_values_1 is not None else None
        got = f"only {given}" if given else "no images"
        raise ValueError(f"NLVR needs two images per example, got {got}; {how}")
    for name, images in (("pixel_values_0", pixel_values_0), ("pixel_values_1", pixel_values_1)):
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"{name} must be (batch, 3, H, W) images, got {shape}; {how}")
        check_images(images, name)
    if pixel_values_0.shape != pixel_values_1.shape:
        raise ValueError(
            f"pixel_values_0 {tuple(pixel_values_0.shape)} and pixel_values_1 {tuple(pixel_values_1.shape)} "
            "must have the same shape (one pair per example, both at the same resolution)"
        )
    return torch.cat([pixel_values_0, pixel_values_1], dim=0), pixel_values_0.shape[0]


def pair_image_embeds(image_embeds: torch.Tensor, batch: int) -> torch.Tensor:
    """The ViT tokens of an :func:`image_pair` batch, ``(2B, 1+N, D)``, per example: ``(B, 2, 1+N, D)``."""
    return image_embeds.view(2, batch, *image_embeds.shape[1:]).transpose(0, 1)


def classify(
    text_encoder: nn.Module,
    cls_head: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    encoder_hidden_states: torch.Tensor | list[torch.Tensor],
    output_attentions: bool = False,
    output_hidden_states: bool = False,
) -> tuple[Any, torch.Tensor]:
    """Runs the image-grounded text encoder and ``cls_head`` on its position-0 state.

    Args:
        text_encoder: a multimodal :class:`~vl_hub.layers.med.MedModel`.
        cls_head: ``(B, H) -> (B, num_labels)``.
        input_ids: ``(B, L)`` ids, position 0 already the family's classification token.
        attention_mask: ``(B, L)`` text padding mask or ``None``.
        encoder_hidden_states: ViT tokens ``(B, 1+N, D)``, or for NLVR a list of the two images' tokens. Every image
            token is valid (LAVIS passes all-ones masks), so no cross-attention mask is needed.
        output_attentions, output_hidden_states: return the text encoder's probabilities / states.

    Returns:
        ``(encoder output, logits (B, num_labels))``.
    """
    encoder = text_encoder(
        input_ids=input_ids,
        attention_mask=attention_mask,
        encoder_hidden_states=encoder_hidden_states,
        mode="multimodal",
        output_attentions=output_attentions,
        output_hidden_states=output_hidden_states,
    )
    return encoder, cls_head(encoder.last_hidden_state[:, 0])


def classification_output(
    encoder: Any,
    logits: torch.Tensor,
    image_embeds: torch.Tensor,
    loss: torch.Tensor | None = None,
    logits_m: torch.Tensor | None = None,
) -> ImageTextClassificationOutput:
    """Packs a :func:`classify` result: ``logits (B, num_labels)``, ``image_embeds`` as the head reports them, the
    encoder's last hidden state ``(B, L, H)``, per-layer states and attention probabilities."""
    return ImageTextClassificationOutput(
        loss=loss,
        logits=logits,
        logits_m=logits_m,
        encoder_last_hidden_state=encoder.last_hidden_state,
        image_embeds=image_embeds,
        hidden_states=encoder.hidden_states,
        attentions=encoder.attentions,
        cross_attentions=encoder.cross_attentions,
    )


class ClassifierMomentumMixin(MomentumMixin):
    """Momentum distillation of a classification head: EMA copies ``visual_encoder_m``, ``text_encoder_m``,
    ``cls_head_m`` (only with ``config.use_distill``) and the distilled loss."""

    _momentum_names: ClassVar[tuple[tuple[str, str], ...]] = (
        ("visual_encoder", "visual_encoder_m"),
        ("text_encoder", "text_encoder_m"),
        ("cls_head", "cls_head_m"),
    )
    config: Any

    def momentum_names(self) -> tuple[tuple[str, str], ...]:
        """``(online, momentum)`` submodule names; empty without ``config.use_distill``."""
        return self._momentum_names if self.config.use_distill else ()

    def _build_towers(
        self, num_labels: int, cross_attention_factory: Callable[[], CrossAttentionFactory] | None = None
    ) -> None:
        """Builds ``visual_encoder``, ``text_encoder``, ``cls_head`` (``num_labels`` outputs) and, with
        ``config.use_distill``, their momentum copies; ``cross_attention_factory()`` makes a fresh factory for each
        text encoder (default: the family's standard cross-attention)."""
        config = self.config
        new_factory = cross_attention_factory or (lambda: None)
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_encoder = self.build_text_encoder(config, new_factory())
        self.cls_head = build_classifier_head(config, num_labels)
        if config.use_distill:
            self.visual_encoder_m = self.build_vision_encoder(config)
            self.text_encoder_m = self.build_text_encoder(config, new_factory())
            self.cls_head_m = build_classifier_head(config, num_labels)

    def _loss(
        self, logits: torch.Tensor, labels: torch.Tensor, alpha: float, momentum_logits: Callable[[], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """CE, or with distillation in training mode ``(1 - alpha) * CE + alpha * CE(logits, softmax(logits_m))``;
        ``momentum_logits()`` runs the EMA step and the momentum model (LAVIS order: update first).

        Args:
            logits: ``(B, num_labels)``; labels: ``(B,)`` class indices; alpha: distillation weight in ``[0, 1]``.

        Returns:
            ``(loss (), logits_m (B, num_labels) or None)``.
        """
        loss = F.cross_entropy(logits, labels)
        if not (self.config.use_distill and self.training):
            return loss, None
        logits_m = momentum_logits()
        return (1 - alpha) * loss + alpha * soft_cross_entropy(logits, F.softmax(logits_m, dim=1)), logits_m
