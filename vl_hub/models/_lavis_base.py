"""The base class of the LAVIS-derived ViT + BERT families (BLIP, ALBEF): weight initialisation, the ITC state a
head holds itself (``temp``, queues) and the tower builders on the shared layers (:mod:`vl_hub.layers.vit`,
:mod:`vl_hub.layers.med`). Each family subclasses it with its config class and LAVIS conversion settings."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from vl_hub.layers.med import (
    CrossAttentionFactory,
    MedLMHeadModel,
    MedModel,
    init_med_weights,
)
from vl_hub.layers.vit import VisionTransformer
from vl_hub.modeling_utils import VlHubPreTrainedModel
from vl_hub.models._inputs import check_pixel_values
from vl_hub.models._lavis_conversion import TRAINING_STATE_PATTERNS
from vl_hub.losses import dequeue_and_enqueue_, image_text_contrastive_loss
from vl_hub.losses.contrastive import ContrastiveOutput
from vl_hub.models._momentum import MomentumMixin, concat_all_gather, init_contrastive_state_

__all__ = ["ContrastiveRetrievalHead", "LavisPreTrainedModel", "encode_vision", "momentum_itc", "vision_tokens"]


def vision_tokens(visual_encoder: VisionTransformer, pixel_values: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` -> ViT tokens ``(B, 1+N, D)``; ``(B, T, 3, H, W)`` video frames (already checked) -> the
    frames' tokens concatenated ``(B, T*(1+N), D)``, frame ``t``'s CLS token at ``t * (1+N)``."""
    if pixel_values.dim() == 5:
        batch, frames = pixel_values.shape[:2]
        tokens = visual_encoder(pixel_values.flatten(0, 1))  # (B*T, 1+N, D)
        return tokens.reshape(batch, frames * tokens.shape[1], tokens.shape[2])
    return visual_encoder(pixel_values)


