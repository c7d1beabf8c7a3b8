"""``vl-hub quickstart``: train a small BLIP on the synthetic shapes data, on a CPU, with no download.

What :func:`run_quickstart` does, in order:

1. generates ``vl_hub_shapes`` (``image_text`` config: 1-2 coloured shapes per 32 px image, three captions
   each, all read off the pixels) into ``<output>/dataset_cache``;
2. writes a WordPiece vocabulary of the synthetic language (every word of its captions, questions and
   answers, plus single characters so that any other word still tokenises) and the BLIP processor
   (``<output>/processor``);
3. trains the BLIP captioning head (ViT + decoder) from scratch with the vl_hub trainer
   (``<output>/captioning``);
4. trains the BLIP retrieval head (ITC + ITM, ``<output>/retrieval``) starting from the captioning run: its
   ViT, and the decoder's transformer as the text encoder (same modules; BLIP pre-training shares all but
   the self-attention between the two);
5. evaluates both on the held-out test split (recall@K both ways, BLEU/CIDEr, and how many generated
   captions name every object's colour and shape correctly), writes ``<output>/quickstart_results.json``
   and ``<output>/vl_hub_demo.json`` (read by ``vl-hub demo``), adds a "Quickstart results" section to both
   model cards and returns a :class:`QuickstartResult` whose :meth:`~QuickstartResult.table` the CLI prints.

Each model folder loads with the stock Auto classes after ``import vl_hub``
(``AutoModelForImageTextToText`` / ``vl_hub.AutoModelForImageTextRetrieval`` and ``AutoProcessor``) and
holds its card (``README.md``), ``training_curves.png``, ``log.jsonl`` and ``all_results.json``.

Why these choices (measured on 2 CPU cores, see ``FULL_SETTINGS``):

* Shapes are what is slow to learn: a ViT from scratch names the colours within ~100 steps, the shapes
  only after ~1000. 32 px images in 4 px patches learned them faster per CPU second than 48 px / 6-8 px
  or 64 px / 8 px patches, and a 3-layer 64-wide ViT faster than 2 layers of 96 or 128. The captioning
  loss (a target per word) teaches them at half the cost per step of the retrieval loss, so captioning
  runs first and the retrieval run reuses its ViT and decoder.
* The momentum encoder of BLIP retrieval is an EMA (0.995, a ~200-step window) of a model that changes fast
  in a 500-step run, and a queue would hold keys of that older model; so ``momentum=0`` (the keys are the
  current model's features, without gradient), ``queue_size=0`` and ``alpha=0`` (no distillation). This
  was chosen, not measured against LAVIS's settings.
* Retrieval trains with LAVIS's per-image ids, although different images of "a red circle" then count as
  negatives of each other: giving identical caption sets one id made the ITM head slightly sharper
  (AUC 0.963 vs 0.951 against different-content pairs) but did not improve recall (R@1 16.4/17.7 vs
  18.4/18.6, seed 0), so the stock task is used.
* Augmentation is off: a flip swaps "left" and "right" in the captions and RandAugment changes the
  colours they name.
* One torch thread by default (``DEFAULT_THREADS``): on a busy 2-core machine two OpenMP threads
  spin-wait and made a step 10-30x slower.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FAST_SETTINGS",
    "FULL_SETTINGS",
    "QUICKSTART_DIR",
    "CaptionCheck",
    "QuickstartResult",
    "QuickstartSettings",
    "build_processor",
    "caption_correctness",
    "mentioned_objects",
    "retrieval_ceiling",
    "run_quickstart",
    "synthetic_vocabulary",
    "write_vocabulary",
]

#: default output folder (relative to the working directory); ``vl-hub demo`` looks here too.
QUICKSTART_DIR = Path("vlhub_quickstart")

#: sub-folders of the output folder.
RETRIEVAL_SUBDIR = "retrieval"
CAPTIONING_SUBDIR = "captioning"
PROCESSOR_SUBDIR = "processor"
DATASET_CACHE_SUBDIR = "dataset_cache"
RESULTS_FILENAME = "quickstart_results.json"
#: what ``vl-hub demo`` reads to name the bundle (see ``vl_hub.demo.default_model.BUNDLE_MARKER``).
DEMO_MARKER_FILENAME = "vl_hub_demo.json"

#: what a BERT tokenizer reserves first (``[PAD]`` must be id 0: the BLIP config and losses assume it).
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

#: LAVIS's captioning prompt, kept so that captions read "a picture of ..." during decoding.
CAPTION_PROMPT = "a picture of "

#: torch CPU threads of a quickstart run (see :func:`run_quickstart`).
DEFAULT_THREADS = 1

_WORD = re.compile(r"\w+|[^\w\s]")


# ================================================================================================ settings
@dataclass(frozen=True)
class QuickstartSettings:
    """Sizes of the data and the model, and the two training runs.

    Data: ``num_train`` / ``num_validation`` / ``num_test`` images of ``image_size`` px.
    Model (one BLIP config for both heads): ViT ``patch_size`` / ``vision_width`` / ``vision_layers``;
    text transformer ``text_width`` / ``text_layers`` (4 heads each, FFN 4x); ITC width ``embed_dim``.
    Runs: epochs, batch size, peak learning rate (linear warmup over ``warmup_steps`` then cosine to
    ``min_lr``) per head, validated about four times per run (the best is kept);
    retrieval re-ranks ``k_test`` candidates per query with ITM; captions use ``num_beams`` beams.
    """

    num_train: int = 4000
    num_validation: int = 64
    num_test: int = 256
    image_size: int = 32
    patch_size: int = 4
    vision_width: int = 64
    vision_layers: int = 3
    text_width: int = 96
    text_layers: int = 2
    embed_dim: int = 64
    captioning_epochs: int = 12
    captioning_batch_size: int = 32
    captioning_lr: float = 1e-3
    retrieval_epochs: int = 4
    retrieval_batch_size: int = 32
    retrieval_lr: float = 5e-4
    warmup_steps: int = 50
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    k_test: int = 16
    num_beams: int = 3
    max_caption_tokens: int = 24

    def __post_init__(self) -> None:
        may_be_zero = ("num_validation", "warmup_steps", "min_lr", "weight_decay")
        for name, value in asdict(self).items():
            if name in may_be_zero:
                ok, bound = value >= 0, ">= 0"
            elif isinstance(value, int):
                ok, bound = value >= 1, ">= 1"
            else:
                ok, bound = value > 0, "> 0"
            if not ok:
                raise ValueError(f"QuickstartSettings.{name} must be {bound}, got {value}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"QuickstartSettings.image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        if self.image_size < 32 or self.image_size % 2:
            raise ValueError(f"QuickstartSettings.image_size must be an even int >= 32, got {self.image_size}")


#: ``vl-hub quickstart``: about 3.5 minutes with one thread on a 2-core machine (195-200 s of CPU, seeds 0-2).
FULL_SETTINGS = QuickstartSettings()

#: ``vl-hub quickstart --fast`` (the tests): about a minute, still far above chance.
FAST_SETTINGS = QuickstartSettings(
    num_train=1600,
    num_validation=32,
    num_test=128,
    text_width=64,
    captioning_epochs=8,
    retrieval_epochs=2,
    warmup_steps=30,
    k_test=8,
    num_beams=1,
)


# ================================================================================================ vocabulary
def _synthetic_texts(seed: int = 0, scenes: int = 400) -> list[str]:
    """Every kind of sentence the synthetic builders write (captions, questions, answers, statements,
    hypotheses, video captions and summaries), over ``scenes`` random scenes (enough to hit every template)."""
    from vl_hub.data import synthetic

    rng = np.random.default_rng(seed)
    images = synthetic.make_image_scenes(rng, scenes, 64)
    videos = synthetic.make_video_scenes(rng, scenes // 4, 64)
    texts = [CAPTION_PROMPT, *synthetic.ANSWER_VOCABULARY]
    for scene in images:
        texts += synthetic.image_captions(scene)
        texts += [f"{q} {a}" for q, a in synthetic.image_questions(scene, rng, 8)]
        texts += [h for h, _ in synthetic.entailment_hypotheses(scene, rng)]
    for left, right in itertools.pairwise(images):
        texts.append(synthetic.nlvr_statement(left, right, rng)[0])
    for scene in videos:
        texts += synthetic.video_captions(scene) + [synthetic.video_summary(scene)]
        texts += [f"{q} {a}" for q, a in synthetic.video_questions(scene, rng, 8)]
    return texts


def synthetic_vocabulary() -> list[str]:
    """The WordPiece vocabulary of the quickstart, in id order: ``[PAD] [UNK] [CLS] [SEP] [MASK]``, every
    word and punctuation mark of the synthetic language (sorted), then ``a``-``z``/``0``-``9`` and their
    ``##`` continuations and common punctuation, so that words outside the synthetic language become
    character pieces instead of ``[UNK]``. ``[DEC]``/``[ENC]`` are added by ``build_blip_tokenizer``."""
    words = sorted({w for text in _synthetic_texts() for w in _WORD.findall(text.lower())})
    characters = list("abcdefghijklmnopqrstuvwxyz0123456789")
    extra = characters + [f"##{c}" for c in characters] + list(".,?!'\"-:;()")
    return list(dict.fromkeys([*SPECIAL_TOKENS, *words, *extra]))


def write_vocabulary(path: str | os.PathLike[str]) -> Path:
    """Writes :func:`synthetic_vocabulary` as a ``vocab.txt`` (one token a line) at ``path``; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(synthetic_vocabulary()) + "\n", encoding="utf-8")
    return path


