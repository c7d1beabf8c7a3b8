"""CLIP heads (LAVIS ``clip`` / ``clip_feature_extractor``, OpenAI CLIP) on the shared CLIP layers.

* :class:`ClipModel` (``AutoModel``): the two towers and ``logit_scale``; image/text features, the
  image-text logits ``exp(logit_scale) * cosine`` and the symmetric contrastive loss;
* :class:`ClipForZeroShotClassification` (``AutoModelForZeroShotImageClassification``): the same weights plus
  prompt-ensembled zero-shot classification with a cached text classifier; transformers'
  ``pipeline("zero-shot-image-classification")`` runs it.

Parameter names: ``visual.*`` is OpenAI's image tower (``conv1``, ``class_embedding``, ``transformer.resblocks``,
``proj`` for a ViT; ``layer1..4``, ``attnpool`` for the ResNet); the OpenAI top-level text names live under
``text.`` (``text.token_embedding``, ``text.positional_embedding``, ``text.transformer.*``, ``text.ln_final``,
``text.text_projection``); ``logit_scale`` is at the top. ``convert_clip_checkpoint.py`` maps OpenAI, open_clip,
LAVIS and transformers checkpoints onto them.

Video: ``pixel_values (B, T, 3, H, W)`` -> every frame is encoded and the image feature is the mean of the
frames' (projected, unnormalised) features -- CLIP's zero-shot video-text retrieval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from vl_hub.layers.clip_text import ClipTextTransformer
from vl_hub.layers.clip_transformer import ClipTowerOutput, ClipTransformer
from vl_hub.layers.clip_vision import ClipVisionTransformer
from vl_hub.layers.resnet import AttentionPool2d, Bottleneck, ModifiedResNet
from vl_hub.losses import clip_logits, clip_loss
from vl_hub.modeling_outputs import ImageTextFeatures
from vl_hub.modeling_utils import VlHubPreTrainedModel
from vl_hub.models.clip.configuration_clip import ClipConfig
from vl_hub.models.clip.inputs import check_choice, check_input_ids, check_pixel_values, check_same_batch
from vl_hub.models.clip.zero_shot import (
    check_class_names,
    check_templates,
    ensemble_text_classifier,
    imagenet_classnames,
    openai_imagenet_templates,
)

__all__ = [
    "AUTO_CLASSES",
    "ClipForZeroShotClassification",
    "ClipModel",
    "ClipOutput",
    "ClipPreTrainedModel",
    "ZeroShotClassificationOutput",
]

#: head class name -> Auto classes that load it (read by ``vl_hub.models.clip.register``)
AUTO_CLASSES: dict[str, tuple[str, ...]] = {
    "ClipModel": ("AutoModel",),
    "ClipForZeroShotClassification": ("AutoModelForZeroShotImageClassification",),
}

FEATURE_MODES: tuple[str | None, ...] = (None, "image", "text", "both")


@dataclass
class ClipOutput(ModelOutput):
    """Output of :meth:`ClipModel.forward`.

    Attributes:
        loss: ``()`` symmetric contrastive loss (``return_loss=True``; pair ``i`` is the positive of row ``i``).
        logits_per_image: ``(N_images, N_texts)`` ``exp(logit_scale) * cos(image, text)``.
        logits_per_text: ``(N_texts, N_images)`` the same scores seen from the texts.
        image_embeds: ``(N_images, E)`` projected image features, **not** normalised (``encode_image``; video:
            the mean over frames).
        text_embeds: ``(N_texts, E)`` projected text features, not normalised (``encode_text``).
        image_feat: ``(N_images, E)`` L2-normalised ``image_embeds``.
        text_feat: ``(N_texts, E)`` L2-normalised ``text_embeds``.
        vision_model_output: the image tower's :class:`~vl_hub.layers.clip_transformer.ClipTowerOutput`
            (hidden states / attentions when asked for).
        text_model_output: the text tower's ``ClipTowerOutput``.
    """

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    image_feat: torch.Tensor | None = None
    text_feat: torch.Tensor | None = None
    vision_model_output: ClipTowerOutput | None = None
    text_model_output: ClipTowerOutput | None = None


@dataclass
class ZeroShotClassificationOutput(ModelOutput):
    """Output of :meth:`ClipForZeroShotClassification.classify`.

    Attributes:
        loss: ``()`` cross-entropy of ``logits`` against ``labels`` (when given).
        logits: ``(B, C)`` ``exp(logit_scale) * cos(image, class embedding)``; ``softmax`` gives probabilities.
        image_feat: ``(B, E)`` L2-normalised image features.
        class_embeds: ``(C, E)`` the normalised, prompt-ensembled class embeddings used.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    image_feat: torch.Tensor | None = None
    class_embeds: torch.Tensor | None = None


