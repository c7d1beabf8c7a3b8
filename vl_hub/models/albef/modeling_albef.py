"""ALBEF heads (LAVIS ``albef_models``) on the shared ViT and MED layers.

Every head subclasses :class:`AlbefPreTrainedModel`; parameter names follow LAVIS's so that
``convert_albef_checkpoint.py`` maps original checkpoints with prefix renames only.

ALBEF's text transformer is split by ``fusion_layer = k``: layers ``[0, k)`` encode the text alone (``mode="text"``),
layers ``[k, N)`` add cross-attention to the image tokens (``mode="fusion"`` on the text states). ``[CLS]`` stays at
position 0 everywhere (ALBEF has no ``[ENC]``/``[DEC]`` tokens).

This module holds the base class and the two encoder heads:

* :class:`AlbefModel` (``AutoModel``): LAVIS ``AlbefFeatureExtractor`` -- unimodal, projected and multimodal features;
* :class:`AlbefForImageTextRetrieval` (``AutoModelForImageTextRetrieval``): LAVIS ``AlbefRetrieval`` (ITM logits,
  ITC similarity, the ITC + ITM training loss with momentum encoders, queues and distillation) plus the batched,
  memory-bounded version of LAVIS's ``compute_sim_matrix`` (:meth:`~AlbefForImageTextRetrieval.score_pairs`,
  :meth:`~AlbefForImageTextRetrieval.retrieval_scores`).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vl_hub.layers.med import MedModel
from vl_hub.layers.vit import VisionTransformer
from vl_hub.losses import (
    clamp_temperature_,
    distill_weight,
    itm_labels,
    itm_loss,
    sample_hard_negatives,
)
from vl_hub.modeling_outputs import (
    ImageTextFeatures,
    ImageTextMatchingOutput,
    ImageTextRetrievalOutput,
    RetrievalScores,
)
from vl_hub.models._features import ImageTextFeaturesMixin
from vl_hub.models._inputs import check_choice, check_pixel_values, check_text
from vl_hub.models._lavis_base import ContrastiveRetrievalHead, LavisPreTrainedModel, momentum_itc
from vl_hub.models._lavis_conversion import TRAINING_STATE_PATTERNS
from vl_hub.models.albef.configuration_albef import AlbefConfig
from vl_hub.retrieval_scoring import itc_similarity, length_bucketed_scorer, rerank_top_k

__all__ = [
    "AUTO_CLASSES",
    "TEXT_ENCODER_RENAMES",
    "AlbefFeatures",
    "AlbefForImageTextRetrieval",
    "AlbefModel",
    "AlbefPreTrainedModel",
    "check_images",
]

#: head class name -> Auto classes that load it (read by ``vl_hub.models.albef.register``)
AUTO_CLASSES: dict[str, tuple[str, ...]] = {
    "AlbefModel": ("AutoModel",),
    "AlbefForImageTextRetrieval": ("AutoModelForImageTextRetrieval",),
}

#: the feature output of :meth:`AlbefModel.extract_features` (LAVIS ``AlbefOutputFeatures``)
AlbefFeatures = ImageTextFeatures

#: LAVIS's ``rename_text_keys``: a ``BertForMaskedLM`` text encoder (pre-training, feature extractor) stores its
#: transformer under ``text_encoder.bert.*``; the heads whose text encoder is a plain ``MedModel`` read it there.
TEXT_ENCODER_RENAMES: tuple[tuple[str, str], ...] = (
    ("text_encoder.bert.", "text_encoder."),
    ("text_encoder_m.bert.", "text_encoder_m."),
)
#: the masked-LM head of such a checkpoint, which those heads do not have
_MLM_HEAD_STATE = r"^text_encoder(_m)?\.cls\."


def check_images(pixel_values: torch.Tensor | None, config: AlbefConfig, name: str = "pixel_values") -> torch.Tensor:
    """Validates ``(B, 3, H, W)`` images for an ALBEF head (clear errors for missing input, wrong channels, sizes
    that are not multiples of the patch size, integer pixels, video)."""
    if pixel_values is None:
        raise ValueError(f"{name} is missing: this head needs images (B, 3, H, W); run the processor on images")
    pixel_values = check_pixel_values(pixel_values, config.vision_config)
    if pixel_values.dim() != 4:
        raise ValueError(
            f"{name} must be images (batch, 3, H, W), got shape {tuple(pixel_values.shape)}; ALBEF has no video "
            "path (use BLIP or ALPRO for video), and NLVR takes pixel_values_0 / pixel_values_1"
        )
    return pixel_values


def _ones_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(input_ids) if attention_mask is None else attention_mask


class AlbefPreTrainedModel(LavisPreTrainedModel):
    """Base of every ALBEF head: config class; weight init and the tower builders (``build_vision_encoder``,
    ``build_text_encoder``, ``build_text_decoder``) come from :class:`~vl_hub.models._lavis_base.LavisPreTrainedModel`,
    shared with BLIP. ``build_text_encoder(config)`` is the fusion-split encoder (cross-attention from
    ``text_config.fusion_layer`` on)."""

    config: AlbefConfig
    config_class = AlbefConfig
    base_model_prefix = "albef"
    _lavis_unused_state: ClassVar[tuple[str, ...]] = (*TRAINING_STATE_PATTERNS, r"^temp$", _MLM_HEAD_STATE)
    _lavis_renames: ClassVar[tuple[tuple[str, str], ...]] = TEXT_ENCODER_RENAMES

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """``PreTrainedModel.from_pretrained``; a head whose text encoder is a plain BERT also reads checkpoints that
        store a masked-LM text encoder (``text_encoder.bert.*``, e.g. a saved :class:`AlbefForPreTraining`), as
        LAVIS's ``rename_text_keys`` does: fine-tuning starts from the pre-trained model (pass your own
        ``key_mapping`` to override)."""
        if not cls._lavis_renames or "key_mapping" in kwargs:
            return super().from_pretrained(*args, **kwargs)
        kwargs["key_mapping"] = {f"^{re.escape(old)}": new for old, new in cls._lavis_renames}
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # transformers keeps the renamings it used and reverts them in save_pretrained; this head saves its own names
        model._weight_conversions = []
        return loaded

    @classmethod
    def lavis_unused_state_for(cls, config: AlbefConfig) -> tuple[str, ...]:
        """Regexes of LAVIS keys this head does not have *for this config* (on top of ``_lavis_unused_state``);
        read by ``convert_albef_checkpoint.load_lavis_checkpoint``."""
        return ()

    def check_text(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        batch_size: int | None = None,
        name: str = "input_ids",
    ) -> torch.Tensor:
        """Validates ``(B, L)`` ids (and mask) against the vocabulary, the position limit and the image batch."""
        return check_text(input_ids, attention_mask, self.config.text_config, batch_size=batch_size, name=name)


# ---------------------------------------------------------------------------------------------- shared encoding
class _AlbefEncodersMixin:
    """The ITC encoders shared by :class:`AlbefModel` and :class:`AlbefForImageTextRetrieval` (``visual_encoder``,
    ``text_encoder``, ``vision_proj``, ``text_proj``)."""

    config: AlbefConfig
    visual_encoder: VisionTransformer
    text_encoder: MedModel
    vision_proj: nn.Linear
    text_proj: nn.Linear

    @property
    def text_transformer(self) -> MedModel:
        """The BERT of ``text_encoder`` (the pre-training head's ``text_encoder`` is a masked-LM wrapper)."""
        return self.text_encoder

    def encode_images(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixel_values (B, 3, H, W)`` -> ``(image_embeds (B, 1+N, D), image_feat (B, E))``: every ViT token, and the
        L2-normalised projected CLS feature (what ITC compares)."""
        tokens = self.visual_encoder(check_images(pixel_values, self.config))
        return tokens, F.normalize(self.vision_proj(tokens[:, 0]), dim=-1)

    def encode_texts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids (B, L)`` (``[CLS]`` first) -> ``(text_embeds (B, L, H), text_feat (B, E))``: the states of the
        text layers ``[0, fusion_layer)`` and the L2-normalised projected CLS feature."""
        check_text(input_ids, attention_mask, self.config.text_config)
        states = self.text_transformer(
            input_ids=input_ids, attention_mask=_ones_mask(input_ids, attention_mask), mode="text"
        ).last_hidden_state
        return states, F.normalize(self.text_proj(states[:, 0]), dim=-1)

    def fuse(
        self,
        text_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None,
        image_embeds: torch.Tensor,
        *,
        last_layer_positions: int | None = None,
    ) -> torch.Tensor:
        """The fusion layers ``[fusion_layer, N)`` on text states ``(B, L, H)`` (from :meth:`encode_texts`),
        cross-attending every token of ``image_embeds (B, Lv, D)`` -> multimodal states ``(B, L, H)``
        (``(B, n, H)``, the first ``n`` positions only, with ``last_layer_positions=n``; see
        :meth:`~vl_hub.layers.med.MedModel.forward`)."""
        if text_embeds.shape[0] != image_embeds.shape[0]:
            raise ValueError(
                f"batch sizes differ: {image_embeds.shape[0]} images but {text_embeds.shape[0]} texts; pass one text "
                "per image (repeat the images for several texts per image)"
            )
        mask = attention_mask if attention_mask is not None else torch.ones(text_embeds.shape[:2], dtype=torch.long, device=text_embeds.device)
        return self.text_transformer(
            encoder_embeds=text_embeds, attention_mask=mask, encoder_hidden_states=image_embeds, mode="fusion",
            last_layer_positions=last_layer_positions,
        ).last_hidden_state

    def encode_multimodal(
        self,
        image_embeds: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        last_layer_positions: int | None = None,
    ) -> torch.Tensor:
        """Image-grounded text states ``(B, L, H)``: ``input_ids (B, L)`` through every layer (text layers, then the
        fusion layers cross-attending ``image_embeds (B, Lv, D)``). ``last_layer_positions=n``: the first ``n``
        positions only, ``(B, n, H)`` (see :meth:`~vl_hub.layers.med.MedModel.forward`)."""
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=image_embeds.shape[0])
        return self.text_transformer(
            input_ids=input_ids,
            attention_mask=_ones_mask(input_ids, attention_mask),
            encoder_hidden_states=image_embeds,
            mode="multimodal",
            last_layer_positions=last_layer_positions,
        ).last_hidden_state

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values (B, 3, H, W)`` -> ``(B, E)`` L2-normalised projected CLS features (the cosine of two of them
        is the ITC similarity)."""
        return self.encode_images(pixel_values)[1]

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids (B, L)`` -> ``(B, E)`` L2-normalised projected CLS features of the text layers."""
        return self.encode_texts(input_ids, attention_mask)[1]


# ---------------------------------------------------------------------------------------------- AlbefModel
class AlbefModel(ImageTextFeaturesMixin, _AlbefEncodersMixin, AlbefPreTrainedModel):
    """ALBEF encoders: LAVIS ``AlbefFeatureExtractor``.

    Submodules: ``visual_encoder`` (ViT), ``text_encoder`` (BERT with cross-attention from ``fusion_layer`` on),
    ``vision_proj``, ``text_proj`` (to ``embed_dim``) and the ITC temperature ``temp`` (used only by
    ``return_loss``).

    Loads LAVIS ``albef_feature_extractor`` / pre-training checkpoints (whose text encoder is a ``BertForMaskedLM``:
    ``text_encoder.bert.*`` is read as ``text_encoder.*``, the unused MLM head ``text_encoder.cls.*`` is dropped) and
    the fine-tuned retrieval ones (``itm_head``, momentum copies and queues are dropped), with a log line.
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = (*TRAINING_STATE_PATTERNS, _MLM_HEAD_STATE, r"^itm_head\.")

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__(config)
        self.visual_encoder = self.build_vision_encoder(config)
        self.text_encoder = self.build_text_encoder(config)
        self.vision_proj = nn.Linear(config.vision_config.hidden_size, config.embed_dim)
        self.text_proj = nn.Linear(config.text_config.hidden_size, config.embed_dim)
        self.temp = nn.Parameter(torch.tensor(float(config.temp)))
        self.post_init()

    def extract_features(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mode: str = "multimodal",
    ) -> ImageTextFeatures:
        """LAVIS ``AlbefFeatureExtractor.extract_features`` (without its ``no_grad``; wrap it yourself).

        Args:
            pixel_values: ``(B, 3, H, W)`` images (modes image, multimodal).
            input_ids: ``(B, L)`` tokenizer ids, ``[CLS]`` first (modes text, multimodal).
            attention_mask: ``(B, L)`` padding mask (default: all ones).
            mode: ``"image"`` -> ``image_embeds (B, 1+N, D)``, ``image_embeds_proj (B, 1+N, E)`` (normalised per
                token), ``image_feat (B, E)``; ``"text"`` -> ``text_embeds (B, L, H)`` (text layers only),
                ``text_embeds_proj (B, L, E)``, ``text_feat (B, E)``; ``"multimodal"`` -> ``image_embeds`` and
                ``multimodal_embeds (B, L, H)`` (the fusion layers on the text states).

        Returns:
            :data:`AlbefFeatures` with the fields of ``mode`` set, the others ``None``.
        """
        check_choice("mode", mode, ("image", "text", "multimodal"))
        if mode == "image":
            if pixel_values is None:
                raise ValueError("mode='image' needs pixel_values (B, 3, H, W); run the processor on images")
            return self._image_features(pixel_values)
        if mode == "text":
            if input_ids is None:
                raise ValueError("mode='text' needs input_ids (B, L); run the processor on the text")
            return self._text_features(input_ids, attention_mask)
        missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
        if missing:
            raise ValueError(f"mode='multimodal' needs both images and text; missing {', '.join(missing)}")
        check_images(pixel_values, self.config)
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=pixel_values.shape[0])
        image_embeds, _ = self.encode_images(pixel_values)
        text_embeds, _ = self.encode_texts(input_ids, attention_mask)
        return ImageTextFeatures(
            image_embeds=image_embeds, multimodal_embeds=self.fuse(text_embeds, attention_mask, image_embeds)
        )

    def _multimodal_embeds(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.fuse(text_embeds, attention_mask, image_embeds)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_loss: bool = False,
    ) -> ImageTextFeatures:
        """Features of the modalities given: images -> the ``"image"`` features, text -> the ``"text"`` features,
        both -> all of them plus ``multimodal_embeds`` (batch sizes must then match).

        Args:
            pixel_values: ``(B, 3, H, W)`` or ``None``.
            input_ids: ``(B, L)`` (``[CLS]`` first) or ``None``.
            attention_mask: ``(B, L)`` or ``None`` (all ones).
            return_loss: also return the in-batch ITC loss with the learned temperature (pair ``b`` positive; no
                queue or momentum encoder -- :class:`AlbefForImageTextRetrieval` has the full ALBEF objective).

        Returns:
            :data:`AlbefFeatures` (``loss`` first when asked for).
        """
        if pixel_values is None and input_ids is None:
            raise ValueError("AlbefModel needs pixel_values (images), input_ids (text) or both; got neither")
        if pixel_values is not None and input_ids is not None:
            check_images(pixel_values, self.config)
            check_text(input_ids, attention_mask, self.config.text_config, batch_size=pixel_values.shape[0])
        return self.features_forward(pixel_values, input_ids, attention_mask, return_loss)


# ---------------------------------------------------------------------------------------------- retrieval
class AlbefForImageTextRetrieval(ContrastiveRetrievalHead, _AlbefEncodersMixin, AlbefPreTrainedModel):
    """ALBEF image-text retrieval: LAVIS ``AlbefRetrieval`` (training) and ``compute_sim_matrix`` (evaluation).

    Submodules (LAVIS names): ``visual_encoder``, ``text_encoder``, ``vision_proj``, ``text_proj``, ``itm_head``
    (``Linear(H, 2)``, column 1 = match), ``temp``; the momentum copies ``visual_encoder_m``, ``text_encoder_m``,
    ``vision_proj_m``, ``text_proj_m`` (no gradient, EMA of the online weights) and the buffers
    ``image_queue``/``text_queue`` ``(E, queue_size)``, ``idx_queue`` ``(1, queue_size)``, ``queue_ptr``.

    Inference: ``forward(match_head="itm")`` -> ``itm_logits (B, 2)`` for pairs ``(image b, text b)`` (the ids go
    through every layer, as ``compute_sim_matrix``); ``forward(match_head="itc")`` -> ``itc_sim (N_images, N_texts)``
    cosine similarities (no temperature). Retrieval over a whole set: :meth:`score_pairs` / :meth:`retrieval_scores`.

    Training (``idx`` given or ``return_loss=True``): LAVIS ``AlbefRetrieval.forward`` -- ITC against the momentum
    keys and the queues, targets spread over same-``idx`` pairs and, with ``config.use_distill``, mixed with the
    momentum similarities (weight ``alpha``); ITM on ``[positives; text + hard negative image; image + hard negative
    text]`` through the fusion layers on the text states, negatives drawn from the softmax of the in-batch ITC logits
    (never a same-``idx`` pair); ``loss = loss_itc + loss_itm``. In training mode the forward clamps ``temp`` to
    [0.001, 0.5], moves the momentum copies one EMA step and enqueues the momentum features (gathered over processes);
    in eval mode the same losses are computed and nothing changes.
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = (_MLM_HEAD_STATE,)

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__(config)
        self.build_retrieval_modules(config)
        self.post_init()
        self.copy_params()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        match_head: str = "itm",
        idx: torch.Tensor | None = None,
        return_loss: bool | None = None,
        alpha: float | None = None,
    ) -> ImageTextMatchingOutput | ImageTextRetrievalOutput:
        """ITM logits / ITC similarity (inference) or the LAVIS retrieval training loss.

        Args:
            pixel_values: ``(B, 3, H, W)`` images.
            input_ids: ``(B, L)`` tokenizer ids, ``[CLS]`` first; for ``match_head="itc"`` any number ``M`` of texts.
            attention_mask: ``(B, L)`` padding mask (default all ones).
            match_head: inference output: ``"itm"`` -> ``itm_logits (B, 2)``; ``"itc"`` -> ``itc_sim (B, M)``.
            idx: ``(B,)`` image ids (captions of one image share it; positives for ITC and never hard negatives).
                Giving it selects the training loss.
            return_loss: force (``True``) or forbid (``False``) the training loss; ``None``: loss iff ``idx`` given.
                ``True`` without ``idx`` treats every pair of the batch as a different image.
            alpha: momentum-distillation weight for this step (LAVIS ramps it over the first two epochs:
                ``vl_hub.losses.distill_alpha``); ``None`` uses ``config.alpha``; ignored without ``config.use_distill``.

        Returns:
            :class:`~vl_hub.modeling_outputs.ImageTextRetrievalOutput` (loss) or
            :class:`~vl_hub.modeling_outputs.ImageTextMatchingOutput`.
        """
        if return_loss is None:
            return_loss = idx is not None
        if pixel_values is None or input_ids is None:
            missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
            raise ValueError(
                f"AlbefForImageTextRetrieval needs images and text; missing {', '.join(missing)}. For one modality "
                "use get_image_features / get_text_features"
            )
        check_images(pixel_values, self.config)
        if return_loss:
            return self._training_loss(pixel_values, input_ids, attention_mask, idx, alpha)
        check_choice("match_head", match_head, ("itm", "itc"))
        if match_head == "itc":
            _, image_feat = self.encode_images(pixel_values)
            _, text_feat = self.encode_texts(input_ids, attention_mask)
            return ImageTextMatchingOutput(itc_sim=image_feat @ text_feat.t(), image_feat=image_feat, text_feat=text_feat)
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=pixel_values.shape[0])
        image_embeds, _ = self.encode_images(pixel_values)
        states = self.encode_multimodal(image_embeds, input_ids, attention_mask)
        return ImageTextMatchingOutput(itm_logits=self.itm_head(states[:, 0]), image_embeds=image_embeds)

    def _training_loss(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        idx: torch.Tensor | None,
        alpha: float | None,
    ) -> ImageTextRetrievalOutput:
        batch = pixel_values.shape[0]
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=batch)
        attention_mask = _ones_mask(input_ids, attention_mask)
        idx = self._pair_ids(idx, batch, input_ids.device)
        alpha = distill_weight(alpha, self.config.alpha, self.config.use_distill)
        if self.training:
            clamp_temperature_(self.temp)

        image_embeds, image_feat = self.encode_images(pixel_values)
        text_embeds, text_feat = self.encode_texts(input_ids, attention_mask)
        itc, _ = momentum_itc(self, pixel_values, input_ids, attention_mask, image_feat, text_feat, alpha, idx=idx)

        # ITM on the text states through the fusion layers: positives, (text b, hard negative image),
        # (hard negative text, image b) -- one pass. Negatives come from the ITC logits against the batch keys.
        negatives = sample_hard_negatives(itc.sim_i2t[:, :batch], itc.sim_t2i[:, :batch], idx)
        text_all = torch.cat([text_embeds, text_embeds, text_embeds[negatives.text_for_image]], dim=0)
        mask_all = torch.cat([attention_mask, attention_mask, attention_mask[negatives.text_for_image]], dim=0)
        images_all = torch.cat([image_embeds, image_embeds[negatives.image_for_text], image_embeds], dim=0)
        logits = self.itm_head(self.fuse(text_all, mask_all, images_all)[:, 0])
        labels = itm_labels(batch, device=logits.device)
        loss_itm = itm_loss(logits, labels)
        return ImageTextRetrievalOutput(
            loss=itc.loss + loss_itm,
            loss_itc=itc.loss,
            loss_itm=loss_itm,
            sim_i2t=itc.sim_i2t,
            sim_t2i=itc.sim_t2i,
            itm_logits=logits,
            itm_labels=labels,
        )

    # ------------------------------------------------------------------ retrieval scoring
    def itm_match_logits(
        self,
        image_embeds: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ITM "match" logits ``(B,)`` of pairs ``(image_embeds[b] (Lv, D), text b)``.

        The text is ``input_ids (B, L)`` (run through every layer, as LAVIS's ``compute_sim_matrix``) or its
        precomputed text-layer states ``text_embeds (B, L, H)`` from :meth:`encode_texts` (then only the fusion layers
        run: the same numbers, for half the text layers' cost). Only ``[CLS]`` is read, so the last layer computes
        position 0 only (``last_layer_positions=1``).
        """
        if text_embeds is not None:
            states = self.fuse(text_embeds, attention_mask, image_embeds, last_layer_positions=1)
        elif input_ids is not None:
            states = self.encode_multimodal(image_embeds, input_ids, attention_mask, last_layer_positions=1)
        else:
            raise ValueError("itm_match_logits needs input_ids (B, L) or text_embeds (B, L, H)")
        return self.itm_head(states[:, 0])[:, 1]

    @torch.no_grad()
    def score_pairs(
        self,
        image_embeds: torch.Tensor,
        image_feat: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        text_feat: torch.Tensor,
        k_test: int | None = None,
        pairs_per_call: int = 1024,
        reuse_itm: bool = True,
        text_embeds: torch.Tensor | None = None,
        image_queries: slice | None = None,
        text_queries: slice | None = None,
    ) -> RetrievalScores:
        """Retrieval scores of ``N`` images x ``M`` texts (LAVIS ``compute_sim_matrix``): ITC similarity, then
        ``itm_logit[:, 1] + sim`` on each query's ``k_test`` best candidates, -100 elsewhere.

        Several queries' candidates share one ITM forward (at most ``pairs_per_call`` pairs, so memory is bounded
        whatever ``N`` and ``M``), and a pair in the top-k of both directions is scored once.

        Args:
            image_embeds: ``(N, Lv, D)`` vision tokens (from :meth:`encode_images`; may live on the CPU, the pairs
                being scored are moved to the model's device).
            image_feat: ``(N, E)`` normalised image features.
            input_ids, attention_mask: ``(M, L)`` texts (``[CLS]`` first).
            text_feat: ``(M, E)`` normalised text features.
            k_test: candidates re-scored per query (default ``config.k_test``).
            pairs_per_call: at most this many pairs per ITM forward.
            reuse_itm: a pair in the top-k of both directions is scored once.
            text_embeds: ``(M, L, H)`` the texts' text-layer states from :meth:`encode_texts` (optional): ITM then
                runs only the fusion layers on them instead of every layer on ``input_ids`` (same scores).
            image_queries, text_queries: contiguous blocks of queries to score (``slice(start, stop)``; ``None``: all),
                for sharding the evaluation over processes (see :func:`vl_hub.retrieval_scoring.rerank_top_k`).

        Returns:
            :class:`~vl_hub.modeling_outputs.RetrievalScores` ``(score_i2t (N, M), score_t2i (M, N), sim)``.
        """
        check_text(input_ids, attention_mask, self.config.text_config)
        if image_embeds.shape[0] != image_feat.shape[0] or input_ids.shape[0] != text_feat.shape[0]:
            raise ValueError(
                f"got {image_embeds.shape[0]} image_embeds but {image_feat.shape[0]} image_feat, and "
                f"{input_ids.shape[0]} texts but {text_feat.shape[0]} text_feat; pass matching sets"
            )
        if text_embeds is not None and text_embeds.shape[:2] != input_ids.shape:
            raise ValueError(
                f"text_embeds {tuple(text_embeds.shape)} must be (M, L, H) for the {tuple(input_ids.shape)} input_ids"
            )
        device = self.itm_head.weight.device
        attention_mask = _ones_mask(input_ids, attention_mask)
        sim = itc_similarity(image_feat.to(device), text_feat.to(device))

        def pair_logits(
            unique: torch.Tensor, slot: torch.Tensor, text_index: torch.Tensor, length: int | None
        ) -> torch.Tensor:
            images = image_embeds[unique.to(image_embeds.device)].to(device)[slot.to(device)]
            rows = text_index.to(attention_mask.device)
            mask = attention_mask[rows, :length].to(device)
            if text_embeds is not None:
                states = text_embeds[rows.to(text_embeds.device), :length].to(device)
                return self.itm_match_logits(images, attention_mask=mask, text_embeds=states)
            return self.itm_match_logits(images, input_ids[rows, :length].to(device), mask)

        itm_score_fn = length_bucketed_scorer(pair_logits, attention_mask)

        k = self.config.k_test if k_test is None else k_test
        return rerank_top_k(
            sim, itm_score_fn, k, pairs_per_call, reuse_itm, image_queries=image_queries, text_queries=text_queries
        )

    @torch.no_grad()
    def retrieval_scores(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        k_test: int | None = None,
        batch_size: int = 64,
        pairs_per_call: int = 1024,
    ) -> RetrievalScores:
        """:meth:`score_pairs` for in-memory images ``(N, 3, H, W)`` and texts ``(M, L)``, encoded ``batch_size`` at
        a time; the texts' text-layer states are kept so that ITM runs only the fusion layers."""
        check_images(pixel_values, self.config)
        attention_mask = _ones_mask(input_ids, attention_mask)
        images = [self.encode_images(pixel_values[i : i + batch_size]) for i in range(0, pixel_values.shape[0], batch_size)]
        texts = [
            self.encode_texts(input_ids[i : i + batch_size], attention_mask[i : i + batch_size])
            for i in range(0, input_ids.shape[0], batch_size)
        ]
        return self.score_pairs(
            torch.cat([e for e, _ in images]),
            torch.cat([f for _, f in images]),
            input_ids,
            attention_mask,
            torch.cat([f for _, f in texts]),
            k_test=k_test,
            pairs_per_call=pairs_per_call,
            text_embeds=torch.cat([e for e, _ in texts]),
        )
