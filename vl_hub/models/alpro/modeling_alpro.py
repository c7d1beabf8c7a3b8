"""ALPRO heads (LAVIS ``alpro_models``) on the shared TimeSformer and MED layers.

* :class:`AlproModel` (``AutoModel``): video, text and multimodal features (ALPRO has no feature-extractor class in
  LAVIS; this is its encoders with the contrastive projections);
* :class:`AlproForVideoTextRetrieval` (``AutoModelForVideoTextRetrieval``): LAVIS ``AlproRetrieval`` -- in-batch
  video-text contrastive loss + video-text matching with hard negatives for training, ITC similarity and matching
  logits for inference, and ``compute_sim_matrix``'s two-stage scoring (ITC ranking, matching on the top ``k_test``);
* :class:`AlproForVideoQuestionAnswering` (``AutoModelForVideoQuestionAnswering``): LAVIS ``AlproQA`` -- answer
  classification over the answer vocabulary ``config.id2label``.

Fusion: ALPRO has no cross-attention. The text runs through the text layers ``[0, fusion_layer)`` (token types 0),
then ``[text states ; video tokens]`` with the mask ``[text mask ; ones]`` runs through the fusion layers
``[fusion_layer, N)`` (self-attention only); the matching head and the QA classifier read position 0.

Videos are ``pixel_values (B, T, 3, H, W)`` (the layout of the processor and of transformers' video models); the
TimeSformer gets ``(B, 3, T, H, W)``, LAVIS's layout. Parameter names are LAVIS's except the TimeSformer wrapper level:
LAVIS ``visual_encoder.model.*`` is ``visual_encoder.*`` here and ``text_encoder.bert.*`` (original ALPRO checkpoints)
is ``text_encoder.*``, both renamed by ``convert_alpro_checkpoint.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from vl_hub.layers.med import MedModel
from vl_hub.layers.timesformer import TimeSformer
from vl_hub.losses import (
    clamp_temperature_,
    contrastive_targets,
    itm_labels,
    itm_loss,
    sample_hard_negatives,
    soft_cross_entropy,
)
from vl_hub.modeling_outputs import RetrievalScores
from vl_hub.modeling_utils import VlHubPreTrainedModel
from vl_hub.models._lavis_conversion import TRAINING_STATE_PATTERNS
from vl_hub.models._momentum import gather_local_first
from vl_hub.models.alpro.configuration_alpro import AlproConfig
from vl_hub.models.alpro.inputs import check_choice, check_same_batch, check_text, check_video
from vl_hub.retrieval_scoring import itc_similarity, length_bucketed_scorer, rerank_top_k

__all__ = [
    "AUTO_CLASSES",
    "AlproForVideoQuestionAnswering",
    "AlproForVideoTextRetrieval",
    "AlproModel",
    "AlproPreTrainedModel",
    "VideoQuestionAnsweringOutput",
    "VideoTextFeatures",
    "VideoTextMatchingOutput",
    "VideoTextRetrievalOutput",
]

#: head class name -> Auto classes that load it (read by ``vl_hub.models.alpro.register``)
AUTO_CLASSES: dict[str, tuple[str, ...]] = {
    "AlproModel": ("AutoModel",),
    "AlproForVideoTextRetrieval": ("AutoModelForVideoTextRetrieval",),
    "AlproForVideoQuestionAnswering": ("AutoModelForVideoQuestionAnswering",),
}

# LAVIS state no ALPRO head keeps: the MLM head of the pre-training text encoder (``text_encoder.cls.*``).
_PRETRAIN_ONLY = (r"^text_encoder\.cls\.",)
# What the QA head drops from a retrieval / pre-training checkpoint (LAVIS loads those with strict=False).
_CONTRASTIVE_STATE = (r"^itm_head\.", r"^vision_proj\.", r"^text_proj\.", r"^temp$")


# ---------------------------------------------------------------------------------------------- outputs
@dataclass
class VideoTextFeatures(ModelOutput):
    """Unimodal and multimodal ALPRO features.

    Attributes:
        loss: ``()`` in-batch contrastive loss, when asked for (``return_loss=True``).
        video_embeds: ``(B, 1+N, D)`` TimeSformer output: cls token, then each of the ``N`` spatial tokens averaged
            over the frames (after the final LayerNorm).
        video_embeds_proj: ``(B, 1+N, E)`` ``vision_proj`` of every video token, L2-normalised per token.
        video_feat: ``(B, E)`` the normalised projected video cls feature used for ITC.
        text_embeds: ``(B, L, H)`` states of the text layers ``[0, fusion_layer)`` (``[CLS]`` first).
        text_embeds_proj: ``(B, L, E)`` ``text_proj`` of every text state, L2-normalised per token.
        text_feat: ``(B, E)`` the normalised projected text ``[CLS]`` feature used for ITC.
        multimodal_embeds: ``(B, L+1+N, H)`` fusion-layer output over ``[text ; video]`` (position 0 is what the
            matching head and the QA classifier read).
    """

    loss: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None
    video_embeds_proj: torch.Tensor | None = None
    video_feat: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    text_embeds_proj: torch.Tensor | None = None
    text_feat: torch.Tensor | None = None
    multimodal_embeds: torch.Tensor | None = None


@dataclass
class VideoTextMatchingOutput(ModelOutput):
    """Inference outputs of :class:`AlproForVideoTextRetrieval`.

    Attributes:
        itm_logits: ``(B, 2)`` matching logits of the pairs ``(video b, text b)``; column 1 means "match".
        itc_sim: ``(N_videos, N_texts)`` cosine similarity of the projected cls features (no temperature).
        video_embeds: ``(B, 1+N, D)`` video tokens.
        video_feat: ``(N_videos, E)`` normalised video features (ITC).
        text_feat: ``(N_texts, E)`` normalised text features (ITC).
    """

    itm_logits: torch.Tensor | None = None
    itc_sim: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None
    video_feat: torch.Tensor | None = None
    text_feat: torch.Tensor | None = None


@dataclass
class VideoTextRetrievalOutput(ModelOutput):
    """Training output of :class:`AlproForVideoTextRetrieval` (LAVIS ``AlproOutput``).

    Attributes:
        loss: ``()`` ``loss_itc + loss_itm``.
        loss_itc: ``()`` video-text contrastive loss (LAVIS ``loss_vtc``).
        loss_itm: ``()`` video-text matching loss (LAVIS ``loss_vtm``) over ``[positives; text + hard negative video;
            hard negative text + video]``.
        sim_v2t: ``(B, P*B)`` video-to-text ITC logits (divided by the temperature) against the texts of all ``P``
            processes, this process's texts first.
        sim_t2v: ``(B, P*B)`` text-to-video ITC logits, likewise.
        itm_logits: ``(3B, 2)`` matching logits.
        itm_labels: ``(3B,)`` ``[1]*B + [0]*2B``.
    """

    loss: torch.Tensor | None = None
    loss_itc: torch.Tensor | None = None
    loss_itm: torch.Tensor | None = None
    sim_v2t: torch.Tensor | None = None
    sim_t2v: torch.Tensor | None = None
    itm_logits: torch.Tensor | None = None
    itm_labels: torch.Tensor | None = None


@dataclass
class VideoQuestionAnsweringOutput(ModelOutput):
    """Output of :class:`AlproForVideoQuestionAnswering` (LAVIS ``AlproOutputWithLogits``).

    Attributes:
        loss: ``()`` cross-entropy of ``logits`` against ``labels`` (labels -100 are ignored), when labels are given.
        logits: ``(B, C)`` answer-class logits over ``config.id2label``.
        video_embeds: ``(B, 1+N, D)`` video tokens.
        text_embeds: ``(B, L, H)`` question states of the text layers.
        multimodal_embeds: ``(B, L+1+N, H)`` fusion-layer output (position 0 feeds the classifier).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    multimodal_embeds: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------- base
