"""CLIP's ModifiedResNet image tower (RN50-style) with attention pooling.

Differences from a torchvision ResNet, as in OpenAI CLIP: a 3-convolution stem (the first with stride 2)
followed by ``AvgPool2d(2)`` instead of a max pool; anti-aliased strided blocks (an ``AvgPool2d(stride)``
before ``conv3`` and before the 1x1 downsample convolution, every convolution at stride 1); and a
multi-head attention pool instead of a global average pool.

Parameter names are OpenAI's ``visual.*`` names less the prefix: ``conv1..3``/``bn1..3`` (stem),
``layer{1..4}.{j}.{conv,bn}{1..3}``, ``layer{k}.0.downsample.{0,1}`` (conv, BN), and
``attnpool.{positional_embedding,q_proj,k_proj,v_proj,c_proj}``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from vl_hub.layers.attention import check_attn_implementation, merge_heads, scaled_dot_product_attention, split_heads
from vl_hub.layers.clip_transformer import ClipTowerOutput, resolve_num_heads, set_attn_implementation
from vl_hub.layers.clip_vision import interpolate_grid_positional_embedding


class Bottleneck(nn.Module):
    """ResNet bottleneck (expansion 4) with CLIP's anti-aliased striding.

    ``conv1 1x1 -> bn1 -> relu -> conv2 3x3 -> bn2 -> relu -> AvgPool(stride) -> conv3 1x1 -> bn3``, plus the
    identity or ``downsample = AvgPool(stride) -> 1x1 conv -> BN`` (when the stride or channel count
    changes), then ReLU.

    Args:
        inplanes: input channels.
        planes: bottleneck channels; the output has ``4 * planes``.
        stride: spatial reduction (1 or 2).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.stride = stride
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride > 1 or inplanes != out_planes:
            # keys "0"/"1" are the checkpoint names; the parameter-free pool sits in front of them
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("pool", nn.AvgPool2d(stride) if stride > 1 else nn.Identity()),
                        ("0", nn.Conv2d(inplanes, out_planes, 1, bias=False)),
                        ("1", nn.BatchNorm2d(out_planes)),
                    ]
                )
            )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``(batch, inplanes, H, W)`` -> ``(batch, 4*planes, H/stride, W/stride)``."""
        identity = hidden_states if self.downsample is None else self.downsample(hidden_states)
        out = self.relu1(self.bn1(self.conv1(hidden_states)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        out += identity
        return self.relu3(out)


class AttentionPool2d(nn.Module):
    """CLIP's attention pooling of a feature map into one vector.

    Flattens ``(B, C, H, W)`` to ``H*W`` tokens, prepends their mean, adds ``positional_embedding``
    (interpolated when the map is not ``spatial_dim x spatial_dim``), and returns the output at the mean
    token of one multi-head attention with separate ``q_proj``/``k_proj``/``v_proj`` and ``c_proj``. Only
    the mean token's query is computed: the original attends from every token but keeps only row 0.

    Args:
        spatial_dim: side of the feature map at training resolution (``image_size // 32``).
        embed_dim: channels ``C`` of the feature map.
        num_heads: attention heads.
        output_dim: size of ``c_proj`` output (``None`` -> ``embed_dim``).
        attn_implementation: ``"sdpa"`` or ``"eager"``; a mutable attribute of the same name.
    """

    def __init__(
        self,
        spatial_dim: int,
        embed_dim: int,
        num_heads: int,
        output_dim: int | None = None,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        self.spatial_dim = spatial_dim
        self.embed_dim = embed_dim
        self.num_heads = resolve_num_heads(embed_dim, num_heads)
        self.attn_implementation = check_attn_implementation(attn_implementation)
        self.positional_embedding = nn.Parameter(torch.randn(spatial_dim**2 + 1, embed_dim) / embed_dim**0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim or embed_dim)

    def forward(
        self, feature_map: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pools a feature map.

        Args:
            feature_map: ``(batch, embed_dim, H, W)``.
            output_attentions: also return the probabilities (runs the eager path).

        Returns:
            ``(pooled (batch, output_dim), probabilities (batch, heads, 1, 1 + H*W) or None)``.
        """
        height, width = feature_map.shape[-2:]
        tokens = feature_map.flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        pos = interpolate_grid_positional_embedding(
            self.positional_embedding, (self.spatial_dim, self.spatial_dim), (height, width)
        )
        tokens = tokens + pos.to(tokens.dtype)
        query = split_heads(self.q_proj(tokens[:, :1]), self.num_heads)
        key = split_heads(self.k_proj(tokens), self.num_heads)
        value = split_heads(self.v_proj(tokens), self.num_heads)
        out, probs = scaled_dot_product_attention(
            query, key, value, implementation=self.attn_implementation, return_weights=output_attentions
        )
        return self.c_proj(merge_heads(out)[:, 0]), probs


class ModifiedResNet(nn.Module):
    """CLIP's ResNet image encoder (``ModifiedResNet`` / ``encode_image`` of the RN models).

    Args:
        layers: bottleneck blocks per stage, e.g. ``(3, 4, 6, 3)`` for RN50.
        output_dim: embedding size (``c_proj`` output).
        num_heads: attention-pool heads (``None`` -> ``width * 32 // 64`` as in CLIP).
        image_size: training resolution; the attention pool's positional table has
            ``(image_size // 32)^2 + 1`` rows (other sizes interpolate it).
        width: stem width; stage ``k`` has ``width * 2^(k-1)`` bottleneck channels and the final map has
            ``width * 32`` channels.
        attn_implementation: ``"sdpa"`` or ``"eager"`` for the attention pool.

    BatchNorm follows the module mode: batch statistics in ``train()``, running statistics in ``eval()``.
    """

    def __init__(
        self,
        layers: Sequence[int],
        output_dim: int,
        num_heads: int | None = None,
        image_size: int = 224,
        width: int = 64,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"layers must be 4 positive block counts (e.g. (3, 4, 6, 3) for RN50), got {layers!r}")
        if width < 2 or width % 2:
            raise ValueError(f"width={width} must be an even number >= 2 (the stem's first convs have width // 2)")
        if image_size < 32:
            raise ValueError(f"image_size={image_size} must be >= 32 (the network reduces resolution by 32)")
        self.layers = tuple(int(n) for n in layers)
        self.output_dim = output_dim
        self.image_size = image_size
        self.width = width
        embed_dim = width * 32
        self.num_heads = resolve_num_heads(embed_dim, width * 32 // 64 if num_heads is None else num_heads)

        self.conv1 = nn.Conv2d(3, width // 2, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)

        inplanes = width
        for index, (blocks, stride) in enumerate(zip(self.layers, (1, 2, 2, 2)), start=1):
            planes = width * 2 ** (index - 1)
            stage = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            stage.extend(Bottleneck(inplanes, planes) for _ in range(1, blocks))
            self.add_module(f"layer{index}", nn.Sequential(*stage))

        self.attnpool = AttentionPool2d(image_size // 32, embed_dim, self.num_heads, output_dim, attn_implementation)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """OpenAI's initialisation: attention-pool projections ~ N(0, C^-1), every ``bn3.weight`` zero
        (each residual branch starts as identity), other BatchNorms ones/zeros, convs PyTorch's default."""
        std = self.attnpool.c_proj.in_features**-0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
            nn.init.zeros_(proj.bias)
        for name, module in self.named_modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                if name.endswith("bn3") and name.startswith("layer"):
                    nn.init.zeros_(module.weight)

    def set_attn_implementation(self, value: str) -> None:
        """Switches the attention pool to ``"sdpa"`` or ``"eager"``."""
        set_attn_implementation(self, value)

    def stem(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, width, H/4, W/4)``."""
        hidden = self.relu1(self.bn1(self.conv1(pixel_values)))
        hidden = self.relu2(self.bn2(self.conv2(hidden)))
        hidden = self.relu3(self.bn3(self.conv3(hidden)))
        return self.avgpool(hidden)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> ClipTowerOutput:
        """Encodes images.

        Args:
            pixel_values: ``(batch, 3, H, W)`` normalised images, ``H, W >= 32`` (multiples of 32 keep every
                pooling exact; ``image_size`` needs no interpolation).
            output_hidden_states: also return the stem output and each stage's output.
            output_attentions: also return the attention pool's ``(batch, heads, 1, 1 + h*w)`` probabilities.

        Returns:
            :class:`ClipTowerOutput`: ``embeds (batch, output_dim)`` (not normalised),
            ``last_hidden_state (batch, 32*width, H/32, W/32)`` (``layer4``), ``pooler_output`` = ``embeds``.
        """
        if pixel_values.dim() != 4 or pixel_values.shape[1] != 3:
            raise ValueError(
                f"pixel_values must be (batch, 3, H, W), got shape {tuple(pixel_values.shape)}; "
                "add a batch dimension or convert the images to RGB"
            )
        height, width = pixel_values.shape[-2:]
        if height < 32 or width < 32:
            raise ValueError(
                f"image size {height}x{width} is too small for the ModifiedResNet (it reduces resolution by 32); "
                f"resize the images to at least 32x32 (trained at {self.image_size}x{self.image_size})"
            )
        hidden = self.stem(pixel_values.to(self.conv1.weight.dtype))
        states: list[torch.Tensor] | None = [hidden] if output_hidden_states else None
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            hidden = stage(hidden)
            if states is not None:
                states.append(hidden)
        pooled, probs = self.attnpool(hidden, output_attentions)
        return ClipTowerOutput(
            pooled,
            hidden,
            pooled,
            tuple(states) if states is not None else None,
            (probs,) if output_attentions else None,
        )
