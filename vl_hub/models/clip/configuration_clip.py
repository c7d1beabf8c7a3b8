"""CLIP configuration: a ViT or ModifiedResNet image tower, a causal text transformer, a shared embedding space.

Field names follow OpenAI / open_clip (``CLIPVisionCfg``/``CLIPTextCfg``: ``layers``, ``width``, ``heads``,
``patch_size``, ``image_size``, ``context_length``, ``vocab_size``), so the architecture of an original checkpoint
reads the same here. Defaults are OpenAI's ViT-B/32.

The vision tower is a ModifiedResNet when ``vision_config.layers`` is a list of 4 block counts (OpenAI's
``vision_layers`` tuple, e.g. ``[3, 4, 6, 3]`` for RN50) and a ViT when it is an int (the depth).
"""


import math
from typing import Any, Literal

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

__all__ = ["ClipConfig", "ClipTextConfig", "ClipVisionConfig", "DEFAULT_LOGIT_SCALE"]

#: ``ln(1 / 0.07)``: CLIP's initial logit scale (temperature 0.07).
DEFAULT_LOGIT_SCALE: float = math.log(1 / 0.07)

HiddenAct = Literal["quick_gelu", "gelu"]


def _check_positive(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}.{name} must be a positive int, got {value!r}")


def _check_heads(owner: str, width: int, heads: int | None, default_rule: str) -> None:
    if heads is None:
        return
    _check_positive(owner, heads=heads)
    if width % heads:
        raise ValueError(
            f"{owner}.heads={heads} does not divide the attention width {width}; pass a divisor of {width} "
            f"or heads=None ({default_rule})"
        )


@strict
class ClipVisionConfig(PreTrainedConfig):
    """The CLIP image tower: a ViT (``layers`` an int) or OpenAI's ModifiedResNet (``layers`` 4 block counts).

    Args:
        image_size: training resolution (ViT: sets the positional grid; ResNet: ``(image_size // 32)^2 + 1``
            attention-pool positions). Other sizes are interpolated at run time.
        patch_size: ViT patch side (ignored by the ResNet).
        width: ViT model width, or the ResNet stem width (the final feature map has ``32 * width`` channels).
        layers: ViT depth (int), or the ResNet's bottleneck blocks per stage (4 ints; a tuple is stored as a list).
        heads: attention heads; ``None`` means OpenAI's rule: ``width // 64`` (ViT) or ``32 * width // 64``
            (ResNet attention pool).
        mlp_ratio: ViT MLP hidden size over width.
        hidden_act: ``"quick_gelu"`` (every OpenAI checkpoint) or ``"gelu"`` (exact erf GELU, most open_clip
            LAION checkpoints). The ResNet has no MLP.
        layer_norm_eps: LayerNorm epsilon (1e-5).
        attention_dropout: attention-probability dropout (training only; 0 in CLIP).
        initializer_range: kept for transformers utilities; CLIP uses OpenAI's width-scaled initialisation.
    """

    model_type = "vlhub_clip_vision_model"
    base_config_key = "vision_config"

    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int | list[int] | tuple[int, ...] = 12
    heads: int | None = None
    mlp_ratio: int | float = 4.0
    hidden_act: HiddenAct = "quick_gelu"
    layer_norm_eps: int | float = 1e-5
    attention_dropout: int | float = 0.0
    initializer_range: int | float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        if isinstance(self.layers, tuple):
            self.layers = list(self.layers)
        super().__post_init__(**kwargs)

    @property
    def is_resnet(self) -> bool:
        """``True`` for the ModifiedResNet tower (``layers`` is a list of 4 block counts)."""
        return isinstance(self.layers, (list, tuple))

    @property
    def num_heads(self) -> int:
        """The resolved number of attention heads (OpenAI's rule when ``heads`` is ``None``)."""
        if self.heads is not None:
            return self.heads
        return self.width * 32 // 64 if self.is_resnet else self.width // 64

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        owner = "ClipVisionConfig"
        _check_positive(owner, image_size=self.image_size, width=self.width)
        if self.is_resnet:
            if len(self.layers) != 4:
                raise ValueError(
                    f"{owner}.layers={self.layers!r}: a ModifiedResNet needs 4 block counts (e.g. [3, 4, 6, 3] for "
                    "RN50); pass an int for a ViT"
                )
            for count in self.layers:
                _check_positive(owner, layers=count)
            if self.width < 2 or self.width % 2:
                raise ValueError(f"{owner}.width={self.width} must be an even number >= 2 for the ResNet stem")
            if self.image_size < 32:
                raise ValueError(f"{owner}.image_size={self.image_size} must be >= 32 for the ResNet (it divides by 32)")
            _check_heads(owner, self.width * 32, self.heads, "32 * width // 64")
        else:
            _check_positive(owner, layers=self.layers, patch_size=self.patch_size)
            if self.image_size % self.patch_size:
                raise ValueError(
                    f"{owner}.image_size={self.image_size} is not a multiple of patch_size={self.patch_size}"
                )
            _check_heads(owner, self.width, self.heads, "width // 64")
            if self.num_heads < 1:
                raise ValueError(f"{owner}: width={self.width} < 64 gives no head with heads=None; set heads explicitly")
            if self.mlp_ratio <= 0:
                raise ValueError(f"{owner}.mlp_ratio={self.mlp_ratio} must be > 0")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"{owner}.attention_dropout={self.attention_dropout} is out of range; allowed [0, 1)")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"{owner}.layer_norm_eps={self.layer_norm_eps} must be > 0")


