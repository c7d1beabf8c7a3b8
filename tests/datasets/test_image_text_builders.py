"""Builders of the ``image_text`` schema: coco_caption, coco_retrieval, flickr30k, nocaps, textcaps, vg_caption.

Each builder is prepared on its committed ``dummy/`` fixture (real upstream layout, tiny images); the
expected values below are written by hand from those fixtures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.common.builder_tester import check_builder, check_streaming_equals_prepared, dummy_dir
from vl_hub.data import builder_utils
from vl_hub.data.builder_utils import InvalidExampleError
from vl_hub.data.load import load_dataset
from vl_hub.data.schemas import image_text_features


def _exception_chain(err: BaseException) -> list[BaseException]:
    chain, current = [], err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def test_coco_caption_karpathy(tmp_path: Path) -> None:
    ds = check_builder(
        "coco_caption",
        dummy_dir("coco_caption"),
        tmp_path,
        {"train": 2, "validation": 1, "test": 2},
        image_text_features(),
    )
    # train = Karpathy "train" + "restval", in file order
    assert ds["train"]["image_id"] == ["9", "42"]
    row = ds["train"][0]
    assert row["captions"] == [
        "A plate of food with broccoli and meat.",
        "Closeup of bins of food.",  # trailing space of the raw caption stripped
        "A meal is presented in brightly colored plastic trays.",
    ]
    assert row["image"].size == (16, 12)
    assert ds["train"][1]["image"].size == (12, 16)  # restval image from val2014/
    assert ds["validation"][0]["image_id"] == "73"
    assert ds["test"]["image_id"] == ["74", "133"]
    assert ds["test"][1]["captions"] == [
        "A bedroom with a bed and a small table.",
        "A child's bedroom with a bunk bed.",
    ]
    assert ds["test"][1]["image"].size == (8, 8)


def test_coco_caption_reads_lavis_karpathy_files(tmp_path: Path) -> None:
    """LAVIS's coco_karpathy_{train,val,test}.json (one entry per caption for train) give the same rows."""
    source = dummy_dir("coco_caption")
    data_dir = tmp_path / "lavis"
    shutil.copytree(source / "train2014", data_dir / "images" / "train2014")
    shutil.copytree(source / "val2014", data_dir / "images" / "val2014")
    images = json.loads((source / "dataset_coco.json").read_text())["images"]
    entries: dict[str, list] = {"train": [], "val": [], "test": []}
    for image in images:
        path = f"{image['filepath']}/{image['filename']}"
        captions = [s["raw"] for s in image["sentences"]]
        if image["split"] in ("train", "restval"):
            entries["train"] += [{"caption": c, "image": path, "image_id": f"coco_{image['cocoid']}"} for c in captions]
        else:
            entries[image["split"]].append({"image": path, "caption": captions})
    (data_dir / "annotations").mkdir()
    for split, rows in entries.items():
        (data_dir / "annotations" / f"coco_karpathy_{split}.json").write_text(json.dumps(rows))

    lavis = check_builder(
        "coco_caption",
        data_dir,
        tmp_path / "cache_lavis",
        {"train": 2, "validation": 1, "test": 2},
        image_text_features(),
    )
    official = load_dataset("coco_caption", data_dir=source, cache_dir=tmp_path / "cache_official")
    for split in ("train", "validation", "test"):
        assert lavis[split]["image_id"] == official[split]["image_id"]
        assert lavis[split]["captions"] == official[split]["captions"]


def test_coco_caption_streaming_equals_prepared(tmp_path: Path) -> None:
    assert check_streaming_equals_prepared("coco_caption", dummy_dir("coco_caption"), tmp_path, "test") == 2


def test_coco_caption_missing_annotation_names_path_and_instructions(tmp_path: Path) -> None:
    data_dir = tmp_path / "coco"
    shutil.copytree(dummy_dir("coco_caption"), data_dir)
    (data_dir / "dataset_coco.json").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset("coco_caption", data_dir=data_dir, cache_dir=tmp_path / "cache")
    message = str(excinfo.value)
    assert str(data_dir / "dataset_coco.json") in message
    assert "caption_datasets.zip" in message and "train2014.zip" in message


