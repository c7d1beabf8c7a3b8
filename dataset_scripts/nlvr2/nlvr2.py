"""NLVR2: is a sentence true of a pair of photographs? One row per (sentence, image pair)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    check_image,
    first_file,
    guarded_examples,
    iter_jsonl,
    missing_data_error,
    require_data_dir,
)
from vl_hub.data.schemas import NLVR_LABELS, nlvr_features

_CITATION = """\
@inproceedings{suhr2019corpus,
  title={A Corpus for Reasoning about Natural Language Grounded in Photographs},
  author={Suhr, Alane and Zhou, Stephanie and Zhang, Ally and Zhang, Iris and Bai, Huajun and Artzi, Yoav},
  booktitle={Proceedings of the 57th Annual Meeting of the Association for Computational Linguistics (ACL)},
  year={2019}
}
"""

_DESCRIPTION = """\
NLVR2 (Natural Language for Visual Reasoning for Real): 107,292 examples, each an English sentence and a
pair of web photographs, labelled True if the sentence holds for the pair. 86,373 train, 6,982 dev and
6,967 test-P (test1) examples. The left image is image0, the right one image1.
"""

_HOMEPAGE = "https://lil.nlp.cornell.edu/nlvr/"

_LICENSE = "CC BY 4.0 (annotations); images are web photographs shared for research use only (see the NLVR2 terms)"

_TASKS = ["nlvr"]

_NAME = "nlvr2"

_INSTRUCTIONS = """\
Put into one folder (data_dir):
  - the annotations of https://github.com/lil-lab/nlvr/tree/master/nlvr2/data: train.json, dev.json, test1.json
    -> data_dir/ (or keep the repository's data_dir/data/ folder)
  - the images: ask for them with the form linked from https://github.com/lil-lab/nlvr/tree/master/nlvr2#direct-image-download
    (or fetch them with nlvr2/util/download_images.py) and unpack
    -> data_dir/images/train/<directory>/train-<set>-<pair>-img0.png (and -img1.png),
       data_dir/images/dev/dev-<set>-<pair>-img0.png, data_dir/images/test1/test1-<set>-<pair>-img0.png
    (the train sub-folder is the example's "directory" field; images/ may be omitted: data_dir/train/...)
"""

#: split -> the NLVR2 file/folder name.
_SPLITS = {datasets.Split.TRAIN: "train", datasets.Split.VALIDATION: "dev", datasets.Split.TEST: "test1"}


def nlvr2_image_names(identifier: str) -> tuple[str, str]:
    """``"train-10171-0-0"`` -> (``"train-10171-0-img0.png"``, ``"train-10171-0-img1.png"``): drop the sentence id."""
    pair = identifier.rsplit("-", 1)[0]
    return f"{pair}-img0.png", f"{pair}-img1.png"


class Nlvr2(datasets.GeneratorBasedBuilder):
    """NLVR2, ``nlvr`` schema (image0 = left, image1 = right, label False/True)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="NLVR2 train/dev/test1")]
    DEFAULT_CONFIG_NAME = "default"

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=nlvr_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(_NAME, self.config.data_dir, _INSTRUCTIONS).absolute()
        image_root = data_dir / "images" if (data_dir / "images").is_dir() else data_dir
        generators = []
        for split, name in _SPLITS.items():
            candidates = [data_dir / f"{name}.json", data_dir / "data" / f"{name}.json"]
            annotation_path = first_file(candidates)
            if annotation_path is None:
                raise missing_data_error(_NAME, candidates[0], _INSTRUCTIONS)
            if not (image_root / name).is_dir():
                raise missing_data_error(_NAME, data_dir / "images" / name, _INSTRUCTIONS)
            generators.append(
                datasets.SplitGenerator(
                    name=split, gen_kwargs={"annotation_path": annotation_path, "image_dir": image_root / name}
                )
            )
        return generators

    def _generate_examples(self, annotation_path: Path, image_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        verify = self.config.verify_media

        def build(line: int, row: Any) -> dict[str, Any]:
            if not isinstance(row, dict) or not {"identifier", "sentence", "label"} <= row.keys():
                raise InvalidExampleError(f"{annotation_path}: line {line} lacks 'identifier', 'sentence' or 'label'")
            label = str(row["label"])
            if label not in NLVR_LABELS:
                raise InvalidExampleError(
                    f"{annotation_path}: line {line} has label {row['label']!r}; expected one of {list(NLVR_LABELS)}"
                )
            # Train images are spread over 100 sub-folders named by the example's "directory".
            folder = image_dir / str(row["directory"]) if "directory" in row else image_dir
            left, right = nlvr2_image_names(row["identifier"])
            return {
                "id": row["identifier"],
                "image0": check_image(folder / left, verify=verify),
                "image1": check_image(folder / right, verify=verify),
                "sentence": row["sentence"],
                "label": label,
            }

        def examples() -> Iterator[tuple[str, Any]]:
            for line, row in iter_jsonl(annotation_path):
                if isinstance(row, Exception):
                    yield f"line-{line}", row
                else:
                    key = row.get("identifier", f"line-{line}") if isinstance(row, dict) else f"line-{line}"
                    yield key, lambda line=line, row=row: build(line, row)

        yield from guarded_examples(self.config, examples(), where=str(annotation_path))