class AlproPreTrainedModel(VlHubPreTrainedModel):
    """Base of every ALPRO head: config class, weight initialisation and the tower builders.

    Class attributes read by the LAVIS conversion (:mod:`vl_hub.models.alpro.convert_alpro_checkpoint`):
    ``_lavis_unused_state`` (regexes of LAVIS keys the head does not keep) and ``_lavis_renames``.
    """

    config: AlproConfig
    config_class = AlproConfig
    base_model_prefix = "alpro"
    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    _no_split_modules: ClassVar[list[str]] = ["TimeSformerBlock", "MedLayer"]
    _lavis_unused_state: ClassVar[tuple[str, ...]] = TRAINING_STATE_PATTERNS + _PRETRAIN_ONLY
    _lavis_renames: ClassVar[tuple[tuple[str, str], ...]] = (
        ("visual_encoder.model.", "visual_encoder."),
        ("text_encoder.bert.", "text_encoder."),
    )

    def _init_weights(self, module: nn.Module) -> None:
        """TimeSformer: LAVIS's init (truncated normal, zero ``time_embed``, ``temporal_fc`` zeroed in every block but
        the first); everything else BERT's (normal ``initializer_range``, zero biases, unit LayerNorms); ``temp`` =
        ``config.temp``. Through ``transformers.initialization`` so that loaded values are never overwritten."""
        std = self.config.initializer_range
        if module is self:
            temp = getattr(self, "temp", None)
            if isinstance(temp, nn.Parameter):
                init.constant_(temp, float(self.config.temp))
            return
        if isinstance(module, TimeSformer):
            # Children were initialised first (BERT style); the video tower's own scheme overrides them here.
            vstd = self.config.vision_config.initializer_range
            init.trunc_normal_(module.pos_embed, std=vstd)
            init.trunc_normal_(module.cls_token, std=vstd)
            init.zeros_(module.time_embed)
            for sub in module.blocks.modules():
                if isinstance(sub, nn.Linear):
                    init.trunc_normal_(sub.weight, std=vstd)
                    if sub.bias is not None:
                        init.zeros_(sub.bias)
            for block in list(module.blocks)[1:]:
                init.zeros_(block.temporal_fc.weight)
                init.zeros_(block.temporal_fc.bias)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    @staticmethod
    def build_video_encoder(config: AlproConfig) -> TimeSformer:
        """The TimeSformer of ``config.vision_config`` (``visual_encoder.*``)."""
        attn = getattr(config, "_attn_implementation", None)
        return TimeSformer(
            **config.vision_config.timesformer_kwargs(), attn_implementation=attn if attn in ("sdpa", "eager") else "sdpa"
        )

    @staticmethod
    def build_text_encoder(config: AlproConfig) -> MedModel:
        """The text/fusion transformer of ``config.text_config`` (``text_encoder.*``)."""
        return MedModel(config.text_config.to_med_settings())


