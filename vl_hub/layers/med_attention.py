"""Attention blocks of the multimodal text transformer (:mod:`vl_hub.layers.med`).

Parameter names follow LAVIS/HF BERT (``attention.self.{query,key,value}``, ``attention.output.{dense,LayerNorm}``,
``crossattention.self.*``, ``crossattention.output.*``) so that the original checkpoints load with a prefix strip.

Cache contract (transformers ``Cache`` API):

* self-attention appends the new keys/values of every step with ``cache.update(k, v, layer_idx)`` on the
  self-attention cache (``cache.self_attention_cache`` for an :class:`~transformers.EncoderDecoderCache`, the cache
  itself otherwise) and attends over everything cached so far;
* cross-attention projects the encoder (image) states into keys/values once per cache: the first call stores them in
  ``cache.cross_attention_cache`` under ``layer_idx`` and sets ``cache.is_updated[layer_idx]``; later calls (every
  generated token) reuse them. A cache is therefore tied to one set of ``encoder_hidden_states``.

:class:`MedCache` is the ``EncoderDecoderCache`` the text transformer creates itself; its beam reordering leaves the
cross-attention half alone (see there).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, EncoderDecoderCache

from vl_hub.layers.attention import check_attn_implementation, merge_heads, scaled_dot_product_attention

EncoderStates = torch.Tensor | list[torch.Tensor]
"""Cross-attention input: one ``(B, Lk, encoder_width)`` tensor, or a list of them (one per image, NLVR)."""

EncoderMask = torch.Tensor | list[torch.Tensor | None] | None
"""Prepared additive cross-attention mask(s), ``(B, 1, 1|Lq, Lk)`` each, matching :data:`EncoderStates`."""


def check_encoder_kv_index(
    encoder_kv_index: torch.Tensor, batch_size: int, num_states: int, check_values: bool = True
) -> None:
    """Raises unless ``encoder_kv_index`` is a ``(batch_size,)`` integer tensor with values in ``[0, num_states)``.

    The value check (min/max) syncs with the device, so :class:`~vl_hub.layers.med.MedModel` does it once per forward
    and the layers check the shape only (``check_values=False``).
    """
    if encoder_kv_index.dim() != 1 or encoder_kv_index.shape[0] != batch_size or encoder_kv_index.is_floating_point():
        raise ValueError(
            f"encoder_kv_index must be an integer tensor of shape (batch={batch_size},) giving each row's encoder "
            f"state; got dtype {encoder_kv_index.dtype} and shape {tuple(encoder_kv_index.shape)}"
        )
    if check_values and batch_size and (int(encoder_kv_index.min()) < 0 or int(encoder_kv_index.max()) >= num_states):
        raise ValueError(
            f"encoder_kv_index values must be in [0, {num_states}) (the number of unique encoder states passed); "
            f"got min {int(encoder_kv_index.min())}, max {int(encoder_kv_index.max())}"
        )


class EncoderKVIndex(NamedTuple):
    """Rows of a batch grouped by the encoder state they attend (built once per forward by :func:`group_by_state`).

    Attributes:
        index: ``(B,)`` state of each row.
        dest: ``(B,)`` slot of each row in the ``(U * group_size)`` grouped layout: ``state * group_size + rank``.
        group_size: the most rows any state has, ``G``; ``0`` when grouping would waste too much (use a gather).
        states: ``(S,)`` the states that have rows, in order, when some of the ``U`` have none (groups are made for
            those ``S`` only: ``dest`` then counts in ``S`` groups); ``None`` when every state has rows.
    """

    index: torch.Tensor
    dest: torch.Tensor
    group_size: int
    states: torch.Tensor | None = None


def group_by_state(index: torch.Tensor, num_states: int, max_waste: float = 2.0) -> EncoderKVIndex:
    """Groups the rows of ``index (B,)`` by state. Rows of one state can share one attention call over that state's
    keys/values (their query rows stacked), which avoids copying ``(B, heads, Lk, head_dim)`` gathered keys/values.
    Grouping pads every state to the largest group, so it is only chosen when ``U * G <= max_waste * B``.
    One device sync (the largest group) per call."""
    counts = torch.bincount(index, minlength=num_states)
    group_size = int(counts.max()) if index.numel() else 0
    present = counts.nonzero().flatten() if group_size else counts.new_empty(0)
    states = None if present.numel() == num_states else present
    if group_size == 0 or present.numel() * group_size > max_waste * index.numel():
        return EncoderKVIndex(index, index, 0)
    local = index
    if states is not None:  # number the states that have rows 0..S-1
        local = (torch.cumsum(counts > 0, 0) - 1)[index]
        counts = counts[states]
    order = torch.argsort(local, stable=True)
    sorted_state = local[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(index.numel(), device=index.device) - starts[sorted_state]
    dest = torch.empty_like(index)
    dest[order] = sorted_state * group_size + rank
    return EncoderKVIndex(index, dest, group_size, states)


def first_query_rows(mask: EncoderMask, num_queries: int) -> EncoderMask:
    """The rows of the first ``num_queries`` queries of prepared additive mask(s) ``(B|1, 1, 1|Lq, Lk)`` (a list is
    sliced element by element; a mask with one row already serves every query and stays as it is)."""
    if mask is None:
        return None
    if isinstance(mask, (list, tuple)):
        return [first_query_rows(m, num_queries) for m in mask]  # type: ignore[misc]
    return mask[:, :, :num_queries]


def _to_groups(x: torch.Tensor, grouping: EncoderKVIndex, num_states: int) -> torch.Tensor:
    """``(B, h, Lq, d)`` -> ``(U, h, G * Lq, d)`` (empty slots are zeros)."""
    b, h, lq, d = x.shape
    grouped = x.new_zeros(num_states * grouping.group_size, h, lq, d)
    grouped[grouping.dest] = x
    return grouped.view(num_states, grouping.group_size, h, lq, d).transpose(1, 2).reshape(num_states, h, -1, d)


def _from_groups(x: torch.Tensor, grouping: EncoderKVIndex, lq: int) -> torch.Tensor:
    """``(U, h, G * Lq, d)`` -> ``(B, h, Lq, d)``."""
    u, h, _, d = x.shape
    return x.view(u, h, grouping.group_size, lq, d).transpose(1, 2).reshape(-1, h, lq, d)[grouping.dest]


class MedCache(EncoderDecoderCache):
    """``EncoderDecoderCache(self_attention_cache, cross_attention_cache)`` whose ``reorder_cache`` skips the
    cross-attention half.

    ``generate`` repeats the encoder states of each input once per beam (``repeat_interleave``), and beam search only
    ever reorders beams within one input, so the cross-attention keys/values of the rows being swapped are identical:
    copying them every step (``num_layers`` x ``(B * beams, Lk, 2H)``) would change nothing. A caller that reorders
    across inputs with different encoder states must use a plain ``EncoderDecoderCache``.
    """

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Reorders the self-attention cache for beam search (the cross-attention cache is beam-invariant)."""
        self.self_attention_cache.reorder_cache(beam_idx)