def _init_batch_norm(norm: nn.BatchNorm2d, zero_weight: bool = False) -> None:
    (init.zeros_ if zero_weight else init.ones_)(norm.weight)
    init.zeros_(norm.bias)
    init.zeros_(norm.running_mean)
    init.ones_(norm.running_var)
    init.zeros_(norm.num_batches_tracked)


def _init_conv(conv: nn.Conv2d) -> None:
    # PyTorch's default Conv2d initialisation, which OpenAI's ResNet keeps.
    init.kaiming_uniform_(conv.weight, a=math.sqrt(5))


class ClipPreTrainedModel(VlHubPreTrainedModel):
    """Base of the CLIP heads: config class, OpenAI's initialisation, tower builders."""

    config: ClipConfig
    config_class = ClipConfig
    base_model_prefix = "clip"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    _no_split_modules = ["ClipResidualAttentionBlock", "Bottleneck"]

    def _init_weights(self, module: nn.Module) -> None:
        """OpenAI CLIP's initialisation (``CLIP.initialize_parameters``), through transformers' guarded init
        functions so that weights loaded by ``from_pretrained`` are never overwritten."""
        if isinstance(module, ClipTransformer):
            attn_std = module.width**-0.5
            proj_std = attn_std * (2 * module.layers) ** -0.5
            fc_std = (2 * module.width) ** -0.5
            for block in module.resblocks:
                init.normal_(block.attn.in_proj_weight, std=attn_std)
                init.zeros_(block.attn.in_proj_bias)
                init.normal_(block.attn.out_proj.weight, std=proj_std)
                init.zeros_(block.attn.out_proj.bias)
                init.normal_(block.mlp.c_fc.weight, std=fc_std)
                init.zeros_(block.mlp.c_fc.bias)
                init.normal_(block.mlp.c_proj.weight, std=proj_std)
                init.zeros_(block.mlp.c_proj.bias)
                for norm in (block.ln_1, block.ln_2):
                    init.ones_(norm.weight)
                    init.zeros_(norm.bias)
        elif isinstance(module, ClipTextTransformer):
            init.normal_(module.token_embedding.weight, std=0.02)
            init.normal_(module.positional_embedding, std=0.01)
            init.ones_(module.ln_final.weight)
            init.zeros_(module.ln_final.bias)
            init.normal_(module.text_projection, std=module.width**-0.5)
        elif isinstance(module, ClipVisionTransformer):
            scale = module.width**-0.5
            init.normal_(module.class_embedding, std=scale)
            init.normal_(module.positional_embedding, std=scale)
            init.normal_(module.proj, std=scale)
            _init_conv(module.conv1)
            for norm in (module.ln_pre, module.ln_post):
                init.ones_(norm.weight)
                init.zeros_(norm.bias)
        elif isinstance(module, AttentionPool2d):
            std = module.c_proj.in_features**-0.5
            init.normal_(module.positional_embedding, std=module.embed_dim**-0.5)
            for proj in (module.q_proj, module.k_proj, module.v_proj, module.c_proj):
                init.normal_(proj.weight, std=std)
                init.zeros_(proj.bias)
        elif isinstance(module, Bottleneck):
            # bn3 starts at zero: every residual branch begins as the identity (OpenAI's ResNet init)
            for conv in (module.conv1, module.conv2, module.conv3):
                _init_conv(conv)
            _init_batch_norm(module.bn1)
            _init_batch_norm(module.bn2)
            _init_batch_norm(module.bn3, zero_weight=True)
            if module.downsample is not None:
                # checkpoint keys "0" (1x1 conv) and "1" (BatchNorm); "pool" has no parameters
                _init_conv(getattr(module.downsample, "0"))
                _init_batch_norm(getattr(module.downsample, "1"))
        elif isinstance(module, ModifiedResNet):
            for conv, norm in ((module.conv1, module.bn1), (module.conv2, module.bn2), (module.conv3, module.bn3)):
                _init_conv(conv)
                _init_batch_norm(norm)
        elif isinstance(module, ClipPreTrainedModel) and isinstance(getattr(module, "logit_scale", None), nn.Parameter):
            init.constant_(module.logit_scale, float(self.config.logit_scale_init_value))

    # ------------------------------------------------------------------ builders
    def _attn_implementation_name(self) -> str:
        attn = getattr(self.config, "_attn_implementation", None)
        return attn if attn in ("sdpa", "eager") else "sdpa"

    @staticmethod
    def build_vision_tower(config: ClipConfig, attn_implementation: str = "sdpa") -> ClipVisionTransformer | ModifiedResNet:
        """The image tower of ``config.vision_config`` (``visual.*``): a ViT, or the ModifiedResNet when
        ``layers`` lists 4 block counts."""
        vision = config.vision_config
        if vision.is_resnet:
            return ModifiedResNet(
                layers=vision.layers,
                output_dim=config.embed_dim,
                num_heads=vision.num_heads,
                image_size=vision.image_size,
                width=vision.width,
                attn_implementation=attn_implementation,
            )
        return ClipVisionTransformer(
            image_size=vision.image_size,
            patch_size=vision.patch_size,
            width=vision.width,
            layers=vision.layers,
            embed_dim=config.embed_dim,
            num_heads=vision.num_heads,
            mlp_ratio=vision.mlp_ratio,
            activation=vision.hidden_act,
            layer_norm_eps=vision.layer_norm_eps,
            attention_dropout=vision.attention_dropout,
            attn_implementation=attn_implementation,
        )

    @staticmethod
    def build_text_tower(config: ClipConfig, attn_implementation: str = "sdpa") -> ClipTextTransformer:
        """The causal text tower of ``config.text_config`` (``text.*``)."""
        text = config.text_config
        return ClipTextTransformer(
            vocab_size=text.vocab_size,
            context_length=text.context_length,
            width=text.width,
            layers=text.layers,
            embed_dim=config.embed_dim,
            num_heads=text.num_heads,
            mlp_ratio=text.mlp_ratio,
            activation=text.hidden_act,
            layer_norm_eps=text.layer_norm_eps,
            eos_token_id=text.pooling_eos_token_id,
            attention_dropout=text.attention_dropout,
            attn_implementation=attn_implementation,
        )


