"""BLIP VQA (``BlipForQuestionAnswering``): LAVIS ``blip_vqa`` parity (one test per output: question encoding,
answer ranking, answer generation, training loss), ranking with the reused ``[DEC]`` cache == LAVIS's two full
decoder calls, generation cache == recompute, question keys/values projected once per call, video QA, the model
tester and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from transformers import AutoModelForVisualQuestionAnswering

from tests.common.model_tester import ModelTesterMixin, assert_raises_clear
from tests.models.blip.reference_utils import load_blip_reference, tiny_blip_config
from tests.models.blip.test_modeling_blip_generation import (
    _count_calls,
    blip_tokenizer,
    images,
)
from vl_hub._registration import register_all
from vl_hub.auto import AutoModelForVideoQuestionAnswering
from vl_hub.losses.lm import lm_loss
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.modeling_blip_generation import BlipForQuestionAnswering

ATOL = 1e-4
PAD, CLS, SEP, DEC, ENC = 0, 2, 3, 230, 231

register_all()


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize(model: BlipForQuestionAnswering, seed: int, sep_bias: float = 2.0, scale: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
        model.text_decoder.cls.predictions.bias[SEP] += sep_bias
    return model.eval()


def tiny_vqa(seed: int = 0, **kwargs: Any) -> BlipForQuestionAnswering:
    torch.manual_seed(seed)
    return randomize(BlipForQuestionAnswering(tiny_blip_config(num_answer_candidates=4)), seed, **kwargs)


QUESTIONS = torch.tensor([[CLS, 37, 26, 18, 45, SEP], [CLS, 42, 43, 56, SEP, PAD], [CLS, 60, SEP, PAD, PAD, PAD]])
ANSWERS = torch.tensor([[CLS, 156, SEP, PAD], [CLS, 157, SEP, PAD], [CLS, 82, SEP, PAD], [CLS, 16, 165, SEP],
                        [CLS, 55, SEP, PAD], [CLS, 86, 90, SEP]])


# --------------------------------------------------------------------------------------------- LAVIS parity
@pytest.fixture(scope="module")
def vqa_reference(reference_dir: Path, fixtures_dir: Path):
    model, ref = load_blip_reference(reference_dir, "blip_vqa", BlipForQuestionAnswering)
    image, question, mask = ref.inp("image"), ref.inp("question_input_ids"), ref.inp("question_attention_mask")
    tokenizer = blip_tokenizer(fixtures_dir)
    answers = tokenizer(ref.meta["inputs"]["train_answers"], padding="longest", return_tensors="pt")
    with torch.no_grad():
        states, _ = model.encode_question(image, question, mask)
        rank = model.rank_answers(
            image, question, mask, answer_ids=ref.inp("answer_list_ids"),
            answer_attention_mask=ref.inp("answer_list_attention_mask"),
            num_candidates=ref.meta["inputs"]["num_ans_candidates"],
        )
        greedy = model.generate_answers(image, question, mask, num_beams=1, max_length=6, min_length=1)
        beam3 = model.generate_answers(image, question, mask, num_beams=3, max_length=6, min_length=1)
        train = model(
            image, question, mask, answer_input_ids=answers.input_ids, answer_attention_mask=answers.attention_mask,
            answer_weights=ref.inp("train_weight"), n_answers=ref.inp("train_n_answers"),
        )
    return model, ref, states, rank, greedy, beam3, train


def test_vqa_parity_question_states(vqa_reference) -> None:
    ref, states = vqa_reference[1], vqa_reference[2]
    torch.testing.assert_close(states, ref.out("question_states"), atol=ATOL, rtol=0)


def test_vqa_parity_rank_start_logits(vqa_reference) -> None:
    ref, rank = vqa_reference[1], vqa_reference[3]
    torch.testing.assert_close(rank.start_logits, ref.out("rank_start_logits"), atol=ATOL, rtol=0)


def test_vqa_parity_rank_topk_ids(vqa_reference) -> None:
    ref, rank = vqa_reference[1], vqa_reference[3]
    assert torch.equal(rank.topk_ids, ref.out("rank_topk_ids"))


def test_vqa_parity_rank_topk_probs(vqa_reference) -> None:
    ref, rank = vqa_reference[1], vqa_reference[3]
    torch.testing.assert_close(rank.topk_probs, ref.out("rank_topk_probs"), atol=ATOL, rtol=0)


def test_vqa_parity_rank_candidate_input_ids(vqa_reference) -> None:
    ref, rank = vqa_reference[1], vqa_reference[3]
    assert torch.equal(rank.candidate_input_ids.flatten(0, 1), ref.out("rank_candidate_input_ids"))


def test_vqa_parity_rank_candidate_labels(vqa_reference) -> None:
    ref, rank = vqa_reference[1], vqa_reference[3]
    assert torch.equal(rank.candidate_labels.flatten(0, 1), ref.out("rank_candidate_labels"))


def test_vqa_parity_rank_candidate_loss(vqa_reference) -> None:
    ref, rank = vqa_reference[1], vqa_reference[3]
    torch.testing.assert_close(rank.candidate_loss.flatten(), ref.out("rank_candidate_loss"), atol=ATOL, rtol=0)


def test_vqa_parity_rank_pred_index(vqa_reference) -> None:
    ref, rank = vqa_reference[1], vqa_reference[3]
    assert torch.equal(rank.pred_index, ref.out("rank_pred_index"))
    answer_list = ref.meta["inputs"]["answer_list"]
    assert [answer_list[i] for i in rank.pred_index.tolist()] == ref.meta["outputs"]["rank_answers"]


def test_vqa_parity_generate_greedy_ids(vqa_reference) -> None:
    ref, greedy = vqa_reference[1], vqa_reference[4]
    assert torch.equal(greedy, ref.out("generate_greedy_ids")), (greedy, ref.out("generate_greedy_ids"))


def test_vqa_parity_generate_beam3_ids(vqa_reference) -> None:
    ref, beam3 = vqa_reference[1], vqa_reference[5]
    assert torch.equal(beam3, ref.out("generate_beam3_ids")), (beam3, ref.out("generate_beam3_ids"))


def test_vqa_parity_train_answer_ids(vqa_reference) -> None:
    """The tokenizer's [CLS] answers become [DEC] answers inside the head; labels keep them except [PAD]."""
    ref, train = vqa_reference[1], vqa_reference[6]
    assert torch.equal(train.labels.masked_fill(train.labels == -100, PAD), ref.out("train_answer_ids"))
    assert torch.equal(train.labels == -100, ref.out("train_answer_ids") == PAD)


