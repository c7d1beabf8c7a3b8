"""Builders of the ``classification`` (imagenet) and ``visual_dialog`` (visdial) schemas."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.common.builder_tester import check_builder, check_streaming_equals_prepared, dummy_dir
from vl_hub.data.load import dataset_scripts_dir, load_dataset
from vl_hub.data.schemas import classification_features, visual_dialog_features

# (file, wnid, label index, name, image size) of the dummy validation images, in file-name order
_IMAGENET_ROWS = [
    ("ILSVRC2012_val_00000001", "n01751748", 65, "sea snake", (16, 12)),
    ("ILSVRC2012_val_00000002", "n09193705", 970, "alp", (12, 16)),
    ("ILSVRC2012_val_00000003", "n02105855", 230, "Shetland sheepdog", (16, 16)),
    ("ILSVRC2012_val_00000004", "n04263257", 809, "soup bowl", (8, 8)),
]


def _imagenet_names() -> list[str]:
    rows = (dataset_scripts_dir() / "imagenet" / "imagenet_classes.tsv").read_text().splitlines()
    return [line.split("\t")[1] for line in rows if line and not line.startswith(("#", "wnid\t"))]


def test_imagenet_class_file() -> None:
    names = _imagenet_names()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[0] == "tench" and names[999] == "toilet tissue"
    assert names[134] == "crane (bird)" and names[517] == "crane (machine)"


def test_imagenet_by_class_folders(tmp_path: Path) -> None:
    ds = check_builder(
        "imagenet", dummy_dir("imagenet"), tmp_path, {"validation": 4}, classification_features(_imagenet_names())
    )
    val = ds["validation"]
    assert val["image_id"] == [r[0] for r in _IMAGENET_ROWS]
    assert val["label"] == [r[2] for r in _IMAGENET_ROWS]
    assert [val.features["label"].int2str(i) for i in val["label"]] == [r[3] for r in _IMAGENET_ROWS]
    assert [img.size for img in val["image"]] == [r[4] for r in _IMAGENET_ROWS]


def test_imagenet_streaming_equals_prepared(tmp_path: Path) -> None:
    assert check_streaming_equals_prepared("imagenet", dummy_dir("imagenet"), tmp_path, "validation") == 4


def test_imagenet_flat_with_kaggle_solution_csv(tmp_path: Path) -> None:
    data_dir = tmp_path / "imagenet"
    image_dir = data_dir / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    image_dir.mkdir(parents=True)
    lines = ["ImageId,PredictionString"]
    for name, wnid, *_ in reversed(_IMAGENET_ROWS):  # the csv order does not matter
        shutil.copy(dummy_dir("imagenet") / "val" / wnid / f"{name}.JPEG", image_dir / f"{name}.JPEG")
        lines.append(f"{name},{wnid} 10 20 100 200 {wnid} 5 5 50 50")
    (data_dir / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    ds = check_builder(
        "imagenet", data_dir, tmp_path / "cache", {"validation": 4}, classification_features(_imagenet_names())
    )
    assert ds["validation"]["image_id"] == [r[0] for r in _IMAGENET_ROWS]
    assert ds["validation"]["label"] == [r[2] for r in _IMAGENET_ROWS]


def test_imagenet_rejects_unknown_class_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "imagenet"
    shutil.copytree(dummy_dir("imagenet"), data_dir)
    (data_dir / "val" / "cats").mkdir()
    with pytest.raises(Exception) as excinfo:
        load_dataset("imagenet", data_dir=data_dir, cache_dir=tmp_path / "cache")
    chain, current = [], excinfo.value
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    assert any(str(data_dir / "val" / "cats") in str(e) and "WordNet" in str(e) for e in chain)


_ANSWERS = ["yes", "no", "2", "white", "i can't tell", "on a table", "it's sunny", "black and white"]


def test_visdial(tmp_path: Path) -> None:
    ds = check_builder(
        "visdial", dummy_dir("visdial"), tmp_path, {"train": 4, "validation": 2, "test": 2}, visual_dialog_features()
    )
    train = ds["train"]
    assert list(zip(train["dialog_id"], train["round"], strict=True)) == [
        ("378466", 0),
        ("378466", 1),
        ("42", 0),
        ("42", 1),
    ]
    row = train[3]  # second round of a dialogue whose image is in COCO val2014/
    assert row["image_id"] == "42" and row["caption"] == "a giraffe next to a tree"
    assert row["history"] == [{"question": "how many people are there", "answer": "2"}]
    assert (row["question"], row["answer"], row["gt_index"]) == ("is it sunny", "it's sunny", 99)
    assert len(row["options"]) == 100 and row["options"][99] == "it's sunny"
    assert row["options"][:3] == ["no", "black and white", "yes"] and row["relevance"] == []
    assert row["image"].size == (12, 16)
    for labelled in (*train, *ds["validation"]):
        assert labelled["options"][labelled["gt_index"]] == labelled["answer"]

    val = ds["validation"]
    assert val["relevance"][0] == []  # only round 2 (round_id 2, 1-based) is densely annotated
    assert val["relevance"][1] == pytest.approx([((k * 7) % 5) / 4 for k in range(100)])
    assert val[1]["history"] == [{"question": "how many people are there", "answer": "2"}]
    assert val[1]["image"].size == (16, 16)

    test = ds["test"][1]  # test dialogues end at the round to answer; earlier rounds become history
    assert (test["dialog_id"], test["round"], test["question"]) == ("961", 2, "is it daytime")
    assert test["history"] == [
        {"question": "is the photo in color", "answer": "yes"},
        {"question": "where is the cup", "answer": "on a table"},
    ]
    assert (test["answer"], test["gt_index"], test["relevance"]) == ("", -1, [])
    assert test["options"] == [_ANSWERS[(1 + k) % 8] for k in range(100)]
    assert test["image"].size == (8, 8)
    assert ds["test"][0]["history"] == [] and ds["test"][0]["image"].size == (20, 12)


def test_visdial_streaming_equals_prepared(tmp_path: Path) -> None:
    assert check_streaming_equals_prepared("visdial", dummy_dir("visdial"), tmp_path, "validation") == 2


def test_visdial_without_dense_annotations(tmp_path: Path) -> None:
    data_dir = tmp_path / "visdial"
    shutil.copytree(dummy_dir("visdial"), data_dir)
    (data_dir / "visdial_1.0_val_dense_annotations.json").unlink()
    ds = load_dataset("visdial", data_dir=data_dir, cache_dir=tmp_path / "cache", split="validation")
    assert ds["relevance"] == [[], []]


def test_visdial_missing_val_images_names_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "visdial"
    shutil.copytree(dummy_dir("visdial"), data_dir)
    shutil.rmtree(data_dir / "VisualDialog_val2018")
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset("visdial", data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert str(data_dir / "VisualDialog_val2018") in str(excinfo.value)
    assert "VisualDialog_val2018.zip" in str(excinfo.value)
