"""Flickr30K with the Karpathy splits (the 1k test set): one row per image with its five captions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
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
@article{young2014image,
  title={From image descriptions to visual denotations: New similarity metrics for semantic inference over
         event descriptions},
  author={Young, Peter and Lai, Alice and Hodosh, Micah and Hockenmaier, Julia},
  journal={Transactions of the Association for Computational Linguistics},
  volume={2},
  pages={67--78},
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
31,783 Flickr photographs of everyday scenes, each with five crowd-sourced captions, on the Karpathy
splits: 29,000 training, 1,014 validation and 1,000 test images (the 1k test set of image-text retrieval
results). Each row holds one image and all of its captions.
"""

_HOMEPAGE = "https://shannon.cs.illinois.edu/DenotationGraph/"

_LICENSE = "Research use only (Flickr30K terms of use); images under their Flickr licences"

_TASKS = ["image_text"]

_NAME = "flickr30k"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), without renaming anything:
  - the Flickr30K images: request them at https://shannon.cs.illinois.edu/DenotationGraph/ (form), unpack
    flickr30k-images.tar -> data_dir/flickr30k-images/<id>.jpg
  - the Karpathy splits, https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip:
    put dataset_flickr30k.json in data_dir/ (or keep it as data_dir/caption_datasets/dataset_flickr30k.json)
LAVIS's re-packaged files are read too, instead of dataset_flickr30k.json: flickr30k_train.json,
flickr30k_val.json and flickr30k_test.json (from https://storage.googleapis.com/sfr-vision-language-research/datasets/)
in data_dir/ or data_dir/annotations/; their image paths ("flickr30k-images/<id>.jpg") are resolved against
data_dir/ or data_dir/images/.
"""

_KARPATHY_SPLITS = {
    datasets.Split.TRAIN: ("train", "restval"),
    datasets.Split.VALIDATION: ("val",),
    datasets.Split.TEST: ("test",),
}
_LAVIS_SPLITS = {datasets.Split.TRAIN: "train", datasets.Split.VALIDATION: "val", datasets.Split.TEST: "test"}
_IMAGE_FOLDER = "flickr30k-images"


class Flickr30k(datasets.GeneratorBasedBuilder):
    """Flickr30K, Karpathy splits, ``image_text`` schema (one row per image, all captions)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(name="karpathy", version=VERSION, description="Karpathy train/val/1k-test splits"),
    ]
    DEFAULT_CONFIG_NAME = "karpathy"

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=image_text_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(_NAME, self.config.data_dir, _INSTRUCTIONS).absolute()
        karpathy = first_file(
            [data_dir / "dataset_flickr30k.json", data_dir / "caption_datasets" / "dataset_flickr30k.json"]
        )
        if karpathy is not None:
            image_dir = data_dir / _IMAGE_FOLDER
            if not image_dir.is_dir():
                raise missing_data_error(_NAME, image_dir, _INSTRUCTIONS)
            return [
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={
                        "annotation_path": karpathy,
                        "image_root": image_dir,
                        "split": split,
                        "layout": "karpathy",
                    },
                )
                for split in _KARPATHY_SPLITS
            ]
        first_lavis = first_file(
            [data_dir / "flickr30k_train.json", data_dir / "annotations" / "flickr30k_train.json"]
        )
        if first_lavis is None:
            raise missing_data_error(_NAME, data_dir / "dataset_flickr30k.json", _INSTRUCTIONS)
        image_root = data_dir / "images" if (data_dir / "images" / _IMAGE_FOLDER).is_dir() else data_dir
        generators = []
        for split, suffix in _LAVIS_SPLITS.items():
            path = first_lavis.parent / f"flickr30k_{suffix}.json"
            if not path.is_file():
                raise missing_data_error(_NAME, path, _INSTRUCTIONS)
            generators.append(
                datasets.SplitGenerator(
                    name=split,
                    gen_kwargs={"annotation_path": path, "image_root": image_root, "split": split, "layout": "lavis"},
                )
            )
        return generators

    def _generate_examples(
        self, annotation_path: Path, image_root: Path, split: str, layout: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if layout == "karpathy":
            rows = karpathy_rows(annotation_path, _KARPATHY_SPLITS[split], _karpathy_image)
        else:
            # LAVIS paths read "flickr30k-images/<id>.jpg", relative to the folder holding flickr30k-images/.
            rows = lavis_caption_rows(annotation_path, _image_id)
        examples = image_text_examples(rows, image_root, verify=self.config.verify_media)
        yield from guarded_examples(self.config, examples, where=f"{annotation_path} [{split}]")


def _image_id(file_name: str) -> str:
    """``"flickr30k-images/1000092795.jpg"`` -> ``"1000092795"`` (the Flickr id is the file stem)."""
    return Path(file_name).stem


def _karpathy_image(image: dict[str, Any]) -> tuple[str, str]:
    """(Flickr id, file name inside flickr30k-images/) of an entry of dataset_flickr30k.json."""
    return _image_id(image["filename"]), image["filename"]
