"""COCO Captions with the Karpathy splits: one row per image with all of its reference captions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    first_file,
    guarded_examples,
    image_text_examples,
    karpathy_rows,
    lavis_caption_rows,
    missing_data_error,
    require_data_dir,
)
from vl_hub.data.schemas import image_text_features

_CITATION = """\
@inproceedings{lin2014microsoft,
  title={Microsoft {COCO}: Common Objects in Context},
  author={Lin, Tsung-Yi and Maire, Michael and Belongie, Serge and Hays, James and Perona, Pietro and
          Ramanan, Deva and Doll{\\'a}r, Piotr and Zitnick, C. Lawrence},
  booktitle={European Conference on Computer Vision (ECCV)},
  year={2014}
}
@inproceedings{karpathy2015deep,
  title={Deep Visual-Semantic Alignments for Generating Image Descriptions},
  author={Karpathy, Andrej and Fei-Fei, Li},
  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2015}
}
"""

_DESCRIPTION = """\
MS-COCO 2014 images with their human-written captions (about 5 per image), split the way Karpathy &
Fei-Fei (2015) did: 113,287 training images (train + restval), 5,000 validation and 5,000 test images.
Each row holds one image and all of its captions.
"""

_HOMEPAGE = "https://cocodataset.org/#captions-2015"

_LICENSE = "CC BY 4.0 (annotations); images under their Flickr licences (see the COCO terms of use)"

_TASKS = ["image_text"]

_NAME = "coco_caption"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), without renaming anything:
  - http://images.cocodataset.org/zips/train2014.zip -> data_dir/train2014/COCO_train2014_*.jpg
  - http://images.cocodataset.org/zips/val2014.zip   -> data_dir/val2014/COCO_val2014_*.jpg
  - the Karpathy splits, https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip:
    put dataset_coco.json in data_dir/ (or keep it as data_dir/caption_datasets/dataset_coco.json)
LAVIS's re-packaged Karpathy files are read too, instead of dataset_coco.json: coco_karpathy_train.json,
coco_karpathy_val.json and coco_karpathy_test.json (from
https://storage.googleapis.com/sfr-vision-language-research/datasets/) in data_dir/ or data_dir/annotations/,
with the image folders in data_dir/ or data_dir/images/.
"""

#: our split -> the Karpathy "split" values it gathers (restval joins train, as in every captioning paper).
_KARPATHY_SPLITS = {
    datasets.Split.TRAIN: ("train", "restval"),
    datasets.Split.VALIDATION: ("val",),
    datasets.Split.TEST: ("test",),
}
#: our split -> LAVIS's file suffix.
_LAVIS_SPLITS = {datasets.Split.TRAIN: "train", datasets.Split.VALIDATION: "val", datasets.Split.TEST: "test"}


def coco_image_id(file_name: str) -> str:
    """``"COCO_val2014_000000391895.jpg"`` -> ``"391895"`` (the COCO id, without zero padding)."""
    stem = Path(file_name).stem
    try:
        return str(int(stem.rsplit("_", 1)[-1]))
    except ValueError:
        raise InvalidExampleError(
            f"image name {file_name!r} is not a COCO file name (COCO_<split>_<12-digit id>.jpg)"
        ) from None


class CocoCaption(datasets.GeneratorBasedBuilder):
    """COCO Captions, Karpathy splits, ``image_text`` schema (one row per image, all captions)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(name="karpathy", version=VERSION, description="Karpathy train(+restval)/val/test splits"),
    ]
    DEFAULT_CONFIG_NAME = "karpathy"

    # Subclasses (coco_retrieval) reuse the reader under their own name and texts.
    _dataset_name = _NAME
    _instructions = _INSTRUCTIONS

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
        karpathy = first_file(
            [data_dir / "dataset_coco.json", data_dir / "caption_datasets" / "dataset_coco.json"]
        )
        if karpathy is not None:
            self._require_image_folders(data_dir)
            return [
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={
                        "annotation_path": karpathy,
                        "image_root": data_dir,
                        "split": split,
                        "layout": "karpathy",
                    },
                )
                for split in _KARPATHY_SPLITS
            ]
        lavis_dir = first_file(
            [data_dir / "coco_karpathy_train.json", data_dir / "annotations" / "coco_karpathy_train.json"]
        )
        if lavis_dir is None:
            raise missing_data_error(self._dataset_name, data_dir / "dataset_coco.json", self._instructions)
        lavis_dir = lavis_dir.parent
        image_root = data_dir / "images" if (data_dir / "images").is_dir() else data_dir
        self._require_image_folders(image_root)
        generators = []
        for split, suffix in _LAVIS_SPLITS.items():
            path = lavis_dir / f"coco_karpathy_{suffix}.json"
            if not path.is_file():
                raise missing_data_error(self._dataset_name, path, self._instructions)
            generators.append(
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={"annotation_path": path, "image_root": image_root, "split": split, "layout": "lavis"},
                )
            )
        return generators

    def _require_image_folders(self, image_root: Path) -> None:
        """Fails early, with the instructions, when neither COCO 2014 image folder is there."""
        if not any((image_root / folder).is_dir() for folder in ("train2014", "val2014")):
            raise missing_data_error(self._dataset_name, image_root / "train2014", self._instructions)

    def _generate_examples(
        self, annotation_path: Path, image_root: Path, split: str, layout: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if layout == "karpathy":
            rows = karpathy_rows(annotation_path, _KARPATHY_SPLITS[split], _karpathy_image)
        else:
            rows = lavis_caption_rows(annotation_path, coco_image_id)
        examples = image_text_examples(rows, image_root, verify=self.config.verify_media)
        yield from guarded_examples(self.config, examples, where=f"{annotation_path} [{split}]")


def _karpathy_image(image: dict[str, Any]) -> tuple[str, str]:
    """(COCO id, image path relative to data_dir) of an entry of dataset_coco.json."""
    image_id = str(image["cocoid"]) if "cocoid" in image else coco_image_id(image["filename"])
    relative = f"{image['filepath']}/{image['filename']}" if image.get("filepath") else image["filename"]
    return image_id, relative
