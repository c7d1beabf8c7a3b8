"""Feature extraction task (``vl_hub.tasks.feature_extraction``)."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from tests.common.model_tester import assert_raises_clear
from tests.models.clip.clip_test_utils import tiny_config, tiny_processor
from tests.tasks.matching_helpers import (
    blip_processor,
    dummy_split,
    run_processes,
    shapes_split,
    tiny_blip,
)
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval, BlipModel
from vl_hub.models.clip.modeling_clip import ClipModel
from vl_hub.tasks import get_task
from vl_hub.tasks.feature_extraction import FeatureExtractionTask, extract_features


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("features_cache")


@pytest.fixture(scope="module")
def blip():
    return tiny_blip(BlipModel), blip_processor()


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return ClipModel(tiny_config()).eval(), tiny_processor()


@pytest.fixture(scope="module")
def shapes(cache: Path):
    return shapes_split("image_text", "test", cache, num_train=1, num_validation=1, num_test=5)


def as_array(column) -> np.ndarray:
    return np.asarray([np.asarray(x, dtype=np.float32) for x in column])


def test_registered() -> None:
    assert get_task("feature_extraction") is FeatureExtractionTask


def test_blip_features_equal_the_heads_own(blip, shapes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, processor = blip
    out = extract_features(model, processor, shapes, batch_size=2, output_dir=tmp_path / "features", progress=True)
    assert "feature_extraction" in capsys.readouterr().err  # the tqdm bar
    assert out.column_names == ["image_id", "captions", "image_feat", "text_feat", "multimodal_feat"]
    assert out["image_id"] == shapes["image_id"] and out["captions"] == shapes["captions"]
    with torch.no_grad():
        pixels = processor(images=list(shapes["image"]))["pixel_values"]
        image = model.extract_features(pixels, mode="image").image_feat
        np.testing.assert_allclose(as_array(out["image_feat"]), image.numpy(), atol=1e-5)
        for i, caps in enumerate(shapes["captions"]):
            text = processor(text=caps, text_mode="caption")
            np.testing.assert_allclose(
                as_array(out[i]["text_feat"]), model.extract_features(input_ids=text["input_ids"], attention_mask=text["attention_mask"], mode="text").text_feat.numpy(), atol=1e-5
            )
            fused = model.extract_features(pixels[i : i + 1].expand(len(caps), -1, -1, -1), text["input_ids"], text["attention_mask"]).multimodal_embeds[:, 0]
            np.testing.assert_allclose(as_array(out[i]["multimodal_feat"]), fused.numpy(), atol=1e-5)
    reloaded = datasets.load_from_disk(str(tmp_path / "features"))
    assert reloaded.features == out.features and reloaded[3] == out[3]


def test_sharded_extraction_equals_single_process(blip, shapes) -> None:
    model, processor = blip
    task = FeatureExtractionTask(model, processor)
    single = task.extract(model, shapes, batch_size=2, progress=False)
    # 5 rows in 3 batches over 4 processes: process 3 runs a placeholder
    for got in run_processes(4, lambda acc: task.extract(model, shapes, acc, batch_size=2, progress=False)):
        for name in ("image_feat", "text_feat", "multimodal_feat"):
            for a, b in zip(got[name], single[name], strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_clip_video_and_classification_rows(clip, blip, shapes, cache: Path) -> None:
    model, processor = clip
    out = extract_features(model, processor, shapes, progress=False)
    assert "multimodal_feat" not in out.column_names  # CLIP has no fused encoder
    with torch.no_grad():
        pixels = processor(images=list(shapes["image"]))["pixel_values"]
        np.testing.assert_allclose(as_array(out["image_feat"]), model.get_image_features(pixels, normalize=True).numpy(), atol=1e-5)
    metrics = FeatureExtractionTask(model, processor).evaluate(model, shapes, progress=False)
    image = as_array(out["image_feat"])
    cosines = [float(c) for i, texts in enumerate(out["text_feat"]) for c in as_array(texts) @ image[i]]
    assert metrics == pytest.approx({"num_rows": 5.0, "pair_similarity": sum(cosines) / len(cosines)}, abs=1e-5)

    videos = dummy_split("msrvtt_retrieval", "test", cache)
    blip_model, blip_proc = blip
    got = extract_features(blip_model, blip_proc, videos, num_frames=2, modes=["image"], progress=False)
    assert got.column_names == ["video_id", "captions", "image_feat"]
    from vl_hub.processing.video import load_video

    frames = blip_proc(videos=[load_video(v, 2, "uniform", height=32, width=32) for v in videos["video"]])["pixel_values"]
    with torch.no_grad():
        np.testing.assert_allclose(as_array(got["image_feat"]), blip_model.get_image_features(frames).numpy(), atol=1e-5)

    labelled = shapes_split("classification", "test", cache, num_train=1, num_validation=1, num_test=3)
    rows = extract_features(model, processor, labelled, progress=False)
    assert rows.column_names == ["image_id", "label", "image_feat"] and rows.features["label"] == labelled.features["label"]


def test_alpro_video_features(cache: Path, fixtures_dir: Path) -> None:
    from tests.models.alpro.alpro_test_utils import tiny_model
    from tests.models.alpro.alpro_test_utils import tiny_processor as alpro_processor
    from vl_hub.models.alpro.modeling_alpro import AlproModel
    from vl_hub.processing.video import load_video

    model, processor = tiny_model(AlproModel), alpro_processor(fixtures_dir)
    videos = dummy_split("msrvtt_retrieval", "test", cache)
    out = extract_features(model, processor, videos, num_frames=4, progress=False)
    assert out.column_names == ["video_id", "captions", "image_feat", "text_feat", "multimodal_feat"]
    frames = processor(videos=[load_video(v, 4, "uniform") for v in videos["video"]])["pixel_values"]
    with torch.no_grad():
        np.testing.assert_allclose(as_array(out["image_feat"]), model.get_video_features(frames).numpy(), atol=1e-5)


def test_bad_input(blip, clip, cache: Path) -> None:
    model, processor = blip
    nlvr = dummy_split("nlvr2", "validation", cache)
    assert_raises_clear(
        lambda: FeatureExtractionTask(model, processor).extract(model, nlvr, progress=False),
        ValueError, "does not fit task 'feature_extraction'", "coco_retrieval", "msrvtt_retrieval", "imagenet",
    )
    assert_raises_clear(lambda: FeatureExtractionTask(tiny_blip(BlipForImageTextRetrieval), processor), ValueError, "needs a BlipModel")
    clip_model, clip_processor = clip
    assert_raises_clear(lambda: FeatureExtractionTask(clip_model, clip_processor, modes=["multimodal"]), ValueError, "image-grounded")
    assert_raises_clear(lambda: FeatureExtractionTask(model, processor, modes="image"), ValueError, "subset")
    assert_raises_clear(lambda: FeatureExtractionTask(model, processor).collate_train([]), NotImplementedError, "no training")
