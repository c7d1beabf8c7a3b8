"""Pre-training task (``vl_hub.tasks.pretrain``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.common.model_tester import assert_raises_clear
from tests.models.clip.clip_test_utils import tiny_config, tiny_processor
from tests.tasks.matching_helpers import (
    blip_processor,
    dummy_split,
    losses_over_steps,
    run_processes,
    shapes_split,
    tiny_blip,
)
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval
from vl_hub.models.blip.modeling_blip_pretrain import BlipForPreTraining
from vl_hub.models.clip.modeling_clip import ClipModel
from vl_hub.tasks import get_task
from vl_hub.tasks.pretrain import PretrainTask


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pretrain_cache")


@pytest.fixture(scope="module")
def blip():
    return tiny_blip(BlipForPreTraining), blip_processor()


@pytest.fixture(scope="module")
def shapes(cache: Path):
    return shapes_split("image_text", "validation", cache, num_train=6, num_validation=7, num_test=1)


def test_registered() -> None:
    assert get_task("pretrain") is PretrainTask


def test_evaluation_is_the_row_weighted_mean_of_batch_losses(blip, shapes) -> None:
    model, processor = blip
    task = PretrainTask(model, processor, eval_seed=5)
    metrics = task.evaluate(model, shapes, batch_size=3, progress=False)
    assert set(metrics) == {"loss", "itc", "itm", "lm", "neg_loss"}
    # batches [0, 3) and [3, 7) (a last batch of one row joins the previous one), seeded with eval_seed + start
    expected = {}
    for start, stop in ((0, 3), (3, 7)):
        rows = [shapes[i] for i in range(start, stop)]
        text = processor(text=[r["captions"][0] for r in rows], text_mode="caption")
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(5 + start)
            out = model(pixel_values=processor(images=[r["image"] for r in rows])["pixel_values"], **text)
        for name in ("loss", "itc", "itm", "lm"):
            value = out["loss" if name == "loss" else f"loss_{name}"]
            expected[name] = expected.get(name, 0.0) + float(value) * (stop - start) / 7
    expected["neg_loss"] = -expected["loss"]
    assert metrics == pytest.approx(expected, rel=1e-5)
    # the seeding makes it repeatable (threads share torch's global RNG, so the process-count check runs on CLIP)
    assert task.evaluate(model, shapes, batch_size=3, progress=False) == metrics


def test_blip_training_lowers_the_loss(shapes, cache: Path) -> None:
    model = tiny_blip(BlipForPreTraining, seed=5)
    train = shapes_split("image_text", "train", cache, num_train=6, num_validation=7, num_test=1)
    task = PretrainTask(model, blip_processor(), caption_sampling="first", train_augment=False)
    batch = task.collate_train([train[i] for i in range(4)])  # queue_size 8 is a multiple of the batch
    losses = losses_over_steps(task, model, batch, steps=6, lr=2e-3)
    assert losses[-1] < 0.85 * losses[0], losses
    out = task.training_step(model, batch)
    assert list(out) == ["loss", "itc", "itm", "lm"]
    torch.testing.assert_close(out["loss"], out["itc"] + out["itm"] + out["lm"])
    # dummy fixture evaluation returns every metric
    coco = dummy_split("coco_retrieval", "test", cache)
    assert set(task.evaluate(model, coco, progress=False)) == {"loss", "itc", "itm", "lm", "neg_loss"}


def test_clip_contrastive_pretraining(shapes, cache: Path) -> None:
    torch.manual_seed(6)
    model, processor = ClipModel(tiny_config()), tiny_processor()
    train = shapes_split("image_text", "train", cache, num_train=6, num_validation=7, num_test=1)
    task = PretrainTask(model, processor, caption_sampling="first", train_augment=False)
    batch = task.collate_train([train[i] for i in range(6)])
    losses = losses_over_steps(task, model, batch, steps=6, lr=1e-4)
    assert losses[-1] < 0.85 * losses[0], losses
    metrics = task.evaluate(model, shapes, batch_size=4, progress=False)
    assert run_processes(2, lambda acc: task.evaluate(model, shapes, acc, batch_size=4, progress=False)) == [metrics] * 2
    assert set(metrics) == {"loss", "neg_loss"}
    with torch.no_grad():
        first = model(**task.collate_eval([shapes[i] for i in range(4)]), return_loss=True).loss
        second = model(**task.collate_eval([shapes[i] for i in range(4, 7)]), return_loss=True).loss
    assert metrics["loss"] == pytest.approx((4 * float(first) + 3 * float(second)) / 7, rel=1e-5)


def test_bad_input(blip, cache: Path) -> None:
    model, processor = blip
    videos = dummy_split("msrvtt_retrieval", "test", cache)
    assert_raises_clear(
        lambda: PretrainTask(model, processor).evaluate(model, videos, progress=False),
        ValueError, "does not fit task 'pretrain'", "image_text", "coco_caption", "laion",
    )
    assert_raises_clear(
        lambda: PretrainTask(tiny_blip(BlipForImageTextRetrieval), processor), ValueError, "needs a BlipForPreTraining"
    )
    coco = dummy_split("coco_retrieval", "test", cache)
    assert_raises_clear(lambda: PretrainTask(model, processor).evaluate(model, coco, batch_size=1, progress=False), ValueError, "batch_size=1")
    assert_raises_clear(lambda: PretrainTask(model, processor).collate_train([coco[0]]), ValueError, "at least 2 pairs")


def test_recipe_carries_lavis_settings() -> None:
    from vl_hub.recipes import validate_recipe

    args = validate_recipe("blip/pretrain_14m")  # lavis/projects/blip/train/pretrain_14m.yaml
    assert (args.lr_sched, args.init_lr, args.min_lr, args.warmup_lr, args.lr_decay_rate, args.warmup_steps) == (
        "linear_warmup_step_lr", 3e-4, 1e-6, 1e-6, 0.9, 3000,
    )
    assert (args.weight_decay, args.max_epoch, args.batch_size_train) == (0.05, 20, 75)
    assert [d.name for d in args.datasets] == [
        "coco_caption", "vg_caption", "conceptual_captions_3m", "conceptual_captions_12m", "sbu_caption",
    ]
