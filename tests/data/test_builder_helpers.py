"""The shared mechanics of the builders in ``dataset_scripts/``, tested alone on hand-made inputs:
webdataset shard reading (:mod:`vl_hub.data.webdataset`), the video builders' LAVIS readers and checks
(:mod:`vl_hub.data.video_builders`), and the image builders' file lookups, caption-format readers and
row builders (:mod:`vl_hub.data.builder_utils`)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import datasets
import pytest
from PIL import Image

from vl_hub.data.builder_utils import (
    SKIP_REPORTS,
    InvalidExampleError,
    MissingDataError,
    VlHubBuilderConfig,
    annotation_image_split_generators,
    first_dir,
    first_file,
    image_decode_error,
    image_text_examples,
    karpathy_rows,
    lavis_caption_rows,
    vqa_example,
)
from vl_hub.data.video_builders import (
    check_video,
    lavis_caption_examples,
    lavis_qa_row,
    read_youtube_mapping,
    video_qa_examples,
)
from vl_hub.data.webdataset import (
    check_image_bytes,
    image_text_example,
    iter_tar_samples,
    iter_webdataset_examples,
    json_member,
    shard_split_generator,
)


def _jpeg(color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def _archive(path: Path) -> object:
    """The tar as builders see it: ``dl_manager.iter_archive`` (a streamed, non-seekable read)."""
    return datasets.DownloadManager().iter_archive(str(path))


# --------------------------------------------------------------------------------------------------
# webdataset


def test_tar_members_group_into_samples_by_key(tmp_path: Path) -> None:
    shard = _write_tar(
        tmp_path / "00000.tar",
        [
            ("a.jpg", b"A"),
            ("a.txt", b"cap a"),
            ("README", b"no extension: not a sample"),
            ("dir/b.seg.JSON", b"{}"),  # key stops at the first dot of the file name; extension lower-cased
            ("dir/b.jpg", b"B"),
            ("a.json", b"{}"),  # not consecutive with the first a.*: a new sample with the same key
        ],
    )
    samples = list(iter_tar_samples(str(shard), _archive(shard)))
    assert samples == [
        ("a", {"jpg": b"A", "txt": b"cap a"}),
        ("dir/b", {"seg.json": b"{}", "jpg": b"B"}),
        ("a", {"json": b"{}"}),
    ]


def test_truncated_tar_keeps_the_samples_before_the_damage(tmp_path: Path) -> None:
    shard = _write_tar(tmp_path / "00000.tar", [("a.jpg", b"A" * 600), ("a.txt", b"x"), ("b.jpg", b"B" * 5000)])
    data = shard.read_bytes()
    shard.write_bytes(data[: 512 * 7])  # cut inside the content of b.jpg
    samples = list(iter_tar_samples(str(shard), _archive(shard)))
    assert samples[0] == ("a", {"jpg": b"A" * 600, "txt": b"x"})
    key, error = samples[-1]
    # the damage is met while reading b's first member: b is the sample named, and it is lost
    assert len(samples) == 2 and key == "b#unreadable" and isinstance(error, InvalidExampleError)
    assert f"{shard}: the tar archive is truncated or corrupt after sample 'b' (ReadError" in str(error)


def test_image_text_example_reads_caption_from_txt_then_json(tmp_path: Path) -> None:
    jpeg = _jpeg()
    meta = json.dumps({"key": "0042", "caption": " from json "}).encode()
    row = image_text_example("s.tar", "d/0042", {"jpg": jpeg, "txt": b" from txt \n", "json": meta})
    assert row == {"image_id": "0042", "image": {"path": "d/0042.jpg", "bytes": jpeg}, "captions": ["from txt"]}
    row = image_text_example("s.tar", "d/7", {"png": jpeg, "json": meta})
    assert row["captions"] == ["from json"] and row["image"]["path"] == "d/7.png"
    # without a "key" in the JSON the id is the sample key's file name
    assert image_text_example("s.tar", "d/7", {"jpg": jpeg, "txt": b"c"})["image_id"] == "7"


def test_caption_lists_only_where_asked(tmp_path: Path) -> None:
    files = {"jpg": _jpeg(), "json": json.dumps([" a red mug", "a mug "]).encode()}
    assert image_text_example("s.tar", "0", files, caption_lists=True)["captions"] == ["a red mug", "a mug"]
    with pytest.raises(InvalidExampleError, match=r"s.tar: member 0.json holds a list, expected an object$"):
        image_text_example("s.tar", "0", files)
    with pytest.raises(InvalidExampleError, match=r"no 'caption' or caption list in 0.json"):
        image_text_example("s.tar", "0", {"jpg": _jpeg(), "json": b"[]"}, caption_lists=True)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"txt": b"c", "json": b"{}"},
            r"s.tar: sample 'k' has no image member \(.jpg/.jpeg/.png/.webp\); it has \['json', 'txt'\]",
        ),
        (
            {"jpg": b"", "json": b'{"url": "u"}'},
            r"s.tar: sample 'k' has no caption \(no k.txt, no 'caption' in k.json\)",
        ),
        ({"jpg": b"", "txt": b"\xff\xfe"}, r"s.tar: member k.txt is not UTF-8 text"),
        ({"jpg": b"", "json": b'{"caption": '}, r"s.tar: member k.json is not valid JSON"),
        ({"jpg": b"", "json": b'"a string"'}, r"s.tar: member k.json holds a str, expected an object"),
    ],
)
def test_image_text_example_names_shard_and_member_of_a_bad_sample(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(InvalidExampleError, match=message):
        image_text_example("s.tar", "k", files, verify_media=False)


def test_undecodable_image_fails_only_when_verified() -> None:
    files = {"jpg": b"\xff\xd8 not a jpeg", "txt": b"c"}
    with pytest.raises(InvalidExampleError, match=r"s.tar: member k.jpg cannot be decoded as an image"):
        image_text_example("s.tar", "k", files)
    assert image_text_example("s.tar", "k", files, verify_media=False)["image"]["bytes"] == files["jpg"]
    check_image_bytes("s.tar", "k.jpg", _jpeg())  # a good image passes silently


def test_json_member_is_empty_without_one() -> None:
    assert json_member("s.tar", "k", {"jpg": b""}) == {}


def test_shard_split_generator_lists_tars_sorted_below_data_dir(tmp_path: Path) -> None:
    for name in ("b/00000.tar", "00001.tar", "00000.tar"):
        _write_tar(tmp_path / name, [("x.txt", b"x")])
    (tmp_path / "00000.parquet").write_bytes(b"")
    generator = shard_split_generator("demo", tmp_path, "how to get it", datasets.DownloadManager())
    assert generator.name == datasets.Split.TRAIN
    kwargs = generator.gen_kwargs
    assert kwargs["shard_names"] == ["00000.tar", "00001.tar", "b/00000.tar"]
    assert kwargs["shards"] == [str(tmp_path.resolve() / name) for name in kwargs["shard_names"]]
    assert [list(archive)[0][0] for archive in kwargs["archives"]] == ["x.txt"] * 3


def test_shard_split_generator_without_tars_names_the_pattern(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"demo: expected .*\*\.tar but it does not exist(.|\n)*how to get it"):
        shard_split_generator("demo", tmp_path, "how to get it", datasets.DownloadManager())


def test_webdataset_examples_key_by_shard_and_honour_skip_invalid(tmp_path: Path) -> None:
    good, bad = _jpeg(), b"not an image"
    first = _write_tar(tmp_path / "00000.tar", [("0.jpg", good), ("0.txt", b"zero"), ("1.jpg", bad), ("1.txt", b"one")])
    second = _write_tar(tmp_path / "sub/00001.tar", [("2.jpg", good), ("2.txt", b"two")])
    shards, names = [str(first), str(second)], ["00000.tar", "sub/00001.tar"]

    def run(skip: bool) -> list[tuple[str, list[str]]]:
        config = VlHubBuilderConfig(name="t", skip_invalid=skip)
        examples = iter_webdataset_examples(
            config, shards, names, [_archive(first), _archive(second)], image_text_example
        )
        return [(key, row["captions"]) for key, row in examples]

    with pytest.raises(InvalidExampleError, match="member 1.jpg cannot be decoded"):
        run(skip=False)
    assert run(skip=True) == [("00000.tar/0", ["zero"]), ("sub/00001.tar/2", ["two"])]
    assert (SKIP_REPORTS[str(first)].count, SKIP_REPORTS[str(second)].count) == (1, 0)


# --------------------------------------------------------------------------------------------------
# video builders


def _missing_video(path: Path) -> str:
    return (
        f"video file {path} does not exist; check the download is complete, "
        "or pass skip_invalid=True to skip its examples"
    )


def _built(items: object) -> list[tuple[str, object]]:
    """``(key, example or error message)`` of ``*_examples`` items, building each thunk."""
    out = []
    for key, item in items:  # type: ignore[attr-defined]
        if isinstance(item, Exception):
            out.append((key, str(item)))
            continue
        try:
            out.append((key, item()))
        except InvalidExampleError as err:
            out.append((key, f"raised: {err}"))
    return out


def test_check_video_returns_the_path_or_names_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"")
    assert check_video(tmp_path / "v.mp4") == str(tmp_path / "v.mp4")
    with pytest.raises(InvalidExampleError) as excinfo:
        check_video(tmp_path / "w.mp4")
    assert str(excinfo.value) == _missing_video(tmp_path / "w.mp4")


def test_lavis_caption_rows_group_by_video_in_file_order(tmp_path: Path) -> None:
    annotation = tmp_path / "cap_train.json"
    rows = [
        {"video": "video7.mp4", "caption": " a dog runs "},
        {"video": "clip.a.avi", "caption": ["x", "y "]},
        {"caption": "no video"},
        {"video": "video7.mp4", "caption": ["it runs"]},
        {"video": "video9.mp4", "caption": 3},
        {"video": "hidden.mp4"},  # private test rows carry no caption
    ]
    annotation.write_text(json.dumps(rows))
    for name in ("video7.mp4", "hidden.mp4"):
        (tmp_path / name).write_bytes(b"")
    assert _built(lavis_caption_examples(annotation, tmp_path)) == [
        ("#2", f"{annotation}: entry 2 has no 'video' string: {{'caption': 'no video'}}"),
        ("#4", f"{annotation}: entry 4: 'caption' is not a string or a list of strings"),
        (
            "video7",
            {"video_id": "video7", "video": str(tmp_path / "video7.mp4"), "captions": ["a dog runs", "it runs"]},
        ),
        ("clip.a", "raised: " + _missing_video(tmp_path / "clip.a.avi")),
        ("hidden", {"video_id": "hidden", "video": str(tmp_path / "hidden.mp4"), "captions": []}),
    ]


def test_lavis_caption_file_must_be_a_list(tmp_path: Path) -> None:
    annotation = tmp_path / "cap_val.json"
    annotation.write_text('{"video": "a.mp4"}')
    examples = lavis_caption_examples(annotation, tmp_path)  # nothing is read before iteration
    with pytest.raises(InvalidExampleError, match=r"cap_val.json: expected a JSON list of \{'video', 'caption'\}, got"):
        next(examples)


def test_lavis_qa_row() -> None:
    row = {"video": "video3.mp4", "question": " what is it? ", "answer": " dog ", "question_id": 17}
    assert lavis_qa_row(row, 0) == ("17", "video3", "video3.mp4", "what is it?", ["dog"])
    row = {"video": "c.d.avi", "question": "q", "answer": ["a ", "b"]}
    assert lavis_qa_row(row, 5) == ("5", "c.d", "c.d.avi", "q", ["a", "b"])
    with pytest.raises(TypeError, match="'video' is int, expected a file name"):
        lavis_qa_row({"video": 3, "question": "q", "answer": "a"}, 0)


def test_video_qa_examples_one_per_question_and_malformed_entries_named(tmp_path: Path) -> None:
    annotation = tmp_path / "qa_train.json"
    rows = [
        {"video": "v1.mp4", "question": "who?", "answer": "a man", "question_id": 4},
        {"video": "v1.mp4", "answer": "no question"},
        {"video": "gone.mp4", "question": "where?", "answer": "home", "question_id": 6},
    ]
    annotation.write_text(json.dumps(rows))
    (tmp_path / "v1.mp4").write_bytes(b"")
    assert _built(video_qa_examples(annotation, tmp_path, lavis_qa_row)) == [
        (
            "4",
            {
                "question_id": "4",
                "video_id": "v1",
                "video": str(tmp_path / "v1.mp4"),
                "question": "who?",
                "answers": ["a man"],
            },
        ),
        ("#1", f"{annotation}: entry 1 is malformed (KeyError: 'question'): {rows[1]!r}"),
        ("6", "raised: " + _missing_video(tmp_path / "gone.mp4")),
    ]


def test_video_qa_file_is_checked_before_any_example(tmp_path: Path) -> None:
    annotation = tmp_path / "qa_val.json"
    annotation.write_text('{"questions": []}')
    with pytest.raises(InvalidExampleError, match=r"qa_val.json: expected a JSON list of questions, got dict"):
        video_qa_examples(annotation, tmp_path, lavis_qa_row)  # raises on the call, not on iteration
    annotation.write_text("[\n{,\n]")
    with pytest.raises(InvalidExampleError, match=r"qa_val.json: malformed JSON at line 2"):
        video_qa_examples(annotation, tmp_path, lavis_qa_row)


def test_read_youtube_mapping(tmp_path: Path) -> None:
    path = tmp_path / "youtube_mapping.txt"
    path.write_text("-4wsuPCjDBc_5_15 vid1\n\nUbmZAe5u5FI_132_141 vid1201\n")
    assert read_youtube_mapping(path) == {1: "-4wsuPCjDBc_5_15", 1201: "UbmZAe5u5FI_132_141"}
    path.write_text("a_1_2 vid1\nb_1_2 clip2\n")
    with pytest.raises(InvalidExampleError, match=r"youtube_mapping.txt: line 2 is not '<clip> vid<N>': 'b_1_2 clip2'"):
        read_youtube_mapping(path)


# --------------------------------------------------------------------------------------------------
# image builders (builder_utils)


def test_first_file_and_first_dir_take_the_first_existing_candidate(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "c").mkdir()
    candidates = [tmp_path / "missing", tmp_path / "a", tmp_path / "b.json", tmp_path / "c"]
    assert first_file(candidates) == tmp_path / "b.json"
    assert first_dir(candidates) == tmp_path / "a"
    assert first_dir(p for p in candidates[2:]) == tmp_path / "c"  # any iterable, e.g. a generator
    assert first_file([tmp_path / "a"]) is None and first_dir([tmp_path / "b.json"]) is None


def test_karpathy_rows_keep_the_wanted_splits_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "dataset_x.json"
    images = [
        {"split": "train", "filename": "1.jpg", "sentences": [{"raw": " one "}, {"raw": "uno"}]},
        {"split": "test", "filename": "2.jpg", "sentences": [{"raw": "two"}]},
        {"split": "restval", "filename": "3.jpg", "sentences": []},
    ]
    path.write_text(json.dumps({"images": images, "dataset": "x"}))

    def locate(image: dict) -> tuple[str, str]:
        return image["filename"].split(".")[0], f"imgs/{image['filename']}"

    assert karpathy_rows(path, ("train", "restval"), locate) == [
        ("1", "imgs/1.jpg", ["one", "uno"]),
        ("3", "imgs/3.jpg", []),
    ]
    assert karpathy_rows(path, ("test",), locate) == [("2", "imgs/2.jpg", ["two"])]
    del images[1]["sentences"]
    path.write_text(json.dumps({"images": images}))
    with pytest.raises(InvalidExampleError, match=r"dataset_x.json: images\[1\] lacks the field 'sentences'"):
        karpathy_rows(path, ("test",), locate)
    path.write_text("[]")
    with pytest.raises(InvalidExampleError, match=r"expected the Karpathy format \{'images': \[...\]\}, got list"):
        karpathy_rows(path, ("test",), locate)


def test_lavis_caption_rows_group_captions_by_image(tmp_path: Path) -> None:
    path = tmp_path / "x_train.json"
    entries = [
        {"image": "imgs/1.jpg", "caption": " a cat "},
        {"image": "imgs/2.jpg", "caption": ["a dog", "two dogs "]},
        {"image": "imgs/1.jpg", "caption": "the cat"},
    ]
    path.write_text(json.dumps(entries))
    assert lavis_caption_rows(path, lambda relative: Path(relative).stem) == [
        ("1", "imgs/1.jpg", ["a cat", "the cat"]),
        ("2", "imgs/2.jpg", ["a dog", "two dogs"]),
    ]
    path.write_text(json.dumps([{"image": "imgs/1.jpg"}]))
    with pytest.raises(InvalidExampleError, match=r"x_train.json: entry 0 lacks the field 'caption'"):
        lavis_caption_rows(path, str)
    path.write_text("{}")
    with pytest.raises(InvalidExampleError, match=r"x_train.json: expected a JSON list of \{image, caption\} entries"):
        lavis_caption_rows(path, str)


def test_image_text_examples_check_each_image_when_built(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "imgs" / "1.png")
    (tmp_path / "imgs" / "2.png").write_bytes(b"not a png")
    rows = [("1", "imgs/1.png", ["a"]), ("2", "imgs/2.png", ["b"]), ("3", "imgs/3.png", [])]
    items = list(image_text_examples(rows, tmp_path))
    assert [key for key, _ in items] == ["1", "2", "3"]
    assert items[0][1]() == {"image_id": "1", "image": str(tmp_path / "imgs" / "1.png"), "captions": ["a"]}
    with pytest.raises(InvalidExampleError, match="2.png cannot be decoded"):
        items[1][1]()
    with pytest.raises(InvalidExampleError, match="3.png does not exist"):
        items[2][1]()
    # verify=False only checks that the file exists
    unverified = dict(image_text_examples(rows, tmp_path, verify=False))
    assert unverified["2"]()["image"] == str(tmp_path / "imgs" / "2.png")


def test_image_decode_error_reads_paths_and_file_objects(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG truncated")
    assert image_decode_error(tmp_path / "ok.png") is None
    assert image_decode_error(io.BytesIO(_jpeg())) is None
    assert isinstance(image_decode_error(tmp_path / "bad.png"), Exception)
    assert isinstance(image_decode_error(io.BytesIO(b"\xff\xd8 not a jpeg")), Exception)


def test_vqa_example_fills_the_optional_fields() -> None:
    assert vqa_example("q1", "i1", "/x.jpg", "what?", ["a", "a"]) == {
        "question_id": "q1",
        "image_id": "i1",
        "image": "/x.jpg",
        "question": "what?",
        "answers": ["a", "a"],
        "choices": [],
        "correct_choice": -1,
        "rationales": [],
    }
    row = vqa_example("q", "i", "/x.jpg", "?", [], choices=["x", "y"], correct_choice=1, rationales=["r"])
    assert (row["choices"], row["correct_choice"], row["rationales"]) == (["x", "y"], 1, ["r"])


def test_annotation_image_split_generators_require_both_per_split(tmp_path: Path) -> None:
    splits = {datasets.Split.TRAIN: ("train.json", "imgs"), datasets.Split.TEST: ("test.json", "imgs")}
    (tmp_path / "train.json").write_text("[]")
    (tmp_path / "test.json").write_text("[]")
    (tmp_path / "imgs").mkdir()
    generators = annotation_image_split_generators("demo", tmp_path, splits, "get them here")
    assert [(g.name, g.gen_kwargs) for g in generators] == [
        ("train", {"annotation_path": tmp_path / "train.json", "image_dir": tmp_path / "imgs"}),
        ("test", {"annotation_path": tmp_path / "test.json", "image_dir": tmp_path / "imgs"}),
    ]
    (tmp_path / "test.json").unlink()
    with pytest.raises(MissingDataError) as excinfo:
        annotation_image_split_generators("demo", tmp_path, splits, "get them here")
    assert f"demo: expected {tmp_path / 'test.json'} but it does not exist" in str(excinfo.value)
    assert "get them here" in str(excinfo.value)
