"""BLIP captioning (``BlipForConditionalGeneration``): LAVIS ``blip_caption`` parity (one test per output), the
generation machinery on a tiny random model (cache == recompute, image keys/values projected once per call, the
LAVIS beam search), the model tester, a few ``transformers.Trainer`` steps and clear errors for bad input.

VQA (``BlipForQuestionAnswering``) is tested in ``test_blip_vqa.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from transformers import (
    AutoModelForImageTextToText,
    BertTokenizer,
    Trainer,
    TrainingArguments,
)

from tests.common.model_tester import ModelTesterMixin, assert_raises_clear
from tests.models.blip.reference_utils import load_blip_reference, tiny_blip_config
from vl_hub._registration import register_all
from vl_hub.layers.med import MedCache
from vl_hub.models.blip.configuration_blip import BlipConfig
from vl_hub.models.blip.modeling_blip_generation import (
    BlipForConditionalGeneration,
    caption_labels,
    caption_prompt_ids,
    lavis_beam_search,
)

ATOL = 1e-4
PAD, CLS, SEP, DEC = 0, 2, 3, 230
PROMPT = "a picture of "

register_all()


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny tensors: intra-op threads only add synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blip_tokenizer(fixtures_dir: Path) -> BertTokenizer:
    """The fixtures' 230-token BERT vocab + LAVIS's ``[DEC]`` (bos, 230) and ``[ENC]`` (231)."""
    tokenizer = BertTokenizer(str(fixtures_dir / "bert_vocab.txt"), do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def randomize(model: torch.nn.Module, seed: int, sep_bias: float = 2.0, scale: float = 0.3) -> torch.nn.Module:
    """Large random weights so tokens differ between steps and beams; a [SEP] bias so some sequences end early."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
        model.text_decoder.cls.predictions.bias[SEP] += sep_bias
    return model.eval()


def tiny_captioner(seed: int = 0, **overrides: Any) -> BlipForConditionalGeneration:
    torch.manual_seed(seed)
    config = tiny_blip_config(prompt_input_ids=[DEC, 16, 74, 19], **overrides)
    return randomize(BlipForConditionalGeneration(config), seed)


def images(batch: int, seed: int = 0, frames: int | None = None) -> torch.Tensor:
    shape = (batch, 3, 32, 32) if frames is None else (batch, frames, 3, 32, 32)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------- LAVIS parity
@pytest.fixture(scope="module")
def caption_reference(reference_dir: Path, fixtures_dir: Path):
    tokenizer = blip_tokenizer(fixtures_dir)
    prompt_ids = caption_prompt_ids(tokenizer, PROMPT)
    model, ref = load_blip_reference(reference_dir, "blip_caption", BlipForConditionalGeneration,
                                     prompt_input_ids=prompt_ids)
    gen = ref.meta["generation"]
    with torch.no_grad():
        forward = model(
            ref.inp("image"), ref.inp("decoder_input_ids"), ref.inp("decoder_attention_mask"), return_loss=True
        )
        greedy = model.generate(ref.inp("image"), num_beams=gen["num_beams_greedy"], max_length=gen["max_length"],
                                min_length=gen["min_length"])
        beam3 = model.generate(ref.inp("image"), num_beams=gen["num_beams_beam"], max_length=gen["max_length"],
                               min_length=gen["min_length"])
    return model, ref, tokenizer, forward, greedy, beam3


def test_caption_parity_image_embeds(caption_reference) -> None:
    _, ref, _, forward, _, _ = caption_reference
    torch.testing.assert_close(forward.image_embeds, ref.out("image_embeds"), atol=ATOL, rtol=0)


def test_caption_parity_decoder_logits(caption_reference) -> None:
    _, ref, _, forward, _, _ = caption_reference
    torch.testing.assert_close(forward.logits, ref.out("decoder_logits"), atol=ATOL, rtol=0)


def test_caption_parity_decoder_labels(caption_reference) -> None:
    model, ref, _, forward, _, _ = caption_reference
    assert model.prompt_length == ref.meta["construction"]["prompt_length"] == 4
    assert torch.equal(forward.labels, ref.out("decoder_labels"))
    assert torch.equal(caption_labels(ref.inp("decoder_input_ids"), 4, PAD), ref.out("decoder_labels"))


