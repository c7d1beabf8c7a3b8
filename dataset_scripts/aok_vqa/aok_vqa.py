"""A-OKVQA: knowledge-based VQA on COCO 2017 with multiple choices, direct answers and rationales."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    annotation_image_split_generators,
    check_image,
    guarded_examples,
    load_json,
    require_data_dir,
    vqa_example,
)
from vl_hub.data.schemas import vqa_features

_CITATION = """\
@inproceedings{schwenk2022aokvqa,
  title={A-OKVQA: A Benchmark for Visual Question Answering using World Knowledge},
  author={Schwenk, Dustin and Khandelwal, Apoorv and Clark, Christopher and Marino, Kenneth and Mottaghi, Roozbeh},
  booktitle={European Conference on Computer Vision (ECCV)},
  year={2022}
}
"""

_DESCRIPTION = """\
A-OKVQA: 24,903 questions about COCO 2017 images that need commonsense or world knowledge (17,056 train,
1,145 val, 6,702 test). Each question has 4 multiple-choice options with the index of the correct one,
10 free-form "direct answers" and 3 rationales explaining the answer; the test split has only the
question and its choices (answers are scored by the leaderboard).
"""

_HOMEPAGE = "https://allenai.org/project/a-okvqa/home"

_LICENSE = "Apache 2.0 (annotations); images under their Flickr licences (see the COCO terms of use)"

_TASKS = ["vqa"]

_NAME = "aok_vqa"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), as https://github.com/allenai/aokvqa#downloading-the-dataset describes:
  - https://prior-datasets.s3.us-east-2.amazonaws.com/aokvqa/aokvqa_v1p0.tar.gz
    -> data_dir/aokvqa_v1p0_train.json, aokvqa_v1p0_val.json, aokvqa_v1p0_test.json
  - COCO 2017 images: http://images.cocodataset.org/zips/train2017.zip, val2017.zip, test2017.zip
    -> data_dir/train2017/<12-digit image id>.jpg, data_dir/val2017/..., data_dir/test2017/...
"""

_SPLITS = {
    datasets.Split.TRAIN: ("aokvqa_v1p0_train.json", "train2017"),
    datasets.Split.VALIDATION: ("aokvqa_v1p0_val.json", "val2017"),
    datasets.Split.TEST: ("aokvqa_v1p0_test.json", "test2017"),
}


class AokVqa(datasets.GeneratorBasedBuilder):
    """A-OKVQA v1.0, ``vqa`` schema: direct answers, choices, correct choice and rationales (test: choices only)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="A-OKVQA v1.0")]
    DEFAULT_CONFIG_NAME = "default"

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=vqa_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(_NAME, self.config.data_dir, _INSTRUCTIONS).absolute()
        return annotation_image_split_generators(_NAME, data_dir, _SPLITS, _INSTRUCTIONS)

    def _generate_examples(self, annotation_path: Path, image_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        entries = load_json(annotation_path)
        if not isinstance(entries, list):
            raise InvalidExampleError(f"{annotation_path}: expected a JSON list of questions")
        verify = self.config.verify_media

        def build(number: int, entry: dict[str, Any]) -> dict[str, Any]:
            try:
                image_id, question_id = entry["image_id"], entry["question_id"]
                question, choices = entry["question"], entry["choices"]
            except KeyError as err:
                raise InvalidExampleError(f"{annotation_path}: entry {number} lacks the field {err}") from None
            correct = entry.get("correct_choice_idx")
            return vqa_example(
                str(question_id),
                str(image_id),
                check_image(image_dir / f"{int(image_id):012d}.jpg", verify=verify),
                question,
                answers=list(entry.get("direct_answers") or []),
                choices=list(choices),
                correct_choice=-1 if correct is None else int(correct),
                rationales=list(entry.get("rationales") or []),
            )

        examples = (
            (str(entry.get("question_id", number)), lambda n=number, e=entry: build(n, e))
            for number, entry in enumerate(entries)
        )
        yield from guarded_examples(self.config, examples, where=str(annotation_path))
