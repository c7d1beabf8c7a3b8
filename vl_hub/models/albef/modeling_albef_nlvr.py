"""ALBEF classification heads: NLVR2 (two images + text, LAVIS ``albef_nlvr.py``) and visual entailment / image-text
classification (LAVIS ``albef_classification.py``, SNLI-VE).

Both read the multimodal encoder at position 0 (``[CLS]``) through ``cls_head`` = ``Linear -> ReLU -> Linear``
(``cls_head.0`` / ``cls_head.2`` in checkpoints, as LAVIS); both optionally train with momentum distillation
(``config.use_distill``: EMA copies ``*_m`` give soft targets weighted by ``alpha``).

ALBEF NLVR's text encoder is the shared :class:`~vl_hub.layers.med.MedModel` with 18 layers (6 text + 12 fusion in
ALBEF-base): fusion layer ``l`` cross-attends image ``(l - fusion_layer) % 2`` (the MED layer's default when given a
list of two image states), and the cross-attention key/value projections of the layer pairs ``(k, k+1), (k+2, k+3),
...`` are one set of parameters (:func:`albef_nlvr_cross_attention_factory`), so each pair reads both images with the
same keys/values and its own queries.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from vl_hub.layers.med import (
    CrossAttentionFactory,
    MedCrossAttention,
    MedSettings,
    default_cross_attention_factory,
)
from vl_hub.losses import distill_weight
from vl_hub.models._classification import (
    NLVR_ID2LABEL,
    NLVR_NUM_LABELS,
    ClassifierMomentumMixin,
    ImageTextClassificationOutput,
    check_class_labels,
    classification_output,
    classify,
    image_pair,
    pair_image_embeds,
)
from vl_hub.models._lavis_conversion import TRAINING_STATE_PATTERNS
from vl_hub.models.albef.configuration_albef import AlbefConfig
from vl_hub.models.albef.modeling_albef import (
    AlbefPreTrainedModel,
    check_images,
)

__all__ = [
    "AUTO_CLASSES",
    "AlbefForNLVR",
    "AlbefForVisualEntailment",
    "ImageTextClassificationOutput",
    "albef_nlvr_cross_attention_factory",
    "shared_key_value_pairs",
]

AUTO_CLASSES: dict[str, tuple[str, ...]] = {
    "AlbefForNLVR": ("AutoModelForImagePairClassification",),
    "AlbefForVisualEntailment": ("AutoModelForImageTextClassification",),
}

#: state of a pre-training checkpoint that the classification heads do not have (fine-tuning starts from ALBEF.pth)
_PRETRAINING_ONLY_STATE: tuple[str, ...] = (
    r"^(vision|text)_proj(_m)?\.",
    r"^itm_head\.",
    r"^(image|text|idx)_queue$",
    r"^queue_ptr$",
    r"^temp$",
    r"^text_encoder(_m)?\.cls\.",
)


# --------------------------------------------------------------------------- NLVR cross-attention sharing


def albef_nlvr_cross_attention_factory() -> CrossAttentionFactory:
    """The :data:`~vl_hub.layers.med.CrossAttentionFactory` of ALBEF NLVR: standard cross-attention blocks, except
    that the second layer of each fusion pair ``(k + 2i, k + 2i + 1)`` reuses the first one's ``self.key`` and
    ``self.value`` modules (LAVIS ``AlbefNLVR.share_cross_attention``); queries and outputs stay per layer."""
    built: dict[int, MedCrossAttention] = {}

    def factory(settings: MedSettings, layer_idx: int) -> MedCrossAttention:
        module = default_cross_attention_factory(settings, layer_idx)
        first = settings.fusion_layer or 0
        if (layer_idx - first) % 2 == 1:
            partner = built[layer_idx - 1]
            module.self.key, module.self.value = partner.self.key, partner.self.value
        built[layer_idx] = module
        return module

    return factory


def shared_key_value_pairs(prefix: str, fusion_layer: int, num_layers: int) -> dict[str, str]:
    """``{target: source}`` parameter names of the shared NLVR cross-attention key/value (layer ``k+2i+1`` ->
    ``k+2i``) under ``prefix`` (e.g. ``"text_encoder"``), for ``_tied_weights_keys``."""
    pairs = {}
    for first in range(fusion_layer, num_layers, 2):
        for proj in ("key", "value"):
            for kind in ("weight", "bias"):
                suffix = f"crossattention.self.{proj}.{kind}"
                pairs[f"{prefix}.encoder.layer.{first + 1}.{suffix}"] = f"{prefix}.encoder.layer.{first}.{suffix}"
    return pairs


# --------------------------------------------------------------------------- shared pieces


class _AlbefClassifierMixin(ClassifierMomentumMixin):
    """Momentum bookkeeping of the two classification heads (copies only with ``config.use_distill``)."""

    config: AlbefConfig

    @classmethod
    def lavis_unused_state_for(cls, config: AlbefConfig) -> tuple[str, ...]:
        """Without ``use_distill`` the head has no momentum copies: a checkpoint's ``*_m`` are dropped."""
        return () if config.use_distill else TRAINING_STATE_PATTERNS


