"""load_dataset("custom", data_dir=..., task=...): user folders mapped onto every task schema, and clear errors."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.common.builder_tester import check_streaming_equals_prepared
from vl_hub.data import schemas, synthetic
from vl_hub.data.builder_utils import MissingDataError
from vl_hub.data.custom import TASK_COLUMNS
from vl_hub.data.load import load_dataset, skipped_counts

REPO = Path(__file__).resolve().parents[2]


def _image(path: Path, rgb: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 8), rgb).save(path)


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _video(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic.write_video([np.full((16, 16, 3), v, np.uint8) for v in (0, 128)], path, fps=2)


def test_image_text_with_split_folders(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "a.png", (255, 0, 0))
    _image(tmp_path / "train" / "sub" / "b.png", (0, 255, 0))
    _image(tmp_path / "val" / "c.png", (0, 0, 255))
    _jsonl(
        tmp_path / "train" / "metadata.jsonl",
        [{"file_name": "a.png", "caption": "red"}, {"file_name": "sub/b.png", "captions": ["green", "lime"]}],
    )
    _jsonl(tmp_path / "val" / "metadata.jsonl", [{"file_name": "c.png", "caption": "blue", "image_id": "42"}])
    ds = load_dataset("custom", data_dir=tmp_path, task="image_text", cache_dir=tmp_path / ".cache")
    assert {s: d.num_rows for s, d in ds.items()} == {"train": 2, "validation": 1}
    assert ds["train"].features == schemas.image_text_features()
    assert ds["train"][1]["image_id"] == "sub/b" and ds["train"][1]["captions"] == ["green", "lime"]
    row = ds["validation"][0]
    assert row["image_id"] == "42" and row["captions"] == ["blue"] and row["image"].getpixel((3, 3)) == (0, 0, 255)
    assert check_streaming_equals_prepared("custom", tmp_path, tmp_path / ".cache", "train", task="image_text") == 2


def test_vqa_from_csv_with_json_list_cells(tmp_path: Path) -> None:
    _image(tmp_path / "x.png", (10, 20, 30))
    with open(tmp_path / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "question", "answers", "choices", "correct_choice"])
        writer.writerow(["x.png", "what colour?", json.dumps(["dark", "dark", "black"]), json.dumps(["dark", "light"]), "0"])
        writer.writerow(["x.png", "is it bright?", "no", "", ""])
    ds = load_dataset("custom", data_dir=tmp_path, task="vqa", cache_dir=tmp_path / ".cache")["train"]
    assert ds.features == schemas.vqa_features()
    assert ds[0]["answers"] == ["dark", "dark", "black"] and ds[0]["choices"] == ["dark", "light"]
    assert ds[0]["correct_choice"] == 0 and ds[0]["question_id"] == "train-2"
    assert ds[1]["answers"] == ["no"] and ds[1]["choices"] == [] and ds[1]["correct_choice"] == -1


def test_classification_from_label_column_and_from_folders(tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    for i, label in enumerate(["dog", "cat", "dog"]):
        _image(meta / f"{i}.png", (i, i, i))
    _jsonl(meta / "metadata.jsonl", [{"file_name": f"{i}.png", "label": l} for i, l in enumerate(["dog", "cat", "dog"])])
    ds = load_dataset("custom", data_dir=meta, task="classification", cache_dir=tmp_path / ".cache")["train"]
    assert ds.features == schemas.classification_features(["cat", "dog"])
    assert ds["label"] == [1, 0, 1]

    folders = tmp_path / "folders"
    for split, label, name in [("train", "b", "1"), ("train", "a", "2"), ("test", "a", "3")]:
        _image(folders / split / label / f"{name}.jpg", (200, 0, 0))
    ds = load_dataset(
        "custom", data_dir=folders, task="classification", cache_dir=tmp_path / ".cache", class_names=["b", "a"]
    )
    assert ds["train"].features["label"].names == ["b", "a"]
    assert ds["train"]["image_id"] == ["a/2", "b/1"] and ds["train"]["label"] == [1, 0]
    assert ds["test"]["label"] == [1]


def test_video_text_video_qa_and_video_dialog(tmp_path: Path) -> None:
    _video(tmp_path / "clips" / "v1.mp4")
    _jsonl(tmp_path / "metadata.jsonl", [{"file_name": "clips/v1.mp4", "caption": "a fade", "question": "q?", "answer": "a",
                                           "dialog": [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2"}]}])
    cache = tmp_path / ".cache"
    vt = load_dataset("custom", data_dir=tmp_path, task="video_text", cache_dir=cache)["train"]
    assert vt.features == schemas.video_text_features()
    assert vt[0] == {"video_id": "clips/v1", "video": str(tmp_path / "clips" / "v1.mp4"), "captions": ["a fade"]}
    qa = load_dataset("custom", data_dir=tmp_path, task="video_qa", cache_dir=cache)["train"]
    assert qa[0]["answers"] == ["a"] and qa[0]["question"] == "q?"
    vd = load_dataset("custom", data_dir=tmp_path, task="video_dialog", cache_dir=cache)["train"]
    assert vd.features == schemas.video_dialog_features()
    assert vd["round"] == [0, 1] and vd[1]["history"] == [{"question": "q1", "answer": "a1"}] and vd[1]["answer"] == "a2"


def test_nlvr_entailment_and_visual_dialog(tmp_path: Path) -> None:
    _image(tmp_path / "l.png", (1, 1, 1))
    _image(tmp_path / "r.png", (2, 2, 2))
    _jsonl(
        tmp_path / "metadata.jsonl",
        [
            {"file_name": "l.png", "image0_file_name": "l.png", "image1_file_name": "r.png", "sentence": "s", "label": True,
             "hypothesis": "h", "caption": "c", "dialog": [{"question": "q", "answer": "yes"}, {"question": "p", "answer": "no"}]},
            {"file_name": "r.png", "image0_file_name": "r.png", "image1_file_name": "l.png", "sentence": "t", "label": "false",
             "hypothesis": "k", "caption": "d", "dialog": [{"question": "q", "answer": "maybe"}]},
        ],
    )
    cache = tmp_path / ".cache"
    nlvr = load_dataset("custom", data_dir=tmp_path, task="nlvr", cache_dir=cache)["train"]
    assert nlvr.features == schemas.nlvr_features() and nlvr["label"] == [1, 0]
    assert nlvr[0]["image1"].getpixel((0, 0)) == (2, 2, 2)
    _jsonl(tmp_path / "ve" / "metadata.jsonl", [{"file_name": "../l.png", "hypothesis": "h", "label": "Neutral"}])
    ve = load_dataset("custom", data_dir=tmp_path / "ve", task="entailment", cache_dir=cache)["train"]
    assert ve.features == schemas.entailment_features() and ve["label"] == [1]
    vd = load_dataset("custom", data_dir=tmp_path, task="visual_dialog", cache_dir=cache)["train"]
    assert vd.features == schemas.visual_dialog_features() and vd.num_rows == 3
    assert vd[2]["options"] == ["maybe", "no", "yes"] and vd[2]["gt_index"] == 0 and vd[1]["history"][0]["answer"] == "yes"


def test_missing_column_lists_required_columns(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", (0, 0, 0))
    _jsonl(tmp_path / "metadata.jsonl", [{"file_name": "a.png", "text": "oops"}])
    with pytest.raises(ValueError) as info:
        load_dataset("custom", data_dir=tmp_path, task="image_text", cache_dir=tmp_path / ".cache")
    message = str(info.value)
    assert "has no column 'caption | captions'" in message and "Columns found: file_name, text" in message
    assert "needs the columns file_name, caption | captions" in message
    assert not (tmp_path / ".cache").exists(), "the folder is checked before anything is written"
    with pytest.raises(ValueError, match="'question', 'answer | answers'"):
        load_dataset("custom", data_dir=tmp_path, task="vqa", cache_dir=tmp_path / ".cache")


def test_missing_file_is_named_or_skipped(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", (0, 0, 0))
    _jsonl(tmp_path / "metadata.jsonl", [{"file_name": "a.png", "caption": "x"}, {"file_name": "gone.png", "caption": "y"}])
    with pytest.raises(MissingDataError, match=re.escape(f"line 2: file_name 'gone.png' does not exist (looked for {tmp_path / 'gone.png'})")):
        load_dataset("custom", data_dir=tmp_path, task="image_text", cache_dir=tmp_path / ".cache")
    ds = load_dataset("custom", data_dir=tmp_path, task="image_text", cache_dir=tmp_path / ".cache", skip_invalid=True)
    assert ds["train"]["image_id"] == ["a"] and skipped_counts(ds) == {"train": 1}


def test_unknown_task_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("custom", data_dir=tmp_path, task="captioning", cache_dir=tmp_path / ".cache")
    message = str(info.value)
    assert "task='captioning'" in message
    for task, columns in TASK_COLUMNS.items():
        assert f"{task}: {columns.describe()}" in message
    with pytest.raises(ValueError, match="got no task"):
        load_dataset("custom", data_dir=tmp_path, cache_dir=tmp_path / ".cache")
    with pytest.raises(MissingDataError, match="no metadata.jsonl or metadata.csv"):
        load_dataset("custom", data_dir=tmp_path, task="vqa", cache_dir=tmp_path / ".cache")


def test_metadata_edit_invalidates_cache(tmp_path: Path) -> None:
    _image(tmp_path / "a.png", (0, 0, 0))
    _jsonl(tmp_path / "metadata.jsonl", [{"file_name": "a.png", "caption": "old"}])
    cache = tmp_path / ".cache"
    assert load_dataset("custom", data_dir=tmp_path, task="image_text", cache_dir=cache)["train"][0]["captions"] == ["old"]
    _jsonl(tmp_path / "metadata.jsonl", [{"file_name": "a.png", "caption": "new caption"}])
    assert load_dataset("custom", data_dir=tmp_path, task="image_text", cache_dir=cache)["train"][0]["captions"] == ["new caption"]


def test_readme_example_runs(tmp_path: Path) -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Your own data") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)[1]
    assert len(code.strip().splitlines()) < 10
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "['a red square']"