def build_processor(folder: str | os.PathLike[str], image_size: int, max_txt_len: int = 32) -> Any:
    """Writes ``vocab.txt`` and a ``VlHubBlipProcessor`` (no augmentation, ``image_size`` px, the
    captioning prompt) into ``folder`` with ``save_pretrained``; returns the processor."""
    from vl_hub.models.blip.image_processing_blip import VlHubBlipImageProcessor
    from vl_hub.models.blip.processing_blip import (
        VlHubBlipProcessor,
        build_blip_tokenizer,
    )

    folder = Path(folder)
    vocab = write_vocabulary(folder / "vocab.txt")
    tokenizer = build_blip_tokenizer(vocab)
    processor = VlHubBlipProcessor(
        VlHubBlipImageProcessor(image_size=image_size, do_augment=False),
        tokenizer,
        max_txt_len=max_txt_len,
        prompt=CAPTION_PROMPT,
    )
    processor.save_pretrained(str(folder))
    return processor


# ================================================================================================ model and runs
def blip_config(settings: QuickstartSettings, tokenizer: Any) -> dict[str, Any]:
    """The ``BlipConfig`` fields (a plain dict, as a recipe's ``model.config``) of both quickstart heads."""
    from vl_hub.models.blip.modeling_blip_generation import caption_prompt_ids

    max_positions = settings.max_caption_tokens + 8
    return {
        "vision_config": {
            "image_size": settings.image_size,
            "patch_size": settings.patch_size,
            "hidden_size": settings.vision_width,
            "num_hidden_layers": settings.vision_layers,
            "num_attention_heads": 4,
        },
        "text_config": {
            "vocab_size": len(tokenizer),
            "hidden_size": settings.text_width,
            "num_hidden_layers": settings.text_layers,
            "num_attention_heads": 4,
            "intermediate_size": 4 * settings.text_width,
            "max_position_embeddings": max_positions,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "pad_token_id": int(tokenizer.pad_token_id),
            "bos_token_id": int(tokenizer.bos_token_id),
            "eos_token_id": int(tokenizer.sep_token_id),
            "sep_token_id": int(tokenizer.sep_token_id),
            "cls_token_id": int(tokenizer.cls_token_id),
            "enc_token_id": int(tokenizer.enc_token_id),
        },
        "embed_dim": settings.embed_dim,
        # no EMA teacher, queue or distillation: a short run changes the model too fast for them (module docstring)
        "momentum": 0.0,
        "queue_size": 0,
        "alpha": 0.0,
        "k_test": settings.k_test,
        "max_txt_len": settings.max_caption_tokens,
        "prompt": CAPTION_PROMPT,
        "prompt_input_ids": caption_prompt_ids(tokenizer, CAPTION_PROMPT),
    }


