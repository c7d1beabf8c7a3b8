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

__all__ = ["ALPRO_CATALOGUE", "ALPRO_PRETRAINED_URL", "AlproCatalogueEntry", "card_document", "lookup"]

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


# ---------------------------------------------------------------------------------------------- model card text
# ``vl_hub.zoo.render_model_card`` lays the document out (YAML header, title, sections); the text is ALPRO's.

_DATASET_NAMES = {"msrvtt": "MSR-VTT", "didemo": "DiDeMo", "msvd": "MSVD"}
# the test split LAVIS's retrieval numbers are on
_RETRIEVAL_SPLITS = {"msrvtt": "MSR-VTT 1k-A test", "didemo": "DiDeMo test"}
_LAVIS_RESULTS = "LAVIS docs/benchmark.rst (ALPRO section), commit 506965b9"
_ALPRO_PAPER = "ALPRO (Li et al., *Align and Prompt: Video-and-Language Pre-training with Entity Prompts*, CVPR 2022) "
# what the ALPRO paper reports for its own release, where it differs in source from LAVIS's table
_PAPER_RESULTS = {
    ("alpro_qa", "msrvtt"): "42.1 %",
    ("alpro_retrieval", "didemo"): "35.9 / 67.5 / 78.8 (text -> video R@1/5/10)",
}
#: parameters per top-level module of each head (``tests/models/alpro`` rebuilds the heads and compares)
CARD_PARAMETERS: dict[str, dict[str, int]] = {
    "alpro_retrieval": {"visual_encoder": 121258752, "text_encoder": 108891648, "vision_proj": 196864,
                        "text_proj": 196864, "itm_head": 1538, "temp": 1},
    "alpro_qa": {"visual_encoder": 121264896, "text_encoder": 108891648, "classifier": 1536 * 768 + 1536},
}


def card_parameters(entry: AlproCatalogueEntry) -> dict[str, int]:
    """Parameters per top-level module of the entry's head; the QA classifier grows with the answer classes."""
    counts = dict(CARD_PARAMETERS[entry.name])
    if entry.num_answers:
        counts["classifier"] += entry.num_answers * 1536 + entry.num_answers
    return counts


def _m(count: int) -> str:
    return f"{count / 1e6:.1f} M"


