"""ALBEF pre-training (LAVIS ``albef_pretrain.py``): ITC + ITM + MLM on image-caption pairs, with momentum distillation.

* **ITC**: online image/text features against the keys of momentum encoders (``*_m``, EMA of the online weights) and
  of two feature queues; targets mix in the momentum similarities with weight ``alpha``;
* **ITM**: the fusion layers on ``[positives; text + hard negative image; hard negative text + image]``, negatives
  drawn from the softmax of the in-batch ITC logits (diagonal excluded);
* **MLM**: 15 % of the caption tokens are masked (BERT's 80/10/10 rule, :func:`vl_hub.losses.mask_tokens`); the
  masked-LM text encoder (all layers, the fusion layers cross-attending the image) predicts them; the loss mixes in
  the momentum model's predictions, ``(1 - alpha) * CE + alpha * distillation`` (:func:`vl_hub.losses.masked_lm_loss`).

The text encoder is a masked-LM BERT (LAVIS ``BertForMaskedLM``): ``text_encoder.bert.*`` and the tied MLM head
``text_encoder.cls.*``, exactly the names of LAVIS's pre-training checkpoint ``ALBEF.pth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from vl_hub.layers.med import MedLMHeadModel, MedModel
from vl_hub.losses import (
    clamp_temperature_,
    distill_weight,
    itm_labels,
    itm_loss,
    mask_tokens,
    masked_lm_loss,
    sample_hard_negatives,
)
from vl_hub.models._lavis_base import momentum_itc
from vl_hub.models._momentum import MomentumMixin
from vl_hub.models.albef.configuration_albef import AlbefConfig
from vl_hub.models.albef.modeling_albef import (
    AlbefPreTrainedModel,
    _AlbefEncodersMixin,
    _ones_mask,
    check_images,
)

__all__ = ["AUTO_CLASSES", "AlbefForPreTraining", "ImageTextMaskedLMPreTrainingOutput"]

AUTO_CLASSES: dict[str, tuple[str, ...]] = {"AlbefForPreTraining": ("AutoModelForPreTraining",)}


@dataclass
class ImageTextMaskedLMPreTrainingOutput(ModelOutput):
    """Output of :class:`AlbefForPreTraining` (LAVIS ``AlbefOutput`` of ``albef_pretrain``).

    Attributes:
        loss: ``()`` ``loss_itc + loss_itm + loss_mlm``.
        loss_itc: ``()`` image-text contrastive loss (with momentum distillation).
        loss_itm: ``()`` image-text matching loss over ``[positives; text+hard image; hard text+image]``.
        loss_mlm: ``()`` masked-LM loss (with momentum distillation); 0 when no token was masked.
        sim_i2t: ``(B, B + Q)`` image-to-text ITC logits (divided by the temperature; batch keys then queue).
        sim_t2i: ``(B, B + Q)`` text-to-image ITC logits.
        itm_logits: ``(3B, 2)`` ITM logits; column 1 means "match".
        itm_labels: ``(3B,)`` ``[1]*B + [0]*2B``.
        mlm_logits: ``(B, L, V)`` masked-LM logits over the masked captions.
        mlm_labels: ``(B, L)`` the original ids at the masked positions, -100 elsewhere.
        masked_input_ids: ``(B, L)`` the corrupted captions the MLM read.
        image_feat: ``(B, E)`` normalised projected image CLS features.
        text_feat: ``(B, E)`` normalised projected text CLS features.
    """

    loss: torch.FloatTensor | None = None
    loss_itc: torch.FloatTensor | None = None
    loss_itm: torch.FloatTensor | None = None
    loss_mlm: torch.FloatTensor | None = None
    sim_i2t: torch.FloatTensor | None = None
    sim_t2i: torch.FloatTensor | None = None
    itm_logits: torch.FloatTensor | None = None
    itm_labels: torch.LongTensor | None = None
    mlm_logits: torch.FloatTensor | None = None
    mlm_labels: torch.LongTensor | None = None
    masked_input_ids: torch.LongTensor | None = None
    image_feat: torch.FloatTensor | None = None
    text_feat: torch.FloatTensor | None = None


def _mlm_ties(prefix: str) -> dict[str, str]:
    return {
        f"{prefix}.cls.predictions.decoder.weight": f"{prefix}.bert.embeddings.word_embeddings.weight",
        f"{prefix}.cls.predictions.decoder.bias": f"{prefix}.cls.predictions.bias",
    }


class AlbefForPreTraining(MomentumMixin, _AlbefEncodersMixin, AlbefPreTrainedModel):
    """ALBEF pre-training: LAVIS ``AlbefPretrain`` (``loss = loss_itc + loss_itm + loss_mlm``).

    Submodules (LAVIS names): ``visual_encoder``, ``text_encoder`` (masked-LM BERT: ``bert`` + tied ``cls`` head),
    ``vision_proj``, ``text_proj``, ``itm_head``, ``temp``; momentum copies ``visual_encoder_m``, ``text_encoder_m``,
    ``vision_proj_m``, ``text_proj_m``; buffers ``image_queue``/``text_queue`` ``(embed_dim, queue_size)`` and
    ``queue_ptr``.

    ``config.use_distill`` (LAVIS always distils in pre-training) switches the momentum distillation of both ITC and
    MLM; ``alpha`` per step (LAVIS ramps it linearly over the first two epochs, :func:`vl_hub.losses.distill_alpha`).

    State changes: a forward in training mode clamps ``temp`` to ``[0.001, 0.5]``, moves the momentum copies one EMA
    step (``config.momentum``) and enqueues the momentum features (gathered over processes) at ``queue_ptr``;
    ``queue_size`` must then be a multiple of the global batch size. In eval mode the same losses are computed and
    nothing changes.
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = ()
    _lavis_renames: ClassVar[tuple[tuple[str, str], ...]] = ()
    _momentum_names: ClassVar[tuple[tuple[str, str], ...]] = (
        ("visual_encoder", "visual_encoder_m"),
        ("text_encoder", "text_encoder_m"),
        ("vision_proj", "vision_proj_m"),
        ("text_proj", "text_proj_m"),
    )
    _tied_weights_keys: ClassVar[dict[str, str]] = {**_mlm_ties("text_encoder"), **_mlm_ties("text_encoder_m")}

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__(config)
        if not config.tie_word_embeddings:
            raise ValueError(
                "AlbefForPreTraining ties the MLM head to the word embeddings (as ALBEF); "
                "config.tie_word_embeddings=False is not supported for this head"
            )
        if config.text_config.mask_token_id is None:
            raise ValueError("AlbefForPreTraining needs text_config.mask_token_id ([MASK], 103 in bert-base-uncased)")
        vision_width, text_width = config.vision_config.hidden_size, config.text_config.hidden_size
        embed_dim, queue_size = config.embed_dim, config.queue_size
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_encoder = self._build_masked_lm(config)
        self.vision_proj = nn.Linear(vision_width, embed_dim)
        self.text_proj = nn.Linear(text_width, embed_dim)
        self.itm_head = nn.Linear(text_width, 2)
        self.temp = nn.Parameter(torch.tensor(float(config.temp)))

        self.visual_encoder_m = self.build_vision_encoder(config)
        self.text_encoder_m = self._build_masked_lm(config)
        self.vision_proj_m = nn.Linear(vision_width, embed_dim)
        self.text_proj_m = nn.Linear(text_width, embed_dim)

        self.register_buffer("image_queue", F.normalize(torch.randn(embed_dim, queue_size), dim=0))
        self.register_buffer("text_queue", F.normalize(torch.randn(embed_dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.post_init()
        self.copy_params()

    @staticmethod
    def _build_masked_lm(config: AlbefConfig) -> MedLMHeadModel:
        """LAVIS ``BertForMaskedLM``: the fusion-split BERT with a tied, bidirectional MLM head."""
        return MedLMHeadModel(config.text_config.to_med_settings(), is_decoder=False)

    @property
    def text_transformer(self) -> MedModel:
        """The masked-LM encoder's BERT (``text_encoder.bert``), used for ITC and ITM."""
        return self.text_encoder.bert

    def get_input_embeddings(self) -> nn.Embedding:
        """The word embeddings ``(vocab, H)`` (tied to the MLM head)."""
        return self.text_encoder.bert.embeddings.word_embeddings

    def get_output_embeddings(self) -> nn.Linear:
        """The MLM head's output layer (tied to the word embeddings)."""
        return self.text_encoder.cls.predictions.decoder

    def reset_queue_ptr(self) -> None:
        """Restarts writing the queues at column 0 (LAVIS does this after loading a checkpoint)."""
        self.queue_ptr.zero_()

    def mask_tokens(
        self, input_ids: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ALBEF's MLM corruption of ``input_ids (B, L)`` at ``config.mlm_probability`` (``[PAD]``/``[CLS]`` never
        masked) -> ``(masked_input_ids (B, L), mlm_labels (B, L))``; see :func:`vl_hub.losses.mask_tokens`."""
        text = self.config.text_config
        return mask_tokens(
            input_ids,
            vocab_size=text.vocab_size,
            mask_token_id=text.mask_token_id,
            pad_token_id=text.pad_token_id,
            cls_token_id=text.cls_token_id,
            probability=self.config.mlm_probability,
            generator=generator,
        )

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        alpha: float | None = None,
        masked_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
    ) -> ImageTextMaskedLMPreTrainingOutput:
        """The three pre-training losses of a batch of image-caption pairs.

        Args:
            pixel_values: ``(B, 3, H, W)`` images (``B >= 2``: ITM draws negatives from the batch).
            input_ids: ``(B, L)`` caption ids as the tokenizer writes them (``[CLS]`` first; LAVIS pads to
                ``max_txt_len``).
            attention_mask: ``(B, L)`` padding mask (default all ones).
            alpha: momentum-distillation weight for this step; ``None`` uses ``config.alpha``; ignored without
                ``config.use_distill``.
            masked_input_ids, mlm_labels: ``(B, L)`` a precomputed MLM corruption (e.g. from
                :meth:`mask_tokens` with a seeded generator in the collator); by default the captions are masked here
                with torch's global RNG.

        Returns:
            :class:`ImageTextMaskedLMPreTrainingOutput`.
        """
        missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
        if missing:
            raise ValueError(f"AlbefForPreTraining needs image-caption pairs; missing {', '.join(missing)}")
        pixel_values = check_images(pixel_values, self.config)
        batch = pixel_values.shape[0]
        self.check_text(input_ids, attention_mask, batch_size=batch)
        if batch < 2:
            raise ValueError(
                f"AlbefForPreTraining needs at least 2 pairs per batch (ITM draws its negatives from the batch), got {batch}"
            )
        if (masked_input_ids is None) != (mlm_labels is None):
            raise ValueError("pass both masked_input_ids and mlm_labels (a precomputed MLM corruption) or neither")
        if masked_input_ids is None:
            masked_input_ids, mlm_labels = self.mask_tokens(input_ids)
        else:
            self.check_text(masked_input_ids, attention_mask, batch_size=batch, name="masked_input_ids")
            if mlm_labels.shape != input_ids.shape:
                raise ValueError(f"mlm_labels {tuple(mlm_labels.shape)} must have the shape of input_ids {tuple(input_ids.shape)}")
        alpha = distill_weight(alpha, self.config.alpha, self.config.use_distill)
        attention_mask = _ones_mask(input_ids, attention_mask)
        if self.training:
            clamp_temperature_(self.temp)

        # ITC
        image_embeds, image_feat = self.encode_images(pixel_values)
        text_embeds, text_feat = self.encode_texts(input_ids, attention_mask)
        itc, image_embeds_m = momentum_itc(
            self, pixel_values, input_ids, attention_mask, image_feat, text_feat, alpha,
            momentum_text_encoder=self.text_encoder_m.bert,
        )

        # ITM: the fusion layers on the text states, positives then the two kinds of hard negatives, in one pass
        negatives = sample_hard_negatives(itc.sim_i2t[:, :batch], itc.sim_t2i[:, :batch])
        text_all = torch.cat([text_embeds, text_embeds, text_embeds[negatives.text_for_image]], dim=0)
        mask_all = torch.cat([attention_mask, attention_mask, attention_mask[negatives.text_for_image]], dim=0)
        images_all = torch.cat([image_embeds, image_embeds[negatives.image_for_text], image_embeds], dim=0)
        logits_itm = self.itm_head(self.fuse(text_all, mask_all, images_all)[:, 0])
        labels_itm = itm_labels(batch, device=logits_itm.device)
        loss_itm = itm_loss(logits_itm, labels_itm)

        # MLM (every layer; the fusion layers read the image), distilled from the momentum model
        mlm_logits = self.text_encoder(
            input_ids=masked_input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds,
            mode="multimodal",
        ).logits
        loss_mlm = self._mlm_loss(mlm_logits, mlm_labels, masked_input_ids, attention_mask, image_embeds_m, alpha)

        return ImageTextMaskedLMPreTrainingOutput(
            loss=itc.loss + loss_itm + loss_mlm,
            loss_itc=itc.loss,
            loss_itm=loss_itm,
            loss_mlm=loss_mlm,
            sim_i2t=itc.sim_i2t,
            sim_t2i=itc.sim_t2i,
            itm_logits=logits_itm,
            itm_labels=labels_itm,
            mlm_logits=mlm_logits,
            mlm_labels=mlm_labels,
            masked_input_ids=masked_input_ids,
            image_feat=image_feat,
            text_feat=text_feat,
        )

    def _mlm_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        masked_input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_embeds_m: torch.Tensor,
        alpha: float,
    ) -> torch.Tensor:
        if not bool((labels != -100).any()):
            # Nothing masked (short captions, small batch): the original's mean over no token is NaN. A zero that
            # keeps the graph leaves the other losses usable.
            return logits.sum() * 0.0
        soft_labels = None
        if alpha > 0:
            with torch.no_grad():
                logits_m = self.text_encoder_m(
                    input_ids=masked_input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds_m,
                    mode="multimodal",
                ).logits
                soft_labels = F.softmax(logits_m, dim=-1)
        return masked_lm_loss(logits, labels, soft_labels=soft_labels, alpha=alpha)