def _dataset_specs(settings: QuickstartSettings, seed: int) -> dict[str, list[dict[str, Any]]]:
    options = {
        "num_train": settings.num_train,
        "num_validation": settings.num_validation,
        "num_test": settings.num_test,
        "image_size": settings.image_size,
        "seed": seed,
    }

    def spec(split: str) -> dict[str, Any]:
        return {"name": "vl_hub_shapes", "config": "image_text", "split": split, "options": options, "label": f"shapes_{split}"}

    return {
        "datasets": [spec("train")],
        "eval_datasets": [spec("validation")] if settings.num_validation else [],
        "test_datasets": [spec("test")],
    }


def _run_recipe(
    settings: QuickstartSettings,
    seed: int,
    output_dir: Path,
    cache_dir: Path,
    task: str,
    model: dict[str, Any],
    task_options: dict[str, Any],
    epochs: int,
    batch_size: int,
    lr: float,
    progress: bool,
    description: str,
) -> dict[str, Any]:
    """A ``TrainingArguments`` mapping for one of the two runs."""
    return {
        "description": description,
        "run_name": f"quickstart-{task}",
        "task": task,
        "task_options": task_options,
        "model": model,
        **_dataset_specs(settings, seed),
        "output_dir": str(output_dir),
        "dataset_cache_dir": str(cache_dir),
        "overwrite_output_dir": True,
        "max_epoch": epochs,
        "batch_size_train": batch_size,
        "batch_size_eval": 64,
        "num_workers": 0,
        "seed": seed,
        "lr_sched": "linear_warmup_cosine_lr",
        "init_lr": lr,
        "min_lr": settings.min_lr,
        "warmup_lr": lr / 100,
        "warmup_steps": settings.warmup_steps,
        "weight_decay": settings.weight_decay,
        "max_grad_norm": 1.0,
        "eval_strategy": "epoch" if settings.num_validation else "no",
        "eval_every": max(1, epochs // 4),  # about four validation points per run (curves, best model)
        "save_strategy": "no",
        "load_best_at_end": True,
        "log_every": 10,
        "progress": progress,
    }


# ================================================================================================ analysis
def mentioned_objects(text: str) -> set[tuple[str, str]]:
    """The ``(colour, shape)`` pairs a sentence names as ``"<colour> <shape>"`` (``"a red circle and a
    blue square"`` -> ``{("red", "circle"), ("blue", "square")}``), in the synthetic vocabulary."""
    from vl_hub.data.synthetic import COLOURS, SHAPES

    pattern = re.compile(rf"\b({'|'.join(COLOURS)})\s+({'|'.join(SHAPES)})\b")
    return {(m.group(1), m.group(2)) for m in pattern.finditer(text.lower())}


@dataclass(frozen=True)
class CaptionCheck:
    """How many generated captions name the image's objects right.

    Attributes:
        correct: captions naming every object of the image with its colour and shape, and no other object.
        total: captions checked (one per held-out image).
        objects_named: objects (over all images) named with the right colour and shape.
        objects_total: objects in all images.
        per_image: ``correct`` flag of each caption, in order.
    """

    correct: int
    total: int
    objects_named: int
    objects_total: int
    per_image: tuple[bool, ...] = ()

    @property
    def accuracy(self) -> float:
        """``correct / total`` (0 when nothing was checked)."""
        return self.correct / self.total if self.total else 0.0

    @property
    def object_recall(self) -> float:
        """``objects_named / objects_total``."""
        return self.objects_named / self.objects_total if self.objects_total else 0.0


def caption_correctness(captions: Sequence[str], references: Sequence[Sequence[str]]) -> CaptionCheck:
    """Checks each generated caption against its image's objects, read from its reference captions
    (every reference of the synthetic data names every object as ``"<colour> <shape>"``).

    Args:
        captions: one generated caption per image.
        references: the reference captions of each image.

    Raises:
        ValueError: the lengths differ, or an image's references name no object (not synthetic data).
    """
    if len(captions) != len(references):
        raise ValueError(f"{len(captions)} captions but {len(references)} reference lists; expected one per image")
    flags, named, total = [], 0, 0
    for i, (caption, refs) in enumerate(zip(captions, references, strict=True)):
        truth: set[tuple[str, str]] = set().union(*(mentioned_objects(r) for r in refs)) if refs else set()
        if not truth:
            raise ValueError(
                f"the references of image {i} ({list(refs)!r}) name no '<colour> <shape>' object; "
                "caption_correctness checks vl_hub_shapes captions only"
            )
        predicted = mentioned_objects(caption)
        flags.append(predicted == truth)
        named += len(predicted & truth)
        total += len(truth)
    return CaptionCheck(sum(flags), len(flags), named, total, tuple(flags))


def retrieval_ceiling(captions: Sequence[Sequence[str]]) -> dict[str, float]:
    """Expected recall@1 of a perfect model when identical captions are ties broken at random.

    Two images with the same objects in the same places get identical captions ("a red circle"), so no
    model can tell which image a caption came from. Text -> image: a caption shared by ``k`` images is
    found with probability ``1/k``. Image -> text: the first text is the image's own with probability
    (its captions) / (all captions equal to one of them).

    Returns:
        ``{"txt_r1": image->text ceiling, "img_r1": text->image ceiling}`` in percent (as the metrics).
    """
    normalised = [[" ".join(_WORD.findall(c.lower())) for c in caps] for caps in captions]
    owners: dict[str, int] = {}
    for caps in normalised:
        for text in set(caps):
            owners[text] = owners.get(text, 0) + 1
    counts: dict[str, int] = {}
    for caps in normalised:
        for text in caps:
            counts[text] = counts.get(text, 0) + 1
    t2i = [1.0 / owners[text] for caps in normalised for text in caps]
    i2t = [len(caps) / sum(counts[t] for t in set(caps)) for caps in normalised]
    return {"txt_r1": 100.0 * float(np.mean(i2t)), "img_r1": 100.0 * float(np.mean(t2i))}


# ================================================================================================ result
@dataclass
class QuickstartResult:
    """What :func:`run_quickstart` measured (also written to ``quickstart_results.json``).

    Attributes:
        output_dir: the output folder; ``retrieval_dir`` / ``captioning_dir`` the two model folders.
        retrieval: test metrics of the retrieval head (``txt_r1`` ... in percent, as LAVIS reports them).
        captioning: test metrics of the captioning head (``bleu_4``, ``cider`` ... fractions).
        caption_check: the colour/shape check of the generated test captions.
        examples: ``(generated, reference)`` pairs of the first test images.
        chance_r1: recall@1 of random ranking (percent), ``100 / num_test``; ``ceiling`` the best
            achievable recall@1 given identical captions (:func:`retrieval_ceiling`).
        timings: stage -> ``{"wall_s", "cpu_s"}`` (CPU time of this process, all threads).
        settings / seed: what ran.
    """

    output_dir: Path
    retrieval_dir: Path
    captioning_dir: Path
    retrieval: dict[str, float]
    captioning: dict[str, float]
    caption_check: CaptionCheck
    examples: list[tuple[str, str]]
    chance_r1: float
    ceiling: dict[str, float]
    timings: dict[str, dict[str, float]]
    settings: QuickstartSettings
    seed: int
    load_average: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wall_s(self) -> float:
        """Wall-clock seconds of the whole run."""
        return sum(t["wall_s"] for t in self.timings.values())

    @property
    def cpu_s(self) -> float:
        """CPU seconds of the whole run (this process, all threads)."""
        return sum(t["cpu_s"] for t in self.timings.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        check = self.caption_check
        return {
            "seed": self.seed,
            "settings": asdict(self.settings),
            "retrieval": self.retrieval,
            "captioning": self.captioning,
            "caption_check": {
                "correct": check.correct,
                "total": check.total,
                "accuracy": check.accuracy,
                "objects_named": check.objects_named,
                "objects_total": check.objects_total,
                "object_recall": check.object_recall,
            },
            "chance_r1": self.chance_r1,
            "retrieval_ceiling_r1": self.ceiling,
            "examples": [{"generated": g, "reference": r} for g, r in self.examples],
            "timings": self.timings,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "load_average_start_end": list(self.load_average),
            "torch_threads": self.extra.get("torch_threads"),
        }

    def table(self) -> str:
        """The results as a plain-text table (what ``vl-hub quickstart`` prints)."""
        r, c, check = self.retrieval, self.captioning, self.caption_check
        n = self.settings.num_test

        def pct(key: str) -> str:
            value = r.get(key)
            return "   n/a" if value is None else f"{value:6.1f}"

        beams = "greedy" if self.settings.num_beams == 1 else f"beam search x{self.settings.num_beams}"
        rows = {"image -> text": "txt", "text -> image": "img"}
        lines = [
            f"vl-hub quickstart results (held-out test split: {n} images, {3 * n} captions; seed {self.seed})",
            "",
            "retrieval (BLIP ITC + ITM re-ranking)      R@1     R@5   chance R@1  best possible R@1*",
            *(
                f"  {name:<36}{pct(f'{key}_r1')}  {pct(f'{key}_r5')}    {self.chance_r1:6.2f}      "
                f"{self.ceiling[f'{key}_r1']:6.1f}"
                for name, key in rows.items()
            ),
            "  * identical captions (e.g. two images of 'a red circle') cannot be told apart",
            "",
            f"captioning (BLIP decoder, {beams})",
            (
                f"  BLEU-4 {c.get('bleu_4', math.nan):.3f}   CIDEr {c.get('cider', math.nan):.3f}   "
                f"ROUGE-L {c.get('rouge_l', math.nan):.3f}"
            ),
            (
                f"  captions naming every object's colour and shape correctly: {check.correct}/{check.total} "
                f"({100 * check.accuracy:.1f}%); objects named right: {check.objects_named}/{check.objects_total} "
                f"({100 * check.object_recall:.1f}%)"
            ),
            "",
            "examples (generated | reference)",
            *(
                f"  [{'ok ' if ok else 'bad'}] {generated:<48} | {reference}"
                for (generated, reference), ok in zip(self.examples, check.per_image, strict=False)
            ),
            "",
            "time (wall s / CPU s of this process)",
            *(f"  {stage:<22} {t['wall_s']:7.1f} / {t['cpu_s']:7.1f}" for stage, t in self.timings.items()),
            (
                f"  {'total':<22} {self.wall_s:7.1f} / {self.cpu_s:7.1f}   (torch threads "
                f"{self.extra.get('torch_threads')}, load average {self.load_average[0]:.1f} -> "
                f"{self.load_average[1]:.1f} on {os.cpu_count()} CPUs)"
            ),
            "",
            f"models: {self.retrieval_dir} (retrieval)  {self.captioning_dir} (captioning)",
            (
                "        each with README.md (model card) and training_curves.png; try: vl-hub demo --model "
                f"{self.output_dir}"
            ),
        ]
        return "\n".join(lines)


# ================================================================================================ run
class _Clock:
    """Wall and process CPU seconds per named stage."""

    def __init__(self) -> None:
        self.timings: dict[str, dict[str, float]] = {}

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn()
        finally:
            self.timings[name] = {
                "wall_s": round(time.perf_counter() - wall, 2),
                "cpu_s": round(time.process_time() - cpu, 2),
            }


def _prepare_output(output_dir: Path, overwrite: bool) -> None:
    """Creates ``output_dir``; a non-empty one needs ``overwrite``, which deletes the previous models and results
    but keeps ``dataset_cache`` (the builder reuses it only for the same sizes and seed) and refuses to touch a
    folder holding files the quickstart did not write."""
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"--output {output_dir} is a file; give a folder (it is created if missing)")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{output_dir} is not empty (a previous quickstart?); pass --overwrite to replace it, or choose "
                "another --output folder"
            )
        known = {
            RETRIEVAL_SUBDIR, CAPTIONING_SUBDIR, PROCESSOR_SUBDIR, DATASET_CACHE_SUBDIR, RESULTS_FILENAME,
            DEMO_MARKER_FILENAME,
        }
        foreign = sorted(p.name for p in output_dir.iterdir() if p.name not in known)
        if foreign:
            raise FileExistsError(
                f"--overwrite refuses to delete {output_dir}: it holds files the quickstart did not write "
                f"({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}); choose another --output folder"
            )
        for name in (RETRIEVAL_SUBDIR, CAPTIONING_SUBDIR, PROCESSOR_SUBDIR):
            shutil.rmtree(output_dir / name, ignore_errors=True)
        for name in (RESULTS_FILENAME, DEMO_MARKER_FILENAME):
            (output_dir / name).unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)


