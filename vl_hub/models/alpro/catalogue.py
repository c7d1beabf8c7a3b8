"""The ALPRO model catalogue: LAVIS's names ``alpro_retrieval`` (model types ``msrvtt``, ``didemo``) and ``alpro_qa``
(``msrvtt``, ``msvd``), from ``lavis/configs/models/alpro_*.yaml``, ``bert_config_alpro.json`` and the evaluation
configs ``lavis/projects/alpro/eval/*.yaml``: architecture, frames, text length, answer classes, the original
checkpoints and answer vocabularies, LAVIS's reported results and the suggested hub repositories.

Every entry is ALPRO-base: TimeSformer-B/16 (12 blocks, width 768, 12 heads, divided space-time attention) at 224 px,
BERT-base (30,522 tokens, token types, 6 text + 6 fusion layers), ITC projections of 256. The fine-tuned checkpoints
start from ``alpro_pretrain.pt`` (8 frames); QA uses 16 frames (``time_embed`` resized at load, as LAVIS does).
The coordinator merges :data:`ALPRO_CATALOGUE` into ``vl_hub/zoo.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedModel

from vl_hub.models.alpro.configuration_alpro import AlproConfig

__all__ = ["ALPRO_CATALOGUE", "ALPRO_PRETRAINED_URL", "AlproCatalogueEntry", "lookup"]

_MODELS = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/ALPRO"
_DATASETS = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets"

#: The pre-trained (not fine-tuned) ALPRO checkpoint every entry starts from (LAVIS ``pretrained:``).
ALPRO_PRETRAINED_URL = f"{_MODELS}/alpro_pretrain.pt"
#: The tokenizer of every entry (LAVIS ``BertTokenizer.from_pretrained("bert-base-uncased")``).
BERT_VOCAB = "bert-base-uncased vocab.txt (30,522 WordPiece tokens)"

_VISION_BASE: dict[str, Any] = {
    "image_size": 224,
    "patch_size": 16,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "drop_path_rate": 0.1,
}
_TEXT_BASE: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "fusion_layer": 6,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}

_HEADS = {"alpro_retrieval": "AlproForVideoTextRetrieval", "alpro_qa": "AlproForVideoQuestionAnswering"}


@dataclass(frozen=True)
class AlproCatalogueEntry:
    """One catalogue entry.

    Attributes:
        name: LAVIS model name (``alpro_retrieval`` or ``alpro_qa``).
        model_type: LAVIS model type (``msrvtt``, ``didemo``, ``msvd``).
        head: the vl_hub head class name.
        config_kwargs: :class:`AlproConfig` keyword arguments (the architecture and evaluation settings).
        num_frames: frames per clip (LAVIS ``n_frms``).
        num_answers: QA answer classes (0 for retrieval).
        source_url: the fine-tuned checkpoint LAVIS loads (``finetuned:``).
        pretrained_url: the pre-trained checkpoint it was fine-tuned from.
        answers_url: the answer vocabulary ``{answer: class}`` (``train_ans2label.json``) of QA entries.
        repo_id: suggested hub repository of the converted checkpoint.
        reported: LAVIS's reported results (``docs/benchmark.rst``), percent.
        convert_command: how to build the checkpoint folder.
    """

    name: str
    model_type: str
    head: str
    config_kwargs: dict[str, Any] = field(hash=False)
    num_frames: int
    num_answers: int
    source_url: str
    pretrained_url: str
    answers_url: str | None
    repo_id: str
    reported: dict[str, float] = field(hash=False)
    convert_command: str

    def config(self) -> AlproConfig:
        """A fresh :class:`AlproConfig` of this entry."""
        return AlproConfig(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in self.config_kwargs.items()})

    def head_class(self) -> type[PreTrainedModel]:
        """The head class (imported on demand)."""
        from vl_hub.models.alpro import modeling_alpro

        return getattr(modeling_alpro, self.head)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (for ``vl_hub/zoo.py``)."""
        return {
            "family": "alpro",
            "name": self.name,
            "model_type": self.model_type,
            "head": self.head,
            "config": self.config_kwargs,
            "num_frames": self.num_frames,
            "num_answers": self.num_answers,
            "source_url": self.source_url,
            "pretrained_url": self.pretrained_url,
            "answers_url": self.answers_url,
            "repo_id": self.repo_id,
            "reported": dict(self.reported),
            "convert_command": self.convert_command,
        }


