"""Dialogue tasks: the documented context format and its truncation (oldest turns first, question kept), VisDial
option ranking (equal to option-by-option decoder scoring; MRR/R@k/mean rank/NDCG), AVSD answer generation with
the caption metrics, training lowers the loss on both, and bad input raises."""

from __future__ import annotations

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
from vl_hub.tasks import get_task
from vl_hub.tasks.dialogue import (
    VideoDialogTask,
    VisualDialogTask,
    dialogue_context,
    dialogue_context_ids,
)

CAPTION_METRICS = {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider"}
HISTORY = [{"question": "is it sunny", "answer": "yes"}, {"question": "how many dogs", "answer": "two"}]


@pytest.fixture(scope="module")
def processor():
    return blip_processor()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("dialogue_cache")
    return {
        "visdial_train": dummy_split("visdial", "train", cache),
        "visdial_val": dummy_split("visdial", "validation", cache),
        "visdial_test": dummy_split("visdial", "test", cache),
        "avsd_train": dummy_split("avsd", "train", cache),
        "avsd_val": dummy_split("avsd", "validation", cache),
        "avsd_test": dummy_split("avsd", "test", cache),
    }


def test_registered() -> None:
    assert get_task("visual_dialog") is VisualDialogTask and VisualDialogTask.primary_metric == "mrr"
    assert get_task("video_dialog") is VideoDialogTask and VideoDialogTask.primary_metric == "cider"


def test_context_format_and_truncation(processor) -> None:
    tokenizer = processor.tokenizer
    text = dialogue_context("A man with a dog", HISTORY, "what color is the dog")
    assert text == "A man with a dog. q: is it sunny a: yes q: how many dogs a: two q: what color is the dog"
    assert dialogue_context("", [], "is it red?") == "q: is it red?"
    assert dialogue_context("a dog!", [], "why") == "a dog! q: why"

    def ids(max_length: int) -> list[int]:
        out, mask = dialogue_context_ids(tokenizer, ["A man with a dog"], [HISTORY], ["what color is the dog"], max_length)
        assert mask.all() and out.shape[1] <= max_length
        return out[0].tolist()

    def tokens(piece: str) -> list[int]:
        return tokenizer(piece, add_special_tokens=False).input_ids

    cap, turn1, turn2 = tokens("A man with a dog."), tokens("q: is it sunny a: yes"), tokens("q: how many dogs a: two")
    question = tokens("q: what color is the dog")
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    # everything fits: the same ids as tokenising the whole text
    assert ids(64) == tokenizer(text).input_ids
    full = 2 + len(cap) + len(turn1) + len(turn2) + len(question)
    # one token short: the oldest turn goes, the newer one stays
    assert ids(full - 1) == [cls, *cap, *turn2, *question, sep]
    # no room for any turn and only 3 caption tokens: the caption is cut, the question kept
    assert ids(2 + len(question) + 3) == [cls, *cap[:3], *question, sep]
    # a question longer than the budget is cut at its end
    assert ids(5) == [cls, *question[:3], sep]
    # a batch pads on the right
    batch, mask = dialogue_context_ids(tokenizer, ["a cat", "a dog on a bed"], [[], HISTORY], ["why", "where"], 64)
    assert mask.sum(1).tolist() == [len(tokenizer(dialogue_context("a cat", [], "why")).input_ids),
                                    len(tokenizer(dialogue_context("a dog on a bed", HISTORY, "where")).input_ids)]
    assert (batch[mask == 0] == tokenizer.pad_token_id).all()


def test_context_respects_the_position_limit(processor) -> None:
    model = vqa_model()
    task = VisualDialogTask(model, processor)
    assert task.max_txt_len == model.config.text_config.max_position_embeddings == 64
    assert VisualDialogTask(model, processor, max_txt_len=1000).max_txt_len == 64
    long_history = [{"question": "is the dog white", "answer": "no it is black"}] * 30
    row = {"caption": "a dog", "history": long_history, "question": "what is it doing"}
    ids = task._context([row])[0][0].tolist()
    tokenizer = processor.tokenizer
    caption = tokenizer("a dog.", add_special_tokens=False).input_ids
    question = tokenizer("q: what is it doing", add_special_tokens=False).input_ids
    turn = tokenizer("q: is the dog white a: no it is black", add_special_tokens=False).input_ids
    # as many whole recent turns as fit between the caption and the question
    n_turns = (64 - 2 - len(caption) - len(question)) // len(turn)
    assert ids == [tokenizer.cls_token_id, *caption, *turn * n_turns, *question, tokenizer.sep_token_id]
    assert 0 < n_turns < 30 and len(ids) <= 64


def test_visual_dialog_training_lowers_loss(processor, data) -> None:
    model = vqa_model(seed=1)
    task = VisualDialogTask(model, processor)
    rows = rows_of(data["visdial_train"])
    batch = task.collate_train(rows)
    assert batch["pixel_values"].shape == (4, 3, 32, 32)
    answers = processor.tokenizer([r["answer"] for r in rows], padding="longest", return_tensors="pt")
    assert torch.equal(batch["answer_input_ids"], answers.input_ids)
    losses = train_losses(task, model, batch, steps=6)
    assert losses[-1] < 0.7 * losses[0], losses


def test_visual_dialog_ranks_options_like_one_by_one_scoring(processor, data) -> None:
    from vl_hub.metrics import visdial_metrics

    model = vqa_model(seed=2)
    task = VisualDialogTask(model, processor, candidate_batch_size=64)  # several decoder calls per batch
    dataset = data["visdial_val"]
    predictions = task.predict(model, dataset, batch_size=2, progress=False)
    rows = rows_of(dataset)
    row = rows[1]  # round 1: caption + one earlier turn + question
    batch = task.collate_eval([row])
    states, _ = model.encode_question(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
    expected = []
    for option in row["options"][:20]:
        answer = processor.tokenizer([option], return_tensors="pt")
        out = model(question_states=states, attention_mask=batch["attention_mask"],
                    answer_input_ids=answer.input_ids, answer_attention_mask=answer.attention_mask)
        expected.append(-float(out.answer_loss[0].detach()))
    assert predictions[1]["scores"][:20] == pytest.approx(expected, abs=1e-4)
    assert [len(p["scores"]) for p in predictions] == [100, 100]

    metrics = task.evaluate(model, dataset, progress=False)
    assert set(metrics) == {"mrr", "r1", "r5", "r10", "mean_rank", "ndcg"}
    scores = torch.tensor([p["scores"] for p in predictions])
    relevance = torch.full((2, 100), float("nan"))
    relevance[1] = torch.tensor(row["relevance"])  # only round 1 has dense annotations
    reference = visdial_metrics(scores, torch.tensor(dataset["gt_index"]), relevance)
    assert metrics == pytest.approx(reference)
    # the ground-truth ranks by hand: the fixture repeats options, so equal scores tie and the rank lies between
    # 1 + (options scoring higher) and (options scoring at least as high)
    low = high = 0.0
    for p, r in zip(predictions, rows):
        gt_score = p["scores"][r["gt_index"]]
        low += 1 + sum(s > gt_score for s in p["scores"])
        high += sum(s >= gt_score for s in p["scores"])
    assert low / 2 <= metrics["mean_rank"] <= high / 2


def test_visual_dialog_hidden_answers(processor, data) -> None:
    model = vqa_model()
    task = VisualDialogTask(model, processor)
    assert len(task.predict(model, data["visdial_test"], progress=False)) == 2
    assert_raises_clear(lambda: task.evaluate(model, data["visdial_test"], progress=False), ValueError,
                        "nothing to score", "task.predict")
    assert_raises_clear(lambda: task.collate_train(rows_of(data["visdial_test"])), ValueError, "has no answer")


def test_video_dialog_training_lowers_loss(processor, data) -> None:
    model = vqa_model(seed=3)
    task = VideoDialogTask(model, processor, num_frames=2)
    torch.manual_seed(0)
    rows = rows_of(data["avsd_train"])
    batch = task.collate_train(rows)
    assert batch["pixel_values"].shape == (5, 2, 3, 32, 32)
    # later turns carry their history
    assert batch["attention_mask"][2].sum() > batch["attention_mask"][0].sum()
    losses = train_losses(task, model, batch, steps=6)
    assert losses[-1] < 0.7 * losses[0], losses


def test_video_dialog_generates_and_scores(processor, data) -> None:
    from vl_hub.metrics import caption_metrics

    model = vqa_model(seed=4)
    task = VideoDialogTask(model, processor, num_frames=2, max_len=12)
    dataset = data["avsd_val"]
    predictions = task.predict(model, dataset, batch_size=3, progress=False)
    batch = task.collate_eval(rows_of(dataset))
    ids = model.generate_answers(batch["pixel_values"], batch["input_ids"], batch["attention_mask"], num_beams=3,
                                 max_length=12, min_length=5)
    assert [p["answer"] for p in predictions] == processor.batch_decode(ids)
    assert [(p["dialog_id"], p["round"]) for p in predictions] == list(zip(dataset["dialog_id"], dataset["round"]))
    metrics = task.evaluate(model, dataset, progress=False)
    assert set(metrics) == CAPTION_METRICS and "Java" in task.unavailable_metrics["meteor"]
    reference = caption_metrics([p["answer"] for p in predictions], [[a] for a in dataset["answer"]])
    for key in CAPTION_METRICS:
        assert metrics[key] == pytest.approx(reference[key])
    # turns whose answer is hidden are left out of the scores
    test_predictions = task.predict(model, data["avsd_test"], progress=False)
    test_metrics = task.evaluate(model, data["avsd_test"], progress=False)
    labelled = [(p["answer"], [p["reference"]]) for p in test_predictions if p["reference"]]
    assert len(labelled) == 1
    assert test_metrics["cider"] == pytest.approx(caption_metrics(*map(list, zip(*labelled)))["cider"])


def test_bad_inputs_raise_listing_choices(processor, data) -> None:
    model = vqa_model()
    visual, video = VisualDialogTask(model, processor), VideoDialogTask(model, processor, num_frames=2)
    assert_raises_clear(lambda: visual.evaluate(model, data["avsd_val"], progress=False), ValueError,
                        "does not fit task 'visual_dialog'", "visdial")
    assert_raises_clear(lambda: video.evaluate(model, data["visdial_val"], progress=False), ValueError,
                        "does not fit task 'video_dialog'", "avsd")
    assert_raises_clear(lambda: VideoDialogTask(caption_model(processor), processor), ValueError,
                        "BlipForQuestionAnswering")
    assert_raises_clear(lambda: VisualDialogTask(model, processor, num_frames=2), ValueError, "num_frames",
                        "valid options")
    assert_raises_clear(lambda: VisualDialogTask(model, processor, max_txt_len=2), ValueError, "max_txt_len", ">= 3")
    assert_raises_clear(lambda: dialogue_context_ids(processor.tokenizer, ["a"], [], ["b"], 10), ValueError,
                        "1 captions, 0 histories")


@pytest.mark.parametrize(("recipe", "task_class"), [("blip/visual_dialog_visdial", VisualDialogTask),
                                                    ("blip/video_dialog_avsd", VideoDialogTask)])
def test_recipes_build_the_tasks(processor, recipe: str, task_class: type) -> None:
    from vl_hub.recipes import validate_recipe

    args = validate_recipe(recipe)
    assert get_task(args.task) is task_class
    task = task_class(vqa_model(), processor, **args.task_options)
    assert task.max_txt_len == 64
