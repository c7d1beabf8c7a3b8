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

__all__ = [
    "ALBEF_CATALOGUE",
    "CARD_CITATION",
    "CARD_CONVERSION_NOTE",
    "CARD_INTENDED_USE",
    "CARD_TOKENIZER_NOTE",
    "AlbefCatalogueEntry",
    "card_extra_settings",
    "card_text_tower",
    "card_usage",
    "lookup",
]

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


# ---------------------------------------------------------------------------------------------- model card text
# What ``vl_hub.zoo.render_model_card`` writes about ALBEF into ``model_cards/TEMPLATE.md``'s sections; the template
# itself (headings, header, source / results / limitations lines) is shared and lives in ``vl_hub/zoo.py``.

#: appended to the ``Tokenizer:`` line of the card
CARD_TOKENIZER_NOTE = "(no added tokens)"

#: what the family's tests verify about its conversion, appended to the card's conversion paragraph
CARD_CONVERSION_NOTE = (
    " vl_hub's ALBEF heads reproduce LAVIS's outputs on golden fixtures produced by the original code (feature "
    "extractor, retrieval `compute_sim_matrix` incl. momentum copies and queues, VQA answer ranking, NLVR2, SNLI-VE; "
    "atol 1e-4, ids exactly). No real ALBEF checkpoint was converted while writing this card.\n"
    "A `BertForMaskedLM` text encoder (`text_encoder.bert.*`) is read as `text_encoder.*` by the heads with a plain "
    "BERT (LAVIS's `rename_text_keys`); momentum copies (`*_m`) and queues are kept by the heads that train with them."
)

#: task -> the card's "Intended use" sentence, where ALBEF's differs from the family-neutral one in ``vl_hub.zoo``
CARD_INTENDED_USE = {
    "visual entailment": "Deciding whether an image entails, contradicts or leaves open an English hypothesis (SNLI-VE).",
    "pretraining": (
        "Continuing ALBEF pre-training (ITC + ITM + MLM with momentum distillation) or initialising fine-tuning on a "
        "new task."
    ),
}

CARD_CITATION = (
    "@inproceedings{li2021albef,\n"
    "  title={Align before Fuse: Vision and Language Representation Learning with Momentum Distillation},\n"
    "  author={Junnan Li and Ramprasaath R. Selvaraju and Akhilesh Deepak Gotmare and Shafiq Joty and Caiming Xiong "
    "and Steven Hoi},\n"
    "  booktitle={NeurIPS},\n"
    "  year={2021}\n"
    "}"
)

_RETRIEVAL_USAGE = (
    'inputs = processor(images=image, text="a dog running on grass", text_mode="caption")\n'
    'match = model(**inputs, match_head="itm").itm_logits.softmax(-1)[:, 1]  # P(match)\n'
    'similarity = model(**inputs, match_head="itc").itc_sim  # cosine of the ITC features\n'
    "# a whole gallery: ITC ranking, ITM re-scoring of each query's top k_test (LAVIS compute_sim_matrix)\n"
    "scores = model.retrieval_scores(pixel_values, input_ids, attention_mask)  # .score_i2t (N, M), .score_t2i (M, N)"
)