def _ones_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(input_ids) if attention_mask is None else attention_mask


class _AlproEncodersMixin:
    """Video/text encoding and fusion shared by the heads (``visual_encoder``, ``text_encoder``; the projections where
    the head has them)."""

    config: AlproConfig
    visual_encoder: TimeSformer
    text_encoder: MedModel

    def encode_video_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values (B, T, 3, H, W)`` -> TimeSformer tokens ``(B, 1+N, D)`` (cls, then the frame-averaged
        spatial tokens)."""
        pixel_values = check_video(pixel_values, self.config.vision_config)
        return self.visual_encoder(pixel_values.transpose(1, 2))

    def encode_text_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``input_ids (B, L)`` -> states of the text layers ``[0, fusion_layer)`` ``(B, L, H)``; token types default
        to 0, what ALPRO passes."""
        check_text(input_ids, attention_mask, self.config.text_config)
        return self.text_encoder(
            input_ids=input_ids,
            attention_mask=_ones_mask(input_ids, attention_mask),
            token_type_ids=token_type_ids,
            mode="text",
        ).last_hidden_state

    def fuse(
        self, text_embeds: torch.Tensor, attention_mask: torch.Tensor | None, video_embeds: torch.Tensor
    ) -> torch.Tensor:
        """The fusion layers over ``[text_embeds (B, L, H) ; video_embeds (B, Lv, H)]`` with the mask
        ``[attention_mask (B, L) ; ones]`` -> ``(B, L+Lv, H)``."""
        if text_embeds.shape[0] != video_embeds.shape[0]:
            raise ValueError(
                f"batch sizes differ: {video_embeds.shape[0]} videos but {text_embeds.shape[0]} texts; pass one text "
                "per video"
            )
        batch, length = text_embeds.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=text_embeds.device)
        mask = torch.cat([attention_mask, attention_mask.new_ones(video_embeds.shape[:2])], dim=1)
        return self.text_encoder(
            encoder_embeds=torch.cat([text_embeds, video_embeds.to(text_embeds.dtype)], dim=1),
            attention_mask=mask,
            mode="fusion",
        ).last_hidden_state

    def encode_multimodal(
        self,
        video_embeds: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fused states ``(B, L+Lv, H)`` of ``video_embeds (B, Lv, D)`` and the texts ``input_ids (B, L)`` (their text
        states are computed unless ``text_embeds (B, L, H)`` are given)."""
        check_text(input_ids, attention_mask, self.config.text_config)
        if text_embeds is None:
            text_embeds = self.encode_text_states(input_ids, attention_mask)
        return self.fuse(text_embeds, _ones_mask(input_ids, attention_mask), video_embeds)


class _AlproContrastiveMixin(_AlproEncodersMixin):
    """ITC features (heads with ``vision_proj`` / ``text_proj``)."""

    vision_proj: nn.Linear
    text_proj: nn.Linear

    def encode_videos(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixel_values (B, T, 3, H, W)`` -> ``(video_embeds (B, 1+N, D), video_feat (B, E))``: the TimeSformer
        tokens and the L2-normalised projected cls feature."""
        video_embeds = self.encode_video_tokens(pixel_values)
        return video_embeds, F.normalize(self.vision_proj(video_embeds[:, 0]), dim=-1)

    def encode_images(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as :meth:`encode_videos` (the name the cross-family retrieval task calls)."""
        return self.encode_videos(pixel_values)

    def encode_texts(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids (B, L)`` (``[CLS]`` first) -> ``(text_embeds (B, L, H), text_feat (B, E))``: the text-layer
        states and the L2-normalised projected ``[CLS]`` feature."""
        text_embeds = self.encode_text_states(input_ids, attention_mask, token_type_ids)
        return text_embeds, F.normalize(self.text_proj(text_embeds[:, 0]), dim=-1)

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values (B, T, 3, H, W)`` -> ``(B, E)`` normalised projected video features (ITC)."""
        return self.encode_videos(pixel_values)[1]

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`get_video_features` (the name the cross-family tasks call)."""
        return self.get_video_features(pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids (B, L)`` -> ``(B, E)`` normalised projected text features (ITC)."""
        return self.encode_texts(input_ids, attention_mask)[1]


# ---------------------------------------------------------------------------------------------- AlproModel
class AlproModel(_AlproContrastiveMixin, AlproPreTrainedModel):
    """ALPRO encoders: ``visual_encoder`` (TimeSformer), ``text_encoder`` (BERT split at ``fusion_layer``),
    ``vision_proj`` / ``text_proj`` (to ``embed_dim``) and the ITC temperature ``temp`` (used only by
    ``return_loss``).

    Loads retrieval checkpoints (their ``itm_head`` is dropped by the LAVIS conversion); QA checkpoints have no
    projections, so ``video_feat`` / ``text_feat`` are untrained there (the encoders and ``multimodal_embeds`` are).
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = TRAINING_STATE_PATTERNS + _PRETRAIN_ONLY + (r"^itm_head\.",)

    def __init__(self, config: AlproConfig) -> None:
        super().__init__(config)
        width, embed_dim = config.vision_config.hidden_size, config.embed_dim
        self.visual_encoder = self.build_video_encoder(config)
        self.text_encoder = self.build_text_encoder(config)
        self.vision_proj = nn.Linear(width, embed_dim)
        self.text_proj = nn.Linear(config.text_config.hidden_size, embed_dim)
        self.temp = nn.Parameter(torch.tensor(float(config.temp)))
        self.post_init()

    def extract_features(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mode: str = "multimodal",
    ) -> VideoTextFeatures:
        """Features of one kind (LAVIS feature-extractor convention; no ``no_grad`` inside).

        Args:
            pixel_values: ``(B, T, 3, H, W)`` videos (modes video, multimodal).
            input_ids: ``(B, L)`` token ids, ``[CLS]`` first (modes text, multimodal).
            attention_mask: ``(B, L)`` padding mask (default all ones).
            mode: ``"video"`` -> ``video_embeds``, ``video_embeds_proj``, ``video_feat``; ``"text"`` ->
                ``text_embeds``, ``text_embeds_proj``, ``text_feat``; ``"multimodal"`` -> ``video_embeds``,
                ``text_embeds`` and ``multimodal_embeds (B, L+1+N, H)``.

        Returns:
            :class:`VideoTextFeatures` with the fields of ``mode`` set.
        """
        check_choice("mode", mode, ("video", "text", "multimodal"))
        if mode == "video":
            if pixel_values is None:
                raise ValueError("mode='video' needs pixel_values (B, T, 3, H, W); run the processor on videos")
            return self._video_features(pixel_values)
        if mode == "text":
            if input_ids is None:
                raise ValueError("mode='text' needs input_ids (B, L); run the processor on the text")
            return self._text_features(input_ids, attention_mask)
        missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
        if missing:
            raise ValueError(f"mode='multimodal' needs both videos and text; missing {', '.join(missing)}")
        check_video(pixel_values, self.config.vision_config)
        check_same_batch(pixel_values, input_ids)
        video_embeds = self.encode_video_tokens(pixel_values)
        text_embeds = self.encode_text_states(input_ids, attention_mask)
        return VideoTextFeatures(
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            multimodal_embeds=self.fuse(text_embeds, attention_mask, video_embeds),
        )

    def _video_features(self, pixel_values: torch.Tensor) -> VideoTextFeatures:
        video_embeds, video_feat = self.encode_videos(pixel_values)
        return VideoTextFeatures(
            video_embeds=video_embeds,
            video_embeds_proj=F.normalize(self.vision_proj(video_embeds), dim=-1),
            video_feat=video_feat,
        )

    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> VideoTextFeatures:
        text_embeds, text_feat = self.encode_texts(input_ids, attention_mask)
        return VideoTextFeatures(
            text_embeds=text_embeds,
            text_embeds_proj=F.normalize(self.text_proj(text_embeds), dim=-1),
            text_feat=text_feat,
        )

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_loss: bool = False,
    ) -> VideoTextFeatures:
        """Features of the modalities given: videos -> the ``"video"`` features, text -> the ``"text"`` features, both
        -> all of them plus ``multimodal_embeds`` (one text per video).

        Args:
            pixel_values: ``(B, T, 3, H, W)`` or ``None``.
            input_ids: ``(B, L)`` or ``None``.
            attention_mask: ``(B, L)`` or ``None`` (all ones).
            return_loss: also return the in-batch ITC loss with the learned temperature (ALPRO's ``loss_vtc``).

        Returns:
            :class:`VideoTextFeatures` (``loss`` first when asked for).
        """
        if pixel_values is None and input_ids is None:
            raise ValueError("AlproModel needs pixel_values (videos), input_ids (text) or both; got neither")
        if pixel_values is not None and input_ids is not None:
            check_video(pixel_values, self.config.vision_config)
            check_text(input_ids, attention_mask, self.config.text_config)
            check_same_batch(pixel_values, input_ids)
        out = VideoTextFeatures()
        if pixel_values is not None:
            video = self._video_features(pixel_values)
            out.video_embeds, out.video_embeds_proj, out.video_feat = (
                video.video_embeds, video.video_embeds_proj, video.video_feat,
            )
        if input_ids is not None:
            text = self._text_features(input_ids, attention_mask)
            out.text_embeds, out.text_embeds_proj, out.text_feat = text.text_embeds, text.text_embeds_proj, text.text_feat
        if pixel_values is not None and input_ids is not None:
            out.multimodal_embeds = self.fuse(out.text_embeds, attention_mask, out.video_embeds)
        if return_loss:
            if out.video_feat is None or out.text_feat is None:
                raise ValueError("return_loss=True needs both pixel_values and input_ids (the ITC loss pairs them)")
            clamp_temperature_(self.temp)
            out.loss, _, _ = _video_text_contrastive_loss(out.video_feat, out.text_feat, self.temp)
        return out


# ---------------------------------------------------------------------------------------------- losses
def _video_text_contrastive_loss(
    video_feat: torch.Tensor, text_feat: torch.Tensor, temp: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ALPRO's VTC: in-batch InfoNCE over the features of all processes, targets on this process's pairs.

    Returns:
        ``(loss (), sim_v2t (B, P*B), sim_t2v (B, P*B))`` with this process's block first.
    """
    sim_v2t = video_feat @ gather_local_first(text_feat).t() / temp
    sim_t2v = text_feat @ gather_local_first(video_feat).t() / temp
    with torch.no_grad():
        targets = contrastive_targets(video_feat.shape[0], sim_v2t.shape[1], device=sim_v2t.device, dtype=sim_v2t.dtype)
    loss = (soft_cross_entropy(sim_v2t, targets) + soft_cross_entropy(sim_t2v, targets)) / 2
    return loss, sim_v2t, sim_t2v


# ---------------------------------------------------------------------------------------------- retrieval
class AlproForVideoTextRetrieval(_AlproContrastiveMixin, AlproPreTrainedModel):
    """ALPRO video-text retrieval: LAVIS ``AlproRetrieval``.

    Submodules (LAVIS names): ``visual_encoder``, ``text_encoder``, ``vision_proj``, ``text_proj``, ``itm_head``
    (``Linear(H, 2)``, column 1 = match) and ``temp``.

    Inference: ``forward(match_head="itm")`` -> ``itm_logits (B, 2)`` of the pairs ``(video b, text b)``;
    ``forward(match_head="itc")`` -> ``itc_sim (N_videos, N_texts)``. A whole set: :meth:`retrieval_scores` /
    :meth:`score_pairs` (LAVIS ``compute_sim_matrix``: ITC ranking, then ``itm_logit[:, 1] + sim`` on each query's
    ``k_test`` best candidates and -100 elsewhere, the candidates of many queries batched into one fusion pass).

    Training (``return_loss=True``): LAVIS ``AlproRetrieval.forward`` -- in-batch VTC with the learned temperature
    (features of all processes gathered with their gradients) plus VTM on ``[positives; (text b, hard negative
    video); (hard negative text, video b)]``, negatives drawn with probability ``softmax(sim)`` over the other pairs
    of the batch; ``loss = loss_itc + loss_itm``. ALPRO has no momentum encoders or queues, and treats every other
    pair of the batch as a negative (it takes no image/video ids).
    """

    def __init__(self, config: AlproConfig) -> None:
        super().__init__(config)
        width, text_width, embed_dim = config.vision_config.hidden_size, config.text_config.hidden_size, config.embed_dim
        self.visual_encoder = self.build_video_encoder(config)
        self.text_encoder = self.build_text_encoder(config)
        self.vision_proj = nn.Linear(width, embed_dim)
        self.text_proj = nn.Linear(text_width, embed_dim)
        self.itm_head = nn.Linear(text_width, 2)
        self.temp = nn.Parameter(torch.tensor(float(config.temp)))
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        match_head: str = "itm",
        return_loss: bool = False,
    ) -> VideoTextMatchingOutput | VideoTextRetrievalOutput:
        """Matching logits / ITC similarity (inference) or the LAVIS training loss.

        Args:
            pixel_values: ``(B, T, 3, H, W)`` videos.
            input_ids: ``(B, L)`` texts (``[CLS]`` first, padded to ``max_txt_len`` by the processor); with
                ``match_head="itc"`` any number ``M`` of texts.
            attention_mask: ``(B, L)`` padding mask (default all ones).
            match_head: inference output: ``"itm"`` -> ``itm_logits (B, 2)``; ``"itc"`` -> ``itc_sim (B, M)``.
            return_loss: compute the training loss (pairs ``(video b, text b)`` are the positives).

        Returns:
            :class:`VideoTextRetrievalOutput` (loss) or :class:`VideoTextMatchingOutput`.
        """
        if pixel_values is None or input_ids is None:
            missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
            raise ValueError(
                f"AlproForVideoTextRetrieval needs videos and text; missing {', '.join(missing)}. For one modality use "
                "get_video_features / get_text_features"
            )
        check_video(pixel_values, self.config.vision_config)
        check_text(input_ids, attention_mask, self.config.text_config)
        if return_loss:
            check_same_batch(pixel_values, input_ids)
            return self._training_loss(pixel_values, input_ids, attention_mask)
        check_choice("match_head", match_head, ("itm", "itc"))
        if match_head == "itc":
            _, video_feat = self.encode_videos(pixel_values)
            _, text_feat = self.encode_texts(input_ids, attention_mask)
            return VideoTextMatchingOutput(itc_sim=video_feat @ text_feat.t(), video_feat=video_feat, text_feat=text_feat)
        check_same_batch(pixel_values, input_ids)
        video_embeds = self.encode_video_tokens(pixel_values)
        states = self.encode_multimodal(video_embeds, input_ids, attention_mask)
        return VideoTextMatchingOutput(itm_logits=self.itm_head(states[:, 0]), video_embeds=video_embeds)

    def _training_loss(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> VideoTextRetrievalOutput:
        batch = pixel_values.shape[0]
        attention_mask = _ones_mask(input_ids, attention_mask)
        clamp_temperature_(self.temp)
        video_embeds, video_feat = self.encode_videos(pixel_values)
        text_embeds, text_feat = self.encode_texts(input_ids, attention_mask)
        loss_itc, sim_v2t, sim_t2v = _video_text_contrastive_loss(video_feat, text_feat, self.temp)

        # VTM: positives, (text b, hard negative video), (hard negative text, video b) -- one fusion pass.
        negatives = sample_hard_negatives(sim_v2t[:, :batch].detach(), sim_t2v[:, :batch].detach())
        neg_text = negatives.text_for_image
        texts = torch.cat([text_embeds, text_embeds, text_embeds[neg_text]], dim=0)
        masks = torch.cat([attention_mask, attention_mask, attention_mask[neg_text]], dim=0)
        videos = torch.cat([video_embeds, video_embeds[negatives.image_for_text], video_embeds], dim=0)
        logits = self.itm_head(self.fuse(texts, masks, videos)[:, 0])
        labels = itm_labels(batch, device=logits.device)
        loss_itm = itm_loss(logits, labels)
        return VideoTextRetrievalOutput(
            loss=loss_itc + loss_itm,
            loss_itc=loss_itc,
            loss_itm=loss_itm,
            sim_v2t=sim_v2t,
            sim_t2v=sim_t2v,
            itm_logits=logits,
            itm_labels=labels,
        )

    # ------------------------------------------------------------------ retrieval scoring
    def itm_match_logits(
        self,
        video_embeds: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """"Match" logits ``(P,)`` of the pairs ``(video_embeds[p] (Lv, D), input_ids[p] (L,))``; pass the pairs' text
        states ``text_embeds (P, L, H)`` to skip recomputing them."""
        states = self.encode_multimodal(video_embeds, input_ids, attention_mask, text_embeds=text_embeds)
        return self.itm_head(states[:, 0])[:, 1]

    @torch.no_grad()
    def score_pairs(
        self,
        video_embeds: torch.Tensor,
        video_feat: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        text_feat: torch.Tensor,
        k_test: int | None = None,
        pairs_per_call: int = 1024,
        reuse_itm: bool = True,
        text_embeds: torch.Tensor | None = None,
    ) -> RetrievalScores:
        """Retrieval scores of ``N`` videos x ``M`` texts (LAVIS ``compute_sim_matrix``).

        Args:
            video_embeds: ``(N, Lv, D)`` video tokens (from :meth:`encode_videos`; may live on the CPU, the pairs
                scored are moved to the model's device).
            video_feat: ``(N, E)`` normalised video features.
            input_ids, attention_mask: ``(M, L)`` texts.
            text_feat: ``(M, E)`` normalised text features.
            k_test: candidates re-scored per query (default ``config.k_test``).
            pairs_per_call: at most this many pairs per fusion forward; several queries share one.
            reuse_itm: a pair in the top-k of both directions is scored once.
            text_embeds: ``(M, L, H)`` text-layer states of the texts (as LAVIS caches them); computed once here when
                not given.

        Returns:
            :class:`~vl_hub.modeling_outputs.RetrievalScores` ``(score_i2t (N, M) video->text, score_t2i (M, N),
            sim (N, M))``.
        """
        check_text(input_ids, attention_mask, self.config.text_config)
        if video_embeds.shape[0] != video_feat.shape[0] or input_ids.shape[0] != text_feat.shape[0]:
            raise ValueError(
                f"got {video_embeds.shape[0]} video_embeds but {video_feat.shape[0]} video_feat, and "
                f"{input_ids.shape[0]} texts but {text_feat.shape[0]} text_feat; pass matching sets"
            )
        device = self.itm_head.weight.device
        attention_mask = _ones_mask(input_ids, attention_mask)
        if text_embeds is None:
            text_embeds = self._text_states_in_batches(input_ids, attention_mask)
        elif text_embeds.shape[:2] != input_ids.shape:
            raise ValueError(
                f"text_embeds {tuple(text_embeds.shape)} does not match input_ids {tuple(input_ids.shape)}; pass the "
                "text states of these texts (encode_texts(...)[0])"
            )
        sim = itc_similarity(video_feat.to(device), text_feat.to(device))

        def pair_logits(
            unique: torch.Tensor, slot: torch.Tensor, text_index: torch.Tensor, length: int | None
        ) -> torch.Tensor:
            videos = video_embeds[unique.to(video_embeds.device)].to(device)[slot.to(device)]
            rows = text_index.to(text_embeds.device)
            mask = attention_mask[rows.to(attention_mask.device), :length].to(device)
            states = self.fuse(text_embeds[rows, :length].to(device), mask, videos)
            return self.itm_head(states[:, 0])[:, 1]

        scorer = length_bucketed_scorer(pair_logits, attention_mask)
        return rerank_top_k(sim, scorer, k_test or self.config.k_test, pairs_per_call, reuse_itm)

    def _text_states_in_batches(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int = 256
    ) -> torch.Tensor:
        return torch.cat(
            [
                self.encode_text_states(input_ids[i : i + batch_size], attention_mask[i : i + batch_size])
                for i in range(0, input_ids.shape[0], batch_size)
            ]
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
        """:meth:`score_pairs` for in-memory videos ``(N, T, 3, H, W)`` and texts ``(M, L)``, encoded ``batch_size``
        at a time (text states kept for the fusion pass, as LAVIS's ``compute_sim_matrix``)."""
        videos = [self.encode_videos(pixel_values[i : i + batch_size]) for i in range(0, pixel_values.shape[0], batch_size)]
        attention_mask = _ones_mask(input_ids, attention_mask)
        texts = [
            self.encode_texts(input_ids[i : i + batch_size], attention_mask[i : i + batch_size])
            for i in range(0, input_ids.shape[0], batch_size)
        ]
        return self.score_pairs(
            torch.cat([e for e, _ in videos]),
            torch.cat([f for _, f in videos]),
            input_ids,
            attention_mask,
            torch.cat([f for _, f in texts]),
            k_test=k_test,
            pairs_per_call=pairs_per_call,
            text_embeds=torch.cat([e for e, _ in texts]),
        )


# ---------------------------------------------------------------------------------------------- video QA
class AlproForVideoQuestionAnswering(_AlproEncodersMixin, AlproPreTrainedModel):
    """ALPRO video question answering as classification: LAVIS ``AlproQA``.

    Submodules: ``visual_encoder``, ``text_encoder`` and ``classifier`` = ``Linear(H, 2H) -> ReLU -> Linear(2H, C)``
    on position 0 of the fusion output, ``C = config.num_labels``; ``config.id2label`` maps each class to its answer
    string (the training answer vocabulary, e.g. MSRVTT-QA's 1,500 or MSVD-QA's 2,423 most frequent answers).

    ``forward(..., labels)`` gives the cross-entropy loss (LAVIS ``forward(is_train=True)``; labels -100, answers
    outside the vocabulary, are ignored); :meth:`classify_answers` gives the logits and :meth:`predict_answers` the
    answer strings.
    """

    _lavis_unused_state: ClassVar[tuple[str, ...]] = TRAINING_STATE_PATTERNS + _PRETRAIN_ONLY + _CONTRASTIVE_STATE

    def __init__(self, config: AlproConfig) -> None:
        super().__init__(config)
        hidden = config.text_config.hidden_size
        self.visual_encoder = self.build_video_encoder(config)
        self.text_encoder = self.build_text_encoder(config)
        self.classifier = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.ReLU(inplace=True), nn.Linear(2 * hidden, config.num_labels)
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> VideoQuestionAnsweringOutput:
        """Answer logits (and the loss with ``labels``).

        Args:
            pixel_values: ``(B, T, 3, H, W)`` videos.
            input_ids: ``(B, L)`` questions (``[CLS]`` first, padded to ``max_txt_len`` by the processor).
            attention_mask: ``(B, L)`` padding mask (default all ones).
            labels: ``(B,)`` answer classes in ``[0, num_labels)``, or -100 to ignore a question.

        Returns:
            :class:`VideoQuestionAnsweringOutput` with ``loss`` (when labels are given), ``logits (B, C)``, and the
            intermediate ``video_embeds``, ``text_embeds``, ``multimodal_embeds``.
        """
        if pixel_values is None or input_ids is None:
            missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
            raise ValueError(
                f"AlproForVideoQuestionAnswering needs videos and questions; missing {', '.join(missing)}"
            )
        check_video(pixel_values, self.config.vision_config)
        check_text(input_ids, attention_mask, self.config.text_config)
        check_same_batch(pixel_values, input_ids)
        if labels is not None:
            labels = self._check_labels(labels, input_ids.shape[0])
        video_embeds = self.encode_video_tokens(pixel_values)
        text_embeds = self.encode_text_states(input_ids, attention_mask)
        states = self.fuse(text_embeds, attention_mask, video_embeds)
        logits = self.classifier(states[:, 0])
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if bool((labels != -100).any()):
                loss = F.cross_entropy(logits, labels, ignore_index=-100)
            else:
                # No in-vocabulary answer in the batch: a zero loss that keeps the graph, instead of NaN.
                loss = logits.sum() * 0.0
        return VideoQuestionAnsweringOutput(
            loss=loss, logits=logits, video_embeds=video_embeds, text_embeds=text_embeds, multimodal_embeds=states
        )

    def _check_labels(self, labels: torch.Tensor, batch: int) -> torch.Tensor:
        if not isinstance(labels, torch.Tensor):
            labels = torch.as_tensor(labels)
        labels = labels.reshape(-1) if labels.dim() == 2 and labels.shape[1] == 1 else labels
        if labels.dim() != 1 or labels.shape[0] != batch:
            raise ValueError(f"labels must be ({batch},) answer classes, one per question; got shape {tuple(labels.shape)}")
        if labels.is_floating_point():
            raise ValueError(f"labels must be integer answer classes; got dtype {labels.dtype}")
        num = self.config.num_labels
        bad = (labels != -100) & ((labels < 0) | (labels >= num))
        if bool(bad.any()):
            raise ValueError(
                f"labels {labels[bad].tolist()} are outside the answer vocabulary [0, {num}); map answers with "
                "config.label2id and give -100 to answers outside it"
            )
        return labels.long()

    def classify_answers(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Answer logits ``(B, C)`` (LAVIS ``AlproQA.predict``'s ``predictions``)."""
        return self(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask).logits

    @torch.no_grad()
    def predict_answers(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> list[str]:
        """The predicted answer string of each question: ``config.id2label[argmax logits]``."""
        indices = self.classify_answers(pixel_values, input_ids, attention_mask).argmax(dim=-1).tolist()
        id2label = self.config.id2label
        return [str(id2label[i]) for i in indices]
