"""Test-only builder over webdataset shards as img2dataset writes them: ``data_dir/train-*.tar``, each
holding ``<key>.jpg``, ``<key>.txt`` (the caption) and ``<key>.json`` (``{"key", "caption", "url", ...}``)
consecutively. Reads the tars through ``dl_manager.iter_archive`` so it streams as well as prepares.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import datasets

from vl_hub.data.builder_utils import VlHubBuilderConfig, require_data_dir
from vl_hub.data.schemas import image_text_features

_INSTRUCTIONS = "data_dir must hold train-00000.tar, ... (img2dataset webdataset output)."


class WdsPairs(datasets.GeneratorBasedBuilder):
    """image_text rows from webdataset tar shards."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(features=image_text_features())

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir("wds_pairs", self.config.data_dir, _INSTRUCTIONS)
        shards = sorted(str(p) for p in data_dir.glob("train-*.tar"))
        return [
            datasets.SplitGenerator(
                name=datasets.Split.TRAIN, gen_kwargs={"shards": [dl_manager.iter_archive(s) for s in shards]}
            )
        ]

    def _generate_examples(self, shards: list[Iterable[tuple[str, BinaryIO]]]) -> Iterator[tuple[str, dict[str, Any]]]:
        for shard in shards:
            sample: dict[str, bytes] = {}
            key = None
            for name, fileobj in shard:
                stem, ext = posixpath.splitext(posixpath.basename(name))
                if key is not None and stem != key:
                    yield self._row(key, sample)
                    sample = {}
                key = stem
                sample[ext.lstrip(".")] = fileobj.read()
            if key is not None:
                yield self._row(key, sample)

    @staticmethod
    def _row(key: str, sample: dict[str, bytes]) -> tuple[str, dict[str, Any]]:
        meta = json.loads(sample["json"])
        return key, {
            "image_id": meta["key"],
            "image": {"path": f"{key}.jpg", "bytes": sample["jpg"]},
            "captions": [sample["txt"].decode("utf-8")],
        }
