"""The ALBEF model catalogue: LAVIS's model names x model types (``lavis/configs/models/albef_*.yaml``) with their
architecture, the original checkpoint URLs, the vl_hub head, the processor settings and the suggested hub repository.

| name | model type | head | original checkpoint |
| --- | --- | --- | --- |
| ``albef_feature_extractor`` | ``base`` | ``AlbefModel`` | ``ALBEF.pth`` (14M pre-training) |
| ``albef_retrieval`` | ``coco``, ``flickr`` | ``AlbefForImageTextRetrieval`` | ``albef_{coco,flickr}_retrieval_lavis.pt`` |
| ``albef_vqa`` | ``vqav2`` | ``AlbefForQuestionAnswering`` | ``albef_vqav2_lavis.pt`` |
| ``albef_nlvr`` | ``nlvr`` | ``AlbefForNLVR`` | ``albef_nlvr_lavis.pt`` |
| ``albef_classification`` | ``ve`` | ``AlbefForVisualEntailment`` | ``albef_snli_ve_lavis.pt`` |
| ``albef_pretrain`` | ``base`` | ``AlbefForPreTraining`` | ``ALBEF.pth`` |

Every entry is ALBEF-base: ViT-B/16 and a 12-layer BERT-base with ``fusion_layer=6`` (NLVR: 18 layers, 6 text + 12
fusion; VQA: a 6-layer answer decoder), ``embed_dim`` 256. The coordinator merges :data:`ALBEF_CATALOGUE` into
``vl_hub/zoo.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from vl_hub.models.albef.configuration_albef import AlbefConfig

__all__ = ["ALBEF_CATALOGUE", "AlbefCatalogueEntry", "lookup"]

_LAVIS = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/ALBEF"
_ALBEF = "https://storage.googleapis.com/sfr-pcl-data-research/ALBEF"
_BERT_VOCAB = "https://huggingface.co/bert-base-uncased/resolve/main/vocab.txt"

# ViT-B/16 (LAVIS vit_type "base") and BERT-base with fusion_layer 6 (med_config_albef.json)
_VISION = {"patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12}
_TEXT = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "fusion_layer": 6, "num_attention_heads": 12,
    "intermediate_size": 3072, "max_position_embeddings": 512,
}
_SNLI_VE_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}
_LAVIS_BENCHMARK = "LAVIS model zoo benchmark (docs/benchmark.rst, ALBEF section)"
_ALBEF_PAPER = "ALBEF paper (Li et al., NeurIPS 2021), 14M pre-training images"
_PRETRAINING_DATA = ["coco_caption", "vg_caption", "conceptual_captions_3m", "sbu_caption", "conceptual_captions_12m"]


def _config(image_size: int, text: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "vision_config": {**_VISION, "image_size": image_size},
        "text_config": {**_TEXT, **(text or {})},
        **fields,
    }


# (name, model_type) -> head, LAVIS config, original checkpoint, architecture, processor size, reported results
_ENTRIES: dict[tuple[str, str], dict[str, Any]] = {
    ("albef_feature_extractor", "base"): {
        "head": "AlbefModel",
        "lavis_config": "lavis/configs/models/albef_feature_extractor.yaml",
        "url": f"{_ALBEF}/ALBEF.pth",
        "config": _config(224, embed_dim=256, max_txt_len=30),
        "image_size": 224,
        "datasets": _PRETRAINING_DATA,
        "pipeline_tag": "feature-extraction",
        "results": {},
        "no_results_reason": "The pre-trained model is evaluated through the fine-tuned checkpoints (see them).",
    },
    ("albef_retrieval", "coco"): {
        "head": "AlbefForImageTextRetrieval",
        "lavis_config": "lavis/configs/models/albef_retrieval_coco.yaml",
        "url": f"{_LAVIS}/albef_coco_retrieval_lavis.pt",
        "config": _config(384, embed_dim=256, queue_size=65536, temp=0.07, alpha=0.4, k_test=128, max_txt_len=30),
        "image_size": 384,
        "pretrained_url": f"{_ALBEF}/ALBEF.pth",
        "datasets": ["coco_retrieval"],
        "pipeline_tag": "zero-shot-image-classification",
        "results": {"source": _LAVIS_BENCHMARK, "rows": [
            {"dataset": "COCO 5k test (text retrieval)", "R@1": 77.6, "R@5": 94.1, "R@10": 97.2},
            {"dataset": "COCO 5k test (image retrieval)", "R@1": 61.0, "R@5": 84.5, "R@10": 90.7},
        ]},
    },
    ("albef_retrieval", "flickr"): {
        "head": "AlbefForImageTextRetrieval",
        "lavis_config": "lavis/configs/models/albef_retrieval_flickr.yaml",
        "url": f"{_LAVIS}/albef_flickr_retrieval_lavis.pt",
        "config": _config(384, embed_dim=256, queue_size=65536, temp=0.07, alpha=0.4, k_test=128, max_txt_len=30),
        "image_size": 384,
        "pretrained_url": f"{_ALBEF}/ALBEF.pth",
        "datasets": ["flickr30k"],
        "pipeline_tag": "zero-shot-image-classification",
        # LAVIS's benchmark table repeats the COCO numbers in its Flickr30K rows; the paper's are given instead
        "results": {"source": f"{_ALBEF_PAPER}, Table 3 (fine-tuned Flickr30K)", "rows": [
            {"dataset": "Flickr30K 1k test (text retrieval)", "R@1": 95.9, "R@5": 99.8, "R@10": 100.0},
            {"dataset": "Flickr30K 1k test (image retrieval)", "R@1": 85.6, "R@5": 97.5, "R@10": 98.9},
        ]},
    },
    ("albef_vqa", "vqav2"): {
        "head": "AlbefForQuestionAnswering",
        "lavis_config": "lavis/configs/models/albef_vqav2.yaml",
        "url": f"{_LAVIS}/albef_vqav2_lavis.pt",
        "config": _config(384, alpha=0.4, max_txt_len=25, num_answer_candidates=128),
        "image_size": 384,
        "pretrained_url": f"{_ALBEF}/ALBEF.pth",
        "datasets": ["coco_vqa", "vg_vqa"],
        "pipeline_tag": "visual-question-answering",
        "results": {"source": _LAVIS_BENCHMARK, "rows": [{"dataset": "VQA v2", "test-dev": 76.35, "test-std": 76.54}]},
    },
    ("albef_nlvr", "nlvr"): {
        "head": "AlbefForNLVR",
        "lavis_config": "lavis/configs/models/albef_nlvr.yaml",
        "url": f"{_LAVIS}/albef_nlvr_lavis.pt",
        "config": _config(384, text={"num_hidden_layers": 18}, alpha=0.4, max_txt_len=40, num_labels=2),
        "image_size": 384,
        "pretrained_url": f"{_ALBEF}/pretrain_model_nlvr.pth",
        "datasets": ["nlvr2"],
        "pipeline_tag": "image-classification",
        "results": {"source": _LAVIS_BENCHMARK, "rows": [{"dataset": "NLVR2", "dev": 82.47, "test-P": 82.91}]},
    },
    ("albef_classification", "ve"): {
        "head": "AlbefForVisualEntailment",
        "lavis_config": "lavis/configs/models/albef_classification_ve.yaml",
        "url": f"{_LAVIS}/albef_snli_ve_lavis.pt",
        "config": _config(384, alpha=0.4, max_txt_len=40, id2label=_SNLI_VE_LABELS),
        "image_size": 384,
        "pretrained_url": f"{_ALBEF}/ALBEF.pth",
        "datasets": ["snli_ve"],
        "pipeline_tag": "image-classification",
        "results": {"source": _LAVIS_BENCHMARK, "rows": [{"dataset": "SNLI-VE", "val": 80.60, "test": 81.04}]},
    },
    ("albef_pretrain", "base"): {
        "head": "AlbefForPreTraining",
        "lavis_config": "lavis/configs/models/albef_pretrain_base.yaml",
        "url": f"{_ALBEF}/ALBEF.pth",
        "config": _config(
            224, embed_dim=256, queue_size=65536, temp=0.07, alpha=0.4, momentum=0.995, mlm_probability=0.15,
            max_txt_len=30,
        ),
        "image_size": 224,
        "datasets": _PRETRAINING_DATA,
        "pipeline_tag": "feature-extraction",
        "results": {},
        "no_results_reason": "Pre-training reports no benchmark of its own; the fine-tuned checkpoints do.",
    },
}

_SLUGS = {
    ("albef_feature_extractor", "base"): "albef-base",
    ("albef_retrieval", "coco"): "albef-retrieval-coco",
    ("albef_retrieval", "flickr"): "albef-retrieval-flickr",
    ("albef_vqa", "vqav2"): "albef-vqav2",
    ("albef_nlvr", "nlvr"): "albef-nlvr2",
    ("albef_classification", "ve"): "albef-snli-ve",
    ("albef_pretrain", "base"): "albef-base-pretraining",
}


@dataclass(frozen=True)
class AlbefCatalogueEntry:
    """One catalogue entry.

    Attributes:
        name: LAVIS model name (``albef_retrieval``, ...).
        model_type: LAVIS model type (``coco``, ``flickr``, ``vqav2``, ``nlvr``, ``ve``, ``base``).
        head: the vl_hub head class name.
        config_kwargs: :class:`AlbefConfig` keyword arguments (the architecture and training settings).
        source_url: the original checkpoint (LAVIS ``finetuned``, or ``pretrained`` for the pre-trained model).
        lavis_config: the LAVIS YAML this entry reproduces.
        tokenizer_url: the BERT ``vocab.txt`` the processor needs (``bert-base-uncased``).
        repo_id: suggested hub repository of the converted checkpoint.
        image_size: processor resolution (LAVIS eval processor).
        reported_results: the original authors' numbers, ``{"source": ..., "rows": [{"dataset": ..., metric: value}]}``
            (LAVIS's benchmark of these checkpoints, or the ALBEF paper); not re-run by vl_hub. Empty when none.
        pretrained_url: the checkpoint this one was fine-tuned from (``None`` for the pre-trained model).
        datasets: vl_hub dataset names it was trained on.
        pipeline_tag: the Hub pipeline tag of its card.
        no_results_reason: why ``reported_results`` is empty.
        convert_command: how to build the checkpoint folder.
        model_card: the card in ``model_cards/``.
    """

    name: str
    model_type: str
    head: str
    config_kwargs: dict[str, Any] = field(hash=False)
    source_url: str
    lavis_config: str
    tokenizer_url: str
    repo_id: str
    image_size: int
    reported_results: dict[str, Any] = field(hash=False)
    convert_command: str
    model_card: str
    pretrained_url: str | None = None
    datasets: tuple[str, ...] = ()
    pipeline_tag: str = ""
    no_results_reason: str | None = None

    def config(self) -> AlbefConfig:
        """A fresh :class:`AlbefConfig` of this entry."""
        return AlbefConfig(**copy.deepcopy(self.config_kwargs))

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (for ``vl_hub/zoo.py``)."""
        return {
            "family": "albef",
            "name": self.name,
            "model_type": self.model_type,
            "head": self.head,
            "config": copy.deepcopy(self.config_kwargs),
            "source_url": self.source_url,
            "lavis_config": self.lavis_config,
            "tokenizer_url": self.tokenizer_url,
            "repo_id": self.repo_id,
            "image_size": self.image_size,
            "reported_results": copy.deepcopy(self.reported_results),
            "no_results_reason": self.no_results_reason,
            "pretrained_url": self.pretrained_url,
            "datasets": list(self.datasets),
            "pipeline_tag": self.pipeline_tag,
            "license": "bsd-3-clause",
            "convert_command": self.convert_command,
            "model_card": self.model_card,
        }


def _entry(name: str, model_type: str) -> AlbefCatalogueEntry:
    spec = _ENTRIES[(name, model_type)]
    slug = _SLUGS[(name, model_type)]
    source = spec["url"].rsplit("/", 1)[1]
    return AlbefCatalogueEntry(
        name=name,
        model_type=model_type,
        head=spec["head"],
        config_kwargs=spec["config"],
        source_url=spec["url"],
        lavis_config=spec["lavis_config"],
        tokenizer_url=_BERT_VOCAB,
        repo_id=f"vl-hub/{slug}",
        image_size=spec["image_size"],
        reported_results=spec["results"],
        convert_command=(
            f"vl-hub convert --from lavis --model-type {name}:{model_type} --tokenizer vocab.txt {source} {slug}"
        ),
        model_card=f"model_cards/{name}_{model_type}.md",
        pretrained_url=spec.get("pretrained_url"),
        datasets=tuple(spec.get("datasets", ())),
        pipeline_tag=spec.get("pipeline_tag", ""),
        no_results_reason=spec.get("no_results_reason"),
    )


#: ``(name, model_type) -> entry`` for every ALBEF checkpoint LAVIS publishes.
ALBEF_CATALOGUE: dict[tuple[str, str], AlbefCatalogueEntry] = {key: _entry(*key) for key in _ENTRIES}


def lookup(model_type: str) -> AlbefCatalogueEntry:
    """The entry for ``"name:model_type"`` (``"albef_retrieval:coco"``).

    Raises ``KeyError`` listing the valid names.
    """
    name, _, kind = model_type.rpartition(":")
    if (name, kind) not in ALBEF_CATALOGUE:
        valid = ", ".join(f"{n}:{t}" for n, t in ALBEF_CATALOGUE)
        raise KeyError(f"unknown ALBEF model type {model_type!r}; valid: {valid}")
    return ALBEF_CATALOGUE[(name, kind)]