def card_text_tower(entry: Any) -> str:
    """The card's ``- Text:`` line (after the label) for a ``vl_hub.zoo.ZooEntry`` of this family: the BERT with its
    text-only and fusion layers, plus what the head adds (NLVR2 layer pairs, MLM head, VQA answer decoder)."""
    config = entry.config()
    text = config.text_config
    layers, fusion = text.num_hidden_layers, text.fusion_layer
    line = (
        f"BERT-base, {layers} layers (layers 0-{fusion - 1} encode the text alone, layers {fusion}-{layers - 1} add "
        f"cross-attention to the image tokens), hidden {text.hidden_size}, vocabulary {text.vocab_size} (plain "
        "`bert-base-uncased`: `[CLS]` first everywhere, no added tokens)."
    )
    if entry.head == "AlbefForNLVR":
        pairs = f"({fusion}, {fusion + 1}), ({fusion + 2}, {fusion + 3}), ... ({layers - 2}, {layers - 1})"
        line += (
            f" NLVR2: fusion layer l attends image (l - {fusion}) % 2; the cross-attention key/value of layer pairs "
            f"{pairs} are one set of parameters."
        )
    elif entry.head == "AlbefForPreTraining":
        line += (
            " The text encoder is a masked-LM BERT (`text_encoder.bert` + tied `text_encoder.cls` MLM head); "
            f"{config.mlm_probability * 100:g} % MLM masking."
        )
    elif entry.head == "AlbefForQuestionAnswering":
        line += (
            f" Answer decoder: a {config.num_decoder_layers}-layer causal BERT, every layer cross-attending the "
            f"question states; answers start with `[CLS]`; ranking keeps {config.num_answer_candidates} candidates by "
            f"first-token probability, scored by their label-smoothed ({config.label_smoothing}) LM loss."
        )
    return line


def card_extra_settings(entry: Any) -> list[str]:
    """Settings the card lists after the shared ones: momentum distillation, for the heads whose LAVIS config sets
    ``alpha``."""
    if "alpha" not in entry.details["config"]:
        return []
    config = entry.config()
    return [
        (
            f"`use_distill={config.use_distill!r}` (momentum copies `*_m`, `momentum={config.momentum!r}`, "
            f"`alpha={config.alpha!r}`)"
        )
    ]


def card_usage(entry: Any) -> str:
    """The card's usage lines after ``model, processor = vl_hub.load_model_and_processor(...)`` (by head; lengths and
    candidate counts from the entry's config)."""
    config = entry.config()
    max_len = config.max_txt_len
    if entry.head == "AlbefModel":
        return (
            'inputs = processor(images=image, text="a dog running on grass", text_mode="caption")\n'
            'features = model.extract_features(**inputs, mode="multimodal")  # or mode="image" / "text"\n'
            f'image_feat = model.get_image_features(inputs["pixel_values"])  # (B, {config.embed_dim}), L2-normalised'
        )
    if entry.head == "AlbefForImageTextRetrieval":
        return _RETRIEVAL_USAGE
    if entry.head == "AlbefForQuestionAnswering":
        return (
            f'inputs = processor(images=image, text="what is the man holding?", text_mode="question", max_length={max_len})\n'
            "answers = processor(text=answer_list)  # the candidate answers, [CLS] first\n"
            'ranked = model.rank_answers(**inputs, answer_ids=answers["input_ids"],\n'
            f'                            answer_attention_mask=answers["attention_mask"], num_candidates={config.num_answer_candidates})\n'
            "print([answer_list[i] for i in ranked.pred_index.tolist()])  # LAVIS predict_answers\n"
            "print(processor.batch_decode(model.generate_answers(**inputs)))  # free-form answers"
        )
    if entry.head == "AlbefForNLVR":
        return (
            'pixels = processor(images=[image_left, image_right])["pixel_values"]\n'
            f'text = processor(text="the left image has more dogs than the right one", text_mode="caption", max_length={max_len})\n'
            "logits = model(pixel_values_0=pixels[:1], pixel_values_1=pixels[1:], **text).logits  # false / true"
        )
    if entry.head == "AlbefForVisualEntailment":
        labels = " / ".join(config.id2label[i] for i in sorted(config.id2label))
        return (
            f'inputs = processor(images=image, text="two dogs are playing outside", text_mode="caption", max_length={max_len})\n'
            f"label = model(**inputs).logits.argmax(-1)  # model.config.id2label: {labels}"
        )
    if entry.head == "AlbefForPreTraining":
        return (
            f'batch = processor(images=images, text=captions, text_mode="caption", padding="max_length", max_length={max_len})\n'
            f"loss = model(**batch, alpha={config.alpha!r}).loss  # ITC + ITM + MLM with momentum distillation, LAVIS AlbefPretrain"
        )
    return ""
