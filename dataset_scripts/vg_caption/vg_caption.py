"""Visual Genome region descriptions as captions: one row per image with all of its region phrases."""

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
    load_json,
    missing_data_error,
    require_data_dir,
)
from vl_hub.data.schemas import image_text_features

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
Visual Genome (108,077 images) describes each image with about 50 region descriptions ("man wearing a
white shirt"). ALBEF and BLIP pretrain on these phrases as image captions. One row per image with all of
its region phrases, in file order; a single training split.
"""

_HOMEPAGE = "https://homes.cs.washington.edu/~ranjay/visualgenome/"

_LICENSE = "CC BY 4.0"

_TASKS = ["image_text"]

_NAME = "vg_caption"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), from https://homes.cs.washington.edu/~ranjay/visualgenome/api.html
(version 1.2 / 1.4):
  - https://cs.stanford.edu/people/rak248/VG_100K_2/images.zip  -> data_dir/VG_100K/<image_id>.jpg
  - https://cs.stanford.edu/people/rak248/VG_100K_2/images2.zip -> data_dir/VG_100K_2/<image_id>.jpg
  - region_descriptions.json.zip -> data_dir/region_descriptions.json
  - image_data.json.zip          -> data_dir/image_data.json (optional: tells which folder holds each image;
                                    without it both folders are searched)
LAVIS's re-packaged vg_caption.json (https://storage.googleapis.com/sfr-vision-language-research/LAVIS/datasets/visual_genome/vg_caption.json,
one entry per phrase) is read instead when region_descriptions.json is absent, from data_dir/ or
data_dir/annotations/. The image folders may also sit in data_dir/images/.
"""

_FOLDERS = ("VG_100K", "VG_100K_2")


class VgCaption(datasets.GeneratorBasedBuilder):
    """Visual Genome region descriptions, ``image_text`` schema (one row per image, all its phrases)."""

    VERSION = datasets.Version("1.2.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="VG region phrases per image")]
    DEFAULT_CONFIG_NAME = "default"

    # vg_vqa reads the same images and image_data.json with its own annotation files and texts.
    _dataset_name = _NAME
    _instructions = _INSTRUCTIONS
    _official_file = "region_descriptions.json"
    _lavis_file = "vg_caption.json"

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return self._instructions

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=image_text_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(self._dataset_name, self.config.data_dir, self._instructions).absolute()
        image_root = data_dir / "images" if (data_dir / "images" / _FOLDERS[0]).is_dir() else data_dir
        if not any((image_root / folder).is_dir() for folder in _FOLDERS):
            raise missing_data_error(self._dataset_name, data_dir / _FOLDERS[0], self._instructions)
        official = data_dir / self._official_file
        lavis = first_file([data_dir / self._lavis_file, data_dir / "annotations" / self._lavis_file])
        if not official.is_file() and lavis is None:
            raise missing_data_error(self._dataset_name, official, self._instructions)
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
        if annotation_path.name == self._official_file:
            rows = _official_rows(annotation_path)
        else:
            rows = _lavis_rows(annotation_path)
        folders = self._image_folders(annotation_path, image_data_path)

        def examples() -> Iterator[tuple[str, Any]]:
            for image_id, captions in rows:
                yield (
                    image_id,
                    lambda image_id=image_id, captions=captions: {
                        "image_id": image_id,
                        "image": self._image(image_root, image_id, folders),
                        "captions": captions,
                    },
                )

        yield from guarded_examples(self.config, examples(), where=str(annotation_path))

    def _image_folders(self, annotation_path: Path, image_data_path: Path) -> dict[str, str]:
        """image id -> folder (VG_100K or VG_100K_2), from the official release's image_data.json when it is
        there (it is optional); empty for LAVIS's files, whose images are then looked up in both folders."""
        if annotation_path.name != self._official_file or not image_data_path.is_file():
            return {}
        return _read_image_data(image_data_path)

    def _image(self, image_root: Path, image_id: str, folders: dict[str, str]) -> str:
        """The checked path of image ``image_id`` (see :func:`vg_image_path`), as a string."""
        return check_image(vg_image_path(image_root, image_id, folders), verify=self.config.verify_media)


def vg_image_path(image_root: Path, image_id: str, folders: dict[str, str]) -> Path:
    """``image_root/<VG_100K or VG_100K_2>/<image_id>.jpg``: the folder from image_data.json, else the one
    holding the file."""
    if image_id in folders:
        return image_root / folders[image_id] / f"{image_id}.jpg"
    candidates = [image_root / folder / f"{image_id}.jpg" for folder in _FOLDERS]
    found = first_file(candidates)
    if found is None:
        raise InvalidExampleError(
            f"image {image_id} is in neither {candidates[0]} nor {candidates[1]}; check the download is complete"
        )
    return found


def _read_image_data(path: Path) -> dict[str, str]:
    """image id -> folder name, from the ``url`` of each entry of image_data.json (".../VG_100K_2/1.jpg")."""
    folders = {}
    for entry in load_json(path):
        image_id = entry.get("image_id", entry.get("id"))
        url = entry.get("url", "")
        if image_id is not None and "/" in url:
            folders[str(image_id)] = url.rsplit("/", 2)[-2]
    return folders


def _official_rows(path: Path) -> list[tuple[str, list[str]]]:
    entries = load_json(path)
    if not isinstance(entries, list):
        raise InvalidExampleError(f"{path}: expected a JSON list of {{id, regions}} entries")
    rows = []
    for number, entry in enumerate(entries):
        image_id = entry.get("id", entry.get("image_id"))
        regions = entry.get("regions")
        if image_id is None or regions is None:
            raise InvalidExampleError(f"{path}: entry {number} lacks 'id' or 'regions'")
        phrases = [region["phrase"].strip() for region in regions]
        if phrases:
            rows.append((str(image_id), phrases))
    return rows


def _lavis_rows(path: Path) -> list[tuple[str, list[str]]]:
    """LAVIS's vg_caption.json: one {image, caption, image_id} entry per phrase; grouped by image file."""
    entries = load_json(path)
    if not isinstance(entries, list):
        raise InvalidExampleError(f"{path}: expected a JSON list of {{image, caption}} entries")
    grouped: dict[str, list[str]] = {}
    for number, entry in enumerate(entries):
        if "image" not in entry or "caption" not in entry:
            raise InvalidExampleError(f"{path}: entry {number} lacks 'image' or 'caption'")
        grouped.setdefault(Path(entry["image"]).stem, []).append(entry["caption"].strip())
    return list(grouped.items())
