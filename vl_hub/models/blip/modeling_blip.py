"""BLIP heads (LAVIS ``blip_models``) on the shared ViT and MED layers.

Every head subclasses :class:`BlipPreTrainedModel`; parameter names follow LAVIS's so that
``convert_blip_checkpoint.py`` maps original checkpoints with prefix renames only.

This module holds the base class and the two encoder heads:

* :class:`BlipModel` (``AutoModel``): LAVIS ``BlipFeatureExtractor`` -- unimodal, projected and multimodal features;
* :class:`BlipForImageTextRetrieval` (``AutoModelForImageTextRetrieval``): LAVIS ``BlipITM`` (inference: ITM
  logits, ITC similarity) and ``BlipRetrieval`` (training: ITC with momentum encoders, queues and distillation + ITM
  with hard negatives), plus the two-stage retrieval scorer.

Special tokens: pass the tokenizer's ids (``[CLS]`` first) everywhere. The heads put ``[ENC]`` at position 0
themselves for every image-grounded pass (multimodal features, ITM), as LAVIS does inside its models; ids that
already start with ``[ENC]`` are left as they are.

Video: ``pixel_values (B, T, 3, H, W)`` are encoded frame by frame; the tokens of all frames are concatenated
(``(B, T*(1+N), D)``, what the fusion encoder cross-attends to) and the ITC feature is the mean of the frames'
projected CLS features, normalised (BLIP's zero-shot video retrieval).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vl_hub.layers.med import MedModel
from vl_hub.layers.vit import VisionTransformer
from vl_hub.losses import (
    clamp_temperature_,
    distill_weight,
    hard_negative_weights,
    HardNegatives,
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
from vl_hub.models._lavis_base import ContrastiveRetrievalHead, LavisPreTrainedModel, encode_vision, momentum_itc
from vl_hub.models._momentum import all_gather_with_grad, concat_all_gather, is_distributed
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.convert_blip_checkpoint import TRAINING_STATE_PATTERNS
from vl_hub.models.blip.inputs import (
    check_choice,
    check_pixel_values,
    check_text,
    with_first_token,
)
from vl_hub.retrieval_scoring import itc_similarity, length_bucketed_scorer, rerank_top_k

logger = logging.getLogger(__name__)

__all__ = ["AUTO_CLASSES", "BlipFeatures", "BlipForImageTextRetrieval", "BlipModel", "BlipPreTrainedModel"]

#: head class name -> Auto classes that load it (read by ``vl_hub.models.blip.register``)
AUTO_CLASSES: dict[str, tuple[str, ...]] = {
    "BlipModel": ("AutoModel",),
    "BlipForImageTextRetrieval": ("AutoModelForImageTextRetrieval",),
}

#: the feature output of :meth:`BlipModel.extract_features` (LAVIS ``BlipOutputFeatures``)
BlipFeatures = ImageTextFeatures


class BlipPreTrainedModel(LavisPreTrainedModel):
    """Base of every BLIP head: config class; weight init and the tower builders (``build_vision_encoder``,
    ``build_text_encoder``, ``build_text_decoder``, ``get_image_embeds``) come from
    :class:`~vl_hub.models._lavis_base.LavisPreTrainedModel`, shared with ALBEF."""

    config: BlipConfig
    config_class = BlipConfig
    base_model_prefix = "blip"


# ---------------------------------------------------------------------------------------------- shared encoding
def _ones_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(input_ids) if attention_mask is None else attention_mask


class _BlipContrastiveMixin:
    """ITC encoders shared by :class:`BlipModel` and :class:`BlipForImageTextRetrieval` (``visual_encoder``,
    ``text_encoder``, ``vision_proj``, ``text_proj``)."""

    config: BlipConfig
    visual_encoder: VisionTransformer
    text_encoder: MedModel
    vision_proj: nn.Linear
    text_proj: nn.Linear

    def encode_images(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixel_values (B, 3, H, W)`` or video ``(B, T, 3, H, W)`` -> ``(image_embeds (B, T*(1+N), D),
        image_feat (B, E))``: every ViT token, and the L2-normalised projected CLS feature (video: frame mean)."""
        pixel_values = check_pixel_values(pixel_values, self.config.vision_config)
        return encode_vision(self.visual_encoder, self.vision_proj, pixel_values)

    def encode_texts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids (B, L)`` (``[CLS]`` first) -> ``(text_embeds (B, L, H), text_feat (B, E))``: the unimodal
        text-encoder states and the L2-normalised projected CLS feature."""
        check_text(input_ids, attention_mask, self.config.text_config)
        states = self.text_encoder(
            input_ids=input_ids, attention_mask=_ones_mask(input_ids, attention_mask), mode="text"
        ).last_hidden_state
        return states, F.normalize(self.text_proj(states[:, 0]), dim=-1)

    def encode_multimodal(
        self,
        image_embeds: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        last_layer_positions: int | None = None,
    ) -> torch.Tensor:
        """Image-grounded text states ``(B, L, H)``: ``input_ids (B, L)`` with ``[ENC]`` put at position 0,
        cross-attending to ``image_embeds (B, Lv, D)`` (every image token attended). ``last_layer_positions=n``:
        the states of the first ``n`` positions only, ``(B, n, H)``, for a fraction of the last layer's cost (see
        :meth:`~vl_hub.layers.med.MedModel.forward`)."""
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=image_embeds.shape[0])
        return self.text_encoder(
            input_ids=with_first_token(input_ids, self.config.text_config.enc_token_id, "enc_token_id"),
            attention_mask=_ones_mask(input_ids, attention_mask),
            encoder_hidden_states=image_embeds,
            mode="multimodal",
            last_layer_positions=last_layer_positions,
        ).last_hidden_state

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values (B, 3, H, W)`` / ``(B, T, 3, H, W)`` -> ``(B, E)`` L2-normalised projected CLS features
        (what ITC compares; the cosine of two of them is the ITC similarity)."""
        return self.encode_images(pixel_values)[1]

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids (B, L)`` -> ``(B, E)`` L2-normalised projected CLS features of the unimodal text encoder."""
        return self.encode_texts(input_ids, attention_mask)[1]


# ---------------------------------------------------------------------------------------------- BlipModel
class BlipModel(ImageTextFeaturesMixin, _BlipContrastiveMixin, BlipPreTrainedModel):
    """BLIP encoders: LAVIS ``BlipFeatureExtractor``.

    Submodules: ``visual_encoder`` (ViT), ``text_encoder`` (MED, cross-attention in every layer), ``vision_proj``,
    ``text_proj`` (to ``embed_dim``) and the ITC temperature ``temp`` (used only by ``return_loss``).

    Loads LAVIS ``blip_feature_extractor`` checkpoints, and pre-training / retrieval ones (their ``itm_head``,
    ``text_decoder``, momentum copies and queues are dropped by the conversion with a log line).
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = TRAINING_STATE_PATTERNS + (r"^itm_head\.", r"^text_decoder\.")

    def __init__(self, config: BlipConfig) -> None:
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
        """LAVIS ``BlipFeatureExtractor.extract_features`` (without its ``no_grad``; wrap it yourself).

        Args:
            pixel_values: ``(B, 3, H, W)`` images or ``(B, T, 3, H, W)`` video frames (modes image, multimodal).
            input_ids: ``(B, L)`` tokenizer ids, ``[CLS]`` first (modes text, multimodal; the multimodal pass puts
                ``[ENC]`` at position 0 itself).
            attention_mask: ``(B, L)`` padding mask (default: all ones).
            mode: ``"image"`` -> ``image_embeds (B, 1+N, D)``, ``image_embeds_proj (B, 1+N, E)`` (normalised per
                token), ``image_feat (B, E)``; ``"text"`` -> ``text_embeds (B, L, H)``, ``text_embeds_proj
                (B, L, E)``, ``text_feat (B, E)``; ``"multimodal"`` -> ``image_embeds`` and ``multimodal_embeds
                (B, L, H)``.

        Returns:
            :data:`BlipFeatures` with the fields of ``mode`` set, the others ``None``.
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
        check_pixel_values(pixel_values, self.config.vision_config)
        check_text(input_ids, attention_mask, self.config.text_config, batch_size=pixel_values.shape[0])
        image_embeds, _ = self.encode_images(pixel_values)
        return ImageTextFeatures(
            image_embeds=image_embeds, multimodal_embeds=self.encode_multimodal(image_embeds, input_ids, attention_mask)
        )

    def _multimodal_embeds(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.encode_multimodal(image_embeds, input_ids, attention_mask)

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
            pixel_values: ``(B, 3, H, W)`` / ``(B, T, 3, H, W)`` or ``None``.
            input_ids: ``(B, L)`` (``[CLS]`` first) or ``None``.
            attention_mask: ``(B, L)`` or ``None`` (all ones).
            return_loss: also return the in-batch ITC loss with the learned temperature (pair ``b`` positive;
                no queue or momentum encoder -- :class:`BlipForImageTextRetrieval` has the full LAVIS objective).

        Returns:
            :data:`BlipFeatures` (``loss`` first when asked for).
        """
        if pixel_values is None and input_ids is None:
            raise ValueError("BlipModel needs pixel_values (images), input_ids (text) or both; got neither")
        if pixel_values is not None and input_ids is not None:
            check_pixel_values(pixel_values, self.config.vision_config)
            check_text(input_ids, attention_mask, self.config.text_config, batch_size=pixel_values.shape[0])
        return self.features_forward(pixel_values, input_ids, attention_mask, return_loss)


