"""VQA task: LAVIS answer weighting, answer lists (list, files, most frequent training answers), training lowers
the loss, evaluation by generation and by ranking equals the head's own calls, A-OKVQA multiple choice equals
choice-by-choice scoring, evaluation sharded over two processes equals one process, and bad input raises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.common.model_tester import assert_raises_clear
from tests.tasks.generative_helpers import (
    blip_processor,
    caption_model,
    dummy_split,
    rows_of,
    single_thread_no_java,  # noqa: F401 - autouse fixture
    train_losses,
    vqa_model,
)
from vl_hub.metrics import vqa_score
from vl_hub.tasks import get_task
from vl_hub.tasks.vqa import (
    VQATask,
    answer_weights,
    load_answer_list,
    most_frequent_answers,
)


@pytest.fixture(scope="module")
def processor():
    return blip_processor()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vqa_cache")


@pytest.fixture(scope="module")
def data(cache) -> dict[str, Any]:
    return {
        "train": dummy_split("coco_vqa", "train", cache),
        "val": dummy_split("coco_vqa", "validation", cache),
        "test": dummy_split("coco_vqa", "test", cache),
        "aok_val": dummy_split("aok_vqa", "validation", cache),
        "captions": dummy_split("coco_caption", "test", cache),
    }


def test_registered() -> None:
    assert get_task("vqa") is VQATask
    assert VQATask.primary_metric == "vqa_accuracy"


def test_answer_weights_and_lists(tmp_path, cache) -> None:
    assert answer_weights(["2", "2", "3", "3", "3", "3", "3", "3", "3", "3"]) == (["2", "3"], [0.2, 0.8])
    assert answer_weights(["cab", "taxi", "cab", "ride"]) == (["cab", "taxi", "ride"], [0.5, 0.25, 0.25])
    assert most_frequent_answers([["a", "b", "b"], ["c", "b", "a"]], 2) == ["b", "a"]
    assert most_frequent_answers([["x", "y"], ["y"]], 5) == ["y", "x"]
    # files: JSON list, JSON {answer: index} (ans2label), one per line
    (tmp_path / "list.json").write_text(json.dumps(["yes", "no"]))
    (tmp_path / "ans2label.json").write_text(json.dumps({"no": 1, "two": 2, "yes": 0}))
    (tmp_path / "answers.txt").write_text("red\n\nblue\n")
    assert load_answer_list(tmp_path / "list.json") == ["yes", "no"]
    assert load_answer_list(str(tmp_path / "ans2label.json")) == ["yes", "no", "two"]
    assert load_answer_list(tmp_path / "answers.txt") == ["red", "blue"]
    # the most frequent answers of a training split: 9 x broccoli, 8 x 3, 10 x yes, 2 x 2, 1 x vegetables
    from tests.common.builder_tester import dummy_dir

    spec = {"dataset": "coco_vqa", "split": "train", "size": 3, "data_dir": str(dummy_dir("coco_vqa")), "cache_dir": str(cache)}
    assert load_answer_list(spec) == ["yes", "broccoli", "3"]
    assert_raises_clear(lambda: load_answer_list({"name": "coco_vqa"}), ValueError, "'dataset'", "unknown keys: ['name']")
    assert_raises_clear(lambda: load_answer_list(tmp_path / "missing.json"), FileNotFoundError, "missing.json")
    assert_raises_clear(lambda: load_answer_list([1, 2]), ValueError, "answer strings")
    assert_raises_clear(lambda: answer_weights([]), ValueError, "unlabelled")


def test_collate_train_weights_answers(processor, data) -> None:
    task = VQATask(vqa_model(), processor)
    rows = rows_of(data["train"])
    batch = task.collate_train(rows)
    assert batch["pixel_values"].shape == (3, 3, 32, 32)
    assert batch["n_answers"].tolist() == [2, 2, 1]
    assert batch["answer_weights"].tolist() == pytest.approx([0.9, 0.1, 0.2, 0.8, 1.0])
    expected = processor.tokenizer(["broccoli", "vegetables", "2", "3", "yes"], padding="longest", return_tensors="pt")
    assert torch.equal(batch["answer_input_ids"], expected.input_ids)
    assert torch.equal(batch["answer_attention_mask"], expected.attention_mask)
    # questions through LAVIS's pre_question ("?" kept, lower case)
    question = processor.tokenizer(["what is in the bowl?"], return_tensors="pt").input_ids  # "bowl" is [UNK]
    assert torch.equal(batch["input_ids"][:1, : question.shape[1]], question)


def test_training_lowers_loss(processor, data) -> None:
    model = vqa_model(seed=1)
    task = VQATask(model, processor)
    batch = task.collate_train(rows_of(data["train"]))
    with torch.no_grad():
        direct = model(**batch).loss
        assert torch.allclose(task.training_step(model, batch)["loss"], direct)
    losses = train_losses(task, model, batch, steps=6)
    assert losses[-1] < 0.7 * losses[0], losses


def test_evaluate_generate_equals_head_call(processor, data) -> None:
    model = vqa_model(seed=2)
    task = VQATask(model, processor)
    assert task.inference_method == "generate"
    dataset = data["val"]
    predictions = task.predict(model, dataset, batch_size=1, progress=False)
    batch = task.collate_eval(rows_of(dataset))
    ids = model.generate_answers(batch["pixel_values"], batch["input_ids"], batch["attention_mask"], num_beams=3,
                                 max_length=10, min_length=1)
    assert [p["answer"] for p in predictions] == processor.batch_decode(ids)
    assert [p["question_id"] for p in predictions] == dataset["question_id"]
    metrics = task.evaluate(model, dataset, progress=False)
    assert metrics == pytest.approx(vqa_score([p["answer"] for p in predictions], dataset["answers"]))
    assert set(metrics) == {"vqa_accuracy"}


def test_evaluate_rank_after_training_answers_correctly(processor, data) -> None:
    model = vqa_model(seed=3)
    answer_list = ["yes", "no", "giraffe", "red", "white", "two"]  # words of the tiny vocabulary
    task = VQATask(model, processor, answer_list=answer_list, num_ans_candidates=3, augment=False)
    assert task.inference_method == "rank"
    dataset = data["val"]
    # ranking equals the head's rank_answers over the tokenized list
    predictions = task.predict(model, dataset, progress=False)
    batch = task.collate_eval(rows_of(dataset))
    tokens = processor.tokenizer(answer_list, padding="longest", return_tensors="pt")
    ranked = model.rank_answers(batch["pixel_values"], batch["input_ids"], batch["attention_mask"],
                                answer_ids=tokens.input_ids, answer_attention_mask=tokens.attention_mask,
                                num_candidates=3)
    assert [p["answer"] for p in predictions] == [answer_list[i] for i in ranked.pred_index.tolist()]
    # after fitting the two validation questions ("maroon" is [UNK] in the tiny vocabulary), ranking finds
    # "giraffe" (10/10 annotators: 100 %) and "red" (2/10: 8 subsets with 2 matches -> 2/3, 2 with 1 -> 1/3: 60 %)
    train_losses(task, model, task.collate_train(rows_of(dataset)), steps=40, lr=2e-3)
    metrics = task.evaluate(model, dataset, progress=False)
    assert [p["answer"] for p in task.predict(model, dataset, progress=False)] == ["giraffe", "red"]
    assert metrics["vqa_accuracy"] == pytest.approx((100.0 + 60.0) / 2)


def test_aokvqa_multiple_choice_equals_choice_by_choice_scores(processor, data) -> None:
    model = vqa_model(seed=4)
    task = VQATask(model, processor, candidate_batch_size=3)  # questions split over several decoder calls
    dataset = data["aok_val"]
    predictions = task.predict(model, dataset, progress=False)
    expected_choices = []
    for row in rows_of(dataset):
        batch = task.collate_eval([row])
        states, _ = model.encode_question(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
        losses = []
        for choice in row["choices"]:
            answer = processor.tokenizer([choice], return_tensors="pt")
            out = model(question_states=states, attention_mask=batch["attention_mask"],
                        answer_input_ids=answer.input_ids, answer_attention_mask=answer.attention_mask)
            losses.append(float(out.answer_loss[0].detach()))
        expected_choices.append(min(range(len(losses)), key=losses.__getitem__))
    assert [p["choice"] for p in predictions] == expected_choices
    metrics = task.evaluate(model, dataset, progress=False)
    correct = [c == row["correct_choice"] for c, row in zip(expected_choices, rows_of(dataset))]
    assert metrics["mc_accuracy"] == pytest.approx(100.0 * sum(correct) / len(correct))
    assert metrics["vqa_accuracy"] == pytest.approx(
        vqa_score([p["answer"] for p in predictions], dataset["answers"])["vqa_accuracy"]
    )


def test_unlabelled_split_predicts_but_does_not_score(processor, data) -> None:
    model = vqa_model()
    task = VQATask(model, processor)
    predictions = task.predict(model, data["test"], progress=False)
    assert [p["question_id"] for p in predictions] == ["1000", "16000"]
    assert_raises_clear(lambda: task.evaluate(model, data["test"], progress=False), ValueError, "no question",
                        "task.predict")
    assert_raises_clear(lambda: task.collate_train(rows_of(data["test"])), ValueError, "1000", "no answers")


def test_bad_inputs_raise_listing_choices(processor, data) -> None:
    model = vqa_model()
    assert_raises_clear(lambda: VQATask(model, processor, inference_method="rank"), ValueError, "answer_list",
                        "generate")
    assert_raises_clear(lambda: VQATask(model, processor, inference_method="beam"), ValueError, "'beam'", "'rank'")
    assert_raises_clear(lambda: VQATask(model, processor, answer_list=3), TypeError, "answer_list")
    task = VQATask(model, processor)
    assert_raises_clear(lambda: task.evaluate(model, data["captions"], progress=False), ValueError,
                        "does not fit task 'vqa'", "coco_vqa", "aok_vqa", "ok_vqa", "gqa")
    assert_raises_clear(lambda: VQATask(caption_model(processor), processor), ValueError,
                        "BlipForQuestionAnswering", "BlipForConditionalGeneration")
    assert_raises_clear(lambda: VQATask(model, processor, num_beams=0), ValueError, "num_beams", ">= 1")
    assert_raises_clear(lambda: VQATask(model, processor, num_frames=4), ValueError, "num_frames", "valid options")


# Forked workers (accelerate's debug_launcher) can deadlock when the suite's parent process already runs an
# OpenMP pool, so this real two-process check stays out of the default run; the default run covers sharded
# evaluation with the simulated-process tests (tests/tasks/test_retrieval.py, test_classification.py,
# test_pretrain.py) and the trainer's real two-process `accelerate launch` test (tests/training).
@pytest.mark.slow
def test_sharded_evaluation_counts_every_question_once(processor, data, tmp_path) -> None:
    """Two processes (gloo on CPU), one question per batch: 3 questions -> the second step of the second process
    is padding; the gathered predictions and metrics equal the one-process run."""
    from accelerate import debug_launcher

    model = vqa_model(seed=5)
    task = VQATask(model, processor)
    dataset = data["train"]
    single = task.predict(model, dataset, progress=False)
    single_metrics = task.evaluate(model, dataset, progress=False)

    def worker() -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, PartialState

        torch.set_num_threads(1)
        # the forked worker inherits the parent's accelerate singletons when an earlier test made an Accelerator
        AcceleratorState._reset_state(reset_partial_state=True)
        PartialState._reset_state()
        accelerator = Accelerator(cpu=True)
        predictions = task.predict(model, dataset, accelerator=accelerator, batch_size=1, progress=False)
        metrics = task.evaluate(model, dataset, accelerator=accelerator, batch_size=2, progress=False)
        result = {"processes": accelerator.num_processes, "predictions": predictions, "metrics": metrics}
        (tmp_path / f"rank{accelerator.process_index}.json").write_text(json.dumps(result))

    debug_launcher(worker, num_processes=2)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["processes"] == 2
        assert result["predictions"] == single
        assert result["metrics"] == pytest.approx(single_metrics)


def test_distilling_heads_get_lavis_alpha_ramp(processor, data) -> None:
    """Heads whose forward takes ``alpha`` (ALBEF's momentum-distilled VQA) get LAVIS's first-epoch ramp from the
    trainer's ``training_progress``; BLIP's forward takes none and gets none."""
    from vl_hub.training.trainer import TrainingProgress

    inner = vqa_model()

    class AlphaRecorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.config, self.seen = inner, inner.config, []

        def forward(self, alpha: float | None = None, **inputs: Any) -> Any:
            self.seen.append(alpha)
            return self.inner(**inputs)

    task = VQATask(inner, processor)
    batch = task.collate_train(rows_of(data["train"]))
    recorder = AlphaRecorder()
    task.training_step(recorder, batch)  # outside the trainer: the head's default
    task.training_progress = TrainingProgress(0, 5, 20, 5, 5, 3)
    task.training_step(recorder, batch)
    task.training_progress = TrainingProgress(1, 0, 20, 20, 20, 3)
    task.training_step(recorder, batch)
    assert recorder.seen == [None, pytest.approx(0.4 * 5 / 20), pytest.approx(0.4)]
    assert torch.isfinite(task.training_step(inner, batch)["loss"])


@pytest.mark.parametrize("recipe", ["blip/vqa_vqav2", "blip/vqa_okvqa", "blip/vqa_aokvqa"])
def test_recipes_build_the_task(processor, recipe: str) -> None:
    from vl_hub.recipes import validate_recipe

    args = validate_recipe(recipe)
    assert get_task(args.task) is VQATask
    assert set(args.task_options["answer_list"]) == {"dataset", "split", "size", "data_dir"}
    options = {**args.task_options, "answer_list": ["yes", "no"]}  # the recipe's list needs the real training split
    task = VQATask(vqa_model(), processor, **options)
    assert (task.inference_method, task.num_ans_candidates, task.max_len, task.min_len) == ("rank", 128, 10, 1)
