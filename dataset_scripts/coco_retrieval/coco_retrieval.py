"""COCO image-text retrieval on the Karpathy splits (the 5k test set): one row per image with its captions.

The files and the reader are those of ``coco_caption``; this builder only gives them the retrieval name,
description and card, so that recipes and results name the benchmark they use.
"""

from __future__ import annotations

import datasets

from vl_hub.data.load import builder_class
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
MS-COCO 2014 images and captions for image-to-text and text-to-image retrieval, on the Karpathy splits:
113,287 training images (train + restval), 5,000 validation and the 5,000-image (25,010-caption) test set
on which retrieval recall@K is reported. Each row holds one image and all of its captions.
"""

_HOMEPAGE = "https://cocodataset.org/#captions-2015"

_LICENSE = "CC BY 4.0 (annotations); images under their Flickr licences (see the COCO terms of use)"

_TASKS = ["image_text"]

_NAME = "coco_retrieval"

_INSTRUCTIONS = """\
The same files as coco_caption. Download and unpack into one folder (data_dir), without renaming anything:
  - http://images.cocodataset.org/zips/train2014.zip -> data_dir/train2014/COCO_train2014_*.jpg
  - http://images.cocodataset.org/zips/val2014.zip   -> data_dir/val2014/COCO_val2014_*.jpg
  - the Karpathy splits, https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip:
    put dataset_coco.json in data_dir/ (or keep it as data_dir/caption_datasets/dataset_coco.json)
LAVIS's re-packaged Karpathy files are read too, instead of dataset_coco.json: coco_karpathy_train.json,
coco_karpathy_val.json and coco_karpathy_test.json (from
https://storage.googleapis.com/sfr-vision-language-research/datasets/) in data_dir/ or data_dir/annotations/,
with the image folders in data_dir/ or data_dir/images/.
"""


class CocoRetrieval(builder_class("coco_caption")):  # type: ignore[misc]  # the base is loaded at import time
    """COCO retrieval (Karpathy 5k test), ``image_text`` schema; reads exactly what ``coco_caption`` reads."""

    _dataset_name = _NAME
    _instructions = _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=image_text_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )
