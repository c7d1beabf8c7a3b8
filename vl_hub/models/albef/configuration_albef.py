"""ALBEF configuration: a ViT vision tower and the BERT text transformer split by ``fusion_layer``.

Defaults are ALBEF-base (ViT-B/16 at 384 px, BERT-base with 30522 tokens, 6 text + 6 fusion layers, LAVIS
``med_config_albef.json``). The tokenizer is plain BERT: ``[CLS]`` stays first everywhere (ALBEF has no
``[DEC]``/``[ENC]`` tokens; the VQA answer decoder starts from ``[CLS]`` too).
"""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from vl_hub.layers.med import MedSettings
from vl_hub.models.blip.configuration_blip import BlipVisionConfig

__all__ = ["AlbefConfig", "AlbefTextConfig", "AlbefVisionConfig"]


def _positive_ints(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}.{name} must be a positive int, got {value!r}")


def _fraction(owner: str, name: str, value: float, closed: bool = False) -> None:
    ok = 0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0
    if not ok:
        raise ValueError(f"{owner}.{name}={value!r} is out of range; allowed [0, 1{']' if closed else ')'}")


@strict
class AlbefVisionConfig(BlipVisionConfig):
    """The ALBEF ViT: the same pre-LayerNorm timm ViT as BLIP's (LN eps 1e-6), see :class:`BlipVisionConfig`.

    Args:
        image_size: training resolution (``pos_embed`` grid; 384 for the fine-tuned heads, 224/256 in pre-training);
            other multiples of ``patch_size`` are interpolated at run time.
        patch_size, hidden_size, num_hidden_layers, num_attention_heads, mlp_ratio, qkv_bias: ViT shape.
        layer_norm_eps, drop_path_rate, attention_dropout, gradient_checkpointing_layers, initializer_range: as BLIP.
    """

    model_type = "vlhub_albef_vision_model"


