"""Visual question answering (LAVIS ``VQATask`` / ``AOKVQATask`` with BLIP's ``BlipVQA``).

Training (LAVIS ``VQADataset.collater`` + ``BlipVQA.forward``): each question's *distinct* answers are decoded,
each weighted by ``count / len(answers)`` (10 annotators who say "2" x7 and "3" x3 give weights 0.7 and 0.3);
``n_answers`` tells the head how many answers belong to each question, and the loss is
``sum(weight * answer_loss) / batch``. Questions go through LAVIS's ``pre_question`` and are truncated to
``max_txt_len`` tokens.

Evaluation (LAVIS ``BlipVQA.predict_answers``), ``inference_method``:

* ``"generate"``: beam search (``num_beams=3, max_len=10, min_len=1``; the lengths count ``[DEC]``);
* ``"rank"``: the answer list is ranked (first-token probability keeps ``num_ans_candidates``, then the lowest
  LM loss wins). The list (option ``answer_list``) is a list of strings, a file (JSON list, JSON
  ``{answer: index}`` such as ``ans2label.json``, or one answer per line), or
  ``{"dataset": name, "split": "train", "size": 3128, ...}``: the ``size`` most frequent answers of that
  training split (:func:`most_frequent_answers`), which is how VQAv2's 3,128-answer list was built.

Metrics: ``vqa_accuracy`` (:func:`vl_hub.metrics.vqa_score`, official normalisation, percent) over the questions
that have answers; where rows carry multiple-choice ``choices`` (A-OKVQA), every choice is scored by the decoder's
LM loss given the question (batched over questions and choices) and ``mc_accuracy`` (percent) compares the best
one with ``correct_choice``.

Head contract. *Answer decoders* (BLIP; ALBEF uses the same names): ``encode_question(pixel_values, input_ids,
attention_mask) -> (question_states, image_embeds)``; ``forward(pixel_values, input_ids, attention_mask,
answer_input_ids, answer_attention_mask, answer_weights, n_answers) -> .loss`` (with ``question_states=`` instead of
pixels + question it also returns ``.answer_loss (A,)``, used to score candidates); ``generate_answers(
question_states=..., num_beams, max_length, min_length) -> ids``; ``rank_answers(question_states=...,
attention_mask, answer_ids, answer_attention_mask, num_candidates) -> .pred_index``. *Answer classifiers*
(ALPRO's video QA head): ``classify_answers(pixel_values, input_ids, attention_mask) -> logits (B, N)`` over the
answers ``config.id2label`` and ``forward(pixel_values, input_ids, attention_mask, labels=(B,)) -> .loss``
(answers outside the vocabulary get label -100). A head with ``classify_answers`` is used as a classifier.
"""

from __future__ import annotations

import abc
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from vl_hub.tasks import register_task
from vl_hub.tasks._task_utils import (
    ROW_INDEX,
    batch_pixels,
    capped_length,
    check_choice,
    check_int,
    check_mapping,
    distillation_alpha,
    evaluation_mode,
    evaluation_records,
    main_process_metrics,
    media_column,
    require_processor,
    resolve_options,
)
from vl_hub.tasks.base import Task

__all__ = [
    "INFERENCE_METHODS",
    "QuestionAnsweringTask",
    "VQATask",
    "answer_weights",
    "candidate_scores",
    "load_answer_list",
    "most_frequent_answers",
]

INFERENCE_METHODS = ("generate", "rank")
#: size of VQAv2's answer list in LAVIS / BLIP (``answer_list.json``)
VQAV2_ANSWER_LIST_SIZE = 3128


# ------------------------------------------------------------------------------------------------ answers


def answer_weights(answers: Sequence[str]) -> tuple[list[str], list[float]]:
    """LAVIS's VQA answer weighting: the distinct answers (first-seen order) and ``count / len(answers)`` each.

    >>> answer_weights(["2", "2", "3", "2"])
    (['2', '3'], [0.75, 0.25])
    """
    if not answers:
        raise ValueError("answer_weights needs at least one answer; got an empty list (an unlabelled question)")
    counts = Counter(answers)
    total = len(answers)
    return list(counts), [count / total for count in counts.values()]


