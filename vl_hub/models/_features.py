"""The feature-extractor plumbing shared by ``BlipModel`` and ``AlbefModel`` (LAVIS ``*FeatureExtractor``).

A host class provides ``encode_images(pixel_values) -> (image_embeds, image_feat)``,
``encode_texts(ids, mask) -> (text_embeds, text_feat)``, ``vision_proj``, ``text_proj``, ``temp`` and
``_multimodal_embeds(image_embeds, text_embeds, ids, mask)`` (BLIP runs the image-grounded encoder on the ids,
ALBEF fuses the text states); this mixin builds the per-modality outputs and the ``forward`` of both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vl_hub.losses import clamp_temperature_, image_text_contrastive_loss
from vl_hub.modeling_outputs import ImageTextFeatures


class ImageTextFeaturesMixin:
    """``_image_features``, ``_text_features`` and :meth:`features_forward` for image-text encoders."""

    def _image_features(self, pixel_values: torch.Tensor) -> ImageTextFeatures:
        """``image_embeds (B, 1+N, D)``, per-token ``image_embeds_proj (B, 1+N, E)`` (L2-normalised), ``image_feat (B, E)``."""
        image_embeds, image_feat = self.encode_images(pixel_values)
        return ImageTextFeatures(
            image_embeds=image_embeds,
            image_embeds_proj=F.normalize(self.vision_proj(image_embeds), dim=-1),
            image_feat=image_feat,
        )

    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> ImageTextFeatures:
        """``text_embeds (B, L, H)``, per-token ``text_embeds_proj (B, L, E)`` (L2-normalised), ``text_feat (B, E)``."""
        text_embeds, text_feat = self.encode_texts(input_ids, attention_mask)
        return ImageTextFeatures(
            text_embeds=text_embeds,
            text_embeds_proj=F.normalize(self.text_proj(text_embeds), dim=-1),
            text_feat=text_feat,
        )

    def features_forward(
        self,
        pixel_values: torch.Tensor | None,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        return_loss: bool,
    ) -> ImageTextFeatures:
        """Features of the modalities given (inputs already checked by the caller); both -> also
        ``multimodal_embeds``; ``return_loss`` -> the in-batch ITC loss with the learned temperature (clamped to
        [0.001, 0.5] in training mode only, so evaluation never changes the model)."""
        out = ImageTextFeatures()
        if pixel_values is not None:
            image = self._image_features(pixel_values)
            out.image_embeds, out.image_embeds_proj, out.image_feat = (
                image.image_embeds, image.image_embeds_proj, image.image_feat,
            )
        if input_ids is not None:
            text = self._text_features(input_ids, attention_mask)
            out.text_embeds, out.text_embeds_proj, out.text_feat = text.text_embeds, text.text_embeds_proj, text.text_feat
        if pixel_values is not None and input_ids is not None:
            out.multimodal_embeds = self._multimodal_embeds(out.image_embeds, out.text_embeds, input_ids, attention_mask)
        if return_loss:
            if out.image_feat is None or out.text_feat is None:
                raise ValueError("return_loss=True needs both pixel_values and input_ids (the ITC loss pairs them)")
            if self.training:
                clamp_temperature_(self.temp)
            out.loss = image_text_contrastive_loss(out.image_feat, out.text_feat, self.temp).loss
        return out