def test_vqa_parity_train_answer_loss_per_seq(vqa_reference) -> None:
    ref, train = vqa_reference[1], vqa_reference[6]
    torch.testing.assert_close(train.answer_loss, ref.out("train_answer_loss_per_seq"), atol=ATOL, rtol=0)


def test_vqa_parity_train_loss(vqa_reference) -> None:
    ref, train = vqa_reference[1], vqa_reference[6]
    torch.testing.assert_close(train.loss, ref.out("train_loss"), atol=ATOL, rtol=0)


def test_vqa_generate_via_generate_alias(vqa_reference) -> None:
    model, ref, _, _, greedy, _, _ = vqa_reference
    ids = model.generate(ref.inp("image"), ref.inp("question_input_ids"), ref.inp("question_attention_mask"),
                         num_beams=1, max_length=6, min_length=1)
    assert torch.equal(ids, greedy)


# ------------------------------------------------------------------------------------------------ ranking
def test_ranking_reusing_the_dec_cache_equals_two_full_decoder_calls() -> None:
    """LAVIS decodes [DEC] + every candidate from scratch for B*k rows; the head reuses the [DEC] step."""
    model = tiny_vqa(seed=1, scale=0.1)
    pixels = images(3, seed=1)
    mask = (QUESTIONS != PAD).long()
    out = model.rank_answers(pixels, QUESTIONS, mask, answer_ids=ANSWERS, num_candidates=4)
    k = 4
    with torch.no_grad():
        states, _ = model.encode_question(pixels, QUESTIONS, mask)
        ids = out.candidate_input_ids.flatten(0, 1)
        full = model.text_decoder(
            input_ids=ids, attention_mask=(ids != PAD).long(),
            encoder_hidden_states=states.repeat_interleave(k, 0), encoder_attention_mask=mask.repeat_interleave(k, 0),
        ).logits
        loss = lm_loss(full, out.candidate_labels.flatten(0, 1), 0.1, reduction="none").view(3, k)
    torch.testing.assert_close(out.candidate_loss, loss, atol=1e-4, rtol=0)
    assert torch.equal(out.pred_index, out.topk_ids.gather(1, loss.argmin(1, keepdim=True)).squeeze(1))
    assert torch.all(out.candidate_input_ids[:, :, 0] == DEC)
    assert out.topk_ids.shape == (3, k) and torch.all(out.topk_probs[:, :-1] >= out.topk_probs[:, 1:])


def test_ranking_keeps_at_most_the_answer_list() -> None:
    model = tiny_vqa(seed=2)
    out = model.rank_answers(images(3), QUESTIONS, answer_ids=ANSWERS[:2], num_candidates=10)
    assert out.topk_ids.shape == (3, 2)
    assert torch.equal(out.topk_ids.sort(1).values, torch.tensor([[0, 1]] * 3))


