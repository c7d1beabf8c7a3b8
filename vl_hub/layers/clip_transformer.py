"""OpenAI-CLIP pre-LayerNorm transformer shared by the CLIP text and ViT image towers.

Parameter names are those of OpenAI CLIP (and so of LAVIS and open_clip) — ``attn.in_proj_weight``,
``attn.in_proj_bias``, ``attn.out_proj``, ``ln_1``, ``mlp.c_fc``, ``mlp.c_proj``, ``ln_2`` — so original
checkpoints load with a prefix strip. The attention keeps ``nn.MultiheadAttention``'s packed layout but
runs batch-first through :func:`vl_hub.layers.attention.scaled_dot_product_attention`: one fused qkv
matmul and SDPA, with no sequence-first transposes.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from vl_hub.layers.attention import check_attn_implementation, scaled_dot_product_attention

Activation = Literal["quick_gelu", "gelu"]
ACTIVATIONS: tuple[str, ...] = ("quick_gelu", "gelu")


class ClipTowerOutput(NamedTuple):
    """What every CLIP tower returns (a plain tuple, so it unpacks and traces).

    Attributes:
        embeds: ``(batch, embed_dim)`` projected, **not** normalised features (``encode_image`` /
            ``encode_text`` of the original).
        last_hidden_state: token states — text ``(batch, len, width)`` after ``ln_final``; ViT
            ``(batch, 1 + num_patches, width)`` as output by the last block (before ``ln_post``, like
            transformers' ``CLIPVisionModel``); ResNet the ``layer4`` map ``(batch, 32*width, h, w)``.
        pooler_output: ``(batch, width)`` pooled state before the projection (text: EOT row; ViT:
            ``ln_post`` of the class token); for the ResNet the attention-pool output (= ``embeds``).
        hidden_states: with ``output_hidden_states=True``, the input of the first block followed by
            each block's output (ResNet: stem then each stage); else ``None``.
        attentions: with ``output_attentions=True``, one ``(batch, heads, len, len)`` probability
            tensor per block (ResNet: the attention pool's ``(batch, heads, 1, 1 + h*w)``); else ``None``.
    """

    embeds: torch.Tensor
    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def check_activation(value: str) -> str:
    """Returns ``value`` or raises listing the supported MLP activations."""
    if value not in ACTIVATIONS:
        raise ValueError(
            f"activation={value!r} is not supported; use one of {', '.join(ACTIVATIONS)} "
            "(OpenAI CLIP checkpoints use 'quick_gelu')"
        )
    return value


def resolve_num_heads(width: int, num_heads: int | None, head_dim: int = 64) -> int:
    """``num_heads`` or, when ``None``, OpenAI's default ``width // head_dim``; raises when it does not divide ``width``."""
    heads = width // head_dim if num_heads is None else num_heads
    if heads < 1 or width % heads != 0:
        hint = f" (default width // {head_dim})" if num_heads is None else ""
        raise ValueError(
            f"num_heads={heads}{hint} must be >= 1 and divide width={width}; pass num_heads explicitly "
            f"with a divisor of {width}"
        )
    return heads


class QuickGELU(nn.Module):
    """OpenAI's GELU approximation ``x * sigmoid(1.702 x)`` (the activation every OpenAI CLIP was trained with)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: any shape -> same shape."""
        return x * torch.sigmoid(1.702 * x)


class ClipAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter layout, batch-first.

    Parameters: ``in_proj_weight (3*width, width)`` (q, k, v stacked), ``in_proj_bias (3*width)``,
    ``out_proj`` (``nn.Linear(width, width)``).

    Args:
        width: model width.
        num_heads: attention heads (``width`` must be a multiple).
        attention_dropout: dropout on the attention probabilities, training only (OpenAI: 0).
        attn_implementation: ``"sdpa"`` or ``"eager"``; a mutable attribute of the same name.
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        self.width = width
        self.num_heads = resolve_num_heads(width, num_heads)
        self.head_dim = width // self.num_heads
        self.attention_dropout = attention_dropout
        self.attn_implementation = check_attn_implementation(attn_implementation)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention.

        Args:
            hidden_states: ``(batch, len, width)``.
            attn_mask: optional additive float or boolean (``True`` keeps) mask broadcastable to
                ``(batch, heads, len, len)``.
            is_causal: causal masking (used when ``attn_mask`` is ``None``).
            output_attentions: also return the probabilities (runs the eager path).

        Returns:
            ``(output (batch, len, width), probabilities (batch, heads, len, len) or None)``.
        """
        batch, length, width = hidden_states.shape
        qkv = F.linear(hidden_states, self.in_proj_weight, self.in_proj_bias)
        # (B, L, 3, H, D) -> (3, B, H, L, D): q/k/v become strided views with a contiguous head_dim
        query, key, value = qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out, probs = scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attn_mask,
            dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=is_causal and attn_mask is None,
            implementation=self.attn_implementation,
            return_weights=output_attentions,
        )
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self.out_proj(out), probs


class ClipMLP(nn.Module):
    """``c_fc -> activation -> c_proj`` (hidden size ``mlp_ratio * width``).

    Args:
        width: model width.
        mlp_ratio: hidden size over width (4 in CLIP).
        activation: ``"quick_gelu"`` (OpenAI checkpoints) or ``"gelu"`` (exact erf GELU).
    """

    def __init__(self, width: int, mlp_ratio: float = 4.0, activation: str = "quick_gelu") -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = QuickGELU() if check_activation(activation) == "quick_gelu" else nn.GELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(..., width)`` -> ``(..., width)``."""
        return self.c_proj(self.gelu(self.c_fc(hidden_states)))


class ClipResidualAttentionBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm block ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``.

    Args:
        width: model width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden size over width.
        activation: ``"quick_gelu"`` or ``"gelu"``.
        layer_norm_eps: LayerNorm epsilon (1e-5 in CLIP).
        attention_dropout: attention-probability dropout (training only).
        attn_implementation: ``"sdpa"`` or ``"eager"``.
    """

    def __init__(
        self,
        width: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        activation: str = "quick_gelu",
        layer_norm_eps: float = 1e-5,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=layer_norm_eps)
        self.attn = ClipAttention(width, num_heads, attention_dropout, attn_implementation)
        self.ln_2 = nn.LayerNorm(width, eps=layer_norm_eps)
        self.mlp = ClipMLP(width, mlp_ratio, activation)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden_states (batch, len, width)`` -> ``(same shape, probabilities or None)``.

        Pass ``hidden_states`` positionally: gradient checkpointing with ``use_reentrant=True`` only
        propagates gradients through positional arguments.
        """
        attn_out, probs = self.attn(self.ln_1(hidden_states), attn_mask, is_causal, output_attentions)
        hidden_states = hidden_states + attn_out
        hidden_states = hidden_states + self.mlp(self.ln_2(hidden_states))
        return hidden_states, probs


class ClipTransformer(nn.Module):
    """A stack of :class:`ClipResidualAttentionBlock` named ``resblocks`` (as in OpenAI CLIP).

    Args:
        width: model width.
        layers: number of blocks.
        num_heads: attention heads (``None`` -> ``width // 64``).
        mlp_ratio, activation, layer_norm_eps, attention_dropout, attn_implementation: per block.
    """

    def __init__(
        self,
        width: int,
        layers: int,
        num_heads: int | None = None,
        mlp_ratio: float = 4.0,
        activation: str = "quick_gelu",
        layer_norm_eps: float = 1e-5,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers={layers} must be >= 1")
        self.width = width
        self.layers = layers
        self.num_heads = resolve_num_heads(width, num_heads)
        self.resblocks = nn.ModuleList(
            ClipResidualAttentionBlock(
                width, self.num_heads, mlp_ratio, activation, layer_norm_eps, attention_dropout, attn_implementation
            )
            for _ in range(layers)
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """Runs every block.

        Args:
            hidden_states: ``(batch, len, width)``.
            attn_mask: optional mask for every block (see :class:`ClipAttention`).
            is_causal: causal self-attention (the text tower).
            output_hidden_states: collect the input and each block's output.
            output_attentions: collect each block's attention probabilities.

        Returns:
            ``(last (batch, len, width), hidden_states or None, attentions or None)``.
        """
        all_states: list[torch.Tensor] | None = [hidden_states] if output_hidden_states else None
        all_probs: list[torch.Tensor] | None = [] if output_attentions else None
        for block in self.resblocks:
            hidden_states, probs = block(hidden_states, attn_mask, is_causal, output_attentions)
            if all_states is not None:
                all_states.append(hidden_states)
            if all_probs is not None:
                all_probs.append(probs)
        return (
            hidden_states,
            tuple(all_states) if all_states is not None else None,
            tuple(all_probs) if all_probs is not None else None,
        )

    @torch.no_grad()
    def init_weights(self) -> None:
        """OpenAI's initialisation: attention ``width^-0.5``, ``c_fc`` ``(2 width)^-0.5``, output projections
        ``width^-0.5 (2 layers)^-0.5``; zero attention biases; LayerNorm ones/zeros."""
        attn_std = self.width**-0.5
        proj_std = attn_std * (2 * self.layers) ** -0.5
        fc_std = (2 * self.width) ** -0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.zeros_(block.attn.in_proj_bias)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.zeros_(block.attn.out_proj.bias)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
            for norm in (block.ln_1, block.ln_2):
                nn.init.ones_(norm.weight)
                nn.init.zeros_(norm.bias)


def set_attn_implementation(module: nn.Module, value: str) -> None:
    """Sets ``attn_implementation`` (``"sdpa"``/``"eager"``) on every submodule of ``module`` that has one."""
    value = check_attn_implementation(value)
    for sub in module.modules():
        if hasattr(sub, "attn_implementation"):
            sub.attn_implementation = value