# --------------------------------------------------------------------------- heads


class AlbefForNLVR(_AlbefClassifierMixin, AlbefPreTrainedModel):
    """ALBEF for NLVR2 (LAVIS ``AlbefNLVR``): is the sentence true of the image pair?

    Both images go through the ViT as one batch; the text encoder (``text_config.num_hidden_layers`` layers, 18 in
    ALBEF-base with ``fusion_layer`` 6) runs its text layers on the sentence, then fusion layer ``l`` cross-attends
    image ``(l - fusion_layer) % 2`` with key/value projections shared within each layer pair; ``cls_head`` reads
    position 0 -> 2 logits.

    With ``config.use_distill`` the head keeps ``visual_encoder_m``, ``text_encoder_m``, ``cls_head_m``; a training
    forward with labels moves them one EMA step and mixes their soft predictions into the loss with weight ``alpha``.
    (LAVIS computes the momentum prediction with the *online* text encoder, an oversight; the original ALBEF code,
    followed here, uses ``text_encoder_m``.)

    Checkpoint names: ``visual_encoder.*``, ``text_encoder.*`` (both names of each shared key/value are accepted),
    ``cls_head.{0,2}.*`` (+ ``*_m``).
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = _PRETRAINING_ONLY_STATE

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__(config)
        text = config.text_config
        fusion_layers = text.num_hidden_layers - text.fusion_layer
        if fusion_layers < 2 or fusion_layers % 2:
            raise ValueError(
                f"AlbefForNLVR needs an even number (>= 2) of fusion layers to alternate the two images and share "
                f"cross-attention key/value per layer pair; got num_hidden_layers={text.num_hidden_layers} with "
                f"fusion_layer={text.fusion_layer} ({fusion_layers} fusion layers). ALBEF-base NLVR: 18 layers, "
                "fusion_layer 6"
            )
        self._build_towers(NLVR_NUM_LABELS, albef_nlvr_cross_attention_factory)
        tied = shared_key_value_pairs("text_encoder", text.fusion_layer, text.num_hidden_layers)
        if config.use_distill:
            tied.update(shared_key_value_pairs("text_encoder_m", text.fusion_layer, text.num_hidden_layers))
        # one tensor under two names: saved once, re-tied on load (transformers reads this before post_init)
        self._tied_weights_keys = tied
        self.post_init()
        self.copy_params()

    def forward(
        self,
        pixel_values_0: torch.Tensor | None = None,
        pixel_values_1: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        alpha: float | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> ImageTextClassificationOutput:
        """Scores whether each sentence holds for its image pair.

        Args:
            pixel_values_0, pixel_values_1: ``(B, 3, H, W)`` the first and second image of each example, or
            pixel_values: ``(B, 2, 3, H, W)`` both at once.
            input_ids: ``(B, L)`` tokenizer ids (``[CLS]`` first).
            attention_mask: ``(B, L)`` text padding mask (default: attend every token).
            labels: ``(B,)`` in ``{0, 1}`` (1: true); gives ``loss``.
            alpha: distillation weight for this step (``use_distill`` training; LAVIS ramps it over two epochs);
                default ``config.alpha``.
            output_attentions, output_hidden_states: return the text encoder's probabilities / states.

        Returns:
            :class:`ImageTextClassificationOutput` with ``logits (B, 2)``, ``encoder_last_hidden_state (B, L, H)``,
            ``image_embeds (B, 2, 1+N, D)`` and, with labels, ``loss`` (and ``logits_m`` when distilling).
        """
        config = self.config
        images, batch = image_pair(
            pixel_values, pixel_values_0, pixel_values_1, lambda x, name: check_images(x, config, name)
        )
        self.check_text(input_ids, attention_mask, batch_size=batch)
        if labels is not None:
            labels = check_class_labels(labels, NLVR_NUM_LABELS, batch, NLVR_ID2LABEL)
        alpha = distill_weight(alpha, self.config.alpha, self.config.use_distill)

        image_embeds = self.visual_encoder(images)
        encoder, logits = classify(
            self.text_encoder,
            self.cls_head,
            input_ids,
            attention_mask,
            [image_embeds[:batch], image_embeds[batch:]],
            output_attentions,
            output_hidden_states,
        )
        loss = logits_m = None
        if labels is not None:
            loss, logits_m = self._loss(
                logits, labels, alpha, lambda: self._momentum_logits(images, batch, input_ids, attention_mask)
            )
        return classification_output(encoder, logits, pair_image_embeds(image_embeds, batch), loss, logits_m)

    @torch.no_grad()
    def _momentum_logits(
        self, images: torch.Tensor, batch: int, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """EMA step, then the momentum model's logits ``(B, 2)`` for the ``(2B, 3, H, W)`` image batch."""
        self.momentum_update()
        image_embeds_m = self.visual_encoder_m(images)
        image_states_m = [image_embeds_m[:batch], image_embeds_m[batch:]]
        return classify(self.text_encoder_m, self.cls_head_m, input_ids, attention_mask, image_states_m)[1]


