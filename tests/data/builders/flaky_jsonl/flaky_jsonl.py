"""Test-only builder: ``data_dir/annotations.jsonl`` rows ``{"file": ..., "caption": ...}`` + ``data_dir/images/``.

Writes Arrow in batches of two rows, so that a bad line late in the file fails *after* part of the
split reached disk: the loader must still leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.builder_utils import (
    VlHubBuilderConfig,
    check_image,
    guarded_examples,
    iter_jsonl,
    require_data_dir,
    require_path,
)
from vl_hub.data.schemas import image_text_features

_INSTRUCTIONS = "Put annotations.jsonl and an images/ folder in data_dir (flaky_jsonl test fixture)."


class FlakyJsonl(datasets.GeneratorBasedBuilder):
    """image_text rows from a JSONL file; malformed lines raise (or are skipped with skip_invalid)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = VlHubBuilderConfig
    DEFAULT_WRITER_BATCH_SIZE = 2

    @property
    def manual_download_instructions(self) -> str:
        """What the test fixture folder must hold."""
        return _INSTRUCTIONS

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(features=image_text_features())

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        data_dir = require_data_dir("flaky_jsonl", self.config.data_dir, _INSTRUCTIONS)
        annotations = require_path("flaky_jsonl", data_dir / "annotations.jsonl", _INSTRUCTIONS)
        return [
            datasets.SplitGenerator(
                name=datasets.Split.TRAIN, gen_kwargs={"path": annotations, "image_dir": data_dir / "images"}
            )
        ]

    def _generate_examples(self, path: Path, image_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        def examples() -> Iterator[tuple[str, Any]]:
            for line, row in iter_jsonl(path):
                if isinstance(row, Exception):
                    yield str(line), row
                    continue
                yield str(line), lambda row=row: {
                    "image_id": Path(row["file"]).stem,
                    "image": check_image(image_dir / row["file"]),
                    "captions": [row["caption"]],
                }

        yield from guarded_examples(self.config, examples(), where=str(path))
