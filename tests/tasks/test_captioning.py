"""Captioning task: LAVIS training batches (prompt, masked labels, one seeded reference per image), training lowers
the loss on image and video rows, evaluation generates with the task's beam settings, strips the prompt and
scores with the caption metrics; bad datasets / families / options raise listing the valid choices."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.common.model_tester import assert_raises_clear
from tests.tasks.generative_helpers import (
    PROMPT,
    blip_processor,
    caption_model,
    dummy_split,
    rows_of,
    single_thread_no_java,  # noqa: F401 - autouse fixture
    train_losses,
    vqa_model,
)
from vl_hub.processing.text import pre_caption
from vl_hub.tasks import get_task
from vl_hub.tasks.captioning import CaptioningTask

CAPTION_METRICS = {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider"}


@pytest.fixture(scope="module")
def processor():
    return blip_processor()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("caption_cache")
    return {
        "coco_train": dummy_split("coco_caption", "train", cache),
        "coco_test": dummy_split("coco_caption", "test", cache),
        "msrvtt_train": dummy_split("msrvtt_caption", "train", cache),
        "msrvtt_val": dummy_split("msrvtt_caption", "validation", cache),
        "coco_vqa": dummy_split("coco_vqa", "validation", cache),
    }


def test_registered() -> None:
    assert get_task("captioning") is CaptioningTask
    assert CaptioningTask.primary_metric == "cider"


def test_collate_train_prompt_labels_and_seeded_reference(processor, data) -> None:
    model = caption_model(processor)
    task = CaptioningTask(model, processor)
    rows = rows_of(data["coco_train"])
    tokenizer = processor.tokenizer
    torch.manual_seed(3)
    batch = task.collate_train(rows)
    torch.manual_seed(3)
    again = task.collate_train(rows)
    assert torch.equal(batch["input_ids"], again["input_ids"])  # the trainer's per-batch seed fixes the draw
    assert batch["pixel_values"].shape == (len(rows), 3, 32, 32)
    # "a picture of " = [CLS] a picture of -> LAVIS prompt_length 4
    assert task.prompt_length == 4
    for i, row in enumerate(rows):
        expected = {
            tuple(tokenizer(PROMPT + pre_caption(c), truncation=True, max_length=task.max_txt_len).input_ids)
            for c in row["captions"]
        }
        ids = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        assert tuple(ids) in expected
        labels = batch["labels"][i]
        assert (labels[:4] == -100).all()
        keep = batch["attention_mask"][i].bool()
        keep[:4] = False
        assert torch.equal(labels[keep], batch["input_ids"][i][keep])
        assert (labels[~batch["attention_mask"][i].bool()] == -100).all()
    # over many batch seeds every reference caption of the first image gets drawn
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        seen.add(tuple(task.collate_train(rows[:1])["input_ids"][0].tolist()))
    assert len(seen) == len(rows[0]["captions"])


def test_training_lowers_loss_on_images(processor, data) -> None:
    model = caption_model(processor, seed=1)
    task = CaptioningTask(model, processor)
    torch.manual_seed(0)
    batch = task.collate_train(rows_of(data["coco_train"]))
    # the loss is the head's label-smoothed LM loss on the batch's labels
    with torch.no_grad():
        direct = model(batch["pixel_values"], batch["input_ids"], batch["attention_mask"], labels=batch["labels"]).loss
        assert torch.allclose(task.training_step(model, batch)["loss"], direct)
    losses = train_losses(task, model, batch, steps=6)
    assert losses[-1] < 0.7 * losses[0], losses


def test_training_lowers_loss_on_video_frames(processor, data) -> None:
    model = caption_model(processor, seed=2)
    task = CaptioningTask(model, processor, num_frames=2)
    torch.manual_seed(0)
    batch = task.collate_train(rows_of(data["msrvtt_train"]))
    assert batch["pixel_values"].shape == (2, 2, 3, 32, 32)
    losses = train_losses(task, model, batch, steps=6)
    assert losses[-1] < 0.7 * losses[0], losses


def test_evaluate_generates_strips_prompt_and_scores(processor, data) -> None:
    from vl_hub.metrics import caption_metrics

    model = caption_model(processor, seed=4)
    task = CaptioningTask(model, processor)
    dataset = data["coco_test"]
    predictions = task.predict(model, dataset, batch_size=1, progress=False)
    # the head's own captioner (LAVIS decoding: prompt characters cut) on the same pixels, beam 3, 20, 5
    pixels = processor(images=[row["image"] for row in rows_of(dataset)])["pixel_values"]
    expected = model.caption(pixels, processor.tokenizer, num_beams=3, max_length=20, min_length=5)
    assert [p["caption"] for p in predictions] == [e.strip() for e in expected]
    assert [p["id"] for p in predictions] == dataset["image_id"]
    assert all(not p["caption"].startswith("a picture of") for p in predictions)

    metrics = task.evaluate(model, dataset, batch_size=2, progress=False)
    assert set(metrics) == CAPTION_METRICS
    assert "Java" in task.unavailable_metrics["meteor"]
    reference = caption_metrics([p["caption"] for p in predictions], dataset["captions"])
    for key in CAPTION_METRICS:
        assert metrics[key] == pytest.approx(reference[key])


def test_evaluate_returns_meteor_when_it_can_run(processor, data, monkeypatch) -> None:
    import vl_hub.metrics

    calls = []

    def fake_caption_metrics(predictions, references, meteor=True, spice=False):
        calls.append((list(predictions), [list(r) for r in references], meteor, spice))
        return {"bleu_4": 0.1, "meteor": 0.25, "rouge_l": 0.3, "cider": 0.4, "spice_unavailable": "no models"}

    monkeypatch.setattr(vl_hub.metrics, "caption_metrics", fake_caption_metrics)
    model = caption_model(processor)
    task = CaptioningTask(model, processor, spice=True)
    metrics = task.evaluate(model, data["coco_test"], progress=False)
    assert metrics == {"bleu_4": 0.1, "meteor": 0.25, "rouge_l": 0.3, "cider": 0.4}
    assert task.unavailable_metrics == {"spice": "no models"}
    assert calls[0][1] == data["coco_test"]["captions"] and calls[0][2:] == (True, True)


def test_generation_settings_reach_generate(processor, data) -> None:
    model = caption_model(processor, seed=5)
    seen: list[dict[str, Any]] = []
    original = model.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return original(*args, **kwargs)

    model.generate = spy
    task = CaptioningTask(model, processor, num_beams=2, max_len=9, min_len=7)
    predictions = task.predict(model, data["coco_test"], progress=False)
    assert {(k["num_beams"], k["max_length"], k["min_length"]) for k in seen} == {(2, 9, 7)}
    # max_len counts the 4 prompt ids, so at most 5 caption tokens (and at least 2 before [SEP] at min_len 7)
    for p in predictions:
        n_tokens = len(processor.tokenizer(p["caption"], add_special_tokens=False).input_ids)
        assert 2 <= n_tokens <= 5, p


def test_evaluate_video_rows(processor, data) -> None:
    model = caption_model(processor, seed=6)
    task = CaptioningTask(model, processor, num_frames=2)
    dataset = data["msrvtt_val"]
    metrics = task.evaluate(model, dataset, progress=False)
    assert set(metrics) == CAPTION_METRICS
    predictions = task.predict(model, dataset, progress=False)
    assert [p["id"] for p in predictions] == dataset["video_id"]
    assert [p["references"] for p in predictions] == dataset["captions"]


def test_bad_inputs_raise_listing_choices(processor, data) -> None:
    model = caption_model(processor)
    task = CaptioningTask(model, processor)
    assert_raises_clear(
        lambda: task.evaluate(model, data["coco_vqa"], progress=False), ValueError,
        "does not fit task 'captioning'", "image_text or video_text", "coco_caption", "msrvtt_caption",
    )
    assert_raises_clear(
        lambda: CaptioningTask(vqa_model(), processor), ValueError, "BlipForConditionalGeneration",
        "BlipForQuestionAnswering",
    )
    from tests.models.clip.clip_test_utils import tiny_config
    from vl_hub.models.clip.modeling_clip import ClipModel

    assert_raises_clear(
        lambda: CaptioningTask(ClipModel(tiny_config()), processor), ValueError,
        "not supported by the 'clip' family", "blip (BlipForConditionalGeneration)",
    )
    assert_raises_clear(lambda: CaptioningTask(model, processor, beams=3), ValueError, "beams", "num_beams", "max_len")
    assert_raises_clear(lambda: CaptioningTask(model, None), ValueError, "processor")
    assert_raises_clear(lambda: CaptioningTask(model, processor, min_len=30), ValueError, "min_len=30", "max_len=20")
    assert_raises_clear(lambda: CaptioningTask(model, processor, max_len=4, min_len=0), ValueError, "max_len=4", "prompt")
    assert_raises_clear(
        lambda: CaptioningTask(model, processor, frame_sampling="every"), ValueError, "every", "uniform"
    )
    no_captions = [{"image_id": "1", "image": data["coco_test"][0]["image"], "captions": []}]
    assert_raises_clear(lambda: task.collate_train(no_captions), ValueError, "no captions")


@pytest.mark.parametrize("recipe", ["blip/captioning_coco", "blip/captioning_msrvtt"])
def test_recipes_build_the_task(processor, recipe: str) -> None:
    from vl_hub.recipes import validate_recipe

    args = validate_recipe(recipe)
    assert get_task(args.task) is CaptioningTask
    task = CaptioningTask(caption_model(processor), processor, **args.task_options)
    assert (task.num_beams, task.max_len, task.min_len, task.prompt) == (3, 20, 5, PROMPT)