@strict
class ClipTextConfig(PreTrainedConfig):
    """The CLIP text tower: a causal pre-LN transformer pooled at the end-of-text token.

    Args:
        vocab_size: BPE vocabulary (49408 for OpenAI CLIP).
        context_length: positional embeddings, the longest accepted input in tokens (77).
        width: model width.
        heads: attention heads; ``None`` means OpenAI's ``width // 64``.
        layers: number of blocks.
        mlp_ratio: MLP hidden size over width.
        hidden_act: ``"quick_gelu"`` (OpenAI) or ``"gelu"``.
        layer_norm_eps: LayerNorm epsilon (1e-5).
        attention_dropout: attention-probability dropout (training only).
        pad_token_id, bos_token_id, eos_token_id: the tokenizer's ids (``<|endoftext|>`` pads, as transformers'
            CLIP tokenizer; OpenAI pads with 0 -- identical results, the causal tower never looks past the EOT).
            The tower pools at the first ``eos_token_id``; when it is ``None`` or the largest id
            (``vocab_size - 1``, every OpenAI checkpoint) it pools at ``argmax(input_ids)`` exactly as the original.
        initializer_range: kept for transformers utilities; CLIP uses OpenAI's width-scaled initialisation.
    """

    model_type = "vlhub_clip_text_model"
    base_config_key = "text_config"

    vocab_size: int = 49408
    context_length: int = 77
    width: int = 512
    heads: int | None = None
    layers: int = 12
    mlp_ratio: int | float = 4.0
    hidden_act: HiddenAct = "quick_gelu"
    layer_norm_eps: int | float = 1e-5
    attention_dropout: int | float = 0.0
    pad_token_id: int | None = 49407
    bos_token_id: int | None = 49406
    eos_token_id: int | None = 49407
    initializer_range: int | float = 0.02

    @property
    def num_heads(self) -> int:
        """The resolved number of attention heads (``width // 64`` when ``heads`` is ``None``)."""
        return self.heads if self.heads is not None else self.width // 64

    @property
    def pooling_eos_token_id(self) -> int | None:
        """What :class:`~vl_hub.layers.clip_text.ClipTextTransformer` gets as ``eos_token_id``: ``None`` (argmax
        pooling, the original's) when the EOT is the largest id, else the EOT id (first occurrence)."""
        if self.eos_token_id is None or self.eos_token_id == self.vocab_size - 1:
            return None
        return self.eos_token_id

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        owner = "ClipTextConfig"
        _check_positive(
            owner, vocab_size=self.vocab_size, context_length=self.context_length, width=self.width, layers=self.layers
        )
        _check_heads(owner, self.width, self.heads, "width // 64")
        if self.num_heads < 1:
            raise ValueError(f"{owner}: width={self.width} < 64 gives no head with heads=None; set heads explicitly")
        if self.mlp_ratio <= 0:
            raise ValueError(f"{owner}.mlp_ratio={self.mlp_ratio} must be > 0")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"{owner}.attention_dropout={self.attention_dropout} is out of range; allowed [0, 1)")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"{owner}.layer_norm_eps={self.layer_norm_eps} must be > 0")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"{owner}.{name}={value} is outside the vocabulary [0, {self.vocab_size})")


@strict
class ClipConfig(PreTrainedConfig):
    """Configuration of the CLIP heads (:class:`~vl_hub.models.clip.modeling_clip.ClipModel`,
    :class:`~vl_hub.models.clip.modeling_clip.ClipForZeroShotClassification`).

    Args:
        vision_config, text_config: the two towers (dicts or config objects); defaults are ViT-B/32's.
        embed_dim: the shared embedding size (``visual.proj`` / ``text_projection`` output; 512 for ViT-B/32).
        logit_scale_init_value: initial ``logit_scale`` (a log): ``ln(1/0.07)``; logits are
            ``exp(logit_scale) * cosine``.
    """

    model_type = "vlhub_clip"
    sub_configs_defaults = {"vision_config": ClipVisionConfig, "text_config": ClipTextConfig}

    vision_config: dict | ClipVisionConfig | None = None
    text_config: dict | ClipTextConfig | None = None
    embed_dim: int = 512
    logit_scale_init_value: int | float = DEFAULT_LOGIT_SCALE
    initializer_range: int | float = 0.02

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        _check_positive("ClipConfig", embed_dim=self.embed_dim)
        if not math.isfinite(self.logit_scale_init_value):
            raise ValueError(f"ClipConfig.logit_scale_init_value={self.logit_scale_init_value} must be finite")
