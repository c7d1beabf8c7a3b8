"""ALBEF VQA: ``AlbefForQuestionAnswering`` -- LAVIS answer-ranking parity per output, generation, the training loss
with and without momentum distillation, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForVisualQuestionAnswering

from tests.common.model_tester import ModelTesterMixin, assert_raises_clear
from tests.models.albef.reference_utils import load_albef_reference, tiny_albef_config
from vl_hub.losses import lm_loss
from vl_hub.models.albef.modeling_albef_generation import AlbefForQuestionAnswering

ATOL = 1e-4


# ---------------------------------------------------------------------------------------------- LAVIS parity
@pytest.fixture(scope="module")
def vqa_reference(reference_dir: Path):
    model, ref = load_albef_reference(reference_dir, "albef_vqa", AlbefForQuestionAnswering)
    k = ref.meta["inputs"]["num_ans_candidates"]
    with torch.no_grad():
        out = model.rank_answers(
            ref.inp("image"), ref.inp("question_input_ids"), ref.inp("question_attention_mask"),
            answer_ids=ref.inp("answer_list_ids"), answer_attention_mask=ref.inp("answer_list_attention_mask"),
            num_candidates=k,
        )
    return model, ref, out


def test_vqa_reference_architecture(vqa_reference) -> None:
    model, _, _ = vqa_reference
    decoder = model.text_decoder.bert.encoder.layer
    assert len(decoder) == 2 and all(layer.crossattention is not None for layer in decoder)
    assert model.text_decoder.cls.predictions.decoder.weight is model.text_decoder.bert.embeddings.word_embeddings.weight
    assert model.text_decoder.bert.settings.encoder_width == model.config.text_config.hidden_size


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("question_states", "question_states"),
        ("rank_start_logits", "start_logits"),
        ("rank_topk_probs", "topk_probs"),
    ],
)
def test_vqa_parity_float_outputs(vqa_reference, name: str, field: str) -> None:
    _, ref, out = vqa_reference
    torch.testing.assert_close(out[field], ref.out(name), atol=ATOL, rtol=0)


def test_vqa_parity_rank_candidate_loss(vqa_reference) -> None:
    _, ref, out = vqa_reference
    torch.testing.assert_close(out.candidate_loss.flatten(), ref.out("rank_candidate_loss"), atol=ATOL, rtol=0)


def test_vqa_parity_rank_topk_ids(vqa_reference) -> None:
    _, ref, out = vqa_reference
    assert torch.equal(out.topk_ids, ref.out("rank_topk_ids"))


def test_vqa_parity_rank_candidate_input_ids(vqa_reference) -> None:
    _, ref, out = vqa_reference
    assert torch.equal(out.candidate_input_ids.flatten(0, 1), ref.out("rank_candidate_input_ids"))


def test_vqa_parity_rank_candidate_labels(vqa_reference) -> None:
    _, ref, out = vqa_reference
    assert torch.equal(out.candidate_labels.flatten(0, 1), ref.out("rank_candidate_labels"))


def test_vqa_parity_rank_pred_index(vqa_reference) -> None:
    _, ref, out = vqa_reference
    assert torch.equal(out.pred_index, ref.out("rank_pred_index"))
    answers = [ref.meta["inputs"]["answer_list"][i] for i in out.pred_index.tolist()]
    assert answers == ref.meta["outputs"]["rank_answers"]


def test_vqa_rank_from_precomputed_question_states(vqa_reference) -> None:
    model, ref, out = vqa_reference
    with torch.no_grad():
        again = model.rank_answers(
            question_states=out.question_states, attention_mask=ref.inp("question_attention_mask"),
            answer_ids=ref.inp("answer_list_ids"), num_candidates=3,
        )
    torch.testing.assert_close(again.candidate_loss, out.candidate_loss, atol=1e-6, rtol=0)
    assert torch.equal(again.pred_index, out.pred_index)


# ---------------------------------------------------------------------------------------------- tiny models
def make_questions(batch_size: int = 2, length: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch_size, 3, 32, 32, generator=g)
    input_ids = torch.randint(5, 230, (batch_size, length), generator=g)
    input_ids[:, 0] = 2
    input_ids[:, -1] = 3
    attention_mask = torch.ones_like(input_ids)
    if batch_size > 1:
        input_ids[1, length - 2 :] = torch.tensor([3, 0])
        attention_mask[1, length - 1 :] = 0
    return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}


def make_answers(count: int, seed: int = 5) -> dict[str, torch.Tensor]:
    """``[CLS] a (b) [SEP] [PAD]?`` answers of 1-2 words."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 230, (count, 4), generator=g)
    ids[:, 0] = 2
    ids[:, 3] = 3
    mask = torch.ones_like(ids)
    ids[::2, 2:] = torch.tensor([3, 0])  # every other answer has one word
    mask[::2, 3] = 0
    return {"answer_input_ids": ids, "answer_attention_mask": mask}