def most_frequent_answers(answer_lists: Iterable[Sequence[str]], size: int) -> list[str]:
    """The ``size`` answers given most often (every annotator answer counts; ties keep first-seen order).

    Args:
        answer_lists: each question's answers (the ``answers`` column of a training split).
        size: answers to keep (VQAv2: 3,128).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"answer list size must be an int >= 1, got {size!r}")
    counts: Counter[str] = Counter()
    for answers in answer_lists:
        counts.update(answers)
    if not counts:
        raise ValueError("no answers to build an answer list from (is the split unlabelled?)")
    return [answer for answer, _ in counts.most_common(size)]


_ANSWER_SPEC_KEYS = ("dataset", "split", "size", "data_dir", "config_name", "cache_dir")


def load_answer_list(spec: Any, default_size: int = VQAV2_ANSWER_LIST_SIZE) -> list[str]:
    """The candidate answers of ``inference_method="rank"``.

    Args:
        spec: a list of strings; a path to a JSON list, a JSON ``{answer: index}`` mapping (ordered by index) or a
            text file with one answer per line; or a mapping ``{"dataset": name, "split": "train", "size": N,
            "data_dir": ..., "config_name": ..., "cache_dir": ...}`` whose ``size`` most frequent training answers
            form the list.
        default_size: ``size`` when a dataset mapping does not give one.
    """
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(_ANSWER_SPEC_KEYS))
        if unknown or "dataset" not in spec:
            raise ValueError(
                f"answer_list mapping {dict(spec)!r} needs 'dataset' and may hold {', '.join(_ANSWER_SPEC_KEYS)}; "
                f"unknown keys: {unknown}"
            )
        from vl_hub.data.load import load_dataset

        kwargs = {k: spec[k] for k in ("data_dir", "config_name", "cache_dir") if spec.get(k) is not None}
        data = load_dataset(spec["dataset"], split=spec.get("split", "train"), **kwargs)
        if "answers" not in (data.column_names or []):
            raise ValueError(f"answer_list dataset {spec['dataset']!r} has no 'answers' column: {data.column_names}")
        return most_frequent_answers(data["answers"], int(spec.get("size", default_size)))
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"answer_list file {path} does not exist; pass a list of answers, a JSON/text file, or "
                "{'dataset': name, 'split': 'train'} to use the most frequent training answers"
            )
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, Mapping):
                answers = [a for a, _ in sorted(data.items(), key=lambda item: item[1])]
            else:
                answers = data
        else:
            answers = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return _check_answer_strings(answers, str(path))
    if isinstance(spec, (list, tuple)):
        return _check_answer_strings(list(spec), "answer_list")
    raise TypeError(
        f"answer_list must be a list of strings, a file path or a dataset mapping, got {type(spec).__name__}"
    )


def _check_answer_strings(answers: Any, source: str) -> list[str]:
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise ValueError(f"{source} must hold a non-empty list of answer strings")
    return answers


# ------------------------------------------------------------------------------------------------ scoring


def candidate_scores(
    model: torch.nn.Module,
    question_states: torch.Tensor,
    question_mask: torch.Tensor | None,
    candidate_ids: torch.Tensor,
    candidate_mask: torch.Tensor,
    n_candidates: torch.Tensor,
    max_rows: int = 256,
) -> torch.Tensor:
    """Scores per-question candidate answers with the answer decoder: ``-`` the label-smoothed LM loss summed over
    each candidate's tokens (LAVIS's ranking score), batched over questions and candidates.

    Args:
        model: an answer-decoder head (``forward(question_states=..., answer_input_ids=..., n_answers=...)``
            returning ``answer_loss``).
        question_states: ``(B, Lq, H)`` from ``model.encode_question``; question_mask: ``(B, Lq)``.
        candidate_ids, candidate_mask: ``(A, La)`` every question's candidates, question-major.
        n_candidates: ``(B,)`` candidates per question (may be 0), summing to ``A``.
        max_rows: candidates decoded per call (memory: ``max_rows * La * vocab`` logits).

    Returns:
        ``(A,)`` scores (higher is better).
    """
    counts = [int(c) for c in n_candidates.tolist()]  # one host sync per batch
    if sum(counts) != candidate_ids.shape[0]:
        raise ValueError(f"n_candidates {counts} must sum to the {candidate_ids.shape[0]} candidate rows")
    n_candidates = n_candidates.to(question_states.device)
    scores = []
    q_start = a_start = 0
    while q_start < len(counts):
        # as many whole questions as fit in max_rows (at least one)
        q_end, rows = q_start + 1, counts[q_start]
        while q_end < len(counts) and rows + counts[q_end] <= max_rows:
            rows += counts[q_end]
            q_end += 1
        if rows:
            mask = None if question_mask is None else question_mask[q_start:q_end]
            out = model(
                question_states=question_states[q_start:q_end],
                # heads read the padding mask of given question states from one name or the other
                attention_mask=mask,
                question_attention_mask=mask,
                answer_input_ids=candidate_ids[a_start : a_start + rows],
                answer_attention_mask=candidate_mask[a_start : a_start + rows],
                n_answers=n_candidates[q_start:q_end],
            )
            scores.append(-out.answer_loss.float())
        q_start, a_start = q_end, a_start + rows
    if not scores:
        return question_states.new_zeros(0, dtype=torch.float32)
    return torch.cat(scores)


def best_per_question(scores: torch.Tensor, n_candidates: torch.Tensor) -> torch.Tensor:
    """``(B,)`` index (within its own candidates) of each question's best candidate; -1 where it has none.

    Args:
        scores: ``(A,)`` candidate scores, question-major; n_candidates: ``(B,)``.
    """
    counts = n_candidates.to(scores.device)
    width = int(counts.max()) if counts.numel() else 0
    if width == 0:
        return torch.full((counts.numel(),), -1, dtype=torch.long, device=scores.device)
    table = padded_scores(scores, counts, width)
    best = table.argmax(dim=1)
    return torch.where(counts > 0, best, torch.full_like(best, -1))


def padded_scores(scores: torch.Tensor, n_candidates: torch.Tensor, width: int) -> torch.Tensor:
    """``(A,)`` question-major scores -> ``(B, width)`` with ``-inf`` after each question's candidates."""
    counts = n_candidates.to(scores.device)
    starts = torch.cumsum(counts, 0) - counts
    columns = torch.arange(width, device=scores.device)
    valid = columns[None, :] < counts[:, None]
    flat = (starts[:, None] + columns[None, :]).clamp(max=max(scores.numel() - 1, 0))
    table = scores[flat] if scores.numel() else scores.new_zeros(flat.shape)
    return table.masked_fill(~valid, float("-inf"))


