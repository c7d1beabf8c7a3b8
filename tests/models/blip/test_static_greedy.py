"""The static greedy decoder (``vl_hub.layers.med_greedy``) behind ``BlipForConditionalGeneration.generate`` for
plain greedy calls: the same ids as ``GenerationMixin.generate`` (early ends, ``min_length``, prompts with left
padding, video, reuse across calls), the gate that sends every other call to ``generate``, and clear errors.

The CUDA graph capture itself only runs on a GPU (``benchmarks/bench_blip.py`` checks its ids against
transformers' there); everything it replays is the ``_step`` exercised here.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.models.blip.test_modeling_blip_generation import DEC, PAD, SEP, images, tiny_captioner
from vl_hub.layers.med_greedy import GreedyShape, StaticGreedyDecoder
from vl_hub.models.blip import modeling_blip_generation as generation


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def both(model: torch.nn.Module, pixels: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    settings = {"num_beams": 1, "do_sample": False, **kwargs}
    return (model.generate(pixels, static_cache=True, **settings),
            model.generate(pixels, static_cache=False, **settings))


@pytest.mark.parametrize(("seed", "max_length", "min_length"), [(2, 14, 6), (3, 20, 0), (4, 9, 9), (2, 5, 1)])
def test_static_ids_equal_generate(seed: int, max_length: int, min_length: int) -> None:
    model = tiny_captioner(seed=seed, sep_bias=3.0)
    static, reference = both(model, images(4, seed=seed), max_length=max_length, min_length=min_length)
    assert static.shape == reference.shape and torch.equal(static, reference), (static, reference)
    assert torch.equal(static[:, :4], torch.tensor([[DEC, 16, 74, 19]] * 4))


def test_early_end_and_padding_match_generate() -> None:
    model = tiny_captioner(seed=2, sep_bias=3.0)
    static, reference = both(model, images(3), max_length=14, min_length=6)
    assert torch.equal(static, reference)
    ended = (static == SEP).any(1)
    assert ended.any() and not ended.all(), "the eos/pad path is not exercised"
    first_eos = torch.where(static == SEP, torch.arange(static.shape[1]), static.shape[1]).min(1).values
    assert torch.all(first_eos[ended] >= 5)
    for row, pos in zip(static[ended], first_eos[ended]):
        assert torch.all(row[pos + 1 :] == PAD)


def test_every_row_ending_stops_early_as_generate() -> None:
    model = tiny_captioner(seed=5)
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[SEP] += 50.0  # [SEP] as soon as min_length allows
    static, reference = both(model, images(2, seed=5), max_length=20, min_length=6)
    assert torch.equal(static, reference)
    assert static.shape == (2, 7) and torch.all(static[:, 6] == SEP)


def test_left_padded_prompts_and_video_match_generate() -> None:
    model = tiny_captioner(seed=3)
    ids = torch.tensor([[PAD, DEC, 16, 74], [DEC, 16, 74, 19]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    settings = {"num_beams": 1, "max_length": 12, "min_length": 3}
    static = model.generate(images(2), input_ids=ids, attention_mask=mask, static_cache=True, **settings)
    reference = model.generate(images(2), input_ids=ids, attention_mask=mask, static_cache=False, **settings)
    assert torch.equal(static, reference)
    static, reference = both(model, images(2, frames=3), max_length=10, min_length=2)
    assert torch.equal(static, reference)


def test_decoder_is_reused_while_shapes_and_weights_stay() -> None:
    model = tiny_captioner(seed=2)
    model.generate(images(2), static_cache=True, num_beams=1, max_length=10)
    first = generation._STATIC_DECODERS[model][1]
    again = model.generate(images(2, seed=9), static_cache=True, num_beams=1, max_length=10)
    assert generation._STATIC_DECODERS[model][1] is first
    assert torch.equal(again, model.generate(images(2, seed=9), static_cache=False, num_beams=1, max_length=10))
    with torch.inference_mode():  # buffers stay usable in and out of inference mode
        model.generate(images(2), static_cache=True, num_beams=1, max_length=10)
    model.generate(images(3), static_cache=True, num_beams=1, max_length=10)
    assert generation._STATIC_DECODERS[model][1] is not first  # new batch size -> new buffers
    model.double()
    model.generate(images(3).double(), static_cache=True, num_beams=1, max_length=10)
    assert generation._STATIC_DECODERS[model][1].shape.dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs",
    [{"num_beams": 3}, {"do_sample": True}, {"repetition_penalty": 1.2}, {"output_scores": True,
                                                                          "return_dict_in_generate": True}],
)
def test_auto_sends_other_settings_to_generate_and_true_refuses_them(kwargs: dict[str, Any]) -> None:
    model = tiny_captioner(seed=2)
    assert model._static_greedy_decoder(torch.tensor([[DEC]]), torch.zeros(1, 5, 64), None, dict(kwargs), None) is None
    with pytest.raises(ValueError, match="static_cache=True needs plain greedy decoding"):
        model.generate(images(1), static_cache=True, **kwargs)


def test_auto_stays_on_generate_on_the_cpu_and_in_training_mode() -> None:
    model = tiny_captioner(seed=2)
    prompt, embeds = torch.tensor([[DEC]]), torch.zeros(1, 5, 64)
    assert model._static_greedy_decoder(prompt, embeds, None, {"num_beams": 1}, None) is None  # CPU
    model.train()
    with pytest.raises(ValueError, match="training mode"):
        model.generate(images(1), static_cache=True, num_beams=1)


def test_decoder_rejects_other_shapes_and_a_prompt_filling_max_length() -> None:
    model = tiny_captioner(seed=2).eval()
    shape = GreedyShape(batch_size=2, prompt_length=4, max_length=8, min_length=0, encoder_length=5,
                        eos_token_id=SEP, pad_token_id=PAD, dtype=torch.float32, device=torch.device("cpu"))
    decoder = StaticGreedyDecoder(model.text_decoder, shape)
    with pytest.raises(ValueError, match=r"serves prompts \(2, 4\)"):
        decoder.decode(torch.full((3, 4), DEC), torch.zeros(3, 5, 64))
    with pytest.raises(ValueError, match="must exceed the prompt length"):
        StaticGreedyDecoder(model.text_decoder, GreedyShape(**{**shape.__dict__, "max_length": 4}))
    with pytest.raises(ValueError, match="needs a CUDA device"):
        StaticGreedyDecoder(model.text_decoder, shape, cuda_graph=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graph capture needs a GPU (run by the device check)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_ids_equal_generate(dtype: torch.dtype) -> None:
    model = tiny_captioner(seed=2, sep_bias=3.0).to("cuda", dtype)
    pixels = images(4, seed=2).to("cuda", dtype)
    settings = {"num_beams": 1, "max_length": 14, "min_length": 6}
    reference = model.generate(pixels, static_cache=False, **settings)
    for round_ in range(2):  # capture, then replay of the captured graph
        static = model.generate(pixels, **settings)  # auto: static decoder + CUDA graph on CUDA
        decoder = generation._STATIC_DECODERS[model][1]
        assert decoder.cuda_graph and decoder.graph is not None, round_
        if dtype == torch.float32:
            assert torch.equal(static, reference), (round_, static, reference)
        else:  # bf16: attention over the padded static cache may round differently; the first tokens agree
            assert static.shape[0] == reference.shape[0] and torch.equal(static[:, :6], reference[:, :6])