def _load_split(settings: QuickstartSettings, seed: int, cache_dir: Path, split: str) -> Any:
    from vl_hub.training.arguments import DatasetArguments
    from vl_hub.training.data import load_one

    spec = DatasetArguments(**_dataset_specs(settings, seed)["test_datasets"][0])
    return load_one(replace(spec, split=split), str(cache_dir))


def _metrics(all_metrics: Mapping[str, float], stage: str, label: str) -> dict[str, float]:
    prefix = f"{stage}/{label}/"
    return {k[len(prefix) :]: float(v) for k, v in all_metrics.items() if k.startswith(prefix)}


def _append_card_section(folder: Path, text: str) -> None:
    card = folder / "README.md"
    body = card.read_text(encoding="utf-8") if card.is_file() else ""
    card.write_text(body.rstrip() + "\n\n" + text.rstrip() + "\n", encoding="utf-8")


def _demo_marker(result: QuickstartResult) -> dict[str, Any]:
    r, check = result.retrieval, result.caption_check
    return {
        "name": "vl-hub quickstart BLIP (synthetic shapes)",
        "untrained": False,
        "description": (
            f"Small BLIP trained on the CPU by `vl-hub quickstart` on synthetic coloured shapes (seed {result.seed}). "
            f"Held-out test: retrieval R@1 {r.get('txt_r1', float('nan')):.1f}% image->text, "
            f"{r.get('img_r1', float('nan')):.1f}% text->image (chance {result.chance_r1:.2f}%); "
            f"{100 * check.accuracy:.0f}% of captions name every object's colour and shape."
        ),
    }