def training_batch(batch_size: int = 2) -> dict[str, torch.Tensor]:
    """Question b has b + 1 answers (weights summing to 1 per question, as VQA v2's)."""
    n_answers = torch.arange(1, batch_size + 1)
    weights = torch.cat([torch.full((int(n),), 1.0 / int(n)) for n in n_answers])
    return {**make_questions(batch_size), **make_answers(int(n_answers.sum())), "n_answers": n_answers,
            "answer_weights": weights}


def tiny_vqa(seed: int = 0, **overrides) -> AlbefForQuestionAnswering:
    torch.manual_seed(seed)
    return AlbefForQuestionAnswering(tiny_albef_config(**overrides)).eval()


class TestAlbefForQuestionAnswering(ModelTesterMixin):
    model_class = AlbefForQuestionAnswering
    auto_class = AutoModelForVisualQuestionAnswering
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"question_states": (2, 6, 64), "image_embeds": (2, 17, 64)}
    test_generation = True

    def get_config(self):
        return tiny_albef_config()

    def get_inputs(self, batch_size: int = 2):
        return make_questions(batch_size)

    def get_loss_inputs(self, batch_size: int = 2):
        return training_batch(batch_size)


def test_training_loss_is_the_weighted_label_smoothed_answer_loss() -> None:
    model = tiny_vqa()
    batch = training_batch(2)
    with torch.no_grad():
        out = model(**batch)
        states = out.question_states.repeat_interleave(batch["n_answers"], dim=0)
        mask = batch["attention_mask"].repeat_interleave(batch["n_answers"], dim=0)
        logits = model.text_decoder(
            input_ids=batch["answer_input_ids"], attention_mask=batch["answer_attention_mask"],
            encoder_hidden_states=states, encoder_attention_mask=mask, is_decoder=True,
        ).logits
    labels = batch["answer_input_ids"].masked_fill(batch["answer_input_ids"] == 0, -100)
    assert torch.equal(out.labels, labels) and out.labels[0, 0] == 2  # [CLS] stays the start token
    per_answer = lm_loss(logits, labels, 0.1, reduction="none")
    torch.testing.assert_close(out.answer_loss, per_answer, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, (batch["answer_weights"] * per_answer).sum() / 2, atol=1e-5, rtol=0)


def test_distilled_training_loss_by_hand() -> None:
    """LAVIS AlbefVQA.forward with use_distill: EMA step, then (1 - alpha) CE_0.1 + alpha * the soft-target loss of
    the momentum decoder over the answer tokens, weighted and averaged over the questions."""
    model = tiny_vqa(use_distill=True, momentum=0.5)
    with torch.no_grad():
        for _, param, _ in model.named_momentum_parameter_pairs():
            param.add_(0.05 * torch.randn_like(param))
    online = {n: p.detach().clone() for n, p, _ in model.named_momentum_parameter_pairs()}
    before_m = {n: p.detach().clone() for n, _, p in model.named_momentum_parameter_pairs()}
    batch = training_batch(2)
    model.train()
    out = model(**batch, alpha=0.25)
    for name, _, param_m in model.named_momentum_parameter_pairs():
        torch.testing.assert_close(param_m, 0.5 * before_m[name] + 0.5 * online[name], atol=1e-6, rtol=0)
    model.eval()
    n = batch["n_answers"]
    with torch.no_grad():
        states_m = model.text_encoder_m(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            encoder_hidden_states=model.visual_encoder_m(batch["pixel_values"]), mode="multimodal",
        ).last_hidden_state.repeat_interleave(n, dim=0)
        logits_m = model.text_decoder_m(
            input_ids=batch["answer_input_ids"], attention_mask=batch["answer_attention_mask"],
            encoder_hidden_states=states_m, encoder_attention_mask=batch["attention_mask"].repeat_interleave(n, 0),
            is_decoder=True,
        ).logits
        plain = model(**batch)
    logits = plain.logits
    ce = lm_loss(logits, plain.labels, 0.1, reduction="none")
    soft = F.softmax(logits_m[:, :-1], dim=-1)
    distill = (-(logits[:, :-1].log_softmax(-1) * soft).sum(-1) * (plain.labels[:, 1:] != -100)).sum(1)
    expected = 0.75 * ce + 0.25 * distill
    torch.testing.assert_close(out.answer_loss, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, (batch["answer_weights"] * expected).sum() / 2, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.answer_loss, ce, atol=1e-5, rtol=0)  # eval mode: no distillation


