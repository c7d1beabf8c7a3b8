"""SBU Captioned Photo Dataset: 1M Flickr images with their user-written captions, read from the
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
@inproceedings{ordonez2011im2text,
  title     = {Im2Text: Describing Images Using 1 Million Captioned Photographs},
  author    = {Ordonez, Vicente and Kulkarni, Girish and Berg, Tamara L.},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2011}
}
"""

_DESCRIPTION = """\
SBU Captions: one million Flickr photographs with the captions their owners wrote, filtered to
captions that describe visible content. Distributed as URL + caption lists; the images are fetched
with img2dataset into webdataset tar shards, which this builder reads (it also streams). Used for
vision-language pretraining (ALBEF, BLIP).
"""

_HOMEPAGE = "https://www.cs.rice.edu/~vo9/sbucaptions/"

_LICENSE = "other"  # captions released for research; each image keeps its Flickr owner's licence

_TASKS = ["image_text"]

_INSTRUCTIONS = """\
SBU Captions is distributed as image URLs + captions; build webdataset shards with img2dataset
(pip install img2dataset), then pass the output folder as data_dir:

  wget https://www.cs.rice.edu/~vo9/sbucaptions/sbu-captions-all.tar.gz
  tar -xzf sbu-captions-all.tar.gz            # -> sbu-captions-all.json
  img2dataset --url_list sbu-captions-all.json --input_format json \\
      --url_col image_urls --caption_col captions \\
      --output_format webdataset --output_folder sbu_shards \\
      --processes_count 16 --thread_count 64 --image_size 256

data_dir (= sbu_shards/) then holds, for each shard NNNNN:
  NNNNN.tar          webdataset shard: <key>.jpg, <key>.txt (caption), <key>.json (url, caption, key, ...)
  NNNNN.parquet      per-sample download status (not read)
  NNNNN_stats.json   shard statistics (not read)
Tar shards in sub-folders of data_dir are read too (sorted by path).
"""


class SbuCaption(datasets.GeneratorBasedBuilder):
    """SBU Captions from img2dataset webdataset shards: one row per (image, caption) pair."""

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
        return [shard_split_generator("sbu_caption", self.config.data_dir, _INSTRUCTIONS, dl_manager)]

    def _generate_examples(
        self, shards: list[str], shard_names: list[str], archives: list[Iterable[tuple[str, BinaryIO]]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        build = partial(image_text_example, verify_media=self.config.verify_media)
        yield from iter_webdataset_examples(self.config, shards, shard_names, archives, build)