def test_caption_parity_loss(caption_reference) -> None:
    _, ref, _, forward, _, _ = caption_reference
    torch.testing.assert_close(forward.loss, ref.out("loss"), atol=ATOL, rtol=0)


def test_caption_parity_forward_replaces_cls_by_dec(caption_reference) -> None:
    """The tokenizer gives [CLS] first; the head puts [DEC] there itself, as LAVIS's forward_decoder."""
    model, ref, tokenizer, forward, _, _ = caption_reference
    tokens = tokenizer(ref.meta["inputs"]["text_input_strings"], padding="longest", return_tensors="pt")
    assert torch.equal(tokens.input_ids[:, 1:], ref.inp("decoder_input_ids")[:, 1:])
    with torch.no_grad():
        out = model(ref.inp("image"), tokens.input_ids, tokens.attention_mask, return_loss=True)
    torch.testing.assert_close(out.logits, forward.logits, atol=0, rtol=0)
    torch.testing.assert_close(out.loss, forward.loss, atol=0, rtol=0)


def test_caption_parity_generate_prompt_ids(caption_reference) -> None:
    model, ref, tokenizer, _, _, _ = caption_reference
    expected = ref.out("generate_prompt_ids")
    assert caption_prompt_ids(tokenizer, PROMPT) == expected[0].tolist()
    assert model.prompt_ids == expected[0].tolist()
    prompt, mask = model._prompt(2, None, None, torch.device("cpu"))
    assert torch.equal(prompt, expected) and mask is None
    # the tokenizer's form of the prompt ([CLS] ... [SEP]) becomes the same decoder prompt
    tokens = tokenizer([PROMPT] * 2, return_tensors="pt")
    prompt, _ = model._prompt(2, tokens.input_ids, tokens.attention_mask, torch.device("cpu"))
    assert torch.equal(prompt, expected)


def test_caption_parity_greedy_ids(caption_reference) -> None:
    _, ref, _, _, greedy, _ = caption_reference
    assert torch.equal(greedy, ref.out("greedy_ids")), (greedy, ref.out("greedy_ids"))


def test_caption_parity_beam3_ids(caption_reference) -> None:
    _, ref, _, _, _, beam3 = caption_reference
    assert torch.equal(beam3, ref.out("beam3_ids")), (beam3, ref.out("beam3_ids"))


def test_caption_parity_decoded_captions(caption_reference) -> None:
    model, ref, tokenizer, _, _, _ = caption_reference
    gen = ref.meta["generation"]
    kwargs = {"max_length": gen["max_length"], "min_length": gen["min_length"]}
    assert model.caption(ref.inp("image"), tokenizer, num_beams=1, **kwargs) == ref.meta["outputs"]["greedy_captions"]
    assert model.caption(ref.inp("image"), tokenizer, num_beams=3, **kwargs) == ref.meta["outputs"]["beam3_captions"]


def test_caption_generate_from_tokenizer_prompt_equals_default(caption_reference) -> None:
    model, ref, tokenizer, _, greedy, _ = caption_reference
    tokens = tokenizer([PROMPT] * 2, return_tensors="pt")
    ids = model.generate(ref.inp("image"), tokens.input_ids, tokens.attention_mask, num_beams=1, max_length=12,
                         min_length=5)
    assert torch.equal(ids, greedy)


def test_transformers_beam_search_is_not_lavis(caption_reference) -> None:
    """Why the LAVIS beam search exists: transformers 5 normalises finished beams by the generated length."""
    model, ref, _, _, _, beam3 = caption_reference
    ids = model.generate(ref.inp("image"), num_beams=3, max_length=12, min_length=5, beam_search="transformers")
    assert not torch.equal(ids, beam3)
    assert_raises_clear(lambda: model.generate(ref.inp("image"), beam_search="hf"), ValueError, "beam_search")


# ------------------------------------------------------------------------------------------------ generation
GENERATION_MODES = {
    "greedy": {"num_beams": 1, "do_sample": False},
    "beam3": {"num_beams": 3, "do_sample": False},
    "nucleus": {"num_beams": 1, "do_sample": True},
}


