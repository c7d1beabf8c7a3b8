"""Shared helpers for the builders in ``dataset_scripts/``: clear errors for missing or bad files,
and ``skip_invalid`` handling (skip a bad example, count it, report the count at the end).

A builder's ``_generate_examples`` typically reads::

    def _generate_examples(self, annotation_path, image_dir):
        rows = load_json(annotation_path)
        def examples():
            for i, row in enumerate(rows):
                yield str(i), lambda row=row: {"image": check_image(image_dir / row["file"]), ...}
        yield from guarded_examples(self.config, examples(), where=str(annotation_path))

Image builders also share: :func:`first_file` / :func:`first_dir` (layouts that accept a file in several
places), the readers of the two caption formats several datasets ship in (:func:`karpathy_rows`,
:func:`lavis_caption_rows`), :func:`image_text_examples` and :func:`vqa_example` (rows of the
``image_text`` and ``vqa`` schemas) and :func:`annotation_image_split_generators`. Webdataset shards
are read by :mod:`vl_hub.data.webdataset`, video layouts by :mod:`vl_hub.data.video_builders`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import datasets

logger = logging.getLogger(__name__)


class InvalidExampleError(ValueError):
    """One example cannot be built (corrupt image, malformed line, missing field). Names file and line."""


class MissingDataError(FileNotFoundError):
    """A file or folder a builder needs is not in ``data_dir``; the message names it and says how to get it."""


class VlHubBuilderConfig(datasets.BuilderConfig):
    """BuilderConfig with vl_hub's options.

    Args:
        skip_invalid: skip examples that raise :class:`InvalidExampleError` instead of failing; the
            number skipped is logged at the end and kept in :data:`SKIP_REPORTS`.
        verify_media: fully decode each image while preparing so a corrupt file fails (or is skipped)
            at prepare time rather than at training time.
    """

    def __init__(self, *args: Any, skip_invalid: bool = False, verify_media: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skip_invalid = skip_invalid
        self.verify_media = verify_media


@dataclass
class SkipReport:
    """What ``skip_invalid`` skipped while generating one split: count and the first few reasons."""

    where: str
    count: int = 0
    reasons: list[str] = field(default_factory=list)


#: where -> report of the most recent generation (read by ``vl_hub.load_dataset`` and the CLI).
SKIP_REPORTS: dict[str, SkipReport] = {}


def missing_data_error(dataset: str, path: Path | str, instructions: str) -> FileNotFoundError:
    """The error raised when an expected file or folder of ``dataset`` is not in ``data_dir``
    (a :class:`MissingDataError`, which is a ``FileNotFoundError``)."""
    return MissingDataError(
        f"{dataset}: expected {path} but it does not exist.\n"
        f"Download the official files and pass the folder that holds them as data_dir:\n{instructions.strip()}"
    )


def require_data_dir(dataset: str, data_dir: str | os.PathLike[str] | None, instructions: str) -> Path:
    """``data_dir`` as a Path; raises with the download instructions when it is unset or missing."""
    if data_dir is None:
        raise MissingDataError(
            f"{dataset} needs data_dir=<folder with the official files>; none was given.\n{instructions.strip()}"
        )
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise missing_data_error(dataset, path, instructions)
    return path


def require_path(dataset: str, path: Path, instructions: str) -> Path:
    """Returns ``path`` if it exists, else raises :func:`missing_data_error`."""
    if not path.exists():
        raise missing_data_error(dataset, path, instructions)
    return path


def load_json(path: Path | str) -> Any:
    """Parses a JSON file; a syntax error names the file, line and column."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise InvalidExampleError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err


def iter_jsonl(path: Path | str) -> Iterator[tuple[int, Any]]:
    """Yields ``(line_number, parsed_value)`` per non-empty line (1-based numbers).

    A malformed line yields ``(line_number, InvalidExampleError)`` instead of raising, so that the
    caller can pass it through :func:`guarded_examples` and honour ``skip_invalid``.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                yield number, InvalidExampleError(f"{path}: line {number} is not valid JSON: {err.msg}")


def check_image(path: Path | str, verify: bool = True) -> str:
    """Returns ``path`` as a string after checking it exists and (``verify``) decodes fully.

    Raises:
        InvalidExampleError: naming the file, when it is missing, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidExampleError(f"image file {path} does not exist; check the download is complete")
    err = image_decode_error(path) if verify else None
    if err is not None:
        raise InvalidExampleError(
            f"image file {path} cannot be decoded ({type(err).__name__}: {err}); re-download it, "
            "or pass skip_invalid=True to skip such examples"
        ) from err
    return str(path)


def image_decode_error(image: Path | BinaryIO) -> Exception | None:
    """The error PIL raises when fully decoding ``image`` (a path or a binary file object), or ``None``
    when it decodes: callers raise an :class:`InvalidExampleError` naming where the image came from."""
    from PIL import Image

    try:
        with Image.open(image) as img:
            img.load()
    except Exception as err:  # PIL raises many types for bad files
        return err
    return None


