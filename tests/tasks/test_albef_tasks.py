"""The ALBEF family in the tasks DESIGN.md assigns to it: retrieval, VQA, NLVR2, visual entailment, zero-shot
classification, pre-training and feature extraction. Each task trains a tiny ALBEF head (a few optimiser steps on
one batch lower the loss) and evaluates it on a dummy fixture / the synthetic set, returning the task's metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.common.model_tester import assert_raises_clear
from tests.models.albef.reference_utils import tiny_albef_config
from tests.tasks.generative_helpers import rows_of
from tests.tasks.matching_helpers import VOCAB, dummy_split, losses_over_steps, shapes_split
from vl_hub.data.schemas import ENTAILMENT_LABELS
from vl_hub.models.albef.modeling_albef import AlbefForImageTextRetrieval, AlbefModel
from vl_hub.models.albef.modeling_albef_generation import AlbefForQuestionAnswering
from vl_hub.models.albef.modeling_albef_nlvr import AlbefForNLVR, AlbefForVisualEntailment
from vl_hub.models.albef.modeling_albef_pretrain import AlbefForPreTraining
from vl_hub.models.albef.processing_albef import AlbefImageProcessor, AlbefProcessor, build_albef_tokenizer
from vl_hub.tasks.classification import ClassificationTask
from vl_hub.tasks.entailment import EntailmentTask, per_class_accuracy
from vl_hub.tasks.feature_extraction import FeatureExtractionTask
from vl_hub.tasks.nlvr import NlvrTask
from vl_hub.tasks.pretrain import PretrainTask
from vl_hub.tasks.retrieval import RetrievalTask
from vl_hub.tasks.vqa import VQATask

RETRIEVAL_METRICS = {
    f"{d}_{m}" for d in ("txt", "img") for m in ("r1", "r5", "r10", "r_mean", "mean_rank", "median_rank")
} | {"r_mean"}


def tiny_albef(head: type, seed: int = 0, **overrides) -> torch.nn.Module:
    """A tiny ALBEF head with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return head(tiny_albef_config(**overrides)).eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def processor() -> AlbefProcessor:
    return AlbefProcessor(AlbefImageProcessor(image_size=32), build_albef_tokenizer(VOCAB), max_txt_len=20)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("albef_tasks_cache")


def test_retrieval(processor, cache: Path) -> None:
    model = tiny_albef(AlbefForImageTextRetrieval, seed=1)
    task = RetrievalTask(model, processor, train_augment=False, caption_sampling="first")
    train = shapes_split("image_text", "train", cache, num_train=4, num_validation=1, num_test=5)
    batch = task.collate_train([train[i] for i in range(4)])
    losses = losses_over_steps(task, model, batch, steps=6, lr=2e-3)
    assert losses[-1] < 0.9 * losses[0], losses
    out = task.training_step(model.train(), batch)
    assert list(out)[:3] == ["loss", "itc", "itm"]
    model.eval()
    metrics = task.evaluate(model, dummy_split("coco_retrieval", "test", cache), batch_size=2, progress=False)
    assert RETRIEVAL_METRICS <= set(metrics), metrics
    assert all(0.0 <= metrics[f"{d}_r1"] <= 100.0 for d in ("txt", "img"))


def test_vqa(processor, cache: Path) -> None:
    model = tiny_albef(AlbefForQuestionAnswering, seed=1)
    task = VQATask(model, processor)
    train = dummy_split("coco_vqa", "train", cache)
    batch = task.collate_train(rows_of(train))
    losses = losses_over_steps(task, model, batch, steps=6, lr=1e-3)
    assert losses[-1] < 0.85 * losses[0], losses
    metrics = task.evaluate(model, dummy_split("coco_vqa", "validation", cache), progress=False)
    assert set(metrics) == {"vqa_accuracy"} and 0.0 <= metrics["vqa_accuracy"] <= 100.0


def test_nlvr(processor, cache: Path) -> None:
    model = tiny_albef(AlbefForNLVR, seed=3)
    task = NlvrTask(model, processor, flip_prob=0.0, train_augment=False)
    train = shapes_split("nlvr", "train", cache, num_train=8, num_validation=1, num_test=4)
    batch = task.collate_train([train[i] for i in range(8)])
    losses = losses_over_steps(task, model, batch, steps=6, lr=3e-3)
    assert losses[-1] < 0.9 * losses[0], losses
    dataset = dummy_split("nlvr2", "validation", cache)
    with torch.no_grad():
        text = processor(text=list(dataset["sentence"]), text_mode="caption")
        logits = model(
            pixel_values_0=processor(images=list(dataset["image0"]))["pixel_values"],
            pixel_values_1=processor(images=list(dataset["image1"]))["pixel_values"],
            input_ids=text["input_ids"], attention_mask=text["attention_mask"],
        ).logits
    expected = 100.0 * (logits.argmax(-1) == torch.tensor(dataset["label"])).float().mean().item()
    assert task.evaluate(model, dataset, batch_size=2, progress=False) == {"accuracy": pytest.approx(expected)}


