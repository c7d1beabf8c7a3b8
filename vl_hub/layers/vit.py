"""The pre-LayerNorm ViT image encoder of BLIP and ALBEF (LAVIS ``lavis/models/vit.py``, timm style).

Parameter names equal LAVIS's ``visual_encoder.*`` names (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.{i}.norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2``, ``norm``), so an original
checkpoint loads with ``load_state_dict(sub_state_dict(weights, "visual_encoder."), strict=True)``.

Gradient checkpointing: every block is a :class:`transformers.modeling_layers.GradientCheckpointingLayer`,
so a ``PreTrainedModel`` holding this encoder gets ``gradient_checkpointing_enable()`` for free; used on
its own, call :meth:`VisionTransformer.set_gradient_checkpointing`.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from vl_hub.layers.attention import check_attn_implementation, scaled_dot_product_attention
from vl_hub.layers.mlp import DropPath, Mlp


def to_pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """``value`` as a ``(height, width)`` pair of positive ints; raises naming ``name`` otherwise."""
    if isinstance(value, int):
        value = (value, value)
    if len(value) != 2 or any(int(v) != v or v <= 0 for v in value):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair of positive ints, got {value!r}")
    return int(value[0]), int(value[1])


def interpolate_pos_embed(
    pos_embed: torch.Tensor,
    new_grid_hw: tuple[int, int],
    old_grid_hw: tuple[int, int] | None = None,
    num_prefix_tokens: int = 1,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Resizes a ViT position embedding to another patch grid, keeping the prefix (cls) rows as they are.

    The patch rows are laid out as a row-major ``old_grid_hw`` grid and resampled with
    ``F.interpolate(mode, align_corners=False)`` — bicubic is what LAVIS's ``interpolate_pos_embed`` uses
    when BLIP/ALBEF checkpoints are loaded at another resolution (e.g. 224 -> 384).

    Args:
        pos_embed: ``(1, num_prefix_tokens + H0*W0, D)``.
        new_grid_hw: target patch grid ``(H, W)``.
        old_grid_hw: source grid; ``None`` assumes a square grid (as LAVIS does).
        num_prefix_tokens: leading rows that are not on the grid (1: the cls token).
        mode: ``"bicubic"`` (ViT) or ``"nearest"`` (what TimeSformer does at forward time), or any other
            2-D mode of ``F.interpolate``.

    Returns:
        ``(1, num_prefix_tokens + H*W, D)`` in the dtype of ``pos_embed``; ``pos_embed`` itself when the
        grid does not change.
    """
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must have shape (1, prefix + H*W, D), got {tuple(pos_embed.shape)}")
    new_h, new_w = to_pair(tuple(new_grid_hw), "new_grid_hw")
    num_grid = pos_embed.shape[1] - num_prefix_tokens
    if old_grid_hw is None:
        side = math.isqrt(num_grid)
        if side * side != num_grid:
            raise ValueError(
                f"pos_embed has {num_grid} grid rows, which is not a square grid; pass old_grid_hw=(H0, W0)"
            )
        old_grid_hw = (side, side)
    old_h, old_w = to_pair(tuple(old_grid_hw), "old_grid_hw")
    if old_h * old_w != num_grid:
        raise ValueError(
            f"old_grid_hw={old_grid_hw} has {old_h * old_w} cells but pos_embed has {num_grid} grid rows "
            f"(shape {tuple(pos_embed.shape)}, num_prefix_tokens={num_prefix_tokens})"
        )
    if (old_h, old_w) == (new_h, new_w):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = pos_embed.shape[-1]
    # Interpolate in float32: bicubic is not implemented for half precision on every device.
    grid = grid.float().reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2)
    align = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    grid = F.interpolate(grid, size=(new_h, new_w), mode=mode, **align)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


