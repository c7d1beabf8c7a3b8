"""Builders of the ``nlvr`` and ``entailment`` schemas: nlvr2 and snli_ve (both read JSON-lines files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.common.builder_tester import check_builder, check_streaming_equals_prepared, dummy_dir
from vl_hub.data import builder_utils
from vl_hub.data.builder_utils import InvalidExampleError
from vl_hub.data.load import load_dataset
from vl_hub.data.schemas import ENTAILMENT_LABELS, NLVR_LABELS, entailment_features, nlvr_features


def _exception_chain(err: BaseException) -> list[BaseException]:
    chain, current = [], err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _insert_line(path: Path, index: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(index, text + "\n")
    path.write_text("".join(lines))


def test_nlvr2(tmp_path: Path) -> None:
    ds = check_builder("nlvr2", dummy_dir("nlvr2"), tmp_path, {"train": 3, "validation": 2, "test": 2}, nlvr_features())
    row = ds["train"][2]  # train images sit in images/train/<directory>/
    assert row["id"] == "train-2345-3-0"
    assert row["sentence"] == "There are exactly two dogs."
    assert NLVR_LABELS[row["label"]] == "True"
    assert (row["image0"].size, row["image1"].size) == ((16, 16), (8, 8))
    assert ds["train"]["label"] == [0, 1, 1]
    dev = ds["validation"][1]  # left image -> image0, right image -> image1
    assert dev["id"] == "dev-850-2-0"
    assert (dev["image0"].size, dev["image1"].size) == ((20, 12), (8, 8))
    assert ds["test"]["id"] == ["test1-0-1-0", "test1-0-3-0"]
    assert ds["test"][1]["image1"].size == (16, 16)


def test_nlvr2_streaming_equals_prepared(tmp_path: Path) -> None:
    assert check_streaming_equals_prepared("nlvr2", dummy_dir("nlvr2"), tmp_path, "train") == 3


def test_nlvr2_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "nlvr2"
    shutil.copytree(dummy_dir("nlvr2"), data_dir)
    dev = data_dir / "dev.json"
    _insert_line(dev, 1, '{"identifier": "dev-9-0-0", "sentence": ')  # becomes line 2
    with pytest.raises(Exception) as excinfo:
        load_dataset("nlvr2", data_dir=data_dir, cache_dir=tmp_path / "cache")
    invalid = [e for e in _exception_chain(excinfo.value) if isinstance(e, InvalidExampleError)]
    assert invalid and f"{dev}: line 2 is not valid JSON" in str(invalid[0])

    ds = load_dataset("nlvr2", data_dir=data_dir, cache_dir=tmp_path / "cache_skip", skip_invalid=True)
    assert ds["validation"]["id"] == ["dev-850-0-0", "dev-850-2-0"]
    assert builder_utils.SKIP_REPORTS[str(dev)].count == 1


def test_nlvr2_unknown_label_is_invalid(tmp_path: Path) -> None:
    data_dir = tmp_path / "nlvr2"
    shutil.copytree(dummy_dir("nlvr2"), data_dir)
    test1 = data_dir / "test1.json"
    test1.write_text(test1.read_text().replace('"label": "True"', '"label": "maybe"'))
    with pytest.raises(Exception) as excinfo:
        load_dataset("nlvr2", data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert any(
        isinstance(e, InvalidExampleError) and "line 2 has label 'maybe'" in str(e)
        for e in _exception_chain(excinfo.value)
    )


def test_snli_ve(tmp_path: Path) -> None:
    ds = check_builder(
        "snli_ve", dummy_dir("snli_ve"), tmp_path, {"train": 3, "validation": 2, "test": 2}, entailment_features()
    )
    row = ds["train"][2]
    assert row["id"] == "3416050480.jpg#4r1e"
    assert row["image_id"] == "3416050480"
    assert row["hypothesis"] == "A person is outdoors, on a horse."
    assert ENTAILMENT_LABELS[row["label"]] == "entailment"
    assert row["image"].size == (16, 12)
    assert [ENTAILMENT_LABELS[i] for i in ds["train"]["label"]] == ["neutral", "contradiction", "entailment"]
    assert ds["validation"][1]["image"].size == (12, 16)
    assert ds["test"]["hypothesis"] == ["The church has cracks in the ceiling.", "A choir singing at a baseball game."]


def test_snli_ve_malformed_line_raises_or_is_skipped(tmp_path: Path) -> None:
    data_dir = tmp_path / "snli"
    shutil.copytree(dummy_dir("snli_ve"), data_dir)
    train = data_dir / "snli_ve_train.jsonl"
    _insert_line(train, 2, "{not json")  # line 3
    with pytest.raises(Exception) as excinfo:
        load_dataset("snli_ve", data_dir=data_dir, cache_dir=tmp_path / "cache")
    invalid = [e for e in _exception_chain(excinfo.value) if isinstance(e, InvalidExampleError)]
    assert invalid and f"{train}: line 3 is not valid JSON" in str(invalid[0])

    ds = load_dataset("snli_ve", data_dir=data_dir, cache_dir=tmp_path / "cache_skip", skip_invalid=True, split="train")
    assert ds.num_rows == 3
    assert builder_utils.SKIP_REPORTS[str(train)].count == 1


def test_snli_ve_repository_image_layout(tmp_path: Path) -> None:
    """The SNLI-VE repository's download script leaves the images in Flickr30K/flickr30k_images/."""
    data_dir = tmp_path / "snli"
    shutil.copytree(dummy_dir("snli_ve"), data_dir)
    (data_dir / "Flickr30K").mkdir()
    (data_dir / "flickr30k_images").rename(data_dir / "Flickr30K" / "flickr30k_images")
    ds = check_builder(
        "snli_ve", data_dir, tmp_path / "cache", {"train": 3, "validation": 2, "test": 2}, entailment_features()
    )
    assert ds["test"][0]["image"].size == (16, 16)


def test_snli_ve_missing_images_names_folder_and_instructions(tmp_path: Path) -> None:
    data_dir = tmp_path / "snli"
    shutil.copytree(dummy_dir("snli_ve"), data_dir)
    shutil.rmtree(data_dir / "flickr30k_images")
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset("snli_ve", data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert str(data_dir / "flickr30k_images") in str(excinfo.value)
    assert "flickr30k_images.tar.gz" in str(excinfo.value)