def test_entailment(processor, cache: Path) -> None:
    model = tiny_albef(AlbefForVisualEntailment, seed=4, id2label=dict(enumerate(ENTAILMENT_LABELS)))
    task = EntailmentTask(model, processor, train_augment=False)
    train = shapes_split("entailment", "train", cache, num_train=8, num_validation=1, num_test=4)
    batch = task.collate_train([train[i] for i in range(8)])
    losses = losses_over_steps(task, model, batch, steps=8, lr=1e-2)
    assert losses[-1] < 0.8 * losses[0], losses
    dataset = dummy_split("snli_ve", "validation", cache)
    with torch.no_grad():
        text = processor(text=list(dataset["hypothesis"]), text_mode="caption")
        pixels = processor(images=list(dataset["image"]))["pixel_values"]
        predictions = model(pixel_values=pixels, **text).logits.argmax(-1)
    expected = per_class_accuracy(predictions, torch.tensor(dataset["label"]), list(ENTAILMENT_LABELS))
    metrics = task.evaluate(model, dataset, batch_size=3, progress=False)
    assert "accuracy" in metrics and metrics == pytest.approx(expected)
    assert_raises_clear(
        lambda: EntailmentTask(tiny_albef(AlbefForNLVR), processor), ValueError, "AlbefForVisualEntailment"
    )


def test_zero_shot_classification(processor, cache: Path) -> None:
    model = tiny_albef(AlbefForImageTextRetrieval, seed=2)
    train = shapes_split("classification", "train", cache, num_train=8, num_validation=1, num_test=5, label_by="colour")
    names = train.features["label"].names
    task = ClassificationTask(model, processor, class_names=names, train_augment=False)
    batch = task.collate_train([train[i] for i in range(8)])
    losses = losses_over_steps(task, model, batch, steps=6, lr=1e-3)
    assert losses[-1] < 0.92 * losses[0], losses
    test = shapes_split("classification", "test", cache, num_train=8, num_validation=1, num_test=5, label_by="colour")
    for options in ({}, {"itm_rerank_k": 2}):  # ITC only, then ITM re-ranking of the top 2 classes
        metrics = ClassificationTask(model, processor, **options).evaluate(model, test, batch_size=3, progress=False)
        assert set(metrics) == {"top1", "top5"}, metrics
        assert all(0.0 <= v <= 100.0 for v in metrics.values())


def test_pretrain(processor, cache: Path) -> None:
    model = tiny_albef(AlbefForPreTraining, seed=5)
    task = PretrainTask(model, processor, caption_sampling="first", train_augment=False)
    train = shapes_split("image_text", "train", cache, num_train=4, num_validation=1, num_test=5)
    batch = task.collate_train([train[i] for i in range(4)])  # queue_size 8 is a multiple of the batch
    losses = losses_over_steps(task, model, batch, steps=6, lr=2e-3)
    assert losses[-1] < 0.85 * losses[0], losses
    out = task.training_step(model.train(), batch)
    model.eval()
    assert out["loss"].dim() == 0 and {"itc", "itm"} <= set(out)
    metrics = task.evaluate(model, dummy_split("coco_retrieval", "test", cache), progress=False)
    assert {"loss", "neg_loss", "itc", "itm"} <= set(metrics)
    assert metrics["neg_loss"] == pytest.approx(-metrics["loss"])


def test_feature_extraction(processor, cache: Path) -> None:
    model = tiny_albef(AlbefModel)
    shapes = shapes_split("image_text", "test", cache, num_train=4, num_validation=1, num_test=5)
    task = FeatureExtractionTask(model, processor)
    metrics = task.evaluate(model, shapes, batch_size=2, progress=False)
    assert set(metrics) == {"num_rows", "pair_similarity"} and metrics["num_rows"] == 5.0
    assert -1.0 <= metrics["pair_similarity"] <= 1.0  # mean cosine of normalised image/caption features
    assert_raises_clear(lambda: VQATask(model, processor), ValueError, "AlbefForQuestionAnswering")