@strict
class AlbefTextConfig(PreTrainedConfig):
    """The ALBEF text transformer (LAVIS ``med_config_albef.json``): a post-LN BERT whose layers
    ``[0, fusion_layer)`` encode text alone and layers ``[fusion_layer, N)`` add cross-attention to the image.

    ALBEF NLVR uses 18 layers with ``fusion_layer=6`` (6 text + 12 fusion layers); the VQA answer decoder is a
    separate ``N - fusion_layer``-layer decoder (``AlbefConfig.decoder_num_hidden_layers``).

    Token ids: ``cls_token_id`` starts every sequence (also the VQA decoder's start token), ``sep_token_id`` ends it
    (eos), ``pad_token_id`` pads, ``mask_token_id`` is the MLM mask of pre-training.
    """

    model_type = "vlhub_albef_text_model"
    base_config_key = "text_config"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    fusion_layer: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    encoder_width: int | None = None
    pad_token_id: int | None = 0
    cls_token_id: int | None = 101
    sep_token_id: int | None = 102
    eos_token_id: int | None = 102
    bos_token_id: int | None = 101
    mask_token_id: int | None = 103
    tie_word_embeddings: bool = True

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        owner = type(self).__name__
        _positive_ints(
            owner,
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
        )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{owner}.hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}"
            )
        if isinstance(self.fusion_layer, bool) or not 0 <= self.fusion_layer < self.num_hidden_layers:
            raise ValueError(
                f"{owner}.fusion_layer={self.fusion_layer!r} must be in [0, num_hidden_layers={self.num_hidden_layers}) "
                "(layers from fusion_layer on cross-attend the image; ALBEF-base: 6 of 12)"
            )
        _fraction(owner, "hidden_dropout_prob", self.hidden_dropout_prob)
        _fraction(owner, "attention_probs_dropout_prob", self.attention_probs_dropout_prob)
        for name in ("pad_token_id", "cls_token_id", "sep_token_id", "eos_token_id", "bos_token_id", "mask_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"{owner}.{name}={value} is outside the vocabulary [0, {self.vocab_size})")

    def to_med_settings(self, **overrides: Any) -> MedSettings:
        """The :class:`vl_hub.layers.med.MedSettings` of this text transformer (``overrides`` win, e.g.
        ``fusion_layer=0, num_hidden_layers=6`` for the VQA decoder)."""
        settings = {
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
            "encoder_width": self.encoder_width,
            "add_cross_attention": True,
            "fusion_layer": self.fusion_layer,
            "initializer_range": self.initializer_range,
        }
        settings.update(overrides)
        return MedSettings(**settings)


@strict
class AlbefConfig(PreTrainedConfig):
    """Configuration of every ALBEF head (model type ``vlhub_albef``).

    Args:
        vision_config, text_config: the two towers (dicts or config objects).
        embed_dim: width of the ITC projections (``vision_proj``/``text_proj``).
        temp: initial ITC temperature (learned; clamped to [0.001, 0.5]).
        queue_size: length of the ITC feature queues (retrieval and pre-training; 65536 in ALBEF).
        momentum: EMA factor of the momentum copies (``*_m``).
        alpha: momentum-distillation weight (ramp it up per step with ``forward(alpha=...)``).
        use_distill: momentum distillation. Retrieval: ITC targets mix in the momentum similarities (the momentum
            encoders and queues exist either way). VQA / NLVR / visual entailment: the head keeps momentum copies
            (``*_m``) whose predictions are soft targets. LAVIS sets it for every ALBEF head.
        mlm_probability: masking rate of the pre-training MLM loss (0.15).
        k_test: ITM re-ranking depth of the retrieval scorer (128 in LAVIS's ALBEF evaluation).
        max_txt_len: tokenizer truncation length used by the processor for this head (retrieval and pre-training
            30, VQA 25, NLVR and SNLI-VE 40).
        label_smoothing: of the VQA answer loss and answer ranking (0.1).
        num_answer_candidates: VQA ranking: answers kept by first-token probability (128).
        decoder_num_hidden_layers: depth of the VQA answer decoder (``None``: the number of fusion layers,
            ``text_config.num_hidden_layers - text_config.fusion_layer``, as LAVIS).
        classifier_hidden_size: hidden width of the NLVR / visual-entailment MLP (``None``: text hidden size).
    """

    model_type = "vlhub_albef"
    sub_configs_defaults: ClassVar[dict[str, type[PreTrainedConfig]]] = {"vision_config": AlbefVisionConfig, "text_config": AlbefTextConfig}

    vision_config: dict | AlbefVisionConfig | None = None
    text_config: dict | AlbefTextConfig | None = None
    embed_dim: int = 256
    temp: float = 0.07
    queue_size: int = 65536
    momentum: float = 0.995
    alpha: float = 0.4
    use_distill: bool = True
    mlm_probability: float = 0.15
    k_test: int = 128
    max_txt_len: int = 30
    label_smoothing: float = 0.1
    num_answer_candidates: int = 128
    decoder_num_hidden_layers: int | None = None
    classifier_hidden_size: int | None = None
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        # Cross-attention reads the vision tokens: its key/value width is the vision width.
        if self.text_config.encoder_width is None:
            self.text_config.encoder_width = self.vision_config.hidden_size

    @property
    def num_decoder_layers(self) -> int:
        """Depth of the VQA answer decoder: ``decoder_num_hidden_layers`` or the number of fusion layers."""
        if self.decoder_num_hidden_layers is not None:
            return self.decoder_num_hidden_layers
        return self.text_config.num_hidden_layers - self.text_config.fusion_layer

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        _positive_ints(
            "AlbefConfig",
            embed_dim=self.embed_dim,
            k_test=self.k_test,
            max_txt_len=self.max_txt_len,
            num_answer_candidates=self.num_answer_candidates,
        )
        if self.decoder_num_hidden_layers is not None:
            _positive_ints("AlbefConfig", decoder_num_hidden_layers=self.decoder_num_hidden_layers)
        if self.classifier_hidden_size is not None:
            _positive_ints("AlbefConfig", classifier_hidden_size=self.classifier_hidden_size)
        if not 0.001 <= self.temp <= 0.5:
            raise ValueError(f"AlbefConfig.temp={self.temp} is out of range; allowed [0.001, 0.5]")
        _fraction("AlbefConfig", "momentum", self.momentum, closed=True)
        _fraction("AlbefConfig", "alpha", self.alpha, closed=True)
        _fraction("AlbefConfig", "label_smoothing", self.label_smoothing)
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"AlbefConfig.mlm_probability={self.mlm_probability} is out of range; allowed (0, 1)")
        if isinstance(self.queue_size, bool) or self.queue_size < 0:
            raise ValueError(f"AlbefConfig.queue_size={self.queue_size} must be >= 0 (0: no queue)")
        if self.max_txt_len > self.text_config.max_position_embeddings:
            raise ValueError(
                f"AlbefConfig.max_txt_len={self.max_txt_len} exceeds text_config.max_position_embeddings="
                f"{self.text_config.max_position_embeddings}"
            )
