"""LAION image-text corpora (LAION-400M, LAION-2B-en/multi, BLIP's LAION-115M CapFilt), read from
the webdataset tar shards that img2dataset writes (one row per image-caption pair)."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, BinaryIO

import datasets

from vl_hub.data.builder_utils import (
    InvalidExampleError,
    VlHubBuilderConfig,
    guarded_examples,
    missing_data_error,
    require_data_dir,
)
from vl_hub.data.schemas import image_text_features

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

_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
# webdataset convention: the sample key is the member path up to the first dot of its file name
_MEMBER = re.compile(r"^((?:.*/)?[^/.]+)\.([^/]*)$")


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
        data_dir = require_data_dir("laion", self.config.data_dir, self.manual_download_instructions).resolve()
        shards = sorted(data_dir.rglob("*.tar"))
        if not shards:
            raise missing_data_error("laion", data_dir / "*.tar", self.manual_download_instructions)
        return [
            datasets.SplitGenerator(
                name=datasets.Split.TRAIN,
                gen_kwargs={
                    "shards": [str(p) for p in shards],
                    "shard_names": [p.relative_to(data_dir).as_posix() for p in shards],
                    # iter_archive reads tars the same way whether preparing or streaming
                    "archives": [dl_manager.iter_archive(str(p)) for p in shards],
                },
            )
        ]

    def _generate_examples(
        self, shards: list[str], shard_names: list[str], archives: list[Iterable[tuple[str, BinaryIO]]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        for shard, shard_name, archive in zip(shards, shard_names, archives, strict=True):
            examples = (
                (
                    f"{shard_name}/{key}",
                    files if isinstance(files, Exception) else partial(self._example, shard, key, files),
                )
                for key, files in _samples(shard, archive)
            )
            yield from guarded_examples(self.config, examples, where=shard)

    def _example(self, shard: str, key: str, files: dict[str, bytes]) -> dict[str, Any]:
        image_ext = next((ext for ext in _IMAGE_EXTENSIONS if ext in files), None)
        if image_ext is None:
            raise InvalidExampleError(
                f"{shard}: sample {key!r} has no image member (.{'/.'.join(_IMAGE_EXTENSIONS)}); it has {sorted(files)}"
            )
        meta = _json_member(shard, key, files)
        if "txt" in files:
            try:
                captions = [files["txt"].decode("utf-8").strip()]
            except UnicodeDecodeError as err:
                raise InvalidExampleError(f"{shard}: member {key}.txt is not UTF-8 text ({err})") from err
        elif isinstance(meta, list) and meta and all(isinstance(c, str) for c in meta):
            captions = [c.strip() for c in meta]
        elif isinstance(meta, dict) and isinstance(meta.get("caption"), str):
            captions = [meta["caption"].strip()]
        else:
            raise InvalidExampleError(
                f"{shard}: sample {key!r} has no caption (no {key}.txt, no 'caption' or caption list in {key}.json)"
            )
        member = f"{key}.{image_ext}"
        if self.config.verify_media:
            _check_image_bytes(shard, member, files[image_ext])
        return {
            "image_id": str((meta.get("key") if isinstance(meta, dict) else None) or key.rsplit("/", 1)[-1]),
            "image": {"path": member, "bytes": files[image_ext]},
            "captions": captions,
        }


def _samples(
    shard: str, archive: Iterable[tuple[str, BinaryIO]]
) -> Iterator[tuple[str, dict[str, bytes] | InvalidExampleError]]:
    """Groups consecutive tar members sharing a key into ``(key, {extension: bytes})``.

    The bytes are read while the tar stream is positioned on the member: a streamed tar cannot seek back.
    A truncated or corrupt tar ends the shard with one ``(key, InvalidExampleError)`` item, so that
    ``skip_invalid`` keeps the samples read before the damage.
    """
    key: str | None = None
    files: dict[str, bytes] = {}
    try:
        for name, fileobj in archive:
            match = _MEMBER.match(name)
            if match is None:  # no extension: not part of any sample
                continue
            member_key, ext = match.group(1), match.group(2).lower()
            if member_key != key:
                if key is not None:
                    yield key, files
                key, files = member_key, {}
            files[ext] = fileobj.read()
    except (tarfile.TarError, EOFError, OSError) as err:
        where = f"after sample {key!r}" if key is not None else "at its start"
        yield (
            f"{key}#unreadable",
            InvalidExampleError(
                f"{shard}: the tar archive is truncated or corrupt {where} ({type(err).__name__}: {err}); "
                "re-download the shard, or pass skip_invalid=True to keep the samples before the damage"
            ),
        )
        return
    if key is not None:
        yield key, files


def _json_member(shard: str, key: str, files: dict[str, bytes]) -> dict[str, Any] | list[Any]:
    if "json" not in files:
        return {}
    try:
        meta = json.loads(files["json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidExampleError(f"{shard}: member {key}.json is not valid JSON ({err})") from err
    if not isinstance(meta, (dict, list)):
        raise InvalidExampleError(
            f"{shard}: member {key}.json holds a {type(meta).__name__}, expected an object or a list of captions"
        )
    return meta


def _check_image_bytes(shard: str, member: str, data: bytes) -> None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception as err:  # PIL raises many types for bad files
        raise InvalidExampleError(
            f"{shard}: member {member} cannot be decoded as an image ({type(err).__name__}: {err}); "
            "re-download the shard, or pass skip_invalid=True to skip such samples"
        ) from err
