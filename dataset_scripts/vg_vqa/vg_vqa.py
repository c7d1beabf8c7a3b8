"""Visual Genome question answering: one row per question, one free-form answer.

The images (and the optional image_data.json) are laid out and found exactly as ``vg_caption`` finds them,
so this builder is ``vg_caption``'s with the question-answer files, reader and schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import InvalidExampleError, VlHubBuilderConfig, guarded_examples, load_json, vqa_example
from vl_hub.data.load import builder_class
from vl_hub.data.schemas import vqa_features

_CITATION = """\
@article{krishna2017visual,
  title={Visual Genome: Connecting Language and Vision Using Crowdsourced Dense Image Annotations},
  author={Krishna, Ranjay and Zhu, Yuke and Groth, Oliver and Johnson, Justin and Hata, Kenji and Kravitz, Joshua and
          Chen, Stephanie and Kalantidis, Yannis and Li, Li-Jia and Shamma, David A and Bernstein, Michael S and
          Fei-Fei, Li},
  journal={International Journal of Computer Vision},
  volume={123},
  pages={32--73},
  year={2017}
}
"""

_DESCRIPTION = """\
Visual Genome's free-form (about 1.7M) question-answer pairs (what / where / when / who / why / how) over 108,077
images; ALBEF and BLIP add them to VQAv2 when fine-tuning for VQA. One row per question with its single
answer, a single training split.
"""

_HOMEPAGE = "https://homes.cs.washington.edu/~ranjay/visualgenome/"

_LICENSE = "CC BY 4.0"

_TASKS = ["vqa"]

_NAME = "vg_vqa"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), from https://homes.cs.washington.edu/~ranjay/visualgenome/api.html
(version 1.2 / 1.4):
  - https://cs.stanford.edu/people/rak248/VG_100K_2/images.zip  -> data_dir/VG_100K/<image_id>.jpg
  - https://cs.stanford.edu/people/rak248/VG_100K_2/images2.zip -> data_dir/VG_100K_2/<image_id>.jpg
  - question_answers.json.zip -> data_dir/question_answers.json
  - image_data.json.zip       -> data_dir/image_data.json (optional: tells which folder holds each image;
                                 without it both folders are searched)
LAVIS's re-packaged vg_qa.json (https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/visual_genome/vg_qa.json)
is read instead when question_answers.json is absent, from data_dir/ or data_dir/annotations/. The image
folders may also sit in data_dir/images/.
"""


class VgVqa(builder_class("vg_caption")):  # type: ignore[misc]  # the base is loaded at import time
    """Visual Genome QA, ``vqa`` schema (one answer per question; no choices or rationales)."""

    VERSION = datasets.Version("1.2.0")
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="VG question-answer pairs")]
    DEFAULT_CONFIG_NAME = "default"

    _dataset_name = _NAME
    _instructions = _INSTRUCTIONS
    _official_file = "question_answers.json"
    _lavis_file = "vg_qa.json"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=vqa_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _generate_examples(
        self, annotation_path: Path, image_data_path: Path, image_root: Path
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if annotation_path.name == self._official_file:
            rows = _official_rows(annotation_path)
        else:
            rows = _lavis_rows(annotation_path)
        folders = self._image_folders(annotation_path, image_data_path)

        def examples() -> Iterator[tuple[str, Any]]:
            for question_id, image_id, question, answers in rows:
                yield (
                    question_id,
                    lambda q=question_id, i=image_id, text=question, a=answers: vqa_example(
                        q, i, self._image(image_root, i, folders), text, answers=a
                    ),
                )

        yield from guarded_examples(self.config, examples(), where=str(annotation_path))


def _official_rows(path: Path) -> list[tuple[str, str, str, list[str]]]:
    """(question_id, image_id, question, [answer]) from question_answers.json ([{id, qas: [...]}, ...])."""
    entries = load_json(path)
    if not isinstance(entries, list):
        raise InvalidExampleError(f"{path}: expected a JSON list of {{id, qas}} entries")
    rows = []
    for number, entry in enumerate(entries):
        image_id = entry.get("id", entry.get("image_id"))
        if image_id is None or "qas" not in entry:
            raise InvalidExampleError(f"{path}: entry {number} lacks 'id' or 'qas'")
        for qa in entry["qas"]:
            try:
                rows.append((str(qa["qa_id"]), str(image_id), qa["question"].strip(), [qa["answer"].strip()]))
            except KeyError as err:
                raise InvalidExampleError(f"{path}: a question of image {image_id} lacks the field {err}") from None
    return rows


def _lavis_rows(path: Path) -> list[tuple[str, str, str, list[str]]]:
    """LAVIS's vg_qa.json: [{image, question, answer, question_id?}]; the id is the entry index when absent."""
    entries = load_json(path)
    if not isinstance(entries, list):
        raise InvalidExampleError(f"{path}: expected a JSON list of {{image, question, answer}} entries")
    rows = []
    for number, entry in enumerate(entries):
        try:
            answer = entry["answer"]
            answers = [a.strip() for a in (answer if isinstance(answer, list) else [answer])]
            rows.append(
                (str(entry.get("question_id", number)), Path(entry["image"]).stem, entry["question"].strip(), answers)
            )
        except KeyError as err:
            raise InvalidExampleError(f"{path}: entry {number} lacks the field {err}") from None
    return rows
