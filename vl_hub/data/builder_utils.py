"""Shared helpers for the builders in ``dataset_scripts/``: clear errors for missing or bad files,
and ``skip_invalid`` handling (skip a bad example, count it, report the count at the end).

A builder's ``_generate_examples`` typically reads::

    def _generate_examples(self, annotation_path, image_dir):
        rows = load_json(annotation_path)
        def examples():
            for i, row in enumerate(rows):
                yield str(i), lambda row=row: {"image": check_image(image_dir / row["file"]), ...}
        yield from guarded_examples(self.config, examples(), where=str(annotation_path))
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    if verify:
        from PIL import Image

        try:
            with Image.open(path) as img:
                img.load()
        except Exception as err:  # PIL raises many types for bad files
            raise InvalidExampleError(
                f"image file {path} cannot be decoded ({type(err).__name__}: {err}); re-download it, "
                "or pass skip_invalid=True to skip such examples"
            ) from err
    return str(path)


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
