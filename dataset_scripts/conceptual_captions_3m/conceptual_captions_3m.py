"""Conceptual Captions 3M (CC3M): ~3.3M web images with cleaned alt-text captions, read from the
webdataset tar shards that img2dataset writes (one row per image-caption pair)."""

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

_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
# webdataset convention: the sample key is the member path up to the first dot of its file name
_MEMBER = re.compile(r"^((?:.*/)?[^/.]+)\.([^/]*)$")


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
        data_dir = require_data_dir("conceptual_captions_3m", self.config.data_dir, _INSTRUCTIONS).resolve()
        shards = sorted(data_dir.rglob("*.tar"))
        if not shards:
            raise missing_data_error("conceptual_captions_3m", data_dir / "*.tar", _INSTRUCTIONS)
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
                caption = files["txt"].decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise InvalidExampleError(f"{shard}: member {key}.txt is not UTF-8 text ({err})") from err
        elif isinstance(meta.get("caption"), str):
            caption = meta["caption"].strip()
        else:
            raise InvalidExampleError(
                f"{shard}: sample {key!r} has no caption (no {key}.txt, no 'caption' in {key}.json)"
            )
        member = f"{key}.{image_ext}"
        if self.config.verify_media:
            _check_image_bytes(shard, member, files[image_ext])
        return {
            "image_id": str(meta.get("key") or key.rsplit("/", 1)[-1]),
            "image": {"path": member, "bytes": files[image_ext]},
            "captions": [caption],
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


def _json_member(shard: str, key: str, files: dict[str, bytes]) -> dict[str, Any]:
    if "json" not in files:
        return {}
    try:
        meta = json.loads(files["json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidExampleError(f"{shard}: member {key}.json is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise InvalidExampleError(f"{shard}: member {key}.json holds a {type(meta).__name__}, expected an object")
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
