"""Family-neutral calls on a loaded head: image/text features, ITM probabilities, the similarity scale.

BLIP and ALBEF heads share method names (``get_image_features``, ``get_text_features``, ``encode_images``,
``itm_match_logits``); CLIP's text tower needs its own processor call and normalisation. Everything here runs without
gradients and in batches (no loop over images except over fixed-size chunks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from vl_hub.demo.models import LoadedHead

__all__ = [
    "device_of",
    "encode_image_tokens",
    "image_features",
    "is_clip",
    "itm_probabilities",
    "similarity_scale",
    "text_features",
    "tokenize_texts",
]


def device_of(model: Any) -> torch.device:
    """The device of ``model``'s first parameter."""
    return next(model.parameters()).device


def is_clip(head: LoadedHead) -> bool:
    """Whether ``head`` is a CLIP model (contrastive towers only, no ITM)."""
    return head.family == "clip" or head.head.startswith("Clip")


def tokenize_texts(head: LoadedHead, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """``input_ids``/``attention_mask`` ``(M, L)`` of ``texts`` as the head's retrieval path reads them (BLIP/ALBEF:
    the caption normaliser without prompt; CLIP: its BPE tokenizer)."""
    if is_clip(head):
        batch = head.processor(text=list(texts))
    else:
        batch = head.processor(text=list(texts), text_mode="caption", prompt="")
    device = device_of(head.model)
    return {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}


def _pixels(head: LoadedHead, images: Sequence[Image.Image]) -> torch.Tensor:
    return head.processor(images=list(images))["pixel_values"].to(device_of(head.model))


@torch.no_grad()
def image_features(head: LoadedHead, images: Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
    """``(N, E)`` L2-normalised image features (the ITC / CLIP embedding), float32 on the CPU."""
    out = []
    for start in range(0, len(images), batch_size):
        pixels = _pixels(head, images[start : start + batch_size])
        if is_clip(head):
            feats = head.model.get_image_features(pixels, normalize=True)
        else:
            feats = head.model.get_image_features(pixels)
        out.append(feats.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def text_features(head: LoadedHead, texts: Sequence[str]) -> torch.Tensor:
    """``(M, E)`` L2-normalised text features, float32 on the CPU."""
    batch = tokenize_texts(head, texts)
    if is_clip(head):
        feats = head.model.get_text_features(batch["input_ids"], batch["attention_mask"], normalize=True)
    else:
        feats = head.model.get_text_features(batch["input_ids"], batch["attention_mask"])
    return feats.float().cpu()


def similarity_scale(head: LoadedHead) -> float:
    """What cosine similarities are multiplied by before a softmax: ``exp(logit_scale)`` (CLIP) or ``1 / temp``
    (BLIP/ALBEF ITC)."""
    model = head.model
    if hasattr(model, "logit_scale"):
        return float(model.logit_scale.detach().exp())
    if hasattr(model, "temp"):
        return 1.0 / float(model.temp.detach().clamp(min=1e-3))
    return 1.0


@torch.no_grad()
def encode_image_tokens(head: LoadedHead, images: Sequence[Image.Image]) -> torch.Tensor:
    """``(N, 1+P, D)`` vision tokens of ``images`` (what the ITM fusion cross-attends)."""
    image_embeds, _ = head.model.encode_images(_pixels(head, images))
    return image_embeds


@torch.no_grad()
def itm_probabilities(
    head: LoadedHead, image_embeds: torch.Tensor, texts: Sequence[str], pairs_per_call: int = 64
) -> torch.Tensor:
    """P(match) of the ITM head for pairs ``(image_embeds[i], texts[i])``; one text is broadcast to every image.

    Args:
        image_embeds: ``(N, Lv, D)`` from :func:`encode_image_tokens`.
        texts: ``N`` texts, or one.

    Returns:
        ``(N,)`` float32 on the CPU.
    """
    count = image_embeds.shape[0]
    batch = tokenize_texts(head, texts)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    if ids.shape[0] == 1 and count > 1:
        ids, mask = ids.expand(count, -1), mask.expand(count, -1)
    if ids.shape[0] != count:
        raise ValueError(f"{len(texts)} texts for {count} images; pass one text or one per image")
    probs = []
    for start in range(0, count, pairs_per_call):
        stop = start + pairs_per_call
        states = head.model.encode_multimodal(image_embeds[start:stop], ids[start:stop], mask[start:stop])
        probs.append(head.model.itm_head(states[:, 0]).float().softmax(dim=-1)[:, 1].cpu())
    return torch.cat(probs)
