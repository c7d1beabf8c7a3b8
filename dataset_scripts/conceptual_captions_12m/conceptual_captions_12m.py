"""Conceptual 12M (CC12M): ~12.4M web images with alt-text captions, read from the webdataset tar
shards that img2dataset writes (one row per image-caption pair)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, BinaryIO

import datasets

from vl_hub.data.builder_utils import VlHubBuilderConfig
from vl_hub.data.schemas import image_text_features
from vl_hub.data.webdataset import image_text_example, iter_webdataset_examples, shard_split_generator

_CITATION = """\
@inproceedings{changpinyo2021cc12m,
  title     = {{Conceptual 12M}: Pushing Web-Scale Image-Text Pre-Training To Recognize Long-Tail Visual Concepts},
  author    = {Changpinyo, Soravit and Sharma, Piyush and Ding, Nan and Soricut, Radu},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {3558--3568},
  year      = {2021}
}
"""

_DESCRIPTION = """\
Conceptual 12M: about 12.4M (image URL, caption) pairs collected with a relaxed version of the
Conceptual Captions 3M pipeline (person names replaced by <PERSON>), meant for vision-language
pretraining. Google distributes the URL list only; the images are fetched with img2dataset into
webdataset tar shards, which this builder reads (it also streams). Part of BLIP's 129M corpus.
"""

_HOMEPAGE = "https://github.com/google-research-datasets/conceptual-12m"

_LICENSE = "other"  # annotations: free to use with attribution to Google LLC; images keep their own rights

_TASKS = ["image_text"]

_INSTRUCTIONS = """\
CC12M is distributed as image URLs + captions; build webdataset shards with img2dataset
(pip install img2dataset), then pass the output folder as data_dir:

  wget https://storage.googleapis.com/conceptual_12m/cc12m.tsv        # 2.6GB, url<TAB>caption
  sed -i '1s/^/url\\tcaption\\n/' cc12m.tsv                          # add column names
  img2dataset --url_list cc12m.tsv --input_format tsv \\
      --url_col url --caption_col caption \\
      --output_format webdataset --output_folder cc12m_shards \\
      --processes_count 16 --thread_count 64 --image_size 256

data_dir (= cc12m_shards/) then holds, for each shard NNNNN:
  NNNNN.tar          webdataset shard: <key>.jpg, <key>.txt (caption), <key>.json (url, caption, key, ...)
  NNNNN.parquet      per-sample download status (not read)
  NNNNN_stats.json   shard statistics (not read)
Tar shards in sub-folders of data_dir are read too (sorted by path).
"""


class ConceptualCaptions12M(datasets.GeneratorBasedBuilder):
    """CC12M from img2dataset webdataset shards: one row per (image, caption) pair."""

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
        return [shard_split_generator("conceptual_captions_12m", self.config.data_dir, _INSTRUCTIONS, dl_manager)]

    def _generate_examples(
        self, shards: list[str], shard_names: list[str], archives: list[Iterable[tuple[str, BinaryIO]]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        build = partial(image_text_example, verify_media=self.config.verify_media)
        yield from iter_webdataset_examples(self.config, shards, shard_names, archives, build)
