"""Visual dialogue (VisDial) and video dialogue (AVSD) with BLIP's question-answering head.

Both tasks put the whole dialogue into the head's question encoder, which attends the image (or the video frames'
tokens, concatenated). The text is built by :func:`dialogue_context`::

    "{caption}. q: {q_1} a: {a_1} q: {q_2} a: {a_2} ... q: {question}"

(a caption ending in ``.``, ``?`` or ``!`` gets no extra full stop; an empty caption is left out). When the tokens
exceed ``max_txt_len`` (default: the text encoder's position limit, so truncation never overruns the position
embeddings) the *oldest* turns are dropped first, then the caption is shortened; the current question is kept
(only a question longer than the whole budget is cut at its end). :func:`dialogue_context_ids` does this on token
ids, tokenising every piece of a batch in one tokenizer call.

* :class:`VisualDialogTask` (``visual_dialog``): training decodes the ground-truth answer (LM loss); evaluation
  ranks the 100 options of every round by the answer decoder's LM loss given image + dialogue (batched over rounds
  and options, :func:`vl_hub.tasks.vqa.candidate_scores`) -> MRR, R@1/5/10, mean rank and, where dense relevance
  is annotated, NDCG (:func:`vl_hub.metrics.visdial_metrics`).
* :class:`VideoDialogTask` (``video_dialog``, AVSD): training decodes the answer (LM loss); evaluation generates
  it from frames + dialogue and scores it against the reference with the caption metrics (BLEU-1..4, METEOR,
  ROUGE-L, CIDEr).

Head contract: that of the answer decoders in :mod:`vl_hub.tasks.vqa` (``encode_question``, ``forward`` with
``answer_input_ids``, ``generate_answers``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    split_unavailable,
    text_length_limit,
)
from vl_hub.tasks.base import Task
from vl_hub.tasks.vqa import candidate_scores, padded_scores

__all__ = ["VideoDialogTask", "VisualDialogTask", "dialogue_context", "dialogue_context_ids"]

_DEFAULT_TEXT_LIMIT = 512


def _caption_piece(caption: str) -> str:
    caption = " ".join(caption.split())
    if caption and caption[-1] not in ".?!":
        caption += "."
    return caption


def _turn_piece(turn: Mapping[str, str]) -> str:
    return f"q: {turn['question']} a: {turn['answer']}"


def _question_piece(question: str) -> str:
    return f"q: {question}"


def dialogue_context(caption: str, history: Sequence[Mapping[str, str]], question: str) -> str:
    """The untruncated dialogue text: ``"{caption}. q: {q_1} a: {a_1} ... q: {question}"``.

    Args:
        caption: the image / video caption (may be empty).
        history: earlier rounds, oldest first, each ``{"question": ..., "answer": ...}``.
        question: the current question.
    """
    pieces = [_caption_piece(caption)] + [_turn_piece(t) for t in history] + [_question_piece(question)]
    return " ".join(p for p in pieces if p)


def dialogue_context_ids(
    tokenizer: Any,
    captions: Sequence[str],
    histories: Sequence[Sequence[Mapping[str, str]]],
    questions: Sequence[str],
    max_length: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of :func:`dialogue_context` for a batch, truncated to ``max_length`` tokens.

    ``[CLS]`` + caption + the most recent turns that fit + question + ``[SEP]``: the oldest turns go first, then
    the caption's end; the question is kept whole unless it alone exceeds the budget. Tokenising the pieces apart
    gives the same ids as tokenising the joined text (WordPiece splits on whitespace first).

    Args:
        tokenizer: a BERT tokenizer (``[CLS]``/``[SEP]``/``[PAD]``).
        captions, histories, questions: one entry per row.
        max_length: tokens per row including ``[CLS]`` and ``[SEP]`` (>= 3).

    Returns:
        ``input_ids``, ``attention_mask``: ``(B, L)`` with ``L`` the longest row (right padding).
    """
    if not len(captions) == len(histories) == len(questions):
        raise ValueError(
            f"got {len(captions)} captions, {len(histories)} histories and {len(questions)} questions; pass one each per row"
        )
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 ([CLS], a token, [SEP]), got {max_length}")
    pieces: list[str] = []
    layout: list[tuple[int, int]] = []  # per row: (first piece, number of turns)
    for caption, history, question in zip(captions, histories, questions, strict=True):
        layout.append((len(pieces), len(history)))
        pieces.append(_caption_piece(caption))
        pieces.extend(_turn_piece(turn) for turn in history)
        pieces.append(_question_piece(question))
    encoded = tokenizer(pieces, add_special_tokens=False)["input_ids"]
    budget = max_length - 2
    rows: list[list[int]] = []
    for start, n_turns in layout:
        cap, turns, question = encoded[start], encoded[start + 1 : start + 1 + n_turns], encoded[start + 1 + n_turns]
        question = question[:budget]
        cap = cap[: budget - len(question)]
        room = budget - len(question) - len(cap)
        kept: list[list[int]] = []
        for turn in reversed(turns):
            if len(turn) > room:
                break
            kept.append(turn)
            room -= len(turn)
        body = cap + [token for turn in reversed(kept) for token in turn] + question
        rows.append([tokenizer.cls_token_id, *body, tokenizer.sep_token_id])
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), int(tokenizer.pad_token_id), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


