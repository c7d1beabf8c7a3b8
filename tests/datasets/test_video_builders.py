"""The eight video builders (MSR-VTT caption/QA/retrieval, MSVD caption/QA, VATEX, DiDeMo, AVSD),
each config on its fixture in the real upstream layout: split sizes, schema, one full row per
config against the fixture files, and missing annotations / videos / malformed entries."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import datasets
import pytest

from tests.common.builder_tester import check_builder, dummy_dir
from vl_hub.data.builder_utils import InvalidExampleError
from vl_hub.data.load import dataset_info, load_dataset, skip_reports
from vl_hub.data.schemas import video_dialog_features, video_qa_features, video_text_features

TEXT, QA, DIALOG = video_text_features(), video_qa_features(), video_dialog_features()
THREE = {"train": 2, "validation": 2, "test": 2}
VATEX_EN = "A chef flips a pancake in a frying pan"

# (name, config, fixture sub-folder, split sizes, schema, split, row index, expected row with
#  "video" relative to the fixture folder)
CASES: list[tuple[str, str, str, dict[str, int], datasets.Features, str, int, dict[str, Any]]] = [
    (
        "msrvtt_caption",
        "official",
        "",
        THREE,
        TEXT,
        "train",
        0,
        {
            "video_id": "video0",
            "video": "videos/all/video0.mp4",
            "captions": [
                "a car is shown",
                "a group of people are dancing",
                "a man drives a vehicle through the countryside",
            ],
        },
    ),
    (
        "msrvtt_caption",
        "lavis",
        "lavis",
        THREE,
        TEXT,
        "validation",
        1,
        {
            "video_id": "video6514",
            "video": "videos/video6514.mp4",
            "captions": ["two men play tennis", "a tennis match between two players"],
        },
    ),
    (
        "msrvtt_retrieval",
        "train_9k",
        "",
        {"train": 3, "test": 2},
        TEXT,
        "train",
        2,
        {
            "video_id": "video6513",
            "video": "videos/all/video6513.mp4",
            "captions": ["a woman is cooking in a kitchen", "someone slices onions on a board"],
        },
    ),
    (
        "msrvtt_retrieval",
        "train_7k",
        "",
        {"train": 2, "test": 2},
        TEXT,
        "test",
        0,
        {
            "video_id": "video7010",
            "video": "videos/all/video7010.mp4",
            "captions": ["a woman creating a fondant baby and flower"],
        },
    ),
    (
        "msrvtt_retrieval",
        "lavis",
        "lavis",
        THREE,
        TEXT,
        "train",
        1,
        {
            "video_id": "video1",
            "video": "videos/video1.mp4",
            "captions": ["a cartoon character is talking", "an animated squirrel speaks to a rabbit"],
        },
    ),
    (
        "msrvtt_qa",
        "official",
        "",
        {"train": 3, "validation": 2, "test": 2},
        QA,
        "train",
        1,
        {
            "question_id": "1",
            "video_id": "video0",
            "video": "videos/all/video0.mp4",
            "question": "what are a group of people doing?",
            "answers": ["dance"],
        },
    ),
    (
        "msrvtt_qa",
        "lavis",
        "lavis",
        THREE,
        QA,
        "test",
        1,
        {
            "question_id": "170860",
            "video_id": "video7011",
            "video": "videos/video7011.mp4",
            "question": "what does a baseball player hit?",
            "answers": ["ball"],
        },
    ),
    (
        "msvd_caption",
        "official",
        "",
        THREE,
        TEXT,
        "validation",
        0,
        {
            # English only, in file order: the French description of this clip is dropped
            "video_id": "SzEbtbNSg04_34_42",
            "video": "YouTubeClips/SzEbtbNSg04_34_42.avi",
            "captions": ["a man is playing a guitar", "A guy plays guitar."],
        },
    ),
    (
        "msvd_caption",
        "lavis",
        "lavis",
        THREE,
        TEXT,
        "train",
        0,
        {
            "video_id": "-4wsuPCjDBc_5_15",
            "video": "videos/-4wsuPCjDBc_5_15.avi",
            "captions": ["a squirrel is eating a peanut in it's shell", "A chipmunk is eating."],
        },
    ),
    (
        "msvd_qa",
        "official",
        "",
        {"train": 3, "validation": 2, "test": 2},
        QA,
        "train",
        2,
        {
            "question_id": "2",
            "video_id": "-7KMZQEsJW4_205_208",
            "video": "YouTubeClips/-7KMZQEsJW4_205_208.avi",
            "question": "what is a woman slicing?",
            "answers": ["onion"],
        },
    ),
    (
        "msvd_qa",
        "lavis",
        "lavis",
        THREE,
        QA,
        "validation",
        0,
        {
            "question_id": "30933",
            "video_id": "SzEbtbNSg04_34_42",
            "video": "videos/SzEbtbNSg04_34_42.avi",
            "question": "what is a man playing?",
            "answers": ["guitar"],
        },
    ),
    (
        "vatex_caption",
        "official",
        "",
        THREE,
        TEXT,
        "validation",
        1,
        {
            "video_id": "-3Ss9xI0IAs_000025_000035",
            "video": "videos/-3Ss9xI0IAs_000025_000035.mp4",
            "captions": [f"{VATEX_EN}."] + [f"{VATEX_EN} ({i})." for i in range(2, 11)],
        },
    ),
    (
        "vatex_caption",
        "lavis",
        "lavis",
        THREE,
        TEXT,
        "test",
        0,
        {
            # LAVIS's test file is VATEX's private test: no captions
            "video_id": "0_CCYnNKzKg_000077_000087",
            "video": "videos/0_CCYnNKzKg_000077_000087.mp4",
            "captions": [],
        },
    ),
    (
        "didemo_retrieval",
        "official",
        "",
        THREE,
        TEXT,
        "train",
        1,
        {
            # Flickr-named file (no AWS ".mp4"); the three descriptions form one paragraph, in file order
            "video_id": "12090392@N02_13482799053_87ef417396.mov",
            "video": "videos/12090392@N02_13482799053_87ef417396.mov",
            "captions": ["a dog runs into the water dog shakes off the water first time we see the lake"],
        },
    ),
    (
        "didemo_retrieval",
        "lavis",
        "lavis",
        THREE,
        TEXT,
        "validation",
        1,
        {
            "video_id": "88452963@N00_2343779432_4b8a7f3ab3.avi",
            "video": "videos/88452963@N00_2343779432_4b8a7f3ab3.avi.mp4",
            "captions": ["the train passes under the bridge train horn sounds"],
        },
    ),
    (
        "avsd",
        "official",
        "",
        {"train": 5, "validation": 4, "test": 3},
        DIALOG,
        "test",
        1,
        {
            # the withheld DSTC7 test answer is empty
            "dialog_id": "2Y7QD",
            "video_id": "2Y7QD",
            "video": "Charades_v1_480/2Y7QD.mp4",
            "caption": "a person is laughing at a laptop",
            "summary": "a man laughs at something on his laptop",
            "history": [{"question": "is he sitting or standing ?", "answer": "he is sitting at a desk"}],
            "round": 1,
            "question": "does he type anything ?",
            "answer": "",
        },
    ),
    (
        "avsd",
        "lavis",
        "lavis",
        {"train": 5, "validation": 2, "test": 2},
        DIALOG,
        "validation",
        0,
        {
            # LAVIS evaluates the last turn of each dialogue only
            "dialog_id": "0A8CF",
            "video_id": "0A8CF",
            "video": "Charades_v1_480/0A8CF.mp4",
            "caption": "a man opens a door and turns on the light",
            "summary": "a man walks into a room and switches on the light",
            "history": [{"question": "is the room dark at first ?", "answer": "yes it is dark"}],
            "round": 1,
            "question": "does he say anything ?",
            "answer": "no he is silent",
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "config", "sub", "counts", "schema", "split", "index", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_video_builder_rows(
    name: str,
    config: str,
    sub: str,
    counts: dict[str, int],
    schema: datasets.Features,
    split: str,
    index: int,
    expected: dict[str, Any],
    tmp_path: Path,
) -> None:
    data_dir = dummy_dir(name) / sub
    ds = check_builder(name, data_dir, tmp_path, counts, schema, config)
    row = ds[split][index]
    video = Path(row["video"])
    assert video.is_absolute() and video.is_file()
    assert row == {**expected, "video": str((data_dir / expected["video"]).resolve())}


def test_avsd_rows_carry_the_whole_history(tmp_path: Path) -> None:
    train = check_builder("avsd", dummy_dir("avsd"), tmp_path, {"train": 5, "validation": 4, "test": 3}, DIALOG)[
        "train"
    ]
    dialog = json.loads((dummy_dir("avsd") / "train_set4DSTC7-AVSD.json").read_text())["dialogs"][0]
    for r in range(3):
        assert train[r]["round"] == r and train[r]["history"] == dialog["dialog"][:r]
        assert (train[r]["question"], train[r]["answer"]) == (
            dialog["dialog"][r]["question"],
            dialog["dialog"][r]["answer"],
        )


# (name, config, fixture sub-folder, file to delete, text of the instructions)
MISSING = [
    ("msrvtt_caption", "official", "", "MSRVTT_data.json", "msrvtt_data.zip"),
    ("msrvtt_caption", "lavis", "lavis", "annotations/cap_val.json", "cap_val.json"),
    ("msrvtt_retrieval", "train_9k", "", "MSRVTT_train.9k.csv", "MSRVTT_JSFUSION_test.csv"),
    ("msrvtt_retrieval", "train_7k", "", "MSRVTT_train.7k.csv", "MSRVTT_train.7k.csv"),
    ("msrvtt_qa", "official", "", "test_qa.json", "data.mendeley.com"),
    ("msvd_caption", "official", "", "youtube_mapping.txt", "YouTubeClips.tar"),
    ("msvd_qa", "official", "", "youtube_mapping.txt", "YouTubeClips.tar"),
    ("vatex_caption", "official", "", "vatex_public_test_english_v1.1.json", "vatex-website/download"),
    ("didemo_retrieval", "official", "", "val_data.json", "download_videos_AWS.py"),
    ("avsd", "official", "", "valid_set4DSTC7-AVSD.json", "Charades_v1_480.zip"),
    ("avsd", "lavis", "lavis", "Charades_v1_480", "avsd_dstc7_train.json"),
]


@pytest.mark.parametrize(("name", "config", "sub", "missing", "hint"), MISSING, ids=[f"{m[0]}-{m[3]}" for m in MISSING])
def test_missing_annotation_names_path_and_instructions(
    name: str, config: str, sub: str, missing: str, hint: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(dummy_dir(name) / sub, data_dir, ignore=shutil.ignore_patterns("lavis"))
    target = data_dir / missing
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset(name, data_dir=data_dir, cache_dir=tmp_path / "cache", config_name=config)
    assert f"expected {target} but it does not exist" in str(excinfo.value)
    assert hint in str(excinfo.value)


# (name, fixture video to delete, split losing rows, split size without skip, rows lost with skip_invalid,
#  text of the instructions)
MISSING_VIDEO = [
    ("msrvtt_caption", "videos/all/video6514.mp4", "validation", 2, 1, "MSRVTT.zip"),
    ("msrvtt_retrieval", "videos/all/video7011.mp4", "test", 2, 1, "MSRVTT.zip"),
    ("msrvtt_qa", "videos/all/video0.mp4", "train", 3, 2, "MSRVTT.zip"),
    ("msvd_caption", "YouTubeClips/UbmZAe5u5FI_132_141.avi", "test", 2, 1, "YouTubeClips.tar"),
    ("msvd_qa", "YouTubeClips/-7KMZQEsJW4_205_208.avi", "train", 3, 1, "YouTubeClips.tar"),
    ("vatex_caption", "videos/Fngt7yvrTQY_000004_000014.mp4", "train", 2, 1, "yt-dlp"),
    ("didemo_retrieval", "videos/26292851@N04_4253489686_265c3c8051.m4v.mp4", "train", 2, 1, "AWS"),
    ("avsd", "Charades_v1_480/46GP8.mp4", "train", 5, 3, "Charades_v1_480.zip"),
]


@pytest.mark.parametrize(
    ("name", "video", "split", "count", "lost", "hint"), MISSING_VIDEO, ids=[m[0] for m in MISSING_VIDEO]
)
def test_missing_video_fails_naming_it_or_is_skipped(
    name: str, video: str, split: str, count: int, lost: int, hint: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(dummy_dir(name), data_dir, ignore=shutil.ignore_patterns("lavis"))
    (data_dir / video).unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset(name, data_dir=data_dir, cache_dir=tmp_path / "strict")
    assert f"video file {data_dir / video}" in str(excinfo.value) and hint in str(excinfo.value)

    ds = load_dataset(name, data_dir=data_dir, cache_dir=tmp_path / "lenient", skip_invalid=True, split=split)
    assert ds.num_rows == count - lost
    assert all(Path(v).is_file() for v in ds["video"])
    reports = [r for r in skip_reports(ds)[split] if r.count]
    assert sum(r.count for r in reports) == lost and str(data_dir / video) in reports[0].reasons[0]


def test_malformed_entry_fails_naming_file_and_entry_or_is_skipped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(dummy_dir("msrvtt_qa"), data_dir, ignore=shutil.ignore_patterns("lavis"))
    annotation = data_dir / "val_qa.json"
    rows = json.loads(annotation.read_text())
    del rows[0]["question"]
    annotation.write_text(json.dumps(rows))
    with pytest.raises(InvalidExampleError, match=re.escape(f"{annotation}: entry 0 is malformed") + ".*'question'"):
        load_dataset("msrvtt_qa", data_dir=data_dir, cache_dir=tmp_path / "strict")

    ds = load_dataset("msrvtt_qa", data_dir=data_dir, cache_dir=tmp_path / "lenient", skip_invalid=True)
    assert {split: ds[split].num_rows for split in ds} == {"train": 3, "validation": 1, "test": 2}
    assert ds["validation"]["question_id"] == ["158582"]
    assert [(r.where, r.count) for r in skip_reports(ds)["validation"]] == [(str(annotation), 1)]


def test_malformed_json_file_names_file_and_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(dummy_dir("vatex_caption"), data_dir, ignore=shutil.ignore_patterns("lavis"))
    annotation = data_dir / "vatex_validation_v1.0.json"
    annotation.write_text('[\n  {"videoID": "x",\n  "enCap": ["a", }\n]')
    with pytest.raises(InvalidExampleError, match=re.escape(f"{annotation}: malformed JSON at line 3")):
        load_dataset("vatex_caption", data_dir=data_dir, cache_dir=tmp_path / "cache")


TASKS = {
    "msrvtt_caption": "video_text",
    "msrvtt_retrieval": "video_text",
    "msvd_caption": "video_text",
    "vatex_caption": "video_text",
    "didemo_retrieval": "video_text",
    "msrvtt_qa": "video_qa",
    "msvd_qa": "video_qa",
    "avsd": "video_dialog",
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_video_builder_declares_its_task_and_instructions(name: str) -> None:
    info = dataset_info(name)
    assert info.tasks == [TASKS[name]] and set(info.configs.values()) == {TASKS[name]}
    assert info.manual_download_instructions and info.citation.startswith("@") and info.license