# ---------------------------------------------------------------------------------------------- retrieval
def _all_rank_negatives(
    image_feat: torch.Tensor, text_feat: torch.Tensor, temp: torch.Tensor, idx: torch.Tensor | None
) -> HardNegatives:
    """LAVIS ``negative_all_rank``: one hard negative image per text and one text per image, drawn with probability
    ``softmax(sim / temp)`` over the features of every process (same-id pairs excluded).

    Args:
        image_feat, text_feat: ``(B, E)`` this process's normalised features (every process the same ``B``).
        temp: the ITC temperature.
        idx: ``(B,)`` image ids, or ``None`` (each pair its own image: ids ``rank * B + b``).

    Returns:
        :class:`~vl_hub.losses.itm.HardNegatives` whose indices point into the rank-ordered gathered batch
        ``(P * B)`` (:func:`~vl_hub.models._momentum.concat_all_gather` order).
    """
    import torch.distributed as dist

    batch = image_feat.shape[0]
    sizes = concat_all_gather(torch.tensor([batch], device=image_feat.device))
    if bool((sizes != batch).any()):
        raise ValueError(
            f"negative_all_rank needs the same batch size on every process; got {sizes.tolist()}: drop the last "
            "incomplete batch (drop_last=True) or set config.negative_all_rank=False"
        )
    ids = idx if idx is not None else torch.arange(batch, device=image_feat.device) + dist.get_rank() * batch
    ids_world = concat_all_gather(ids)
    with torch.no_grad():
        sim_i2t = image_feat @ concat_all_gather(text_feat).t() / temp  # (B, P*B)
        sim_t2i = text_feat @ concat_all_gather(image_feat).t() / temp
        weights_t2i = hard_negative_weights(sim_t2i, ids, ids_world)
        weights_i2t = hard_negative_weights(sim_i2t, ids, ids_world)
    return HardNegatives(
        image_for_text=torch.multinomial(weights_t2i, 1).squeeze(1),
        text_for_image=torch.multinomial(weights_i2t, 1).squeeze(1),
    )