def check_pixel_grid(
    height: int, width: int, patch_size: tuple[int, int], shape: tuple[int, ...], what: str
) -> tuple[int, int]:
    """The patch grid ``(H // p, W // p)``; raises naming the input shape when a side is not a multiple of
    the patch size."""
    ph, pw = patch_size
    if height % ph or width % pw or height < ph or width < pw:
        fix_h, fix_w = max(ph, height // ph * ph), max(pw, width // pw * pw)
        raise ValueError(
            f"{what} of shape {shape} has height x width {height}x{width}, which is not a positive multiple "
            f"of the patch size {ph}x{pw}; resize or crop to a multiple of it (e.g. {fix_h}x{fix_w})"
        )
    return height // ph, width // pw


class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided ``Conv2d`` with bias; tokens in row-major order.

    Args:
        patch_size: side (or ``(h, w)``) of a patch.
        in_channels: input channels.
        embed_dim: token width ``D``.
    """

    def __init__(self, patch_size: int | tuple[int, int], in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = to_pair(patch_size, "patch_size")
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values: (N, C, H, W)`` -> ``(N, (H/p)*(W/p), D)``."""
        return self.proj(pixel_values).flatten(2).transpose(1, 2)


class ViTSelfAttention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` Linear and an output ``proj`` (timm layout).

    Args:
        dim: token width ``D``; must be divisible by ``num_heads``.
        num_heads: attention heads.
        qkv_bias: bias on the fused ``qkv`` projection (LAVIS: ``True``).
        attention_dropout: dropout on the attention probabilities while training.
        attn_implementation: ``"sdpa"`` or ``"eager"``. The attribute of the same name may be changed
            at any time (see :meth:`VisionTransformer.set_attn_implementation`).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attention_dropout = attention_dropout
        self.attn_implementation = check_attn_implementation(attn_implementation)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``hidden_states: (N, L, D)`` -> ``(N, L, D)``; each of the ``N`` rows attends within itself."""
        n, length, dim = hidden_states.shape
        # One matmul for q, k and v; the permuted views go to attention without copies.
        qkv = self.qkv(hidden_states).view(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        context, _ = scaled_dot_product_attention(
            query,
            key,
            value,
            dropout_p=self.attention_dropout if self.training else 0.0,
            implementation=self.attn_implementation,
        )
        return self.proj(context.transpose(1, 2).reshape(n, length, dim))


class ViTBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))`` (stochastic depth on both).

    Args:
        dim, num_heads, mlp_ratio, qkv_bias, layer_norm_eps, attention_dropout, attn_implementation:
            as in :class:`VisionTransformer`.
        drop_path: stochastic-depth probability of this block.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        drop_path: float = 0.0,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = ViTSelfAttention(dim, num_heads, qkv_bias, attention_dropout, attn_implementation)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``hidden_states: (B, L, D)`` -> ``(B, L, D)``."""
        hidden_states = hidden_states + self.drop_path(self.attn(self.norm1(hidden_states)))
        return hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))


def set_blocks_gradient_checkpointing(
    blocks: nn.ModuleList, enable: bool = True, last_n_layers: int | None = None, use_reentrant: bool = False
) -> None:
    """Turns activation checkpointing on/off for ``GradientCheckpointingLayer`` blocks outside a
    ``PreTrainedModel``; ``last_n_layers`` checkpoints only the last ``k`` blocks (LAVIS's ``ckpt_layer``)."""
    depth = len(blocks)
    if last_n_layers is not None and not 0 <= last_n_layers <= depth:
        raise ValueError(f"last_n_layers must be in [0, {depth}] (the depth) or None for all, got {last_n_layers}")
    first = 0 if last_n_layers is None else depth - last_n_layers
    func = partial(torch.utils.checkpoint.checkpoint, use_reentrant=use_reentrant)
    for index, block in enumerate(blocks):
        block.gradient_checkpointing = enable and index >= first
        block._gradient_checkpointing_func = func


class VisionTransformer(nn.Module):
    """The BLIP/ALBEF ViT: patch embedding, cls token, learned position embedding, pre-LN blocks, final LN.

    Args:
        image_size: pretraining resolution (int or ``(H, W)``); sets the ``pos_embed`` grid. Other
            resolutions (multiples of ``patch_size``) work: ``pos_embed`` is bicubically interpolated at
            forward time.
        patch_size: patch side.
        in_channels: image channels.
        embed_dim: token width ``D``.
        depth: number of blocks.
        num_heads: attention heads (``embed_dim`` must be divisible by it).
        mlp_ratio: MLP width is ``int(embed_dim * mlp_ratio)``.
        qkv_bias: bias on the fused qkv projection.
        layer_norm_eps: epsilon of every LayerNorm (LAVIS: 1e-6).
        drop_path_rate: stochastic depth, rising linearly from 0 at the first block to this value at the last.
        attention_dropout: dropout on attention probabilities (training only).
        attn_implementation: ``"sdpa"`` or ``"eager"``; switch later with :meth:`set_attn_implementation`.

    ``forward(pixel_values (B, C, H, W)) -> (B, 1 + (H/p)*(W/p), D)``: every token after the final LayerNorm
    (cls first), i.e. LAVIS's ``forward_features``.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        in_channels: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        drop_path_rate: float = 0.0,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        self.image_size = to_pair(image_size, "image_size")
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        self.patch_size = self.patch_embed.patch_size
        self.grid_size = check_pixel_grid(*self.image_size, self.patch_size, self.image_size, "image_size")
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth else []
        self.blocks = nn.ModuleList(
            ViTBlock(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                layer_norm_eps=layer_norm_eps,
                drop_path=rate,
                attention_dropout=attention_dropout,
                attn_implementation=attn_implementation,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """LAVIS's initialisation: truncated normal (std 0.02) for ``pos_embed``, ``cls_token`` and every
        Linear weight, zero biases, unit LayerNorms; the patch Conv2d keeps PyTorch's default."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.ones_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def set_attn_implementation(self, attn_implementation: str) -> None:
        """Switches every attention module to ``"sdpa"`` or ``"eager"``."""
        attn_implementation = check_attn_implementation(attn_implementation)
        for module in self.modules():
            if isinstance(module, ViTSelfAttention):
                module.attn_implementation = attn_implementation

    def set_gradient_checkpointing(
        self, enable: bool = True, last_n_layers: int | None = None, use_reentrant: bool = False
    ) -> None:
        """Activation checkpointing for standalone use (inside a ``PreTrainedModel`` use its
        ``gradient_checkpointing_enable()`` instead). Takes effect in training mode with grad enabled.

        Args:
            enable: on or off.
            last_n_layers: checkpoint only the last ``k`` blocks (LAVIS's ``vit_ckpt_layer``); ``None`` = all.
            use_reentrant: passed to ``torch.utils.checkpoint.checkpoint``.
        """
        set_blocks_gradient_checkpointing(self.blocks, enable, last_n_layers, use_reentrant)

    def position_embedding(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        """``pos_embed`` for a ``grid_hw`` patch grid: ``(1, 1 + H*W, D)`` (bicubic when it differs)."""
        return interpolate_pos_embed(self.pos_embed, grid_hw, old_grid_hw=self.grid_size)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values: (B, C, H, W)`` -> tokens before the first block ``(B, 1 + N, D)``."""
        if pixel_values.dim() != 4:
            hint = " (a video? fold frames into the batch or use TimeSformer)" if pixel_values.dim() == 5 else ""
            raise ValueError(
                f"pixel_values must have shape (batch, {self.in_channels}, height, width), got "
                f"{tuple(pixel_values.shape)}{hint}"
            )
        batch, channels, height, width = pixel_values.shape
        if channels != self.in_channels:
            hint = " (channels last? use pixel_values.permute(0, 3, 1, 2))" if width == self.in_channels else ""
            raise ValueError(
                f"pixel_values of shape {tuple(pixel_values.shape)} has {channels} channels but the model "
                f"expects {self.in_channels}{hint}; convert images to RGB"
            )
        grid = check_pixel_grid(height, width, self.patch_size, tuple(pixel_values.shape), "pixel_values")
        tokens = self.patch_embed(pixel_values.to(self.patch_embed.proj.weight.dtype))
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        return tokens + self.position_embedding(grid)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values: (B, C, H, W)`` -> all tokens after the final LayerNorm ``(B, 1 + (H/p)*(W/p), D)``."""
        hidden_states = self.embed(pixel_values)
        for block in self.blocks:
            hidden_states = block(hidden_states)
        return self.norm(hidden_states)
