"""ALPRO's TimeSformer video encoder with divided space-time attention (LAVIS ``lavis/models/timesformer``).

Parameter names equal the inner ``VisionTransformer`` of LAVIS's ``TimeSformer`` wrapper (the
``visual_encoder.model.*`` entries of an ALPRO checkpoint): ``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``time_embed``, ``blocks.{i}.temporal_norm1/temporal_attn.qkv/temporal_attn.proj/temporal_fc/
norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2``, ``norm``; load with
``load_state_dict(sub_state_dict(weights, "visual_encoder.model."), strict=True)``.

Patch tokens are kept in the original ``(h w t)`` order: token ``1 + (h*W + w)*T + t``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from vl_hub.layers.attention import check_attn_implementation
from vl_hub.layers.mlp import DropPath, Mlp
from vl_hub.layers.vit import (
    PatchEmbed,
    ViTSelfAttention,
    check_pixel_grid,
    interpolate_pos_embed,
    set_blocks_gradient_checkpointing,
    to_pair,
)


def interpolate_time_embed(time_embed: torch.Tensor, num_frames: int, mode: str = "nearest") -> torch.Tensor:
    """Resizes a temporal embedding to ``num_frames`` as LAVIS does, both at forward time and when loading
    a checkpoint trained with another frame count (``F.interpolate(mode="nearest")`` along time).

    Args:
        time_embed: ``(1, T0, D)``.
        num_frames: target ``T``.
        mode: a 1-D mode of ``F.interpolate`` (``"nearest"`` as in the original, or ``"linear"``).

    Returns:
        ``(1, T, D)``; ``time_embed`` itself when ``T == T0``.
    """
    if time_embed.dim() != 3 or time_embed.shape[0] != 1:
        raise ValueError(f"time_embed must have shape (1, num_frames, D), got {tuple(time_embed.shape)}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if time_embed.shape[1] == num_frames:
        return time_embed
    resized = F.interpolate(time_embed.float().transpose(1, 2), size=num_frames, mode=mode)
    return resized.transpose(1, 2).to(time_embed.dtype)


class TimeSformerBlock(GradientCheckpointingLayer):
    """Divided space-time block.

    1. temporal: ``x_p += temporal_fc(drop_path(temporal_attn(temporal_norm1(x_p))))`` over the ``T`` frames
       of each spatial location (patch tokens only);
    2. spatial: per frame, the cls token is replicated and attends with that frame's patches
       (``norm1 -> attn``); patch outputs are added back, the per-frame cls outputs are averaged and added
       to the cls token;
    3. ``x += drop_path(mlp(norm2(x)))``.

    Stochastic depth drops rows of the tensors the original drops them on: (batch, location) in step 1,
    (batch, frame) in step 2, batch in step 3.
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
        self.temporal_norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.temporal_attn = ViTSelfAttention(dim, num_heads, qkv_bias, attention_dropout, attn_implementation)
        self.temporal_fc = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``hidden_states: (B, 1 + S*T, D)`` (cls, then patches in ``(s t)`` order) -> same shape."""
        batch, length, dim = hidden_states.shape
        frames = num_frames
        locations = (length - 1) // frames
        cls, patches = hidden_states[:, :1], hidden_states[:, 1:]

        # Temporal attention: the T tokens of one location are contiguous, so this is a view.
        temporal = self.temporal_attn(self.temporal_norm1(patches).view(batch * locations, frames, dim))
        patches = patches + self.temporal_fc(self.drop_path(temporal)).view(batch, locations * frames, dim)

        # Spatial attention per frame, the cls token prepended to every frame (one copy builds the layout).
        per_frame = torch.cat(
            [
                cls.unsqueeze(1).expand(batch, frames, 1, dim),
                patches.view(batch, locations, frames, dim).transpose(1, 2),
            ],
            dim=2,
        ).view(batch * frames, 1 + locations, dim)
        spatial = self.drop_path(self.attn(self.norm1(per_frame))).view(batch, frames, 1 + locations, dim)
        cls = cls + spatial[:, :, 0].mean(dim=1, keepdim=True)
        patches = patches + spatial[:, :, 1:].transpose(1, 2).reshape(batch, locations * frames, dim)

        hidden_states = torch.cat([cls, patches], dim=1)
        return hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))


class TimeSformer(nn.Module):
    """ALPRO's video encoder: per-frame patch embedding + ``pos_embed`` (cls included), ``time_embed`` on
    patch tokens, divided space-time blocks, final LayerNorm.

    Args:
        image_size: frame resolution of ``pos_embed`` (int or ``(H, W)``).
        patch_size: patch side (16 in every LAVIS/ALPRO config).
        num_frames: frames of ``time_embed`` (LAVIS ``n_frms``).
        embed_dim: token width ``D``.
        depth: number of blocks.
        num_heads: attention heads.
        in_channels: frame channels.
        mlp_ratio: MLP width is ``int(embed_dim * mlp_ratio)``.
        qkv_bias: bias on the fused qkv projections.
        layer_norm_eps: epsilon of every LayerNorm (1e-6).
        drop_path_rate: stochastic depth rising linearly over the blocks (LAVIS default 0.1).
        attention_dropout: dropout on attention probabilities (training only).
        attn_implementation: ``"sdpa"`` or ``"eager"``.

    Other frame counts and resolutions work as in the original: ``time_embed`` and the patch part of
    ``pos_embed`` are resized with nearest-neighbour interpolation at forward time.

    ``forward(pixel_values (B, C, T, H, W)) -> (B, 1 + (H/p)*(W/p), D)``: the cls token followed by every
    spatial token averaged over time, after the final LayerNorm (LAVIS ``TimeSformer.forward_features``).
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        patch_size: int,
        num_frames: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        in_channels: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        drop_path_rate: float = 0.1,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.image_size = to_pair(image_size, "image_size")
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        self.patch_size = self.patch_embed.patch_size
        self.grid_size = check_pixel_grid(*self.image_size, self.patch_size, self.image_size, "image_size")
        self.num_frames = num_frames
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth else []
        self.blocks = nn.ModuleList(
            TimeSformerBlock(
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
        """LAVIS's initialisation: truncated normal (std 0.02) for ``pos_embed``, ``cls_token`` and Linear
        weights, zero ``time_embed`` and biases, unit LayerNorms, and ``temporal_fc`` zeroed in every block
        but the first so that a new model starts as a per-frame image ViT."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.zeros_(self.time_embed)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in list(self.blocks)[1:]:
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)
        nn.init.ones_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def set_attn_implementation(self, attn_implementation: str) -> None:
        """Switches every (spatial and temporal) attention module to ``"sdpa"`` or ``"eager"``."""
        attn_implementation = check_attn_implementation(attn_implementation)
        for module in self.modules():
            if isinstance(module, ViTSelfAttention):
                module.attn_implementation = attn_implementation

    def set_gradient_checkpointing(
        self, enable: bool = True, last_n_layers: int | None = None, use_reentrant: bool = False
    ) -> None:
        """Activation checkpointing for standalone use (a ``PreTrainedModel`` holding this encoder gets it
        from ``gradient_checkpointing_enable()``); ``last_n_layers`` = LAVIS's ``ckpt_layer``."""
        set_blocks_gradient_checkpointing(self.blocks, enable, last_n_layers, use_reentrant)

    def _check_video(self, pixel_values: torch.Tensor) -> tuple[int, int, int, int]:
        shape = tuple(pixel_values.shape)
        if pixel_values.dim() != 5:
            hint = (
                " (a single image? add a time axis with pixel_values.unsqueeze(2))" if pixel_values.dim() == 4 else ""
            )
            raise ValueError(
                f"pixel_values must be a video batch of shape (batch, {self.in_channels}, frames, height, "
                f"width), got {shape}{hint}"
            )
        batch, channels, frames, height, width = shape
        if channels != self.in_channels:
            hint = (
                "; it looks like (batch, frames, channels, H, W): use pixel_values.permute(0, 2, 1, 3, 4)"
                if frames == self.in_channels
                else "; convert frames to RGB"
            )
            raise ValueError(
                f"pixel_values of shape {shape} has {channels} channels at dim 1 but the model expects "
                f"{self.in_channels} (layout (batch, channels, frames, height, width)){hint}"
            )
        grid = check_pixel_grid(height, width, self.patch_size, shape, "pixel_values")
        return batch, frames, grid[0], grid[1]

    def embed(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``pixel_values: (B, C, T, H, W)`` -> (tokens before the first block ``(B, 1 + S*T, D)`` in
        ``(s t)`` order with ``S = (H/p)*(W/p)``, ``T``)."""
        batch, frames, grid_h, grid_w = self._check_video(pixel_values)
        channels, height, width = pixel_values.shape[1], pixel_values.shape[3], pixel_values.shape[4]
        dim, locations = self.embed_dim, grid_h * grid_w
        frame_batch = pixel_values.to(self.patch_embed.proj.weight.dtype).transpose(1, 2)
        patches = self.patch_embed(frame_batch.reshape(batch * frames, channels, height, width))
        pos_embed = interpolate_pos_embed(self.pos_embed, (grid_h, grid_w), self.grid_size, mode="nearest")
        time_embed = interpolate_time_embed(self.time_embed, frames)
        # Same additions, in the same order, as the original: (patch + pos) + time.
        patches = (patches + pos_embed[:, 1:]).view(batch, frames, locations, dim) + time_embed.view(1, frames, 1, dim)
        patches = patches.transpose(1, 2).reshape(batch, locations * frames, dim)
        cls = (self.cls_token + pos_embed[:, :1]).expand(batch, -1, -1)
        return torch.cat([cls, patches], dim=1), frames

    def forward_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values: (B, C, T, H, W)`` -> every token after the final LayerNorm, ``(B, 1 + S*T, D)``
        in ``(h w t)`` order (LAVIS ``TimeSformer.model.forward_features``)."""
        hidden_states, frames = self.embed(pixel_values)
        for block in self.blocks:
            hidden_states = block(hidden_states, num_frames=frames)
        return self.norm(hidden_states)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values: (B, C, T, H, W)`` -> ``(B, 1 + (H/p)*(W/p), D)``: final-norm cls token followed by
        each spatial token averaged over the ``T`` frames."""
        frames = pixel_values.shape[2] if pixel_values.dim() == 5 else 0
        tokens = self.forward_tokens(pixel_values)
        batch, length, dim = tokens.shape
        spatial = tokens[:, 1:].view(batch, (length - 1) // frames, frames, dim).mean(dim=2)
        return torch.cat([tokens[:, :1], spatial], dim=1)