def test_coco_caption_corrupt_image_raises_or_is_skipped(tmp_path: Path) -> None:
    data_dir = tmp_path / "coco"
    shutil.copytree(dummy_dir("coco_caption"), data_dir)
    bad = data_dir / "val2014" / "COCO_val2014_000000000074.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(Exception) as excinfo:
        load_dataset("coco_caption", data_dir=data_dir, cache_dir=tmp_path / "cache")
    invalid = [e for e in _exception_chain(excinfo.value) if isinstance(e, InvalidExampleError)]
    assert invalid and str(bad) in str(invalid[0]) and "cannot be decoded" in str(invalid[0])

    ds = load_dataset("coco_caption", data_dir=data_dir, cache_dir=tmp_path / "cache_skip", skip_invalid=True)
    assert ds["test"]["image_id"] == ["133"]
    assert builder_utils.SKIP_REPORTS[f"{data_dir / 'dataset_coco.json'} [test]"].count == 1
    assert builder_utils.SKIP_REPORTS[f"{data_dir / 'dataset_coco.json'} [train]"].count == 0


def test_coco_retrieval(tmp_path: Path) -> None:
    ds = check_builder(
        "coco_retrieval",
        dummy_dir("coco_retrieval"),
        tmp_path,
        {"train": 2, "validation": 1, "test": 2},
        image_text_features(),
    )
    assert ds["train"]["image_id"] == ["25", "30"]
    row = ds["test"][0]
    assert row["image_id"] == "139"
    assert row["captions"] == [
        "A woman stands in the dining area at the table.",
        "A room with chairs, a table, and a woman in it.",
    ]
    assert row["image"].size == (20, 12)
    assert ds["validation"][0]["captions"][1] == "Two giraffes standing in a building."


