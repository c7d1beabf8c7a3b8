"""BLIP classification heads: NLVR2 (two images + text, LAVIS ``blip_nlvr.py`` + ``nlvr_encoder.py``) and
image-text classification / visual entailment (LAVIS ``blip_classification.py``).

Both read the image-grounded text encoder at position 0 (the ``[ENC]`` token) through ``cls_head`` =
``Linear -> ReLU -> Linear`` (``cls_head.0`` / ``cls_head.2`` in checkpoints, as LAVIS).

NLVR's text encoder is the shared :class:`~vl_hub.layers.med.MedModel` whose cross-attention modules come from
:func:`nlvr_cross_attention_factory`: every layer attends both images with its own projections (``self0``/``self1``)
and mixes the two results (``output.dense0``/``output.dense1``, ``output.merge_layer`` from
``config.nlvr_merge_layer`` on), exactly LAVIS's ``nlvr_encoder`` parameter layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache

from vl_hub.layers.attention import check_attn_implementation
from vl_hub.layers.med import (
    CrossAttentionFactory,
    MedAttentionProjections,
    MedSettings,
)
from vl_hub.losses import distill_weight
from vl_hub.models._classification import (
    NLVR_ID2LABEL,
    NLVR_NUM_LABELS,
    ClassifierMomentumMixin,
    ImageTextClassificationOutput,
    build_classifier_head,
    check_class_labels,
    classification_output,
    classify,
    image_pair,
    pair_image_embeds,
)
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.inputs import check_pixel_values, check_text, with_first_token
from vl_hub.models.blip.modeling_blip import BlipPreTrainedModel

__all__ = [
    "AUTO_CLASSES",
    "BlipForImageTextClassification",
    "BlipForNLVR",
    "ImageTextClassificationOutput",
    "NlvrTwinCrossAttention",
    "NlvrTwinOutput",
    "build_classifier_head",
    "check_class_labels",
    "nlvr_cross_attention_factory",
]

# ImageTextClassificationOutput, build_classifier_head and check_class_labels live in
# vl_hub.models._classification (shared with ALBEF) and stay importable from here.

AUTO_CLASSES = {
    "BlipForNLVR": ("AutoModelForImagePairClassification",),
    "BlipForImageTextClassification": ("AutoModelForImageTextClassification",),
}

# --------------------------------------------------------------------------- NLVR twin cross-attention


class NlvrTwinOutput(nn.Module):
    """Mixes the two images' cross-attention contexts (LAVIS ``nlvr_encoder.BertSelfOutput(twin=True)``).

    ``h = (dense0(c0) + dense1(c1)) / 2`` or, with ``merge``, ``merge_layer(cat[dense0(c0), dense1(c1)])`` (no
    activation: LAVIS defines one but leaves it unused); then ``LayerNorm(dropout(h) + residual)``.

    Args:
        hidden_size: ``H``.
        layer_norm_eps: LayerNorm epsilon.
        dropout: hidden dropout.
        merge: whether this layer has ``merge_layer`` (layers ``>= config.nlvr_merge_layer``).
    """

    def __init__(self, hidden_size: int, layer_norm_eps: float, dropout: float, merge: bool) -> None:
        super().__init__()
        self.dense0 = nn.Linear(hidden_size, hidden_size)
        self.dense1 = nn.Linear(hidden_size, hidden_size)
        self.merge_layer = nn.Linear(2 * hidden_size, hidden_size) if merge else None
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, context0: torch.Tensor, context1: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``context0, context1, residual: (B, L, H)`` -> ``(B, L, H)``."""
        mixed0, mixed1 = self.dense0(context0), self.dense1(context1)
        if self.merge_layer is None:
            mixed = (mixed0 + mixed1) / 2
        else:
            mixed = self.merge_layer(torch.cat([mixed0, mixed1], dim=-1))
        return self.LayerNorm(self.dropout(mixed) + residual)


