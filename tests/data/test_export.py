"""export_dataset writes a folder that plain ``datasets.load_dataset(out)`` reads without vl_hub or the sources."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest
import yaml

from tests.common.builder_tester import dummy_dir
from vl_hub.data.export import export_dataset, video_columns
from vl_hub.data.load import dataset_scripts_dir, load_dataset

# Runs in a fresh interpreter that must not import vl_hub: prints every row with images as
# (mode, size, sha256 of the pixels) and videos as (relative path, sha256 of the file under OUT).
_READER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import datasets
    from PIL import Image

    def plain(value, root):
        if isinstance(value, Image.Image):
            return [value.mode, list(value.size), hashlib.sha256(value.tobytes()).hexdigest()]
        if isinstance(value, dict):
            return {k: plain(v, root) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v, root) for v in value]
        return value

    out = {}
    for root in sys.argv[1:]:
        ds = datasets.load_dataset(root)
        rows = {}
        for split, part in ds.items():
            rows[split] = []
            for row in part:
                row = plain(row, root)
                if "video" in row:
                    assert not os.path.isabs(row["video"]), row["video"]
                    with open(os.path.join(root, row["video"]), "rb") as f:
                        row["video"] = [row["video"].split("/")[0], hashlib.sha256(f.read()).hexdigest()]
                rows[split].append(row)
        out[root] = {"rows": rows, "features": {s: p.features.to_dict() for s, p in ds.items()}}
    assert "vl_hub" not in sys.modules
    print(json.dumps(out))
    """
)


def _expected(ds: datasets.DatasetDict) -> dict:
    """The rows of ``ds`` in the reader's format (computed before the sources are deleted)."""
    from PIL import Image

    def plain(value):
        if isinstance(value, Image.Image):
            return [value.mode, list(value.size), hashlib.sha256(value.tobytes()).hexdigest()]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    rows = {}
    for split, part in ds.items():
        rows[split] = []
        for row in part:
            row = plain(row)
            if "video" in row:
                row["video"] = ["videos", hashlib.sha256(Path(row["video"]).read_bytes()).hexdigest()]
            rows[split].append(row)
    return rows


def test_export_reads_back_without_vl_hub_or_sources(tmp_path: Path) -> None:
    src, cache, out = tmp_path / "src", tmp_path / "cache", tmp_path / "out"
    shutil.copytree(dummy_dir("coco_caption"), src / "coco")
    small = {"num_train": 5, "num_validation": 2, "num_test": 0}
    loaded = {
        "coco": load_dataset("coco_caption", data_dir=src / "coco", cache_dir=cache),
        # data_dir: the synthetic media go into src/ too, so deleting src removes every source file
        "shapes_cls": load_dataset("vl_hub_shapes", data_dir=src / "shapes", cache_dir=cache, config_name="classification", **small),
        "shapes_vqa": load_dataset("vl_hub_shapes", data_dir=src / "shapes", cache_dir=cache, config_name="video_qa", **small),
    }
    assert video_columns(loaded["shapes_vqa"]["train"].features) == ["video"]
    expected = {name: _expected(ds) for name, ds in loaded.items()}
    cards = {"coco": dataset_scripts_dir() / "coco_caption" / "README.md", "shapes_cls": dataset_scripts_dir() / "vl_hub_shapes" / "README.md"}
    for name, ds in loaded.items():
        card = cards.get(name)
        export_dataset(ds, out / name, card_path=card if card is not None and card.is_file() else None)
    shutil.rmtree(src)

    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _READER, *(str(out / name) for name in loaded)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, ds in loaded.items():
        got = result[str(out / name)]
        assert got["rows"] == expected[name], name
        first = next(iter(ds.values()))
        assert all(f == first.features.to_dict() for f in got["features"].values()), name
    assert [p.name for p in sorted((out / "coco" / "data").iterdir())] == [
        f"{s}-00000-of-00001.parquet" for s in sorted(loaded["coco"])
    ]
    assert len(list((out / "shapes_vqa" / "videos").rglob("*.mp4"))) == 7

    card = (out / "shapes_cls" / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}, {"split": "validation", "path": "data/validation-*"}]}
    ]
    assert header["pretty_name"] == "vl_hub shapes (synthetic)", "the card's own YAML keys are kept"
    assert "# vl_hub_shapes" in card


def test_export_shards_and_refuses_non_empty_output(tmp_path: Path) -> None:
    ds = load_dataset("vl_hub_shapes", cache_dir=tmp_path / "cache", num_train=600, num_validation=1, num_test=1)
    out = export_dataset(ds, tmp_path / "out", max_shard_bytes=1)  # every 256-row batch in its own shard
    assert sorted(p.name for p in (out / "data").glob("train-*")) == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    with pytest.raises(FileExistsError, match="is not empty"):
        export_dataset(ds, out)
    export_dataset(ds, out, overwrite=True)
    reread = datasets.load_dataset("parquet", data_files=str(out / "data" / "train-*.parquet"), cache_dir=str(tmp_path / "hf"))
    assert reread["train"]["captions"] == ds["train"]["captions"]
    assert reread["train"][599]["image"].tobytes() == ds["train"][599]["image"].tobytes()