class AlbefForVisualEntailment(_AlbefClassifierMixin, AlbefPreTrainedModel):
    """ALBEF image-text classification, e.g. SNLI-VE visual entailment (LAVIS ``AlbefClassification``).

    The text encoder reads the hypothesis (``[CLS]`` first) through all layers, the fusion layers cross-attending
    the ViT tokens; ``cls_head`` maps its position-0 state to ``config.num_labels`` classes (SNLI-VE: 3,
    ``id2label = {0: "entailment", 1: "neutral", 2: "contradiction"}``, the order of ``vl_hub``'s ``snli_ve``
    dataset and of LAVIS).

    With ``config.use_distill`` the head keeps momentum copies ``visual_encoder_m``, ``text_encoder_m``,
    ``cls_head_m``; each training forward with labels first moves them one EMA step, then
    ``loss = (1 - alpha) * CE(logits, labels) + alpha * CE(logits, softmax(logits_m))``. LAVIS ramps ``alpha``
    linearly over the first epoch (pass it as ``forward(alpha=...)``; ``None`` uses ``config.alpha``).
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = _PRETRAINING_ONLY_STATE

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__(config)
        if config.num_labels < 2:
            raise ValueError(
                f"AlbefForVisualEntailment needs at least 2 classes, got num_labels={config.num_labels}; set "
                "AlbefConfig(id2label={0: 'entailment', 1: 'neutral', 2: 'contradiction'}) for SNLI-VE"
            )
        self._build_towers(config.num_labels)
        self.post_init()
        self.copy_params()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        alpha: float | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> ImageTextClassificationOutput:
        """Classifies each (image, text) pair.

        Args:
            pixel_values: ``(B, 3, H, W)`` images.
            input_ids: ``(B, L)`` tokenizer ids (``[CLS]`` first).
            attention_mask: ``(B, L)`` text padding mask (default: attend every token).
            labels: ``(B,)`` class indices in ``[0, num_labels)``; gives ``loss``.
            alpha: distillation weight in ``[0, 1]`` for this step (``use_distill`` training only); default
                ``config.alpha``.
            output_attentions, output_hidden_states: return the text encoder's probabilities / states.

        Returns:
            :class:`ImageTextClassificationOutput` with ``logits (B, num_labels)``, ``encoder_last_hidden_state``,
            ``image_embeds``, and with labels ``loss`` (plus ``logits_m`` when distilling).
        """
        pixel_values = check_images(pixel_values, self.config)
        batch = pixel_values.shape[0]
        self.check_text(input_ids, attention_mask, batch_size=batch)
        if labels is not None:
            labels = check_class_labels(labels, self.config.num_labels, batch, self.config.id2label)
        alpha = distill_weight(alpha, self.config.alpha, self.config.use_distill)

        image_embeds = self.visual_encoder(pixel_values)
        encoder, logits = classify(
            self.text_encoder,
            self.cls_head,
            input_ids,
            attention_mask,
            image_embeds,
            output_attentions,
            output_hidden_states,
        )
        loss = logits_m = None
        if labels is not None:
            loss, logits_m = self._loss(
                logits, labels, alpha, lambda: self._momentum_logits(pixel_values, input_ids, attention_mask)
            )
        return classification_output(encoder, logits, image_embeds, loss, logits_m)

    @torch.no_grad()
    def _momentum_logits(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """EMA step, then the momentum model's logits ``(B, num_labels)``."""
        self.momentum_update()
        image_embeds_m = self.visual_encoder_m(pixel_values)
        return classify(self.text_encoder_m, self.cls_head_m, input_ids, attention_mask, image_embeds_m)[1]
