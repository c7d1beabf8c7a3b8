"""Shared mechanics of the video builders in ``dataset_scripts/`` (MSR-VTT, MSVD, VATEX, DiDeMo, AVSD).

Most of them read two layouts: the official release, and LAVIS's re-packaged annotations (one JSON list
per split, ``annotations/<task>_{train,val,test}.json``, beside a ``videos/`` folder). What each layout
looks like stays in the builder; this module holds what they share:

* :func:`check_video`: a row's video path, or an ``InvalidExampleError`` naming the missing file (so that
  ``skip_invalid=True`` skips it);
* :func:`lavis_caption_examples`: LAVIS caption/retrieval files, rows grouped into one example per video;
* :func:`video_qa_examples` with :func:`lavis_qa_row`: one ``video_qa`` example per question;
* :func:`read_youtube_mapping`: MSVD's clip numbering (``youtube_mapping.txt``, read by MSVD and MSVD-QA).

Every ``*_examples`` function yields ``(key, thunk | InvalidExampleError)`` items for
:func:`~vl_hub.data.builder_utils.guarded_examples`: the video is checked when the thunk runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vl_hub.data.builder_utils import InvalidExampleError, load_json

#: ``(question_id, video_id, video file relative to the video folder, question, answers)`` of one question.
QaRow = tuple[str, str, str, str, list[str]]

#: what ``*_examples`` yield: an example key and a thunk building the example, or the reason it is invalid.
ExampleItem = tuple[str, Callable[[], dict[str, Any]] | InvalidExampleError]


def check_video(path: Path) -> str:
    """``path`` as a string if the video file exists.

    Raises:
        InvalidExampleError: naming the file, when it does not exist (videos are decoded at training
            time, not while preparing).
    """
    if not path.is_file():
        raise InvalidExampleError(
            f"video file {path} does not exist; check the download is complete, "
            "or pass skip_invalid=True to skip its examples"
        )
    return str(path)


def lavis_caption_examples(annotation: Path, videos: Path) -> Iterator[ExampleItem]:
    """``video_text`` examples of a LAVIS caption or retrieval file, one per video in file order.

    ``annotation`` is a JSON list of ``{"video": "<file>", "caption": str | [str], ...}``; the rows of a
    video are merged (LAVIS's training files hold one row per caption). A row without ``"caption"``
    adds none: LAVIS's private-test files hide their captions. ``video_id`` is the file name without
    its extension; the video is ``videos / <file>``. Malformed rows come first, as invalid items.

    Raises:
        InvalidExampleError: ``annotation`` is not a JSON list (when iteration starts).
    """
    rows = load_json(annotation)
    if not isinstance(rows, list):
        raise InvalidExampleError(
            f"{annotation}: expected a JSON list of {{'video', 'caption'}}, got {type(rows).__name__}"
        )
    grouped: dict[str, list[str]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("video"), str):
            yield f"#{index}", InvalidExampleError(f"{annotation}: entry {index} has no 'video' string: {row!r:.200}")
            continue
        caption = row.get("caption", [])
        captions = [caption] if isinstance(caption, str) else caption
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            yield (
                f"#{index}",
                InvalidExampleError(f"{annotation}: entry {index}: 'caption' is not a string or a list of strings"),
            )
            continue
        grouped.setdefault(row["video"], []).extend(captions)
    for video, captions in grouped.items():
        video_id = video.rsplit(".", 1)[0]
        yield (
            video_id,
            lambda video=video, video_id=video_id, captions=captions: {
                "video_id": video_id,
                "video": check_video(videos / video),
                "captions": [c.strip() for c in captions],
            },
        )


def video_qa_examples(annotation: Path, videos: Path, parse: Callable[[Any, int], QaRow]) -> Iterator[ExampleItem]:
    """``video_qa`` examples of a JSON list of questions, one per entry, keyed by question id.

    ``parse(row, index)`` reads one entry of the builder's layout into a :data:`QaRow`; a ``KeyError``,
    ``TypeError``, ``ValueError`` or ``AttributeError`` it raises makes that entry an invalid item
    naming the file and index. The video is ``videos / <video file>``.

    Raises:
        InvalidExampleError: ``annotation`` is malformed JSON or not a list; raised here, before any
            example is built.
    """
    rows = load_json(annotation)
    if not isinstance(rows, list):
        raise InvalidExampleError(f"{annotation}: expected a JSON list of questions, got {type(rows).__name__}")

    def examples() -> Iterator[ExampleItem]:
        for index, row in enumerate(rows):
            try:
                question_id, video_id, video_file, question, answers = parse(row, index)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                yield (
                    f"#{index}",
                    InvalidExampleError(
                        f"{annotation}: entry {index} is malformed ({type(err).__name__}: {err}): {row!r:.200}"
                    ),
                )
                continue
            yield (
                question_id,
                lambda q=question_id, v=video_id, f=video_file, text=question, a=answers: {
                    "question_id": q,
                    "video_id": v,
                    "video": check_video(videos / f),
                    "question": text,
                    "answers": a,
                },
            )

    return examples()


def lavis_qa_row(row: dict[str, Any], index: int) -> QaRow:
    """One entry ``{"video", "question", "answer", "question_id"}`` of LAVIS's ``qa_{split}.json``.

    The answer may be a string or a list; the question id is the entry index when absent; ``video_id``
    is the file name without its extension.
    """
    answer = row["answer"]
    answers = [answer] if isinstance(answer, str) else list(answer)
    video = row["video"]
    if not isinstance(video, str):
        raise TypeError(f"'video' is {type(video).__name__}, expected a file name")
    return (
        str(row.get("question_id", index)),
        video.rsplit(".", 1)[0],
        video,
        row["question"].strip(),
        [a.strip() for a in answers],
    )


def read_youtube_mapping(path: Path) -> dict[int, str]:
    """MSVD's ``youtube_mapping.txt`` as {clip number: clip name}, e.g. {1: "-4wsuPCjDBc_5_15"}.

    Raises:
        InvalidExampleError: naming the file and line, for a line that is not ``<clip> vid<N>``.
    """
    mapping: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].startswith("vid") or not parts[1][3:].isdigit():
                raise InvalidExampleError(f"{path}: line {line_number} is not '<clip> vid<N>': {line.strip()!r}")
            mapping[int(parts[1][3:])] = parts[0]
    return mapping
