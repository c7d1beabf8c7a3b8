"""SNLI-VE visual entailment: does a Flickr30K image entail, contradict or leave open a hypothesis?"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    check_image,
    first_dir,
    guarded_examples,
    iter_jsonl,
    missing_data_error,
    require_data_dir,
    require_path,
)
from vl_hub.data.schemas import ENTAILMENT_LABELS, entailment_features

_CITATION = """\
@article{xie2019visual,
  title={Visual Entailment: A Novel Task for Fine-Grained Image Understanding},
  author={Xie, Ning and Lai, Farley and Doran, Derek and Kadav, Asim},
  journal={arXiv preprint arXiv:1901.06706},
  year={2019}
}
@inproceedings{young2014image,
  title={From image descriptions to visual denotations},
  author={Young, Peter and Lai, Alice and Hodosh, Micah and Hockenmaier, Julia},
  booktitle={Transactions of the Association for Computational Linguistics},
  year={2014}
}
"""

_DESCRIPTION = """\
SNLI-VE replaces the text premise of SNLI with the Flickr30K image it was written about: given the image
and a hypothesis sentence, predict entailment, neutral or contradiction. 529,527 train, 17,858 dev and
17,901 test pairs over 31,783 images (the splits share no image).
"""

_HOMEPAGE = "https://github.com/necla-ml/SNLI-VE"

_LICENSE = "CC BY-SA 4.0 (SNLI annotations); Flickr30K images for research use only"

_TASKS = ["entailment"]

_NAME = "snli_ve"

_INSTRUCTIONS = """\
Put into one folder (data_dir), as https://github.com/necla-ml/SNLI-VE describes:
  - snli_ve_train.jsonl, snli_ve_dev.jsonl, snli_ve_test.jsonl (the "SNLI-VE train/dev/test split" links of the
    README) -> data_dir/ (or data_dir/annotations/)
  - the Flickr30K images, https://storage.googleapis.com/allennlp-public-data/snli-ve/flickr30k_images.tar.gz
    (what the repository's data/download script fetches) -> data_dir/flickr30k_images/<Flickr30K_ID>.jpg
    (the repository's layout data_dir/Flickr30K/flickr30k_images/ and the official folder name
    flickr30k-images/ are accepted too)
"""

_SPLITS = {datasets.Split.TRAIN: "train", datasets.Split.VALIDATION: "dev", datasets.Split.TEST: "test"}
_IMAGE_FOLDERS = ("flickr30k_images", "Flickr30K/flickr30k_images", "flickr30k-images")


class SnliVe(datasets.GeneratorBasedBuilder):
    """SNLI-VE, ``entailment`` schema (id = SNLI pairID, image_id = Flickr30K id, hypothesis = sentence2)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="SNLI-VE train/dev/test")]
    DEFAULT_CONFIG_NAME = "default"

    @property
    def manual_download_instructions(self) -> str:
        """Where to get the official files and how to lay them out in ``data_dir``."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=entailment_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir(_NAME, self.config.data_dir, _INSTRUCTIONS).absolute()
        image_dir = first_dir(data_dir / f for f in _IMAGE_FOLDERS)
        if image_dir is None:
            raise missing_data_error(_NAME, data_dir / _IMAGE_FOLDERS[0], _INSTRUCTIONS)
        annotation_dir = data_dir if (data_dir / "snli_ve_train.jsonl").is_file() else data_dir / "annotations"
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "annotation_path": require_path(_NAME, annotation_dir / f"snli_ve_{name}.jsonl", _INSTRUCTIONS),
                    "image_dir": image_dir,
                },
            )
            for split, name in _SPLITS.items()
        ]

    def _generate_examples(self, annotation_path: Path, image_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        verify = self.config.verify_media

        def build(line: int, row: Any) -> dict[str, Any]:
            if not isinstance(row, dict):
                raise InvalidExampleError(f"{annotation_path}: line {line} is not a JSON object")
            # Early releases spelled the image field "Flikr30kID" and kept the ".jpg".
            image_id = row.get("Flickr30K_ID", row.get("Flikr30kID"))
            missing = [k for k in ("pairID", "sentence2", "gold_label") if k not in row] + (
                ["Flickr30K_ID"] if image_id is None else []
            )
            if missing:
                raise InvalidExampleError(f"{annotation_path}: line {line} lacks the field(s) {missing}")
            image_id = str(image_id).removesuffix(".jpg")
            if row["gold_label"] not in ENTAILMENT_LABELS:
                raise InvalidExampleError(
                    f"{annotation_path}: line {line} has gold_label {row['gold_label']!r}; "
                    f"expected one of {list(ENTAILMENT_LABELS)}"
                )
            return {
                "id": row["pairID"],
                "image_id": image_id,
                "image": check_image(image_dir / f"{image_id}.jpg", verify=verify),
                "hypothesis": row["sentence2"],
                "label": row["gold_label"],
            }

        def examples() -> Iterator[tuple[str, Any]]:
            for line, row in iter_jsonl(annotation_path):
                if isinstance(row, Exception):
                    yield f"line-{line}", row
                else:
                    yield f"line-{line}", lambda line=line, row=row: build(line, row)

        yield from guarded_examples(self.config, examples(), where=str(annotation_path))
