"""vl_hub.load_dataset around the builders: clean failures, download instructions, skip reports, task lookup."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import pytest
from PIL import Image

import vl_hub
from tests.common.builder_tester import check_builder, check_streaming_equals_prepared
from vl_hub.data import schemas
from vl_hub.data.builder_utils import MissingDataError
from vl_hub.data.load import dataset_info, load_dataset, skip_reports, skipped_counts, task_of_features

BUILDERS = Path(__file__).parent / "builders"
FLAKY = str(BUILDERS / "flaky_jsonl")
WDS = str(BUILDERS / "wds_pairs")
WDS_DATA = Path(__file__).parent / "fixtures" / "webdataset"


def _flaky_folder(root: Path, lines: list[str], images: tuple[str, ...] = ("a", "b", "c", "d", "e")) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(images):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / "images" / f"{name}.png")
    (root / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _good_lines(n: int = 5) -> list[str]:
    return [json.dumps({"file": f"{c}.png", "caption": f"caption {c}"}) for c in "abcde"[:n]]


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


def test_failed_prepare_leaves_nothing_and_a_fixed_folder_prepares(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # line 5 is malformed: rows 1-4 were already flushed to Arrow (writer batches of 2) when it fails
    data = _flaky_folder(tmp_path / "data", [*_good_lines(4), "{not json"])
    with pytest.raises(ValueError, match=r"annotations.jsonl: line 5 is not valid JSON"):
        load_dataset(FLAKY, data_dir=data, cache_dir=cache)
    assert _files(cache) == [], "a failed prepare must leave no file, folder or lock in the cache"

    (data / "annotations.jsonl").write_text("\n".join(_good_lines(5)) + "\n")
    ds = load_dataset(FLAKY, data_dir=data, cache_dir=cache)
    assert ds["train"]["image_id"] == ["a", "b", "c", "d", "e"]
    assert ds["train"][4]["captions"] == ["caption e"]
    assert skipped_counts(ds) == {"train": 0}


def test_missing_annotation_names_path_and_instructions_before_writing(tmp_path: Path) -> None:
    cache, data = tmp_path / "cache", tmp_path / "data"
    data.mkdir()
    with pytest.raises(MissingDataError) as info:
        load_dataset(FLAKY, data_dir=data, cache_dir=cache)
    message = str(info.value)
    assert str(data / "annotations.jsonl") in message
    assert "Put annotations.jsonl and an images/ folder in data_dir" in message
    assert _files(cache) == []


def test_streaming_missing_annotation_gives_instructions(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(MissingDataError, match="(?s)annotations.jsonl.*Put annotations.jsonl and an images/ folder"):
        load_dataset(FLAKY, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", streaming=True)
    assert _files(tmp_path / "cache") == []


def test_missing_media_names_path_and_instructions(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    data = _flaky_folder(tmp_path / "data", _good_lines(5), images=("a", "b", "c", "d"))  # e.png missing
    with pytest.raises(MissingDataError) as info:
        load_dataset(FLAKY, data_dir=data, cache_dir=cache)
    message = str(info.value)
    assert str(data / "images" / "e.png") in message and "does not exist" in message
    assert "Put annotations.jsonl and an images/ folder" in message
    assert _files(cache) == []


def test_skip_invalid_reports_counts_and_keeps_them_in_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    lines = _good_lines(5)
    lines.insert(2, "{broken")
    data = _flaky_folder(tmp_path / "data", lines, images=("a", "b", "c", "e"))  # d.png missing too
    with caplog.at_level(logging.WARNING, logger="vl_hub.data.load"):
        ds = load_dataset(FLAKY, data_dir=data, cache_dir=cache, skip_invalid=True)
    assert ds["train"]["image_id"] == ["a", "b", "c", "e"]
    assert skipped_counts(ds) == {"train": 2}
    (report,) = skip_reports(ds)["train"]
    assert report.count == 2 and report.where == str(data / "annotations.jsonl")
    assert "line 3 is not valid JSON" in report.reasons[0] and "d.png" in report.reasons[1]
    assert any("skipped 2 invalid example(s)" in r.getMessage() for r in caplog.records)

    # loaded again from the cache (no generation): the report is still there, for a single split too
    again = load_dataset(FLAKY, data_dir=data, cache_dir=cache, skip_invalid=True, split="train")
    assert skipped_counts(again) == {"train": 2}
    # the strict config is cached separately and still fails
    with pytest.raises(ValueError, match="line 3 is not valid JSON"):
        load_dataset(FLAKY, data_dir=data, cache_dir=cache)


def test_unknown_names_and_options_list_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="vl_hub_shapes"):
        load_dataset("no_such_dataset", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"no option\(s\) \['num_trian'\].*num_train"):
        load_dataset("vl_hub_shapes", cache_dir=tmp_path, num_trian=3)
    with pytest.raises(ValueError, match="not found. Available: .*image_text"):
        load_dataset("vl_hub_shapes", cache_dir=tmp_path, config_name="nope")


def test_streaming_webdataset_shards_equal_prepared(tmp_path: Path) -> None:
    ds = check_builder(WDS, WDS_DATA, tmp_path, {"train": 6}, schemas.image_text_features())
    assert ds["train"]["image_id"] == ["000000000", "000000001", "000000002", "000010000", "000010001", "000010002"]
    row = ds["train"][4]
    assert row["captions"] == ["a purple rectangle"] and row["image"].size == (16, 12)
    assert row["image"].convert("RGB").getpixel((8, 8)) == pytest.approx((150, 40, 190), abs=12)
    streamed = load_dataset(WDS, data_dir=WDS_DATA, cache_dir=tmp_path, split="train", streaming=True)
    assert isinstance(streamed, datasets.IterableDataset)
    assert check_streaming_equals_prepared(WDS, WDS_DATA, tmp_path, "train") == 6


def test_task_lookup_for_every_schema() -> None:
    for task, factory in schemas.SCHEMAS.items():
        features = factory(["x", "y"]) if task == "classification" else factory()
        assert task_of_features(features) == task
    renamed = datasets.Features({"img": datasets.Image(), "captions": schemas.image_text_features()["captions"]})
    assert task_of_features(renamed) is None

    info = dataset_info("vl_hub_shapes")
    assert info.configs == {task: task for task in schemas.SCHEMAS}
    assert info.tasks == list(schemas.SCHEMAS) and info.description
    assert vl_hub.dataset_info("custom").tasks == list(schemas.SCHEMAS)
    names = vl_hub.list_datasets()
    assert isinstance(names, list) and all(isinstance(n, str) for n in names) and "vl_hub_shapes" in names


def test_builder_hash_covers_the_builder_it_subclasses(tmp_path, monkeypatch) -> None:
    """coco_retrieval subclasses coco_caption: editing the base must invalidate the derived cache."""
    import shutil

    from vl_hub.data import load as load_module

    root = tmp_path / "scripts"
    for name in ("coco_caption", "coco_retrieval"):
        shutil.copytree(load_module.dataset_scripts_dir() / name, root / name, ignore=shutil.ignore_patterns("dummy"))
    monkeypatch.setenv("VLHUB_DATASET_SCRIPTS", str(root))
    for mod in ("vl_hub_dataset_scripts.coco_caption", "vl_hub_dataset_scripts.coco_retrieval"):
        monkeypatch.delitem(__import__("sys").modules, mod, raising=False)
    try:
        before = load_module.builder_files_hash("coco_retrieval")
        base = root / "coco_caption" / "coco_caption.py"
        base.write_text(base.read_text() + "\n# edited\n")
        assert load_module.builder_files_hash("coco_retrieval") != before
    finally:  # never leave modules loaded from tmp_path behind for later tests
        import sys

        for mod in ("vl_hub_dataset_scripts.coco_caption", "vl_hub_dataset_scripts.coco_retrieval"):
            if str(tmp_path) in (getattr(sys.modules.get(mod), "__file__", "") or ""):
                del sys.modules[mod]