def card_document(entry: Any) -> dict[str, Any]:
    """The card of ``entry`` (a ``vl_hub.zoo.ZooEntry``) as ``vl_hub.zoo`` lays it out: ``pipeline_tag``, the rest of
    the YAML ``header``, ``title``, ``intro`` and ``sections`` (heading, Markdown)."""
    alpro = ALPRO_CATALOGUE[entry.key]
    qa = bool(alpro.num_answers)
    config = alpro.config_kwargs
    frames, max_len, answers = alpro.num_frames, config["max_txt_len"], alpro.num_answers
    dataset = _DATASET_NAMES[alpro.model_type]
    checkpoint = alpro.source_url.rsplit("/", 1)[1]
    pretrained = alpro.pretrained_url.rsplit("/", 1)[1]
    out = alpro.repo_id.rsplit("/", 1)[1]
    vision, text = config["vision_config"], config["text_config"]
    fusion, layers = text["fusion_layer"], text["num_hidden_layers"]
    counts = card_parameters(alpro)
    heads_count = sum(v for k, v in counts.items() if k not in ("visual_encoder", "text_encoder"))
    settings: dict[str, Any] = {"num_frames": frames, "max_txt_len": max_len}
    settings.update({"num_answers": answers} if qa else {"k_test": config["k_test"]})
    source: dict[str, Any] = {
        "original": f"ALPRO {alpro.name.split('_', 1)[1]} fine-tuned on {dataset} (Salesforce LAVIS)",
        "url": alpro.source_url,
        "pretrained_from": alpro.pretrained_url,
    }
    if qa:
        source["answer_vocabulary"] = alpro.answers_url
    source["tokenizer"] = BERT_VOCAB
    source["lavis"] = (
        f"{alpro.name}, model_type {alpro.model_type} (lavis/configs/models/{alpro.name}_{alpro.model_type}.yaml)"
    )
    header = {
        "tags": ["alpro", "vision-language", "video", "timesformer",
                 "video-question-answering" if qa else "text-video-retrieval", "vl_hub"],
        "model_type": "vlhub_alpro",
        "vl_hub": {"family": "alpro", "name": alpro.name, "model_type": alpro.model_type, "head": alpro.head,
                   "repo_id": alpro.repo_id, **settings},
        "source": source,
        "reported_results": {**alpro.reported, "source": _LAVIS_RESULTS, "measured_by_vl_hub": False},
    }
    lavis = f"as released by Salesforce LAVIS (`{alpro.name}`, model type `{alpro.model_type}`), converted to vl_hub."
    if qa:
        title = f"ALPRO video QA — {dataset} (vl_hub)"
        intro = (
            f"{_ALPRO_PAPER}fine-tuned for open-ended video question answering on {dataset}-QA, {lavis} The question "
            "and the video tokens are fused by the multimodal layers and an MLP classifies the fused `[CLS]` state "
            f"over the {answers:,} most frequent training answers."
        )
    else:
        title = f"ALPRO retrieval — {dataset} (vl_hub)"
        intro = (
            f"{_ALPRO_PAPER}fine-tuned for text-video retrieval on {dataset}, {lavis} A TimeSformer encodes sparsely "
            "sampled frames, a BERT encodes the caption, their projected `[CLS]` features are compared by cosine "
            "similarity (video-text contrastive, VTC), and a fusion transformer over `[text ; video tokens]` scores "
            "the best candidates (video-text matching, VTM)."
        )
    patches = (vision["image_size"] // vision["patch_size"]) ** 2
    rows = [
        (f"| video encoder | TimeSformer-B/{vision['patch_size']}, divided space-time attention, width "
         f"{vision['hidden_size']}, {vision['num_hidden_layers']} blocks, {vision['num_attention_heads']} heads, "
         "LN eps 1e-6 |"),
        (f"| frames | {frames} per clip, {vision['image_size']} x {vision['image_size']}, OpenAI CLIP mean/std; "
         "evaluation samples frames uniformly (LAVIS `load_video`), training head-tail with one random crop / flip / "
         "RandAugment per clip |"),
        f"| video tokens | cls + {patches} spatial tokens averaged over the frames (after the final LayerNorm) |",
        (f"| text encoder | BERT-base ({text['vocab_size']:,} tokens, token-type embeddings), layers 0-{fusion - 1} "
         "text only |"),
        (f"| fusion | layers {fusion}-{layers - 1} run self-attention over `[text states ; video tokens]` with mask "
         "`[text mask ; ones]` (no cross-attention) |"),
        "| text | lower-cased and normalised as LAVIS's `blip_caption` processor"
        + (" (questions too)" if qa else "") + f", padded to {max_len} tokens |",
    ]
    hidden = text["hidden_size"]
    if qa:
        rows += [
            (f"| head | `classifier`: Linear({hidden}, {2 * hidden}) -> ReLU -> Linear({2 * hidden}, {answers}) on the "
             "fused `[CLS]`; `config.id2label` holds the answer strings |"),
            (f"| parameters | {_m(sum(counts.values()))} (TimeSformer {_m(counts['visual_encoder'])}, BERT "
             f"{_m(counts['text_encoder'])}, classifier {_m(heads_count)}) |"),
        ]
        names = "`classifier.0/2`"
    else:
        rows += [
            (f"| heads | `vision_proj`, `text_proj` to {config['embed_dim']}-d (VTC, learned temperature), `itm_head` "
             f"Linear({hidden}, 2) on the fused `[CLS]` |"),
            (f"| retrieval scoring | VTC similarity ranks all pairs; each query's top {config['k_test']} (LAVIS's "
             "evaluation `k_test`) are re-scored `itm_logit + sim`, batched across queries |"),
            (f"| parameters | {_m(sum(counts.values()))} (TimeSformer {_m(counts['visual_encoder'])}, BERT "
             f"{_m(counts['text_encoder'])}, projections and `itm_head` {_m(heads_count)}) |"),
        ]
        names = "`vision_proj`, `text_proj`, `itm_head`, `temp`"
    architecture = (
        "| part | setting |\n|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Parameter names follow LAVIS's (`visual_encoder.*`, `text_encoder.*`, {names}); the conversion drops "
        "LAVIS's TimeSformer wrapper level (`visual_encoder.model.` -> `visual_encoder.`) and the original "
        "repository's `bert.` prefix, and is checked strictly (every tensor placed, every shape matching)."
    )
    vocabulary = (
        f"; the answer vocabulary is LAVIS's `train_ans2label.json` ({alpro.answers_url}), `{{answer: class}}` for the "
        f"{answers:,} classes" if qa else ""
    )
    python_call = (
        f'convert("{alpro.name}:{alpro.model_type}", "{checkpoint}", "{out}", tokenizer="bert-base-uncased/vocab.txt"'
        + (',\n        answers="train_ans2label.json")' if qa else ")")
    )
    conversion = (
        f"The original weights are LAVIS's `{checkpoint}` ({alpro.source_url}), fine-tuned from `{pretrained}` "
        f"({alpro.pretrained_url}). The tokenizer is `bert-base-uncased`'s `vocab.txt`{vocabulary}.\n"
        "Download them, then:\n\n"
        f"```bash\n{alpro.convert_command}\n```\n\n"
        "or in Python:\n\n"
        f"```python\nfrom vl_hub.models.alpro.convert_alpro_checkpoint import convert\n{python_call}\n```\n\n"
        "The converter reads the checkpoint with `torch.load(weights_only=True)` (the `model` entry), resizes the "
        "temporal and spatial position embeddings to the configured frames and patches exactly as LAVIS's loader does "
        f'(nearest), and writes `config.json` (`architectures: ["{alpro.head}"]`), `model.safetensors` and the '
        "`AlproProcessor` files. The conversion code is tested against golden outputs of LAVIS's `AlproRetrieval` and "
        "`AlproQA` (tiny random models, every output within 1e-4)."
    )
    r = alpro.reported
    if qa:
        table = f"| {dataset}-QA test | accuracy (top-1 answer) | {r['accuracy']} % |"
    else:
        split = _RETRIEVAL_SPLITS[alpro.model_type]
        table = (
            f"| {split}, text -> video | R@1 / R@5 / R@10 | {r['img_r1']} / {r['img_r5']} / {r['img_r10']} |\n"
            f"| {split}, video -> text | R@1 / R@5 / R@10 | {r['txt_r1']} / {r['txt_r5']} / {r['txt_r10']} |"
        )
    own = _PAPER_RESULTS.get((alpro.name, alpro.model_type))
    results = (
        "| benchmark | metric | reported by LAVIS |\n|---|---|---|\n" + table + "\n\n"
        "These are the numbers LAVIS publishes for this checkpoint (`docs/benchmark.rst`), not a measurement of this "
        "conversion" + (f"; the ALPRO paper reports {own} for its own release." if own else ".")
    )
    if qa:
        auto = "AutoModelForVideoQuestionAnswering"
        call = (
            'inputs = processor(videos="cooking.mp4", text="what is the man cooking?", text_mode="question")\n'
            "print(model.predict_answers(**inputs))            # e.g. ['pasta']"
        )
        after = (
            "`model(..., labels=answer_classes)` gives the cross-entropy training loss; `classify_answers` returns the "
            "logits over `config.id2label`."
        )
        intended = (
            f"Research on open-ended video question answering over {dataset}-QA's answer vocabulary (short answers, "
            "mostly one word)."
        )
        text_limit = (
            f"- Only the {answers:,} training answers can be predicted; answers outside that vocabulary are never "
            "produced. English only."
        )
    else:
        auto = "AutoModelForVideoTextRetrieval"
        call = (
            'inputs = processor(videos=["cooking.mp4", "beach.mp4"], text=["a man is cooking", "a dog runs on the '
            'beach"],\n'
            '                   text_mode="caption")\n'
            "with torch.no_grad():\n"
            "    scores = model.retrieval_scores(**inputs)      # VTC ranking + VTM on the top k_test\n"
            "print(scores.score_t2i)                           # (texts, videos)"
        )
        after = (
            "`model(pixel_values, input_ids, attention_mask, return_loss=True)` gives LAVIS's training loss (VTC + VTM "
            "with hard negatives); `AutoModel` loads the encoders alone (`AlproModel.extract_features`)."
        )
        intended = (
            f"Research on text-video retrieval and video-text matching on {dataset}-like open-domain clips, and as a "
            "video/text feature extractor."
        )
        text_limit = "- Text longer than the configured length is truncated; English only."
    usage = (
        "```python\nimport torch, vl_hub\nfrom transformers import AutoProcessor\n"
        f"from vl_hub.auto import {auto}\n\n"
        f'model = {auto}.from_pretrained("{alpro.repo_id}").eval()\n'
        f'processor = AutoProcessor.from_pretrained("{alpro.repo_id}")\n'
        f"{call}\n```\n\n"
        "Videos are decoded with decord, torchcodec or PyAV (whichever is installed, same frames) and sampled to "
        f"{frames} frames; `pixel_values` are `(batch, frames, 3, {vision['image_size']}, {vision['image_size']})`. "
        + after
    )
    limitations = "\n".join([
        (f"- The model sees {frames} frames of {vision['image_size']} px without audio; events between the sampled "
         "frames are missed. Inputs with another frame count raise unless `config.vision_config.interpolate_num_frames` "
         "is set."),
        text_limit,
        ("- Pre-trained on web video and image-text data (WebVid-2M, CC-3M) and fine-tuned on crowd-sourced "
         "annotations; it inherits their biases. Not evaluated for deployed use."),
        ("- A clip shorter than the requested frame count repeats its last frame (vl_hub's rule; LAVIS would return "
         "fewer frames)."),
        ("- The reported results above are LAVIS's; this conversion has not been re-evaluated on the benchmark by "
         "vl_hub."),
    ])
    return {
        "pipeline_tag": "visual-question-answering" if qa else "",
        "header": header,
        "title": title,
        "intro": intro,
        "sections": [
            ("Architecture", architecture),
            ("Source and conversion", conversion),
            ("Results", results),
            ("How to use", usage),
            ("Intended use", intended),
            ("Limitations", limitations),
        ],
    }
