"""Your own images or videos as a vl_hub dataset: ``vl_hub.load_dataset("custom", data_dir=..., task=...)``.

The folder follows ``datasets``' imagefolder/videofolder conventions:

* a ``metadata.jsonl`` (or ``metadata.csv``) next to the media, one row per example, with a
  ``file_name`` column (relative to the metadata file) plus the task's columns;
* or one sub-folder per split (``train/``, ``validation/`` or ``val/``/``valid/``/``dev/``, ``test/``),
  each with its own metadata file; a single top-level metadata file is the ``train`` split;
* for ``task="classification"`` without metadata, the label is the name of the folder holding each
  image (``train/cat/1.jpg``), as in imagefolder.

Columns per task (alternatives separated by ``|``; list columns are JSON lists in a CSV cell):

==============  =====================================================================================
image_text      file_name, caption | captions
video_text      file_name, caption | captions
vqa             file_name, question, answer | answers  (optional: choices, correct_choice, rationales)
video_qa        file_name, question, answer | answers
classification  file_name, label  (or label = parent folder name; optional config class_names)
entailment      file_name, hypothesis, label (entailment / neutral / contradiction)
nlvr            image0_file_name, image1_file_name, sentence, label (true / false)
visual_dialog   file_name, caption, dialog (list of {question, answer}; optional: options)
video_dialog    file_name, caption, dialog (optional: summary)
==============  =====================================================================================

Every row is mapped onto the task's schema in :mod:`vl_hub.data.schemas`, so any task trains on it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    MissingDataError,
    VlHubBuilderConfig,
    check_image,
    guarded_examples,
    iter_jsonl,
)
from vl_hub.data.schemas import ENTAILMENT_LABELS, NLVR_LABELS, SCHEMAS

METADATA_FILENAMES: tuple[str, ...] = ("metadata.jsonl", "metadata.csv")
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
#: split name -> folder names that hold it (datasets' conventions).
SPLIT_FOLDERS: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_LIST_COLUMNS = frozenset({"captions", "answers", "choices", "rationales", "dialog", "options"})


@dataclass(frozen=True)
class TaskColumns:
    """The metadata columns of one task: ``required`` groups (any one name of a group will do),
    ``optional`` names, the media column(s) and whether media are images or videos."""

    required: tuple[tuple[str, ...], ...]
    optional: tuple[str, ...]
    file_columns: tuple[str, ...] = ("file_name",)
    media: str = "image"

    def describe(self) -> str:
        """``"file_name, caption | captions (optional: image_id)"``."""
        parts = [*self.file_columns, *(" | ".join(group) for group in self.required)]
        return ", ".join(parts) + (f" (optional: {', '.join(self.optional)})" if self.optional else "")


TASK_COLUMNS: dict[str, TaskColumns] = {
    "image_text": TaskColumns((("caption", "captions"),), ("image_id",)),
    "video_text": TaskColumns((("caption", "captions"),), ("video_id",), media="video"),
    "vqa": TaskColumns(
        (("question",), ("answer", "answers")),
        ("question_id", "image_id", "choices", "correct_choice", "rationales"),
    ),
    "video_qa": TaskColumns((("question",), ("answer", "answers")), ("question_id", "video_id"), media="video"),
    "classification": TaskColumns((("label",),), ("image_id",)),
    "entailment": TaskColumns((("hypothesis",), ("label",)), ("id", "image_id")),
    "nlvr": TaskColumns((("sentence",), ("label",)), ("id",), file_columns=("image0_file_name", "image1_file_name")),
    "visual_dialog": TaskColumns((("caption",), ("dialog",)), ("dialog_id", "image_id", "options")),
    "video_dialog": TaskColumns((("caption",), ("dialog",)), ("dialog_id", "video_id", "summary"), media="video"),
}


class CustomFolderConfig(VlHubBuilderConfig):
    """Config of :class:`CustomFolder`.

    Args:
        task: the task schema to map the folder onto (a key of :data:`TASK_COLUMNS`).
        class_names: ``classification`` only: the class names in label-id order (default: the
            sorted distinct labels found).
    """

    def __init__(self, *args: Any, task: str | None = None, class_names: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task = task
        self.class_names = class_names


def check_task(task: str | None) -> TaskColumns:
    """The columns of ``task``; raises ``ValueError`` listing the valid tasks for anything else."""
    if task not in TASK_COLUMNS:
        valid = "\n".join(f"  {name}: {cols.describe()}" for name, cols in TASK_COLUMNS.items())
        got = "no task" if task is None else f"task={task!r}"
        raise ValueError(
            f"load_dataset('custom', ...) got {got}; pass task= one of these (with its metadata columns):\n{valid}"
        )
    return TASK_COLUMNS[task]


# --------------------------------------------------------------------------------------------------
# reading the folder


@dataclass
class _Source:
    """One split's metadata file (or ``None`` for class-per-folder) and the folder its paths are relative to."""

    split: str
    root: Path
    metadata: Path | None


