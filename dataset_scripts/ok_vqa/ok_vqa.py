"""OK-VQA: COCO questions that need outside knowledge; one row per question with its 10 answers.

OK-VQA ships in the VQA file format, so the reader is ``coco_vqa``'s with OK-VQA's file names.
"""

from __future__ import annotations

import datasets

from vl_hub.data.builder_utils import VlHubBuilderConfig
from vl_hub.data.load import builder_class
from vl_hub.data.schemas import vqa_features

_CITATION = """\
@inproceedings{marino2019ok,
  title={{OK-VQA}: A Visual Question Answering Benchmark Requiring External Knowledge},
  author={Marino, Kenneth and Rastegari, Mohammad and Farhadi, Ali and Mottaghi, Roozbeh},
  booktitle={IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2019}
}
"""

_DESCRIPTION = """\
OK-VQA: 14,055 open-ended questions about COCO 2014 images whose answers need knowledge beyond the image
(9,009 training, 5,046 validation questions). Each question has 10 answers (5 annotators, each answer
counted twice, as distributed). The validation split is the benchmark's test set (LAVIS evaluates on it).
"""

_HOMEPAGE = "https://okvqa.allenai.org"

_LICENSE = "CC BY 4.0 (annotations); images under their Flickr licences (see the COCO terms of use)"

_TASKS = ["vqa"]

_NAME = "ok_vqa"

_INSTRUCTIONS = """\
Download and unpack into one folder (data_dir), from https://okvqa.allenai.org/download.html (OK-VQA v1.1):
  - OpenEnded_mscoco_train2014_questions.json.zip -> data_dir/OpenEnded_mscoco_train2014_questions.json
  - OpenEnded_mscoco_val2014_questions.json.zip   -> data_dir/OpenEnded_mscoco_val2014_questions.json
  - mscoco_train2014_annotations.json.zip         -> data_dir/mscoco_train2014_annotations.json
  - mscoco_val2014_annotations.json.zip           -> data_dir/mscoco_val2014_annotations.json
  - COCO images: http://images.cocodataset.org/zips/train2014.zip and val2014.zip
    -> data_dir/train2014/COCO_train2014_<12-digit id>.jpg, data_dir/val2014/COCO_val2014_<12-digit id>.jpg
The JSON files may also sit in data_dir/annotations/; the image folders in data_dir/images/.
"""


class OkVqa(builder_class("coco_vqa")):  # type: ignore[misc]  # the base is loaded at import time
    """OK-VQA, ``vqa`` schema: 10 answers per question; train and validation splits."""

    VERSION = datasets.Version("1.1.0")
    BUILDER_CONFIGS = [VlHubBuilderConfig(name="default", version=VERSION, description="OK-VQA v1.1 train/val")]
    DEFAULT_CONFIG_NAME = "default"

    _dataset_name = _NAME
    _instructions = _INSTRUCTIONS
    _split_files = {
        datasets.Split.TRAIN: (
            "OpenEnded_mscoco_train2014_questions.json",
            "mscoco_train2014_annotations.json",
            "train2014",
        ),
        datasets.Split.VALIDATION: (
            "OpenEnded_mscoco_val2014_questions.json",
            "mscoco_val2014_annotations.json",
            "val2014",
        ),
    }

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=vqa_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )
