"""CLIP ViT image tower (OpenAI layout) and the grid positional-embedding interpolation it shares with
the ResNet attention pool.

Parameter names are OpenAI's ``visual.*`` names less the prefix: ``conv1``, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks.{i}.*``, ``ln_post``, ``proj``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vl_hub.layers.clip_transformer import ClipTowerOutput, ClipTransformer, set_attn_implementation


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def interpolate_grid_positional_embedding(
    positional_embedding: torch.Tensor,
    grid: tuple[int, int],
    new_grid: tuple[int, int],
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Resizes a ``(prefix + gh*gw, dim)`` positional table to ``new_grid`` (bicubic, ``align_corners=False``).

    The ``num_prefix_tokens`` leading rows (class / mean token) are kept as they are; the grid rows are
    row-major ``(h, w)``. Returns the table itself when the grid does not change.

    Args:
        positional_embedding: ``(num_prefix_tokens + gh*gw, dim)``.
        grid: ``(gh, gw)`` of the table.
        new_grid: ``(new_gh, new_gw)`` wanted.
        num_prefix_tokens: rows before the grid.

    Returns:
        ``(num_prefix_tokens + new_gh*new_gw, dim)`` in the input's dtype.
    """
    if tuple(grid) == tuple(new_grid):
        return positional_embedding
    expected = num_prefix_tokens + grid[0] * grid[1]
    if positional_embedding.shape[0] != expected:
        raise ValueError(
            f"positional_embedding has {positional_embedding.shape[0]} rows, expected {num_prefix_tokens} + "
            f"{grid[0]}x{grid[1]} = {expected}"
        )
    prefix, table = positional_embedding[:num_prefix_tokens], positional_embedding[num_prefix_tokens:]
    dim = table.shape[-1]
    table = table.reshape(1, grid[0], grid[1], dim).permute(0, 3, 1, 2).float()
    table = F.interpolate(table, size=tuple(new_grid), mode="bicubic", align_corners=False)
    table = table.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], dim).to(positional_embedding.dtype)
    return torch.cat([prefix, table], dim=0)


class ClipVisionTransformer(nn.Module):
    """The ViT image encoder of CLIP (``VisualTransformer`` / ``encode_image``).

    ``conv1`` patchify (no bias) -> prepend ``class_embedding`` -> ``+ positional_embedding`` (bicubic
    interpolated when the image size differs from ``image_size``) -> ``ln_pre`` -> resblocks ->
    ``ln_post`` on the class token -> ``@ proj``.

    Args:
        image_size: training resolution (int or ``(h, w)``); sets the positional table's grid.
        patch_size: patch side.
        width: model width.
        layers: number of blocks.
        embed_dim: output size of ``proj``.
        num_heads: attention heads (``None`` -> ``width // 64`` as in CLIP).
        num_channels: input channels.
        mlp_ratio: MLP hidden size over width.
        activation: ``"quick_gelu"`` (OpenAI) or ``"gelu"``.
        layer_norm_eps: LayerNorm epsilon (1e-5).
        attention_dropout: attention-probability dropout (training only; 0 in CLIP).
        attn_implementation: ``"sdpa"`` or ``"eager"`` for every attention module.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        patch_size: int,
        width: int,
        layers: int,
        embed_dim: int,
        num_heads: int | None = None,
        num_channels: int = 3,
        mlp_ratio: float = 4.0,
        activation: str = "quick_gelu",
        layer_norm_eps: float = 1e-5,
        attention_dropout: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        self.image_size = _pair(image_size)
        self.patch_size = patch_size
        if self.image_size[0] % patch_size or self.image_size[1] % patch_size:
            raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={patch_size}")
        self.grid_size = (self.image_size[0] // patch_size, self.image_size[1] // patch_size)
        self.num_channels = num_channels
        self.width = width
        self.embed_dim = embed_dim
        self.conv1 = nn.Conv2d(num_channels, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(1 + self.grid_size[0] * self.grid_size[1], width))
        self.ln_pre = nn.LayerNorm(width, eps=layer_norm_eps)
        self.transformer = ClipTransformer(
            width, layers, num_heads, mlp_ratio, activation, layer_norm_eps, attention_dropout, attn_implementation
        )
        self.ln_post = nn.LayerNorm(width, eps=layer_norm_eps)
        self.proj = nn.Parameter(torch.empty(width, embed_dim))
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """OpenAI's initialisation: class/positional embeddings and ``proj`` ~ N(0, width^-1); blocks as
        :meth:`ClipTransformer.init_weights`; ``conv1`` ~ N(0, 1/fan_in)."""
        scale = self.width**-0.5
        nn.init.normal_(self.class_embedding, std=scale)
        nn.init.normal_(self.positional_embedding, std=scale)
        nn.init.normal_(self.proj, std=scale)
        nn.init.normal_(self.conv1.weight, std=(self.num_channels * self.patch_size**2) ** -0.5)
        self.transformer.init_weights()
        for norm in (self.ln_pre, self.ln_post):
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    def set_attn_implementation(self, value: str) -> None:
        """Switches every attention module to ``"sdpa"`` or ``"eager"``."""
        set_attn_implementation(self, value)

    def positional_embedding_for(self, height: int, width: int) -> torch.Tensor:
        """The ``(1 + (height/patch)*(width/patch), width)`` table for an image of that size.

        Raises ``ValueError`` when ``height``/``width`` are not multiples of ``patch_size``.
        """
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of patch_size={p}; resize or crop the images to "
                f"a multiple of {p} (e.g. {max(p, height // p * p)}x{max(p, width // p * p)}; trained at "
                f"{self.image_size[0]}x{self.image_size[1]})"
            )
        return interpolate_grid_positional_embedding(self.positional_embedding, self.grid_size, (height // p, width // p))

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> ClipTowerOutput:
        """Encodes images.

        Args:
            pixel_values: ``(batch, num_channels, H, W)`` normalised images; ``H`` and ``W`` multiples of
                ``patch_size`` (other sizes than ``image_size`` interpolate the positional table).
            output_hidden_states: also return the ``ln_pre`` output and every block's output.
            output_attentions: also return every block's ``(batch, heads, 1+N, 1+N)`` probabilities.

        Returns:
            :class:`ClipTowerOutput`: ``embeds (batch, embed_dim)`` (projected, not normalised),
            ``last_hidden_state (batch, 1 + N, width)`` (last block, before ``ln_post``),
            ``pooler_output (batch, width)`` (``ln_post`` of the class token).
        """
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.num_channels:
            raise ValueError(
                f"pixel_values must be (batch, {self.num_channels}, H, W), got shape {tuple(pixel_values.shape)}; "
                "add a batch dimension or convert the images to RGB"
            )
        pos = self.positional_embedding_for(pixel_values.shape[-2], pixel_values.shape[-1])
        dtype = self.conv1.weight.dtype
        patches = self.conv1(pixel_values.to(dtype)).flatten(2).transpose(1, 2)  # (B, N, width)
        cls = self.class_embedding.to(dtype).expand(patches.shape[0], 1, -1)
        hidden = torch.cat([cls, patches], dim=1) + pos.to(dtype)
        hidden = self.ln_pre(hidden)
        hidden, hidden_states, attentions = self.transformer(
            hidden, None, False, output_hidden_states, output_attentions
        )
        pooled = self.ln_post(hidden[:, 0])
        return ClipTowerOutput(pooled @ self.proj, hidden, pooled, hidden_states, attentions)

