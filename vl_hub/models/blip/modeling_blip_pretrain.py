"""BLIP pre-training (LAVIS ``blip_pretrain.py``): ITC + ITM + LM on image-caption pairs.

* **ITC**: online image/text features against the keys of momentum encoders (``*_m``, EMA of the online weights)
  and of two feature queues, with momentum distillation ``alpha``;
* **ITM**: the image-grounded encoder (``[ENC]`` first) on ``[positives; text + hard negative image; image + hard
  negative text]``, negatives drawn from ``softmax(sim) + 1e-4`` of the ITC logits (BLIP pre-training's variant,
  ``epsilon=1e-4`` of :func:`vl_hub.losses.hard_negative_weights`);
* **LM**: the image-grounded decoder (``[DEC]`` first) with label smoothing ``config.label_smoothing`` (0.1).

The decoder shares every parameter with the text encoder except its self-attention blocks (see
:func:`tie_text_encoder_decoder_`), as LAVIS's ``tie_encoder_decoder_weights(..., skip_key="/attention")`` does.

:class:`BlipMomentumMixin` (momentum copies: copy, EMA update) is shared with the image-text classification head.
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
    lm_loss,
    sample_hard_negatives,
)
from vl_hub.models._lavis_base import encode_vision, momentum_itc
from vl_hub.models._momentum import MomentumMixin
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.inputs import check_pixel_values, check_text, with_first_token
from vl_hub.models.blip.modeling_blip import (
    BlipPreTrainedModel,
    _BlipContrastiveMixin,
    _ones_mask,
)

__all__ = [
    "AUTO_CLASSES",
    "BLIP_PRETRAIN_HARD_NEGATIVE_EPSILON",
    "BlipForPreTraining",
    "BlipMomentumMixin",
    "ImageTextPreTrainingOutput",
    "decoder_shares_parameter",
    "tie_text_encoder_decoder_",
]

AUTO_CLASSES = {"BlipForPreTraining": ("AutoModelForPreTraining",)}

BLIP_PRETRAIN_HARD_NEGATIVE_EPSILON = 1e-4
"""Added to the softmax of the ITC logits before the positives are zeroed (LAVIS ``blip_pretrain``)."""


@dataclass
class ImageTextPreTrainingOutput(ModelOutput):
    """Output of :class:`BlipForPreTraining` (LAVIS ``BlipOutput`` of ``blip_pretrain``).

    Attributes:
        loss: ``()`` ``loss_itc + loss_itm + loss_lm``.
        loss_itc: ``()`` image-text contrastive loss (LAVIS ``loss_itc``).
        loss_itm: ``()`` image-text matching loss over ``[positives; text+hard image; image+hard text]``.
        loss_lm: ``()`` label-smoothed next-token loss of the decoder.
        sim_i2t: ``(B, B + Q)`` image-to-text ITC logits (divided by the temperature; batch keys then queue).
        sim_t2i: ``(B, B + Q)`` text-to-image ITC logits.
        itm_logits: ``(3B, 2)`` ITM logits; column 1 means "match".
        itm_labels: ``(3B,)`` ``[1]*B + [0]*2B``.
        logits: ``(B, L, V)`` decoder logits (unshifted: position ``t`` predicts token ``t + 1``).
        decoder_labels: ``(B, L)`` LM targets: the ``[DEC]`` ids with ``-100`` on padding.
        image_feat: ``(B, E)`` normalised projected image CLS features.
        text_feat: ``(B, E)`` normalised projected text CLS features.
    """

    loss: torch.FloatTensor | None = None
    loss_itc: torch.FloatTensor | None = None
    loss_itm: torch.FloatTensor | None = None
    loss_lm: torch.FloatTensor | None = None
    sim_i2t: torch.FloatTensor | None = None
    sim_t2i: torch.FloatTensor | None = None
    itm_logits: torch.FloatTensor | None = None
    itm_labels: torch.LongTensor | None = None
    logits: torch.FloatTensor | None = None
    decoder_labels: torch.LongTensor | None = None
    image_feat: torch.FloatTensor | None = None
    text_feat: torch.FloatTensor | None = None


# --------------------------------------------------------------------------- momentum copies


#: the momentum-copy mixin shared with the ALBEF heads (see :class:`vl_hub.models._momentum.MomentumMixin`)
BlipMomentumMixin = MomentumMixin


# --------------------------------------------------------------------------- encoder/decoder sharing


def decoder_shares_parameter(name: str) -> bool:
    """Whether the decoder parameter ``name`` (relative to ``text_decoder.bert``) is the encoder's.

    BLIP pre-training ties everything but the self-attention blocks (``encoder.layer.{i}.attention.*``): the
    embeddings, every cross-attention, feed-forward and output LayerNorm are shared. (LAVIS skips module paths
    containing ``"/attention"``; ``"/crossattention"`` does not contain it, so cross-attention is shared.)
    """
    return ".attention." not in f".{name}"


def tie_text_encoder_decoder_(encoder: MedModel, decoder: MedLMHeadModel) -> list[str]:
    """Makes ``decoder.bert``'s shared parameters (:func:`decoder_shares_parameter`) the encoder's own tensors.

    The LM head weight is re-tied to the (now shared) word embeddings. Returns the shared names (relative to
    ``decoder.bert``).
    """
    shared = [name for name, _ in decoder.bert.named_parameters() if decoder_shares_parameter(name)]
    for name in shared:
        module_name, attr = name.rsplit(".", 1)
        setattr(decoder.bert.get_submodule(module_name), attr, encoder.get_parameter(name))
    decoder.tie_weights()
    return shared


# --------------------------------------------------------------------------- the head

# Regexes (transformers expands them over the parameter names): decoder parameters outside its self-attention
# blocks are the encoder's; the LM head weight is the word embedding, its bias the head bias.
_NOT_SELF_ATTENTION = r"(?!encoder\.layer\.\d+\.attention\.)"


class BlipForPreTraining(BlipMomentumMixin, _BlipContrastiveMixin, BlipPreTrainedModel):
    """BLIP pre-training: LAVIS ``BlipPretrain`` (``loss = loss_itc + loss_itm + loss_lm``).

    Submodules (LAVIS names): ``visual_encoder``, ``text_encoder``, ``text_decoder`` (``bert.*`` + ``cls.*``),
    ``vision_proj``, ``text_proj``, ``itm_head``, ``temp``; momentum copies ``visual_encoder_m``,
    ``text_encoder_m``, ``vision_proj_m``, ``text_proj_m``; buffers ``image_queue``/``text_queue``
    ``(embed_dim, queue_size)`` and ``queue_ptr``.

    Tied parameters: ``text_decoder.bert.*`` outside ``encoder.layer.{i}.attention.*`` IS ``text_encoder.*`` (one
    tensor, one gradient: the encoder's ITC/ITM and the decoder's LM losses all train it), and
    ``text_decoder.cls.predictions.decoder.weight`` is the word embedding. Only each decoder layer's causal
    self-attention (``attention.self.*``, ``attention.output.*``) and the LM head transform/bias are the decoder's
    own. Checkpoints store the shared tensors once, under ``text_encoder.*``.

    State changes: a forward in training mode clamps ``temp`` to ``[0.001, 0.5]``, moves the momentum copies one
    EMA step (``config.momentum``) and enqueues the momentum features (gathered over processes) at ``queue_ptr``;
    ``queue_size`` must then be a multiple of the global batch size. In eval mode the same losses are computed
    and nothing changes.
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = ()
    _momentum_names: ClassVar[tuple[tuple[str, str], ...]] = (
        ("visual_encoder", "visual_encoder_m"),
        ("text_encoder", "text_encoder_m"),
        ("vision_proj", "vision_proj_m"),
        ("text_proj", "text_proj_m"),
    )
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        rf"text_decoder\.bert\.{_NOT_SELF_ATTENTION}": rf"text_encoder\.{_NOT_SELF_ATTENTION}",
        "text_decoder.cls.predictions.decoder.weight": "text_encoder.embeddings.word_embeddings.weight",
        "text_decoder.cls.predictions.decoder.bias": "text_decoder.cls.predictions.bias",
    }

    def __init__(self, config: BlipConfig) -> None:
        super().__init__(config)
        if not config.tie_word_embeddings:
            raise ValueError(
                "BlipForPreTraining ties the decoder to the encoder and the LM head to the word embeddings; "
                "config.tie_word_embeddings=False is not supported for this head"
            )
        vision_width, text_width = config.vision_config.hidden_size, config.text_config.hidden_size
        embed_dim, queue_size = config.embed_dim, config.queue_size
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_encoder = self.build_text_encoder(config)
        self.text_decoder = self.build_text_decoder(config)
        tie_text_encoder_decoder_(self.text_encoder, self.text_decoder)
        self.vision_proj = nn.Linear(vision_width, embed_dim)
        self.text_proj = nn.Linear(text_width, embed_dim)
        self.itm_head = nn.Linear(text_width, 2)
        self.temp = nn.Parameter(torch.tensor(float(config.temp)))

        self.visual_encoder_m = self.build_vision_encoder(config)
        self.text_encoder_m = self.build_text_encoder(config)
        self.vision_proj_m = nn.Linear(vision_width, embed_dim)
        self.text_proj_m = nn.Linear(text_width, embed_dim)

        self.register_buffer("image_queue", F.normalize(torch.randn(embed_dim, queue_size), dim=0))
        self.register_buffer("text_queue", F.normalize(torch.randn(embed_dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.post_init()
        self.copy_params()

    def reset_queue_ptr(self) -> None:
        """Restarts writing the queues at column 0 (LAVIS does this after loading a checkpoint)."""
        self.queue_ptr.zero_()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        alpha: float | None = None,
    ) -> ImageTextPreTrainingOutput:
        """The three pre-training losses of a batch of image-caption pairs.

        Args:
            pixel_values: ``(B, 3, H, W)`` images (``B >= 2``: ITM draws negatives from the batch).
            input_ids: ``(B, L)`` caption ids as the tokenizer writes them (``[CLS]`` first); the ITM pass puts
                ``[ENC]`` and the decoder ``[DEC]`` at position 0 itself, as LAVIS does.
            attention_mask: ``(B, L)`` padding mask (default all ones).
            alpha: momentum-distillation weight of the ITC targets for this step (LAVIS ramps it over the first
                two epochs: ``vl_hub.losses.distill_alpha(config.alpha, epoch, iters, iters_per_epoch)``);
                ``None`` uses ``config.alpha``.

        Returns:
            :class:`ImageTextPreTrainingOutput`.
        """
        missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
        if missing:
            raise ValueError(f"BlipForPreTraining needs image-caption pairs; missing {', '.join(missing)}")
        pixel_values = check_pixel_values(pixel_values, self.config.vision_config)
        if pixel_values.dim() != 4:
            raise ValueError(
                f"BlipForPreTraining takes images (batch, 3, H, W), got shape {tuple(pixel_values.shape)}"
            )
        batch = pixel_values.shape[0]
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=batch)
        if batch < 2:
            raise ValueError(
                f"BlipForPreTraining needs at least 2 pairs per batch (ITM draws its negatives from the batch), got {batch}"
            )
        alpha = distill_weight(alpha, self.config.alpha)
        attention_mask = _ones_mask(input_ids, attention_mask)
        if self.training:
            clamp_temperature_(self.temp)

        # ITC
        image_embeds, image_feat = encode_vision(self.visual_encoder, self.vision_proj, pixel_values)
        _, text_feat = self.encode_texts(input_ids, attention_mask)
        itc, _ = momentum_itc(self, pixel_values, input_ids, attention_mask, image_feat, text_feat, alpha)

        # ITM: positives, (text b, hard negative image), (image b, hard negative text) in one pass. BLIP
        # pre-training samples from the ITC logits against the momentum keys of the batch (sim[:, :B]).
        negatives = sample_hard_negatives(
            itc.sim_i2t[:, :batch], itc.sim_t2i[:, :batch], epsilon=BLIP_PRETRAIN_HARD_NEGATIVE_EPSILON
        )
        enc_ids = with_first_token(input_ids, self.config.text_config.enc_token_id, "enc_token_id")
        ids_all = torch.cat([enc_ids, enc_ids, enc_ids[negatives.text_for_image]], dim=0)
        mask_all = torch.cat([attention_mask, attention_mask, attention_mask[negatives.text_for_image]], dim=0)
        images_all = torch.cat([image_embeds, image_embeds[negatives.image_for_text], image_embeds], dim=0)
        states = self.text_encoder(
            input_ids=ids_all, attention_mask=mask_all, encoder_hidden_states=images_all, mode="multimodal"
        ).last_hidden_state
        logits_itm = self.itm_head(states[:, 0])
        labels_itm = itm_labels(batch, device=logits_itm.device)
        loss_itm = itm_loss(logits_itm, labels_itm)

        # LM
        dec_ids = with_first_token(input_ids, self.config.text_config.bos_token_id, "bos_token_id")
        pad = self.config.text_config.pad_token_id
        decoder_labels = dec_ids if pad is None else dec_ids.masked_fill(dec_ids == pad, -100)
        logits = self.text_decoder(
            input_ids=dec_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds, mode="multimodal"
        ).logits
        loss_lm = lm_loss(logits, decoder_labels, label_smoothing=self.config.label_smoothing)

        return ImageTextPreTrainingOutput(
            loss=itc.loss + loss_itm + loss_lm,
            loss_itc=itc.loss,
            loss_itm=loss_itm,
            loss_lm=loss_lm,
            sim_i2t=itc.sim_i2t,
            sim_t2i=itc.sim_t2i,
            itm_logits=logits_itm,
            itm_labels=labels_itm,
            logits=logits,
            decoder_labels=decoder_labels,
            image_feat=image_feat,
            text_feat=text_feat,
        )
