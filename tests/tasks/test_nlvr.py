"""NLVR2 task (``vl_hub.tasks.nlvr``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.common.model_tester import assert_raises_clear
from tests.tasks.matching_helpers import (
    blip_processor,
    dummy_split,
    losses_over_steps,
    run_processes,
    shapes_split,
    tiny_blip,
)
from vl_hub.models.blip.modeling_blip_nlvr import (
    BlipForImageTextClassification,
    BlipForNLVR,
)
from vl_hub.tasks import get_task
from vl_hub.tasks.nlvr import NlvrTask, swap_left_right


def nlvr_model(seed: int = 0) -> BlipForNLVR:
    # 3 text layers, the two images' cross-attention merged from layer 2 on
    return tiny_blip(BlipForNLVR, seed=seed, text_config={"num_hidden_layers": 3}, nlvr_merge_layer=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlvr_cache")


@pytest.fixture(scope="module")
def setup():
    return nlvr_model(), blip_processor()


@pytest.fixture(scope="module")
def shapes(cache: Path):
    return shapes_split("nlvr", "test", cache, num_train=8, num_validation=1, num_test=5)


def test_registered() -> None:
    assert get_task("nlvr") is NlvrTask


def test_accuracy_equals_hand_computed(setup, shapes, cache: Path) -> None:
    model, processor = setup
    task = NlvrTask(model, processor)
    for dataset in (shapes, dummy_split("nlvr2", "validation", cache)):
        with torch.no_grad():
            text = processor(text=list(dataset["sentence"]), text_mode="caption")
            logits = model(
                pixel_values_0=processor(images=list(dataset["image0"]))["pixel_values"],
                pixel_values_1=processor(images=list(dataset["image1"]))["pixel_values"],
                input_ids=text["input_ids"], attention_mask=text["attention_mask"],
            ).logits
        expected = 100.0 * (logits.argmax(-1) == torch.tensor(dataset["label"])).float().mean().item()
        assert task.evaluate(model, dataset, batch_size=2, progress=False) == {"accuracy": pytest.approx(expected)}


def test_sharded_evaluation_equals_single_process(setup, shapes) -> None:
    model, processor = setup
    task = NlvrTask(model, processor)
    single = task.evaluate(model, shapes, batch_size=2, progress=False)
    assert run_processes(2, lambda acc: task.evaluate(model, shapes, acc, batch_size=2, progress=False)) == [single] * 2


def test_training_step_lowers_loss(cache: Path) -> None:
    model, processor = nlvr_model(seed=3), blip_processor()
    train = shapes_split("nlvr", "train", cache, num_train=8, num_validation=1, num_test=5)
    task = NlvrTask(model, processor, flip_prob=0.0, train_augment=False)
    batch = task.collate_train([train[i] for i in range(8)])
    assert batch["pixel_values_0"].shape == batch["pixel_values_1"].shape == (8, 3, 32, 32)
    losses = losses_over_steps(task, model, batch, steps=6, lr=3e-3)
    assert losses[-1] < 0.9 * losses[0], losses


def test_flip_swaps_images_and_left_right(setup, shapes) -> None:
    model, processor = setup
    assert swap_left_right("The left image has more dogs than the Right one; bright.") == (
        "The right image has more dogs than the Left one; bright."
    )
    rows = [dict(shapes[i]) for i in range(3)]
    rows[0]["sentence"] = "the left image shows a dog"
    plain = NlvrTask(model, processor, train_augment=False).collate_eval(rows)
    flipped = NlvrTask(model, processor, flip_prob=1.0, train_augment=False).collate_train(rows)
    assert torch.equal(flipped["pixel_values_0"], plain["pixel_values_1"])
    assert torch.equal(flipped["pixel_values_1"], plain["pixel_values_0"])
    assert processor.batch_decode(flipped["input_ids"][:1]) == ["the right image shows a dog"]
    assert torch.equal(flipped["labels"], plain["labels"])


def test_bad_input(setup, cache: Path) -> None:
    model, processor = setup
    snli = dummy_split("snli_ve", "validation", cache)
    assert_raises_clear(
        lambda: NlvrTask(model, processor).evaluate(model, snli, progress=False),
        ValueError, "does not fit task 'nlvr'", "nlvr2", "vl_hub_shapes",
    )
    other = tiny_blip(BlipForImageTextClassification)
    assert_raises_clear(lambda: NlvrTask(other, processor), ValueError, "needs a BlipForNLVR")
    assert_raises_clear(lambda: NlvrTask(model, processor, flip_prob=2), ValueError, "flip_prob")


def test_recipe_carries_lavis_settings(setup) -> None:
    from vl_hub.recipes import validate_recipe

    args = validate_recipe("blip/nlvr_nlvr2")  # lavis/projects/blip/train/nlvr_ft.yaml
    assert (args.task, args.init_lr, args.weight_decay, args.max_epoch, args.batch_size_train, args.batch_size_eval) == (
        "nlvr", 2.5e-5, 0.05, 15, 16, 64,
    )
    assert NlvrTask(*setup, **args.task_options).options["flip_prob"] == 0.5
