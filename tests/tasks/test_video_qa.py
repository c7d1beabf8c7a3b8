"""Video QA task: BLIP on sampled frames (weighted answers, training lowers the loss, generation / ranking, accuracy
by normalised exact match, vqa_accuracy only with several answers per question) and the answer-classifier
contract that ALPRO's head plugs into (``classify_answers`` + ``config.id2label``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import datasets
import pytest
import torch
from torch import nn

from tests.common.builder_tester import dummy_dir
from tests.common.model_tester import assert_raises_clear
from tests.tasks.generative_helpers import (
    blip_processor,
    dummy_split,
    rows_of,
    single_thread_no_java,  # noqa: F401 - autouse fixture
    train_losses,
    vqa_model,
)
from vl_hub.data.schemas import video_qa_features
from vl_hub.metrics import normalize_answer, vqa_score
from vl_hub.tasks import get_task
from vl_hub.tasks.video_qa import VideoQATask


@pytest.fixture(scope="module")
def processor():
    return blip_processor()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("video_qa_cache")
    return {
        "train": dummy_split("msrvtt_qa", "train", cache),
        "val": dummy_split("msrvtt_qa", "validation", cache),
        "vqa": dummy_split("coco_vqa", "validation", cache),
    }


def multi_answer_split(val: datasets.Dataset) -> datasets.Dataset:
    """The validation videos with several annotator answers per question (``video_qa`` schema)."""
    rows = rows_of(val)
    return datasets.Dataset.from_list(
        [
            {**rows[0], "answers": ["kitchen", "kitchen", "room"]},
            {**rows[1], "answers": ["woman", "woman", "woman", "person"]},
        ],
        features=video_qa_features(),
    )


def test_registered() -> None:
    assert get_task("video_qa") is VideoQATask
    assert VideoQATask.primary_metric == "accuracy"


def test_collate_and_training_on_frames(processor, data) -> None:
    model = vqa_model(seed=1)
    task = VideoQATask(model, processor, num_frames=2)
    torch.manual_seed(0)
    batch = task.collate_train(rows_of(data["train"]))
    assert batch["pixel_values"].shape == (3, 2, 3, 32, 32)
    assert batch["n_answers"].tolist() == [1, 1, 1] and batch["answer_weights"].tolist() == [1.0, 1.0, 1.0]
    losses = train_losses(task, model, batch, steps=6)
    assert losses[-1] < 0.7 * losses[0], losses


def test_evaluate_accuracy_and_single_answer_vqa_accuracy(processor, data) -> None:
    model = vqa_model(seed=2)
    task = VideoQATask(model, processor, num_frames=2)
    dataset = data["val"]
    predictions = task.predict(model, dataset, progress=False)
    batch = task.collate_eval(rows_of(dataset))
    assert batch["pixel_values"].shape == (2, 2, 3, 32, 32)
    ids = model.generate_answers(batch["pixel_values"], batch["input_ids"], batch["attention_mask"], num_beams=3,
                                 max_length=10, min_length=1)
    assert [p["answer"] for p in predictions] == processor.batch_decode(ids)
    with pytest.warns(UserWarning, match="single answer"):
        metrics = task.evaluate(model, dataset, progress=False)
    assert set(metrics) == {"accuracy"}
    assert "single answer" in task.unavailable_metrics["vqa_accuracy"]
    hits = [normalize_answer(p["answer"]) == normalize_answer(a[0]) for p, a in zip(predictions, dataset["answers"])]
    assert metrics["accuracy"] == pytest.approx(100.0 * sum(hits) / len(hits))


def test_rank_over_answer_file_and_multi_answer_metrics(processor, data) -> None:
    """Ranking over MSRVTT-QA's ``qa_ans2label.json`` after fitting the validation questions: both right, so
    accuracy 100 % and vqa_accuracy = mean(2/3 kitchen, 1 woman) over the leave-one-out subsets."""
    model = vqa_model(seed=3)
    ans2label = dummy_dir("msrvtt_qa") / "lavis" / "annotations" / "qa_ans2label.json"
    task = VideoQATask(model, processor, num_frames=2, answer_list=str(ans2label), augment=False,
                       train_frame_sampling="uniform")
    assert task.inference_method == "rank"
    assert task.answer_list == ["car", "squirrel", "kitchen", "onion", "woman", "ball"]
    dataset = multi_answer_split(data["val"])
    train_losses(task, model, task.collate_train(rows_of(dataset)), steps=40, lr=2e-3)
    predictions = task.predict(model, dataset, progress=False)
    assert [p["answer"] for p in predictions] == ["kitchen", "woman"]
    metrics = task.evaluate(model, dataset, progress=False)
    assert metrics["accuracy"] == pytest.approx(100.0)
    # kitchen: leaving a "kitchen" out leaves 1 match (1/3), leaving "room" out leaves 2 (2/3) -> 4/9; woman: 3 of 4
    # subsets keep 2 matches (2/3), one keeps 3 (1) -> 3/4
    assert metrics["vqa_accuracy"] == pytest.approx(100.0 * (4 / 9 + 3 / 4) / 2)
    assert metrics["vqa_accuracy"] == pytest.approx(vqa_score(["kitchen", "woman"], dataset["answers"])["vqa_accuracy"])


# --------------------------------------------------------------------------------------------- classifier heads
class ToyAnswerClassifier(nn.Module):
    """A stand-in for ALPRO's video QA head: answer logits from mean pixels + bag of question tokens."""

    def __init__(self, answers: list[str]) -> None:
        super().__init__()
        self.config = SimpleNamespace(
            model_type="vlhub_toyalpro", id2label=dict(enumerate(answers)), text_config=None, max_txt_len=20
        )
        self.words = nn.EmbeddingBag(232, 8, mode="sum")
        self.head = nn.Linear(11, len(answers))

    def classify_answers(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor) -> torch.Tensor:
        colour = pixel_values.mean(dim=(1, 3, 4))  # (B, 3)
        words = self.words(input_ids, per_sample_weights=attention_mask.float())
        return self.head(torch.cat([colour, words], dim=1))

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None) -> SimpleNamespace:
        logits = self.classify_answers(pixel_values, input_ids, attention_mask)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels, ignore_index=-100)
        return SimpleNamespace(loss=loss, logits=logits)