class BlipForImageTextRetrieval(ContrastiveRetrievalHead, _BlipContrastiveMixin, BlipPreTrainedModel):
    """BLIP image-text retrieval: LAVIS ``BlipITM`` (inference) and ``BlipRetrieval`` (training).

    Submodules (LAVIS names): ``visual_encoder``, ``text_encoder``, ``vision_proj``, ``text_proj``, ``itm_head``
    (``Linear(H, 2)``, column 1 = match), ``temp``; for training the momentum copies ``visual_encoder_m``,
    ``text_encoder_m``, ``vision_proj_m``, ``text_proj_m`` (no gradient, EMA of the online weights) and the
    buffers ``image_queue``/``text_queue`` ``(E, queue_size)``, ``idx_queue`` ``(1, queue_size)``, ``queue_ptr``.

    Inference: ``forward(match_head="itm")`` -> ``itm_logits (B, 2)`` for pairs ``(image b, text b)``;
    ``forward(match_head="itc")`` -> ``itc_sim (N_images, N_texts)`` cosine similarities (no temperature).
    Retrieval over a whole set: :meth:`score_pairs` / :meth:`retrieval_scores` (ITC top-k, ITM re-scoring).

    Training (``idx`` given or ``return_loss=True``): LAVIS ``BlipRetrieval.forward`` -- ITC against momentum keys
    and the queues with targets spread over same-``idx`` pairs and momentum distillation (``alpha``), ITM on
    ``[positives; text + hard negative image; image + hard negative text]`` with negatives drawn from the
    in-batch similarities (never a same-``idx`` pair); ``loss = loss_itc + loss_itm``. Momentum update and
    enqueueing happen in training mode only, so evaluating the loss leaves the model untouched.

    ``negative_all_rank`` (LAVIS): with several processes, the hard negatives are drawn from the batches of every
    process (features gathered; the negative image tokens gathered with their gradients); on one process both
    settings are identical. Queues are filled with the features of every process (``all_gather``) as in LAVIS.
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = (r"^text_decoder\.",)

    def __init__(self, config: BlipConfig) -> None:
        super().__init__(config)
        self.build_retrieval_modules(config)
        self.post_init()
        self.copy_params()

    # ------------------------------------------------------------------ forward
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
            pixel_values: ``(B, 3, H, W)`` images or ``(B, T, 3, H, W)`` video frames.
            input_ids: ``(B, L)`` tokenizer ids, ``[CLS]`` first (``[ENC]`` is put at position 0 for ITM here);
                for ``match_head="itc"`` any number ``M`` of texts.
            attention_mask: ``(B, L)`` padding mask (default all ones).
            match_head: inference output: ``"itm"`` -> ``itm_logits (B, 2)``; ``"itc"`` -> ``itc_sim (B, M)``.
            idx: ``(B,)`` image ids (captions of one image share it; positives for ITC and never hard negatives).
                Giving it selects the training loss.
            return_loss: force (``True``) or forbid (``False``) the training loss; ``None``: loss iff ``idx`` given.
                ``True`` without ``idx`` treats every pair of the batch as a different image.
            alpha: momentum-distillation weight for this step (ramp it up with
                ``vl_hub.losses.distill_alpha``); ``None`` uses ``config.alpha``.

        Returns:
            :class:`~vl_hub.modeling_outputs.ImageTextRetrievalOutput` (loss) or
            :class:`~vl_hub.modeling_outputs.ImageTextMatchingOutput`.
        """
        if return_loss is None:
            return_loss = idx is not None
        if pixel_values is None or input_ids is None:
            missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
            raise ValueError(
                f"BlipForImageTextRetrieval needs images and text; missing {', '.join(missing)}. For one modality "
                "use get_image_features / get_text_features"
            )
        check_pixel_values(pixel_values, self.config.vision_config)
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
        all_rank = self.config.negative_all_rank and is_distributed()
        alpha = distill_weight(alpha, self.config.alpha)
        clamp_temperature_(self.temp)

        image_embeds, image_feat = self.encode_images(pixel_values)
        _, text_feat = self.encode_texts(input_ids, attention_mask)
        itc, _ = momentum_itc(self, pixel_values, input_ids, attention_mask, image_feat, text_feat, alpha, idx=idx)

        # ITM: positives, then (text b, hard negative image), then (image b, hard negative text), in one pass.
        enc_ids = with_first_token(input_ids, self.config.text_config.enc_token_id, "enc_token_id")
        if all_rank:  # LAVIS negative_all_rank: negatives drawn from the batches of every process
            negatives = _all_rank_negatives(image_feat, text_feat, self.temp, idx)
            neg_images = all_gather_with_grad(image_embeds)[negatives.image_for_text]
            neg_ids = concat_all_gather(enc_ids)[negatives.text_for_image]
            neg_mask = concat_all_gather(attention_mask)[negatives.text_for_image]
        else:
            with torch.no_grad():
                sim_i2t = image_feat @ text_feat.t() / self.temp
                sim_t2i = text_feat @ image_feat.t() / self.temp
            negatives = sample_hard_negatives(sim_i2t, sim_t2i, idx)
            neg_images = image_embeds[negatives.image_for_text]
            neg_ids, neg_mask = enc_ids[negatives.text_for_image], attention_mask[negatives.text_for_image]
        ids_all = torch.cat([enc_ids, enc_ids, neg_ids], dim=0)
        mask_all = torch.cat([attention_mask, attention_mask, neg_mask], dim=0)
        images_all = torch.cat([image_embeds, neg_images, image_embeds], dim=0)
        states = self.text_encoder(
            input_ids=ids_all, attention_mask=mask_all, encoder_hidden_states=images_all, mode="multimodal"
        ).last_hidden_state
        logits = self.itm_head(states[:, 0])
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
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        image_index: torch.Tensor | None = None,
        image_key_values: list | None = None,
    ) -> torch.Tensor:
        """ITM "match" logits ``(B,)`` of pairs ``(image_embeds[b] (Lv, D), input_ids[b] (L,))``.

        With ``image_index (B,)``, ``image_embeds`` holds ``U`` unique images ``(U, Lv, D)`` and pair ``b`` is
        ``(image_embeds[image_index[b]], input_ids[b])``: the cross-attention keys/values of each image are projected
        once and gathered per pair (same logits as passing ``image_embeds[image_index]``, far less work when pairs
        share images). ``image_key_values``: those keys/values already projected
        (``text_encoder.project_encoder_states(image_embeds)``), for several calls over the same images.
        Only ``[ENC]`` is read, so the last text layer computes position 0 only (``last_layer_positions=1``).
        """
        if image_key_values is not None and image_index is None:
            raise ValueError("image_key_values needs image_index (the unique image each pair attends)")
        if image_index is None:
            states = self.encode_multimodal(image_embeds, input_ids, attention_mask, last_layer_positions=1)
        else:
            check_text(input_ids, attention_mask, self.config.text_config, batch_size=image_index.shape[0])
            states = self.text_encoder(
                input_ids=with_first_token(input_ids, self.config.text_config.enc_token_id, "enc_token_id"),
                attention_mask=_ones_mask(input_ids, attention_mask),
                encoder_hidden_states=image_embeds,
                encoder_kv_index=image_index,
                encoder_key_values=image_key_values,
                mode="multimodal",
                last_layer_positions=1,
            ).last_hidden_state
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
    ) -> RetrievalScores:
        """Retrieval scores of ``N`` images x ``M`` texts (LAVIS ``compute_sim_matrix``): ITC similarity, then
        ``itm_logit[:, 1] + sim`` on each query's ``k_test`` best candidates, -100 elsewhere.

        Args:
            image_embeds: ``(N, Lv, D)`` vision tokens (from :meth:`encode_images`; may live on the CPU, the pairs
                being scored are moved to the model's device).
            image_feat: ``(N, E)`` normalised image features.
            input_ids, attention_mask: ``(M, L)`` texts (``[CLS]`` or ``[ENC]`` first; ITM uses ``[ENC]``).
            text_feat: ``(M, E)`` normalised text features.
            k_test: candidates re-scored per query (default ``config.k_test``).
            pairs_per_call: at most this many pairs per ITM forward (bounds memory); several queries share one.
            reuse_itm: a pair in the top-k of both directions is scored once.

        Returns:
            :class:`~vl_hub.modeling_outputs.RetrievalScores` ``(score_i2t (N, M), score_t2i (M, N), sim)``.
        """
        check_text(input_ids, attention_mask, self.config.text_config)
        if image_embeds.shape[0] != image_feat.shape[0] or input_ids.shape[0] != text_feat.shape[0]:
            raise ValueError(
                f"got {image_embeds.shape[0]} image_embeds but {image_feat.shape[0]} image_feat, and "
                f"{input_ids.shape[0]} texts but {text_feat.shape[0]} text_feat; pass matching sets"
            )
        device = self.itm_head.weight.device
        attention_mask = _ones_mask(input_ids, attention_mask)
        sim = itc_similarity(image_feat.to(device), text_feat.to(device))

        def prepare(unique: torch.Tensor) -> tuple[torch.Tensor, list]:
            # the pairs of a call come image by image: move and project each distinct image once per call
            images = image_embeds[unique.to(image_embeds.device)].to(device)
            return images, self.text_encoder.project_encoder_states(images)

        def pair_logits(
            images: tuple, slot: torch.Tensor, text_index: torch.Tensor, length: int | None
        ) -> torch.Tensor:
            rows = text_index.to(input_ids.device)
            ids, mask = input_ids[rows, :length].to(device), attention_mask[rows, :length].to(device)
            return self.itm_match_logits(images[0], ids, mask, image_index=slot.to(device), image_key_values=images[1])

        scorer = length_bucketed_scorer(pair_logits, attention_mask, prepare=prepare)
        return rerank_top_k(sim, scorer, k_test or self.config.k_test, pairs_per_call, reuse_itm)

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
        """:meth:`score_pairs` for in-memory images ``(N, 3, H, W)`` (or videos) and texts ``(M, L)``, encoded
        ``batch_size`` at a time."""
        images = [self.encode_images(pixel_values[i : i + batch_size]) for i in range(0, pixel_values.shape[0], batch_size)]
        attention_mask = _ones_mask(input_ids, attention_mask)
        text_feat = torch.cat(
            [self.encode_texts(input_ids[i : i + batch_size], attention_mask[i : i + batch_size])[1]
             for i in range(0, input_ids.shape[0], batch_size)]
        )
        return self.score_pairs(
            torch.cat([e for e, _ in images]), torch.cat([f for _, f in images]), input_ids, attention_mask,
            text_feat, k_test=k_test, pairs_per_call=pairs_per_call,
        )