def find_sources(data_dir: Path, task: str) -> list[_Source]:
    """The splits of ``data_dir``: split sub-folders with metadata, else the top-level metadata, else
    (classification only) class sub-folders."""
    sources = []
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            folder = data_dir / name
            if folder.is_dir():
                meta = _metadata_file(folder)
                if meta is not None or task == "classification":
                    sources.append(_Source(split, folder, meta))
                    break
    if sources:
        return sources
    meta = _metadata_file(data_dir)
    if meta is not None or task == "classification":
        return [_Source("train", data_dir, meta)]
    raise MissingDataError(
        f"custom: no metadata.jsonl or metadata.csv in {data_dir} (nor in train/, validation/, test/ under it).\n"
        f"Add one with a row per example; task {task!r} needs the columns {TASK_COLUMNS[task].describe()}.\n"
        'Example metadata.jsonl line: {"file_name": "0001.jpg", "caption": "a dog on a beach"}'
    )


def _metadata_file(folder: Path) -> Path | None:
    found = [folder / n for n in METADATA_FILENAMES if (folder / n).is_file()]
    if len(found) > 1:
        raise ValueError(f"custom: {folder} holds both {found[0].name} and {found[1].name}; keep only one")
    return found[0] if found else None


def _read_metadata(path: Path) -> Iterator[tuple[int, dict[str, Any] | InvalidExampleError]]:
    """(line number, row) per example; CSV list cells holding JSON lists are parsed."""
    if path.suffix == ".jsonl":
        for line, value in iter_jsonl(path):
            if not isinstance(value, (dict, InvalidExampleError)):
                value = InvalidExampleError(f"{path}: line {line} is a JSON {type(value).__name__}, expected an object")
            yield line, value
        return
    with open(path, encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            line = i + 2  # 1-based, after the header line
            parsed: dict[str, Any] = {}
            error = None
            for key, cell in row.items():
                if key is None:
                    error = InvalidExampleError(f"{path}: line {line} has more cells than the header has columns")
                    break
                if key in _LIST_COLUMNS and isinstance(cell, str) and cell.strip().startswith("["):
                    try:
                        parsed[key] = json.loads(cell)
                    except json.JSONDecodeError as err:
                        error = InvalidExampleError(f"{path}: line {line}, column {key!r} is not a JSON list: {err.msg}")
                        break
                else:
                    parsed[key] = cell
            yield line, error if error is not None else parsed


def _folder_rows(root: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """imagefolder's layout without metadata: ``root/<label>/<image>``; numbered in sorted order."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.parent != root)
    for i, path in enumerate(files):
        yield i + 1, {"file_name": path.relative_to(root).as_posix(), "label": path.parent.name}


def _as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidExampleError(f"{what} must be a string or a list of strings, got {value!r}")


def _label_name(value: Any, names: tuple[str, ...], what: str) -> str:
    """A label given as its name (any case), its index, or (two classes) a boolean, as a class name."""
    if isinstance(value, bool) and len(names) == 2:
        return names[int(value)]
    if isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str):
        for name in names:
            if value.strip().lower() == name.lower():
                return name
        if value.strip().isdigit() and int(value) < len(names):
            return names[int(value)]
    raise InvalidExampleError(f"{what} is {value!r}; allowed: {', '.join(names)} (or their index)")


class _Scan:
    """The checked rows of every split, built once per builder (at construction, before anything is
    written): structural problems raise at once; per-row problems become errors that
    ``guarded_examples`` raises or (``skip_invalid``) skips and counts."""

    def __init__(self, data_dir: Path, task: str, skip_invalid: bool, verify: bool) -> None:
        self.task = task
        self.columns = check_task(task)
        self.verify = verify
        self.rows: dict[str, list[tuple[str, Any]]] = {}
        self.where: dict[str, str] = {}
        self.labels: set[str] = set()
        self.answers: set[str] = set()
        missing: list[str] = []
        for source in find_sources(data_dir, task):
            where = str(source.metadata or source.root)
            rows = _read_metadata(source.metadata) if source.metadata else _folder_rows(source.root)
            checked = []
            first = True
            for line, row in rows:
                if isinstance(row, InvalidExampleError):
                    checked.append((str(line), row))
                    continue
                if first:  # the header (CSV) or the first object (JSONL) must hold every required column
                    self._check_columns(row, where)
                    first = False
                checked.append((str(line), self._check_row(row, line, source, where, missing)))
            if first and not checked:
                raise ValueError(f"custom: {where} has no rows")
            self.rows[source.split] = checked
            self.where[source.split] = where
        if missing and not skip_invalid:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise MissingDataError(
                f"custom: {missing[0]}{more}. file_name is relative to the folder of the metadata file; "
                "fix the path or pass skip_invalid=True to skip such rows."
            )

    def _check_columns(self, row: Mapping[str, Any], where: str) -> None:
        cols = self.columns
        absent = [c for c in cols.file_columns if c not in row]
        absent += [" | ".join(group) for group in cols.required if not any(c in row for c in group)]
        if absent:
            raise ValueError(
                f"custom: {where} has no column {', '.join(repr(a) for a in absent)}; task {self.task!r} "
                f"needs the columns {cols.describe()}. Columns found: {', '.join(map(str, row)) or '(none)'}"
            )

    def _check_row(
        self, row: dict[str, Any], line: int, source: _Source, where: str, missing: list[str]
    ) -> dict[str, Any] | InvalidExampleError:
        here = f"{where}: line {line}"
        paths = {}
        for column in self.columns.file_columns:
            value = row.get(column)
            if not isinstance(value, str) or not value:
                return InvalidExampleError(f"{here}: {column} is {value!r}, expected a relative file path")
            path = (source.root / value) if not os.path.isabs(value) else Path(value)
            if not path.is_file():
                message = f"{here}: {column} {value!r} does not exist (looked for {path})"
                missing.append(message)
                return InvalidExampleError(message)
            paths[column] = path
        row = {**row, **{f"_{k}": v for k, v in paths.items()}, "_where": here}
        if "label" in row and self.task == "classification":
            self.labels.add(str(row["label"]))
        if self.task in ("visual_dialog", "video_dialog") and isinstance(row.get("dialog"), list):
            self.answers.update(str(t.get("answer", "")) for t in row["dialog"] if isinstance(t, dict))
        return row

    def class_names(self, given: list[str] | None) -> list[str]:
        """The classification class names: ``given``, else the sorted labels (numerically when all are ints)."""
        if given:
            unknown = sorted(self.labels - set(map(str, given)))
            if unknown:
                raise ValueError(f"custom: labels {unknown} are not in class_names={given}")
            return list(map(str, given))
        if not self.labels:
            raise ValueError("custom: no labelled images found for task 'classification'")
        if all(label.lstrip("-").isdigit() for label in self.labels):
            return sorted(self.labels, key=int)
        return sorted(self.labels)


def custom_folder_hash(data_dir: str | os.PathLike[str] | None, code_hash: str = "") -> str:
    """Fingerprint of every file under ``data_dir`` (relative path, size, mtime) and the loader code,
    so an edited metadata file or an added image re-prepares instead of reusing a stale cache."""
    digest = hashlib.sha256(code_hash.encode())
    if data_dir is not None and Path(data_dir).is_dir():
        root = Path(data_dir)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                stat = os.stat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# the builder


class CustomFolder(datasets.GeneratorBasedBuilder):
    """A folder of the user's own images/videos + metadata, mapped onto a vl_hub task schema."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = CustomFolderConfig

    def _info(self) -> datasets.DatasetInfo:
        task = self.config.task
        check_task(task)
        if self.config.data_dir is None:
            raise MissingDataError(
                f"load_dataset('custom', task={task!r}) needs data_dir=<folder with your files and a metadata.jsonl>"
            )
        data_dir = Path(self.config.data_dir).expanduser()
        if not data_dir.is_dir():
            raise MissingDataError(f"custom: data_dir {data_dir} does not exist or is not a folder")
        self._scan = _Scan(data_dir.absolute(), task, self.config.skip_invalid, self.config.verify_media)
        if task == "classification":
            features = SCHEMAS[task](self._scan.class_names(self.config.class_names))
        else:
            features = SCHEMAS[task]()
        return datasets.DatasetInfo(description=f"User folder {data_dir} as task {task}", features=features)

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        return [datasets.SplitGenerator(name=split, gen_kwargs={"split": split}) for split in self._scan.rows]

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        def items() -> Iterator[tuple[str, Any]]:
            for key, row in self._scan.rows[split]:
                if isinstance(row, InvalidExampleError):
                    yield key, row
                    continue
                for sub_key, thunk in self._examples(split, key, row):
                    yield sub_key, thunk

        yield from guarded_examples(self.config, items(), where=self._scan.where[split])

    def _examples(self, split: str, key: str, row: dict[str, Any]) -> Iterator[tuple[str, Callable[[], Any]]]:
        """``(key, thunk)`` per example of one metadata row (several for a dialogue)."""
        task, here = self.config.task, row["_where"]
        media = self._scan.columns.media
        file_name = row.get("file_name", "")
        media_id = row.get("image_id" if media == "image" else "video_id") or str(Path(file_name).with_suffix(""))

        def media_path() -> str:
            if media == "image":
                return check_image(row["_file_name"], verify=self._scan.verify)
            return str(row["_file_name"])

        if task in ("image_text", "video_text"):

            def text_row() -> dict[str, Any]:
                captions = _as_list(row.get("captions", row.get("caption")), f"{here}: captions")
                return {f"{media}_id": str(media_id), media: media_path(), "captions": captions}

            yield key, text_row
        elif task in ("vqa", "video_qa"):

            def qa_row() -> dict[str, Any]:
                answers = _as_list(row.get("answers", row.get("answer")), f"{here}: answers")
                out = {
                    "question_id": str(row.get("question_id") or f"{split}-{key}"),
                    f"{media}_id": str(media_id),
                    media: media_path(),
                    "question": _text(row["question"], f"{here}: question"),
                    "answers": answers,
                }
                if task == "vqa":
                    choices = _as_list(row.get("choices") or [], f"{here}: choices")
                    correct = row.get("correct_choice", -1)
                    try:
                        correct = int(correct) if correct not in (None, "") else -1
                    except (TypeError, ValueError):
                        raise InvalidExampleError(f"{here}: correct_choice {correct!r} is not an integer") from None
                    if correct >= len(choices):
                        raise InvalidExampleError(f"{here}: correct_choice {correct} but only {len(choices)} choices")
                    out.update(
                        choices=choices,
                        correct_choice=correct,
                        rationales=_as_list(row.get("rationales") or [], f"{here}: rationales"),
                    )
                return out

            yield key, qa_row
        elif task == "classification":
            yield key, lambda: {"image_id": str(media_id), "image": media_path(), "label": str(row["label"])}
        elif task == "entailment":
            yield key, lambda: {
                "id": str(row.get("id") or f"{split}-{key}"),
                "image_id": str(media_id),
                "image": media_path(),
                "hypothesis": _text(row["hypothesis"], f"{here}: hypothesis"),
                "label": _label_name(row["label"], ENTAILMENT_LABELS, f"{here}: label"),
            }
        elif task == "nlvr":
            yield key, lambda: {
                "id": str(row.get("id") or f"{split}-{key}"),
                "image0": check_image(row["_image0_file_name"], verify=self._scan.verify),
                "image1": check_image(row["_image1_file_name"], verify=self._scan.verify),
                "sentence": _text(row["sentence"], f"{here}: sentence"),
                "label": _label_name(row["label"], NLVR_LABELS, f"{here}: label"),
            }
        else:
            yield from self._dialog_examples(key, row, str(media_id), media_path)

    def _dialog_examples(
        self, key: str, row: dict[str, Any], media_id: str, media_path: Callable[[], str]
    ) -> Iterator[tuple[str, Any]]:
        here = row["_where"]
        dialog = row.get("dialog")
        turns = dialog if isinstance(dialog, list) else None
        if turns is None or not all(
            isinstance(t, dict) and isinstance(t.get("question"), str) and isinstance(t.get("answer"), str) for t in turns
        ):
            yield key, InvalidExampleError(f"{here}: dialog must be a list of {{question, answer}} objects, got {dialog!r}")
            return
        video = self.config.task == "video_dialog"
        options = None if video else _as_list(row.get("options") or sorted(self._scan.answers), f"{here}: options")
        for r, turn in enumerate(turns):
            history = [{"question": t["question"], "answer": t["answer"]} for t in turns[:r]]
            base = {
                "dialog_id": str(row.get("dialog_id") or media_id),
                "caption": _text(row.get("caption"), f"{here}: caption"),
                "history": history,
                "round": r,
                "question": turn["question"],
                "answer": turn["answer"],
            }

            def build(base: dict[str, Any] = base, answer: str = turn["answer"]) -> dict[str, Any]:
                if video:
                    return {**base, "video_id": media_id, "video": media_path(), "summary": str(row.get("summary") or "")}
                assert options is not None  # set for visual dialog just above
                return {
                    **base,
                    "image_id": media_id,
                    "image": media_path(),
                    "options": options,
                    "gt_index": options.index(answer) if answer in options else -1,
                    "relevance": [],
                }

            yield f"{key}-{r}", build


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidExampleError(f"{what} must be a non-empty string, got {value!r}")
    return value