class ToyVideoQATask(VideoQATask):
    families: ClassVar[dict[str, str]] = {"toyalpro": "ToyAnswerClassifier"}


def test_answer_classifier_heads_plug_in(processor, data) -> None:
    torch.manual_seed(0)
    model = ToyAnswerClassifier(["car", "kitchen", "woman", "ball"])
    task = ToyVideoQATask(model, processor, num_frames=2)
    assert task.classifier and task.inference_method == "classify"
    # training targets: the most frequent answer's class; answers outside the vocabulary are ignored (-100)
    rows = rows_of(data["train"])
    batch = task.collate_train(rows)
    expected = [{"car": 0, "kitchen": 1, "woman": 2, "ball": 3}.get(r["answers"][0], -100) for r in rows]
    assert batch["labels"].tolist() == expected and "answer_input_ids" not in batch
    losses = train_losses(task, model, batch, steps=10, lr=5e-2)
    assert losses[-1] < 0.7 * losses[0], losses
    # evaluation: the arg-max class is the answer
    dataset = data["val"]
    predictions = task.predict(model, dataset, progress=False)
    eval_batch = task.collate_eval(rows_of(dataset))
    logits = model.classify_answers(eval_batch["pixel_values"], eval_batch["input_ids"], eval_batch["attention_mask"])
    assert [p["answer"] for p in predictions] == [model.config.id2label[i] for i in logits.argmax(1).tolist()]
    with pytest.warns(UserWarning):
        metrics = task.evaluate(model, dataset, progress=False)
    hits = [p["answer"] == a[0] for p, a in zip(predictions, dataset["answers"])]
    assert metrics == {"accuracy": pytest.approx(100.0 * sum(hits) / len(hits))}


def test_bad_inputs_raise_listing_choices(processor, data) -> None:
    model = vqa_model()
    task = VideoQATask(model, processor)
    assert_raises_clear(lambda: task.evaluate(model, data["vqa"], progress=False), ValueError,
                        "does not fit task 'video_qa'", "msrvtt_qa", "msvd_qa")
    assert_raises_clear(lambda: VideoQATask(model, processor, frame_sampling="sometimes"), ValueError,
                        "sometimes", "uniform", "headtail")
    assert_raises_clear(lambda: VideoQATask(model, processor, num_frames=0), ValueError, "num_frames", ">= 1")
    assert_raises_clear(lambda: VideoQATask(ToyAnswerClassifier(["a"]), processor), ValueError,
                        "'toyalpro'", "blip (BlipForQuestionAnswering)")
    assert_raises_clear(lambda: ToyVideoQATask(ToyAnswerClassifier(["a"]), processor, answer_list=["a"]),
                        ValueError, "config.id2label", "answer_list")
    missing = [{**rows_of(data["val"])[0], "video": str(Path("/nonexistent/video.mp4"))}]
    with pytest.raises(FileNotFoundError, match="video.mp4"):
        task.collate_eval(missing)


def test_recipe_builds_the_task(processor) -> None:
    from vl_hub.recipes import validate_recipe

    args = validate_recipe("blip/video_qa_msrvtt")
    assert get_task(args.task) is VideoQATask
    ans2label = dummy_dir("msrvtt_qa") / "lavis" / "annotations" / "qa_ans2label.json"
    task = VideoQATask(vqa_model(), processor, **{**args.task_options, "answer_list": str(ans2label)})
    assert (task.inference_method, task.opts["num_frames"]) == ("rank", 8)


def test_alpro_answer_classifier_trains_and_evaluates(data, fixtures_dir) -> None:
    """The real ALPRO head (tiny) through the task: classification targets, loss goes down, accuracy returned."""
    from tests.models.alpro.alpro_test_utils import lively_model
    from tests.models.alpro.alpro_test_utils import tiny_processor as alpro_processor
    from vl_hub.models.alpro.modeling_alpro import AlproForVideoQuestionAnswering

    answers = ["car", "kitchen", "woman", "ball", "dog"]
    model = lively_model(AlproForVideoQuestionAnswering, num_labels=5, id2label=dict(enumerate(answers)))
    task = VideoQATask(model, alpro_processor(fixtures_dir), num_frames=4)
    assert task.classifier
    batch = task.collate_train(rows_of(data["train"]))
    assert batch["pixel_values"].shape[1:] == (4, 3, 32, 32)
    losses = train_losses(task, model, batch, steps=8, lr=1e-3)
    assert losses[-1] < losses[0], losses
    model.eval()
    with pytest.warns(UserWarning):
        metrics = task.evaluate(model, data["val"], progress=False)
    assert 0.0 <= metrics["accuracy"] <= 100.0