class _DialogueTask(Task):
    """Shared options, context and training batches of the two dialogue tasks (not registered)."""

    extra_options: ClassVar[dict[str, Any]] = {}
    default_answer_len: ClassVar[int] = 20

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        require_processor(self.name, processor)
        limit = text_length_limit(model) or _DEFAULT_TEXT_LIMIT
        self.opts = resolve_options(
            self.name,
            options,
            {
                "max_txt_len": limit,
                "max_answer_len": self.default_answer_len,
                "augment": True,
                **self.extra_options,
            },
        )
        self.max_txt_len = capped_length(check_int(self.name, "max_txt_len", self.opts["max_txt_len"], 3), model)
        self.max_answer_len = capped_length(
            check_int(self.name, "max_answer_len", self.opts["max_answer_len"], 2), model
        )
        self.augment = bool(self.opts["augment"])

    def _caption(self, row: Mapping[str, Any]) -> str:
        return row.get("caption") or ""

    def _context(self, rows: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        return dialogue_context_ids(
            self.processor.tokenizer,
            [self._caption(row) for row in rows],
            [list(row.get("history") or []) for row in rows],
            [row["question"] for row in rows],
            self.max_txt_len,
        )

    def _pixels(self, rows: Sequence[Mapping[str, Any]], train: bool) -> torch.Tensor:
        column = media_column(rows, self.name)
        sampling = self.opts.get("train_frame_sampling" if train else "frame_sampling", "uniform")
        return batch_pixels(
            self.processor, rows, column, train=train and self.augment, num_frames=self.opts.get("num_frames", 8),
            sampling=sampling,
        )

    def _answer_tokens(self, answers: list[str]) -> Any:
        return self.processor(text=answers, max_length=self.max_answer_len, return_tensors="pt")

    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``pixel_values``, dialogue ``input_ids``/``attention_mask`` ``(B, L)`` and the ground-truth
        ``answer_input_ids``/``answer_attention_mask`` ``(B, La)`` (one answer per round, weight 1)."""
        for row in rows:
            if not row["answer"]:
                raise ValueError(
                    f"dialogue {row.get('dialog_id')!r} round {row.get('round')} has no answer; training needs the "
                    "ground-truth answers (the test split hides them)"
                )
        input_ids, attention_mask = self._context(rows)
        answers = self._answer_tokens([row["answer"] for row in rows])
        return {
            "pixel_values": self._pixels(rows, train=True),
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "answer_input_ids": answers["input_ids"],
            "answer_attention_mask": answers["attention_mask"],
        }

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": answer LM loss}`` (label-smoothed, summed per answer, averaged over the batch)."""
        return {"loss": model(**batch, **distillation_alpha(model, getattr(self, "training_progress", None))).loss}


@register_task
class VisualDialogTask(_DialogueTask):
    """Visual dialogue (VisDial v1.0): rank the answer options of every round.

    Options (``task_options``): ``max_txt_len`` (dialogue tokens; default the text encoder's position limit),
    ``max_answer_len`` (option / answer tokens, 20), ``candidate_batch_size`` (options decoded per call, 256),
    ``augment`` (training image augmentation).
    """

    name: ClassVar[str] = "visual_dialog"
    schemas: ClassVar[tuple[str, ...]] = ("visual_dialog",)
    families: ClassVar[dict[str, str]] = {"blip": "BlipForQuestionAnswering"}
    primary_metric: ClassVar[str] = "mrr"
    extra_options: ClassVar[dict[str, Any]] = {"candidate_batch_size": 256}

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self.candidate_batch_size = check_int(
            self.name, "candidate_batch_size", self.opts["candidate_batch_size"], 1
        )

    def collate_eval(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Rows -> ``pixel_values``, dialogue ids, every round's options tokenized round-major
        (``option_input_ids``/``option_attention_mask`` ``(sum of options, La)``, ``n_options (B,)``) and the
        ground truth (``gt_index``, ``relevance``)."""
        for row in rows:
            if not row["options"]:
                raise ValueError(f"dialogue {row.get('dialog_id')!r} round {row.get('round')} has no answer options")
        input_ids, attention_mask = self._context(rows)
        options = self._answer_tokens([option for row in rows for option in row["options"]])
        return {
            "pixel_values": self._pixels(rows, train=False),
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "option_input_ids": options["input_ids"],
            "option_attention_mask": options["attention_mask"],
            "n_options": torch.tensor([len(row["options"]) for row in rows], dtype=torch.long),
            "row_index": [int(row.get(ROW_INDEX, -1)) for row in rows],
            "gt_index": [int(row["gt_index"]) for row in rows],
            "relevance": [list(row.get("relevance") or []) for row in rows],
        }

    def option_scores(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        """``(B, max options)`` score of every option (minus its LM loss; ``-inf`` past a round's options)."""
        states, _ = model.encode_question(
            pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        scores = candidate_scores(
            model, states, batch["attention_mask"], batch["option_input_ids"], batch["option_attention_mask"],
            batch["n_options"], self.candidate_batch_size,
        )
        return padded_scores(scores, batch["n_options"], int(batch["n_options"].max()))

    def predict(
        self,
        model: torch.nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Every round's option scores, in row order: ``{"scores": [...], "gt_index", "relevance"}``."""
        if hasattr(dataset, "features"):
            self.check_dataset(dataset)

        def run(batch: dict[str, Any]) -> list[tuple[Any, ...]]:
            scores = self.option_scores(model, batch).cpu().tolist()
            return list(zip(batch["row_index"], scores, batch["gt_index"], batch["relevance"], strict=True))

        with evaluation_mode(model):
            records = evaluation_records(
                dataset, self.collate_eval, run, model, accelerator, batch_size, progress, desc=self.name
            )
        return [{"scores": r[1], "gt_index": r[2], "relevance": r[3]} for r in records]

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """``mrr``, ``r1``, ``r5``, ``r10``, ``mean_rank`` over rounds with a known answer and ``ndcg`` over rounds
        with dense relevance (percent except ``mrr`` and ``mean_rank``)."""
        predictions = self.predict(model, dataset, accelerator, batch_size, progress)

        def compute() -> dict[str, float]:
            from vl_hub.metrics import visdial_metrics

            width = max(len(p["scores"]) for p in predictions)
            scores = torch.full((len(predictions), width), float("-inf"))
            relevance = torch.full((len(predictions), width), float("nan"))
            for i, p in enumerate(predictions):
                scores[i, : len(p["scores"])] = torch.tensor(p["scores"])
                if len(p["relevance"]) == len(p["scores"]):
                    relevance[i, : len(p["relevance"])] = torch.tensor(p["relevance"])
            gt_index = torch.tensor([p["gt_index"] for p in predictions], dtype=torch.long)
            dense = relevance if not torch.isnan(relevance).all() else None
            try:
                return visdial_metrics(scores, gt_index, dense)
            except ValueError as err:
                raise ValueError(
                    f"task {self.name!r}: {err} (an unlabelled test split? use task.predict(model, dataset) for the "
                    "option scores)"
                ) from None

        return main_process_metrics(accelerator, compute)


@register_task
class VideoDialogTask(_DialogueTask):
    """Video dialogue (AVSD): generate the answer of every turn.

    Options (``task_options``): ``max_txt_len`` (dialogue tokens; default the text encoder's position limit),
    ``max_answer_len`` (training answer tokens, 40), ``num_beams``/``max_len``/``min_len`` (generation: 3, 20, 5
    as LAVIS's ``dialogue_avsd_ft`` run; lengths count ``[DEC]``), ``num_frames``/``frame_sampling``/``train_frame_sampling``, ``use_summary`` (append
    the video summary to the caption), ``augment``, ``meteor``/``spice``, ``generate_kwargs``.
    """

    name: ClassVar[str] = "video_dialog"
    schemas: ClassVar[tuple[str, ...]] = ("video_dialog",)
    families: ClassVar[dict[str, str]] = {"blip": "BlipForQuestionAnswering"}
    primary_metric: ClassVar[str] = "cider"
    default_answer_len: ClassVar[int] = 40
    extra_options: ClassVar[dict[str, Any]] = {
        "num_frames": 8,
        "frame_sampling": "uniform",
        "train_frame_sampling": "random",
        "num_beams": 3,
        "max_len": 20,
        "min_len": 5,
        "use_summary": False,
        "meteor": True,
        "spice": False,
        "generate_kwargs": {},
    }

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        from vl_hub.processing.video import SAMPLING_MODES

        check_int(self.name, "num_frames", self.opts["num_frames"], 1)
        for key in ("frame_sampling", "train_frame_sampling"):
            check_choice(self.name, key, self.opts[key], SAMPLING_MODES)
        self.num_beams = check_int(self.name, "num_beams", self.opts["num_beams"], 1)
        self.max_len = check_int(self.name, "max_len", self.opts["max_len"], 2)
        self.min_len = check_int(self.name, "min_len", self.opts["min_len"], 0)
        if self.min_len > self.max_len:
            raise ValueError(f"task {self.name!r}: min_len={self.min_len} must be <= max_len={self.max_len}")
        self.use_summary = bool(self.opts["use_summary"])
        self.meteor, self.spice = bool(self.opts["meteor"]), bool(self.opts["spice"])
        self.generate_kwargs = check_mapping(self.name, "generate_kwargs", self.opts["generate_kwargs"])
        #: metric name -> why it was not computed (e.g. METEOR without Java), filled by :meth:`evaluate`
        self.unavailable_metrics: dict[str, str] = {}

    def _caption(self, row: Mapping[str, Any]) -> str:
        caption = row.get("caption") or ""
        if self.use_summary and row.get("summary"):
            caption = f"{_caption_piece(caption)} {row['summary']}".strip()
        return caption

    def collate_eval(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Rows -> ``pixel_values`` ``(B, T, 3, S, S)``, dialogue ids and the reference answers."""
        input_ids, attention_mask = self._context(rows)
        return {
            "pixel_values": self._pixels(rows, train=False),
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "row_index": [int(row.get(ROW_INDEX, -1)) for row in rows],
            "dialog_id": [str(row.get("dialog_id", "")) for row in rows],
            "turn": [int(row.get("round", -1)) for row in rows],
            "reference": [row["answer"] for row in rows],
        }

    def generate_batch(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[str]:
        """Generated answers of a collated batch."""
        states, _ = model.encode_question(
            pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        ids = model.generate_answers(
            question_states=states, attention_mask=batch["attention_mask"], num_beams=self.num_beams,
            max_length=self.max_len, min_length=self.min_len, **self.generate_kwargs,
        )
        return self.processor.batch_decode(getattr(ids, "sequences", ids), skip_special_tokens=True)

    def predict(
        self,
        model: torch.nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> list[dict[str, Any]]:
        """Every turn's generated answer, in row order: ``{"dialog_id", "round", "answer", "reference"}``."""
        if hasattr(dataset, "features"):
            self.check_dataset(dataset)

        def run(batch: dict[str, Any]) -> list[tuple[Any, ...]]:
            answers = self.generate_batch(model, batch)
            return list(
                zip(batch["row_index"], batch["dialog_id"], batch["turn"], answers, batch["reference"], strict=True)
            )

        with evaluation_mode(model):
            records = evaluation_records(
                dataset, self.collate_eval, run, model, accelerator, batch_size, progress, desc=self.name
            )
        return [{"dialog_id": r[1], "round": r[2], "answer": r[3], "reference": r[4]} for r in records]

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """``bleu_1``..``bleu_4``, ``meteor``, ``rouge_l``, ``cider`` of the generated answers against the
        references (turns without a reference are left out)."""
        predictions = self.predict(model, dataset, accelerator, batch_size, progress)

        def compute() -> dict[str, float]:
            from vl_hub.metrics import caption_metrics

            labelled = [p for p in predictions if p["reference"]]
            if not labelled:
                raise ValueError(
                    f"task {self.name!r}: no turn of this split has a reference answer; use task.predict(model, "
                    "dataset) to get the generated answers"
                )
            scores = caption_metrics(
                [p["answer"] for p in labelled], [[p["reference"]] for p in labelled], meteor=self.meteor,
                spice=self.spice,
            )
            return split_unavailable(scores, self.unavailable_metrics)

        return main_process_metrics(accelerator, compute)