@pytest.mark.parametrize("use_distill", [False, True])
def test_training_lowers_the_answer_loss(use_distill: bool) -> None:
    model = tiny_vqa(use_distill=use_distill)
    batch = training_batch(3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return model(**batch).loss.item()

    before = eval_loss()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(10):
        loss = model(**batch, alpha=0.4).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss()
    assert after < 0.6 * before, (before, after)


def test_ranking_picks_the_lowest_loss_candidate_and_matches_full_decoding() -> None:
    model = tiny_vqa()
    questions = make_questions(2)
    answers = make_answers(5)
    with torch.no_grad():
        out = model.rank_answers(**questions, answer_ids=answers["answer_input_ids"],
                                 answer_attention_mask=answers["answer_attention_mask"], num_candidates=3)
        # recompute every candidate's loss without the cache
        states = out.question_states.repeat_interleave(3, dim=0)
        cand = out.candidate_input_ids.flatten(0, 1)
        logits = model.text_decoder(
            input_ids=cand, attention_mask=answers["answer_attention_mask"][out.topk_ids].flatten(0, 1),
            encoder_hidden_states=states,
            encoder_attention_mask=questions["attention_mask"].repeat_interleave(3, dim=0), is_decoder=True,
        ).logits
    full = lm_loss(logits, out.candidate_labels.flatten(0, 1), 0.1, reduction="none").view(2, 3)
    torch.testing.assert_close(out.candidate_loss, full, atol=1e-5, rtol=0)
    assert torch.equal(out.pred_index, out.topk_ids.gather(1, full.argmin(1, keepdim=True)).squeeze(1))


def test_generation_starts_with_cls_and_stops_at_sep() -> None:
    model = tiny_vqa()
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[3] += 6.0  # make [SEP] likely so that answers end early
    questions = make_questions(2)
    for beams in (1, 3):
        ids = model.generate_answers(**questions, num_beams=beams, max_length=6)
        assert ids.shape[0] == 2 and (ids[:, 0] == 2).all() and ids.shape[1] <= 6
        assert (ids == 3).any(dim=1).all()
    greedy = model.generate_answers(**questions, num_beams=1, max_length=6)
    with torch.no_grad():  # greedy by hand from the question states
        states = model.encode_question(**questions)[0]
        ids = torch.full((2, 1), 2)
        for _ in range(greedy.shape[1] - 1):
            logits = model(decoder_input_ids=ids, question_states=states,
                           question_attention_mask=questions["attention_mask"]).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    done = torch.cumsum(ids == 3, dim=1) - (ids == 3).long() > 0  # positions after [SEP] are [PAD] in generate
    assert torch.equal(greedy, ids.masked_fill(done, 0))


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors() -> None:
    model = tiny_vqa()
    questions = make_questions(2)
    answers = make_answers(3)
    assert_raises_clear(lambda: model(**questions, **answers), ValueError, "3 answers for 2 questions", "n_answers")
    assert_raises_clear(lambda: model(**questions, **answers, n_answers=torch.tensor([1, 1])), ValueError, "sum to the 3")
    assert_raises_clear(
        lambda: model(**questions, **answers, n_answers=torch.tensor([1, 2]), answer_weights=torch.ones(2)),
        ValueError, "answer_weights must have shape (3,)",
    )
    bad_start = answers["answer_input_ids"].clone()
    bad_start[1, 0] = 7
    assert_raises_clear(lambda: model.rank_answers(**questions, answer_ids=bad_start), ValueError, "same token", "[CLS]")
    assert_raises_clear(lambda: model.rank_answers(**questions, answer_ids=answers["answer_input_ids"][:, :1]),
                        ValueError, "length >= 2")
    assert_raises_clear(lambda: model.rank_answers(**questions), ValueError, "answer_ids must be")
    assert_raises_clear(
        lambda: model.rank_answers(**questions, answer_ids=answers["answer_input_ids"], num_candidates=0),
        ValueError, "num_candidates must be >= 1",
    )
    assert_raises_clear(lambda: model(input_ids=questions["input_ids"]), ValueError, "pixel_values is missing")
    assert_raises_clear(lambda: model(questions["pixel_values"]), ValueError, "input_ids is missing")
    assert_raises_clear(lambda: model(questions["pixel_values"], make_questions(3)["input_ids"]), ValueError,
                        "batch sizes differ")
    assert_raises_clear(lambda: model.generate_answers(**questions, max_length=1), ValueError, "max_length=1")
    assert_raises_clear(lambda: model(question_states=torch.zeros(2, 4, 32)), ValueError, "question_states must be")


def test_distilled_head_round_trips_with_its_momentum_decoder(tmp_path: Path) -> None:
    model = tiny_vqa(use_distill=True)
    with torch.no_grad():
        model.text_decoder_m.cls.predictions.bias.add_(1.0)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForVisualQuestionAnswering.from_pretrained(tmp_path).eval()
    head_m = loaded.text_decoder_m.cls.predictions
    assert head_m.decoder.weight is loaded.text_decoder_m.bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(head_m.bias, model.text_decoder_m.cls.predictions.bias, atol=0, rtol=0)
    assert not any(p.requires_grad for _, _, p in loaded.named_momentum_parameter_pairs())
    questions = make_questions(2)
    answers = make_answers(4)
    with torch.no_grad():
        a = model.rank_answers(**questions, answer_ids=answers["answer_input_ids"], num_candidates=2)
        b = loaded.rank_answers(**questions, answer_ids=answers["answer_input_ids"], num_candidates=2)
    torch.testing.assert_close(a.candidate_loss, b.candidate_loss, atol=0, rtol=0)