@pytest.mark.parametrize("mode", sorted(GENERATION_MODES))
def test_generate_with_cache_equals_without(mode: str) -> None:
    model = tiny_captioner(seed=2, sep_bias=3.0)  # 2 of 3 captions end before max_length in every mode
    pixels = images(3)
    outputs = []
    for use_cache in (True, False):
        torch.manual_seed(123)
        outputs.append(model.generate(pixels, max_length=14, min_length=6, use_cache=use_cache,
                                      **GENERATION_MODES[mode]))
    cached, full = outputs
    assert torch.equal(cached, full), (cached, full)
    assert torch.equal(cached[:, :4], torch.tensor([[DEC, 16, 74, 19]] * 3))
    ended = (cached == SEP).any(1)
    assert ended.any() and not ended.all(), "the eos/pad path is not exercised"
    first_eos = torch.where(cached == SEP, torch.arange(cached.shape[1]), cached.shape[1]).min(1).values
    assert torch.all(first_eos[ended] >= 5)  # min_length=6 counts the prompt
    for row, pos in zip(cached[ended], first_eos[ended]):
        assert torch.all(row[pos + 1 :] == PAD)


def test_incremental_cached_logits_equal_full_recompute() -> None:
    model = tiny_captioner(seed=1)
    pixels = images(2, seed=1)
    ids = torch.randint(4, 230, (2, 9), generator=torch.Generator().manual_seed(2))
    ids[:, 0] = DEC
    with torch.no_grad():
        full = model(pixels, ids).logits
        step = model(pixels, ids[:, :4], use_cache=True)
        cache, pieces = step.cache, [step.logits]
        assert isinstance(cache, MedCache)
        for start, stop in [(4, 5), (5, 7), (7, 8), (8, 9)]:
            step = model(input_ids=ids[:, start:stop], image_embeds=step.image_embeds, cache=cache, use_cache=True)
            pieces.append(step.logits)
    # logits reach |20| with these weights: float32 summation order differs between the two paths
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-4, rtol=0)


def _count_calls(modules: list[torch.nn.Module]) -> list[int]:
    counts = [0] * len(modules)
    for i, module in enumerate(modules):
        module.register_forward_hook(lambda *_, i=i: counts.__setitem__(i, counts[i] + 1))
    return counts


@pytest.mark.parametrize("num_beams", [1, 3])
def test_image_keys_values_projected_once_per_generate_call(num_beams: int) -> None:
    model = tiny_captioner(sep_bias=-20.0)  # no early end: every call runs max_length - prompt steps
    cross = [layer.crossattention.self for layer in model.text_decoder.bert.encoder.layer]
    counts = _count_calls([m.key for m in cross] + [m.value for m in cross] + [model.visual_encoder])
    rows: list[int] = []
    cross[0].key.register_forward_hook(lambda _m, args, _out: rows.append(args[0].shape[0]))
    pixels = images(2)
    for use_cache, expected in ((True, 1), (False, 10 - 4)):
        counts[:] = [0] * len(counts)
        rows.clear()
        ids = model.generate(pixels, num_beams=num_beams, max_length=10, min_length=10, use_cache=use_cache)
        assert ids.shape == (2, 10)
        assert counts[:-1] == [expected] * (len(counts) - 1), (use_cache, counts)
        assert counts[-1] == 1  # the images are encoded once, before the decoding loop
        # with the cache, the beam copies of an image share one projection (the cache is repeated per beam)
        assert rows == ([2] if use_cache else [2 * num_beams] * expected), rows


def test_beam_search_returns_the_best_hypotheses_in_order() -> None:
    model = tiny_captioner(seed=3)
    pixels = images(2, seed=3)
    best = model.generate(pixels, num_beams=4, max_length=12, min_length=5)
    out = model.generate(pixels, num_beams=4, max_length=12, min_length=5, num_return_sequences=3,
                         return_dict_in_generate=True)
    assert out.sequences.shape[0] == 6
    scores = out.sequences_scores.view(2, 3)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    assert torch.equal(out.sequences[::3, : best.shape[1]], best)