def test_coco_retrieval_instructions_name_itself(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="coco_retrieval"):
        load_dataset("coco_retrieval", data_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache")


def test_flickr30k_karpathy(tmp_path: Path) -> None:
    ds = check_builder(
        "flickr30k", dummy_dir("flickr30k"), tmp_path, {"train": 2, "validation": 1, "test": 2}, image_text_features()
    )
    assert ds["train"]["image_id"] == ["1000092795", "10002456"]
    row = ds["test"][1]
    assert row["image_id"] == "101362133"
    assert row["captions"] == [
        "A young female student performing a downward kick to break a board.",
        "A girl in karate uniform breaking a stick with a front kick.",
    ]
    assert row["image"].size == (8, 8)
    assert ds["validation"][0]["image"].size == (16, 16)


def test_flickr30k_reads_lavis_files(tmp_path: Path) -> None:
    source = dummy_dir("flickr30k")
    data_dir = tmp_path / "lavis"
    shutil.copytree(source / "flickr30k-images", data_dir / "images" / "flickr30k-images")
    entries: dict[str, list] = {"train": [], "val": [], "test": []}
    for image in json.loads((source / "dataset_flickr30k.json").read_text())["images"]:
        path, captions = f"flickr30k-images/{image['filename']}", [s["raw"] for s in image["sentences"]]
        if image["split"] == "train":
            entries["train"] += [{"image": path, "caption": c, "image_id": image["filename"][:-4]} for c in captions]
        else:
            entries[image["split"]].append({"image": path, "caption": captions})
    (data_dir / "annotations").mkdir()
    for split, rows in entries.items():
        (data_dir / "annotations" / f"flickr30k_{split}.json").write_text(json.dumps(rows))
    lavis = check_builder(
        "flickr30k", data_dir, tmp_path / "c1", {"train": 2, "validation": 1, "test": 2}, image_text_features()
    )
    official = load_dataset("flickr30k", data_dir=source, cache_dir=tmp_path / "c2")
    for split in ("train", "validation", "test"):
        assert lavis[split]["image_id"] == official[split]["image_id"]
        assert lavis[split]["captions"] == official[split]["captions"]


@pytest.mark.parametrize(
    ("config", "val_ids", "test_ids"),
    [
        ("all", ["0", "1", "2"], ["4500", "4501", "4502"]),
        ("in_domain", ["0"], ["4501"]),
        ("near_domain", ["1"], ["4500"]),
        ("out_domain", ["2"], ["4502"]),
    ],
)
def test_nocaps_domains(tmp_path: Path, config: str, val_ids: list[str], test_ids: list[str]) -> None:
    ds = check_builder(
        "nocaps",
        dummy_dir("nocaps"),
        tmp_path,
        {"validation": len(val_ids), "test": len(test_ids)},
        image_text_features(),
        config_name=config,
    )
    assert ds["validation"]["image_id"] == val_ids
    assert ds["test"]["image_id"] == test_ids
    assert all(captions == [] for captions in ds["test"]["captions"])  # test captions are held by the server


def test_nocaps_example(tmp_path: Path) -> None:
    ds = check_builder("nocaps", dummy_dir("nocaps"), tmp_path, {"validation": 3, "test": 3}, image_text_features())
    row = ds["validation"][2]
    assert row["image_id"] == "2"
    assert row["captions"] == [
        "A close up of a jellyfish in the water.",
        "An orange jellyfish floats in dark water.",
        "A jellyfish.",
    ]
    assert row["image"].size == (16, 16)
    assert ds["test"][0]["image"].size == (20, 12)


def test_textcaps(tmp_path: Path) -> None:
    ds = check_builder(
        "textcaps", dummy_dir("textcaps"), tmp_path, {"train": 2, "validation": 1, "test": 2}, image_text_features()
    )
    row = ds["train"][0]  # two caption entries of one image grouped into one row
    assert row["image_id"] == "011e7e629fb9ae7b"
    assert row["captions"] == ["A bottle of Jim Beam sits on a wooden table.", "The label on the bottle says Jim Beam."]
    assert row["image"].size == (16, 12)
    assert ds["train"][1]["captions"] == ["A book titled The Hobbit lies open."]
    assert ds["validation"][0]["image"].size == (16, 16)  # validation images live in train_images/
    assert ds["test"]["image_id"] == ["2b6a7c4e1f0d9a11", "3c7e9a1b2d4f6e22"]
    assert ds["test"]["captions"] == [[], []]


def test_textcaps_missing_test_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "textcaps"
    shutil.copytree(dummy_dir("textcaps"), data_dir)
    (data_dir / "TextCaps_0.1_test.json").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset("textcaps", data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert str(data_dir / "TextCaps_0.1_test.json") in str(excinfo.value)
    assert "test_images.zip" in str(excinfo.value)


def test_vg_caption(tmp_path: Path) -> None:
    ds = check_builder("vg_caption", dummy_dir("vg_caption"), tmp_path, {"train": 3}, image_text_features())
    assert ds["train"]["image_id"] == ["1", "10", "2354381"]
    row = ds["train"][2]  # from VG_100K_2/, as image_data.json's url says
    assert row["captions"] == ["a red double decker bus", "windows on the bus", "the sky is blue"]
    assert row["image"].size == (16, 16)
    assert ds["train"][0]["captions"] == ["the clock is green in colour", "shade is along the street"]


def test_vg_caption_lavis_file_without_image_data(tmp_path: Path) -> None:
    """LAVIS's vg_caption.json (one entry per phrase) and no image_data.json: both image folders are searched."""
    source = dummy_dir("vg_caption")
    data_dir = tmp_path / "vg"
    for folder in ("VG_100K", "VG_100K_2"):
        shutil.copytree(source / folder, data_dir / "images" / folder)
    entries = [
        {"image": f"{region['image_id']}.jpg", "caption": region["phrase"], "image_id": f"vg_{region['image_id']}"}
        for image in json.loads((source / "region_descriptions.json").read_text())
        for region in image["regions"]
    ]
    (data_dir / "annotations").mkdir()
    (data_dir / "annotations" / "vg_caption.json").write_text(json.dumps(entries))
    lavis = check_builder("vg_caption", data_dir, tmp_path / "c1", {"train": 3}, image_text_features())
    official = load_dataset("vg_caption", data_dir=source, cache_dir=tmp_path / "c2", split="train")
    assert lavis["train"]["image_id"] == official["image_id"]
    assert lavis["train"]["captions"] == official["captions"]
    assert lavis["train"][2]["image"].size == (16, 16)
