"""VisDial v1.0: one row per (dialogue, round) with the dialogue so far and 100 candidate answers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    check_image,
    first_file,
    guarded_examples,
    load_json,
    require_data_dir,
    require_path,
)
from vl_hub.data.schemas import visual_dialog_features

logger = logging.getLogger(__name__)

_CITATION = """\
@inproceedings{das2017visual,
  title={Visual Dialog},
  author={Das, Abhishek and Kottur, Satwik and Gupta, Khushi and Singh, Avi and Yadav, Deshraj and
          Moura, Jos{\\'e} MF and Parikh, Devi and Batra, Dhruv},
  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2017}
}
"""

_DESCRIPTION = """\
Visual Dialog v1.0: a caption and 10 rounds of questions and answers about an image, asked by someone who
cannot see it. For every round the model ranks 100 candidate answers. 123,287 training dialogues (COCO 2014
images), 2,064 validation and 8,000 test dialogues (Flickr images); test dialogues stop at a random round,
the one to answer, whose answer is hidden. Validation rounds with dense annotations carry a relevance
score for every candidate (for NDCG).
"""

_HOMEPAGE = "https://visualdialog.org"

_LICENSE = "CC BY 4.0 (annotations); images under their Flickr licences"

_TASKS = ["visual_dialog"]

_NAME = "visdial"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), from https://visualdialog.org/data (v1.0):
  - visdial_1.0_train.zip -> data_dir/visdial_1.0_train.json
  - visdial_1.0_val.zip   -> data_dir/visdial_1.0_val.json
  - visdial_1.0_test.zip  -> data_dir/visdial_1.0_test.json
  - visdial_1.0_val_dense_annotations.json -> data_dir/ (optional; without it validation rows have no relevance)
  - train images = COCO 2014: http://images.cocodataset.org/zips/train2014.zip and val2014.zip
    -> data_dir/train2014/COCO_train2014_<12-digit id>.jpg, data_dir/val2014/COCO_val2014_<12-digit id>.jpg
    (LAVIS's renamed copy data_dir/VisualDialog_train2018/VisualDialog_train2018_<12-digit id>.jpg is read too)
  - VisualDialog_val2018.zip  -> data_dir/VisualDialog_val2018/VisualDialog_val2018_<12-digit id>.jpg
  - VisualDialog_test2018.zip -> data_dir/VisualDialog_test2018/VisualDialog_test2018_<12-digit id>.jpg
"""

_DENSE_FILE = "visdial_1.0_val_dense_annotations.json"

#: split -> (annotation file stem, image file patterns tried in order, relative to data_dir; {id} is the image id).
_SPLITS = {
    datasets.Split.TRAIN: (
        "train",
        (
            "train2014/COCO_train2014_{id:012d}.jpg",
            "val2014/COCO_val2014_{id:012d}.jpg",
            "VisualDialog_train2018/VisualDialog_train2018_{id:012d}.jpg",
        ),
    ),
    datasets.Split.VALIDATION: ("val", ("VisualDialog_val2018/VisualDialog_val2018_{id:012d}.jpg",)),
    datasets.Split.TEST: ("test", ("VisualDialog_test2018/VisualDialog_test2018_{id:012d}.jpg",)),
}


class Visdial(datasets.GeneratorBasedBuilder):
    """VisDial v1.0, ``visual_dialog`` schema: a row per round that has 100 answer options."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="VisDial v1.0")]
    DEFAULT_CONFIG_NAME = "default"

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=visual_dialog_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(_NAME, self.config.data_dir, _INSTRUCTIONS).absolute()
        generators = []
        for split, (stem, patterns) in _SPLITS.items():
            # The image folder of each split must exist (for train: at least one of its folders).
            folders = [data_dir / pattern.split("/")[0] for pattern in patterns]
            if not any(folder.is_dir() for folder in folders):
                require_path(_NAME, folders[0], _INSTRUCTIONS)
            dense = data_dir / _DENSE_FILE if split == datasets.Split.VALIDATION else None
            generators.append(
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={
                        "annotation_path": require_path(_NAME, data_dir / f"visdial_1.0_{stem}.json", _INSTRUCTIONS),
                        "dense_path": dense,
                        "data_dir": data_dir,
                        "patterns": patterns,
                    },
                )
            )
        return generators

    def _generate_examples(
        self, annotation_path: Path, dense_path: Path | None, data_dir: Path, patterns: tuple[str, ...]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        data = load_json(annotation_path)
        try:
            questions, answers, dialogs = data["data"]["questions"], data["data"]["answers"], data["data"]["dialogs"]
        except (KeyError, TypeError):
            raise InvalidExampleError(
                f"{annotation_path}: expected the VisDial format {{'data': {{'questions', 'answers', 'dialogs'}}}}"
            ) from None
        relevance = _dense_relevance(dense_path) if dense_path is not None else {}
        verify = self.config.verify_media

        def examples() -> Iterator[tuple[str, Any]]:
            for number, dialog in enumerate(dialogs):
                if "image_id" not in dialog or "dialog" not in dialog:
                    yield (
                        f"dialog-{number}",
                        InvalidExampleError(f"{annotation_path}: dialogs[{number}] lacks 'image_id' or 'dialog'"),
                    )
                    continue
                image_id = int(dialog["image_id"])
                image = _ImageOnce(data_dir, patterns, image_id, verify)
                history: list[dict[str, str]] = []
                for round_index, turn in enumerate(dialog["dialog"]):
                    if "answer_options" in turn:
                        yield (
                            f"{image_id}_{round_index}",
                            _row_builder(
                                annotation_path,
                                dialog,
                                round_index,
                                turn,
                                list(history),
                                image,
                                questions,
                                answers,
                                relevance.get((image_id, round_index), []),
                            ),
                        )
                    if "answer" in turn:
                        history.append({"question": questions[turn["question"]], "answer": answers[turn["answer"]]})

        yield from guarded_examples(self.config, examples(), where=str(annotation_path))


class _ImageOnce:
    """Finds (and verifies) a dialogue's image once, however many rounds the dialogue has."""

    def __init__(self, data_dir: Path, patterns: tuple[str, ...], image_id: int, verify: bool) -> None:
        self._candidates = [data_dir / pattern.format(id=image_id) for pattern in patterns]
        self._verify = verify
        self._path: str | None = None

    def __call__(self) -> str:
        if self._path is None:
            found = first_file(self._candidates)
            if found is None:
                raise InvalidExampleError(
                    f"image file {self._candidates[0]} does not exist"
                    + (f" (nor {', '.join(map(str, self._candidates[1:]))})" if len(self._candidates) > 1 else "")
                    + "; check the download is complete"
                )
            self._path = check_image(found, verify=self._verify)
        return self._path


def _row_builder(
    annotation_path: Path,
    dialog: dict[str, Any],
    round_index: int,
    turn: dict[str, Any],
    history: list[dict[str, str]],
    image: _ImageOnce,
    questions: list[str],
    answers: list[str],
    relevance: list[float],
) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        options = [answers[index] for index in turn["answer_options"]]
        if len(options) != 100:
            raise InvalidExampleError(
                f"{annotation_path}: dialogue of image {dialog['image_id']}, round {round_index + 1} has "
                f"{len(options)} answer options; VisDial v1.0 has 100"
            )
        return {
            "dialog_id": str(dialog["image_id"]),
            "image_id": str(dialog["image_id"]),
            "image": image(),
            "caption": dialog.get("caption", ""),
            "history": history,
            "round": round_index,
            "question": questions[turn["question"]],
            "answer": answers[turn["answer"]] if "answer" in turn else "",
            "options": options,
            "gt_index": int(turn.get("gt_index", -1)),
            "relevance": relevance,
        }

    return build


def _dense_relevance(path: Path) -> dict[tuple[int, int], list[float]]:
    """(image id, 0-based round) -> 100 relevance scores, from the dense annotations (``round_id`` is 1-based)."""
    if not path.is_file():
        logger.warning("%s not found: validation rows will carry no dense relevance (NDCG cannot be computed)", path)
        return {}
    scores = {}
    for entry in load_json(path):
        values = entry.get("gt_relevance", entry.get("relevance"))
        scores[(int(entry["image_id"]), int(entry["round_id"]) - 1)] = [float(v) for v in values]
    return scores
