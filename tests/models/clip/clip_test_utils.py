"""Tiny CLIP configs, a tiny byte-level BPE tokenizer built locally, and helpers shared by the CLIP tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import vl_hub.models.clip as clip_family
from vl_hub.models.clip.configuration_clip import ClipConfig
from vl_hub.models.clip.image_processing_clip import ClipImageProcessor
from vl_hub.models.clip.processing_clip import ClipProcessor, build_clip_tokenizer, clip_vocab_from_merges

clip_family.register()  # idempotent; `import vl_hub` does it once the family is listed in _registration

CONTEXT = 16
WORDS = ("a", "photo", "of", "the", "cat", "dog", "car", "bird", "picture", "small", "big", "red")


def word_merges(words: Sequence[str]) -> list[tuple[str, str]]:
    """BPE merges that build each word left to right (``p h``, ``ph o``, ..., ``phot o</w>``)."""
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in words:
        symbols = list(word)
        symbols[-1] += "</w>"
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
            symbols = [symbols[0] + symbols[1], *symbols[2:]]
    return merges


MERGES = word_merges(WORDS)
VOCAB = clip_vocab_from_merges(MERGES)
VOCAB_SIZE = len(VOCAB)


def tiny_tokenizer(context_length: int = CONTEXT):
    """A CLIP tokenizer over the 256 bytes (x2), the merges of :data:`WORDS` and the two special tokens."""
    return build_clip_tokenizer(VOCAB, MERGES, context_length=context_length)


def tiny_processor(image_size: int = 32, context_length: int = CONTEXT) -> ClipProcessor:
    return ClipProcessor(ClipImageProcessor(image_size=image_size), tiny_tokenizer(context_length), context_length)


def tiny_config(resnet: bool = False, **overrides) -> ClipConfig:
    """ViT: 32 px, patch 8, width 64, 2 layers, 4 heads; ResNet: 64 px, layers (1,1,1,1), width 8, 4 heads.
    Text: the tiny BPE vocabulary, context 16, width 32, 4 heads, 2 layers. ``embed_dim`` 32."""
    vision = (
        {"image_size": 64, "width": 8, "layers": [1, 1, 1, 1], "heads": 4}
        if resnet
        else {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "heads": 4}
    )
    text = {
        "vocab_size": VOCAB_SIZE,
        "context_length": CONTEXT,
        "width": 32,
        "heads": 4,
        "layers": 2,
        "bos_token_id": VOCAB_SIZE - 2,
        "eos_token_id": VOCAB_SIZE - 1,
        "pad_token_id": VOCAB_SIZE - 1,
    }
    vision.update(overrides.pop("vision_config", {}))
    text.update(overrides.pop("text_config", {}))
    return ClipConfig(vision_config=vision, text_config=text, embed_dim=overrides.pop("embed_dim", 32), **overrides)


def random_ids(batch: int, length: int = 10, seed: int = 0) -> torch.Tensor:
    """``(batch, length)`` ids ``[sot, words..., eot, pad...]`` with different text lengths per row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB_SIZE - 2, (batch, length), generator=g)
    ids[:, 0] = VOCAB_SIZE - 2
    for row in range(batch):
        end = 3 + (row * 2) % (length - 3)
        ids[row, end] = VOCAB_SIZE - 1
        ids[row, end + 1 :] = VOCAB_SIZE - 1  # padded with <|endoftext|>, as the tokenizer does
    return ids


def random_pixels(batch: int, size: int = 32, seed: int = 0, frames: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 3, size, size) if frames is None else (batch, frames, 3, size, size)
    return torch.randn(shape, generator=g)


def random_image(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def write_bpe_files(folder: Path) -> Path:
    """Writes ``vocab.json`` + ``merges.txt`` of the tiny tokenizer into ``folder``."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(VOCAB), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in MERGES) + "\n", encoding="utf-8"
    )
    return folder
