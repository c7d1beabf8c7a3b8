"""Visual entailment task (``vl_hub.tasks.entailment``)."""

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
from vl_hub.data.schemas import ENTAILMENT_LABELS
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval
from vl_hub.models.blip.modeling_blip_nlvr import BlipForImageTextClassification
from vl_hub.tasks import get_task
from vl_hub.tasks._head_calls import ramped_alpha
from vl_hub.tasks.entailment import EntailmentTask, per_class_accuracy
from vl_hub.training.trainer import TrainingProgress

LABELS = dict(enumerate(ENTAILMENT_LABELS))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("entailment_cache")


@pytest.fixture(scope="module")
def setup():
    return tiny_blip(BlipForImageTextClassification, id2label=LABELS), blip_processor()


@pytest.fixture(scope="module")
def shapes(cache: Path):
    return shapes_split("entailment", "test", cache, num_train=8, num_validation=1, num_test=4)


def test_registered() -> None:
    assert get_task("entailment") is EntailmentTask


def test_per_class_accuracy_by_hand() -> None:
    predictions, labels = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 2])
    assert per_class_accuracy(predictions, labels, ["entailment", "neutral", "contradiction"]) == pytest.approx(
        {"accuracy": 60.0, "accuracy_entailment": 100.0, "accuracy_neutral": 100.0, "accuracy_contradiction": 100 / 3}
    )
    # a class without rows is left out
    assert set(per_class_accuracy(torch.tensor([1]), torch.tensor([0]), ["a", "b"])) == {"accuracy", "accuracy_a"}


def test_evaluation_equals_hand_computed(setup, shapes, cache: Path) -> None:
    model, processor = setup
    task = EntailmentTask(model, processor)
    for dataset in (shapes, dummy_split("snli_ve", "validation", cache)):
        with torch.no_grad():
            text = processor(text=list(dataset["hypothesis"]), text_mode="caption")
            pixels = processor(images=list(dataset["image"]))["pixel_values"]
            predictions = model(pixel_values=pixels, **text).logits.argmax(-1)
        expected = per_class_accuracy(predictions, torch.tensor(dataset["label"]), list(ENTAILMENT_LABELS))
        metrics = task.evaluate(model, dataset, batch_size=3, progress=False)
        assert metrics == pytest.approx(expected) and "accuracy" in metrics
    sharded = run_processes(2, lambda acc: task.evaluate(model, shapes, acc, batch_size=1, progress=False))
    assert sharded == [task.evaluate(model, shapes, batch_size=4, progress=False)] * 2


@pytest.mark.parametrize("use_distill", [False, True])
def test_training_step_lowers_loss(use_distill: bool, cache: Path) -> None:
    model = tiny_blip(BlipForImageTextClassification, seed=4, id2label=LABELS, use_distill=use_distill)
    train = shapes_split("entailment", "train", cache, num_train=8, num_validation=1, num_test=4)
    task = EntailmentTask(model, blip_processor(), train_augment=False)
    batch = task.collate_train([train[i] for i in range(8)])
    losses = losses_over_steps(task, model, batch, steps=8, lr=1e-2)
    # with distillation part of the loss targets the slowly moving momentum model's predictions
    assert losses[-1] < (0.9 if use_distill else 0.8) * losses[0], losses


def progress(epoch: int, iteration: int, per_epoch: int) -> TrainingProgress:
    return TrainingProgress(
        epoch=epoch, iteration_in_epoch=iteration, iterations_per_epoch=per_epoch,
        iteration=epoch * per_epoch + iteration, global_step=epoch * per_epoch + iteration, num_epochs=3,
    )


def test_distillation_weight_follows_the_trainers_progress(cache: Path) -> None:
    model = tiny_blip(BlipForImageTextClassification, id2label=LABELS, use_distill=True, alpha=0.4)
    assert ramped_alpha(model, None, 1) is None  # outside a trainer the head keeps config.alpha
    assert ramped_alpha(model, progress(0, 2, 4), 1) == pytest.approx(0.2)
    assert ramped_alpha(model, progress(0, 2, 4), 2) == pytest.approx(0.1)
    assert ramped_alpha(model, progress(1, 2, 4), 2) == pytest.approx(0.3)
    assert ramped_alpha(model, progress(1, 0, 4), 1) == pytest.approx(0.4)
    assert ramped_alpha(model, progress(0, 2, 4), 0) is None
    # at the first iteration alpha = 0: the loss is the plain cross-entropy of the online model
    train = shapes_split("entailment", "train", cache, num_train=8, num_validation=1, num_test=4)
    task = EntailmentTask(model, blip_processor(), train_augment=False)
    batch = task.collate_train([train[i] for i in range(4)])
    task.training_progress = progress(0, 0, 4)
    model.train()
    with torch.no_grad():
        loss = task.training_step(model, batch)["loss"]
        plain = torch.nn.functional.cross_entropy(
            model(**{k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask")}).logits, batch["labels"]
        )
    assert float(loss) == pytest.approx(float(plain), abs=1e-5)


def test_bad_input(setup, cache: Path) -> None:
    model, processor = setup
    nlvr = dummy_split("nlvr2", "validation", cache)
    assert_raises_clear(
        lambda: EntailmentTask(model, processor).evaluate(model, nlvr, progress=False),
        ValueError, "does not fit task 'entailment'", "snli_ve",
    )
    assert_raises_clear(
        lambda: EntailmentTask(tiny_blip(BlipForImageTextRetrieval), processor), ValueError, "BlipForImageTextClassification"
    )
    assert_raises_clear(lambda: EntailmentTask(model, processor, alpha_ramp_epochs=-1), ValueError, "alpha_ramp_epochs")


def test_recipe_carries_lavis_settings(setup) -> None:
    from vl_hub.recipes import validate_recipe

    args = validate_recipe("blip/entailment_snli_ve")  # lavis/projects/albef/train/snli_ve_ft.yaml
    assert (args.task, args.init_lr, args.weight_decay, args.max_epoch, args.batch_size_train) == (
        "entailment", 2e-5, 0.05, 10, 32,
    )
    assert args.model.config == {"num_labels": 3, "use_distill": True, "alpha": 0.4}
    EntailmentTask(*setup, **args.task_options)