def encode_vision(
    visual_encoder: VisionTransformer, vision_proj: nn.Linear, pixel_values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 3, H, W)`` or ``(B, T, 3, H, W)`` (already checked) -> ``(tokens (B, T*(1+N), D), feat (B, E))``.

    ``feat`` is the normalised projected CLS token; for video the frames' projected CLS tokens are averaged before
    normalising (BLIP's video retrieval).
    """
    tokens = vision_tokens(visual_encoder, pixel_values)
    if pixel_values.dim() == 5:
        batch, frames = pixel_values.shape[:2]
        cls = tokens.view(batch, frames, -1, tokens.shape[-1])[:, :, 0]  # (B, T, D)
        return tokens, F.normalize(vision_proj(cls).mean(dim=1), dim=-1)
    return tokens, F.normalize(vision_proj(tokens[:, 0]), dim=-1)


def momentum_itc(
    model: nn.Module,
    pixel_values: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    image_feat: torch.Tensor,
    text_feat: torch.Tensor,
    alpha: float,
    idx: torch.Tensor | None = None,
    momentum_text_encoder: nn.Module | None = None,
) -> tuple[ContrastiveOutput, torch.Tensor]:
    """The momentum-distilled ITC of a LAVIS training step (retrieval and pre-training heads): momentum update
    (training mode), the batch's momentum features, ITC against them and the queues with distillation weight
    ``alpha``, then (training mode) the gathered momentum features enqueued (with the ids when ``model`` keeps an
    ``idx_queue``; ``-100`` for pairs without one).

    Args:
        model: a :class:`~vl_hub.models._momentum.MomentumMixin` with ``visual_encoder_m``, ``vision_proj_m``,
            ``text_encoder_m``, ``text_proj_m``, ``temp``, ``image_queue`` / ``text_queue`` ``(E, Q)``,
            ``queue_ptr`` and ``config.queue_size`` (and optionally ``idx_queue`` ``(1, Q)``).
        pixel_values: ``(B, 3, H, W)`` (or ``(B, T, 3, H, W)``) images, already checked.
        input_ids, attention_mask: ``(B, L)`` texts.
        image_feat, text_feat: ``(B, E)`` the online normalised features.
        alpha: distillation weight.
        idx: ``(B,)`` image ids (pairs with equal ids are positives; needs ``model.idx_queue``) or ``None`` (the
            diagonal pairs are the positives).
        momentum_text_encoder: the momentum text tower to run in ``mode="text"`` (default ``model.text_encoder_m``;
            ALBEF pre-training passes its masked-LM model's ``bert``).

    Returns:
        ``(itc, image_embeds_m)``: the ITC output and the momentum image tokens ``(B, T*(1+N), D)`` (no gradient), for
        later distillation (ALBEF's masked LM).
    """
    idx_queue: torch.Tensor | None = getattr(model, "idx_queue", None)
    if idx is not None and idx_queue is None:
        raise ValueError(
            f"{type(model).__name__} keeps no idx_queue, so ITC cannot take image ids (idx); pass idx=None"
        )
    text_encoder_m = model.text_encoder_m if momentum_text_encoder is None else momentum_text_encoder
    with torch.no_grad():
        if model.training:
            model.momentum_update()
        image_embeds_m, image_feat_m = encode_vision(model.visual_encoder_m, model.vision_proj_m, pixel_values)
        text_states_m = text_encoder_m(input_ids=input_ids, attention_mask=attention_mask, mode="text")
        text_feat_m = F.normalize(model.text_proj_m(text_states_m.last_hidden_state[:, 0]), dim=-1)
    use_queue = model.config.queue_size > 0
    itc = image_text_contrastive_loss(
        image_feat,
        text_feat,
        model.temp,
        image_feat_m=image_feat_m,
        text_feat_m=text_feat_m,
        image_queue=model.image_queue if use_queue else None,
        text_queue=model.text_queue if use_queue else None,
        idx=idx,
        idx_queue=idx_queue if use_queue and idx is not None else None,
        alpha=alpha,
    )
    if use_queue and model.training:
        queues, values = [model.image_queue, model.text_queue], [image_feat_m, text_feat_m]
        if idx_queue is not None:
            batch = image_feat.shape[0]
            ids = idx if idx is not None else torch.full((batch,), -100, dtype=torch.long, device=input_ids.device)
            queues.append(idx_queue)
            values.append(ids)
        dequeue_and_enqueue_(tuple(queues), tuple(concat_all_gather(v) for v in values), model.queue_ptr)
    return itc, image_embeds_m


class LavisPreTrainedModel(VlHubPreTrainedModel):
    """Weight init and tower builders of a ViT + MED head; ``config`` needs ``vision_config`` (with ``vit_kwargs()``
    and ``initializer_range``), ``text_config`` (with ``to_med_settings()``), ``initializer_range`` and ``temp``.

    Class attributes read by the LAVIS conversion (:mod:`vl_hub.models._lavis_conversion`):
    ``_lavis_unused_state`` (regexes of LAVIS keys the head does not keep) and ``_lavis_renames``
    (``(old_prefix, new_prefix)`` pairs).
    """

    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    _no_split_modules: ClassVar[list[str]] = ["ViTBlock", "MedLayer"]
    #: regexes of LAVIS state-dict keys this head does not keep (dropped by the conversion, with a log line)
    _lavis_unused_state: ClassVar[tuple[str, ...]] = TRAINING_STATE_PATTERNS + (r"^temp$",)
    #: ``(old_prefix, new_prefix)`` renames applied by the conversion
    _lavis_renames: ClassVar[tuple[tuple[str, str], ...]] = ()

    def _init_weights(self, module: nn.Module) -> None:
        """BERT init for Linear/Embedding/LayerNorm; truncated normal for the ViT's cls/pos embeddings."""
        std = self.config.initializer_range
        if module is self:
            self._init_own_state()
            return
        if isinstance(module, VisionTransformer):
            vstd = self.config.vision_config.initializer_range
            init.trunc_normal_(module.pos_embed, mean=0.0, std=vstd)
            init.trunc_normal_(module.cls_token, mean=0.0, std=vstd)
        elif isinstance(module, (nn.Linear, nn.Embedding, nn.LayerNorm)) or hasattr(module, "bias") and isinstance(
            getattr(module, "bias", None), nn.Parameter
        ):
            if isinstance(module, nn.Linear):
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
            else:
                init_med_weights(module, std)
        elif isinstance(module, nn.Conv2d):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)

    def _init_own_state(self) -> None:
        """Tensors held by the head itself: ``temp`` = ``config.temp``; ITC queues as LAVIS starts them (random unit
        columns, ids -100, pointer 0). Through ``transformers.initialization`` so loaded values are never touched."""
        init_contrastive_state_(self, self.config.temp)

    # ------------------------------------------------------------------ builders
    @staticmethod
    def build_vision_encoder(config: Any) -> VisionTransformer:
        """The ViT of ``config.vision_config`` (``visual_encoder.*`` in checkpoints)."""
        attn = getattr(config, "_attn_implementation", None)
        return VisionTransformer(
            **config.vision_config.vit_kwargs(), attn_implementation=attn if attn in ("sdpa", "eager") else "sdpa"
        )

    @staticmethod
    def build_text_encoder(
        config: Any, cross_attention_factory: CrossAttentionFactory | None = None, **overrides: object
    ) -> MedModel:
        """The text encoder (``text_encoder.*``) of ``config.text_config`` (``overrides``: :class:`MedSettings` fields);
        which layers have cross-attention follows the text config (BLIP: all, ALBEF: from ``fusion_layer``)."""
        return MedModel(config.text_config.to_med_settings(**overrides), cross_attention_factory)

    @staticmethod
    def build_text_decoder(config: Any, **overrides: object) -> MedLMHeadModel:
        """A causal text decoder with its tied LM head (``text_decoder.bert.*``, ``text_decoder.cls.*``) of
        ``config.text_config`` (``overrides``: :class:`MedSettings` fields)."""
        return MedLMHeadModel(config.text_config.to_med_settings(**overrides), is_decoder=True)

    def get_image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values (B, 3, H, W)`` -> ViT tokens ``(B, 1+N, D)``; ``(B, T, 3, H, W)`` video frames ->
        the frames' tokens concatenated ``(B, T*(1+N), D)`` (the original's zero-shot video path)."""
        return vision_tokens(self.visual_encoder, check_pixel_values(pixel_values, self.config.vision_config))


class ContrastiveRetrievalHead(MomentumMixin):
    """The module layout of the ITC + ITM retrieval heads (LAVIS ``BlipRetrieval`` / ``AlbefRetrieval``), for a
    :class:`LavisPreTrainedModel` subclass: ``visual_encoder``, ``text_encoder``, ``vision_proj``, ``text_proj``,
    ``itm_head``, the learned ``temp``, their momentum copies ``*_m`` (:class:`~vl_hub.models._momentum.
    MomentumMixin`) and the feature queues ``image_queue`` / ``text_queue`` ``(E, Q)``, ``idx_queue`` ``(1, Q)``,
    ``queue_ptr``."""

    _momentum_names: ClassVar[tuple[tuple[str, str], ...]] = (
        ("visual_encoder", "visual_encoder_m"),
        ("text_encoder", "text_encoder_m"),
        ("vision_proj", "vision_proj_m"),
        ("text_proj", "text_proj_m"),
    )

    def build_retrieval_modules(self, config: Any) -> None:
        """Creates every module and buffer of the head from ``config`` (call before ``post_init``, then
        ``copy_params``: the initialisation draws the momentum copies independently, LAVIS starts them equal)."""
        vision_width, text_width = config.vision_config.hidden_size, config.text_config.hidden_size
        embed_dim = config.embed_dim
        for suffix in ("", "_m"):
            setattr(self, f"visual_encoder{suffix}", self.build_vision_encoder(config))
            setattr(self, f"text_encoder{suffix}", self.build_text_encoder(config))
            setattr(self, f"vision_proj{suffix}", nn.Linear(vision_width, embed_dim))
            setattr(self, f"text_proj{suffix}", nn.Linear(text_width, embed_dim))
            if not suffix:
                self.itm_head = nn.Linear(text_width, 2)
                self.temp = nn.Parameter(torch.tensor(float(config.temp)))
        queue_size = config.queue_size
        self.register_buffer("image_queue", F.normalize(torch.randn(embed_dim, queue_size), dim=0))
        self.register_buffer("text_queue", F.normalize(torch.randn(embed_dim, queue_size), dim=0))
        self.register_buffer("idx_queue", torch.full((1, queue_size), -100, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def reset_queue_ptr(self) -> None:
        """Restarts writing the queues at column 0 (LAVIS does this after loading a checkpoint)."""
        self.queue_ptr.zero_()

    @staticmethod
    def _pair_ids(idx: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
        """``idx`` as a ``(B,)`` long tensor on ``device`` (``None`` stays ``None``), or an error naming its shape."""
        if idx is None:
            return None
        idx = idx.reshape(-1).to(device=device, dtype=torch.long)
        if idx.numel() != batch:
            raise ValueError(f"idx must hold one image id per pair ({batch}); got shape {tuple(idx.shape)}")
        return idx
