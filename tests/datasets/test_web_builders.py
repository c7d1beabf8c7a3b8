"""The four web-corpus builders (SBU, CC3M, CC12M, LAION) on their img2dataset webdataset fixtures:
split sizes, schema, full rows against the tar members, streaming == prepared, and the handling of
missing shards, corrupt images and malformed JSON members (fail naming shard + member, or skip)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from tests.common.builder_tester import check_builder, check_streaming_equals_prepared, dummy_dir
from vl_hub.data.builder_utils import InvalidExampleError
from vl_hub.data.load import dataset_info, load_dataset, skip_reports
from vl_hub.data.schemas import image_text_features

# name -> (rows in the fixture, (image_id, caption) of the first row, (image_id, caption) of the last row)
WEB = {
    "sbu_caption": (
        3,
        ("000000000", "a wooden chair in the living room"),
        ("000010000", "the sun sets over the lake near our cabin"),
    ),
    "conceptual_captions_3m": (
        4,
        ("000000000", "a very typical bus station"),
        ("000010001", "interior design of modern living room with fireplace in a new house"),
    ),
    "conceptual_captions_12m": (
        4,
        ("000000000", "<PERSON> was the first US president to visit this vintage armchair"),
        ("000010000", "A bowl of ramen with egg and green onions"),
    ),
    "laion": (
        3,
        ("000000000", "Cat Mom Coffee Mug, 11oz ceramic"),
        ("000010000", "Men's lightweight running shoes blue size 10"),
    ),
}


def _member(shard: Path, name: str) -> bytes:
    with tarfile.open(shard) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def _pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").tobytes()


def _rewrite_member(shard: Path, name: str, data: bytes) -> None:
    """Rewrites ``shard`` with member ``name`` replaced by ``data`` (other members, order kept)."""
    with tarfile.open(shard) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, content in members:
            content = data if info.name == name else content
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


@pytest.mark.parametrize("name", sorted(WEB))
def test_web_builder_rows(name: str, tmp_path: Path) -> None:
    count, (first_id, first_caption), (last_id, last_caption) = WEB[name]
    ds = check_builder(name, dummy_dir(name), tmp_path, {"train": count}, image_text_features())
    train = ds["train"]
    first, last = train[0], train[count - 1]
    assert (first["image_id"], first["captions"]) == (first_id, [first_caption])
    assert (last["image_id"], last["captions"]) == (last_id, [last_caption])
    # the image is embedded: same pixels as the shard's member, readable without the tar
    assert first["image"].size == (8, 8)
    assert first["image"].convert("RGB").tobytes() == _pixels(_member(dummy_dir(name) / "00000.tar", "000000000.jpg"))
    assert train.with_format("arrow")["image"][0]["bytes"].as_py() == _member(
        dummy_dir(name) / "00000.tar", "000000000.jpg"
    )
    # keys, ids and order follow the shards: shard 00000 first, samples in tar order
    meta = json.loads(_member(dummy_dir(name) / "00001.tar", f"{last_id}.json"))
    assert meta["key"] == last_id and meta["caption"] == last_caption


@pytest.mark.parametrize("name", sorted(WEB))
def test_web_builder_streams_same_rows(name: str, tmp_path: Path) -> None:
    assert check_streaming_equals_prepared(name, dummy_dir(name), tmp_path, "train") == WEB[name][0]


def test_laion_configs_read_the_same_shards(tmp_path: Path) -> None:
    ds = check_builder("laion", dummy_dir("laion"), tmp_path, {"train": 3}, image_text_features(), "laion2b_multi")
    assert ds["train"][1]["captions"] == ["Lighthouse at dusk on the Atlantic coast"]


def test_laion_reads_caption_lists_of_lavis_shards(tmp_path: Path) -> None:
    # LAVIS's own LAION-115M shards carry no .txt and a JSON list of captions
    data_dir = tmp_path / "shards"
    data_dir.mkdir()
    shard = data_dir / "00000.tar"
    jpeg = _member(dummy_dir("laion") / "00000.tar", "000000000.jpg")
    with tarfile.open(shard, "w") as tar:
        for name, content in [("0.jpg", jpeg), ("0.json", json.dumps(["a red mug", "a mug for cat lovers"]).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    ds = load_dataset("laion", data_dir=data_dir, cache_dir=tmp_path / "cache", split="train")
    assert ds[0]["captions"] == ["a red mug", "a mug for cat lovers"] and ds[0]["image_id"] == "0"


@pytest.mark.parametrize("name", sorted(WEB))
def test_web_builder_without_shards_names_path_and_instructions(name: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_dataset(name, data_dir=empty, cache_dir=tmp_path / "cache")
    message = str(excinfo.value)
    assert str(empty / "*.tar") in message and "img2dataset --url_list" in message
    with pytest.raises(FileNotFoundError, match="needs data_dir"):
        load_dataset(name, cache_dir=tmp_path / "cache")


CORRUPTIONS = {
    "image": ("000000001.jpg", b"\xff\xd8\xff\xe0 truncated, not a JPEG", "cannot be decoded as an image"),
    "json": ("000000001.json", b'{"caption": "unterminated', "is not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(WEB))
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_web_builder_bad_member_fails_naming_it_or_is_skipped(name: str, corruption: str, tmp_path: Path) -> None:
    member, content, reason = CORRUPTIONS[corruption]
    data_dir = tmp_path / "shards"
    shutil.copytree(dummy_dir(name), data_dir)
    shard = data_dir / "00000.tar"
    _rewrite_member(shard, member, content)

    with pytest.raises(InvalidExampleError) as excinfo:
        load_dataset(name, data_dir=data_dir, cache_dir=tmp_path / "strict")
    message = str(excinfo.value)
    assert str(shard) in message and member in message and reason in message

    ds = load_dataset(name, data_dir=data_dir, cache_dir=tmp_path / "lenient", skip_invalid=True, split="train")
    assert ds.num_rows == WEB[name][0] - 1
    assert "000000001" not in ds["image_id"]
    reports = [r for r in skip_reports(ds)["train"] if r.count]
    assert [(r.where, r.count) for r in reports] == [(str(shard), 1)] and member in reports[0].reasons[0]


def test_verify_media_false_keeps_undecodable_images(tmp_path: Path) -> None:
    data_dir = tmp_path / "shards"
    shutil.copytree(dummy_dir("sbu_caption"), data_dir)
    _rewrite_member(data_dir / "00000.tar", "000000001.jpg", b"not an image")
    ds = load_dataset("sbu_caption", data_dir=data_dir, cache_dir=tmp_path / "cache", verify_media=False, split="train")
    assert ds.num_rows == 3
    assert ds.with_format("arrow")["image"][1]["bytes"].as_py() == b"not an image"


@pytest.mark.parametrize("name", sorted(WEB))
def test_web_builder_declares_its_task_and_instructions(name: str) -> None:
    info = dataset_info(name)
    assert info.tasks == ["image_text"] and set(info.configs.values()) == {"image_text"}
    assert "img2dataset" in info.manual_download_instructions and info.citation.startswith("@") and info.license


@pytest.mark.parametrize("name", sorted(WEB))
def test_truncated_shard_fails_naming_it_or_keeps_the_samples_before(name: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "shards"
    shutil.copytree(dummy_dir(name), data_dir)
    shard = data_dir / "00000.tar"
    with tarfile.open(shard) as tar:
        cut = tar.getmember("000000001.json").offset_data + 100  # inside the second sample
        in_shard = len({name.split(".")[0] for name in tar.getnames()})
    shard.write_bytes(shard.read_bytes()[:cut])

    with pytest.raises(InvalidExampleError, match="truncated or corrupt after sample '000000001'") as excinfo:
        load_dataset(name, data_dir=data_dir, cache_dir=tmp_path / "strict")
    assert str(shard) in str(excinfo.value)

    ds = load_dataset(name, data_dir=data_dir, cache_dir=tmp_path / "lenient", skip_invalid=True, split="train")
    # only the first sample of the shard survives; the unreadable rest counts as one skip
    assert ds.num_rows == WEB[name][0] - (in_shard - 1)
    assert ds["image_id"][0] == "000000000" and "000000001" not in ds["image_id"]
    assert [(r.where, r.count) for r in skip_reports(ds)["train"] if r.count] == [(str(shard), 1)]
