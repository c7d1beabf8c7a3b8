"""Multimodal search: the gallery index (features cached on disk per model and contents), ranking and ITM
re-ranking against brute force, and the tab handler."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.demo.conftest import GALLERY_SIZE
from vl_hub.demo import heads, tab_search
from vl_hub.demo.gallery_index import GalleryIndex
from vl_hub.demo.inputs import DemoInputError


def all_features(gallery: GalleryIndex, head) -> torch.Tensor:
    return heads.image_features(head, gallery.images(range(len(gallery))))


def test_features_are_cached_on_disk_per_model_and_reused(gallery, blip_bundle, clip_bundle, demo_root, datasets_cache):
    head = blip_bundle.head_for("features")
    feats = gallery.features(head)
    assert feats.shape == (GALLERY_SIZE, 32)
    torch.testing.assert_close(feats, all_features(gallery, head))
    path = gallery.cache_file(head)
    assert path is not None and path.is_file()
    again = GalleryIndex.synthetic(
        cache_dir=demo_root / "cache", datasets_cache_dir=datasets_cache, num_test=GALLERY_SIZE, image_size=64
    )
    torch.testing.assert_close(again.features(head), feats)
    assert again.encode_count == 0  # read back, not re-encoded
    clip_head = clip_bundle.heads[0]
    assert gallery.cache_file(clip_head) != path
    other = GalleryIndex.synthetic(
        cache_dir=demo_root / "cache", datasets_cache_dir=datasets_cache, num_test=GALLERY_SIZE - 1, image_size=64
    )
    assert other.cache_file(head) != path  # other contents, other key


def test_a_damaged_cache_file_is_rebuilt(tmp_path: Path, blip_bundle) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, colour in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (40, 30), colour).save(folder / f"{i}.png")
    index = GalleryIndex.from_folder(folder, cache_dir=tmp_path / "cache")
    head = blip_bundle.head_for("features")
    feats = index.features(head)
    index.cache_file(head).write_bytes(b"garbage")
    fresh = GalleryIndex.from_folder(folder, cache_dir=tmp_path / "cache")
    torch.testing.assert_close(fresh.features(head), feats)
    assert fresh.encode_count == 1


def test_folder_gallery_indexes_image_files_and_keys_their_contents(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(folder / "b.png")
    Image.new("RGB", (8, 8), "blue").save(folder / "sub" / "a.jpg")
    (folder / "notes.txt").write_text("not an image")
    index = GalleryIndex.from_folder(folder)
    assert index.item_ids == ["b.png", "sub/a.jpg"]
    assert index.images([1])[0].getpixel((0, 0))[2] > 200
    key = index.content_key
    Image.new("RGB", (9, 9), "red").save(folder / "b.png")
    os.utime(folder / "b.png", ns=(1, 1))
    assert GalleryIndex.from_folder(folder).content_key != key
    with pytest.raises(DemoInputError, match="does not exist"):
        GalleryIndex.from_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DemoInputError, match="holds no image"):
        GalleryIndex.from_folder(tmp_path / "empty")


def test_search_ranks_by_cosine_like_brute_force(gallery, blip_bundle) -> None:
    head = blip_bundle.head_for("features")
    hits = gallery.search(head, "a red circle", 12)
    cosine = all_features(gallery, head) @ heads.text_features(head, ["a red circle"])[0]
    expected = torch.argsort(cosine, descending=True)[:12].tolist()
    assert [h.index for h in hits] == expected
    assert [h.score for h in hits] == pytest.approx(cosine[expected].tolist(), abs=1e-5)
    assert all(h.item_id == gallery.item_ids[h.index] and h.itm is None for h in hits)


def test_itm_reranking_orders_the_top_results_by_match_probability(gallery, blip_bundle) -> None:
    bundle = blip_bundle
    hits = gallery.search(bundle.head_for("features"), "a blue square", 12, bundle.head_for("itm"))
    plain = gallery.search(bundle.head_for("features"), "a blue square", 12)
    assert sorted(h.index for h in hits) == sorted(h.index for h in plain)  # same candidates, new order
    model, processor = bundle.head_for("itm").model, bundle.head_for("itm").processor
    images = gallery.images([h.index for h in plain])
    batch = processor(images=images, text=["a blue square"] * 12, text_mode="caption", prompt="")
    with torch.no_grad():
        probs = model(**batch, match_head="itm").itm_logits.softmax(-1)[:, 1]
    by_index = dict(zip([h.index for h in plain], probs.tolist()))
    assert [h.itm for h in hits] == pytest.approx([by_index[h.index] for h in hits], abs=1e-5)
    assert [h.itm for h in hits] == sorted([h.itm for h in hits], reverse=True)


def test_search_tab_counts_and_errors(ctx) -> None:
    items, status = tab_search.search(ctx, None, "a red circle", "12", False)
    assert len(items) == 12 and items[0][1].startswith("#1 · ")
    assert f"Top 12 of {GALLERY_SIZE} images" in status and "cosine" in status
    items, status = tab_search.search(ctx, None, "a red circle", 24, True)
    assert len(items) == GALLERY_SIZE and "re-ranked by ITM" in status  # capped at the gallery size
    clip_items, _ = tab_search.search(ctx, "tiny CLIP", "a red circle", "12", False)
    assert len(clip_items) == 12
    with pytest.raises(DemoInputError, match="cannot do image-text matching"):
        tab_search.search(ctx, "tiny CLIP", "a red circle", "12", True)
    with pytest.raises(DemoInputError, match=r"one of \(12, 24, 48\); got 13"):
        tab_search.search(ctx, None, "a red circle", "13", False)
    with pytest.raises(DemoInputError, match="search text is empty"):
        tab_search.search(ctx, None, " ", "12", False)
