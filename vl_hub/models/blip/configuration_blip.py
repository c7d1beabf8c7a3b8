"""BLIP configuration: a ViT vision tower and the multimodal BERT (MED) text transformer.

Defaults are BLIP-base (ViT-B/16 at 384 px, BERT-base with ``[DEC]``/``[ENC]`` added: 30524 tokens).
"""

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from vl_hub.layers.med import MedSettings


def _check_range(owner: str, name: str, value: float, low: float, high: float, high_open: bool = True) -> None:
    ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{owner}.{name}={value!r} is out of range; allowed [{low}, {high}{bracket}")


def _check_positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}.{name} must be a positive int, got {value!r}")


@strict
class BlipVisionConfig(PreTrainedConfig):
    """The BLIP ViT (pre-LayerNorm timm ViT, LN eps 1e-6).

    Args:
        image_size: training resolution (``pos_embed`` grid); other multiples of ``patch_size`` are
            interpolated at run time.
        patch_size, hidden_size, num_hidden_layers, num_attention_heads, mlp_ratio, qkv_bias: ViT shape.
        layer_norm_eps: LayerNorm epsilon.
        drop_path_rate: stochastic depth at the last block (training only).
        attention_dropout: dropout on attention probabilities (training only).
        gradient_checkpointing_layers: with gradient checkpointing on, how many of the last blocks are
            checkpointed (LAVIS ``vit_ckpt_layer``); 0 means all of them.
        initializer_range: std of the truncated-normal init.
    """

    model_type = "vlhub_blip_vision_model"
    base_config_key = "vision_config"

    image_size: int = 384
    patch_size: int = 16
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    mlp_ratio: float | int = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float | int = 1e-6
    drop_path_rate: float | int = 0.0
    attention_dropout: float | int = 0.0
    gradient_checkpointing_layers: int = 0
    initializer_range: float | int = 0.02

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        owner = type(self).__name__  # subclasses (AlbefVisionConfig) name themselves
        _check_positive(
            owner,
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
        )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{owner}.hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"{owner}.image_size={self.image_size} is not a multiple of patch_size={self.patch_size}"
            )
        _check_range(owner, "drop_path_rate", self.drop_path_rate, 0.0, 1.0)
        _check_range(owner, "attention_dropout", self.attention_dropout, 0.0, 1.0)
        if not 0 <= self.gradient_checkpointing_layers <= self.num_hidden_layers:
            raise ValueError(
                f"{owner}.gradient_checkpointing_layers={self.gradient_checkpointing_layers} must be in "
                f"[0, num_hidden_layers={self.num_hidden_layers}]"
            )

    def vit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`vl_hub.layers.vit.VisionTransformer`."""
        return {
            "image_size": self.image_size,
            "patch_size": self.patch_size,
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
class BlipTextConfig(PreTrainedConfig):
    """The BLIP multimodal text transformer (LAVIS ``med_config.json``): post-LN BERT with
    cross-attention in every layer, shared by the text encoder and (separately weighted) the decoder.

    Token ids: ``bos_token_id`` is ``[DEC]`` (decoder start), ``enc_token_id`` is ``[ENC]`` (replaces
    ``[CLS]`` for image-grounded encoding), ``sep_token_id`` ends a sequence (eos), ``pad_token_id`` pads.
    """

    model_type = "vlhub_blip_text_model"
    base_config_key = "text_config"

    vocab_size: int = 30524
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    layer_norm_eps: float | int = 1e-12
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    initializer_range: float | int = 0.02
    encoder_width: int | None = None
    pad_token_id: int | None = 0
    bos_token_id: int | None = 30522
    eos_token_id: int | None = 102
    sep_token_id: int | None = 102
    cls_token_id: int | None = 101
    enc_token_id: int | None = 30523
    tie_word_embeddings: bool = True

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        _check_positive(
            "BlipTextConfig",
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
        )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"BlipTextConfig.hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        _check_range("BlipTextConfig", "hidden_dropout_prob", self.hidden_dropout_prob, 0.0, 1.0)
        _check_range("BlipTextConfig", "attention_probs_dropout_prob", self.attention_probs_dropout_prob, 0.0, 1.0)
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "enc_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"BlipTextConfig.{name}={value} is outside the vocabulary [0, {self.vocab_size})")

    def to_med_settings(self, **overrides: Any) -> MedSettings:
        """The :class:`vl_hub.layers.med.MedSettings` of this text transformer (``overrides`` win)."""
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
            "fusion_layer": None,
            "initializer_range": self.initializer_range,
        }
        settings.update(overrides)
        return MedSettings(**settings)


@strict
class BlipConfig(PreTrainedConfig):
    """Configuration of every BLIP head.

    Args:
        vision_config, text_config: the two towers (dicts or config objects).
        embed_dim: width of the ITC projections (``vision_proj``/``text_proj``).
        temp: initial ITC temperature (learned; clamped to [0.001, 0.5]).
        queue_size, momentum, alpha: ITC queue length, momentum-encoder EMA, distillation weight
            (retrieval and pre-training heads).
        negative_all_rank: draw ITM hard negatives from the batches of every process (distributed retrieval training;
            every process needs the same batch size).
        k_test: ITM re-ranking depth of the retrieval scorer.
        max_txt_len: tokenizer truncation length used by the processor for this head.
        prompt: captioning prompt (its tokens get label -100).
        prompt_input_ids: the decoder ids of ``prompt`` (``[DEC]`` + its word pieces, no ``[SEP]``; BLIP-base:
            ``[30522, 1037, 3861, 1997]``), from ``modeling_blip_generation.caption_prompt_ids(tokenizer, prompt)``.
            Their count is LAVIS's ``prompt_length`` (label positions set to -100) and captioning ``generate()``
            starts from them when no ``input_ids`` are given. ``None``: unknown (then a non-empty ``prompt``
            needs explicit ``input_ids``/labels).
        label_smoothing: of every LM loss (0.1 in BLIP).
        num_answer_candidates: VQA ranking: answers kept by first-token probability.
        nlvr_merge_layer: NLVR layers from this index merge the two images' cross-attention with
            ``merge_layer`` instead of averaging (6 in BLIP, hard-coded there).
        classifier_hidden_size: hidden width of the NLVR / classification MLP (``None``: text hidden size).
        use_distill: image-text classification (SNLI-VE) trains with momentum distillation: EMA copies
            ``*_m`` of the encoders and ``cls_head`` give soft targets weighted by ``alpha`` (LAVIS
            ``blip_classification`` sets it; off by default so the head carries no momentum copies).
    """

    model_type = "vlhub_blip"
    sub_configs_defaults = {"vision_config": BlipVisionConfig, "text_config": BlipTextConfig}

    vision_config: dict | BlipVisionConfig | None = None
    text_config: dict | BlipTextConfig | None = None
    embed_dim: int = 256
    temp: float | int = 0.07
    queue_size: int = 57600
    momentum: float | int = 0.995
    alpha: float | int = 0.4
    negative_all_rank: bool = False
    k_test: int = 256
    max_txt_len: int = 35
    prompt: str = "a picture of "
    prompt_input_ids: list[int] | None = None
    label_smoothing: float | int = 0.1
    num_answer_candidates: int = 128
    nlvr_merge_layer: int = 6
    classifier_hidden_size: int | None = None
    use_distill: bool = False
    initializer_range: float | int = 0.02
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        # Cross-attention reads the vision tokens: its key/value width is the vision width.
        if self.text_config.encoder_width is None:
            self.text_config.encoder_width = self.vision_config.hidden_size

    def validate_architecture(self) -> None:
        """Raises ``ValueError`` naming the bad value and the allowed range."""
        _check_positive("BlipConfig", embed_dim=self.embed_dim, k_test=self.k_test, max_txt_len=self.max_txt_len)
        if not 0.001 <= self.temp <= 0.5:
            raise ValueError(f"BlipConfig.temp={self.temp} is out of range; allowed [0.001, 0.5]")
        _check_range("BlipConfig", "momentum", self.momentum, 0.0, 1.0, high_open=False)
        _check_range("BlipConfig", "alpha", self.alpha, 0.0, 1.0, high_open=False)
        _check_range("BlipConfig", "label_smoothing", self.label_smoothing, 0.0, 1.0)
        if self.queue_size < 0:
            raise ValueError(f"BlipConfig.queue_size={self.queue_size} must be >= 0")
        if self.prompt_input_ids is not None:
            ids = list(self.prompt_input_ids)
            vocab, positions = self.text_config.vocab_size, self.text_config.max_position_embeddings
            if not ids or not all(isinstance(i, int) and 0 <= i < vocab for i in ids) or len(ids) >= positions:
                raise ValueError(
                    f"BlipConfig.prompt_input_ids={ids} must be 1 to {positions - 1} token ids in [0, {vocab}) "
                    "([DEC] + the prompt's word pieces); build them with caption_prompt_ids(tokenizer, prompt)"
                )
        if self.max_txt_len > self.text_config.max_position_embeddings:
            raise ValueError(
                f"BlipConfig.max_txt_len={self.max_txt_len} exceeds text_config.max_position_embeddings="
                f"{self.text_config.max_position_embeddings}"
            )
