"""One ``datasets.Features`` schema per task; every builder of a task yields exactly this schema.

Images are ``datasets.Image()`` (decoded lazily to PIL); videos are stored as file paths (strings)
and decoded by the processor. List fields are plain ``datasets.Sequence``/list features so that any
task trains on any of its datasets.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets

#: task name -> short description of the rows it expects (used in error messages and `vl-hub list`).
SCHEMA_TASKS: dict[str, str] = {
    "image_text": "image + its captions (captioning, image-text retrieval, pretraining pairs)",
    "video_text": "video path + its captions (video captioning, video-text retrieval)",
    "vqa": "image + question + answers (VQA)",
    "video_qa": "video path + question + answers (video QA)",
    "nlvr": "two images + sentence + true/false label (NLVR2)",
    "entailment": "image + hypothesis + entailment/neutral/contradiction label (visual entailment)",
    "classification": "image + class label (image classification)",
    "visual_dialog": "image + caption + dialogue history + question + 100 answer options (visual dialogue)",
    "video_dialog": "video path + caption + dialogue history + question + answer (video dialogue)",
}

ENTAILMENT_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
NLVR_LABELS: tuple[str, ...] = ("False", "True")

_STR = datasets.Value("string")
_STR_LIST = datasets.Sequence(datasets.Value("string"))
_TURN = {"question": datasets.Value("string"), "answer": datasets.Value("string")}


def image_text_features() -> datasets.Features:
    """Rows: ``image_id`` (str), ``image`` (Image), ``captions`` (list[str], >= 1; one per pair for web corpora)."""
    return datasets.Features({"image_id": _STR, "image": datasets.Image(), "captions": _STR_LIST})


def video_text_features() -> datasets.Features:
    """Rows: ``video_id`` (str), ``video`` (path str), ``captions`` (list[str], >= 1)."""
    return datasets.Features({"video_id": _STR, "video": _STR, "captions": _STR_LIST})


def vqa_features() -> datasets.Features:
    """Rows: ``question_id``, ``image_id``, ``image``, ``question``, ``answers`` (list[str]; all annotator
    answers, repeated as given, e.g. 10 for VQAv2; empty for unlabelled test splits), ``choices``
    (list[str], multiple-choice options or empty), ``correct_choice`` (int, -1 when none) and
    ``rationales`` (list[str], A-OKVQA; else empty)."""
    return datasets.Features(
        {
            "question_id": _STR,
            "image_id": _STR,
            "image": datasets.Image(),
            "question": _STR,
            "answers": _STR_LIST,
            "choices": _STR_LIST,
            "correct_choice": datasets.Value("int32"),
            "rationales": _STR_LIST,
        }
    )


def video_qa_features() -> datasets.Features:
    """Rows: ``question_id``, ``video_id``, ``video`` (path), ``question``, ``answers`` (list[str])."""
    return datasets.Features(
        {"question_id": _STR, "video_id": _STR, "video": _STR, "question": _STR, "answers": _STR_LIST}
    )


def nlvr_features() -> datasets.Features:
    """Rows: ``id``, ``image0``, ``image1`` (Images), ``sentence``, ``label`` (ClassLabel False/True)."""
    return datasets.Features(
        {
            "id": _STR,
            "image0": datasets.Image(),
            "image1": datasets.Image(),
            "sentence": _STR,
            "label": datasets.ClassLabel(names=list(NLVR_LABELS)),
        }
    )


def entailment_features() -> datasets.Features:
    """Rows: ``id``, ``image_id``, ``image``, ``hypothesis``, ``label`` (entailment/neutral/contradiction)."""
    return datasets.Features(
        {
            "id": _STR,
            "image_id": _STR,
            "image": datasets.Image(),
            "hypothesis": _STR,
            "label": datasets.ClassLabel(names=list(ENTAILMENT_LABELS)),
        }
    )


def classification_features(class_names: Sequence[str]) -> datasets.Features:
    """Rows: ``image_id``, ``image``, ``label`` (ClassLabel over ``class_names``; -1 for unlabelled)."""
    if not class_names:
        raise ValueError("classification_features needs at least one class name")
    return datasets.Features(
        {"image_id": _STR, "image": datasets.Image(), "label": datasets.ClassLabel(names=list(class_names))}
    )


def visual_dialog_features() -> datasets.Features:
    """One row per (dialogue, round): ``dialog_id``, ``image_id``, ``image``, ``caption``, ``history``
    (list of {question, answer} for earlier rounds), ``round`` (0-based), ``question``, ``answer``
    (ground truth; empty when hidden), ``options`` (100 candidate answers), ``gt_index`` (index of the
    answer in ``options``; -1 when hidden) and ``relevance`` (100 dense relevance scores, empty when
    not annotated)."""
    return datasets.Features(
        {
            "dialog_id": _STR,
            "image_id": _STR,
            "image": datasets.Image(),
            "caption": _STR,
            "history": [_TURN],
            "round": datasets.Value("int32"),
            "question": _STR,
            "answer": _STR,
            "options": _STR_LIST,
            "gt_index": datasets.Value("int32"),
            "relevance": datasets.Sequence(datasets.Value("float32")),
        }
    )


def video_dialog_features() -> datasets.Features:
    """One row per (dialogue, turn): ``dialog_id``, ``video_id``, ``video`` (path), ``caption``,
    ``summary``, ``history`` (list of {question, answer}), ``round``, ``question``, ``answer``."""
    return datasets.Features(
        {
            "dialog_id": _STR,
            "video_id": _STR,
            "video": _STR,
            "caption": _STR,
            "summary": _STR,
            "history": [_TURN],
            "round": datasets.Value("int32"),
            "question": _STR,
            "answer": _STR,
        }
    )


#: schema name -> features factory (classification needs class names, so it is called with them).
SCHEMAS = {
    "image_text": image_text_features,
    "video_text": video_text_features,
    "vqa": vqa_features,
    "video_qa": video_qa_features,
    "nlvr": nlvr_features,
    "entailment": entailment_features,
    "classification": classification_features,
    "visual_dialog": visual_dialog_features,
    "video_dialog": video_dialog_features,
}
