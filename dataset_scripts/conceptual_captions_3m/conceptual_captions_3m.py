"""Conceptual Captions 3M (CC3M): ~3.3M web images with cleaned alt-text captions, read from the
webdataset tar shards that img2dataset writes (one row per image-caption pair)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, BinaryIO

import datasets

from vl_hub.data.builder_utils import VlHubBuilderConfig
from vl_hub.data.schemas import image_text_features
from vl_hub.data.webdataset import image_text_example, iter_webdataset_examples, shard_split_generator

_CITATION = """\
@inproceedings{sharma2018conceptual,
  title     = {Conceptual Captions: A Cleaned, Hypernymed, Image Alt-text Dataset For Automatic Image Captioning},
  author    = {Sharma, Piyush and Ding, Nan and Goodman, Sebastian and Soricut, Radu},
  booktitle = {Proceedings of the 56th Annual Meeting of the Association for Computational Linguistics (ACL)},
  pages     = {2556--2565},
  year      = {2018}
}
"""

_DESCRIPTION = """\
Conceptual Captions 3M: about 3.3M (image URL, caption) pairs harvested from the alt-text of web
images, with proper nouns hypernymed and captions cleaned. Google distributes the URL lists only;
the images are fetched with img2dataset into webdataset tar shards, which this builder reads (it
also streams). Used for vision-language pretraining (ALBEF, BLIP's 14M corpus).
"""

_HOMEPAGE = "https://ai.google.com/research/ConceptualCaptions/"

_LICENSE = "other"  # annotations: free to use with attribution to Google LLC; images keep their own rights

_TASKS = ["image_text"]

_INSTRUCTIONS = """\
CC3M is distributed as image URLs + captions; build webdataset shards with img2dataset
(pip install img2dataset), then pass the output folder as data_dir:

  1. Download "Training split" (Train_GCC-training.tsv, ~500MB) from
     https://ai.google.com/research/ConceptualCaptions/download
  2. Add column names:  sed -i '1s/^/caption\\turl\\n/' Train_GCC-training.tsv
  3. img2dataset --url_list Train_GCC-training.tsv --input_format tsv \\
         --url_col url --caption_col caption \\
         --output_format webdataset --output_folder cc3m_shards \\
         --processes_count 16 --thread_count 64 --image_size 256

data_dir (= cc3m_shards/) then holds, for each shard NNNNN:
  NNNNN.tar          webdataset shard: <key>.jpg, <key>.txt (caption), <key>.json (url, caption, key, ...)
  NNNNN.parquet      per-sample download status (not read)
  NNNNN_stats.json   shard statistics (not read)
Tar shards in sub-folders of data_dir are read too (sorted by path). The official validation split
(Validation_GCC-1.1.0-Validation.tsv) is built the same way into its own folder and loaded with
its own data_dir (it is then reported as this builder's single "train" split).
"""


class ConceptualCaptions3M(datasets.GeneratorBasedBuilder):
    """CC3M from img2dataset webdataset shards: one row per (image, caption) pair."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(name="default", version=VERSION, description="All shards in data_dir, one train split."),
    ]
    DEFAULT_CONFIG_NAME = "default"

    @property
    def manual_download_instructions(self) -> str:
        """How to build the shards with img2dataset from the official URL list."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=image_text_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        return [shard_split_generator("conceptual_captions_3m", self.config.data_dir, _INSTRUCTIONS, dl_manager)]

    def _generate_examples(
        self, shards: list[str], shard_names: list[str], archives: list[Iterable[tuple[str, BinaryIO]]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        build = partial(image_text_example, verify_media=self.config.verify_media)
        yield from iter_webdataset_examples(self.config, shards, shard_names, archives, build)
