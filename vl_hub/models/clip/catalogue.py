"""The CLIP model catalogue: LAVIS's names ``clip`` / ``clip_feature_extractor`` x model types ``ViT-B-32``,
``ViT-B-16``, ``ViT-L-14``, ``ViT-L-14-336``, ``RN50`` (``lavis/configs/models/clip_*.yaml``, all ``pretrained:
openai``), with their architecture, the original OpenAI weights and the suggested hub repository.

``clip`` is the zero-shot classifier head (:class:`~vl_hub.models.clip.modeling_clip.ClipForZeroShotClassification`),
``clip_feature_extractor`` the plain :class:`~vl_hub.models.clip.modeling_clip.ClipModel`; both hold the same weights.
The coordinator merges :data:`CLIP_CATALOGUE` into ``vl_hub/zoo.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vl_hub.models.clip.configuration_clip import ClipConfig

__all__ = ["CLIP_ARCHITECTURES", "CLIP_CATALOGUE", "ClipCatalogueEntry", "lookup"]

_OPENAI = "https://openaipublic.azureedge.net/clip/models"
_OPENAI_BPE = "https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz"

_TEXT_BASE = {"vocab_size": 49408, "context_length": 77, "width": 512, "heads": 8, "layers": 12}
_TEXT_LARGE = {"vocab_size": 49408, "context_length": 77, "width": 768, "heads": 12, "layers": 12}

#: model type -> (ClipConfig kwargs, OpenAI checkpoint URL, reported zero-shot ImageNet top-1 %, hub-name suffix)
CLIP_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "ViT-B-32": {
        "config": {
            "embed_dim": 512,
            "vision_config": {"image_size": 224, "patch_size": 32, "width": 768, "layers": 12, "heads": 12},
            "text_config": _TEXT_BASE,
        },
        "url": f"{_OPENAI}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        "imagenet_zero_shot_top1": 63.2,
        "slug": "vit-base-patch32",
    },
    "ViT-B-16": {
        "config": {
            "embed_dim": 512,
            "vision_config": {"image_size": 224, "patch_size": 16, "width": 768, "layers": 12, "heads": 12},
            "text_config": _TEXT_BASE,
        },
        "url": f"{_OPENAI}/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
        "imagenet_zero_shot_top1": 68.6,
        "slug": "vit-base-patch16",
    },
    "ViT-L-14": {
        "config": {
            "embed_dim": 768,
            "vision_config": {"image_size": 224, "patch_size": 14, "width": 1024, "layers": 24, "heads": 16},
            "text_config": _TEXT_LARGE,
        },
        "url": f"{_OPENAI}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        "imagenet_zero_shot_top1": 75.3,
        "slug": "vit-large-patch14",
    },
    "ViT-L-14-336": {
        "config": {
            "embed_dim": 768,
            "vision_config": {"image_size": 336, "patch_size": 14, "width": 1024, "layers": 24, "heads": 16},
            "text_config": _TEXT_LARGE,
        },
        "url": f"{_OPENAI}/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
        "imagenet_zero_shot_top1": 76.2,
        "slug": "vit-large-patch14-336",
    },
    "RN50": {
        "config": {
            "embed_dim": 1024,
            "vision_config": {"image_size": 224, "width": 64, "layers": [3, 4, 6, 3], "heads": 32},
            "text_config": _TEXT_BASE,
        },
        "url": f"{_OPENAI}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
        "imagenet_zero_shot_top1": 59.6,
        "slug": "resnet50",
    },
}

_HEADS = {"clip": "ClipForZeroShotClassification", "clip_feature_extractor": "ClipModel"}


@dataclass(frozen=True)
class ClipCatalogueEntry:
    """One catalogue entry.

    Attributes:
        name: LAVIS model name (``clip`` or ``clip_feature_extractor``).
        model_type: ``ViT-B-32``, ``ViT-B-16``, ``ViT-L-14``, ``ViT-L-14-336`` or ``RN50``.
        head: the vl_hub head class name.
        config_kwargs: :class:`ClipConfig` keyword arguments (the architecture).
        source_url: the original OpenAI checkpoint (a TorchScript archive; the URL's folder is its SHA-256).
        tokenizer_url: OpenAI's BPE merges file (the tokenizer of every entry).
        repo_id: suggested hub repository of the converted checkpoint.
        image_size: processor resolution.
        imagenet_zero_shot_top1: the original's reported zero-shot ImageNet top-1 (%, CLIP paper, 80 prompts).
        convert_command: how to build the checkpoint.
    """

    name: str
    model_type: str
    head: str
    config_kwargs: dict[str, Any] = field(hash=False)
    source_url: str
    tokenizer_url: str
    repo_id: str
    image_size: int
    imagenet_zero_shot_top1: float
    convert_command: str

    def config(self) -> ClipConfig:
        """A fresh :class:`ClipConfig` of this architecture."""
        return ClipConfig(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in self.config_kwargs.items()})

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (for ``vl_hub/zoo.py``)."""
        return {
            "family": "clip",
            "name": self.name,
            "model_type": self.model_type,
            "head": self.head,
            "config": self.config_kwargs,
            "source_url": self.source_url,
            "tokenizer_url": self.tokenizer_url,
            "repo_id": self.repo_id,
            "image_size": self.image_size,
            "imagenet_zero_shot_top1": self.imagenet_zero_shot_top1,
            "convert_command": self.convert_command,
        }


def _entry(name: str, model_type: str) -> ClipCatalogueEntry:
    arch = CLIP_ARCHITECTURES[model_type]
    suffix = "" if name == "clip" else "-feature-extractor"
    return ClipCatalogueEntry(
        name=name,
        model_type=model_type,
        head=_HEADS[name],
        config_kwargs=arch["config"],
        source_url=arch["url"],
        tokenizer_url=_OPENAI_BPE,
        repo_id=f"vl-hub/clip-{arch['slug']}{suffix}",
        image_size=arch["config"]["vision_config"]["image_size"],
        imagenet_zero_shot_top1=arch["imagenet_zero_shot_top1"],
        convert_command=(
            f"vl-hub convert --from openai --model-type {name}:{model_type} --tokenizer bpe_simple_vocab_16e6.txt.gz "
            f"{arch['url'].rsplit('/', 1)[1]} clip-{arch['slug']}{suffix}"
        ),
    )


#: ``(name, model_type) -> entry`` for ``clip`` / ``clip_feature_extractor`` x the five OpenAI models.
CLIP_CATALOGUE: dict[tuple[str, str], ClipCatalogueEntry] = {
    (name, model_type): _entry(name, model_type) for name in _HEADS for model_type in CLIP_ARCHITECTURES
}


def lookup(model_type: str) -> ClipCatalogueEntry:
    """The entry for ``"name:model_type"`` (``"clip:ViT-B-32"``) or a bare model type (``"ViT-B-32"`` -> ``clip``).

    Raises ``KeyError`` listing the valid names.
    """
    name, _, kind = model_type.rpartition(":")
    key = (name or "clip", kind)
    if key not in CLIP_CATALOGUE:
        valid = ", ".join(f"{n}:{t}" for n, t in CLIP_CATALOGUE)
        raise KeyError(f"unknown CLIP model type {model_type!r}; valid: {valid}")
    return CLIP_CATALOGUE[key]