# ------------------------------------------------------------------------------------------------ generation
GENERATION_MODES = {
    "greedy": {"num_beams": 1, "do_sample": False},
    "beam3": {"num_beams": 3, "do_sample": False},
    "nucleus": {"num_beams": 1, "do_sample": True},
}


@pytest.mark.parametrize("mode", sorted(GENERATION_MODES))
def test_generate_answers_with_cache_equals_without(mode: str) -> None:
    model = tiny_vqa(seed=1, sep_bias=8.0)  # some answers end before max_length in every mode
    pixels = images(3, seed=3)
    outputs = []
    for use_cache in (True, False):
        torch.manual_seed(123)
        outputs.append(model.generate_answers(pixels, QUESTIONS, (QUESTIONS != PAD).long(), max_length=9,
                                              min_length=2, use_cache=use_cache, **GENERATION_MODES[mode]))
    cached, full = outputs
    assert torch.equal(cached, full), (cached, full)
    assert torch.all(cached[:, 0] == DEC) and cached.shape[1] <= 9
    assert not torch.any(cached[:, 1] == SEP)  # min_length=2 counts [DEC]
    ended = (cached == SEP).any(1)
    assert ended.any() and not ended.all(), "the eos/pad path is not exercised"
    for row in cached[ended]:
        eos = int((row == SEP).nonzero()[0])
        assert torch.all(row[eos + 1 :] == PAD)


def test_question_keys_values_projected_once_per_generate_call() -> None:
    model = tiny_vqa(seed=4, sep_bias=-20.0)
    cross = [layer.crossattention.self for layer in model.text_decoder.bert.encoder.layer]
    counts = _count_calls([m.key for m in cross] + [m.value for m in cross])
    for num_beams in (1, 3):
        for use_cache, expected in ((True, 1), (False, 6 - 1)):
            counts[:] = [0] * len(counts)
            ids = model.generate_answers(images(2), QUESTIONS[:2], num_beams=num_beams, max_length=6, min_length=6,
                                         use_cache=use_cache)
            assert ids.shape == (2, 6)
            assert counts == [expected] * len(counts), (num_beams, use_cache, counts)


def test_generate_mode_attends_padded_question_positions_as_lavis() -> None:
    """LAVIS's generate mode passes an all-ones cross-attention mask: the padded question tokens matter."""
    model = tiny_vqa(seed=5)
    pixels = images(3, seed=5)
    mask = (QUESTIONS != PAD).long()
    with torch.no_grad():
        states, _ = model.encode_question(pixels, QUESTIONS, mask)
        bos = torch.full((3, 1), DEC)
        ones = model(decoder_input_ids=bos, question_states=states).logits
        masked = model(decoder_input_ids=bos, question_states=states, question_attention_mask=mask).logits
        first = model.generate_answers(question_states=states, num_beams=1, max_length=2, min_length=1,
                                       return_dict_in_generate=True, output_logits=True).logits[0]
    torch.testing.assert_close(first, ones[:, -1], atol=1e-5, rtol=0)
    assert (ones[2] - masked[2]).abs().max() > 1e-3  # row 2 has padding; rows without padding agree
    torch.testing.assert_close(ones[0], masked[0], atol=1e-5, rtol=0)


def test_video_question_answering() -> None:
    model = tiny_vqa(seed=6)
    frames = images(3, seed=6, frames=2)
    with torch.no_grad():
        per_frame = model.visual_encoder(frames.flatten(0, 1)).unflatten(0, (3, 2)).flatten(1, 2)
        states, embeds = model.encode_question(frames, QUESTIONS)
        manual, _ = model.encode_question(input_ids=QUESTIONS, image_embeds=per_frame)
    assert embeds.shape == (3, 2 * 17, 64)
    torch.testing.assert_close(states, manual, atol=0, rtol=0)
    assert model.rank_answers(frames, QUESTIONS, answer_ids=ANSWERS).pred_index.shape == (3,)
    assert model.generate_answers(frames, QUESTIONS, max_length=5).shape[0] == 3
    register_all()
    assert AutoModelForVideoQuestionAnswering._model_mapping[BlipConfig] is BlipForQuestionAnswering


