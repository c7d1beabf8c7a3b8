"""Zero-shot / prompt-fine-tuned image classification task (``vl_hub.tasks.classification``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

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
from vl_hub.metrics import topk_accuracy
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval, BlipModel
from vl_hub.models.clip.modeling_clip import ClipForZeroShotClassification
from vl_hub.tasks import get_task
from vl_hub.tasks.classification import DEFAULT_TEMPLATES, ClassificationTask


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("classification_cache")


@pytest.fixture(scope="module")
def colours(cache: Path):
    """Synthetic images labelled by colour (5 classes whose names the tiny BLIP vocabulary knows)."""
    return shapes_split("classification", "test", cache, num_train=8, num_validation=1, num_test=7, label_by="colour")


@pytest.fixture(scope="module")
def blip():
    return tiny_blip(BlipForImageTextRetrieval), blip_processor()


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return ClipForZeroShotClassification(tiny_config()).eval(), tiny_processor()


def test_registered() -> None:
    assert get_task("classification") is ClassificationTask


def test_blip_zero_shot_equals_hand_computed_itc(blip, colours) -> None:
    model, processor = blip
    names = colours.features["label"].names
    task = ClassificationTask(model, processor)
    with torch.no_grad():
        pixels = processor(images=list(colours["image"]))["pixel_values"]
        image_feat = model.get_image_features(pixels)
        prompts = processor(text=[DEFAULT_TEMPLATES[0].format(n) for n in names], text_mode="caption")
        class_feat = model.get_text_features(prompts["input_ids"], prompts["attention_mask"])
    expected = image_feat @ class_feat.t()  # one template: its normalised feature is the class embedding
    logits, labels = task.compute_logits(model, colours, batch_size=3, progress=False)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    assert torch.equal(labels, torch.tensor(colours["label"]))
    metrics = task.evaluate(model, colours, batch_size=3, progress=False)
    assert set(metrics) == {"top1", "top5"}
    assert metrics == topk_accuracy(expected, labels)


def test_blip_itm_rerank_equals_per_image_reference(blip, colours) -> None:
    model, processor = blip
    names = colours.features["label"].names
    task = ClassificationTask(model, processor, itm_rerank_k=2, pairs_per_call=3)
    logits, _ = task.compute_logits(model, colours, batch_size=4, progress=False)
    with torch.no_grad():
        pixels = processor(images=list(colours["image"]))["pixel_values"]
        embeds, image_feat = model.encode_images(pixels)
        prompts = processor(text=[DEFAULT_TEMPLATES[0].format(n) for n in names], text_mode="caption")
        sim = image_feat @ model.get_text_features(prompts["input_ids"], prompts["attention_mask"]).t()
        expected = torch.full_like(sim, -100.0)
        for i in range(len(colours)):
            top_sim, top = sim[i].topk(2)
            itm = model.itm_match_logits(embeds[i : i + 1].expand(2, -1, -1), prompts["input_ids"][top], prompts["attention_mask"][top])
            expected[i, top] = itm + top_sim
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_clip_uses_its_prompt_ensemble(clip, colours, cache: Path) -> None:
    model, processor = clip
    templates = ["a photo of a {}.", "a picture of the {}."]
    task = ClassificationTask(model, processor, templates=templates)
    logits, _ = task.compute_logits(model, colours, batch_size=4, progress=False)
    with torch.no_grad():
        pixels = processor(images=list(colours["image"]))["pixel_values"]
        out = model.classify(pixels, colours.features["label"].names, processor, templates)
    torch.testing.assert_close(logits * model.logit_scale.exp(), out.logits, atol=1e-4, rtol=1e-5)
    # the ImageNet dummy (1,000 classes from its ClassLabel): every metric comes back
    imagenet = dummy_split("imagenet", "validation", cache)
    metrics = ClassificationTask(model, processor, templates=["a photo of a {}."], topk=[1, 5, 10]).evaluate(
        model, imagenet, progress=False
    )
    assert set(metrics) == {"top1", "top5", "top10"} and all(0 <= v <= 100 for v in metrics.values())


def test_sharded_evaluation_equals_single_process(blip, colours) -> None:
    model, processor = blip
    task = ClassificationTask(model, processor, itm_rerank_k=2)
    single = task.compute_logits(model, colours, batch_size=2, progress=False)
    for logits, labels in run_processes(3, lambda acc: task.compute_logits(model, colours, acc, batch_size=2, progress=False)):
        torch.testing.assert_close(logits, single[0], atol=1e-5, rtol=0)
        assert torch.equal(labels, single[1])


@pytest.mark.parametrize("family", ["blip", "clip"])
def test_prompt_fine_tuning_lowers_the_loss(family: str, cache: Path) -> None:
    if family == "blip":
        model, processor = tiny_blip(BlipForImageTextRetrieval, seed=2), blip_processor()
    else:
        torch.manual_seed(2)
        model, processor = ClipForZeroShotClassification(tiny_config()), tiny_processor()
    train = shapes_split("classification", "train", cache, num_train=8, num_validation=1, num_test=7, label_by="colour")
    names = train.features["label"].names
    task = ClassificationTask(model, processor, class_names=names, train_augment=False)
    batch = task.collate_train([train[i] for i in range(8)])
    assert batch["class_input_ids"].shape[0] == len(names) == 5
    losses = losses_over_steps(task, model, batch, steps=6, lr=1e-3 if family == "blip" else 3e-3)
    assert losses[-1] < 0.92 * losses[0], losses
    # the loss is the cross-entropy of temperature-scaled cosine logits against the labels
    with torch.no_grad():
        model.eval()
        out = task.training_step(model, batch)["loss"]
        feat = F.normalize(model.get_image_features(batch["pixel_values"]), dim=-1)
        cls = F.normalize(model.get_text_features(batch["class_input_ids"], batch["class_attention_mask"]), dim=-1)
        scale = model.logit_scale.exp() if family == "clip" else 1 / model.temp
        torch.testing.assert_close(out, F.cross_entropy(scale * feat @ cls.t(), batch["labels"]), atol=1e-5, rtol=0)


def test_bad_input(blip, clip, colours, cache: Path) -> None:
    model, processor = blip
    retrieval_rows = dummy_split("coco_retrieval", "test", cache)
    assert_raises_clear(
        lambda: ClassificationTask(model, processor).evaluate(model, retrieval_rows, progress=False),
        ValueError, "does not fit task 'classification'", "imagenet", "vl_hub_shapes",
    )
    assert_raises_clear(
        lambda: ClassificationTask(tiny_blip(BlipModel), processor), ValueError, "needs a BlipForImageTextRetrieval"
    )
    clip_model, clip_processor = clip
    assert_raises_clear(
        lambda: ClassificationTask(clip_model, clip_processor, itm_rerank_k=3).evaluate(clip_model, colours, progress=False),
        ValueError, "image-text matching", "itm_rerank_k=0",
    )
    assert_raises_clear(
        lambda: ClassificationTask(model, processor).collate_train([colours[0]]), ValueError, "class_names option"
    )
    assert_raises_clear(
        lambda: ClassificationTask(model, processor, class_names=["red", "blue"]).evaluate(model, colours, progress=False),
        ValueError, "2 names", "5 classes",
    )
    assert_raises_clear(lambda: ClassificationTask(model, processor, templates=["no slot"]), ValueError, "{}")
    assert ClassificationTask(model, processor, class_names="imagenet").options["class_names"][0] == "tench"