class MedAttentionProjections(nn.Module):
    """Query/key/value projections plus the attention itself (LAVIS ``BertSelfAttention``, named ``.self``).

    Args:
        hidden_size: width of the queries (the text stream), ``H``.
        num_heads: attention heads; ``H`` must be divisible by it.
        kv_width: width of the key/value input (``H`` for self-attention, ``encoder_width`` for cross-attention).
        attention_dropout: dropout on the attention probabilities (training only).
        attn_implementation: ``"sdpa"`` or ``"eager"``; a mutable attribute.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        kv_width: int,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        if hidden_size % num_heads != 0:
            raise ValueError(
                f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}; "
                "choose a head count that divides the hidden size"
            )
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.attention_dropout = attention_dropout
        self.attn_implementation = check_attn_implementation(attn_implementation)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(kv_width, hidden_size)
        self.value = nn.Linear(kv_width, hidden_size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def project_query(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(B, Lq, H)`` -> queries ``(B, heads, Lq, head_dim)``."""
        return self._heads(self.query(hidden_states))

    def project_key_value(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, Lk, kv_width)`` -> keys and values ``(B, heads, Lk, head_dim)`` each."""
        return self._heads(self.key(states)), self._heads(self.value(states))

    def attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention through :func:`vl_hub.layers.attention.scaled_dot_product_attention`.

        Returns the context ``(B, Lq, H)`` and, with ``output_attentions``, the probabilities
        ``(B, heads, Lq, Lk)`` (eager path, part of the autograd graph so Grad-CAM can differentiate them).
        """
        context, probs = scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attn_mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
            implementation=self.attn_implementation,
            return_weights=output_attentions,
        )
        return merge_heads(context), probs