def test_lavis_beam_search_scores_finished_beams_like_transformers_4_26() -> None:
    """Hand-checkable case: the returned score of each hypothesis is its summed log-probability over the
    generated tokens divided by its length as 4.26 counted it (prompt included, [SEP] excluded)."""
    model = tiny_captioner(seed=4)
    pixels = images(1, seed=4)
    out = model.generate(pixels, num_beams=3, max_length=10, min_length=5, num_return_sequences=3,
                         return_dict_in_generate=True, custom_generate=lavis_beam_search)
    for row, score in zip(out.sequences, out.sequences_scores):
        ended = (row == SEP).nonzero()
        length = int(ended[0]) if len(ended) else row.shape[0]
        ids = row[: length + (1 if len(ended) else 0)].unsqueeze(0)
        with torch.no_grad():
            logp = model(pixels, ids[:, :-1]).logits.log_softmax(-1)
        token_logp = logp[0, 3:].gather(1, ids[0, 4:, None]).sum()  # generated tokens (and [SEP]) after the prompt
        torch.testing.assert_close(score, token_logp / length, atol=1e-4, rtol=0)


def test_nucleus_sampling_uses_lavis_defaults() -> None:
    model = tiny_captioner(seed=5)
    pixels = images(2, seed=5)
    runs = []
    for kwargs in ({}, {"top_p": 0.9, "repetition_penalty": 1.1, "top_k": 50}):
        torch.manual_seed(7)
        runs.append(model.generate(pixels, do_sample=True, max_length=14, min_length=6, **kwargs))
    assert torch.equal(runs[0], runs[1])


def test_video_frames_are_encoded_and_concatenated() -> None:
    model = tiny_captioner(seed=6)
    frames = images(2, seed=6, frames=3)
    with torch.no_grad():
        per_frame = model.visual_encoder(frames.flatten(0, 1)).unflatten(0, (2, 3)).flatten(1, 2)
        ids = torch.tensor([[DEC, 16, 74, 19, 31]] * 2)
        video = model(frames, ids)
        manual = model(input_ids=ids, image_embeds=per_frame)
    assert video.image_embeds.shape == (2, 3 * 17, 64)
    torch.testing.assert_close(video.logits, manual.logits, atol=0, rtol=0)
    generated = model.generate(frames, num_beams=3, max_length=10, min_length=5)
    assert torch.equal(generated, model.generate(image_embeds=per_frame, num_beams=3, max_length=10, min_length=5))


# ------------------------------------------------------------------------------------------------ model tester
class TestCaptioningModel(ModelTesterMixin):
    model_class = BlipForConditionalGeneration
    auto_class = AutoModelForImageTextToText
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"logits": (2, 7, 232), "image_embeds": (2, 17, 64)}
    test_generation = True

    def get_config(self) -> BlipConfig:
        return tiny_blip_config(prompt_input_ids=[DEC, 16, 74, 19])

    def build_model(self, seed: int = 0) -> BlipForConditionalGeneration:
        torch.manual_seed(seed)
        # milder weights than the generation tests: the mixin compares SDPA and eager at atol 1e-5
        return randomize(self.model_class(self.get_config()), seed, scale=0.1)

    def get_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        ids = torch.tensor([[CLS, 16, 74, 19, 31, 55, SEP], [CLS, 16, 74, 19, 44, SEP, PAD]])[:batch_size]
        return {"pixel_values": images(batch_size), "input_ids": ids, "attention_mask": (ids != PAD).long()}

    def get_loss_inputs(self, batch_size: int = 2) -> dict[str, Any]:
        return {**self.get_inputs(batch_size), "return_loss": True}

    def generate(self, model: BlipForConditionalGeneration, inputs: dict[str, Any], **kwargs: Any) -> torch.Tensor:
        return model.generate(inputs["pixel_values"], max_length=12, min_length=5, **kwargs)


# ------------------------------------------------------------------------------------------------ training
def test_activation_checkpointing_gives_the_same_gradients() -> None:
    model = tiny_captioner(seed=9).train()
    inputs = TestCaptioningModel().get_loss_inputs(2)

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(**inputs).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.text_decoder.bert.encoder.layer)
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys() and len(plain) == len(list(model.parameters()))
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


