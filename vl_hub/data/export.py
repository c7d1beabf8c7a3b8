"""Export a prepared dataset as a hub-ready folder that needs no loading script and no vl_hub.

Layout written by :func:`export_dataset`::

    OUT/
      README.md                          the card, with a ``configs:``/``data_files`` YAML header
      data/<split>-00000-of-00002.parquet images embedded as bytes (datasets' Image storage)
      videos/<path relative to the common folder of the source videos>

so that ``datasets.load_dataset(OUT)`` (or ``load_dataset("<user>/<repo>")`` after uploading OUT)
reads it back. Video columns hold paths relative to OUT (``videos/...``): join them with the local
folder or ``hf_hub_download`` them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from datasets.table import embed_table_storage

logger = logging.getLogger(__name__)

#: a parquet shard is closed once it holds about this many bytes (the Hub's usual ~500 MB shards).
DEFAULT_MAX_SHARD_BYTES = 500 * 1024 * 1024
_BATCH_ROWS = 256


def video_columns(features: datasets.Features) -> list[str]:
    """Columns holding video file paths: string columns named ``video`` or ``*_video`` (the schemas'
    convention, see :mod:`vl_hub.data.schemas`)."""
    return [
        name
        for name, feature in features.items()
        if (name == "video" or name.endswith("_video"))
        and isinstance(feature, datasets.Value)
        and feature.dtype in ("string", "large_string")
    ]


def export_dataset(
    dataset_dict: datasets.DatasetDict | Mapping[str, datasets.Dataset],
    out_dir: str | os.PathLike[str],
    card_path: str | os.PathLike[str] | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    overwrite: bool = False,
) -> Path:
    """Writes ``dataset_dict`` to ``out_dir`` as parquet shards + card; returns ``out_dir``.

    Args:
        dataset_dict: split name -> prepared ``datasets.Dataset`` (all with the same features).
        out_dir: the folder to create (must be empty or absent unless ``overwrite``).
        card_path: a dataset card (``dataset_scripts/<name>/README.md``) whose text becomes the
            README; its YAML header, if any, is kept and given the ``configs``/``dataset_info`` keys.
        max_shard_bytes: start a new parquet file once a shard holds about this many bytes.
        overwrite: replace an existing non-empty ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        FileNotFoundError: a video file referenced by a row does not exist (named in the message).
        ValueError: no splits, or splits with different features.
    """
    splits = dict(dataset_dict)
    if not splits:
        raise ValueError("export_dataset got no splits; pass a DatasetDict such as vl_hub.load_dataset(name)")
    features = next(iter(splits.values())).features
    for name, ds in splits.items():
        if not isinstance(ds, datasets.Dataset):
            raise ValueError(
                f"split {name!r} is a {type(ds).__name__}; export needs prepared datasets (load without streaming=True)"
            )
        if ds.features != features:
            raise ValueError(f"split {name!r} has features {ds.features}, unlike the others' {features}")
    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; choose a new folder or pass overwrite=True")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    videos = video_columns(features)
    video_map = _plan_video_copies(splits, videos)
    for src, rel in video_map.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)

    data_files = []
    split_sizes: dict[str, tuple[int, int]] = {}
    for name, ds in splits.items():
        files, num_bytes = _write_split(ds, out / "data", name, videos, video_map, max_shard_bytes)
        data_files.append({"split": name, "path": f"data/{name}-*"})
        split_sizes[name] = (ds.num_rows, num_bytes)
        logger.info("exported %s: %d rows in %d parquet file(s)", name, ds.num_rows, len(files))

    _write_card(out, card_path, features, data_files, split_sizes, videos)
    return out


def _plan_video_copies(splits: Mapping[str, datasets.Dataset], columns: list[str]) -> dict[str, str]:
    """source path -> path under OUT (``videos/<relative to the sources' common folder>``)."""
    sources: list[str] = []
    for name, ds in splits.items():
        for column in columns:
            for i, path in enumerate(ds[column]):
                if not path:
                    continue
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"split {name!r}, row {i}: video {path!r} does not exist; cannot export it")
                sources.append(os.path.abspath(path))
    unique = sorted(set(sources))
    if not unique:
        return {}
    common = os.path.commonpath([os.path.dirname(p) for p in unique])
    return {p: Path("videos", os.path.relpath(p, common)).as_posix() for p in unique}


