"""Visual Genome question answering: one row per question, one free-form answer."""

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
)
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

_FOLDERS = ("VG_100K", "VG_100K_2")


class VgVqa(datasets.GeneratorBasedBuilder):
    """Visual Genome QA, ``vqa`` schema (one answer per question; no choices or rationales)."""

    VERSION = datasets.Version("1.2.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="VG question-answer pairs")]
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
        image_root = data_dir / "images" if (data_dir / "images" / _FOLDERS[0]).is_dir() else data_dir
        if not any((image_root / folder).is_dir() for folder in _FOLDERS):
            raise missing_data_error(_NAME, data_dir / _FOLDERS[0], _INSTRUCTIONS)
        official = data_dir / "question_answers.json"
        lavis = next(
            (p for p in (data_dir / "vg_qa.json", data_dir / "annotations" / "vg_qa.json") if p.is_file()), None
        )
        if not official.is_file() and lavis is None:
            raise missing_data_error(_NAME, official, _INSTRUCTIONS)
        return [
            datasets.SplitGenerator(
                name=datasets.Split.TRAIN,
                gen_kwargs={
                    "annotation_path": official if official.is_file() else lavis,
                    "image_data_path": data_dir / "image_data.json",
                    "image_root": image_root,
                },
            )
        ]

    def _generate_examples(
        self, annotation_path: Path, image_data_path: Path, image_root: Path
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if annotation_path.name == "question_answers.json":
            rows = _official_rows(annotation_path)
            folders = _image_folders(image_data_path) if image_data_path.is_file() else {}
        else:
            rows = _lavis_rows(annotation_path)
            folders = {}
        verify = self.config.verify_media

        def examples() -> Iterator[tuple[str, Any]]:
            for question_id, image_id, question, answers in rows:
                yield (
                    question_id,
                    lambda q=question_id, i=image_id, text=question, a=answers: {
                        "question_id": q,
                        "image_id": i,
                        "image": check_image(_vg_image_path(image_root, i, folders), verify=verify),
                        "question": text,
                        "answers": a,
                        "choices": [],
                        "correct_choice": -1,
                        "rationales": [],
                    },
                )

        yield from guarded_examples(self.config, examples(), where=str(annotation_path))


def _vg_image_path(image_root: Path, image_id: str, folders: dict[str, str]) -> Path:
    """``image_root/<VG_100K or VG_100K_2>/<image_id>.jpg``: the folder from image_data.json, else the one
    holding the file."""
    if image_id in folders:
        return image_root / folders[image_id] / f"{image_id}.jpg"
    candidates = [image_root / folder / f"{image_id}.jpg" for folder in _FOLDERS]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise InvalidExampleError(
            f"image {image_id} is in neither {candidates[0]} nor {candidates[1]}; check the download is complete"
        )
    return found


def _image_folders(path: Path) -> dict[str, str]:
    """image id -> folder name, from the ``url`` of each entry of image_data.json (".../VG_100K_2/1.jpg")."""
    folders = {}
    for entry in load_json(path):
        image_id = entry.get("image_id", entry.get("id"))
        url = entry.get("url", "")
        if image_id is not None and "/" in url:
            folders[str(image_id)] = url.rsplit("/", 2)[-2]
    return folders


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
