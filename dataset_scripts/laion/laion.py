"""LAION image-text corpora (LAION-400M, LAION-2B-en/multi, BLIP's LAION-115M CapFilt), read from
the webdataset tar shards that img2dataset writes (one row per image-caption pair)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, BinaryIO

import datasets

from vl_hub.data.builder_utils import VlHubBuilderConfig
from vl_hub.data.schemas import image_text_features
from vl_hub.data.webdataset import image_text_example, iter_webdataset_examples, shard_split_generator

_CITATION = """\
@article{schuhmann2021laion400m,
  title   = {{LAION-400M}: Open Dataset of {CLIP}-Filtered 400 Million Image-Text Pairs},
  author  = {Schuhmann, Christoph and Vencu, Richard and Beaumont, Romain and Kaczmarczyk, Robert and
             Mullis, Clayton and Katta, Aarush and Coombes, Theo and Jitsev, Jenia and Komatsuzaki, Aran},
  journal = {arXiv preprint arXiv:2111.02114},
  year    = {2021}
}
@inproceedings{schuhmann2022laion5b,
  title     = {{LAION-5B}: An open large-scale dataset for training next generation image-text models},
  author    = {Schuhmann, Christoph and Beaumont, Romain and Vencu, Richard and Gordon, Cade and others},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS), Datasets and Benchmarks Track},
  year      = {2022}
}
"""

_DESCRIPTION = """\
LAION: web image-text pairs from Common Crawl, filtered by CLIP image-text similarity. LAION
distributes metadata (URL, caption, similarity, NSFW tag) as parquet files; the images are fetched
with img2dataset into webdataset tar shards, which this builder reads (it also streams). LAVIS
pretrains BLIP on LAION-115M (LAION-400M with BLIP CapFilt captions) and lists LAION-2B-multi.
"""

_HOMEPAGE = "https://laion.ai/"

_LICENSE = "cc-by-4.0"  # the metadata; images keep their own rights

_TASKS = ["image_text"]

_SHARDS_LAYOUT = """\
data_dir then holds, for each shard NNNNN (also in sub-folders, read sorted by path):
  NNNNN.tar          webdataset shard: <key>.jpg, <key>.txt (caption), <key>.json (url, caption, key, ...)
  NNNNN.parquet      per-sample download status (not read)
  NNNNN_stats.json   shard statistics (not read)
A sample's caption is its .txt; without one, the "caption" of its .json, or all strings when the
.json is a list of captions (LAVIS's own LAION-115M shards).
Note: LAION withdrew the original LAION-400M/5B metadata in Dec 2023 and re-released it as
Re-LAION-5B (https://laion.ai/blog/relaion-5b/); use the re-released parquet files where the
links below no longer resolve.
"""

_INSTRUCTIONS = {
    "laion400m": """\
LAION-400M is distributed as metadata parquet files; build webdataset shards with img2dataset
(pip install img2dataset), then pass the output folder as data_dir:

  # metadata: https://laion.ai/blog/laion-400-open-dataset/ (32 parquet files, columns URL, TEXT, ...)
  img2dataset --url_list laion400m-meta --input_format parquet \\
      --url_col URL --caption_col TEXT --save_additional_columns '["NSFW","similarity","LICENSE"]' \\
      --output_format webdataset --output_folder laion400m_shards \\
      --processes_count 16 --thread_count 64 --image_size 256

""",
    "laion2b_en": """\
LAION-2B-en is distributed as metadata parquet files; build webdataset shards with img2dataset
(pip install img2dataset), then pass the output folder as data_dir:

  # metadata: https://huggingface.co/datasets/laion/laion2B-en (128 parquet files, columns URL, TEXT, ...)
  img2dataset --url_list laion2B-en --input_format parquet \\
      --url_col URL --caption_col TEXT --save_additional_columns '["NSFW","similarity","LICENSE"]' \\
      --output_format webdataset --output_folder laion2b_en_shards \\
      --processes_count 16 --thread_count 64 --image_size 384 --resize_only_if_bigger True

""",
    "laion2b_multi": """\
LAION-2B-multi is distributed as metadata parquet files; build webdataset shards with img2dataset
(pip install img2dataset), then pass the output folder as data_dir:

  # metadata: https://huggingface.co/datasets/laion/laion2B-multi (128 parquet files, columns URL, TEXT, ...)
  img2dataset --url_list laion2B-multi --input_format parquet \\
      --url_col URL --caption_col TEXT --save_additional_columns '["NSFW","similarity","LICENSE"]' \\
      --output_format webdataset --output_folder laion2b_multi_shards \\
      --processes_count 16 --thread_count 64 --image_size 384 --resize_only_if_bigger True

""",
    "laion115m_capfilt": """\
LAION-115M with BLIP's filtered synthetic captions (the LAION part of BLIP/LAVIS pretraining) is a
JSON list of {"url", "caption"}; build webdataset shards with img2dataset
(pip install img2dataset), then pass the output folder as data_dir:

  wget https://storage.googleapis.com/sfr-vision-language-research/BLIP/datasets/laion_synthetic_filtered_large.json
  img2dataset --url_list laion_synthetic_filtered_large.json --input_format json \\
      --url_col url --caption_col caption \\
      --output_format webdataset --output_folder laion115m_shards \\
      --processes_count 16 --thread_count 64 --image_size 256

""",
}


class Laion(datasets.GeneratorBasedBuilder):
    """LAION from img2dataset webdataset shards: one row per (image, caption) pair; one config per subset."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    BUILDER_CONFIGS = [
        VlHubBuilderConfig(
            name="laion400m", version=VERSION, description="LAION-400M (English, CLIP ViT-B/32 filtered)."
        ),
        VlHubBuilderConfig(
            name="laion2b_en", version=VERSION, description="LAION-2B-en: the English part of LAION-5B."
        ),
        VlHubBuilderConfig(name="laion2b_multi", version=VERSION, description="LAION-2B-multi: 100+ other languages."),
        VlHubBuilderConfig(
            name="laion115m_capfilt", version=VERSION, description="LAION-115M with BLIP CapFilt synthetic captions."
        ),
    ]
    DEFAULT_CONFIG_NAME = "laion400m"

    @property
    def manual_download_instructions(self) -> str:
        """How to build this config's shards with img2dataset from the official metadata."""
        return _INSTRUCTIONS[self.config.name] + _SHARDS_LAYOUT

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=image_text_features(),
            homepage=_HOMEPAGE,
            license=_LICENSE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        return [shard_split_generator("laion", self.config.data_dir, self.manual_download_instructions, dl_manager)]

    def _generate_examples(
        self, shards: list[str], shard_names: list[str], archives: list[Iterable[tuple[str, BinaryIO]]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        # caption_lists: LAVIS's own LAION-115M shards carry no .txt, and a JSON list of captions
        build = partial(image_text_example, verify_media=self.config.verify_media, caption_lists=True)
        yield from iter_webdataset_examples(self.config, shards, shard_names, archives, build)
