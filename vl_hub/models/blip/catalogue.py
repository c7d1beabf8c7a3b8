"""The BLIP model catalogue: LAVIS's BLIP model names x model types (``lavis/configs/models/blip_*.yaml``) with the
architecture, the original checkpoint, the vl_hub head, the processor settings, the hub repository where converted
weights are expected and the results the original reports.

| name | model types | head | original checkpoint (LAVIS ``finetuned`` / ``pretrained``) |
| --- | --- | --- | --- |
| ``blip_caption`` | ``base_coco``, ``large_coco`` | ``BlipForConditionalGeneration`` | ``blip_coco_caption_base.pth``, ``model_large_caption.pth`` |
| ``blip_retrieval`` | ``coco``, ``flickr`` | ``BlipForImageTextRetrieval`` | ``blip_{coco,flickr}_retrieval.pth`` |
| ``blip_vqa`` | ``vqav2``, ``okvqa``, ``aokvqa`` | ``BlipForQuestionAnswering`` | ``model_base_vqa_capfilt_large.pth``, ``blip_{okvqa,aokvqa}.pth`` |
| ``blip_nlvr`` | ``nlvr`` | ``BlipForNLVR`` | ``model_base_nlvr.pth`` |
| ``blip_feature_extractor`` | ``base`` | ``BlipModel`` | ``model_base_capfilt_large.pth`` |
| ``blip_image_text_matching`` | ``base``, ``large`` | ``BlipForImageTextRetrieval`` | ``model_{base,large}_retrieval_coco.pth`` |
| ``blip_pretrain`` | ``base`` | ``BlipForPreTraining`` | ``model_base_capfilt_large.pth`` |

Architectures (LAVIS ``VisionTransformerEncoder.from_config`` and ``med_config.json``): ``base`` is ViT-B/16 (768
wide, 12 blocks, 12 heads), ``large`` ViT-L/16 (1024, 24, 16, stochastic depth 0.1 always: LAVIS writes
``0.1 or drop_path_rate``); every ViT LayerNorm uses eps 1e-6. The text transformer is BERT-base with cross-attention
in every layer, 30524 tokens (``[DEC]`` = 30522, ``[ENC]`` = 30523). ``vit_grad_ckpt``/``vit_ckpt_layer`` are
training settings: with gradient checkpointing enabled, the last ``gradient_checkpointing_layers`` blocks are
checkpointed (:attr:`BlipCatalogueEntry.training` records whether LAVIS enables it).

``vl_hub/zoo.py`` collects :data:`BLIP_CATALOGUE` with the other families' catalogues.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from vl_hub.models.blip.configuration_blip import BlipConfig

__all__ = [
    "BLIP_CAPTION_PROMPT_IDS",
    "BLIP_CATALOGUE",
    "CARD_CITATION",
    "CARD_CONVERSION_NOTE",
    "CARD_INTENDED_USE",
    "CARD_TOKENIZER_NOTE",
    "BlipCatalogueEntry",
    "card_text_tower",
    "card_usage",
    "lookup",
]

_BLIP = "https://storage.googleapis.com/sfr-vision-language-research/BLIP/models"
_LAVIS = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP"
_BERT_VOCAB = "https://huggingface.co/bert-base-uncased/resolve/main/vocab.txt"
_LAVIS_BENCHMARK = "LAVIS model zoo benchmark (docs/benchmark.rst, BLIP section)"
_BLIP_PAPER = "BLIP paper (Li et al., ICML 2022, arXiv:2201.12086)"
_CAPTION_PROMPT = "a picture of "

#: decoder ids of ``"a picture of "`` with BLIP's tokenizer (``bert-base-uncased`` + ``[DEC]``): ``[DEC] a picture of``
BLIP_CAPTION_PROMPT_IDS: list[int] = [30522, 1037, 3861, 1997]

_VIT = {
    "base": {"patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    "large": {"patch_size": 16, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16},
}
# med_config.json / med_large_config.json (identical text transformers; the cross-attention width follows the ViT)
_TEXT: dict[str, Any] = {
    "vocab_size": 30524, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "max_position_embeddings": 512, "layer_norm_eps": 1e-12,
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0, "bos_token_id": 30522,
    "eos_token_id": 102, "sep_token_id": 102, "cls_token_id": 101, "enc_token_id": 30523,
}


def _config(
    vit: str, image_size: int, drop_path_rate: float = 0.0, ckpt_layers: int = 0, **fields: Any
) -> dict[str, Any]:
    vision = {
        **_VIT[vit],
        "image_size": image_size,
        "layer_norm_eps": 1e-6,
        # LAVIS: base uses vit_drop_path_rate (default 0); large is hard-wired to 0.1
        "drop_path_rate": 0.1 if vit == "large" else drop_path_rate,
        "gradient_checkpointing_layers": ckpt_layers,
    }
    fields.setdefault("prompt", "")
    return {"vision_config": vision, "text_config": dict(_TEXT), **fields}


# (name, model_type) -> everything but the derived fields
_ENTRIES: dict[tuple[str, str], dict[str, Any]] = {
    ("blip_caption", "base_coco"): {
        "head": "BlipForConditionalGeneration",
        "task": "image captioning",
        "slug": "blip-caption-base-coco",
        "lavis_config": "lavis/configs/models/blip_caption_base_coco.yaml",
        "url": f"{_LAVIS}/blip_coco_caption_base.pth",
        "pretrained_url": f"{_BLIP}/model_base_capfilt_large.pth",
        "config": _config(
            "base", 384, max_txt_len=40, prompt=_CAPTION_PROMPT, prompt_input_ids=BLIP_CAPTION_PROMPT_IDS
        ),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "generation": {"num_beams": 3, "max_length": 20, "min_length": 5},
        "datasets": ["coco_caption"],
        "results": {
            "source": _LAVIS_BENCHMARK,
            "rows": [
                {"dataset": "COCO Karpathy test", "BLEU-4": 39.9, "CIDEr": 133.5, "SPICE": 23.7},
                {"dataset": "NoCaps val (zero-shot transfer)", "BLEU-4": 31.9, "CIDEr": 109.1, "SPICE": 14.7},
            ],
        },
    },
    ("blip_caption", "large_coco"): {
        "head": "BlipForConditionalGeneration",
        "task": "image captioning",
        "slug": "blip-caption-large-coco",
        "lavis_config": "lavis/configs/models/blip_caption_large_coco.yaml",
        "url": f"{_BLIP}/model_large_caption.pth",
        "pretrained_url": f"{_BLIP}/model_large.pth",
        "config": _config(
            "large", 384, ckpt_layers=5, max_txt_len=40, prompt=_CAPTION_PROMPT,
            prompt_input_ids=BLIP_CAPTION_PROMPT_IDS,
        ),
        "training": {"vit_grad_ckpt": True, "vit_ckpt_layer": 5},
        "generation": {"num_beams": 3, "max_length": 20, "min_length": 5},
        "datasets": ["coco_caption"],
        "results": {
            "source": f"{_BLIP_PAPER}, Table 7 (BLIP ViT-L, 129M images)",
            "rows": [
                {"dataset": "COCO Karpathy test", "CIDEr": 136.7},
                {"dataset": "NoCaps val overall (zero-shot transfer)", "CIDEr": 113.2},
            ],
        },
    },
    ("blip_retrieval", "coco"): {
        "head": "BlipForImageTextRetrieval",
        "task": "image-text retrieval",
        "slug": "blip-retrieval-coco",
        "lavis_config": "lavis/configs/models/blip_retrieval_coco.yaml",
        "url": f"{_LAVIS}/blip_coco_retrieval.pth",
        "pretrained_url": f"{_BLIP}/model_base_capfilt_large.pth",
        "config": _config(
            "base", 384, ckpt_layers=4, embed_dim=256, queue_size=57600, alpha=0.4, momentum=0.995,
            negative_all_rank=False, k_test=256, max_txt_len=35,
        ),
        "training": {"vit_grad_ckpt": True, "vit_ckpt_layer": 4},
        "datasets": ["coco_retrieval"],
        "results": {
            "source": _LAVIS_BENCHMARK,
            "rows": [
                {"dataset": "COCO 5k test (text retrieval)", "R@1": 82.0, "R@5": 95.8, "R@10": 98.1},
                {"dataset": "COCO 5k test (image retrieval)", "R@1": 64.5, "R@5": 86.0, "R@10": 91.7},
            ],
        },
    },
    ("blip_retrieval", "flickr"): {
        "head": "BlipForImageTextRetrieval",
        "task": "image-text retrieval",
        "slug": "blip-retrieval-flickr",
        "lavis_config": "lavis/configs/models/blip_retrieval_flickr.yaml",
        "url": f"{_LAVIS}/blip_flickr_retrieval.pth",
        "pretrained_url": f"{_BLIP}/model_base_capfilt_large.pth",
        "config": _config(
            "base", 384, ckpt_layers=4, embed_dim=256, queue_size=57600, alpha=0.4, momentum=0.995,
            negative_all_rank=False, k_test=128, max_txt_len=35,
        ),
        "training": {"vit_grad_ckpt": True, "vit_ckpt_layer": 4},
        "datasets": ["flickr30k"],
        "results": {
            "source": _LAVIS_BENCHMARK,
            "rows": [
                {"dataset": "Flickr30K 1k test (text retrieval)", "R@1": 96.9, "R@5": 99.9, "R@10": 100.0},
                {"dataset": "Flickr30K 1k test (image retrieval)", "R@1": 87.5, "R@5": 97.6, "R@10": 98.9},
            ],
        },
    },
    ("blip_vqa", "vqav2"): {
        "head": "BlipForQuestionAnswering",
        "task": "visual question answering",
        "slug": "blip-vqa-vqav2",
        "lavis_config": "lavis/configs/models/blip_vqav2.yaml",
        "url": f"{_BLIP}/model_base_vqa_capfilt_large.pth",
        "pretrained_url": f"{_BLIP}/model_base_capfilt_large.pth",
        "config": _config("base", 480, drop_path_rate=0.1, max_txt_len=35, num_answer_candidates=128),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "generation": {"num_beams": 3, "max_length": 10, "min_length": 1, "inference_method": "rank"},
        "datasets": ["coco_vqa", "vg_vqa"],
        "results": {
            "source": _LAVIS_BENCHMARK,
            "rows": [{"dataset": "VQA v2", "test-dev": 78.23, "test-std": 78.29}],
        },
    },
    ("blip_vqa", "okvqa"): {
        "head": "BlipForQuestionAnswering",
        "task": "visual question answering",
        "slug": "blip-vqa-okvqa",
        "lavis_config": "lavis/configs/models/blip_vqa_okvqa.yaml",
        "url": f"{_LAVIS}/blip_okvqa.pth",
        "pretrained_url": f"{_BLIP}/model_base_vqa_capfilt_large.pth",
        "config": _config("base", 480, drop_path_rate=0.1, max_txt_len=35, num_answer_candidates=128),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "generation": {"num_beams": 3, "max_length": 10, "min_length": 1, "inference_method": "rank"},
        "datasets": ["ok_vqa"],
        "results": {"source": _LAVIS_BENCHMARK, "rows": [{"dataset": "OK-VQA", "test": 55.4}]},
    },
    ("blip_vqa", "aokvqa"): {
        "head": "BlipForQuestionAnswering",
        "task": "visual question answering",
        "slug": "blip-vqa-aokvqa",
        "lavis_config": "lavis/configs/models/blip_vqa_aokvqa.yaml",
        "url": f"{_LAVIS}/blip_aokvqa.pth",
        "pretrained_url": f"{_BLIP}/model_base_vqa_capfilt_large.pth",
        "config": _config("base", 480, drop_path_rate=0.1, max_txt_len=35, num_answer_candidates=128),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "generation": {"num_beams": 3, "max_length": 10, "min_length": 1, "inference_method": "rank"},
        "datasets": ["aok_vqa"],
        "results": {"source": _LAVIS_BENCHMARK, "rows": [{"dataset": "A-OKVQA", "val": 56.2, "test": 50.1}]},
    },
    ("blip_nlvr", "nlvr"): {
        "head": "BlipForNLVR",
        "task": "visual reasoning (NLVR2)",
        "slug": "blip-nlvr2",
        "lavis_config": "lavis/configs/models/blip_nlvr.yaml",
        "url": f"{_BLIP}/model_base_nlvr.pth",
        "pretrained_url": f"{_BLIP}/model_base_capfilt_large.pth",
        "config": _config("base", 384, max_txt_len=35, num_labels=2, nlvr_merge_layer=6),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "datasets": ["nlvr2"],
        "results": {"source": _LAVIS_BENCHMARK, "rows": [{"dataset": "NLVR2", "dev": 82.48, "test-P": 83.25}]},
    },
    ("blip_feature_extractor", "base"): {
        "head": "BlipModel",
        "task": "feature extraction",
        "slug": "blip-feature-extractor-base",
        "lavis_config": "lavis/configs/models/blip_feature_extractor_base.yaml",
        "url": f"{_BLIP}/model_base_capfilt_large.pth",
        "pretrained_url": None,
        "config": _config("base", 224, embed_dim=256, max_txt_len=30),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "datasets": ["coco_caption", "vg_caption", "sbu_caption", "conceptual_captions_3m", "conceptual_captions_12m", "laion"],
        "results": None,
    },
    ("blip_image_text_matching", "base"): {
        "head": "BlipForImageTextRetrieval",
        "task": "image-text matching",
        "slug": "blip-itm-base-coco",
        "lavis_config": "lavis/configs/models/blip_itm_base.yaml",
        "url": f"{_BLIP}/model_base_retrieval_coco.pth",
        "pretrained_url": f"{_BLIP}/model_base_capfilt_large.pth",
        # LAVIS BlipITM is inference-only: no momentum encoders or queues in the checkpoint (queue_size 0 here)
        "config": _config("base", 384, embed_dim=256, queue_size=0, k_test=256, max_txt_len=35),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "datasets": ["coco_retrieval"],
        "results": None,
    },
    ("blip_image_text_matching", "large"): {
        "head": "BlipForImageTextRetrieval",
        "task": "image-text matching",
        "slug": "blip-itm-large-coco",
        "lavis_config": "lavis/configs/models/blip_itm_large.yaml",
        "url": f"{_BLIP}/model_large_retrieval_coco.pth",
        "pretrained_url": f"{_BLIP}/model_large.pth",
        "config": _config("large", 384, embed_dim=256, queue_size=0, k_test=256, max_txt_len=35),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "datasets": ["coco_retrieval"],
        "results": None,
    },
    ("blip_pretrain", "base"): {
        "head": "BlipForPreTraining",
        "task": "pretraining",
        "slug": "blip-pretrain-base",
        "lavis_config": "lavis/configs/models/blip_pretrain_base.yaml",
        "url": f"{_BLIP}/model_base_capfilt_large.pth",
        "pretrained_url": None,
        "config": _config(
            "base", 224, embed_dim=256, queue_size=57600, alpha=0.4, momentum=0.995, max_txt_len=30
        ),
        "training": {"vit_grad_ckpt": False, "vit_ckpt_layer": 0},
        "datasets": ["coco_caption", "vg_caption", "sbu_caption", "conceptual_captions_3m", "conceptual_captions_12m", "laion"],
        "results": None,
    },
}

# Why an entry reports no numbers (shown on its model card).
_NO_RESULTS = {
    ("blip_feature_extractor", "base"): (
        "The pre-trained BLIP-base (CapFilt-L, 129M images) before any fine-tuning; LAVIS reports no benchmark for the "
        "feature extractor itself."
    ),
    ("blip_image_text_matching", "base"): (
        "BLIP's original COCO retrieval fine-tune (BLIP repository); LAVIS's benchmark table reports its own "
        "re-fine-tuned `blip_retrieval:coco` instead (see that card)."
    ),
    ("blip_image_text_matching", "large"): (
        "BLIP's original ViT-L COCO retrieval fine-tune (BLIP repository); LAVIS's benchmark table has no ViT-L "
        "retrieval row (the BLIP paper reports ViT-L retrieval in its Table 5)."
    ),
    ("blip_pretrain", "base"): (
        "The pre-training checkpoint (CapFilt-L, 129M images); downstream results come after fine-tuning (see the "
        "fine-tuned cards)."
    ),
}

_PIPELINE_TAGS = {
    "BlipForConditionalGeneration": "image-to-text",
    "BlipForQuestionAnswering": "visual-question-answering",
    "BlipForImageTextRetrieval": "zero-shot-image-classification",
    "BlipForNLVR": "image-classification",
    "BlipModel": "feature-extraction",
    "BlipForPreTraining": "feature-extraction",
}


@dataclass(frozen=True)
class BlipCatalogueEntry:
    """One catalogue entry.

    Attributes:
        name: LAVIS model name (``blip_caption``, ...).
        model_type: LAVIS model type (``base_coco``, ``coco``, ``vqav2``, ...).
        head: the vl_hub head class name.
        task: what the head does (``image captioning``, ``image-text retrieval``, ...).
        config_kwargs: :class:`BlipConfig` keyword arguments (architecture and training settings).
        source_url: the original checkpoint this entry converts (LAVIS ``finetuned``, or ``pretrained`` for the
            pre-trained models).
        pretrained_url: the pre-training checkpoint the fine-tune started from (``None`` for pre-trained entries).
        lavis_config: the LAVIS YAML this entry reproduces.
        tokenizer_url: BERT ``vocab.txt`` (``bert-base-uncased``) the processor needs; ``[DEC]``/``[ENC]`` are added.
        repo_id: hub repository where converted weights are expected.
        image_size: processor resolution (LAVIS eval processor).
        training: LAVIS's ``vit_grad_ckpt`` / ``vit_ckpt_layer`` for this model.
        generation: LAVIS's evaluation decoding settings (captioning / VQA), else empty.
        datasets: vl_hub dataset names the checkpoint was trained on (``dataset_scripts/<name>``).
        reported_results: ``{"source": ..., "rows": [{"dataset": ..., metric: value}]}`` reported by the original
            (not reproduced by vl_hub), or ``None``.
        no_results_reason: why ``reported_results`` is ``None``.
        pipeline_tag: Hub pipeline tag of the model card.
        convert_command: how to build the checkpoint folder from the original file.
        model_card: the card in ``model_cards/``.
    """

    name: str
    model_type: str
    head: str
    task: str
    config_kwargs: dict[str, Any] = field(hash=False)
    source_url: str
    pretrained_url: str | None
    lavis_config: str
    tokenizer_url: str
    repo_id: str
    image_size: int
    training: dict[str, Any] = field(hash=False)
    generation: dict[str, Any] = field(hash=False)
    datasets: tuple[str, ...]
    reported_results: dict[str, Any] | None = field(hash=False)
    no_results_reason: str | None
    pipeline_tag: str
    convert_command: str
    model_card: str

    family = "blip"

    def config(self) -> BlipConfig:
        """A fresh :class:`BlipConfig` of this entry (BLIP's BERT tokenizer ids)."""
        return BlipConfig(**copy.deepcopy(self.config_kwargs))

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (what ``vl_hub.zoo`` reads)."""
        return {
            "family": self.family,
            "name": self.name,
            "model_type": self.model_type,
            "head": self.head,
            "task": self.task,
            "config": copy.deepcopy(self.config_kwargs),
            "source_url": self.source_url,
            "pretrained_url": self.pretrained_url,
            "lavis_config": self.lavis_config,
            "tokenizer_url": self.tokenizer_url,
            "repo_id": self.repo_id,
            "image_size": self.image_size,
            "training": dict(self.training),
            "generation": dict(self.generation),
            "datasets": list(self.datasets),
            "reported_results": copy.deepcopy(self.reported_results),
            "no_results_reason": self.no_results_reason,
            "pipeline_tag": self.pipeline_tag,
            "convert_command": self.convert_command,
            "model_card": self.model_card,
        }


def _entry(name: str, model_type: str) -> BlipCatalogueEntry:
    spec = _ENTRIES[(name, model_type)]
    source_file = spec["url"].rsplit("/", 1)[1]
    return BlipCatalogueEntry(
        name=name,
        model_type=model_type,
        head=spec["head"],
        task=spec["task"],
        config_kwargs=spec["config"],
        source_url=spec["url"],
        pretrained_url=spec["pretrained_url"],
        lavis_config=spec["lavis_config"],
        tokenizer_url=_BERT_VOCAB,
        repo_id=f"vl-hub/{spec['slug']}",
        image_size=spec["config"]["vision_config"]["image_size"],
        training=spec["training"],
        generation=spec.get("generation", {}),
        datasets=tuple(spec["datasets"]),
        reported_results=spec["results"],
        no_results_reason=_NO_RESULTS.get((name, model_type)),
        pipeline_tag=_PIPELINE_TAGS[spec["head"]],
        convert_command=(
            f"vl-hub convert --from lavis --model-type {name}:{model_type} --tokenizer vocab.txt "
            f"{source_file} {spec['slug']}"
        ),
        model_card=f"model_cards/{name}_{model_type}.md",
    )


#: ``(name, model_type) -> entry`` for every BLIP model LAVIS publishes.
BLIP_CATALOGUE: dict[tuple[str, str], BlipCatalogueEntry] = {key: _entry(*key) for key in _ENTRIES}


def lookup(model_type: str) -> BlipCatalogueEntry:
    """The entry for ``"name:model_type"`` (``"blip_caption:base_coco"``).

    Raises ``KeyError`` listing the valid names.
    """
    name, _, kind = model_type.rpartition(":")
    if (name, kind) not in BLIP_CATALOGUE:
        valid = ", ".join(f"{n}:{t}" for n, t in BLIP_CATALOGUE)
        raise KeyError(f"unknown BLIP model type {model_type!r}; valid: {valid}")
    return BLIP_CATALOGUE[(name, kind)]


# ---------------------------------------------------------------------------------------------- model card text
# What ``vl_hub.zoo.render_model_card`` writes about BLIP into ``model_cards/TEMPLATE.md``'s sections; the template
# itself (headings, header, source / results / limitations lines) is shared and lives in ``vl_hub/zoo.py``.

#: appended to the ``Tokenizer:`` line of the card (the MED vocabulary adds two tokens to bert-base-uncased)
CARD_TOKENIZER_NOTE = "(+ `[DEC]`, `[ENC]`)"

#: what the family's tests verify about its conversion, appended to the card's conversion paragraph
CARD_CONVERSION_NOTE = (
    " vl_hub's BLIP heads reproduce LAVIS's outputs on golden fixtures produced by the original code (atol 1e-4, "
    "generated ids exactly)."
)

#: task -> the card's "Intended use" sentence, where BLIP's differs from the family-neutral one in ``vl_hub.zoo``
CARD_INTENDED_USE = {
    "pretraining": "Continuing BLIP pre-training (ITC + ITM + LM) or initialising fine-tuning on a new task.",
}

CARD_CITATION = (
    "@inproceedings{li2022blip,\n"
    "  title={BLIP: Bootstrapping Language-Image Pre-training for Unified Vision-Language Understanding and "
    "Generation},\n"
    "  author={Junnan Li and Dongxu Li and Caiming Xiong and Steven Hoi},\n"
    "  booktitle={ICML},\n"
    "  year={2022}\n"
    "}"
)

# per head: the lines after ``model, processor = vl_hub.load_model_and_processor(...)``
_CARD_USAGE = {
    "BlipForConditionalGeneration": (
        'inputs = processor(images=image, return_tensors="pt")\n'
        'print(model.caption(inputs["pixel_values"], processor, num_beams=3, max_length=20, min_length=5))'
    ),
    "BlipForQuestionAnswering": (
        'inputs = processor(images=image, text="what is in the picture?", text_mode="question")\n'
        'answer_ids = model.generate_answers(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])\n'
        "print(processor.batch_decode(answer_ids))"
    ),
    "BlipForImageTextRetrieval": (
        'inputs = processor(images=image, text="a dog running on grass", text_mode="caption")\n'
        'match = model(**inputs, match_head="itm").itm_logits.softmax(-1)[:, 1]  # P(match)\n'
        'similarity = model(**inputs, match_head="itc").itc_sim  # cosine of the ITC features'
    ),
    "BlipForNLVR": (
        'pixels = processor(images=[image_left, image_right])["pixel_values"]\n'
        'text = processor(text="the left image has more dogs than the right one", text_mode="caption")\n'
        "logits = model(pixel_values_0=pixels[:1], pixel_values_1=pixels[1:], **text).logits  # true / false"
    ),
    "BlipModel": (
        'inputs = processor(images=image, text="a dog running on grass", text_mode="caption")\n'
        'features = model.extract_features(**inputs, mode="multimodal")  # or mode="image" / "text"'
    ),
    "BlipForPreTraining": (
        'batch = processor(images=images, text=captions, text_mode="caption")\n'
        "loss = model(**batch).loss  # ITC + ITM + LM, LAVIS BlipPretrain"
    ),
}


def card_text_tower(entry: Any) -> str:
    """The card's ``- Text:`` line (after the label) for a ``vl_hub.zoo.ZooEntry`` of this family: the MED text
    transformer, read off the entry's config."""
    text = entry.details["config"]["text_config"]
    return (
        f"BERT-base multimodal encoder/decoder (MED), {text.get('num_hidden_layers')} layers, hidden "
        f"{text.get('hidden_size')}, vocabulary {text.get('vocab_size')} (`[DEC]` = {text.get('bos_token_id')}, "
        f"`[ENC]` = {text.get('enc_token_id')}), cross-attention to the image tokens in every layer."
    )


def card_usage(entry: Any) -> str:
    """The card's usage lines after ``model, processor = vl_hub.load_model_and_processor(...)`` (by head)."""
    return _CARD_USAGE.get(entry.head, "")
