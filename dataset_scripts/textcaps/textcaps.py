"""TextCaps: captions that read the text in the image (TextVQA images), one row per image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    annotation_image_split_generators,
    guarded_examples,
    image_text_examples,
    load_json,
    require_data_dir,
)
from vl_hub.data.schemas import image_text_features

_CITATION = """\
@inproceedings{sidorov2020textcaps,
  title={TextCaps: a Dataset for Image Captioning with Reading Comprehension},
  author={Sidorov, Oleksii and Hu, Ronghang and Rohrbach, Marcus and Singh, Amanpreet},
  booktitle={European Conference on Computer Vision (ECCV)},
  year={2020}
}
"""

_DESCRIPTION = """\
TextCaps asks for captions that read and use the text in the image: 145k captions for 28k Open Images
photographs (the TextVQA images). Training and validation images have 5 captions each (train: 21,953
images, val: 3,166); the 3,289 test images have none (their captions are held by the evaluation server).
One row per image with all of its captions.
"""

_HOMEPAGE = "https://textvqa.org/textcaps"

_LICENSE = "CC BY 4.0 (annotations); images under CC BY 2.0 (Open Images)"

_TASKS = ["image_text"]

_NAME = "textcaps"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), from https://textvqa.org/textcaps/dataset:
  - https://dl.fbaipublicfiles.com/textvqa/data/textcaps/TextCaps_0.1_train.json
  - https://dl.fbaipublicfiles.com/textvqa/data/textcaps/TextCaps_0.1_val.json
  - https://dl.fbaipublicfiles.com/textvqa/data/textcaps/TextCaps_0.1_test.json
  - https://dl.fbaipublicfiles.com/textvqa/images/train_val_images.zip -> data_dir/train_images/<image_id>.jpg
  - https://dl.fbaipublicfiles.com/textvqa/images/test_images.zip      -> data_dir/test_images/<image_id>.jpg
"""

#: split -> (annotation file, image folder). Validation images live with the training images.
_SPLITS = {
    datasets.Split.TRAIN: ("TextCaps_0.1_train.json", "train_images"),
    datasets.Split.VALIDATION: ("TextCaps_0.1_val.json", "train_images"),
    datasets.Split.TEST: ("TextCaps_0.1_test.json", "test_images"),
}


class Textcaps(datasets.GeneratorBasedBuilder):
    """TextCaps 0.1, ``image_text`` schema (one row per image; test rows have no captions)."""

    VERSION = datasets.Version("0.1.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="TextCaps 0.1")]
    DEFAULT_CONFIG_NAME = "default"

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
        return annotation_image_split_generators(_NAME, data_dir, _SPLITS, _INSTRUCTIONS)

    def _generate_examples(self, annotation_path: Path, image_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        data = load_json(annotation_path)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise InvalidExampleError(f"{annotation_path}: expected the TextCaps format {{'data': [...], ...}}")
        # One entry per caption (train/val) or per image (test): group captions by image, in file order.
        grouped: dict[str, list[str]] = {}
        for number, entry in enumerate(data["data"]):
            if "image_id" not in entry:
                raise InvalidExampleError(f"{annotation_path}: data[{number}] has no 'image_id'")
            captions = grouped.setdefault(entry["image_id"], [])
            if "caption_str" in entry:
                captions.append(entry["caption_str"].strip())
        rows = [(image_id, f"{image_id}.jpg", captions) for image_id, captions in grouped.items()]
        examples = image_text_examples(rows, image_dir, verify=self.config.verify_media)
        yield from guarded_examples(self.config, examples, where=str(annotation_path))