# ------------------------------------------------------------------------------------------------ tasks


class QuestionAnsweringTask(Task):
    """Shared machinery of :class:`VQATask` and :class:`~vl_hub.tasks.video_qa.VideoQATask` (not registered)."""

    #: extra options of a subclass with their defaults
    extra_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        require_processor(self.name, processor)
        config = model.config
        opts = resolve_options(
            self.name,
            options,
            {
                "inference_method": None,
                "answer_list": None,
                "answer_list_size": VQAV2_ANSWER_LIST_SIZE,
                "num_ans_candidates": getattr(config, "num_answer_candidates", 128),
                "num_beams": 3,
                "max_len": 10,
                "min_len": 1,
                "max_txt_len": getattr(config, "max_txt_len", 35),
                "max_answer_len": 16,
                "candidate_batch_size": 256,
                "augment": True,
                "generate_kwargs": {},
                **self.extra_options,
            },
        )
        self.opts = opts
        self.max_txt_len = capped_length(check_int(self.name, "max_txt_len", opts["max_txt_len"], 2), model)
        self.max_answer_len = capped_length(check_int(self.name, "max_answer_len", opts["max_answer_len"], 2), model)
        self.num_beams = check_int(self.name, "num_beams", opts["num_beams"], 1)
        self.max_len = check_int(self.name, "max_len", opts["max_len"], 2)
        self.min_len = check_int(self.name, "min_len", opts["min_len"], 0)
        if self.min_len > self.max_len:
            raise ValueError(f"task {self.name!r}: min_len={self.min_len} must be <= max_len={self.max_len}")
        self.num_ans_candidates = check_int(self.name, "num_ans_candidates", opts["num_ans_candidates"], 1)
        self.candidate_batch_size = check_int(self.name, "candidate_batch_size", opts["candidate_batch_size"], 1)
        self.augment = bool(opts["augment"])
        self.generate_kwargs = check_mapping(self.name, "generate_kwargs", opts["generate_kwargs"])
        #: answer classifier heads (ALPRO) predict over ``config.id2label`` instead of decoding
        self.classifier = callable(getattr(model, "classify_answers", None))
        if self.classifier:
            if opts["answer_list"] is not None or opts["inference_method"] not in (None, "classify"):
                raise ValueError(
                    f"task {self.name!r}: {type(model).__name__} classifies over its own answer vocabulary "
                    "(config.id2label); drop the answer_list / inference_method options"
                )
            id2label = getattr(config, "id2label", None) or {}
            if not id2label:
                raise ValueError(f"{type(model).__name__} has no answer vocabulary: set config.id2label")
            self.class_answers = [str(id2label[i]) for i in sorted(id2label)]
            self.answer_to_label = {answer: i for i, answer in enumerate(self.class_answers)}
            self.inference_method = "classify"
            self.answer_list = self.class_answers
        else:
            self.answer_list = (
                None if opts["answer_list"] is None else load_answer_list(opts["answer_list"], opts["answer_list_size"])
            )
            method = opts["inference_method"] or ("rank" if self.answer_list is not None else "generate")
            self.inference_method = check_choice(self.name, "inference_method", method, INFERENCE_METHODS)
            if self.inference_method == "rank" and self.answer_list is None:
                raise ValueError(
                    f"task {self.name!r}: inference_method='rank' needs option answer_list (a list of answers, a "
                    "file, or {'dataset': name, 'split': 'train', 'size': 3128} for the most frequent training "
                    "answers); or use inference_method='generate'"
                )
        self._answer_tokens: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------------------------------------ text
    def _questions(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        return self.processor(
            text=[row["question"] for row in rows], text_mode="question", max_length=self.max_txt_len,
            return_tensors="pt",
        )

    def _answers(self, answers: list[str]) -> Any:
        return self.processor(text=answers, max_length=self.max_answer_len, return_tensors="pt")

    def _pixels(self, rows: Sequence[Mapping[str, Any]], train: bool) -> torch.Tensor:
        column = media_column(rows, self.name)
        num_frames = self.opts.get("num_frames", 8)
        sampling = self.opts.get("train_frame_sampling" if train else "frame_sampling", "uniform")
        return batch_pixels(self.processor, rows, column, train=train and self.augment, num_frames=num_frames,
                            sampling=sampling)

    # ------------------------------------------------------------------------------------------------ training
    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``pixel_values``, question ``input_ids``/``attention_mask`` ``(B, Lq)`` and either
        ``answer_input_ids``/``answer_attention_mask`` ``(A, La)``, ``answer_weights (A,)``, ``n_answers (B,)``
        (answer decoders) or ``labels (B,)`` (answer classifiers: the most frequent answer, -100 outside the
        vocabulary)."""
        for row in rows:
            if not row["answers"]:
                raise ValueError(
                    f"question {row.get('question_id')!r} has no answers; training needs labelled questions (the "
                    "test split of most QA datasets is unlabelled)"
                )
        questions = self._questions(rows)
        batch = {
            "pixel_values": self._pixels(rows, train=True),
            "input_ids": questions["input_ids"],
            "attention_mask": questions["attention_mask"],
        }
        if self.classifier:
            targets = [Counter(row["answers"]).most_common(1)[0][0] for row in rows]
            batch["labels"] = torch.tensor([self.answer_to_label.get(a, -100) for a in targets], dtype=torch.long)
            return batch
        flat_answers: list[str] = []
        weights: list[float] = []
        counts: list[int] = []
        for row in rows:
            distinct, row_weights = answer_weights(row["answers"])
            flat_answers += distinct
            weights += row_weights
            counts.append(len(distinct))
        answers = self._answers(flat_answers)
        batch.update(
            answer_input_ids=answers["input_ids"],
            answer_attention_mask=answers["attention_mask"],
            answer_weights=torch.tensor(weights, dtype=torch.float32),
            n_answers=torch.tensor(counts, dtype=torch.long),
        )
        return batch

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": ...}``: the weighted answer LM loss (decoders; with LAVIS's first-epoch ``alpha`` ramp for heads
        that distil from momentum copies) or the cross-entropy (classifiers)."""
        alpha = {} if self.classifier else distillation_alpha(model, getattr(self, "training_progress", None))
        return {"loss": model(**batch, **alpha).loss}

    # ------------------------------------------------------------------------------------------------ evaluation
    def collate_eval(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Rows -> ``pixel_values``, questions, the rows' multiple-choice options tokenized question-major
        (``choice_input_ids``/``choice_attention_mask`` ``(C, L)``, ``n_choices (B,)``) and the ground truth."""
        questions = self._questions(rows)
        choices = [list(row.get("choices") or []) for row in rows]
        batch: dict[str, Any] = {
            "pixel_values": self._pixels(rows, train=False),
            "input_ids": questions["input_ids"],
            "attention_mask": questions["attention_mask"],
            "n_choices": torch.tensor([len(c) for c in choices], dtype=torch.long),
            "row_index": [int(row.get(ROW_INDEX, -1)) for row in rows],
            "question_id": [str(row.get("question_id", "")) for row in rows],
            "answers": [list(row["answers"]) for row in rows],
            "correct_choice": [int(row.get("correct_choice", -1)) for row in rows],
        }
        flat = [c for row_choices in choices for c in row_choices]
        if flat and not self.classifier:
            tokens = self._answers(flat)
            batch["choice_input_ids"], batch["choice_attention_mask"] = tokens["input_ids"], tokens["attention_mask"]
        return batch

    def _answer_list_tokens(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._answer_tokens:
            tokens = self.processor.tokenizer(
                self.answer_list, padding="longest", truncation=True, max_length=self.max_answer_len,
                return_tensors="pt",
            )
            self._answer_tokens[device] = (tokens["input_ids"].to(device), tokens["attention_mask"].to(device))
        return self._answer_tokens[device]

    def answer_batch(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> tuple[list[str], list[int]]:
        """Predicted answers of a collated evaluation batch and, for rows with choices, the chosen index (else -1)."""
        pixel_values, input_ids, mask = batch["pixel_values"], batch["input_ids"], batch["attention_mask"]
        n_rows = input_ids.shape[0]
        if self.classifier:
            logits = model.classify_answers(pixel_values=pixel_values, input_ids=input_ids, attention_mask=mask)
            return [self.class_answers[i] for i in logits.argmax(dim=-1).tolist()], [-1] * n_rows
        states, _ = model.encode_question(pixel_values=pixel_values, input_ids=input_ids, attention_mask=mask)
        if self.inference_method == "generate":
            ids = model.generate_answers(
                question_states=states, attention_mask=mask, num_beams=self.num_beams, max_length=self.max_len,
                min_length=self.min_len, **self.generate_kwargs,
            )
            answers = self.processor.batch_decode(getattr(ids, "sequences", ids), skip_special_tokens=True)
        else:
            answer_ids, answer_mask = self._answer_list_tokens(states.device)
            ranked = model.rank_answers(
                question_states=states, attention_mask=mask, answer_ids=answer_ids, answer_attention_mask=answer_mask,
                num_candidates=self.num_ans_candidates,
            )
            answers = [self.answer_list[i] for i in ranked.pred_index.tolist()]
        chosen = [-1] * n_rows
        if "choice_input_ids" in batch:
            scores = candidate_scores(
                model, states, mask, batch["choice_input_ids"], batch["choice_attention_mask"], batch["n_choices"],
                self.candidate_batch_size,
            )
            chosen = best_per_question(scores, batch["n_choices"]).tolist()
        return answers, chosen

    def predict(
        self,
        model: torch.nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Every row's prediction, in row order: ``{"question_id", "answer", "choice" (index or -1), "answers",
        "correct_choice"}`` (a results file for a leaderboard needs only the first two)."""
        if hasattr(dataset, "features"):
            self.check_dataset(dataset)

        def run(batch: dict[str, Any]) -> list[tuple[Any, ...]]:
            answers, chosen = self.answer_batch(model, batch)
            return list(
                zip(batch["row_index"], batch["question_id"], answers, chosen, batch["answers"],
                    batch["correct_choice"], strict=True)
            )

        with evaluation_mode(model):
            records = evaluation_records(
                dataset, self.collate_eval, run, model, accelerator, batch_size, progress, desc=self.name
            )
        keys = ("question_id", "answer", "choice", "answers", "correct_choice")
        return [dict(zip(keys, record[1:], strict=True)) for record in records]

    @abc.abstractmethod
    def compute_metrics(self, predictions: list[dict[str, Any]]) -> dict[str, float]:
        """Metrics of :meth:`predict`'s output (see the subclasses)."""

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """Answers every question (sharded across processes) and returns the task's metrics."""
        predictions = self.predict(model, dataset, accelerator, batch_size, progress)
        return main_process_metrics(accelerator, lambda: self.compute_metrics(predictions))


def _no_ground_truth(task: str) -> ValueError:
    return ValueError(
        f"task {task!r}: no question of this split has ground-truth answers (an unlabelled test split?); use "
        "task.predict(model, dataset) to write predictions for the evaluation server"
    )


@register_task
class VQATask(QuestionAnsweringTask):
    """Visual question answering (VQAv2, OK-VQA, A-OKVQA, GQA, ...).

    Options (``task_options``):
        inference_method: ``"generate"`` or ``"rank"`` (default: ``"rank"`` when ``answer_list`` is given).
        answer_list: candidates of ``"rank"`` (see :func:`load_answer_list`); answer_list_size: how many of the
            most frequent training answers a dataset mapping keeps (3,128).
        num_ans_candidates: answers kept by first-token probability when ranking (default
            ``config.num_answer_candidates``, 128 in LAVIS).
        num_beams, max_len, min_len: generation (LAVIS 3, 10, 1; lengths count ``[DEC]``).
        max_txt_len: question tokens (default ``config.max_txt_len``); max_answer_len: answer / choice tokens.
        candidate_batch_size: candidate answers decoded per call when scoring multiple-choice options.
        augment: training image augmentation.
        generate_kwargs: extra keyword arguments of ``generate_answers``.
    """

    name: ClassVar[str] = "vqa"
    schemas: ClassVar[tuple[str, ...]] = ("vqa",)
    families: ClassVar[dict[str, str]] = {"albef": "AlbefForQuestionAnswering", "blip": "BlipForQuestionAnswering"}
    primary_metric: ClassVar[str] = "vqa_accuracy"

    def compute_metrics(self, predictions: list[dict[str, Any]]) -> dict[str, float]:
        """``vqa_accuracy`` over questions with answers; ``mc_accuracy`` over those with choices and a known
        ``correct_choice`` (both percent)."""
        from vl_hub.metrics import vqa_score

        out: dict[str, float] = {}
        labelled = [p for p in predictions if p["answers"]]
        if labelled:
            out.update(vqa_score([p["answer"] for p in labelled], [p["answers"] for p in labelled]))
        multiple_choice = [p for p in predictions if p["correct_choice"] >= 0 and p["choice"] >= 0]
        if multiple_choice:
            correct = sum(p["choice"] == p["correct_choice"] for p in multiple_choice)
            out["mc_accuracy"] = 100.0 * correct / len(multiple_choice)
        if not out:
            raise _no_ground_truth(self.name)
        return out
