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

__all__ = ["CLIP_ARCHITECTURES", "CLIP_CATALOGUE", "ClipCatalogueEntry", "card_document", "lookup"]

_OPENAI = "https://openaipublic.azureedge.net/clip/models"
_OPENAI_BPE = "https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz"

_TEXT_BASE = {"vocab_size": 49408, "context_length": 77, "width": 512, "heads": 8, "layers": 12}
_TEXT_LARGE = {"vocab_size": 49408, "context_length": 77, "width": 768, "heads": 12, "layers": 12}

#: model type -> OpenAI's name for it, ClipConfig kwargs, OpenAI checkpoint URL, reported zero-shot ImageNet top-1 %,
#: hub-name suffix
CLIP_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "ViT-B-32": {
        "openai_name": "ViT-B/32",
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
        "openai_name": "ViT-B/16",
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
        "openai_name": "ViT-L/14",
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
        "openai_name": "ViT-L/14@336px",
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
        "openai_name": "RN50",
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
            # one card per OpenAI model documents both names (``card_document``)
            "model_card": f"model_cards/clip_{self.model_type}.md",
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


# ---------------------------------------------------------------------------------------------- model card text
# One card per OpenAI model (``model_cards/clip_<model_type>.md``) documents both LAVIS names, ``clip`` and
# ``clip_feature_extractor``: they are the same weights under two heads. ``vl_hub.zoo.render_model_card`` lays the
# document out (YAML header, title, sections); the text is CLIP's, so it lives here.

_CLIP_PAPER = (
    'Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision", Table 17 '
    "(80 prompt templates)"
)


def _parameters_m(entry: ClipCatalogueEntry) -> str:
    """The head's parameter count in millions, counted on the meta device (no memory, no init)."""
    import torch

    from vl_hub.models.clip.modeling_clip import ClipModel

    with torch.device("meta"):
        model = ClipModel(entry.config())
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M"


def _image_tower(vision: dict[str, Any]) -> str:
    if isinstance(vision["layers"], (list, tuple)):
        blocks = ", ".join(str(n) for n in vision["layers"])
        return (
            f"ModifiedResNet ({blocks}) bottleneck blocks, stem width {vision['width']} (final map "
            f"{vision['width'] * 32} channels), 3-convolution stem, anti-aliased strides, attention pooling with "
            f"{vision['heads']} heads"
        )
    return (
        f"ViT, patch {vision['patch_size']}, width {vision['width']}, {vision['layers']} layers, {vision['heads']} "
        "heads, MLP 4x, QuickGELU, pre-LayerNorm (eps 1e-5)"
    )


def card_document(entry: Any) -> dict[str, Any]:
    """The card of ``entry`` (a ``vl_hub.zoo.ZooEntry``) as ``vl_hub.zoo`` lays it out: ``pipeline_tag``, the rest of
    the YAML ``header``, ``title``, ``intro`` and ``sections`` (heading, Markdown). Both names of a model type get the
    same card, ``model_cards/clip_<model_type>.md``."""
    model_type = entry.model_type
    arch = CLIP_ARCHITECTURES[model_type]
    zero_shot, features = CLIP_CATALOGUE[("clip", model_type)], CLIP_CATALOGUE[("clip_feature_extractor", model_type)]
    config = arch["config"]
    vision, text, dim = config["vision_config"], config["text_config"], config["embed_dim"]
    size, name, top1 = vision["image_size"], arch["openai_name"], arch["imagenet_zero_shot_top1"]
    archive = zero_shot.source_url.rsplit("/", 1)[1]
    bpe = zero_shot.tokenizer_url.rsplit("/", 1)[1]
    out = zero_shot.convert_command.rsplit(" ", 1)[1]
    header = {
        "tags": ["clip", "vision-language", "zero-shot-image-classification", "image-text-retrieval",
                 "feature-extraction", "vl_hub"],
        "model_type": "vlhub_clip",
        "vl_hub": {
            "family": "clip",
            "model_type": model_type,
            "names": list(_HEADS),
            "heads": list(_HEADS.values()),
            "repo_id": zero_shot.repo_id,
            "feature_extractor_repo_id": features.repo_id,
        },
        "source": {
            "original": f"OpenAI CLIP {name}",
            "url": zero_shot.source_url,
            "sha256": zero_shot.source_url.rsplit("/", 2)[1],
            "tokenizer": zero_shot.tokenizer_url,
            "lavis": f"clip / clip_feature_extractor, model_type {model_type}, pretrained openai",
        },
        "reported_results": {"imagenet_zero_shot_top1": top1, "source": _CLIP_PAPER, "measured_by_vl_hub": False},
    }
    intro = (
        f"OpenAI's CLIP {name} converted to vl_hub: an image encoder and a text encoder trained contrastively on 400M\n"
        f"image-text pairs, projected into one {dim}-d space and compared by `exp(logit_scale) * cosine`. The same\n"
        f"weights serve LAVIS's `clip` (zero-shot classification, head `{zero_shot.head}`) and\n"
        f"`clip_feature_extractor` (head `{features.head}`)."
    )
    architecture = (
        "| part | setting |\n"
        "|---|---|\n"
        f"| image tower | {_image_tower(vision)} |\n"
        f"| image size | {size} x {size} (shorter side resized bicubic, center crop, OpenAI mean/std) |\n"
        f"| text tower | causal transformer, width {text['width']}, {text['layers']} layers, {text['heads']} heads, "
        "QuickGELU, pooled at `<\\|endoftext\\|>` |\n"
        f"| tokenizer | byte-level BPE, {text['vocab_size']:,} tokens, context {text['context_length']} "
        "(`<\\|startoftext\\|>` ... `<\\|endoftext\\|>`, truncated with the end token kept last) |\n"
        f"| embedding | {dim}-d, `logit_scale` learned (`exp` = 100 in the released weights) |\n"
        f"| parameters | {_parameters_m(zero_shot)} |\n"
        "\n"
        "Parameter names follow OpenAI's (`visual.*`, text under `text.*`), so the conversion is a rename, checked\n"
        "strictly (every tensor placed, every shape matching the catalogue architecture)."
    )
    source = (
        f"The original weights are OpenAI's TorchScript archive `{archive}` ({zero_shot.source_url}; the folder name "
        "is its\n"
        f"SHA-256) and the BPE merges `{bpe}` ({zero_shot.tokenizer_url}). LAVIS loads the same file\n"
        "(`pretrained: openai`). Download both, then:\n"
        "\n"
        "```bash\n"
        f"{zero_shot.convert_command}\n"
        "```\n"
        "\n"
        "or in Python:\n"
        "\n"
        "```python\n"
        "from vl_hub.models.clip.convert_clip_checkpoint import convert\n"
        f'convert("openai", "{archive}", "{out}", model_type="clip:{model_type}",\n'
        f'        tokenizer="{bpe}")\n'
        "```\n"
        "\n"
        "The converter reads the archive with `torch.jit.load` (no Python unpickling), casts to float32, and writes\n"
        f'`config.json` (`architectures: ["{zero_shot.head}"]`), `model.safetensors` and the processor files.\n'
        "The conversion code is tested against golden outputs of LAVIS's CLIP (tiny ViT and ResNet models, atol 1e-4) "
        "and\n"
        "against transformers' `CLIPModel`."
    )
    results = (
        "| benchmark | metric | reported by the original |\n"
        "|---|---|---|\n"
        f"| ImageNet-1k val, zero-shot, 80 prompts | top-1 | {top1} % |\n"
        "\n"
        "This is the number published with the original model (CLIP paper, Table 17), not a measurement of this\n"
        "conversion. vl_hub ships the 1,000 ImageNet class names and the 80 templates used for it\n"
        "(`vl_hub/models/clip/imagenet_classnames.txt`, `openai_imagenet_templates.txt`)."
    )
    usage = (
        "```python\n"
        "import torch, vl_hub\n"
        "from transformers import AutoModelForZeroShotImageClassification, AutoProcessor\n"
        "\n"
        f'model = AutoModelForZeroShotImageClassification.from_pretrained("{zero_shot.repo_id}").eval()\n'
        f'processor = AutoProcessor.from_pretrained("{zero_shot.repo_id}")\n'
        'pixels = processor(images="cat.jpg")["pixel_values"]\n'
        "with torch.no_grad():\n"
        '    out = model.classify(pixels, ["cat", "dog", "car"], processor)   # 80-template ensemble by default\n'
        "print(out.logits.softmax(-1))\n"
        "```\n"
        "\n"
        '`transformers.pipeline("zero-shot-image-classification", model=model, image_processor=processor.image_processor,\n'
        "tokenizer=processor.tokenizer)` works as well. `ClipModel.extract_features` gives projected and normalised "
        "image and\n"
        "text features (retrieval); videos `(B, T, 3, H, W)` are embedded as the mean of their frame features."
    )
    intended_use = (
        "Research on zero-shot image classification, image-text and zero-shot video-text retrieval, and as a feature\n"
        "extractor — the uses OpenAI's model card names. Check accuracy on your own classes and images before relying "
        "on it."
    )
    context = text["context_length"]
    limitations = (
        "- OpenAI's model card warns against deployed use (including surveillance and face recognition) without\n"
        "  task-specific testing; performance varies with class wording and prompt choice, and the model shows social\n"
        "  biases (documented in the CLIP paper, section 7).\n"
        f"- English only; text longer than {context - 2} BPE tokens ({context} with the start and end tokens) is "
        "truncated.\n"
        "- vl_hub's tokenizer normalises text with Unicode NFC, whitespace collapsing and lower-casing; OpenAI also "
        "runs\n"
        "  `ftfy`, so mojibake input can tokenize differently.\n"
        "- The reported result above is the original's; this conversion has not been re-evaluated on ImageNet by "
        "vl_hub."
    )
    return {
        "pipeline_tag": "zero-shot-image-classification",
        "header": header,
        "title": f"CLIP {name} (vl_hub)",
        "intro": intro,
        "sections": [
            ("Architecture", architecture),
            ("Source and conversion", source),
            ("Results", results),
            ("How to use", usage),
            ("Intended use", intended_use),
            ("Limitations", limitations),
        ],
    }