def _batches(ds: datasets.Dataset) -> Iterator[pa.Table]:
    for start in range(0, ds.num_rows, _BATCH_ROWS):
        yield ds.with_format("arrow")[start : start + _BATCH_ROWS]


def _write_split(
    ds: datasets.Dataset,
    folder: Path,
    split: str,
    videos: list[str],
    video_map: Mapping[str, str],
    max_shard_bytes: int,
) -> tuple[list[Path], int]:
    """Writes one split's parquet shards; returns them and the total Arrow bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    schema = ds.features.arrow_schema  # carries the features (ClassLabel names, Image) as metadata
    shards: list[Path] = []
    writer: pq.ParquetWriter | None = None
    written = total = 0

    def close() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            writer = None

    for table in _batches(ds):
        table = embed_table_storage(table)
        for column in videos:
            index = table.schema.get_field_index(column)
            rewritten = [None if p is None else video_map.get(os.path.abspath(p), p) for p in table[column].to_pylist()]
            table = table.set_column(index, column, pa.array(rewritten, type=table.schema.field(column).type))
        table = table.cast(schema)
        if writer is None or written >= max_shard_bytes:
            close()
            shards.append(folder / f"{split}-{len(shards):05d}.parquet.tmp")
            writer = pq.ParquetWriter(shards[-1], schema)
            written = 0
        writer.write_table(table)
        written += table.nbytes
        total += table.nbytes
    if writer is None:  # an empty split still gets one (empty) file so that the split exists
        shards.append(folder / f"{split}-00000.parquet.tmp")
        pq.write_table(schema.empty_table(), shards[-1])
    close()
    final = []
    for i, tmp in enumerate(shards):
        path = folder / f"{split}-{i:05d}-of-{len(shards):05d}.parquet"
        tmp.rename(path)
        final.append(path)
    return final, total


_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?", re.DOTALL)


def _write_card(
    out: Path,
    card_path: str | os.PathLike[str] | None,
    features: datasets.Features,
    data_files: list[dict[str, str]],
    split_sizes: Mapping[str, tuple[int, int]],
    videos: list[str],
) -> None:
    body = ""
    header: dict[str, Any] = {}
    if card_path is not None:
        text = Path(card_path).read_text(encoding="utf-8")
        match = _FRONT_MATTER.match(text)
        if match:
            header = yaml.safe_load(match.group(1)) or {}
            body = text[match.end() :]
        else:
            body = text
    header["configs"] = [{"config_name": "default", "data_files": data_files}]
    try:
        info = datasets.DatasetInfo(features=features)._to_yaml_dict()
        info["splits"] = [
            {"name": name, "num_bytes": num_bytes, "num_examples": rows} for name, (rows, num_bytes) in split_sizes.items()
        ]
        info["dataset_size"] = sum(num_bytes for _, num_bytes in split_sizes.values())
        header["dataset_info"] = info
    except AttributeError:  # a datasets version without _to_yaml_dict: the parquet schema carries the features
        header.pop("dataset_info", None)
    if not body.strip():
        body = "# Dataset\n\nExported with `vl-hub datasets export`.\n"
    if videos:
        body = body.rstrip() + (
            "\n\n## Video files\n\n"
            f"The column(s) {', '.join(f'`{c}`' for c in videos)} hold paths relative to this repository "
            "(`videos/...`); the files are stored alongside the parquet data.\n"
        )
    text = "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n" + body.lstrip()
    (out / "README.md").write_text(text, encoding="utf-8")
