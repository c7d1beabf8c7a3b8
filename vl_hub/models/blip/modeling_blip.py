"""BLIP heads (LAVIS ``blip_models``) on the shared ViT and MED layers.

Every head subclasses :class:`BlipPreTrainedModel`; parameter names follow LAVIS's so that
``convert_blip_checkpoint.py`` maps original checkpoints with prefix renames only.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init

from vl_hub.layers.med import CrossAttentionFactory, MedLMHeadModel, MedModel, init_med_weights
from vl_hub.layers.vit import VisionTransformer
from vl_hub.modeling_utils import VlHubPreTrainedModel
from vl_hub.models.blip.configuration_blip import BlipConfig


class BlipPreTrainedModel(VlHubPreTrainedModel):
    """Base of every BLIP head: config class, weight init, the tower builders."""

    config: BlipConfig
    config_class = BlipConfig
    base_model_prefix = "blip"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    _no_split_modules = ["ViTBlock", "MedLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        """BERT init for Linear/Embedding/LayerNorm; truncated normal for the ViT's cls/pos embeddings."""
        std = self.config.initializer_range
        if isinstance(module, VisionTransformer):
            vstd = self.config.vision_config.initializer_range
            init.trunc_normal_(module.pos_embed, mean=0.0, std=vstd)
            init.trunc_normal_(module.cls_token, mean=0.0, std=vstd)
        elif isinstance(module, (nn.Linear, nn.Embedding, nn.LayerNorm)) or hasattr(module, "bias") and isinstance(
            getattr(module, "bias", None), nn.Parameter
        ):
            if isinstance(module, nn.Linear):
                init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                init.normal_(module.weight, mean=0.0, std=std)
                if module.padding_idx is not None:
                    init.zeros_(module.weight[module.padding_idx])
            elif isinstance(module, nn.LayerNorm):
                init.ones_(module.weight)
                init.zeros_(module.bias)
            else:
                init_med_weights(module, std)
        elif isinstance(module, nn.Conv2d):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)

    # ------------------------------------------------------------------ builders
    @staticmethod
    def build_vision_encoder(config: BlipConfig) -> VisionTransformer:
        """The ViT of ``config.vision_config`` (``visual_encoder.*`` in checkpoints)."""
        attn = getattr(config, "_attn_implementation", None)
        return VisionTransformer(
            **config.vision_config.vit_kwargs(), attn_implementation=attn if attn in ("sdpa", "eager") else "sdpa"
        )

    @staticmethod
    def build_text_encoder(
        config: BlipConfig, cross_attention_factory: CrossAttentionFactory | None = None, **overrides: object
    ) -> MedModel:
        """The image-grounded text encoder (``text_encoder.*``): every layer has cross-attention."""
        return MedModel(config.text_config.to_med_settings(**overrides), cross_attention_factory)

    @staticmethod
    def build_text_decoder(config: BlipConfig, **overrides: object) -> MedLMHeadModel:
        """The image-grounded text decoder with its tied LM head (``text_decoder.bert.*``, ``text_decoder.cls.*``)."""
        return MedLMHeadModel(config.text_config.to_med_settings(**overrides), is_decoder=True)

    def get_image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values (B, 3, H, W)`` -> ViT tokens ``(B, 1+N, D)``; ``(B, T, 3, H, W)`` video frames ->
        the frames' tokens concatenated ``(B, T*(1+N), D)`` (the original's zero-shot video path)."""
        from vl_hub.models.blip.inputs import check_pixel_values

        pixel_values = check_pixel_values(pixel_values, self.config.vision_config)
        if pixel_values.dim() == 5:
            b, t = pixel_values.shape[:2]
            tokens = self.visual_encoder(pixel_values.flatten(0, 1))
            return tokens.reshape(b, t * tokens.shape[1], tokens.shape[2])
        return self.visual_encoder(pixel_values)
