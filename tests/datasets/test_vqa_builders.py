"""Builders of the ``vqa`` schema: coco_vqa (VQAv2), ok_vqa, aok_vqa, gqa, vg_vqa, on their dummy fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.common.builder_tester import check_builder, dummy_dir
from vl_hub.data import builder_utils
from vl_hub.data.builder_utils import InvalidExampleError
from vl_hub.data.load import load_dataset
from vl_hub.data.schemas import vqa_features


def _exception_chain(err: BaseException) -> list[BaseException]:
    chain, current = [], err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def test_coco_vqa(tmp_path: Path) -> None:
    ds = check_builder(
        "coco_vqa", dummy_dir("coco_vqa"), tmp_path, {"train": 3, "validation": 2, "test": 2}, vqa_features()
    )
    row = ds["train"][0]
    assert row["question_id"] == "9000" and row["image_id"] == "9"
    assert row["question"] == "What is in the bowl?"
    # all 10 annotator answers, repeats kept (VQA accuracy counts matches)
    assert row["answers"] == ["broccoli", "broccoli", "vegetables"] + ["broccoli"] * 7
    assert (row["choices"], row["correct_choice"], row["rationales"]) == ([], -1, [])
    assert row["image"].size == (16, 12)
    assert ds["train"]["question_id"] == ["9000", "9001", "25000"]
    assert ds["validation"][1]["answers"] == ["red", "red"] + ["maroon"] * 8
    assert ds["validation"][1]["image"].size == (20, 12)
    test = ds["test"][1]  # test-2015: no answers, image from test2015/
    assert (test["question_id"], test["image_id"], test["answers"]) == ("16000", "16", [])
    assert test["image"].size == (12, 12)


def test_coco_vqa_missing_annotations_names_path_and_instructions(tmp_path: Path) -> None:
    data_dir = tmp_path / "vqa"
    shutil.copytree(dummy_dir("coco_vqa"), data_dir)
    (data_dir / "v2_mscoco_val2014_annotations.json").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset("coco_vqa", data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert str(data_dir / "v2_mscoco_val2014_annotations.json") in str(excinfo.value)
    assert "v2_Annotations_Val_mscoco.zip" in str(excinfo.value)


def test_coco_vqa_question_without_annotation_is_invalid(tmp_path: Path) -> None:
    data_dir = tmp_path / "vqa"
    shutil.copytree(dummy_dir("coco_vqa"), data_dir)
    path = data_dir / "v2_mscoco_train2014_annotations.json"
    annotations = json.loads(path.read_text())
    annotations["annotations"] = [a for a in annotations["annotations"] if a["question_id"] != 9001]
    path.write_text(json.dumps(annotations))
    with pytest.raises(Exception) as excinfo:
        load_dataset("coco_vqa", data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert any(isinstance(e, InvalidExampleError) and "9001" in str(e) for e in _exception_chain(excinfo.value))
    ds = load_dataset(
        "coco_vqa", data_dir=data_dir, cache_dir=tmp_path / "cache_skip", skip_invalid=True, split="train"
    )
    assert ds["question_id"] == ["9000", "25000"]
    assert builder_utils.SKIP_REPORTS[str(data_dir / "v2_OpenEnded_mscoco_train2014_questions.json")].count == 1


def test_ok_vqa(tmp_path: Path) -> None:
    ds = check_builder("ok_vqa", dummy_dir("ok_vqa"), tmp_path, {"train": 2, "validation": 2}, vqa_features())
    row = ds["validation"][1]
    assert (row["question_id"], row["image_id"]) == ("5819295", "581929")
    assert row["question"] == "What is the name of the famous dreamworks animated film?"
    assert row["answers"] == ["shrek"] * 10
    assert row["image"].size == (20, 12)
    assert ds["train"][0]["answers"] == ["pony tail"] * 6 + ["hair tie"] * 2 + ["braid"] * 2
    assert ds["train"][1]["image"].size == (12, 16)


def test_ok_vqa_instructions_name_okvqa_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset("ok_vqa", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert "OpenEnded_mscoco_train2014_questions.json" in str(excinfo.value) and "okvqa.allenai.org" in str(
        excinfo.value
    )


def test_aok_vqa(tmp_path: Path) -> None:
    ds = check_builder(
        "aok_vqa", dummy_dir("aok_vqa"), tmp_path, {"train": 2, "validation": 2, "test": 2}, vqa_features()
    )
    row = ds["validation"][0]
    assert (row["question_id"], row["image_id"]) == ("22jbM6gDxdaMaunuzgrsBB", "461751")
    assert row["question"] == "What is in the motorcyclist's mouth?"
    assert row["choices"] == ["toothpick", "food", "popsicle stick", "cigarette"]
    assert row["correct_choice"] == 3
    assert row["answers"] == ["cigarette"] * 10
    assert row["rationales"][2] == "The man is smoking." and len(row["rationales"]) == 3
    assert row["image"].size == (16, 16)
    test = ds["test"][0]  # unlabelled: choices only
    assert (test["answers"], test["correct_choice"], test["rationales"]) == ([], -1, [])
    assert test["choices"] == ["sunny", "rainy", "snowy", "foggy"]
    assert test["image"].size == (8, 8)


def test_gqa(tmp_path: Path) -> None:
    ds = check_builder("gqa", dummy_dir("gqa"), tmp_path, {"train": 2, "validation": 2, "testdev": 2}, vqa_features())
    row = ds["testdev"][1]
    assert (row["question_id"], row["image_id"]) == ("20968380", "n161313")
    assert row["question"] == "Is the man on the left?"
    assert row["answers"] == ["no"]
    assert row["image"].size == (8, 8)
    assert ds["train"]["question_id"] == ["02930152", "07333408"]  # ids kept as strings, leading zero included
    assert ds["validation"]["answers"] == [["white"], ["no"]]


def test_vg_vqa(tmp_path: Path) -> None:
    ds = check_builder("vg_vqa", dummy_dir("vg_vqa"), tmp_path, {"train": 3}, vqa_features())
    assert ds["train"]["question_id"] == ["986768", "986769", "133089"]
    row = ds["train"][2]
    assert row["image_id"] == "2354381"
    assert (row["question"], row["answers"]) == ("What is red?", ["The bus."])
    assert row["image"].size == (12, 16)  # VG_100K_2/2354381.jpg


def test_vg_vqa_missing_image_is_skipped_and_counted(tmp_path: Path) -> None:
    data_dir = tmp_path / "vg"
    shutil.copytree(dummy_dir("vg_vqa"), data_dir)
    (data_dir / "VG_100K" / "1.jpg").unlink()
    with pytest.raises(Exception) as excinfo:
        load_dataset("vg_vqa", data_dir=data_dir, cache_dir=tmp_path / "cache")
    # image_data.json places image 1 in VG_100K/: the error names that file
    assert any(str(data_dir / "VG_100K" / "1.jpg") in str(e) for e in _exception_chain(excinfo.value))
    ds = load_dataset("vg_vqa", data_dir=data_dir, cache_dir=tmp_path / "cache_skip", split="train", skip_invalid=True)
    assert ds["question_id"] == ["133089"]
    assert builder_utils.SKIP_REPORTS[str(data_dir / "question_answers.json")].count == 2


def test_vg_vqa_reads_lavis_file(tmp_path: Path) -> None:
    """LAVIS's vg_qa.json ({image, question, answer} entries, no ids) with the folders under images/."""
    source = dummy_dir("vg_vqa")
    data_dir = tmp_path / "vg"
    for folder in ("VG_100K", "VG_100K_2"):
        shutil.copytree(source / folder, data_dir / "images" / folder)
    entries = [
        {"image": f"{image['id']}.jpg", "question": qa["question"], "answer": [qa["answer"]], "dataset": "vg"}
        for image in json.loads((source / "question_answers.json").read_text())
        for qa in image["qas"]
    ]
    (data_dir / "vg_qa.json").write_text(json.dumps(entries))
    ds = check_builder("vg_vqa", data_dir, tmp_path / "cache", {"train": 3}, vqa_features())
    assert ds["train"]["question_id"] == ["0", "1", "2"]  # entry index when the file has no ids
    assert ds["train"]["answers"] == [["Green."], ["On the sidewalk."], ["The bus."]]
    assert ds["train"][2]["image"].size == (12, 16)