def _entry(
    name: str,
    model_type: str,
    checkpoint: str,
    num_frames: int,
    max_txt_len: int,
    k_test: int,
    reported: dict[str, float],
    num_answers: int = 0,
    answers_url: str | None = None,
) -> AlproCatalogueEntry:
    config: dict[str, Any] = {
        "vision_config": {**_VISION_BASE, "num_frames": num_frames},
        "text_config": dict(_TEXT_BASE),
        "embed_dim": 256,
        "temp": 0.07,
        "k_test": k_test,
        "max_txt_len": max_txt_len,
    }
    if num_answers:
        config["num_labels"] = num_answers
    slug = f"alpro-{name.split('_', 1)[1]}-{model_type}"
    answers = " --answers train_ans2label.json" if num_answers else ""
    return AlproCatalogueEntry(
        name=name,
        model_type=model_type,
        head=_HEADS[name],
        config_kwargs=config,
        num_frames=num_frames,
        num_answers=num_answers,
        source_url=f"{_MODELS}/{checkpoint}",
        pretrained_url=ALPRO_PRETRAINED_URL,
        answers_url=answers_url,
        repo_id=f"vl-hub/{slug}",
        reported=reported,
        convert_command=(
            f"python -m vl_hub.models.alpro.convert_alpro_checkpoint {name}:{model_type} {checkpoint} {slug} "
            f"--vocab bert-base-uncased/vocab.txt{answers}"
        ),
    )


#: ``(name, model_type) -> entry``. Settings: retrieval 8 frames, QA 16 frames (LAVIS model configs); ``max_txt_len``
#: 35 (LAVIS's default) except DiDeMo's 50 (its evaluation config) and QA's 40 (``AlproQA``'s default); ``k_test``
#: 1000 (LAVIS's ALPRO evaluation configs); answer classes 1,500 (MSRVTT-QA) and 2,423 (MSVD-QA), the ``num_classes``
#: of LAVIS's configs and ``num_labels`` of the original ALPRO repository's ``msvd_qa.json``.
ALPRO_CATALOGUE: dict[tuple[str, str], AlproCatalogueEntry] = {
    ("alpro_retrieval", "msrvtt"): _entry(
        "alpro_retrieval", "msrvtt", "alpro_msrvtt_retrieval.pt", num_frames=8, max_txt_len=35, k_test=1000,
        reported={"txt_r1": 33.2, "txt_r5": 60.5, "txt_r10": 71.7, "img_r1": 33.8, "img_r5": 61.4, "img_r10": 72.7},
    ),
    ("alpro_retrieval", "didemo"): _entry(
        "alpro_retrieval", "didemo", "alpro_didemo_retrieval.pt", num_frames=8, max_txt_len=50, k_test=1000,
        reported={"txt_r1": 38.8, "txt_r5": 66.4, "txt_r10": 76.8, "img_r1": 36.6, "img_r5": 67.5, "img_r10": 77.9},
    ),
    ("alpro_qa", "msrvtt"): _entry(
        "alpro_qa", "msrvtt", "alpro_msrvtt_qa.pth", num_frames=16, max_txt_len=40, k_test=256,
        reported={"accuracy": 42.1}, num_answers=1500, answers_url=f"{_DATASETS}/msrvtt/train_ans2label.json",
    ),
    ("alpro_qa", "msvd"): _entry(
        "alpro_qa", "msvd", "alpro_msvd_qa.pth", num_frames=16, max_txt_len=40, k_test=256,
        reported={"accuracy": 46.0}, num_answers=2423, answers_url=f"{_DATASETS}/msvd/train_ans2label.json",
    ),
}


def lookup(model_type: str) -> AlproCatalogueEntry:
    """The entry for ``"name:model_type"`` (``"alpro_qa:msvd"``).

    Raises ``KeyError`` listing the valid names.
    """
    name, _, kind = model_type.partition(":")
    if (name, kind) not in ALPRO_CATALOGUE:
        valid = ", ".join(f"{n}:{t}" for n, t in ALPRO_CATALOGUE)
        raise KeyError(f"unknown ALPRO model type {model_type!r}; valid: {valid}")
    return ALPRO_CATALOGUE[(name, kind)]
