"""Reusable checks for the dataset builders in ``dataset_scripts/`` (one call per builder test).

A builder test typically reads::

    from tests.common.builder_tester import check_builder, dummy_dir
    from vl_hub.data.schemas import image_text_features

    def test_coco_caption(tmp_path):
        ds = check_builder("coco_caption", dummy_dir("coco_caption"), tmp_path,
                           {"train": 3, "validation": 2, "test": 2}, image_text_features())
        row = ds["train"][0]
        assert row["captions"] == ["a man riding a horse.", ...]
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets

from vl_hub.data.load import dataset_scripts_dir, load_dataset


def dummy_dir(name: str) -> Path:
    """``dataset_scripts/<name>/dummy``: the tiny fixture in the real upstream layout."""
    return dataset_scripts_dir() / name / "dummy"


def check_builder(
    name: str,
    data_dir: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str],
    expected_counts: Mapping[str, int],
    schema: datasets.Features,
    config_name: str | None = None,
    **config: Any,
) -> datasets.DatasetDict:
    """Prepares builder ``name`` on ``data_dir`` and checks the result; returns the ``DatasetDict``.

    Checks: exactly the splits of ``expected_counts`` with those row counts; every split's features
    equal ``schema`` (the task schema from :mod:`vl_hub.data.schemas`); the first row of each
    non-empty split reads back (images decode, video paths exist). The caller then checks one full
    example against hand-written values.

    Args:
        name: builder name (folder in ``dataset_scripts/``).
        data_dir: the fixture folder (usually :func:`dummy_dir`); ``None`` for builders needing none.
        cache_dir: where the Arrow files go (a pytest ``tmp_path``).
        expected_counts: split name -> number of rows.
        schema: the expected ``datasets.Features``.
        config_name: BuilderConfig name for builders with several configs.
        **config: BuilderConfig overrides (``skip_invalid=True``, ...).
    """
    ds = load_dataset(name, data_dir=data_dir, cache_dir=cache_dir, config_name=config_name, **config)
    if not isinstance(ds, datasets.DatasetDict):
        raise AssertionError(f"{name}: expected a DatasetDict, got {type(ds).__name__}")
    counts = {split: ds[split].num_rows for split in ds}
    if counts != dict(expected_counts):
        raise AssertionError(f"{name}: split sizes {counts} != expected {dict(expected_counts)}")
    for split in ds:
        if ds[split].features != schema:
            raise AssertionError(
                f"{name}[{split}]: features differ from the task schema\n got:      {ds[split].features}\n"
                f" expected: {schema}"
            )
        if ds[split].num_rows:
            _check_row_reads_back(name, split, ds[split][0])
    return ds


def check_streaming_equals_prepared(
    name: str,
    data_dir: str | os.PathLike[str] | None,
    cache_dir: str | os.PathLike[str],
    split: str,
    config_name: str | None = None,
    **config: Any,
) -> int:
    """Streams ``split`` and checks it yields the same rows, in the same order, as the prepared split.

    Images are compared by decoded pixels (streaming and prepared encode them differently).
    Returns the number of rows compared.
    """
    prepared = load_dataset(
        name, data_dir=data_dir, cache_dir=cache_dir, split=split, config_name=config_name, **config
    )
    streamed = load_dataset(
        name, data_dir=data_dir, cache_dir=cache_dir, split=split, streaming=True, config_name=config_name, **config
    )
    streamed_rows = [comparable(row) for row in streamed]
    prepared_rows = [comparable(row) for row in prepared]
    if len(streamed_rows) != len(prepared_rows):
        raise AssertionError(f"{name}[{split}]: streamed {len(streamed_rows)} rows, prepared {len(prepared_rows)}")
    for i, (a, b) in enumerate(zip(streamed_rows, prepared_rows, strict=True)):
        if a != b:
            raise AssertionError(f"{name}[{split}] row {i}: streamed {a!r} != prepared {b!r}")
    return len(prepared_rows)


def comparable(value: Any) -> Any:
    """``value`` with PIL images replaced by ``(mode, size, raw pixel bytes)`` so rows compare with ``==``."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return ("PIL", value.mode, value.size, value.tobytes())
    if isinstance(value, dict):
        if set(value) == {"bytes", "path"}:  # an undecoded Image cell
            return comparable(_open_image_cell(value))
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    return value


def _open_image_cell(cell: Mapping[str, Any]) -> Any:
    from PIL import Image

    if cell.get("bytes") is not None:
        return Image.open(io.BytesIO(cell["bytes"]))
    return Image.open(cell["path"])


def _check_row_reads_back(name: str, split: str, row: Mapping[str, Any]) -> None:
    from PIL import Image

    for key, value in row.items():
        if isinstance(value, Image.Image):
            value.load()
            if value.width < 1 or value.height < 1:
                raise AssertionError(f"{name}[{split}] row 0: image {key!r} is empty ({value.size})")
        elif key == "video" and value and not Path(value).is_file():
            raise AssertionError(f"{name}[{split}] row 0: video path {value!r} does not exist")