def guarded_examples(
    config: datasets.BuilderConfig,
    examples: Iterable[tuple[str, Callable[[], dict[str, Any]] | dict[str, Any] | Exception]],
    where: str,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Builds each ``(key, thunk | example | error)``; invalid ones raise, or are skipped and counted.

    ``config.skip_invalid`` (see :class:`VlHubBuilderConfig`) decides; the count is logged at the end
    and stored in :data:`SKIP_REPORTS` under ``where``.
    """
    skip = bool(getattr(config, "skip_invalid", False))
    report = SkipReport(where)
    SKIP_REPORTS[where] = report
    for key, item in examples:
        try:
            if isinstance(item, Exception):
                raise item
            example = item() if callable(item) else item
        except InvalidExampleError as err:
            if not skip:
                raise
            report.count += 1
            if len(report.reasons) < 5:
                report.reasons.append(str(err))
            continue
        yield key, example
    if report.count:
        logger.warning("%s: skipped %d invalid example(s); first: %s", where, report.count, report.reasons[0])


# --------------------------------------------------------------------------------------------------
# image builders: locating files, shared annotation formats, example rows


def first_file(candidates: Iterable[Path]) -> Path | None:
    """The first of ``candidates`` that is an existing file, or ``None`` (for layouts that accept a file
    in several places, e.g. ``data_dir/x.json`` or ``data_dir/annotations/x.json``)."""
    return next((path for path in candidates if path.is_file()), None)


def first_dir(candidates: Iterable[Path]) -> Path | None:
    """The first of ``candidates`` that is an existing folder, or ``None``."""
    return next((path for path in candidates if path.is_dir()), None)


#: ``(image_id, image path relative to an image root, captions)`` of one image.
CaptionRow = tuple[str, str, list[str]]


def karpathy_rows(
    path: Path, wanted: tuple[str, ...], locate: Callable[[dict[str, Any]], tuple[str, str]]
) -> list[CaptionRow]:
    """The images of Karpathy's ``dataset_<name>.json`` (``{"images": [{"split", "sentences": [{"raw"}],
    ...}]}``) whose ``"split"`` is in ``wanted``, as :data:`CaptionRow` in file order.

    ``locate(image)`` gives the dataset's ``(image_id, relative image path)`` of an entry; a
    ``KeyError`` it raises (or a missing ``"sentences"``) names the entry.

    Raises:
        InvalidExampleError: the file is not in Karpathy's format, or an entry lacks a field.
    """
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InvalidExampleError(
            f"{path}: expected the Karpathy format {{'images': [...]}}, got {type(data).__name__}"
        )
    rows = []
    for number, image in enumerate(data["images"]):
        if image.get("split") not in wanted:
            continue
        try:
            image_id, relative = locate(image)
            captions = [sentence["raw"].strip() for sentence in image["sentences"]]
        except KeyError as err:
            raise InvalidExampleError(f"{path}: images[{number}] lacks the field {err}") from None
        rows.append((image_id, relative, captions))
    return rows


def lavis_caption_rows(path: Path, image_id: Callable[[str], str]) -> list[CaptionRow]:
    """LAVIS's image-caption files (``[{"image": "<relative path>", "caption": str | [str], ...}]``: one
    entry per caption for training, per image with a caption list for evaluation), grouped by
    ``image_id(relative path)`` into :data:`CaptionRow` in order of first appearance.

    Raises:
        InvalidExampleError: the file is not a JSON list, or an entry lacks ``image`` or ``caption``.
    """
    entries = load_json(path)
    if not isinstance(entries, list):
        raise InvalidExampleError(f"{path}: expected a JSON list of {{image, caption}} entries")
    grouped: dict[str, tuple[str, list[str]]] = {}
    for number, entry in enumerate(entries):
        try:
            relative, caption = entry["image"], entry["caption"]
        except KeyError as err:
            raise InvalidExampleError(f"{path}: entry {number} lacks the field {err}") from None
        captions = grouped.setdefault(image_id(relative), (relative, []))[1]
        captions.extend(c.strip() for c in ([caption] if isinstance(caption, str) else caption))
    return [(key, relative, captions) for key, (relative, captions) in grouped.items()]


def image_text_examples(
    rows: Iterable[CaptionRow], image_root: Path, verify: bool = True
) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    """``(image_id, thunk)`` per :data:`CaptionRow`, for :func:`guarded_examples`; the thunk builds the
    ``image_text`` example ``{"image_id", "image", "captions"}``, checking ``image_root / path`` with
    :func:`check_image` (so a missing or corrupt image is skipped with ``skip_invalid``)."""
    for image_id, relative, captions in rows:
        yield (
            image_id,
            lambda p=relative, i=image_id, c=captions: {
                "image_id": i,
                "image": check_image(image_root / p, verify=verify),
                "captions": c,
            },
        )


def vqa_example(
    question_id: str,
    image_id: str,
    image: str,
    question: str,
    answers: list[str],
    choices: list[str] | None = None,
    correct_choice: int = -1,
    rationales: list[str] | None = None,
) -> dict[str, Any]:
    """One row of the ``vqa`` schema; datasets without multiple choice or rationales leave them empty
    (``choices=[]``, ``correct_choice=-1``, ``rationales=[]``)."""
    return {
        "question_id": question_id,
        "image_id": image_id,
        "image": image,
        "question": question,
        "answers": answers,
        "choices": [] if choices is None else choices,
        "correct_choice": correct_choice,
        "rationales": [] if rationales is None else rationales,
    }


def annotation_image_split_generators(
    dataset: str, data_dir: Path, splits: Mapping[str, tuple[str, str]], instructions: str
) -> list[datasets.SplitGenerator]:
    """One split per ``split -> (annotation file, image folder)`` of ``splits`` (both relative to
    ``data_dir``), with ``gen_kwargs`` ``annotation_path`` and ``image_dir``.

    Raises:
        MissingDataError: naming the first missing file or folder, with ``instructions``.
    """
    return [
        datasets.SplitGenerator(
            name=split,
            gen_kwargs={
                "annotation_path": require_path(dataset, data_dir / file_name, instructions),
                "image_dir": require_path(dataset, data_dir / folder, instructions),
            },
        )
        for split, (file_name, folder) in splits.items()
    ]
