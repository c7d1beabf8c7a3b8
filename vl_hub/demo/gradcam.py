"""Grad-CAM of image-text matching (LAVIS ``compute_gradcam``): where in the image the ITM head looks for each word.

For one image and one text, the ITM "match" logit is differentiated with respect to the cross-attention
probabilities of one layer of the fusion encoder. The map of text token ``t`` over image patch ``p`` is

    cam[t, p] = mean over heads of  attention[h, t, p] * max(0, d logit / d attention[h, t, p])

(the CLS column of the image tokens dropped), reshaped onto the patch grid. LAVIS shows the average over the text
tokens and one map per token; here word pieces are also merged into words (the mean of their maps).

Works for any head with an ITM head on a MED text transformer: BLIP (``[ENC]`` replaces ``[CLS]``, cross-attention in
every layer) and ALBEF (``[CLS]`` kept, cross-attention in the fusion layers only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vl_hub.demo.heads import device_of
from vl_hub.demo.inputs import DemoInputError
from vl_hub.demo.models import LoadedHead

__all__ = ["GradCamResult", "compute_gradcam", "cross_attention_layers", "default_layer", "jet", "overlay_heatmap"]


@dataclass
class GradCamResult:
    """Grad-CAM maps of one (image, text) pair.

    Attributes:
        itm_probability: softmax P(match) of the ITM head.
        layer: the fusion-encoder layer whose cross-attention was used.
        tokens: the text's word pieces (special tokens excluded), ``T`` of them.
        token_maps: ``(T, h, w)`` one map per word piece over the ``h x w`` patch grid.
        average_map: ``(h, w)`` the mean of the token maps (LAVIS's first map).
        words: the words of the (normalised) text, ``W`` of them.
        word_maps: ``(W, h, w)`` the mean of each word's piece maps.
    """

    itm_probability: float
    layer: int
    tokens: list[str]
    token_maps: torch.Tensor
    average_map: torch.Tensor
    words: list[str]
    word_maps: torch.Tensor


def _text_transformer(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "text_transformer", None) or model.text_encoder


def _all_cross_attention_layers(head: LoadedHead) -> tuple[list[int], int]:
    transformer = _text_transformer(head.model)
    layers = transformer.encoder.layer
    return [i for i, layer in enumerate(layers) if getattr(layer, "crossattention", None) is not None], len(layers)


def cross_attention_layers(head: LoadedHead) -> list[int]:
    """Indices of the text-transformer layers whose cross-attention Grad-CAM can use: those that cross-attend the
    image (all for BLIP, the fusion layers for ALBEF) except the very last layer, whose word rows cannot change the
    ITM score (it reads the first position only, so their gradient is zero)."""
    layers, total = _all_cross_attention_layers(head)
    return [i for i in layers if i != total - 1]


def default_layer(head: LoadedHead) -> int:
    """The middle cross-attention layer (layer 6 of BLIP-base's 12, LAVIS's demo default).

    Raises:
        DemoInputError: the head has no usable cross-attention layer.
    """
    usable = cross_attention_layers(head)
    if not usable:
        raise DemoInputError(f"{head.head} has no cross-attention layer before its last one; Grad-CAM needs one")
    layers, _ = _all_cross_attention_layers(head)
    return min(layers[len(layers) // 2], usable[-1])


def _is_albef(head: LoadedHead) -> bool:
    return head.family == "albef" or hasattr(head.model, "text_transformer")


def compute_gradcam(head: LoadedHead, image: Image.Image, text: str, layer: int | None = None) -> GradCamResult:
    """Grad-CAM maps of ``text`` over ``image`` for the ITM head of ``head``.

    Args:
        head: a head with ``encode_images``, ``itm_head`` and a MED text transformer (BLIP / ALBEF retrieval heads).
        image: RGB image.
        text: the text (normalised like a caption; truncated to the processor's ``max_txt_len``).
        layer: cross-attention layer (default :func:`default_layer`).

    Raises:
        DemoInputError: ``layer`` has no cross-attention, or the text has no word after normalisation.
    """
    model, processor = head.model, head.processor
    layers = cross_attention_layers(head)
    layer = default_layer(head) if layer is None else int(layer)
    if layer not in layers:
        raise DemoInputError(f"Layer {layer} has no cross-attention; choose one of {layers}.")
    normalised = processor.normalize_text(text, "caption", prompt="")[0]
    encoding = processor.tokenizer(normalised, truncation=True, max_length=processor.max_txt_len)
    ids = torch.tensor([encoding["input_ids"]], device=device_of(model))
    mask = torch.ones_like(ids)
    num_tokens = ids.shape[1] - 2  # [CLS]/[ENC] first, [SEP] last
    if num_tokens < 1:
        raise DemoInputError(f"The text {text!r} has no words left after normalisation; type a sentence.")
    if not _is_albef(head):
        ids = ids.clone()
        ids[:, 0] = int(model.config.text_config.enc_token_id)

    pixels = processor(images=[image])["pixel_values"].to(device_of(model))
    with torch.no_grad():
        image_embeds, _ = model.encode_images(pixels)
    # a leaf that needs a gradient: the attention probabilities are then in the graph even with frozen weights
    image_embeds = image_embeds.detach().requires_grad_(True)
    with torch.enable_grad():
        out = _text_transformer(model)(
            input_ids=ids,
            attention_mask=mask,
            encoder_hidden_states=image_embeds,
            mode="multimodal",
            output_attentions=True,
        )
        probs = out.cross_attentions[layer]  # (1, heads, L, 1+P)
        logits = model.itm_head(out.last_hidden_state[:, 0])  # (1, 2)
        (grads,) = torch.autograd.grad(logits[:, 1].sum(), probs)
    with torch.no_grad():
        patches = probs.shape[-1] - 1
        side = round(patches**0.5)
        if side * side != patches:
            raise DemoInputError(f"the image tokens ({patches} patches) do not form a square grid; Grad-CAM needs one")
        cams = (probs[..., 1:] * grads[..., 1:].clamp(min=0)).mean(dim=1)[0]  # (L, P)
        token_maps = cams[1 : 1 + num_tokens].reshape(num_tokens, side, side).float().cpu()
        average = token_maps.mean(dim=0)
        itm_probability = float(logits.float().softmax(dim=-1)[0, 1])

    pieces = processor.tokenizer.convert_ids_to_tokens(encoding["input_ids"][1 : 1 + num_tokens])
    word_ids = encoding.word_ids()[1 : 1 + num_tokens]
    words, word_maps = _merge_pieces(normalised, encoding, word_ids, token_maps)
    return GradCamResult(
        itm_probability=itm_probability,
        layer=layer,
        tokens=list(pieces),
        token_maps=token_maps,
        average_map=average,
        words=words,
        word_maps=word_maps,
    )


def _merge_pieces(
    text: str, encoding: object, word_ids: list[int | None], token_maps: torch.Tensor
) -> tuple[list[str], torch.Tensor]:
    order = list(dict.fromkeys(w for w in word_ids if w is not None))
    words, maps = [], []
    ids = torch.tensor([-1 if w is None else w for w in word_ids])
    for word in order:
        span = encoding.word_to_chars(word)  # type: ignore[attr-defined]
        words.append(text[span.start : span.end])
        maps.append(token_maps[ids == word].mean(dim=0))
    return words, torch.stack(maps) if maps else token_maps[:0]


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colour map: ``values`` in [0, 1] ``(...)`` -> RGB in [0, 1] ``(..., 3)`` (blue low, red high)."""
    x = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25])  # red, green, blue peak at 3/4, 1/2, 1/4
    return np.clip(1.5 - np.abs(4.0 * (x - centres)), 0.0, 1.0)


def overlay_heatmap(image: Image.Image, cam: torch.Tensor, min_side: int = 256, max_side: int = 640) -> Image.Image:
    """``cam (h, w)`` min-max normalised, upsampled onto ``image`` and blended with the jet map (weight
    ``cam ** 0.7``, as LAVIS's ``getAttMap``). Small images are enlarged (nearest) to ``min_side`` so the map can be
    seen; large ones shrunk to ``max_side``."""
    width, height = image.size
    scale = min(max(1.0, min_side / min(width, height)), max_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BICUBIC
    base = np.asarray(image.convert("RGB").resize(size, resample), dtype=np.float32) / 255.0
    cam = cam.float()
    cam = cam - cam.min()
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else cam
    up = F.interpolate(cam[None, None], size=(size[1], size[0]), mode="bilinear", align_corners=False)[0, 0]
    weight = up.clamp(0.0, 1.0).numpy() ** 0.7
    blended = (1.0 - weight[..., None]) * base + weight[..., None] * jet(weight)
    return Image.fromarray((blended * 255.0).round().astype(np.uint8))
