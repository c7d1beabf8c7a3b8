"""Test-only builder for the toy training task: ``data_dir/<split>.jsonl`` rows ``{"x": [8 floats], "label": k}``.

Written by :func:`tests.training.toy.write_toy_data`; a missing ``data_dir`` or split file raises
``MissingDataError`` with the instructions below, like the real builders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import VlHubBuilderConfig, iter_jsonl, require_data_dir, require_path

_INSTRUCTIONS = "Write the toy files with tests.training.toy.write_toy_data(folder) and pass that folder as data_dir."
_SPLITS = ("train", "validation", "test")


class ToyData(datasets.GeneratorBasedBuilder):
    """Toy vectors with a class label, one JSONL file per split."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig

    @property
    def manual_download_instructions(self) -> str:
        """How to get the files."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            features=datasets.Features(
                {
                    "index": datasets.Value("int64"),
                    "x": datasets.Sequence(datasets.Value("float32")),
                    "label": datasets.Value("int64"),
                }
            )
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir("toy_data", self.config.data_dir, _INSTRUCTIONS)
        return [
            datasets.SplitGenerator(
                name=split, gen_kwargs={"path": require_path("toy_data", data_dir / f"{split}.jsonl", _INSTRUCTIONS)}
            )
            for split in _SPLITS
        ]

    def _generate_examples(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        for line, row in iter_jsonl(path):
            if isinstance(row, Exception):
                raise row
            yield str(line), {"index": row["index"], "x": row["x"], "label": row["label"]}
