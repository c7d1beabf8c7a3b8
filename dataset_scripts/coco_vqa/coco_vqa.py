"""VQA v2 on COCO: one row per question with its 10 human answers (none for the test split)."""

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
    missing_data_error,
    require_data_dir,
    vqa_example,
)
from vl_hub.data.schemas import vqa_features

_CITATION = """\
@inproceedings{goyal2017making,
  title={Making the {V} in {VQA} Matter: Elevating the Role of Image Understanding in Visual Question Answering},
  author={Goyal, Yash and Khot, Tejas and Summers-Stay, Douglas and Batra, Dhruv and Parikh, Devi},
  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2017}
}
"""

_DESCRIPTION = """\
VQA v2: open-ended questions about COCO images, balanced so that each question has complementary images
with different answers. 443,757 training and 214,354 validation questions, each with 10 answers from
different annotators (kept as given, repeats included, so that the VQA accuracy min(#matches / 3, 1) can be
computed); 447,793 test-2015 questions without answers (scored by the EvalAI server).
"""

_HOMEPAGE = "https://visualqa.org"

_LICENSE = "CC BY 4.0 (annotations); images under their Flickr licences (see the COCO terms of use)"

_TASKS = ["vqa"]

_NAME = "coco_vqa"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), from https://visualqa.org/download.html (VQA v2):
  - v2_Questions_Train_mscoco.zip   -> data_dir/v2_OpenEnded_mscoco_train2014_questions.json
  - v2_Questions_Val_mscoco.zip     -> data_dir/v2_OpenEnded_mscoco_val2014_questions.json
  - v2_Questions_Test_mscoco.zip    -> data_dir/v2_OpenEnded_mscoco_test2015_questions.json
  - v2_Annotations_Train_mscoco.zip -> data_dir/v2_mscoco_train2014_annotations.json
  - v2_Annotations_Val_mscoco.zip   -> data_dir/v2_mscoco_val2014_annotations.json
  - COCO images: http://images.cocodataset.org/zips/train2014.zip, val2014.zip, test2015.zip
    -> data_dir/train2014/COCO_train2014_<12-digit id>.jpg, data_dir/val2014/..., data_dir/test2015/...
The JSON files may also sit in data_dir/Questions/ and data_dir/Annotations/ (the VQA API layout) or
data_dir/annotations/; the image folders in data_dir/images/ or data_dir/Images/mscoco/.
"""

_JSON_FOLDERS = (".", "annotations", "Questions", "Annotations")
_IMAGE_FOLDERS = (".", "images", "Images/mscoco")


class CocoVqa(datasets.GeneratorBasedBuilder):
    """VQA v2 (COCO), ``vqa`` schema: 10 answers per question, none for test; no choices or rationales."""

    VERSION = datasets.Version("2.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="VQA v2 train/val/test-2015")]
    DEFAULT_CONFIG_NAME = "default"

    # Subclasses (ok_vqa: the same file format) change the name, texts and files.
    _dataset_name = _NAME
    _instructions = _INSTRUCTIONS
    #: split -> (questions file, annotations file or None for unlabelled splits, COCO image folder).
    _split_files: dict[str, tuple[str, str | None, str]] = {
        datasets.Split.TRAIN: (
            "v2_OpenEnded_mscoco_train2014_questions.json",
            "v2_mscoco_train2014_annotations.json",
            "train2014",
        ),
        datasets.Split.VALIDATION: (
            "v2_OpenEnded_mscoco_val2014_questions.json",
            "v2_mscoco_val2014_annotations.json",
            "val2014",
        ),
        datasets.Split.TEST: ("v2_OpenEnded_mscoco_test2015_questions.json", None, "test2015"),
    }

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return self._instructions

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=vqa_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(self._dataset_name, self.config.data_dir, self._instructions).absolute()
        generators = []
        for split, (questions, answers_file, folder) in self._split_files.items():
            answers_path = None if answers_file is None else self._locate(data_dir, answers_file, _JSON_FOLDERS)
            generators.append(
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={
                        "questions_path": self._locate(data_dir, questions, _JSON_FOLDERS),
                        "annotations_path": answers_path,
                        "image_dir": self._locate(data_dir, folder, _IMAGE_FOLDERS),
                        "folder": folder,
                    },
                )
            )
        return generators

    def _locate(self, data_dir: Path, name: str, folders: tuple[str, ...]) -> Path:
        """``data_dir/<one of folders>/name``, the first that exists; raises naming the first candidate."""
        candidates = [data_dir / folder / name for folder in folders]
        found = next((path for path in candidates if path.exists()), None)
        if found is None:
            raise missing_data_error(self._dataset_name, candidates[0], self._instructions)
        return found

    def _generate_examples(
        self, questions_path: Path, annotations_path: Path | None, image_dir: Path, folder: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        questions = _records(questions_path, "questions")
        answers: dict[Any, list[str]] | None = None
        if annotations_path is not None:
            answers = {}
            for annotation in _records(annotations_path, "annotations"):
                answers[annotation["question_id"]] = [a["answer"] for a in annotation["answers"]]
        verify = self.config.verify_media

        def build(question: dict[str, Any]) -> dict[str, Any]:
            question_id = question["question_id"]
            if answers is not None and question_id not in answers:
                raise InvalidExampleError(
                    f"{annotations_path}: no annotation for question {question_id} of {questions_path}"
                )
            image_id = question["image_id"]
            return vqa_example(
                str(question_id),
                str(image_id),
                check_image(image_dir / f"COCO_{folder}_{int(image_id):012d}.jpg", verify=verify),
                question["question"],
                answers=[] if answers is None else answers[question_id],
            )

        examples = ((str(q["question_id"]), lambda q=q: build(q)) for q in questions)
        yield from guarded_examples(self.config, examples, where=str(questions_path))


def _records(path: Path, key: str) -> list[dict[str, Any]]:
    """The ``key`` list of a VQA-format JSON file ({"questions": [...]} or {"annotations": [...]})."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise InvalidExampleError(f"{path}: expected the VQA format {{{key!r}: [...], ...}}")
    return data[key]
