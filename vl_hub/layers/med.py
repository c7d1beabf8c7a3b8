"""The multimodal text transformer shared by BLIP, ALBEF and ALPRO (LAVIS ``lavis/models/med.py``, ALBEF ``xbert``).

A post-LayerNorm BERT whose layers may carry cross-attention to image/video states:

* embeddings ``LayerNorm(word + [token_type +] position)``, positions counted from the cached length;
* each layer runs self-attention, then cross-attention (when the layer has one and ``mode`` is ``"multimodal"``
  or ``"fusion"``), then the GELU feed-forward block;
* ``fusion_layer=k`` (ALBEF, ALPRO) splits the stack: ``mode="text"`` runs layers ``[0, k)``, ``mode="fusion"``
  runs ``[k, N)`` on ``encoder_embeds`` (no embedding layer), ``mode="multimodal"`` runs all; only layers ``>= k``
  have cross-attention. ``fusion_layer=None`` (BLIP) gives every layer cross-attention and ``mode="text"`` runs
  all layers without it, so the unimodal and image-grounded encoders share their weights;
* ``is_decoder=True`` multiplies a causal mask into the padding mask (BLIP captioning/VQA, ALBEF VQA decoders);
* :class:`MedLMHeadModel` adds the tied LM head (``cls.predictions.*``).

Parameter names are LAVIS's (HF BERT's), so LAVIS state dicts load with a prefix strip only: ``text_encoder.`` for
BLIP/ALPRO encoders (:class:`MedModel`), ``text_encoder.`` / ``text_decoder.`` for ``bert.*`` + ``cls.*`` models
(:class:`MedLMHeadModel`). The ``embeddings.position_ids`` buffer stored in those checkpoints is dropped on load.

Masks (built once per forward, shared by all layers): self-attention ``(1 - m) * -10000`` (BERT's value; its
exponential is exactly 0 in float32), cross-attention ``(1 - m) * finfo(dtype).min`` (HF 4.26
``invert_attention_mask``, which LAVIS used). KV cache: see :mod:`vl_hub.layers.med_attention`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions, CausalLMOutputWithCrossAttentions

from vl_hub.layers.attention import additive_mask, check_attn_implementation
from vl_hub.layers.med_attention import (
    EncoderMask,
    EncoderStates,
    MedAttentionProjections,
    MedCache,
    MedCrossAttention,
    MedFeedForward,
    MedResidualOutput,
    MedSelfAttention,
    check_encoder_kv_index,
    first_query_rows,
    group_by_state,
)

__all__ = [
    "MODES",
    "CrossAttentionFactory",
    "MedAttentionProjections",
    "MedCache",
    "MedCrossAttention",
    "MedEmbeddings",
    "MedEncoder",
    "MedLMHeadModel",
    "MedLMPredictionHead",
    "MedLayer",
    "MedModel",
    "MedOnlyLMHead",
    "MedResidualOutput",
    "MedSelfAttention",
    "MedSettings",
    "build_cross_attention_mask",
    "build_self_attention_mask",
    "default_cross_attention_factory",
    "init_med_weights",
]

Mode = Literal["text", "fusion", "multimodal"]
MODES: tuple[str, ...] = ("text", "fusion", "multimodal")

SELF_ATTENTION_MASK_VALUE = -10000.0

# Keys of LAVIS/HF BERT configs that describe nothing this implementation needs (or only HF bookkeeping).
_IGNORED_CONFIG_KEYS = frozenset(
    {"architectures", "model_type", "initializer_range", "hidden_act", "position_embedding_type", "use_cache",
     "is_decoder", "transformers_version", "gradient_checkpointing", "torch_dtype", "dtype", "classifier_dropout",
     "bos_token_id", "eos_token_id", "chunk_size_feed_forward", "tie_word_embeddings", "output_past",
     "directionality"}
)


@dataclass(frozen=True, kw_only=True)
class MedSettings:
    """Architecture of the multimodal text transformer; the tiny counterpart of LAVIS's ``med_config.json``.

    Attributes:
        vocab_size: text vocabulary (BLIP 30524 with ``[DEC]``/``[ENC]``, ALBEF/ALPRO 30522).
        hidden_size: width ``H``; must be divisible by ``num_attention_heads``.
        num_hidden_layers: number of layers ``N``.
        num_attention_heads: heads of every attention.
        intermediate_size: feed-forward width.
        max_position_embeddings: number of learned positions; the cached plus new length may not exceed it.
        layer_norm_eps: LayerNorm epsilon (1e-12 in BERT).
        hidden_dropout_prob, attention_probs_dropout_prob: dropouts (active in training only).
        pad_token_id: padding id of the word embedding (its row gets no gradient), or ``None``.
        encoder_width: width of the cross-attention key/value input (the vision width); ``None`` means ``H``.
        add_cross_attention: whether any layer has cross-attention (``False`` for ALPRO).
        fusion_layer: ``None`` (BLIP): cross-attention in every layer; ``k`` (ALBEF, ALPRO): only layers ``>= k``
            have it and ``mode="text"``/``"fusion"`` run ``[0, k)``/``[k, N)``; ``k == N`` means none.
        add_type_embeddings: add a token-type embedding table (ALPRO); ``type_vocab_size`` rows.
        initializer_range: std of the BERT initialisation.
        attn_implementation: initial ``"sdpa"`` or ``"eager"`` of every attention module (mutable afterwards).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int | None = 0
    encoder_width: int | None = None
    add_cross_attention: bool = True
    fusion_layer: int | None = None
    add_type_embeddings: bool = False
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    attn_implementation: str = "sdpa"

    def __post_init__(self) -> None:
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "max_position_embeddings", "type_vocab_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"MedSettings.{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"MedSettings.hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}; pick a head count that divides the hidden size"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"MedSettings.{name} must be in [0, 1), got {value!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"MedSettings.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"MedSettings.pad_token_id={self.pad_token_id} is outside the vocabulary [0, {self.vocab_size}); "
                "use a valid id or None"
            )
        if self.fusion_layer is not None and not 0 <= self.fusion_layer <= self.num_hidden_layers:
            raise ValueError(
                f"MedSettings.fusion_layer={self.fusion_layer} must be None or in [0, num_hidden_layers="
                f"{self.num_hidden_layers}]"
            )
        if self.encoder_width is None:
            object.__setattr__(self, "encoder_width", self.hidden_size)
        elif self.encoder_width < 1:
            raise ValueError(f"MedSettings.encoder_width must be a positive int or None, got {self.encoder_width!r}")
        object.__setattr__(self, "attn_implementation", check_attn_implementation(self.attn_implementation))

    @classmethod
    def from_med_config(cls, config: Mapping[str, Any], **overrides: Any) -> MedSettings:
        """Builds settings from a LAVIS/HF BERT config dict (``med_config.json``, ``bert_config_alpro.json``).

        ``overrides`` replace entries (e.g. ``num_hidden_layers=18`` for ALBEF NLVR, ``encoder_width=vision_width``).
        As in an HF ``BertConfig``, a missing ``add_cross_attention`` means ``False`` (every LAVIS config sets it).
        Raises for settings LAVIS supports but these checkpoints never use (non-GELU activation, relative positions)
        and for unknown keys.
        """
        merged = {"add_cross_attention": False, **dict(config), **overrides}
        if merged.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"hidden_act={merged['hidden_act']!r} is not supported; only 'gelu' (exact erf) is")
        if merged.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                f"position_embedding_type={merged['position_embedding_type']!r} is not supported; only 'absolute' is"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in merged if k not in fields and k not in _IGNORED_CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown MED config keys {unknown}; known keys are {sorted(fields)}")
        return cls(**{k: v for k, v in merged.items() if k in fields})

    def has_cross_attention(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` has a cross-attention block."""
        if not self.add_cross_attention:
            return False
        return self.fusion_layer is None or layer_idx >= self.fusion_layer

    def layer_range(self, mode: str) -> range:
        """The layers ``mode`` runs: text ``[0, k)``, fusion ``[k, N)``, multimodal ``[0, N)`` (``k = N`` for BLIP)."""
        split = self.num_hidden_layers if self.fusion_layer is None else self.fusion_layer
        if mode == "text":
            return range(0, split)
        if mode == "fusion":
            if self.fusion_layer is None:
                raise ValueError(
                    "mode='fusion' needs fusion_layer (ALBEF/ALPRO configs); with fusion_layer=None (BLIP) use "
                    "mode='multimodal' with input ids, or 'text'"
                )
            return range(split, self.num_hidden_layers)
        if mode == "multimodal":
            return range(0, self.num_hidden_layers)
        raise ValueError(f"mode={mode!r} is not one of {MODES}")


CrossAttentionFactory = Callable[[MedSettings, int], nn.Module | None]
"""``factory(settings, layer_idx) -> module | None``, called once per layer that ``settings.has_cross_attention``.

The returned module becomes ``encoder.layer[layer_idx].crossattention`` (``None``: that layer has none) and is called
as ``module(hidden_states, encoder_hidden_states, encoder_attention_mask, cache=cache,
output_attentions=output_attentions) -> (hidden_states, probabilities | None)`` where

* ``hidden_states``: ``(B, Lq, H)`` output of the self-attention block; the module returns the block output
  ``(B, Lq, H)`` *including* its residual connection and LayerNorm (as LAVIS ``BertAttention``);
* ``encoder_hidden_states``: what the caller passed to :meth:`MedModel.forward` unchanged, a tensor
  ``(B, Lk, encoder_width)`` or a list of tensors (one per image, NLVR);
* ``encoder_attention_mask``: the prepared additive mask(s) from :func:`build_cross_attention_mask` (``None``,
  a ``(B, 1, 1|Lq, Lk)`` tensor, or a list matching a list of states);
* ``cache``: the forward's cache (an ``EncoderDecoderCache`` whenever cross-attention runs with caching), or ``None``;
* ``output_attentions``: return the probabilities (any shape; collected into ``cross_attentions``).

With ``MedModel.forward(last_layer_positions=n)`` the last layer run calls its module with ``hidden_states (B, n, H)``
and the masks' query rows cut to ``n``; the default module supports it (a custom one must not assume ``Lq`` equals the
text length).

A module with an ``attn_implementation`` attribute follows :meth:`MedModel.set_attn_implementation`.
"""


def default_cross_attention_factory(settings: MedSettings, layer_idx: int) -> MedCrossAttention:
    """The standard cross-attention block (``crossattention.self.*`` / ``crossattention.output.*``)."""
    return MedCrossAttention(
        hidden_size=settings.hidden_size,
        num_heads=settings.num_attention_heads,
        encoder_width=settings.encoder_width,  # type: ignore[arg-type]  # resolved in __post_init__
        layer_norm_eps=settings.layer_norm_eps,
        hidden_dropout=settings.hidden_dropout_prob,
        attention_dropout=settings.attention_probs_dropout_prob,
        attn_implementation=settings.attn_implementation,
        layer_idx=layer_idx,
        first_layer=settings.fusion_layer or 0,
    )


def build_self_attention_mask(
    attention_mask: torch.Tensor | None,
    batch_size: int,
    query_length: int,
    past_length: int,
    is_decoder: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor | None:
    """The additive self-attention mask shared by every layer of one forward.

    Args:
        attention_mask: keep-mask (1 attend, 0 drop): ``(B, P+L)`` padding mask over cached and new tokens, or
            ``(B, L, P+L)`` full mask used as given (no causal mask added, as LAVIS), or ``None`` (attend all).
        batch_size, query_length: ``B`` and ``L`` of the new tokens; past_length: ``P`` cached tokens.
        is_decoder: multiply a causal mask (offset by ``P``) into a 2-D/absent mask.
        dtype, device: of the attention scores.

    Returns:
        ``(B|1, 1, 1|L, P+L)`` with 0 kept and -10000 dropped, or ``None`` when nothing is masked.
    """
    kv_length = past_length + query_length
    if attention_mask is not None:
        if attention_mask.dim() == 3:
            if tuple(attention_mask.shape) != (batch_size, query_length, kv_length):
                raise ValueError(
                    f"3-D attention_mask must have shape (batch, new tokens, cached + new tokens) = "
                    f"{(batch_size, query_length, kv_length)}, got {tuple(attention_mask.shape)}"
                )
            return additive_mask(attention_mask, dtype, SELF_ATTENTION_MASK_VALUE)
        if attention_mask.dim() != 2 or tuple(attention_mask.shape) != (batch_size, kv_length):
            raise ValueError(
                f"attention_mask must have shape (batch, cached + new tokens) = {(batch_size, kv_length)} or be 3-D "
                f"{(batch_size, query_length, kv_length)}; got {tuple(attention_mask.shape)}"
            )
    if not is_decoder:
        return None if attention_mask is None else additive_mask(attention_mask, dtype, SELF_ATTENTION_MASK_VALUE)
    if attention_mask is None and query_length == 1:
        return None  # one new token may see every cached one
    positions = torch.arange(kv_length, device=device)
    causal = positions[None, :] <= positions[past_length:, None]  # (L, P+L)
    keep = causal[None] if attention_mask is None else causal[None] & attention_mask[:, None, :].bool()
    return additive_mask(keep, dtype, SELF_ATTENTION_MASK_VALUE)


def build_cross_attention_mask(
    encoder_attention_mask: torch.Tensor | list[torch.Tensor | None] | None, dtype: torch.dtype
) -> EncoderMask:
    """``(1 - m) * finfo(dtype).min`` per mask (HF 4.26 ``invert_attention_mask``), for the cross-attention.

    Args:
        encoder_attention_mask: keep-mask ``(B, Lk)`` or ``(B, Lq, Lk)``, a list of them (one per image), or
            ``None`` (attend every encoder token).

    Returns:
        ``(B, 1, 1|Lq, Lk)`` additive mask(s) in the same structure, or ``None``.
    """
    if encoder_attention_mask is None:
        return None
    if isinstance(encoder_attention_mask, (list, tuple)):
        return [build_cross_attention_mask(m, dtype) for m in encoder_attention_mask]  # type: ignore[misc]
    if encoder_attention_mask.dim() not in (2, 3):
        raise ValueError(
            f"encoder_attention_mask must be 2-D (batch, encoder tokens) or 3-D (batch, tokens, encoder tokens), "
            f"got shape {tuple(encoder_attention_mask.shape)}"
        )
    return additive_mask(encoder_attention_mask, dtype, torch.finfo(dtype).min)


def _drop_position_ids(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    # LAVIS checkpoints carry the `position_ids` buffer of HF 4.x; positions are computed here instead.
    state_dict.pop(prefix + "position_ids", None)


def init_med_weights(module: nn.Module, initializer_range: float = 0.02) -> None:
    """BERT initialisation of one module (use with ``model.apply`` or as ``PreTrainedModel._init_weights``)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=initializer_range)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=initializer_range)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, MedLMPredictionHead):
        nn.init.zeros_(module.bias)


class MedEmbeddings(nn.Module):
    """``LayerNorm(word + [token_type +] position)`` then dropout (``embeddings.*`` in checkpoints)."""

    def __init__(self, settings: MedSettings) -> None:
        super().__init__()
        self.max_position_embeddings = settings.max_position_embeddings
        self.word_embeddings = nn.Embedding(
            settings.vocab_size, settings.hidden_size, padding_idx=settings.pad_token_id
        )
        self.position_embeddings = nn.Embedding(settings.max_position_embeddings, settings.hidden_size)
        self.token_type_embeddings = (
            nn.Embedding(settings.type_vocab_size, settings.hidden_size) if settings.add_type_embeddings else None
        )
        self.LayerNorm = nn.LayerNorm(settings.hidden_size, eps=settings.layer_norm_eps)
        self.dropout = nn.Dropout(settings.hidden_dropout_prob)
        self.register_load_state_dict_pre_hook(_drop_position_ids)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_length: int = 0,
    ) -> torch.Tensor:
        """Embeds ``input_ids (B, L)`` (or adds positions to ``inputs_embeds (B, L, H)``) -> ``(B, L, H)``.

        Args:
            token_type_ids: ``(B, L)``; ``None`` means type 0 everywhere (what ALPRO passes). Only with
                ``add_type_embeddings``.
            position_ids: ``(B|1, L)`` explicit positions in ``[0, max_position_embeddings)``; by default
                ``past_length, ..., past_length + L - 1``.
            past_length: number of cached tokens before these ones.
        """
        embeds = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        length = embeds.shape[1]
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                embeds = embeds + self.token_type_embeddings.weight[0]
            else:
                embeds = embeds + self.token_type_embeddings(token_type_ids)
        elif token_type_ids is not None:
            raise ValueError(
                "token_type_ids were given but this model has no token-type embeddings "
                "(MedSettings.add_type_embeddings=False); drop token_type_ids"
            )
        if position_ids is None:
            if past_length + length > self.max_position_embeddings:
                raise ValueError(
                    f"{past_length} cached + {length} new tokens exceed max_position_embeddings="
                    f"{self.max_position_embeddings}; shorten the text or the generation length"
                )
            positions = self.position_embeddings.weight[past_length : past_length + length]
        else:
            positions = self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeds + positions))


class MedLayer(GradientCheckpointingLayer):
    """One layer: self-attention -> cross-attention (optional) -> feed-forward (``encoder.layer.{i}.*``).

    Args:
        settings: the architecture.
        layer_idx: position in the stack (cache key).
        crossattention: the layer's cross-attention module (see :data:`CrossAttentionFactory`) or ``None``.
    """

    def __init__(self, settings: MedSettings, layer_idx: int, crossattention: nn.Module | None = None) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.attention = MedSelfAttention(
            hidden_size=settings.hidden_size,
            num_heads=settings.num_attention_heads,
            layer_norm_eps=settings.layer_norm_eps,
            hidden_dropout=settings.hidden_dropout_prob,
            attention_dropout=settings.attention_probs_dropout_prob,
            attn_implementation=settings.attn_implementation,
            layer_idx=layer_idx,
        )
        self.crossattention = crossattention
        self.intermediate = MedFeedForward(settings.hidden_size, settings.intermediate_size)
        self.output = MedResidualOutput(
            settings.intermediate_size, settings.hidden_size, settings.layer_norm_eps, settings.hidden_dropout_prob
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: EncoderStates | None = None,
        encoder_attention_mask: EncoderMask = None,
        cache: Cache | None = None,
        run_cross_attention: bool = False,
        output_attentions: bool = False,
        encoder_kv_index: torch.Tensor | None = None,
        encoder_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
        num_queries: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(B, L, H)`` -> ``(hidden_states (B, Lq, H), self-attention probs | None, cross-attention probs | None)``.

        Masks are the prepared additive ones (:func:`build_self_attention_mask`, :func:`build_cross_attention_mask`).
        Cross-attention runs when ``run_cross_attention`` and the layer has one. ``encoder_kv_index`` ``(B,)``: see
        :meth:`MedModel.forward` (only passed on to the cross-attention module when given, so custom modules without
        that argument keep working); so is ``encoder_key_value``, this layer's precomputed keys/values.
        ``num_queries``: ``Lq``, run the layer for the first ``Lq`` tokens only (self-attention keys/values still
        from all ``L``; cross-attention and feed-forward on ``Lq`` rows); ``None``: ``Lq = L``.
        """
        hidden_states, self_probs = self.attention(
            hidden_states, attention_mask, cache, output_attentions, num_queries=num_queries
        )
        if num_queries is not None:
            encoder_attention_mask = first_query_rows(encoder_attention_mask, num_queries)
        cross_probs = None
        if run_cross_attention and self.crossattention is not None:
            extra = {} if encoder_kv_index is None else {"encoder_kv_index": encoder_kv_index}
            if encoder_key_value is not None:
                extra["encoder_key_value"] = encoder_key_value
            hidden_states, cross_probs = self.crossattention(
                hidden_states, encoder_hidden_states, encoder_attention_mask, cache=cache,
                output_attentions=output_attentions, **extra,
            )
        hidden_states = self.output(self.intermediate(hidden_states), hidden_states)
        return hidden_states, self_probs, cross_probs


class MedEncoder(nn.Module):
    """The layer stack (``encoder.layer.{i}``); cross-attention modules come from ``cross_attention_factory``."""

    def __init__(self, settings: MedSettings, cross_attention_factory: CrossAttentionFactory | None = None) -> None:
        super().__init__()
        factory = default_cross_attention_factory if cross_attention_factory is None else cross_attention_factory
        self.layer = nn.ModuleList(
            MedLayer(settings, i, factory(settings, i) if settings.has_cross_attention(i) else None)
            for i in range(settings.num_hidden_layers)
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        layers: range,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: EncoderStates | None = None,
        encoder_attention_mask: EncoderMask = None,
        cache: Cache | None = None,
        run_cross_attention: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        encoder_kv_index: torch.Tensor | None = None,
        encoder_key_values: Sequence[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
        last_layer_positions: int | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple | None, tuple | None]:
        """Runs ``layers`` on ``(B, L, H)``; returns ``(hidden, all hidden states, self probs, cross probs)``.

        ``encoder_kv_index`` ``(B,)``, ``encoder_key_values`` (one entry per layer), ``last_layer_positions`` ``n``
        (the last layer computes the first ``n`` positions only; ``hidden`` is then ``(B, n, H)``): see
        :meth:`MedModel.forward`."""
        all_hidden = (hidden_states,) if output_hidden_states else None
        self_probs: tuple | None = () if output_attentions else None
        cross_probs: tuple | None = () if output_attentions else None
        if last_layer_positions is not None and not len(layers):
            hidden_states = hidden_states[:, :last_layer_positions]
        for i in layers:
            # hidden states and encoder states go positionally so gradient checkpointing propagates their gradients
            hidden_states, layer_self, layer_cross = self.layer[i](
                hidden_states,
                attention_mask,
                encoder_hidden_states,
                encoder_attention_mask,
                cache=cache,
                run_cross_attention=run_cross_attention,
                output_attentions=output_attentions,
                encoder_kv_index=encoder_kv_index,
                encoder_key_value=None if encoder_key_values is None else encoder_key_values[i],
                num_queries=last_layer_positions if i == layers[-1] else None,
            )
            if output_hidden_states:
                all_hidden += (hidden_states,)
            if output_attentions:
                self_probs += (layer_self,)
                cross_probs += (layer_cross,)
        return hidden_states, all_hidden, self_probs, cross_probs


class MedModel(nn.Module):
    """The text transformer without head (LAVIS ``BertModel(add_pooling_layer=False)`` / ``XBertEncoder``).

    Args:
        settings: the architecture.
        cross_attention_factory: builds each layer's cross-attention (default: :class:`MedCrossAttention`);
            see :data:`CrossAttentionFactory`.
    """

    def __init__(self, settings: MedSettings, cross_attention_factory: CrossAttentionFactory | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.embeddings = MedEmbeddings(settings)
        self.encoder = MedEncoder(settings, cross_attention_factory)
        self.apply(lambda m: init_med_weights(m, settings.initializer_range))

    def get_input_embeddings(self) -> nn.Embedding:
        """The word embedding table ``(vocab_size, H)``."""
        return self.embeddings.word_embeddings

    def set_attn_implementation(self, implementation: str) -> None:
        """Switches every attention module (those with an ``attn_implementation`` attribute) to ``implementation``."""
        implementation = check_attn_implementation(implementation)
        for module in self.modules():
            if hasattr(module, "attn_implementation"):
                module.attn_implementation = implementation

    def set_gradient_checkpointing(self, enable: bool = True) -> None:
        """Enables (non-reentrant) activation checkpointing of every layer when used outside a ``PreTrainedModel``.

        Inside a ``PreTrainedModel``, ``gradient_checkpointing_enable()`` finds the layers by itself.
        """
        checkpoint = lambda fn, *args: torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)  # noqa: E731
        for layer in self.encoder.layer:
            layer.gradient_checkpointing = enable
            layer._gradient_checkpointing_func = checkpoint

    def _cross_attention_runs(self, layers: range, mode: str) -> bool:
        return mode != "text" and any(self.encoder.layer[i].crossattention is not None for i in layers)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        encoder_embeds: torch.Tensor | None = None,
        encoder_hidden_states: EncoderStates | None = None,
        encoder_attention_mask: torch.Tensor | list[torch.Tensor | None] | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        mode: str = "multimodal",
        is_decoder: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        encoder_kv_index: torch.Tensor | None = None,
        encoder_key_values: Sequence[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
        last_layer_positions: int | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """Runs the layers of ``mode`` on text tokens (``input_ids``/``inputs_embeds``) or ``encoder_embeds``.

        Args:
            input_ids: ``(B, L)`` token ids (through the embedding layer).
            attention_mask: keep-mask ``(B, P+L)`` (padding; ``P`` = cached tokens) or ``(B, L, P+L)``; ``None``
                attends everything (causally with ``is_decoder``).
            token_type_ids: ``(B, L)`` (only with ``add_type_embeddings``; ``None`` = type 0).
            position_ids: ``(B|1, L)``; default ``P .. P+L-1``.
            inputs_embeds: ``(B, L, H)`` word embeddings instead of ``input_ids`` (positions are still added).
            encoder_embeds: ``(B, L, H)`` hidden states that skip the embedding layer (``mode="fusion"``:
                ALBEF's text-encoder output, ALPRO's ``[text; video]``).
            encoder_hidden_states: image/video states ``(B, Lk, encoder_width)`` for cross-attention, or a list
                of them (one per image: the default cross-attention of layer ``l`` uses element
                ``(l - fusion_layer) % len``; a custom module gets the whole list).
            encoder_attention_mask: keep-mask ``(B, Lk)``/``(B, L, Lk)`` (list for a list of states); ``None``
                attends every encoder token.
            cache: a transformers ``Cache``. Self-attention keys/values of every layer run are appended; when
                cross-attention runs, a plain cache is wrapped into ``MedCache(cache, DynamicCache())`` (an
                ``EncoderDecoderCache``) whose cross half keeps the image keys/values from the first call on. Use
                the returned ``output.cache`` for the next step.
            use_cache: default ``cache is not None``; ``True`` without a cache creates one, ``False`` ignores it.
            mode: ``"text"``, ``"fusion"`` or ``"multimodal"`` (see the module docstring).
            is_decoder: causal self-attention (for 2-D or absent masks).
            output_attentions: return per-layer probabilities (forces the eager path; they stay in the autograd
                graph, so their gradients can be taken for Grad-CAM).
            output_hidden_states: return the input of the first layer run and the output of each layer run.
            encoder_kv_index: ``(B,)`` integer index, or ``None``. With it, ``encoder_hidden_states`` holds ``U``
                *unique* encoder states ``(U, Lk, encoder_width)`` (a tensor, not a list) and text row ``b``
                cross-attends ``encoder_hidden_states[encoder_kv_index[b]]``: each layer projects the ``U`` states
                into keys/values once and gathers them per row (ITM re-ranking: many pairs share an image). The
                result equals passing ``encoder_hidden_states[encoder_kv_index]``; ``encoder_attention_mask`` stays
                per row. Needs cross-attention modules accepting ``encoder_kv_index`` (the default one does).
            encoder_key_values: the cross-attention keys/values of ``encoder_hidden_states`` per layer, from
                :meth:`project_encoder_states` (``None`` entries for layers without cross-attention): forwards over
                the same states (e.g. ITM on groups of texts against the same images) then project them once.
            last_layer_positions: ``n`` in ``[1, L]``, or ``None``. The last layer run computes the first ``n``
                positions only (its queries, attention outputs, cross-attention and feed-forward; the keys/values of
                its self-attention still come from every position), so ``last_hidden_state`` is ``(B, n, H)`` and
                equals the full forward's ``[:, :n]``. For callers that read ``[CLS]``/``[ENC]`` only (ITM:
                ``n = 1``), it saves nearly all of the last layer. Not combinable with a cache,
                ``output_attentions`` or ``output_hidden_states``.

        Returns:
            ``BaseModelOutputWithPastAndCrossAttentions`` with ``last_hidden_state (B, L, H)`` (``(B, n, H)`` with
            ``last_layer_positions``), ``cache`` (or ``None``), ``hidden_states``, ``attentions`` (one
            ``(B, heads, L, P+L)`` per layer run) and ``cross_attentions`` (one per layer run; ``None`` for layers
            without cross-attention).
        """
        given = [name for name, x in (("input_ids", input_ids), ("inputs_embeds", inputs_embeds),
                                       ("encoder_embeds", encoder_embeds)) if x is not None]
        if len(given) != 1:
            raise ValueError(
                f"pass exactly one of input_ids, inputs_embeds or encoder_embeds; got {given or 'none'}"
            )
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}")
        layers = self.settings.layer_range(mode)
        run_cross = self._cross_attention_runs(layers, mode)
        reference = input_ids if input_ids is not None else (inputs_embeds if inputs_embeds is not None
                                                               else encoder_embeds)
        batch_size, length = reference.shape[:2]  # type: ignore[union-attr]
        if run_cross:
            if encoder_kv_index is not None:
                if not isinstance(encoder_hidden_states, torch.Tensor):
                    raise ValueError(
                        "encoder_kv_index needs encoder_hidden_states to be one (unique states, tokens, "
                        f"encoder_width) tensor, got {type(encoder_hidden_states).__name__}; index a single tensor"
                    )
                self._check_encoder_states(encoder_hidden_states, encoder_hidden_states.shape[0], mode)
                check_encoder_kv_index(encoder_kv_index, batch_size, encoder_hidden_states.shape[0])
            else:
                self._check_encoder_states(encoder_hidden_states, batch_size, mode)

        if use_cache is None:
            use_cache = cache is not None
        if last_layer_positions is not None:
            self._check_last_layer_positions(
                last_layer_positions, length, use_cache, output_attentions, output_hidden_states
            )
        if not use_cache:
            cache = None
        elif cache is None:
            cache = MedCache(DynamicCache(), DynamicCache()) if run_cross else DynamicCache()
        elif run_cross and not isinstance(cache, EncoderDecoderCache):
            cache = MedCache(cache, DynamicCache())
        past_length = cache.get_seq_length(layers.start) if cache is not None and len(layers) else 0

        if encoder_embeds is not None:
            hidden_states = encoder_embeds
        else:
            hidden_states = self.embeddings(
                input_ids=input_ids,
                inputs_embeds=inputs_embeds,
                token_type_ids=token_type_ids,
                position_ids=position_ids,
                past_length=past_length,
            )
        dtype = hidden_states.dtype
        self_mask = build_self_attention_mask(
            attention_mask, batch_size, length, past_length, is_decoder, dtype, hidden_states.device
        )
        cross_mask = build_cross_attention_mask(encoder_attention_mask, dtype) if run_cross else None

        hidden_states, all_hidden, self_probs, cross_probs = self.encoder(
            hidden_states,
            layers,
            self_mask,
            encoder_hidden_states if run_cross else None,
            cross_mask,
            cache=cache,
            run_cross_attention=run_cross,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            encoder_kv_index=(
                group_by_state(encoder_kv_index, encoder_hidden_states.shape[0])  # type: ignore[union-attr]
                if run_cross and encoder_kv_index is not None else None
            ),
            encoder_key_values=encoder_key_values if run_cross else None,
            last_layer_positions=last_layer_positions,
        )
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            cache=cache,
            hidden_states=all_hidden,
            attentions=self_probs,
            cross_attentions=cross_probs,
        )

    def project_encoder_states(self, states: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Cross-attention keys/values ``(U, heads, Lk, head_dim)`` of ``states (U, Lk, encoder_width)`` for every
        layer (``None`` for layers without the default cross-attention), for ``forward(encoder_key_values=...)``."""
        return [
            layer.crossattention.project_key_value(states) if isinstance(layer.crossattention, MedCrossAttention)
            else None
            for layer in self.encoder.layer
        ]

    @staticmethod
    def _check_last_layer_positions(
        positions: int, length: int, use_cache: bool, output_attentions: bool, output_hidden_states: bool
    ) -> None:
        if isinstance(positions, bool) or not isinstance(positions, int) or not 1 <= positions <= length:
            raise ValueError(
                f"last_layer_positions must be an int in [1, text length={length}] (the leading positions the last "
                f"layer computes, 1 for [CLS]/[ENC] only), got {positions!r}; pass None for every position"
            )
        clashing = [name for name, on in (("use_cache/cache", use_cache), ("output_attentions", output_attentions),
                                          ("output_hidden_states", output_hidden_states)) if on]
        if clashing:
            raise ValueError(
                f"last_layer_positions={positions} cannot be combined with {', '.join(clashing)}: the last layer then "
                "computes only the first positions; drop last_layer_positions to get every position's states, "
                "caches and attentions"
            )

    @staticmethod
    def _check_encoder_states(states: EncoderStates | None, batch_size: int, mode: str) -> None:
        if states is None:
            raise ValueError(
                f"mode={mode!r} runs cross-attention layers, so encoder_hidden_states (image/video states, "
                "(batch, tokens, encoder_width)) must be given; use mode='text' for text only"
            )
        for x in states if isinstance(states, (list, tuple)) else [states]:
            if x.dim() != 3 or x.shape[0] != batch_size:
                raise ValueError(
                    f"encoder_hidden_states must be (batch={batch_size}, tokens, encoder_width) tensors, got shape "
                    f"{tuple(x.shape)}; repeat the image states per text (e.g. per beam) to match the batch"
                )


class MedPredictionTransform(nn.Module):
    """``LayerNorm(GELU(dense(x)))`` (``cls.predictions.transform.*``)."""

    def __init__(self, settings: MedSettings) -> None:
        super().__init__()
        self.dense = nn.Linear(settings.hidden_size, settings.hidden_size)
        self.LayerNorm = nn.LayerNorm(settings.hidden_size, eps=settings.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(B, L, H)`` -> ``(B, L, H)``."""
        return self.LayerNorm(F.gelu(self.dense(hidden_states)))


class MedLMPredictionHead(nn.Module):
    """``decoder(transform(x))`` with ``bias`` the very tensor of ``decoder.bias`` (``cls.predictions.*``).

    :class:`MedLMHeadModel` ties ``decoder.weight`` to the word embeddings.
    """

    def __init__(self, settings: MedSettings) -> None:
        super().__init__()
        self.transform = MedPredictionTransform(settings)
        self.decoder = nn.Linear(settings.hidden_size, settings.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(settings.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(B, L, H)`` -> logits ``(B, L, vocab_size)``."""
        return self.decoder(self.transform(hidden_states))


class MedOnlyLMHead(nn.Module):
    """Holds ``predictions`` so that the checkpoint names read ``cls.predictions.*``."""

    def __init__(self, settings: MedSettings) -> None:
        super().__init__()
        self.predictions = MedLMPredictionHead(settings)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(B, L, H)`` -> logits ``(B, L, vocab_size)``."""
        return self.predictions(hidden_states)


class MedLMHeadModel(nn.Module):
    """Text transformer + tied LM head: LAVIS ``BertLMHeadModel`` (decoder) / ``BertForMaskedLM`` (``bert``, ``cls``).

    Args:
        settings: the architecture.
        cross_attention_factory: see :class:`MedModel`.
        is_decoder: default of ``forward(is_decoder=...)``: ``True`` causal LM (BLIP/ALBEF decoders),
            ``False`` bidirectional masked LM (ALBEF ``text_encoder``).
    """

    def __init__(
        self,
        settings: MedSettings,
        cross_attention_factory: CrossAttentionFactory | None = None,
        is_decoder: bool = True,
    ) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        self.bert = MedModel(settings, cross_attention_factory)
        self.cls = MedOnlyLMHead(settings)
        self.cls.apply(lambda m: init_med_weights(m, settings.initializer_range))
        self.tie_weights()

    @property
    def settings(self) -> MedSettings:
        """The architecture."""
        return self.bert.settings

    def tie_weights(self) -> None:
        """Makes ``cls.predictions.decoder.weight`` the word-embedding table and ``decoder.bias`` the head bias."""
        predictions = self.cls.predictions
        predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        predictions.decoder.bias = predictions.bias

    def set_attn_implementation(self, implementation: str) -> None:
        """See :meth:`MedModel.set_attn_implementation`."""
        self.bert.set_attn_implementation(implementation)

    def set_gradient_checkpointing(self, enable: bool = True) -> None:
        """See :meth:`MedModel.set_gradient_checkpointing`."""
        self.bert.set_gradient_checkpointing(enable)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        encoder_embeds: torch.Tensor | None = None,
        encoder_hidden_states: EncoderStates | None = None,
        encoder_attention_mask: torch.Tensor | list[torch.Tensor | None] | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        mode: str = "multimodal",
        is_decoder: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithCrossAttentions:
        """Logits for every (or the last ``logits_to_keep``) position; arguments as :meth:`MedModel.forward`.

        Logits are unshifted: position ``t`` predicts token ``t + 1`` (LAVIS ``prediction_scores``). Losses
        (shifted, label-smoothed) live in ``vl_hub.losses``.

        Returns:
            ``CausalLMOutputWithCrossAttentions`` with ``logits (B, L or logits_to_keep, vocab_size)``, ``cache``,
            ``hidden_states``, ``attentions``, ``cross_attentions`` (``loss`` is ``None``).
        """
        outputs = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            encoder_embeds=encoder_embeds,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            cache=cache,
            use_cache=use_cache,
            mode=mode,
            is_decoder=self.is_decoder if is_decoder is None else is_decoder,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state
        if logits_to_keep > 0:
            hidden_states = hidden_states[:, -logits_to_keep:]
        return CausalLMOutputWithCrossAttentions(
            logits=self.cls(hidden_states),
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )
