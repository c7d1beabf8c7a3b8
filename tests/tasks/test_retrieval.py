"""Image-text and video-text retrieval task (``vl_hub.tasks.retrieval``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.common.model_tester import assert_raises_clear
from tests.tasks.matching_helpers import (
    ThreadAccelerator,
    blip_processor,
    dummy_split,
    losses_over_steps,
    run_processes,
    shapes_split,
    tiny_blip,
)
from vl_hub.metrics import retrieval_metrics
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval
from vl_hub.models.blip.modeling_blip_nlvr import BlipForNLVR
from vl_hub.retrieval_scoring import brute_force_scores, rerank_top_k
from vl_hub.tasks import get_task, list_tasks
from vl_hub.tasks._head_calls import image_index
from vl_hub.tasks._sharding import batch_bounds, even_split, gather_rows, plan_shards
from vl_hub.tasks.retrieval import RetrievalTask, VideoRetrievalTask, caption_index

METRICS = {
    f"{d}_{m}"
    for d in ("txt", "img")
    for m in ("r1", "r5", "r10", "r_mean", "mean_rank", "median_rank")
} | {"r_mean"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("retrieval_cache")


@pytest.fixture(scope="module")
def processor():
    return blip_processor()


@pytest.fixture(scope="module")
def model() -> BlipForImageTextRetrieval:
    return tiny_blip(BlipForImageTextRetrieval)


@pytest.fixture(scope="module")
def shapes(cache: Path):
    """7 synthetic images with 3 captions each (21 texts)."""
    return shapes_split("image_text", "test", cache, num_train=4, num_validation=1, num_test=7)


def brute_force_reference(model, processor, dataset, k_test: int):
    """LAVIS's rule on ITM logits of every (image, text) pair, computed without the task's code paths."""
    texts, img2txt, txt2img = caption_index(dataset["captions"])
    with torch.no_grad():
        pixels = processor(images=list(dataset["image"]))["pixel_values"]
        enc = processor(text=texts, text_mode="caption")
        embeds, image_feat = model.encode_images(pixels)
        _, text_feat = model.encode_texts(enc["input_ids"], enc["attention_mask"])
        n, m = len(dataset), len(texts)
        itm_all = model.itm_match_logits(
            embeds.repeat_interleave(m, dim=0), enc["input_ids"].repeat(n, 1), enc["attention_mask"].repeat(n, 1)
        ).view(n, m)
        scores = brute_force_scores(itm_all, image_feat @ text_feat.t(), k_test)
    return scores, retrieval_metrics(scores.score_i2t, scores.score_t2i, img2txt, txt2img)


def assert_same_scores(got, expected) -> None:
    assert torch.equal(got.score_i2t == -100, expected.score_i2t == -100)
    assert torch.equal(got.score_t2i == -100, expected.score_t2i == -100)
    torch.testing.assert_close(got.score_i2t, expected.score_i2t, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.score_t2i, expected.score_t2i, atol=1e-5, rtol=0)


def test_tasks_are_registered() -> None:
    assert {"retrieval", "video_retrieval"} <= set(list_tasks())
    assert get_task("retrieval") is RetrievalTask and get_task("video_retrieval") is VideoRetrievalTask


@pytest.mark.parametrize(("k_test", "pairs_per_call", "batch_size"), [(3, 7, 3), (30, 1024, 16)])
def test_evaluation_equals_brute_force_itm(model, processor, shapes, k_test: int, pairs_per_call: int, batch_size: int) -> None:
    expected_scores, expected = brute_force_reference(model, processor, shapes, k_test)
    task = RetrievalTask(model, processor, k_test=k_test, pairs_per_call=pairs_per_call, text_batch_size=4)
    metrics = task.evaluate(model, shapes, batch_size=batch_size, progress=False)
    assert set(metrics) == METRICS
    assert metrics == pytest.approx(expected, abs=1e-9)
    if k_test == 3:
        assert_same_scores(task.compute_scores(model, shapes, batch_size=batch_size, progress=False), expected_scores)
    else:  # k_test >= every candidate count: ITM re-scores all pairs, so no -100 is left
        assert bool((expected_scores.score_i2t > -100).all())


@pytest.mark.parametrize(("world", "batch_size"), [(2, 2), (3, 4)])
def test_sharded_evaluation_equals_single_process(model, processor, shapes, world: int, batch_size: int) -> None:
    # (3, 4) also gathers the image tokens a few rows at a time (offloaded to the CPU)
    task = RetrievalTask(model, processor, k_test=3, pairs_per_call=6, text_batch_size=5, offload_image_embeds=world == 3)
    single = task.compute_scores(model, shapes, batch_size=batch_size, progress=False)
    # (3, 4): 7 rows in 2 batches over 3 processes -> process 2 owns none and runs a placeholder batch
    results = run_processes(world, lambda acc: task.compute_scores(model, shapes, accelerator=acc, batch_size=batch_size, progress=False))
    for scores in results:
        assert_same_scores(scores, single)
    if world == 2:
        _, img2txt, txt2img = caption_index(shapes["captions"])
        expected = retrieval_metrics(single.score_i2t, single.score_t2i, img2txt, txt2img)
        for metrics in run_processes(world, lambda acc: task.evaluate(model, shapes, accelerator=acc, batch_size=batch_size, progress=False)):
            assert metrics == expected


def test_video_retrieval_on_msrvtt_dummy(model, processor, cache: Path) -> None:
    test = dummy_split("msrvtt_retrieval", "test", cache)
    task = VideoRetrievalTask(model, processor, num_frames=2, k_test=2)
    metrics = task.evaluate(model, test, batch_size=2, progress=False)
    assert set(metrics) == METRICS
    # frames reach the head as (B, T, 3, S, S): the scores equal the head's own scorer on the same frames
    from vl_hub.processing.video import load_video

    frames = [load_video(v, 2, "uniform", height=32, width=32) for v in test["video"]]
    pixels = processor(videos=frames)["pixel_values"]
    assert pixels.shape == (2, 2, 3, 32, 32)
    texts, _, _ = caption_index(test["captions"])
    enc = processor(text=texts, text_mode="caption")
    with torch.no_grad():
        direct = model.retrieval_scores(pixels, enc["input_ids"], enc["attention_mask"], k_test=2)
    assert_same_scores(task.compute_scores(model, test, batch_size=1, progress=False), direct)


def test_training_step_lowers_loss(processor, cache: Path) -> None:
    model = tiny_blip(BlipForImageTextRetrieval, seed=1)
    task = RetrievalTask(model, processor, train_augment=False, caption_sampling="first")
    train = shapes_split("image_text", "train", cache, num_train=4, num_validation=1, num_test=7)
    batch = task.collate_train([train[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 3, 32, 32) and batch["idx"].shape == (4,)
    losses = losses_over_steps(task, model, batch, steps=6, lr=2e-3)
    out = task.training_step(model.train(), batch)
    assert list(out) == ["loss", "itc", "itm"]
    torch.testing.assert_close(out["loss"], out["itc"] + out["itm"])
    assert losses[-1] < 0.8 * losses[0], losses


def test_collate_train_ids_and_caption_sampling(processor, cache: Path) -> None:
    model = tiny_blip(BlipForImageTextRetrieval)
    train = dummy_split("coco_retrieval", "train", cache)
    rows = [train[0], train[1], train[0]]
    batch = RetrievalTask(model, processor, caption_sampling="first").collate_train(rows)
    # captions of one image share its id (ITC positives across batches); different images differ
    assert batch["idx"][0] == batch["idx"][2] != batch["idx"][1]
    assert torch.equal(batch["idx"], image_index([r["image_id"] for r in rows]))
    first = processor(text=[r["captions"][0] for r in rows], text_mode="caption")
    assert torch.equal(batch["input_ids"], first["input_ids"])
    torch.manual_seed(0)
    sampled = RetrievalTask(model, processor, caption_sampling="random").collate_train(rows * 8)
    decoded = set(processor.batch_decode(sampled["input_ids"]))
    assert len(decoded) == 4  # both captions of both images show up
    assert sampled["pixel_values"].shape == (24, 3, 32, 32)


def test_rerank_query_blocks_concatenate_to_the_full_matrices() -> None:
    g = torch.Generator().manual_seed(0)
    sim = torch.randn(7, 10, generator=g)

    def itm(i: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.cos(1.3 * i + 0.7 * t)

    full = rerank_top_k(sim, itm, k_test=3, pairs_per_call=4)
    for reuse in (True, False):
        for world in (2, 3, 8):
            parts = [
                rerank_top_k(sim, itm, 3, 4, reuse, slice(r * -(-7 // world), (r + 1) * -(-7 // world)),
                             slice(r * -(-10 // world), (r + 1) * -(-10 // world)))
                for r in range(world)
            ]
            assert torch.equal(torch.cat([p.score_i2t for p in parts]), full.score_i2t)
            assert torch.equal(torch.cat([p.score_t2i for p in parts]), full.score_t2i)
    assert_raises_clear(lambda: rerank_top_k(sim, itm, 3, image_queries=slice(0, 4, 2)), ValueError, "step 1")


def test_shard_plan_and_gather_rows() -> None:
    assert batch_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert batch_bounds(7, 3, min_batch=2) == [(0, 3), (3, 7)]
    assert batch_bounds(0, 3) == []
    assert even_split(5, None) == (slice(0, 5), [5])
    plans = [plan_shards(7, 2, ThreadAccelerator(type("G", (), {"world": 3})(), r)) for r in range(3)]
    assert [p.batches for p in plans] == [[(0, 2), (2, 4)], [(4, 6)], [(6, 7)]]
    assert plans[0].counts == [4, 2, 1] and list(plans[1].rows) == [4, 5]
    idle = plan_shards(2, 4, ThreadAccelerator(type("G", (), {"world": 2})(), 1))
    assert idle.batches == [(0, 2)] and idle.num_real_rows == 0 and list(idle.rows) == []

    counts = [3, 0, 2]
    locals_ = [torch.arange(3.0)[:, None], torch.full((2, 1), -1.0), torch.tensor([[7.0], [8.0]])]
    flags = [torch.tensor([True, False, True]), torch.tensor([True]), torch.tensor([False, True])]
    out = run_processes(
        3, lambda acc: (gather_rows(acc, locals_[acc.process_index], counts), gather_rows(acc, flags[acc.process_index], counts))
    )
    for rows, bools in out:
        assert torch.equal(rows, torch.tensor([[0.0], [1.0], [2.0], [7.0], [8.0]]))
        assert torch.equal(bools, torch.tensor([True, False, True, False, True]))
    for chunk in (1, 2):  # the same a few rows per gather
        out = run_processes(3, lambda acc, c=chunk: gather_rows(acc, locals_[acc.process_index], counts, chunk_rows=c))
        assert all(torch.equal(rows, torch.tensor([[0.0], [1.0], [2.0], [7.0], [8.0]])) for rows in out)


def test_bad_input_lists_compatible_datasets_and_families(model, processor, cache: Path) -> None:
    nlvr = dummy_split("nlvr2", "validation", cache)
    assert_raises_clear(
        lambda: RetrievalTask(model, processor).evaluate(model, nlvr, progress=False),
        ValueError, "does not fit task 'retrieval'", "image_text", "coco_retrieval", "flickr30k",
    )
    images = dummy_split("coco_retrieval", "test", cache)
    assert_raises_clear(
        lambda: VideoRetrievalTask(model, processor).evaluate(model, images, progress=False),
        ValueError, "video_text", "msrvtt_retrieval", "didemo_retrieval",
    )
    nlvr_model = tiny_blip(BlipForNLVR)
    assert_raises_clear(lambda: RetrievalTask(nlvr_model, processor), ValueError, "needs a BlipForImageTextRetrieval")

    class OtherFamily(torch.nn.Module):
        config = type("Config", (), {"model_type": "vlhub_alpro"})()

    assert_raises_clear(lambda: RetrievalTask(OtherFamily(), processor), ValueError, "'alpro' family", "blip (", "clip (")
    assert_raises_clear(lambda: RetrievalTask(model, processor, k_tset=3), ValueError, "k_tset", "k_test")
    assert_raises_clear(lambda: RetrievalTask(model, processor, caption_sampling="all"), ValueError, "'first'")
    assert_raises_clear(lambda: RetrievalTask(model, None), ValueError, "processor")
    assert_raises_clear(lambda: caption_index([["a"], []]), ValueError, "row 1 has no caption")


def test_clip_ranks_by_itc_alone_and_trains(shapes, cache: Path) -> None:
    from tests.models.clip.clip_test_utils import tiny_config, tiny_processor
    from vl_hub.models.clip.modeling_clip import ClipModel

    torch.manual_seed(0)
    model, processor = ClipModel(tiny_config()).eval(), tiny_processor()
    task = RetrievalTask(model, processor, text_batch_size=4)
    scores = task.compute_scores(model, shapes, batch_size=3, progress=False)
    texts, img2txt, txt2img = caption_index(shapes["captions"])
    with torch.no_grad():
        image = model.get_image_features(processor(images=list(shapes["image"]))["pixel_values"], normalize=True)
        enc = processor(text=texts)
        text = model.get_text_features(enc["input_ids"], enc["attention_mask"], normalize=True)
    torch.testing.assert_close(scores.score_i2t, image @ text.t(), atol=1e-5, rtol=0)
    torch.testing.assert_close(scores.score_t2i, text @ image.t(), atol=1e-5, rtol=0)
    assert task.evaluate(model, shapes, progress=False) == pytest.approx(
        retrieval_metrics(image @ text.t(), text @ image.t(), img2txt, txt2img)
    )
    # video: the frame-mean feature
    videos = dummy_split("msrvtt_retrieval", "test", cache)
    assert set(VideoRetrievalTask(model, processor, num_frames=2).evaluate(model, videos, progress=False)) == METRICS

    train = shapes_split("image_text", "train", cache, num_train=4, num_validation=1, num_test=7)
    torch.manual_seed(1)
    trained = ClipModel(tiny_config())
    train_task = RetrievalTask(trained, processor, train_augment=False, caption_sampling="first")
    batch = train_task.collate_train([train[i] for i in range(4)])
    losses = losses_over_steps(train_task, trained, batch, steps=6, lr=1e-4)
    assert losses[-1] < 0.85 * losses[0], losses


def test_recipes_carry_lavis_settings(model, processor) -> None:
    from vl_hub.recipes import validate_recipe

    flickr = validate_recipe("blip/retrieval_flickr")  # lavis/projects/blip/train/retrieval_flickr_ft.yaml
    assert (flickr.task, flickr.init_lr, flickr.weight_decay, flickr.max_epoch, flickr.batch_size_train) == (
        "retrieval", 1e-5, 0.05, 6, 32,
    )
    assert flickr.task_options == {"k_test": 128} and flickr.model.config["queue_size"] == 57600
    assert RetrievalTask(model, processor, **flickr.task_options).options["k_test"] == 128
    clip = validate_recipe("clip/retrieval_coco")  # lavis/projects/clip/exp_coco_ret_ft.yaml
    assert (clip.lr_sched, clip.init_lr, clip.lr_decay_rate, clip.max_epoch) == ("linear_warmup_step_lr", 1e-3, 0.9, 20)


def test_alpro_video_retrieval_uses_its_video_head(cache: Path, fixtures_dir: Path) -> None:
    from tests.models.alpro.alpro_test_utils import lively_model, tiny_model
    from tests.models.alpro.alpro_test_utils import tiny_processor as alpro_processor
    from vl_hub.models.alpro.modeling_alpro import AlproForVideoTextRetrieval
    from vl_hub.processing.video import load_video

    model, processor = tiny_model(AlproForVideoTextRetrieval), alpro_processor(fixtures_dir)
    videos = dummy_split("msrvtt_retrieval", "test", cache)
    task = VideoRetrievalTask(model, processor, num_frames=4, k_test=2)
    assert set(task.evaluate(model, videos, batch_size=1, progress=False)) == METRICS
    texts, _, _ = caption_index(videos["captions"])
    enc = processor(text=texts, text_mode="caption")
    frames = processor(videos=[load_video(v, 4, "uniform") for v in videos["video"]])["pixel_values"]
    with torch.no_grad():
        direct = model.retrieval_scores(frames, enc["input_ids"], enc["attention_mask"], k_test=2)
    assert_same_scores(task.compute_scores(model, videos, batch_size=1, progress=False), direct)

    train = shapes_split("video_text", "train", cache, num_train=4, num_validation=1, num_test=1, num_frames=4)
    trained = lively_model(AlproForVideoTextRetrieval, seed=1)
    train_task = VideoRetrievalTask(
        trained, processor, num_frames=4, train_augment=False, caption_sampling="first", train_frame_sampling="uniform"
    )
    batch = train_task.collate_train([train[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 4, 3, 32, 32)
    losses = losses_over_steps(train_task, trained, batch, steps=6, lr=1e-3)
    assert losses[-1] < 0.9 * losses[0], losses