class MedResidualOutput(nn.Module):
    """``LayerNorm(dropout(dense(x)) + residual)``: BERT's post-LN sub-block output (``.output`` in checkpoints).

    Args:
        in_features: width of ``x`` (``H`` after attention, ``intermediate_size`` after the FFN).
        hidden_size: output width ``H``.
        layer_norm_eps: LayerNorm epsilon (1e-12 in BERT).
        dropout: hidden dropout.
    """

    def __init__(self, in_features: int, hidden_size: int, layer_norm_eps: float, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``hidden_states: (B, L, in_features)``, ``residual: (B, L, H)`` -> ``(B, L, H)``."""
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class _AttentionBlock(nn.Module):
    """Shared ``.self`` + ``.output`` container with the mutable ``attn_implementation`` property."""

    @property
    def attn_implementation(self) -> str:
        """``"sdpa"`` or ``"eager"``, forwarded to the projections module."""
        return self.self.attn_implementation

    @attn_implementation.setter
    def attn_implementation(self, value: str) -> None:
        self.self.attn_implementation = check_attn_implementation(value)


class MedSelfAttention(_AttentionBlock):
    """Self-attention block (``attention`` in checkpoints): projections, attention, residual + LayerNorm.

    Args:
        hidden_size, num_heads, layer_norm_eps, hidden_dropout, attention_dropout, attn_implementation: as in
            :class:`~vl_hub.layers.med.MedSettings`.
        layer_idx: index of the layer; the key of this layer's entries in the cache.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        layer_norm_eps: float,
        hidden_dropout: float,
        attention_dropout: float,
        attn_implementation: str,
        layer_idx: int,
    ) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.self = MedAttentionProjections(hidden_size, num_heads, hidden_size, attention_dropout, attn_implementation)
        self.output = MedResidualOutput(hidden_size, hidden_size, layer_norm_eps, hidden_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
        num_queries: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention over the cached and the new tokens.

        Args:
            hidden_states: ``(B, L, H)`` new tokens.
            attention_mask: additive ``(B|1, 1, 1|L, P+L)`` mask (0 keeps, -10000 drops), or ``None``.
            cache: appended with this step's keys/values under ``layer_idx`` (``P`` = cached length).
            output_attentions: also return the probabilities ``(B, heads, Lq, P+L)``.
            num_queries: ``Lq``, compute outputs for the first ``Lq`` tokens only (queries, attention and residual
                of those rows; keys/values still from all ``L``): the last layer of a forward whose caller reads
                position 0 only (ITM). ``None``: every token, ``Lq = L``.

        Returns:
            ``(hidden_states (B, Lq, H), probabilities or None)``.
        """
        queries = hidden_states if num_queries is None else hidden_states[:, :num_queries]
        query = self.self.project_query(queries)
        key, value = self.self.project_key_value(hidden_states)
        if cache is not None:
            self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
            key, value = self_cache.update(key, value, self.layer_idx)
        if num_queries is not None:
            attention_mask = first_query_rows(attention_mask, num_queries)  # type: ignore[assignment]
        context, probs = self.self.attend(query, key, value, attention_mask, output_attentions)
        return self.output(context, queries), probs


class MedCrossAttention(_AttentionBlock):
    """Cross-attention block (``crossattention`` in checkpoints): text queries attend to encoder (image) states.

    This is the module the default cross-attention factory builds; families with other cross-attention (BLIP NLVR's
    twin attention) supply their own module with the same call signature (see
    :data:`vl_hub.layers.med.CrossAttentionFactory`).

    Args:
        hidden_size, num_heads, encoder_width, layer_norm_eps, hidden_dropout, attention_dropout,
            attn_implementation: as in :class:`~vl_hub.layers.med.MedSettings`.
        layer_idx: index of the layer; the key of this layer's cross-attention keys/values in the cache.
        first_layer: the first layer with cross-attention (``fusion_layer``, 0 when every layer has it). When
            ``encoder_hidden_states`` is a list, this layer attends ``encoder_hidden_states[(layer_idx -
            first_layer) % len(list)]`` (ALBEF NLVR: fusion layer ``l`` attends image ``(l - 6) % 2``).
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        encoder_width: int,
        layer_norm_eps: float,
        hidden_dropout: float,
        attention_dropout: float,
        attn_implementation: str,
        layer_idx: int,
        first_layer: int = 0,
    ) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.first_layer = first_layer
        self.self = MedAttentionProjections(
            hidden_size, num_heads, encoder_width, attention_dropout, attn_implementation
        )
        self.output = MedResidualOutput(hidden_size, hidden_size, layer_norm_eps, hidden_dropout)

    def project_key_value(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(U, heads, Lk, head_dim)`` of encoder states ``(U, Lk, encoder_width)``, for
        ``forward(..., encoder_key_value=...)``."""
        return self.self.project_key_value(states)

    def _select(self, states: EncoderStates, mask: EncoderMask) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(states, (list, tuple)):
            index = (self.layer_idx - self.first_layer) % len(states)
            if mask is not None and (not isinstance(mask, (list, tuple)) or len(mask) != len(states)):
                raise ValueError(
                    f"encoder_hidden_states is a list of {len(states)} tensors, so encoder_attention_mask must be "
                    f"None or a list of {len(states)} masks; got {type(mask).__name__}"
                )
            states, mask = states[index], None if mask is None else mask[index]
        elif isinstance(mask, (list, tuple)):
            raise ValueError(
                "encoder_attention_mask is a list but encoder_hidden_states is a single tensor; "
                "pass one mask per encoder state tensor, or a single mask"
            )
        if states.shape[-1] != self.self.key.in_features:
            raise ValueError(
                f"encoder_hidden_states have width {states.shape[-1]} but this cross-attention expects "
                f"encoder_width={self.self.key.in_features}; set MedSettings.encoder_width to the vision width"
            )
        return states, mask

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: EncoderStates,
        encoder_attention_mask: EncoderMask = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
        encoder_kv_index: torch.Tensor | EncoderKVIndex | None = None,
        encoder_key_value: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Cross-attention with the keys/values of the encoder states computed once per cache.

        Args:
            hidden_states: ``(B, Lq, H)`` output of the self-attention block.
            encoder_hidden_states: ``(B, Lk, encoder_width)`` or a list of such tensors (see ``first_layer``).
            encoder_attention_mask: prepared additive mask ``(B, 1, 1|Lq, Lk)`` (``(1-m)*finfo.min``), a list of
                them matching a list of states, or ``None`` (attend everything).
            cache: an :class:`~transformers.EncoderDecoderCache` (its cross-attention half is used); a plain
                self-attention ``Cache`` or ``None`` disables the cross-attention cache.
            output_attentions: also return the probabilities ``(B, heads, Lq, Lk)`` (eager, differentiable).
            encoder_kv_index: ``(B,)`` long, or ``None``. When given, ``encoder_hidden_states`` holds ``U`` unique
                encoder states ``(U, Lk, encoder_width)`` and row ``b`` attends the states ``encoder_kv_index[b]``:
                keys/values are projected once per unique state (and cached as such) and gathered per row, so
                ``B`` pairs sharing few images pay ``U`` projections instead of ``B``. The mask stays per row
                ``(B, ...)``. :class:`~vl_hub.layers.med.MedModel` passes an :class:`EncoderKVIndex` built once per
                forward: rows of one state then share one attention call (their queries stacked, no gathered copy).
            encoder_key_value: this layer's keys and values of ``encoder_hidden_states``, ``(U|B, heads, Lk,
                head_dim)`` each, projected beforehand (:meth:`project_key_value`; several forwards over the same
                images share one projection); used instead of projecting and instead of the cache.

        Returns:
            ``(hidden_states (B, Lq, H), probabilities or None)``.
        """
        states, mask = self._select(encoder_hidden_states, encoder_attention_mask)
        grouping = None
        if encoder_kv_index is not None:
            if isinstance(encoder_kv_index, torch.Tensor):
                check_encoder_kv_index(encoder_kv_index, hidden_states.shape[0], states.shape[0])
                encoder_kv_index = group_by_state(encoder_kv_index, states.shape[0])
            else:
                check_encoder_kv_index(encoder_kv_index.index, hidden_states.shape[0], states.shape[0], False)
            grouping = encoder_kv_index
        query = self.self.project_query(hidden_states)
        cross_cache = cache if isinstance(cache, EncoderDecoderCache) else None
        if encoder_key_value is not None:
            key, value = encoder_key_value
            if key.shape[0] != states.shape[0] or key.shape[2] != states.shape[1]:
                raise ValueError(
                    f"encoder_key_value holds keys {tuple(key.shape)} but the encoder states are "
                    f"{tuple(states.shape)}; project the same states (project_key_value)"
                )
        elif cross_cache is not None and cross_cache.is_updated.get(self.layer_idx, False):
            cached = cross_cache.cross_attention_cache.layers[self.layer_idx]
            key, value = cached.keys, cached.values
        else:
            key, value = self.self.project_key_value(states)
            if cross_cache is not None:
                key, value = cross_cache.cross_attention_cache.update(key, value, self.layer_idx)
                cross_cache.is_updated[self.layer_idx] = True
        if grouping is not None and grouping.group_size and not output_attentions:
            # softmax is per query row, so the rows of one state can attend its keys/values as one long query
            if grouping.states is not None:  # only the states that have rows get a group
                key, value = key.index_select(0, grouping.states), value.index_select(0, grouping.states)
            num_states, lq = key.shape[0], query.shape[2]
            group_mask = None
            if mask is not None:
                full = mask.expand(mask.shape[0], 1, lq, mask.shape[-1])  # (B, 1, Lq, Lk)
                group_mask = _to_groups(full, grouping, num_states)  # (U, 1, G*Lq, Lk), padded rows attend all
            context, _ = scaled_dot_product_attention(
                _to_groups(query, grouping, num_states), key, value, attn_mask=group_mask,
                dropout_p=self.self.attention_dropout if self.training else 0.0,
                implementation=self.self.attn_implementation,
            )
            context = merge_heads(_from_groups(context, grouping, lq))
            return self.output(context, hidden_states), None
        if grouping is not None:
            # a gather of the projections, no per-row re-projection. Gathered in the (U, Lk, heads, head_dim) memory
            # order the projections have (whole contiguous rows are copied) and viewed back as (B, heads, Lk, hd).
            key = key.transpose(1, 2).index_select(0, grouping.index).transpose(1, 2)
            value = value.transpose(1, 2).index_select(0, grouping.index).transpose(1, 2)
        context, probs = self.self.attend(query, key, value, mask, output_attentions)
        return self.output(context, hidden_states), probs


class MedFeedForward(nn.Module):
    """``intermediate.dense -> exact GELU`` (LAVIS ``BertIntermediate``, named ``intermediate``)."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(B, L, H)`` -> ``(B, L, intermediate_size)``."""
        return F.gelu(self.dense(hidden_states))
