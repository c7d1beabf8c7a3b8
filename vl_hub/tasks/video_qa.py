"""Video question answering (MSRVTT-QA, MSVD-QA): BLIP on sampled frames now, ALPRO's answer classifier later.

The task is :class:`~vl_hub.tasks.vqa.QuestionAnsweringTask` on ``video_qa`` rows: each video is decoded to
``num_frames`` frames (``train_frame_sampling`` in training, ``frame_sampling`` at evaluation) and fed as
``(B, T, 3, S, S)``. The head decides how answers are produced (see the contract in :mod:`vl_hub.tasks.vqa`):

* answer decoders (BLIP ``BlipForQuestionAnswering``): trained with LAVIS's answer weighting; answers generated
  (``inference_method="generate"``, the default) or ranked over ``answer_list`` (``"rank"``; e.g. MSRVTT-QA's
  ``qa_ans2label.json``, a JSON ``{answer: index}``);
* answer classifiers (ALPRO, which exposes ``classify_answers`` and its answer vocabulary as ``config.id2label``):
  trained with cross-entropy on the most frequent answer; the arg-max class is the answer.

Metrics (percent): ``accuracy``, the exact match of the normalised prediction (:func:`vl_hub.metrics.normalize_answer`)
with the normalised most frequent ground-truth answer, as ALPRO/LAVIS report video QA; and ``vqa_accuracy``
(:func:`vl_hub.metrics.vqa_score`) over the questions that have several answers. The VQA formula averages over
leaving each annotator out, which scores 0 for a question with a single answer, so with single-answer datasets
(MSRVTT-QA) ``vqa_accuracy`` is left out and the reason is kept in :attr:`VideoQATask.unavailable_metrics`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, ClassVar

from vl_hub.tasks import register_task
from vl_hub.tasks._task_utils import check_choice, check_int
from vl_hub.tasks.vqa import QuestionAnsweringTask

__all__ = ["VideoQATask"]


@register_task
class VideoQATask(QuestionAnsweringTask):
    """Video question answering.

    Options (``task_options``): those of :class:`~vl_hub.tasks.vqa.VQATask` plus ``num_frames`` (8),
    ``frame_sampling`` (``"uniform"``, evaluation) and ``train_frame_sampling`` (``"random"``), any of
    ``vl_hub.processing.video.SAMPLING_MODES``.
    """

    name: ClassVar[str] = "video_qa"
    schemas: ClassVar[tuple[str, ...]] = ("video_qa",)
    # ALPRO's head is an answer classifier over config.id2label (classify_answers)
    families: ClassVar[dict[str, str]] = {
        "blip": "BlipForQuestionAnswering",
        "alpro": "AlproForVideoQuestionAnswering",
    }
    primary_metric: ClassVar[str] = "accuracy"
    extra_options: ClassVar[dict[str, Any]] = {
        "num_frames": 8,
        "frame_sampling": "uniform",
        "train_frame_sampling": "random",
    }

    def __init__(self, model: Any, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        from vl_hub.processing.video import SAMPLING_MODES

        check_int(self.name, "num_frames", self.opts["num_frames"], 1)
        for key in ("frame_sampling", "train_frame_sampling"):
            check_choice(self.name, key, self.opts[key], SAMPLING_MODES)
        #: metric name -> why it was not computed, filled by :meth:`evaluate`
        self.unavailable_metrics: dict[str, str] = {}

    def compute_metrics(self, predictions: list[dict[str, Any]]) -> dict[str, float]:
        """``accuracy`` (normalised exact match with the most frequent answer) and, over questions with several
        answers, ``vqa_accuracy`` (both percent)."""
        from vl_hub.metrics import normalize_answer, vqa_score

        labelled = [p for p in predictions if p["answers"]]
        if not labelled:
            raise ValueError(
                f"task {self.name!r}: no question of this split has ground-truth answers; use task.predict(model, "
                "dataset) to get the predictions"
            )
        hits = sum(
            normalize_answer(p["answer"]) == normalize_answer(Counter(p["answers"]).most_common(1)[0][0])
            for p in labelled
        )
        out = {"accuracy": 100.0 * hits / len(labelled)}
        several = [p for p in labelled if len(p["answers"]) > 1]
        if several:
            out.update(vqa_score([p["answer"] for p in several], [p["answers"] for p in several]))
        else:
            reason = (
                "every question has a single answer; the VQA formula (leave one annotator out) needs several "
                "answers per question"
            )
            if self.unavailable_metrics.get("vqa_accuracy") != reason:
                warnings.warn(f"vqa_accuracy not computed: {reason}", stacklevel=2)
            self.unavailable_metrics["vqa_accuracy"] = reason
        return out