class _CaptionBatchDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict[str, torch.Tensor]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def test_a_few_trainer_steps_lower_the_caption_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(tiny_blip_config(prompt_input_ids=[DEC, 16, 74, 19]))
    ids = torch.tensor([[CLS, 16, 74, 19, 31, 55, 70, SEP], [CLS, 16, 74, 19, 44, 90, SEP, PAD]])
    pixels = images(2)
    labels = caption_labels(ids, model.prompt_length, PAD)
    items = [{"pixel_values": pixels[i], "input_ids": ids[i], "attention_mask": (ids[i] != PAD).long(),
              "labels": labels[i]} for i in range(2)]

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(model(pixels, ids, (ids != PAD).long(), labels=labels).loss)

    before = loss()
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=2, learning_rate=1e-3,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    Trainer(model=model, args=args, train_dataset=_CaptionBatchDataset(items)).train()
    after = loss()
    assert after < before - 0.5, (before, after)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def captioner() -> BlipForConditionalGeneration:
    return tiny_captioner(seed=8)


def test_missing_pixel_values_raises(captioner) -> None:
    ids = torch.tensor([[CLS, 16, SEP]])
    assert_raises_clear(lambda: captioner(input_ids=ids), ValueError, "pixel_values is missing")
    assert_raises_clear(lambda: captioner.generate(), ValueError, "pixel_values is missing")


def test_mismatched_batch_sizes_raise(captioner) -> None:
    ids = torch.tensor([[CLS, 16, SEP]] * 3)
    assert_raises_clear(lambda: captioner(images(2), ids), ValueError, "batch sizes differ", "2 images", "3 texts")
    assert_raises_clear(lambda: captioner.generate(images(2), ids), ValueError, "batch sizes differ")


def test_min_length_above_max_length_raises(captioner) -> None:
    assert_raises_clear(lambda: captioner.generate(images(1), max_length=8, min_length=9), ValueError,
                        "min_length=9", "max_length=8")
    assert_raises_clear(lambda: captioner.generate(images(1), max_length=4), ValueError, "max_length=4",
                        "4-token prompt")


def test_text_past_the_position_limit_raises(captioner) -> None:
    long_ids = torch.full((1, 65), 16)
    assert_raises_clear(lambda: captioner(images(1), long_ids), ValueError, "65 tokens", "64 positions")
    assert_raises_clear(lambda: captioner.generate(images(1), max_length=65), ValueError,
                        "max_position_embeddings=64")


def test_labels_of_the_wrong_shape_raise(captioner) -> None:
    ids = torch.tensor([[CLS, 16, 74, SEP]])
    assert_raises_clear(lambda: captioner(images(1), ids, labels=ids[:, :2]), ValueError, "labels (1, 2)")


def test_missing_prompt_ids_raise_with_the_fix() -> None:
    model = BlipForConditionalGeneration(tiny_blip_config())
    assert_raises_clear(lambda: model.generate(images(1)), ValueError, "prompt_input_ids", "caption_prompt_ids")
    empty = BlipForConditionalGeneration(tiny_blip_config(prompt=""))
    assert empty.prompt_ids == [DEC] and empty.prompt_length == 1


def test_captioner_from_a_folder_without_decoder_weights_has_no_meta_tensors(tmp_path: Path) -> None:
    """transformers 5 leaves a tied pair on the meta device when the checkpoint holds neither member (a captioner
    loaded from a BlipModel folder); vl_hub gives them storage, initialises and re-ties them."""
    from vl_hub.models.blip.modeling_blip import BlipModel

    torch.manual_seed(0)
    BlipModel(tiny_blip_config(prompt_input_ids=[DEC, 16, 74, 19])).save_pretrained(tmp_path)
    model = BlipForConditionalGeneration.from_pretrained(tmp_path)
    assert [n for n, t in model.state_dict().items() if t.device.type == "meta"] == []
    decoder = model.text_decoder
    embeddings = decoder.bert.embeddings.word_embeddings.weight
    assert decoder.cls.predictions.decoder.weight is embeddings
    assert decoder.cls.predictions.decoder.bias is decoder.cls.predictions.bias
    assert 0.01 < float(embeddings.std()) < 0.03 and torch.all(embeddings[PAD] == 0)
    assert torch.all(decoder.cls.predictions.bias == 0)
    ids = model.generate(images(1), num_beams=1, max_length=8, min_length=8)
    assert ids.shape == (1, 8)