class NlvrTwinCrossAttention(nn.Module):
    """Cross-attention to two images with separate projections (``crossattention.self0/self1/output``).

    Built per layer by :func:`nlvr_cross_attention_factory`; follows the
    :data:`~vl_hub.layers.med.CrossAttentionFactory` call contract with ``encoder_hidden_states`` a list of
    the two images' states. Keys/values are not cached (NLVR never generates).

    Args:
        settings: the text transformer's architecture.
        merge: whether the two contexts are merged by ``merge_layer`` (else averaged).
    """

    def __init__(self, settings: MedSettings, merge: bool) -> None:
        super().__init__()
        projections = (
            settings.hidden_size,
            settings.num_attention_heads,
            settings.encoder_width,
            settings.attention_probs_dropout_prob,
            settings.attn_implementation,
        )
        self.self0 = MedAttentionProjections(*projections)
        self.self1 = MedAttentionProjections(*projections)
        self.output = NlvrTwinOutput(
            settings.hidden_size, settings.layer_norm_eps, settings.hidden_dropout_prob, merge
        )

    @property
    def attn_implementation(self) -> str:
        """``"sdpa"`` or ``"eager"`` of both projections."""
        return self.self0.attn_implementation

    @attn_implementation.setter
    def attn_implementation(self, value: str) -> None:
        value = check_attn_implementation(value)
        self.self0.attn_implementation = value
        self.self1.attn_implementation = value

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: list[torch.Tensor],
        encoder_attention_mask: list[torch.Tensor | None] | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attends both images and mixes the results.

        Args:
            hidden_states: ``(B, L, H)`` output of the self-attention block.
            encoder_hidden_states: ``[image0 (B, Lk, encoder_width), image1 (B, Lk', encoder_width)]``.
            encoder_attention_mask: ``None`` or two prepared additive masks ``(B, 1, 1|L, Lk)``.
            cache: unused (no cross-attention cache for NLVR).
            output_attentions: also return the probabilities ``(B, 2, heads, L, Lk)`` (needs equal image lengths).

        Returns:
            ``(hidden_states (B, L, H), probabilities or None)``.
        """
        if not isinstance(encoder_hidden_states, (list, tuple)) or len(encoder_hidden_states) != 2:
            got = (
                f"a list of {len(encoder_hidden_states)}"
                if isinstance(encoder_hidden_states, (list, tuple))
                else f"a {type(encoder_hidden_states).__name__}"
            )
            raise ValueError(
                f"BLIP NLVR cross-attention attends two images: encoder_hidden_states must be a list of two "
                f"(batch, tokens, encoder_width) tensors, got {got}"
            )
        masks = [None, None] if encoder_attention_mask is None else encoder_attention_mask
        if not isinstance(masks, (list, tuple)) or len(masks) != 2:
            raise ValueError("encoder_attention_mask must be None or a list of two masks, one per image")
        contexts, probs = [], []
        for attention, states, mask in zip((self.self0, self.self1), encoder_hidden_states, masks):
            key, value = attention.project_key_value(states)
            context, prob = attention.attend(attention.project_query(hidden_states), key, value, mask, output_attentions)
            contexts.append(context)
            probs.append(prob)
        output = self.output(contexts[0], contexts[1], hidden_states)
        return output, torch.stack(probs, dim=1) if output_attentions else None


def nlvr_cross_attention_factory(merge_layer: int) -> CrossAttentionFactory:
    """The :data:`~vl_hub.layers.med.CrossAttentionFactory` of BLIP NLVR: a :class:`NlvrTwinCrossAttention` per
    layer, merging with ``merge_layer`` from layer ``merge_layer`` on (6 in BLIP)."""

    def factory(settings: MedSettings, layer_idx: int) -> NlvrTwinCrossAttention:
        return NlvrTwinCrossAttention(settings, merge=layer_idx >= merge_layer)

    return factory


# --------------------------------------------------------------------------- heads


class BlipForNLVR(BlipPreTrainedModel):
    """BLIP for NLVR2 (LAVIS ``BlipNLVR``): is the sentence true of the image pair?

    Both images go through the ViT as one batch; the text encoder (``[ENC]`` put at position 0 of the ids)
    cross-attends both with twin attention (:class:`NlvrTwinCrossAttention`); ``cls_head`` reads position 0 ->
    2 logits.

    Checkpoint names: ``visual_encoder.*``, ``text_encoder.*`` (``crossattention.self0/self1.*``,
    ``crossattention.output.dense0/dense1/merge_layer/LayerNorm.*``), ``cls_head.{0,2}.*``.
    """

    def __init__(self, config: BlipConfig) -> None:
        super().__init__(config)
        if config.nlvr_merge_layer < 0:
            raise ValueError(f"BlipConfig.nlvr_merge_layer={config.nlvr_merge_layer} must be >= 0 (BLIP uses 6)")
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_encoder = self.build_text_encoder(config, nlvr_cross_attention_factory(config.nlvr_merge_layer))
        self.cls_head = build_classifier_head(config, NLVR_NUM_LABELS)
        self.post_init()

    def forward(
        self,
        pixel_values_0: torch.Tensor | None = None,
        pixel_values_1: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> ImageTextClassificationOutput:
        """Scores whether each sentence holds for its image pair.

        Args:
            pixel_values_0, pixel_values_1: ``(B, 3, H, W)`` the first and second image of each example, or
            pixel_values: ``(B, 2, 3, H, W)`` both at once.
            input_ids: ``(B, L)`` tokenizer ids (``[CLS]`` first); the head puts ``[ENC]`` at position 0 (ids that
                already start with it are unchanged).
            attention_mask: ``(B, L)`` text padding mask (default: attend every token).
            labels: ``(B,)`` in ``{0, 1}`` (1: true); gives ``loss`` (cross-entropy).
            output_attentions, output_hidden_states: return the text encoder's probabilities / states.

        Returns:
            :class:`ImageTextClassificationOutput` with ``logits (B, 2)``, ``encoder_last_hidden_state (B, L, H)``,
            ``image_embeds (B, 2, 1+N, D)`` and ``loss`` with labels.
        """
        vision_config = self.config.vision_config
        images, batch = image_pair(
            pixel_values, pixel_values_0, pixel_values_1, lambda x, name: check_pixel_values(x, vision_config)
        )
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=batch)
        if labels is not None:
            labels = check_class_labels(labels, NLVR_NUM_LABELS, batch, NLVR_ID2LABEL)

        image_embeds = self.visual_encoder(images)
        encoder, logits = classify(
            self.text_encoder,
            self.cls_head,
            with_first_token(input_ids, self.config.text_config.enc_token_id, "enc_token_id"),
            attention_mask,
            [image_embeds[:batch], image_embeds[batch:]],
            output_attentions,
            output_hidden_states,
        )
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return classification_output(encoder, logits, pair_image_embeds(image_embeds, batch), loss)


class BlipForImageTextClassification(ClassifierMomentumMixin, BlipPreTrainedModel):
    """BLIP image-text classification, e.g. SNLI-VE visual entailment (LAVIS ``BlipClassification``).

    The image-grounded text encoder reads the ViT tokens; ``cls_head`` maps its position-0 state (``[ENC]``) to
    ``config.num_labels`` classes (3 for SNLI-VE: entailment / neutral / contradiction, via ``id2label``).

    With ``config.use_distill`` the head keeps momentum copies ``visual_encoder_m``, ``text_encoder_m``,
    ``cls_head_m`` (no gradient). Each training forward with labels first moves them towards the online weights
    (``p_m = momentum * p_m + (1 - momentum) * p``) and then computes
    ``loss = (1 - alpha) * CE(logits, labels) + alpha * CE(logits, softmax(logits_m))``. LAVIS ramps ``alpha``
    linearly over the first epoch: ``alpha = config.alpha * min(1, (epoch * iters_per_epoch + iter) /
    iters_per_epoch)`` (pass it as ``forward(alpha=...)``; ``None`` uses ``config.alpha``).

    Text ids: pass the tokenizer's (``[CLS]`` first); the head puts ``[ENC]`` at position 0, as every vl_hub BLIP
    head does for image-grounded encoding. (LAVIS's ``BlipClassification`` alone kept ``[CLS]`` there; LAVIS
    published no BLIP checkpoint of this head.)
    """

    def __init__(self, config: BlipConfig) -> None:
        super().__init__(config)
        if config.num_labels < 2:
            raise ValueError(
                f"BlipForImageTextClassification needs at least 2 classes, got num_labels={config.num_labels}; "
                "set BlipConfig(num_labels=...) or id2label (SNLI-VE: 3)"
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
            input_ids: ``(B, L)`` tokenizer ids (``[CLS]`` first); the head puts ``[ENC]`` at position 0.
            attention_mask: ``(B, L)`` text padding mask (default: attend every token).
            labels: ``(B,)`` class indices in ``[0, num_labels)``; gives ``loss``.
            alpha: distillation weight in ``[0, 1]`` for this step (``use_distill`` training only); default
                ``config.alpha``.
            output_attentions, output_hidden_states: return the text encoder's probabilities / states.

        Returns:
            :class:`ImageTextClassificationOutput` with ``logits (B, num_labels)``, ``encoder_last_hidden_state``,
            ``image_embeds``, and with labels ``loss`` (plus ``logits_m`` when distilling).
        """
        pixel_values = check_pixel_values(pixel_values, self.config.vision_config)
        if pixel_values.dim() != 4:
            raise ValueError(
                f"BlipForImageTextClassification takes images (batch, 3, H, W), got shape {tuple(pixel_values.shape)}"
            )
        batch = pixel_values.shape[0]
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=batch)
        if labels is not None:
            labels = check_class_labels(labels, self.config.num_labels, batch, self.config.id2label)
        input_ids = with_first_token(input_ids, self.config.text_config.enc_token_id, "enc_token_id")
        alpha = distill_weight(alpha, self.config.alpha)

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
        """EMA step, then the momentum model's logits ``(B, num_labels)`` (LAVIS order: update first)."""
        self.momentum_update()
        image_embeds_m = self.visual_encoder_m(pixel_values)
        return classify(self.text_encoder_m, self.cls_head_m, input_ids, attention_mask, image_embeds_m)[1]