def _check_right_padded(attention_mask: torch.Tensor | None) -> None:
    """The text tower has no padding mask: padding must come after the text (right padding)."""
    if attention_mask is None:
        return
    mask = attention_mask.to(torch.int32)
    if not torch.equal(mask, mask.cummin(dim=1).values):
        raise ValueError(
            "attention_mask has padding before text tokens (left padding); CLIP's causal text tower has no padding "
            "mask and needs right padding -- set tokenizer.padding_side = 'right' (the ClipProcessor default)"
        )


class ClipModel(ClipPreTrainedModel):
    """CLIP: image and text towers projected into one space, compared by ``exp(logit_scale) * cosine``.

    LAVIS ``clip`` / ``clip_feature_extractor`` (open_clip-derived ``CLIP``), OpenAI CLIP and transformers'
    ``CLIPModel`` checkpoints convert into it (``convert_clip_checkpoint.py``).

    Submodules: ``visual`` (:class:`~vl_hub.layers.clip_vision.ClipVisionTransformer` or
    :class:`~vl_hub.layers.resnet.ModifiedResNet`), ``text`` (:class:`~vl_hub.layers.clip_text.ClipTextTransformer`)
    and the scalar parameter ``logit_scale`` (a log; initially ``config.logit_scale_init_value``).
    """

    def __init__(self, config: ClipConfig) -> None:
        super().__init__(config)
        attn = self._attn_implementation_name()
        self.visual = self.build_vision_tower(config, attn)
        self.text = self.build_text_tower(config, attn)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.post_init()

    # ------------------------------------------------------------------ towers
    def encode_image(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> ClipTowerOutput:
        """Runs the image tower (OpenAI ``encode_image``).

        Args:
            pixel_values: ``(B, 3, H, W)`` normalised images, or ``(B, T, 3, H, W)`` video frames.
            output_hidden_states, output_attentions: also return the tower's per-block states / probabilities.

        Returns:
            :class:`~vl_hub.layers.clip_transformer.ClipTowerOutput` with ``embeds (B, E)`` projected, not
            normalised. For video, ``embeds`` is the mean of the ``T`` frame features and every other tensor keeps
            a frame axis: ``(B, T, ...)``.
        """
        check_pixel_values(pixel_values, self.config.vision_config)
        return self._run_image_tower(pixel_values, output_hidden_states, output_attentions)

    def _run_image_tower(
        self, pixel_values: torch.Tensor, output_hidden_states: bool = False, output_attentions: bool = False
    ) -> ClipTowerOutput:
        if pixel_values.dim() == 4:
            return self.visual(pixel_values, output_hidden_states, output_attentions)
        batch, frames = pixel_values.shape[:2]
        out = self.visual(pixel_values.flatten(0, 1), output_hidden_states, output_attentions)

        def per_video(x: torch.Tensor) -> torch.Tensor:
            return x.unflatten(0, (batch, frames))

        return ClipTowerOutput(
            per_video(out.embeds).mean(dim=1),
            per_video(out.last_hidden_state),
            per_video(out.pooler_output),
            None if out.hidden_states is None else tuple(per_video(h) for h in out.hidden_states),
            None if out.attentions is None else tuple(per_video(a) for a in out.attentions),
        )

    def encode_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> ClipTowerOutput:
        """Runs the text tower (OpenAI ``encode_text``).

        Args:
            input_ids: ``(B, L)`` ids, ``L <= context_length``, ``<|startoftext|> ... <|endoftext|>`` then padding.
            attention_mask: ``(B, L)`` optional; only checked (right padding), as the causal tower never looks past
                the end-of-text token it pools at.
            output_hidden_states, output_attentions: also return per-block states / probabilities.

        Returns:
            ``ClipTowerOutput`` with ``embeds (B, E)`` projected, not normalised.
        """
        check_input_ids(input_ids, self.config.text_config, attention_mask)
        _check_right_padded(attention_mask)
        return self.text(input_ids, output_hidden_states, output_attentions)

    def get_image_features(self, pixel_values: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """``pixel_values (B, 3, H, W)`` or video ``(B, T, 3, H, W)`` -> ``(B, E)`` projected image features
        (video: mean over frames); L2-normalised when ``normalize``."""
        embeds = self.encode_image(pixel_values).embeds
        return F.normalize(embeds, dim=-1) if normalize else embeds

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, normalize: bool = False
    ) -> torch.Tensor:
        """``input_ids (B, L)`` -> ``(B, E)`` projected text features; L2-normalised when ``normalize``."""
        embeds = self.encode_text(input_ids, attention_mask).embeds
        return F.normalize(embeds, dim=-1) if normalize else embeds

    def extract_features(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mode: str | None = None,
    ) -> ImageTextFeatures:
        """LAVIS ``CLIP.extract_features``: projected features and their L2-normalised versions.

        Args:
            pixel_values: ``(B, 3, H, W)`` images or ``(B, T, 3, H, W)`` video frames.
            input_ids: ``(M, L)`` token ids.
            attention_mask: ``(M, L)`` optional (see :meth:`encode_text`).
            mode: ``"image"``, ``"text"``, ``"both"``, or ``None`` for whatever is given. CLIP has no fused
                (multimodal) features.

        Returns:
            :class:`~vl_hub.modeling_outputs.ImageTextFeatures` with ``image_embeds (B, E)`` (projected, not
            normalised), ``image_embeds_proj`` and ``image_feat`` (both ``(B, E)``, L2-normalised) and the same
            three ``text_*`` fields ``(M, E)``; the fields of a modality not asked for are ``None``.
        """
        if mode == "multimodal":
            raise ValueError(
                "mode='multimodal': CLIP has no fused image-text encoder; use mode='both' for both unimodal features"
            )
        check_choice("mode", mode, FEATURE_MODES)
        if mode is None:
            if pixel_values is None and input_ids is None:
                raise ValueError("extract_features needs pixel_values (images), input_ids (text) or both; got neither")
            want_image, want_text = pixel_values is not None, input_ids is not None
        else:
            want_image, want_text = mode in ("image", "both"), mode in ("text", "both")
        missing = [n for n, want, x in (("pixel_values", want_image, pixel_values), ("input_ids", want_text, input_ids))
                   if want and x is None]
        if missing:
            raise ValueError(f"mode={mode!r} needs {' and '.join(missing)}; run the processor on the missing modality")
        out = ImageTextFeatures()
        if want_image:
            out.image_embeds = self.get_image_features(pixel_values)
            out.image_embeds_proj = out.image_feat = F.normalize(out.image_embeds, dim=-1)
        if want_text:
            out.text_embeds = self.get_text_features(input_ids, attention_mask)
            out.text_embeds_proj = out.text_feat = F.normalize(out.text_embeds, dim=-1)
        return out

    # ------------------------------------------------------------------ logits
    def logits(self, image_feat: torch.Tensor, text_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits_per_image (N, M), logits_per_text (M, N))`` = ``exp(logit_scale) *`` the cosine of normalised
        ``image_feat (N, E)`` and ``text_feat (M, E)``."""
        return clip_logits(image_feat, text_feat, self.logit_scale.exp())

    @torch.no_grad()
    def clamp_logit_scale_(self, max_value: float = math.log(100.0)) -> None:
        """Clamps ``logit_scale`` to ``[0, max_value]`` in place (OpenAI/open_clip clamp after every optimiser
        step so that ``exp(logit_scale) <= 100``)."""
        self.logit_scale.clamp_(0.0, max_value)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_loss: bool = False,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        return_dict: bool | None = None,
    ) -> ClipOutput | tuple[Any, ...]:
        """Image-text logits, and the CLIP loss with ``return_loss=True``.

        Args:
            pixel_values: ``(N, 3, H, W)`` images or ``(N, T, 3, H, W)`` videos (frame-mean features).
            input_ids: ``(M, L)`` token ids (``M`` may differ from ``N``: zero-shot scoring of one image against
                many prompts).
            attention_mask: ``(M, L)`` optional, right padding (see :meth:`encode_text`).
            return_loss: also return the symmetric contrastive loss of the ``N`` pairs ``(image i, text i)``
                (``ClipLoss`` with one process); needs ``M == N``.
            output_hidden_states, output_attentions: keep the towers' per-block states / probabilities in
                ``vision_model_output`` / ``text_model_output``.
            return_dict: ``False`` returns a tuple (fields that are ``None`` left out).

        Returns:
            :class:`ClipOutput` (``loss`` first when asked for).
        """
        if pixel_values is None or input_ids is None:
            missing = [n for n, x in (("pixel_values", pixel_values), ("input_ids", input_ids)) if x is None]
            raise ValueError(
                f"{type(self).__name__}.forward compares images with texts and needs both; missing "
                f"{' and '.join(missing)}. For one modality use get_image_features / get_text_features / "
                "extract_features"
            )
        check_pixel_values(pixel_values, self.config.vision_config)
        check_input_ids(input_ids, self.config.text_config, attention_mask)
        _check_right_padded(attention_mask)
        if return_loss:
            check_same_batch(pixel_values.shape[0], input_ids.shape[0], "the CLIP loss")
        vision = self._run_image_tower(pixel_values, output_hidden_states, output_attentions)
        text = self.text(input_ids, output_hidden_states, output_attentions)
        image_feat = F.normalize(vision.embeds, dim=-1)
        text_feat = F.normalize(text.embeds, dim=-1)
        logits_per_image, logits_per_text = self.logits(image_feat, text_feat)
        loss = clip_loss(logits_per_image, logits_per_text) if return_loss else None
        keep_towers = output_hidden_states or output_attentions
        out = ClipOutput(
            loss=loss,
            logits_per_image=logits_per_image,
            logits_per_text=logits_per_text,
            image_embeds=vision.embeds,
            text_embeds=text.embeds,
            image_feat=image_feat,
            text_feat=text_feat,
            vision_model_output=vision if keep_towers else None,
            text_model_output=text if keep_towers else None,
        )
        use_dict = self.config.return_dict if return_dict is None else return_dict
        return out if use_dict else out.to_tuple()


class ClipForZeroShotClassification(ClipModel):
    """CLIP zero-shot image classification (LAVIS ``clip`` for classification tasks; OpenAI's ImageNet protocol).

    Same weights and :meth:`forward` as :class:`ClipModel` (so transformers'
    ``pipeline("zero-shot-image-classification", model=..., image_processor=..., tokenizer=...)`` runs it), plus:

    * :meth:`text_classifier`: the ``(C, E)`` class embeddings of ``class names x prompt templates`` (mean of the
      normalised template embeddings, renormalised), cached per (class list, templates, tokenizer) while the model is
      in eval mode (the cache is dropped by ``train()``/``eval()`` and ``load_state_dict``);
    * :meth:`classify`: ``exp(logit_scale) * cos(image, class)`` logits ``(B, C)`` for images or videos.

    Defaults: the 1,000 ImageNet class names and OpenAI's 80 templates
    (:func:`~vl_hub.models.clip.zero_shot.imagenet_classnames`,
    :func:`~vl_hub.models.clip.zero_shot.openai_imagenet_templates`).
    """

    def __init__(self, config: ClipConfig) -> None:
        super().__init__(config)
        # (class names, templates, id(tokenizer)) -> (tokenizer, (C, E) classifier); the tokenizer reference keeps
        # its id from being reused while the entry lives.
        self._classifier_cache: dict[tuple[Any, ...], tuple[Any, torch.Tensor]] = {}

    def clear_classifier_cache(self) -> None:
        """Drops every cached text classifier (call it after changing the weights in place)."""
        cache = self.__dict__.get("_classifier_cache")
        if cache is not None:
            cache.clear()

    def train(self, mode: bool = True) -> ClipForZeroShotClassification:  # noqa: D102 - nn.Module.train
        self.clear_classifier_cache()
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # noqa: D102
        self.clear_classifier_cache()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _encode_prompts(self, tokenizer: Any) -> Any:
        tok = getattr(tokenizer, "tokenizer", tokenizer)  # a ClipProcessor or a tokenizer
        if not callable(tok):
            raise TypeError(f"tokenizer must be a CLIP tokenizer or a ClipProcessor, got {type(tokenizer).__name__}")
        context = self.config.text_config.context_length
        device = self.logit_scale.device

        def encode(texts: list[str]) -> torch.Tensor:
            batch = tok(texts, padding=True, truncation=True, max_length=context, return_tensors="pt")
            mask = batch.get("attention_mask")
            return self.get_text_features(batch["input_ids"].to(device), None if mask is None else mask.to(device))

        return encode

    @torch.no_grad()
    def text_classifier(
        self,
        class_names: list[str] | tuple[str, ...] | None = None,
        tokenizer: Any = None,
        templates: list[str] | tuple[str, ...] | None = None,
        batch_size: int = 256,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """The zero-shot classifier ``(C, E)``: per class, the mean of its ``T`` normalised prompt embeddings,
        renormalised.

        Args:
            class_names: ``C`` names (default: the 1,000 ImageNet classes). Empty -> ``ValueError``.
            tokenizer: the model's CLIP tokenizer, or a ``ClipProcessor`` (required).
            templates: ``T`` prompt templates with one ``{}`` each (default: OpenAI's 80). A template without
                ``{}`` -> ``ValueError``.
            batch_size: texts encoded per forward pass (whole classes per pass).
            use_cache: reuse / store the result for this (class list, templates, tokenizer) in eval mode.

        Returns:
            ``(C, E)`` float32 on the model's device.
        """
        names = check_class_names(imagenet_classnames() if class_names is None else class_names)
        temps = check_templates(openai_imagenet_templates() if templates is None else templates)
        if tokenizer is None:
            raise ValueError(
                "text_classifier needs the model's tokenizer (or its ClipProcessor) to encode the prompts; pass "
                "tokenizer=AutoTokenizer.from_pretrained(<checkpoint>)"
            )
        cacheable = use_cache and not self.training
        key = (names, temps, id(tokenizer))
        if cacheable and key in self._classifier_cache:
            return self._classifier_cache[key][1]
        classifier = ensemble_text_classifier(self._encode_prompts(tokenizer), names, temps, batch_size)
        if cacheable:
            self._classifier_cache[key] = (tokenizer, classifier)
        return classifier

    def classify(
        self,
        pixel_values: torch.Tensor,
        class_names: list[str] | tuple[str, ...] | None = None,
        tokenizer: Any = None,
        templates: list[str] | tuple[str, ...] | None = None,
        class_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> ZeroShotClassificationOutput:
        """Zero-shot classification of images (or videos, by their frame-mean feature).

        Args:
            pixel_values: ``(B, 3, H, W)`` or ``(B, T, 3, H, W)``.
            class_names, tokenizer, templates: build (or fetch from the cache) the classifier; see
                :meth:`text_classifier`.
            class_embeds: ``(C, E)`` a classifier computed beforehand (then no tokenizer is needed).
            labels: ``(B,)`` class indices: adds the cross-entropy ``loss``.

        Returns:
            :class:`ZeroShotClassificationOutput` with ``logits (B, C)``.
        """
        if class_embeds is None:
            class_embeds = self.text_classifier(class_names, tokenizer, templates)
        elif class_embeds.dim() != 2 or class_embeds.shape[1] != self.config.embed_dim:
            raise ValueError(
                f"class_embeds must be (num_classes, {self.config.embed_dim}), got {tuple(class_embeds.shape)}"
            )
        image_feat = self.get_image_features(pixel_values, normalize=True)
        class_embeds = class_embeds.to(device=image_feat.device, dtype=image_feat.dtype)
        logits = self.logit_scale.exp() * image_feat @ class_embeds.t()
        loss = None
        if labels is not None:
            if labels.shape != (logits.shape[0],):
                raise ValueError(f"labels must be ({logits.shape[0]},) class indices, got {tuple(labels.shape)}")
            loss = F.cross_entropy(logits, labels.to(logits.device))
        return ZeroShotClassificationOutput(loss=loss, logits=logits, image_feat=image_feat, class_embeds=class_embeds)
