"""GQA (balanced): compositional questions over Visual Genome images, one answer per question."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    check_image,
    guarded_examples,
    load_json,
    require_data_dir,
    require_path,
    vqa_example,
)
from vl_hub.data.schemas import vqa_features

_CITATION = """\
@inproceedings{hudson2019gqa,
  title={{GQA}: A New Dataset for Real-World Visual Reasoning and Compositional Question Answering},
  author={Hudson, Drew A and Manning, Christopher D},
  booktitle={IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2019}
}
"""

_DESCRIPTION = """\
GQA: questions generated from Visual Genome scene graphs that test compositional reasoning (relations,
attributes, comparisons, logic). The balanced version has 943k training, 132k validation and 12,578
test-dev questions, each with one short answer. Results are usually reported on test-dev.
"""

_HOMEPAGE = "https://cs.stanford.edu/people/dorarad/gqa/"

_LICENSE = "CC BY 4.0"

_TASKS = ["vqa"]

_NAME = "gqa"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), from https://cs.stanford.edu/people/dorarad/gqa/download.html:
  - https://downloads.cs.stanford.edu/nlp/data/gqa/questions1.2.zip
    -> data_dir/train_balanced_questions.json, val_balanced_questions.json, testdev_balanced_questions.json
       (the zip's other files may stay)
  - https://downloads.cs.stanford.edu/nlp/data/gqa/images.zip -> data_dir/images/<imageId>.jpg
"""

_SPLITS = {
    datasets.Split.TRAIN: "train_balanced_questions.json",
    datasets.Split.VALIDATION: "val_balanced_questions.json",
    datasets.NamedSplit("testdev"): "testdev_balanced_questions.json",
}


class Gqa(datasets.GeneratorBasedBuilder):
    """GQA balanced questions, ``vqa`` schema (one answer per question); splits train / validation / testdev."""

    VERSION = datasets.Version("1.2.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="balanced", version=VERSION, description="GQA 1.2 balanced questions")]
    DEFAULT_CONFIG_NAME = "balanced"

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
        image_dir = require_path(_NAME, data_dir / "images", _INSTRUCTIONS)
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "annotation_path": require_path(_NAME, data_dir / file_name, _INSTRUCTIONS),
                    "image_dir": image_dir,
                },
            )
            for split, file_name in _SPLITS.items()
        ]

    def _generate_examples(self, annotation_path: Path, image_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        questions = load_json(annotation_path)
        if not isinstance(questions, dict):
            raise InvalidExampleError(
                f"{annotation_path}: expected a JSON object {{question_id: {{imageId, question, answer, ...}}}}"
            )
        verify = self.config.verify_media

        def build(question_id: str, entry: dict[str, Any]) -> dict[str, Any]:
            try:
                image_id, question = entry["imageId"], entry["question"]
            except KeyError as err:
                raise InvalidExampleError(f"{annotation_path}: question {question_id} lacks the field {err}") from None
            return vqa_example(
                question_id,
                image_id,
                check_image(image_dir / f"{image_id}.jpg", verify=verify),
                question,
                answers=[entry["answer"]] if "answer" in entry else [],
            )

        examples = ((qid, lambda q=qid, e=entry: build(q, e)) for qid, entry in questions.items())
        yield from guarded_examples(self.config, examples, where=str(annotation_path))