def _card_section(result: QuickstartResult) -> str:
    return "\n".join(
        [
            "## Quickstart results",
            "",
            (
                "Trained by `vl-hub quickstart` on the synthetic `vl_hub_shapes` data (no download); the numbers "
                f"below are on its held-out test split ({result.settings.num_test} images)."
            ),
            "",
            "```",
            result.table(),
            "```",
        ]
    )


def run_quickstart(
    output_dir: str | os.PathLike[str] = QUICKSTART_DIR,
    seed: int = 0,
    fast: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    settings: QuickstartSettings | None = None,
    threads: int | None = DEFAULT_THREADS,
    log: Callable[[str], None] | None = print,
) -> QuickstartResult:
    """Builds the synthetic data, trains, evaluates and saves the quickstart BLIP models (module docstring).

    Args:
        output_dir: where everything goes (created; must be empty unless ``overwrite``).
        seed: seed of the data, the initialisation and the batch order.
        fast: the small configuration (:data:`FAST_SETTINGS`, about a minute) instead of :data:`FULL_SETTINGS`.
        overwrite: replace a previous quickstart in ``output_dir``.
        progress: show the trainer's progress bars.
        settings: explicit settings (win over ``fast``).
        threads: ``torch.set_num_threads`` for the run (``None``: leave torch's setting); restored afterwards.
            One by default: with other processes on a 2-core machine, two OpenMP threads spin-wait and a
            training step got 10-30x slower in our measurements; on an idle machine more threads may help.
        log: called with one line per stage (``None``: silent).

    Returns:
        the :class:`QuickstartResult` (its ``table()`` is what the CLI prints).

    Raises:
        FileExistsError: ``output_dir`` holds files and ``overwrite`` is false.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an int >= 1 (or None), got {threads!r}")
    if settings is not None and not isinstance(settings, QuickstartSettings):
        raise TypeError(f"settings must be a QuickstartSettings, got {type(settings).__name__}")
    settings = settings or (FAST_SETTINGS if fast else FULL_SETTINGS)
    with _process_settings(threads, progress):
        return _run(Path(output_dir), seed, overwrite, progress, settings, log or (lambda _line: None))


@contextlib.contextmanager
def _process_settings(threads: int | None, progress: bool) -> Iterator[None]:
    """Sets torch's thread count and (without ``progress``) hides the loading/saving bars of transformers and
    datasets for the run; restores both afterwards."""
    import datasets
    import torch
    from transformers.utils import logging as hf_logging

    before_threads = torch.get_num_threads()
    bars = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    if threads is not None:
        torch.set_num_threads(threads)
    if not progress:
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        torch.set_num_threads(before_threads)
        if bars[0]:
            hf_logging.enable_progress_bar()
        if bars[1]:
            datasets.enable_progress_bars()


def _run(
    output_dir: Path,
    seed: int,
    overwrite: bool,
    progress: bool,
    settings: QuickstartSettings,
    say: Callable[[str], None],
) -> QuickstartResult:
    """The body of :func:`run_quickstart` (arguments checked, process settings in place)."""
    import torch

    output_dir = Path(output_dir).expanduser().absolute()
    _prepare_output(output_dir, overwrite)
    cache_dir = output_dir / DATASET_CACHE_SUBDIR
    retrieval_dir, captioning_dir = output_dir / RETRIEVAL_SUBDIR, output_dir / CAPTIONING_SUBDIR
    clock = _Clock()
    load_start = os.getloadavg()[0]

    import vl_hub  # noqa: F401  (registers the BLIP family with the Auto classes)
    say(
        f"[1/5] synthetic data: {settings.num_train} train / {settings.num_validation} validation / "
        f"{settings.num_test} test images of {settings.image_size} px -> {cache_dir}"
    )
    test_split = clock.stage("data", lambda: (
        _load_split(settings, seed, cache_dir, "train"),
        _load_split(settings, seed, cache_dir, "test"),
    )[1])

    say(f"[2/5] vocabulary + processor -> {output_dir / PROCESSOR_SUBDIR}")
    processor = clock.stage(
        "vocabulary+processor",
        lambda: build_processor(output_dir / PROCESSOR_SUBDIR, settings.image_size, settings.max_caption_tokens + 8),
    )
    config = blip_config(settings, processor.tokenizer)

    captioning_recipe = _run_recipe(
        settings, seed, captioning_dir, cache_dir, "captioning",
        {"family": "blip", "config": config, "processor": str(output_dir / PROCESSOR_SUBDIR)},
        {
            "augment": False, "num_beams": settings.num_beams, "max_len": settings.max_caption_tokens,
            "min_len": 5, "meteor": False, "max_txt_len": settings.max_caption_tokens,
        },
        settings.captioning_epochs, settings.captioning_batch_size, settings.captioning_lr, progress,
        "BLIP image captioning (ViT + MED decoder) trained from scratch by `vl-hub quickstart` on synthetic shapes.",
    )
    say(
        f"[3/5] captioning: BLIP ViT + decoder from scratch, {settings.captioning_epochs} epochs x "
        f"{math.ceil(settings.num_train / settings.captioning_batch_size)} steps -> {captioning_dir}"
    )
    captioning_run = clock.stage("train captioning", lambda: _train(captioning_recipe))

    retrieval_recipe = _run_recipe(
        settings, seed, retrieval_dir, cache_dir, "retrieval",
        {"family": "blip", "config": config, "processor": str(output_dir / PROCESSOR_SUBDIR)},
        {"train_augment": False, "k_test": settings.k_test, "max_txt_len": settings.max_caption_tokens},
        settings.retrieval_epochs, settings.retrieval_batch_size, settings.retrieval_lr, progress,
        "BLIP image-text retrieval (ITC + ITM) trained by `vl-hub quickstart` on synthetic shapes; ViT and text "
        "encoder initialised from the quickstart captioning model (its ViT and its decoder's transformer, as BLIP "
        "pre-training shares them).",
    )
    say(
        f"[4/5] retrieval: BLIP ITC+ITM from the captioning run's ViT and decoder, {settings.retrieval_epochs} "
        f"epochs x {math.ceil(settings.num_train / settings.retrieval_batch_size)} steps -> {retrieval_dir}"
    )
    retrieval_run = clock.stage("train retrieval", lambda: _train(retrieval_recipe, init_from=captioning_dir))

    say("[5/5] held-out captions: colour/shape check and examples")
    generated = clock.stage(
        "caption check", lambda: _generate_test_captions(captioning_dir, test_split, settings)
    )
    captions = [g["caption"] for g in generated]
    references = [g["references"] for g in generated]
    check = caption_correctness(captions, references)
    ceiling = retrieval_ceiling([list(c) for c in test_split["captions"]])
    result = QuickstartResult(
        output_dir=output_dir,
        retrieval_dir=retrieval_dir,
        captioning_dir=captioning_dir,
        retrieval=_metrics(retrieval_run.metrics, "test", "shapes_test"),
        captioning=_metrics(captioning_run.metrics, "test", "shapes_test"),
        caption_check=check,
        examples=[(captions[i], references[i][0]) for i in range(min(5, len(captions)))],
        chance_r1=100.0 / settings.num_test,
        ceiling=ceiling,
        timings=clock.timings,
        settings=settings,
        seed=seed,
        load_average=(load_start, os.getloadavg()[0]),
        extra={"torch_threads": torch.get_num_threads()},
    )
    (output_dir / RESULTS_FILENAME).write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    (output_dir / DEMO_MARKER_FILENAME).write_text(json.dumps(_demo_marker(result), indent=2), encoding="utf-8")
    section = _card_section(result)
    for folder in (retrieval_dir, captioning_dir):
        _append_card_section(folder, section)
    return result


def _train(recipe: Mapping[str, Any], init_from: Path | None = None) -> Any:
    """Runs one training run; returns its ``TrainResult``.

    With ``init_from`` (the saved captioning model) the retrieval head starts from its ViT, and its text
    encoder from the decoder's transformer: the two have the same modules (self-attention, cross-attention
    to the image, FFN) and BLIP pre-training shares all but the self-attention between them, so the encoder
    starts with word embeddings and a cross-attention trained on these images. ITC projections and the ITM
    head are new.
    """
    from vl_hub.training import Trainer, TrainingArguments

    trainer = Trainer.from_arguments(TrainingArguments.from_recipe(recipe))
    if init_from is not None:
        from transformers import AutoModelForImageTextToText

        source = AutoModelForImageTextToText.from_pretrained(str(init_from))
        target = trainer.model
        target.visual_encoder.load_state_dict(source.visual_encoder.state_dict())
        target.text_encoder.load_state_dict(source.text_decoder.bert.state_dict())
        target.copy_params()  # the momentum copies start equal to the online encoders
        del source
    return trainer.train()


def _generate_test_captions(captioning_dir: Path, test_split: Any, settings: QuickstartSettings) -> list[dict[str, Any]]:
    """Captions of every test image by the saved captioning model, loaded back through the Auto classes."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vl_hub.tasks.captioning import CaptioningTask

    model = AutoModelForImageTextToText.from_pretrained(str(captioning_dir)).eval()
    processor = AutoProcessor.from_pretrained(str(captioning_dir))
    task = CaptioningTask(
        model, processor, augment=False, num_beams=settings.num_beams, max_len=settings.max_caption_tokens,
        min_len=5, meteor=False,
    )
    with torch.no_grad():
        return task.predict(model, test_split, batch_size=64, progress=False)