# ------------------------------------------------------------------------------------------------ model tester
class TestQuestionAnsweringModel(ModelTesterMixin):
    model_class = BlipForQuestionAnswering
    auto_class = AutoModelForVisualQuestionAnswering
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "logits": (2, 4, 232), "question_states": (2, 6, 64), "image_embeds": (2, 17, 64),
    }

    def get_config(self) -> BlipConfig:
        return tiny_blip_config(num_answer_candidates=3)

    def build_model(self, seed: int = 0) -> BlipForQuestionAnswering:
        torch.manual_seed(seed)
        return randomize(self.model_class(self.get_config()), seed, scale=0.1)

    def get_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        """Question + one answer per question decoded with ``decoder_input_ids`` (question mask for the decoder)."""
        questions = QUESTIONS[:batch_size]
        answers = ANSWERS[[0, 3]][:batch_size]
        mask = (questions != PAD).long()
        return {"pixel_values": images(batch_size), "input_ids": questions, "attention_mask": mask,
                "decoder_input_ids": answers, "decoder_attention_mask": (answers != PAD).long()}

    def get_loss_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        questions = QUESTIONS[:batch_size]
        answers = ANSWERS[: batch_size + 1]
        return {"pixel_values": images(batch_size), "input_ids": questions, "attention_mask": (questions != PAD).long(),
                "answer_input_ids": answers, "answer_attention_mask": (answers != PAD).long(),
                "answer_weights": torch.tensor([0.7, 0.3, 1.0])[: batch_size + 1],
                "n_answers": torch.tensor([2, 1])[:batch_size] if batch_size == 2 else torch.tensor([2])}


def test_training_loss_weights_and_repeats_questions_per_answer() -> None:
    """Hand-computed: each answer decoded against its own question, weighted, summed, divided by the batch."""
    model = tiny_vqa(seed=7, scale=0.1)
    pixels, questions = images(2, seed=7), QUESTIONS[:2]
    answers, weights = ANSWERS[:3], torch.tensor([0.5, 2.0, 1.0])
    out = model(pixels, questions, answer_input_ids=answers, answer_weights=weights, n_answers=torch.tensor([1, 2]))
    singles = []
    for a, q in ((0, 0), (1, 1), (2, 1)):
        o = model(pixels[q : q + 1], questions[q : q + 1], answer_input_ids=answers[a : a + 1])
        singles.append(o.answer_loss)
    singles = torch.cat(singles)
    torch.testing.assert_close(out.answer_loss, singles, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, (weights * singles).sum() / 2, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def vqa() -> BlipForQuestionAnswering:
    return tiny_vqa(seed=8)


def test_missing_pixel_values_raises(vqa) -> None:
    assert_raises_clear(lambda: vqa(input_ids=QUESTIONS), ValueError, "pixel_values is missing")
    assert_raises_clear(lambda: vqa.generate_answers(input_ids=QUESTIONS), ValueError, "pixel_values is missing")


def test_missing_question_raises(vqa) -> None:
    assert_raises_clear(lambda: vqa(images(3)), ValueError, "input_ids is missing")


def test_mismatched_batch_sizes_raise(vqa) -> None:
    assert_raises_clear(lambda: vqa.rank_answers(images(2), QUESTIONS, answer_ids=ANSWERS), ValueError,
                        "batch sizes differ", "2 images", "3 texts")


def test_answers_that_do_not_match_n_answers_raise(vqa) -> None:
    kwargs = {"answer_input_ids": ANSWERS[:4]}
    assert_raises_clear(lambda: vqa(images(3), QUESTIONS, **kwargs), ValueError, "4 answers for 3 questions",
                        "n_answers")
    assert_raises_clear(lambda: vqa(images(3), QUESTIONS, n_answers=torch.tensor([1, 1, 1]), **kwargs), ValueError,
                        "sum to the 4 rows")
    assert_raises_clear(lambda: vqa(images(3), QUESTIONS, n_answers=torch.tensor([2, 1, 1]),
                                    answer_weights=torch.ones(3), **kwargs), ValueError, "answer_weights", "(4,)")


def test_min_length_above_max_length_raises(vqa) -> None:
    assert_raises_clear(lambda: vqa.generate_answers(images(3), QUESTIONS, max_length=3, min_length=4), ValueError,
                        "min_length=4", "max_length=3")


def test_question_past_the_position_limit_raises(vqa) -> None:
    assert_raises_clear(lambda: vqa(images(1), torch.full((1, 70), 16)), ValueError, "70 tokens", "64 positions")


def test_bad_answer_list_raises(vqa) -> None:
    assert_raises_clear(lambda: vqa.rank_answers(images(3), QUESTIONS), ValueError, "answer_ids must be")
    assert_raises_clear(lambda: vqa.rank_answers(images(3), QUESTIONS, answer_ids=ANSWERS, num_candidates=0),
                        ValueError, "num_candidates must be >= 1")
