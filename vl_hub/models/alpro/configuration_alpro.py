"""ALPRO configuration: a TimeSformer video tower and a BERT text transformer split by ``fusion_layer``.

Defaults are ALPRO-base as LAVIS builds it (``lavis/configs/models/alpro_*.yaml`` + ``bert_config_alpro.json``):
TimeSformer-B/16 (divided space-time attention) on 8 frames of 224 px, BERT-base with token-type embeddings,
6 text-only layers and 6 fusion layers. ALPRO has no cross-attention: the fusion layers run self-attention over the
concatenation ``[text states ; video tokens]``, so the text and vision widths must agree.
"""

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from vl_hub.layers.med import MedSettings

__all__ = ["AlproConfig", "AlproTextConfig", "AlproVisionConfig"]


def _positive_ints(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}.{name} must be a positive int, got {value!r}")


def _fraction(owner: str, name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.{name}={value!r} is out of range; allowed [0, 1)")


@strict
class AlproVisionConfig(PreTrainedConfig):
    """The ALPRO TimeSformer (LAVIS ``timesformer`` section; :class:`vl_hub.layers.timesformer.TimeSformer`).

    Args:
        image_size: frame resolution of ``pos_embed`` (224); other multiples of ``patch_size`` are interpolated at
            run time as in the original.
        patch_size: patch side (16 in every ALPRO checkpoint).
        num_frames: frames per clip (LAVIS ``n_frms``: 8 for retrieval, 16 for QA); the length of ``time_embed``.
        hidden_size, num_hidden_layers, num_attention_heads, mlp_ratio, qkv_bias: TimeSformer shape.
        layer_norm_eps: LayerNorm epsilon (1e-6).
        drop_path_rate: stochastic depth rising linearly to this value over the blocks (0.1, training only).
        attention_dropout: dropout on attention probabilities (training only; LAVIS ``attn_drop_rate`` 0).
        interpolate_num_frames: accept clips whose frame count differs from ``num_frames`` by resizing ``time_embed``
            (nearest) at run time, as LAVIS's TimeSformer silently does. Off by default: a clip sampled with another
            frame count than the checkpoint was trained with is almost always a pipeline mistake, so it raises.
        initializer_range: std of the truncated-normal initialisation.
    """

    model_type = "vlhub_alpro_vision_model"
    base_config_key = "vision_config"

    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 8
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float | int = 1e-6
    drop_path_rate: float | int = 0.1
    attention_dropout: float | int = 0.0
    interpolate_num_frames: bool = False
    initializer_range: float | int = 0.02

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        owner = "AlproVisionConfig"
        _positive_ints(
            owner,
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_frames=self.num_frames,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
        )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{owner}.hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}"
            )
        if self.image_size % self.patch_size:
            raise ValueError(f"{owner}.image_size={self.image_size} is not a multiple of patch_size={self.patch_size}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"{owner}.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        _fraction(owner, "drop_path_rate", self.drop_path_rate)
        _fraction(owner, "attention_dropout", self.attention_dropout)

    def timesformer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`vl_hub.layers.timesformer.TimeSformer`."""
        return {
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_frames": self.num_frames,
            "embed_dim": self.hidden_size,
            "depth": self.num_hidden_layers,
            "num_heads": self.num_attention_heads,
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            "layer_norm_eps": self.layer_norm_eps,
            "drop_path_rate": self.drop_path_rate,
            "attention_dropout": self.attention_dropout,
        }


@strict
class AlproTextConfig(PreTrainedConfig):
    """The ALPRO text transformer (LAVIS ``bert_config_alpro.json``): a post-LN BERT with token-type embeddings whose
    layers ``[0, fusion_layer)`` encode the text alone and layers ``[fusion_layer, N)`` run self-attention over
    ``[text states ; video tokens]`` (no cross-attention anywhere).

    Token ids (plain ``bert-base-uncased`` vocabulary, no added tokens): ``cls_token_id`` starts every sequence and is
    the position read by the ITC projection, the matching head and the QA classifier; ``sep_token_id`` ends it;
    ``pad_token_id`` pads. ALPRO passes all-zero ``token_type_ids``.
    """

    model_type = "vlhub_alpro_text_model"
    base_config_key = "text_config"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    fusion_layer: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float | int = 1e-12
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    initializer_range: float | int = 0.02
    pad_token_id: int | None = 0
    cls_token_id: int | None = 101
    sep_token_id: int | None = 102

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        owner = "AlproTextConfig"
        _positive_ints(
            owner,
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
        )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{owner}.hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}"
            )
        if not 1 <= self.fusion_layer < self.num_hidden_layers:
            raise ValueError(
                f"{owner}.fusion_layer={self.fusion_layer} must be in [1, num_hidden_layers={self.num_hidden_layers}): "
                "ALPRO needs at least one text-only layer and one fusion layer"
            )
        _fraction(owner, "hidden_dropout_prob", self.hidden_dropout_prob)
        _fraction(owner, "attention_probs_dropout_prob", self.attention_probs_dropout_prob)
        for name in ("pad_token_id", "cls_token_id", "sep_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"{owner}.{name}={value} is outside the vocabulary [0, {self.vocab_size})")

    def to_med_settings(self, **overrides: Any) -> MedSettings:
        """The :class:`vl_hub.layers.med.MedSettings` of this text transformer (``overrides`` win): token-type
        embeddings on, no cross-attention, split at ``fusion_layer``."""
        settings: dict[str, Any] = {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
            "pad_token_id": self.pad_token_id,
            "add_cross_attention": False,
            "fusion_layer": self.fusion_layer,
            "add_type_embeddings": True,
            "type_vocab_size": self.type_vocab_size,
            "initializer_range": self.initializer_range,
        }
        settings.update(overrides)
        return MedSettings(**settings)


@strict
class AlproConfig(PreTrainedConfig):
    """Configuration of every ALPRO head (model type ``vlhub_alpro``).

    Args:
        vision_config, text_config: the two towers (dicts or config objects). Their ``hidden_size`` must agree: the
            fusion layers read text states and video tokens in one sequence.
        embed_dim: width of the contrastive projections ``vision_proj`` / ``text_proj`` (256).
        temp: initial ITC temperature (learned; clamped to [0.001, 0.5] before each training step).
        k_test: candidates re-scored by the matching head per query in retrieval evaluation (LAVIS's ALPRO evaluation
            configs use 1000, its training configs 256).
        max_txt_len: text length in tokens; the processor pads every text to it (LAVIS: 35 for retrieval, 50 in the
            DiDeMo evaluation, 40 for QA).
        num_labels / id2label / label2id: the QA answer vocabulary (``PreTrainedConfig`` fields; ``id2label[i]`` is the
            answer string of class ``i``).
    """

    model_type = "vlhub_alpro"
    sub_configs_defaults: ClassVar[dict[str, Any]] = {"vision_config": AlproVisionConfig, "text_config": AlproTextConfig}

    vision_config: dict | AlproVisionConfig | None = None
    text_config: dict | AlproTextConfig | None = None
    embed_dim: int = 256
    temp: float | int = 0.07
    k_test: int = 256
    max_txt_len: int = 35
    initializer_range: float | int = 0.02

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        _positive_ints("AlproConfig", embed_dim=self.embed_dim, k_test=self.k_test, max_txt_len=self.max_txt_len)
        if not 0.001 <= self.temp <= 0.5:
            raise ValueError(f"AlproConfig.temp={self.temp} is out of range; allowed [0.001, 0.5]")
        vision_width, text_width = self.vision_config.hidden_size, self.text_config.hidden_size
        if vision_width != text_width:
            raise ValueError(
                f"vision_config.hidden_size={vision_width} differs from text_config.hidden_size={text_width}; ALPRO "
                "fuses by concatenating video tokens with text states, so both widths must be equal"
            )
        if self.max_txt_len > self.text_config.max_position_embeddings:
            raise ValueError(
                f"AlproConfig.max_txt_len={self.max_txt_len} exceeds text_config.max_position_embeddings="
                f"{self.text_config.max_position_embeddings}"
            )
