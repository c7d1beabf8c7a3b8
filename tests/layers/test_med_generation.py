"""KV cache of the MED decoder and transformers 5 ``generate()`` on top of it.

A decoder written for v4 ``past_key_values`` can give wrong logits under v5 ``generate()`` without any error, so
every cached path is compared with a full recompute: logits of incremental forwards, and greedy / beam / nucleus
sampling token for token. The image keys/values must be projected once per generate call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import DynamicCache, EncoderDecoderCache

from tests.common.generation import TinyDecoderConfig, TinyDecoderForGeneration
from tests.common.reference import load_reference, sub_state_dict
from vl_hub.layers.med import MedCache, MedLMHeadModel, MedSettings

EOS, PAD, BOS = 3, 0, 2


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """Tiny tensors: intra-op threads only add synchronisation (tens of ms per op on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def _decoder(fusion_layer: int | None = None, seed: int = 0) -> MedLMHeadModel:
    settings = MedSettings(
        vocab_size=48, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=32, encoder_width=24, fusion_layer=fusion_layer,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    return _randomize(MedLMHeadModel(settings), seed).eval()


def _count_calls(modules: list[torch.nn.Module]) -> list[int]:
    counts = [0] * len(modules)
    for i, module in enumerate(modules):
        module.register_forward_hook(lambda *_, i=i: counts.__setitem__(i, counts[i] + 1))
    return counts


@pytest.mark.parametrize("fusion_layer", [None, 1])
def test_incremental_cached_logits_equal_full_recompute(fusion_layer: int | None) -> None:
    torch.manual_seed(0)
    model = _decoder(fusion_layer)
    ids = torch.randint(4, 48, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # a left-padded prompt
    image = torch.randn(2, 5, 24)
    image_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    cross_layers = [layer.crossattention for layer in model.bert.encoder.layer if layer.crossattention is not None]
    key_calls = _count_calls([m.self.key for m in cross_layers])
    with torch.no_grad():
        full = model(ids, mask, encoder_hidden_states=image, encoder_attention_mask=image_mask).logits
        key_calls[:] = [0] * len(key_calls)
        step = model(ids[:, :4], mask[:, :4], encoder_hidden_states=image, encoder_attention_mask=image_mask,
                     use_cache=True)
        pieces = [step.logits]
        cache = step.cache
        assert isinstance(cache, MedCache)
        for start, stop in [(4, 5), (5, 7), (7, 8), (8, 9)]:  # one and two tokens at a time
            step = model(ids[:, start:stop], mask[:, :stop], encoder_hidden_states=image,
                         encoder_attention_mask=image_mask, cache=cache)
            assert step.cache is cache
            pieces.append(step.logits)
    # padded query positions (row 1, positions 0-1) see no key at all: their (uniform) attention spans whatever keys
    # exist at that call, in LAVIS too; they are never read, so only real positions are compared
    keep = mask.bool()
    torch.testing.assert_close(torch.cat(pieces, 1)[keep], full[keep], rtol=0, atol=1e-5)
    assert cache.get_seq_length() == 9
    assert key_calls == [1] * len(cross_layers)  # image keys projected once, reused for 4 more steps
    assert all(cache.is_updated[m.layer_idx] for m in cross_layers)


def test_a_plain_cache_is_wrapped_and_a_user_encoder_decoder_cache_is_used() -> None:
    torch.manual_seed(1)
    model = _decoder()
    ids, image = torch.randint(4, 48, (2, 4)), torch.randn(2, 5, 24)
    with torch.no_grad():
        full = model(ids, encoder_hidden_states=image).logits
        plain = DynamicCache()
        first = model(ids[:, :3], encoder_hidden_states=image, cache=plain)
        assert isinstance(first.cache, MedCache) and first.cache.self_attention_cache is plain
        second = model(ids[:, 3:], encoder_hidden_states=image, cache=first.cache)
        user = EncoderDecoderCache(DynamicCache(), DynamicCache())
        third = model(ids[:, :3], encoder_hidden_states=image, cache=user)
        assert third.cache is user and user.cross_attention_cache.get_seq_length(0) == 5
        text_only = model(ids, mode="text", use_cache=True)
    torch.testing.assert_close(second.logits, full[:, 3:], rtol=0, atol=1e-5)
    assert isinstance(text_only.cache, DynamicCache) and not isinstance(text_only.cache, EncoderDecoderCache)


def test_cache_is_ignored_when_use_cache_is_false() -> None:
    model = _decoder()
    ids, image = torch.randint(4, 48, (1, 3)), torch.randn(1, 5, 24)
    with torch.no_grad():
        out = model(ids, encoder_hidden_states=image, cache=DynamicCache(), use_cache=False)
    assert out.cache is None


# --------------------------------------------------------------------------- generate()


def _generator(seed: int = 0, fusion_layer: int | None = None) -> TinyDecoderForGeneration:
    torch.manual_seed(seed)
    config = TinyDecoderConfig(num_hidden_layers=3, fusion_layer=fusion_layer, eos_token_id=EOS, pad_token_id=PAD,
                               bos_token_id=BOS)
    model = _randomize(TinyDecoderForGeneration(config), seed).eval()
    with torch.no_grad():
        model.decoder.cls.predictions.bias[EOS] += 4.0  # some sequences end early: exercises eos + pad filling
    return model


GENERATION_MODES = {
    "greedy": dict(num_beams=1, do_sample=False),
    "beam3": dict(num_beams=3, do_sample=False),
    "nucleus": dict(do_sample=True, top_p=0.9, top_k=0, num_beams=1),
}


@pytest.mark.parametrize("fusion_layer", [None, 1])
@pytest.mark.parametrize("mode", sorted(GENERATION_MODES))
def test_generate_with_cache_equals_without(mode: str, fusion_layer: int | None) -> None:
    model = _generator(fusion_layer=fusion_layer)
    prompt = torch.tensor([[BOS, 7, 9], [BOS, 11, 5], [BOS, 20, 21], [BOS, 30, 8]])
    image = torch.randn(4, 6, 24, generator=torch.Generator().manual_seed(1))
    kwargs = dict(encoder_hidden_states=image, encoder_attention_mask=torch.ones(4, 6, dtype=torch.long),
                  max_length=14, min_length=6, eos_token_id=EOS, pad_token_id=PAD, **GENERATION_MODES[mode])
    outputs = []
    for use_cache in (True, False):
        torch.manual_seed(123)
        outputs.append(model.generate(prompt, use_cache=use_cache, **kwargs))
    cached, full = outputs
    assert torch.equal(cached, full), (cached, full)
    assert cached.shape[1] <= 14 and torch.equal(cached[:, :3], prompt)
    ended = (cached == EOS).any(1)
    assert ended.any(), "no sequence reached eos; the eos/pad path is not exercised"
    first_eos = torch.where(cached == EOS, torch.arange(cached.shape[1]), cached.shape[1]).min(1).values
    assert torch.all(first_eos[ended] >= 5)  # min_length=6 counts the prompt
    for row, pos in zip(cached[ended], first_eos[ended]):
        # finished rows are filled with pad; transformers 5 beam search fills with eos when pad_token_id == 0
        # (`pad_token_id or eos_token_id` on a tensor), which BLIP's pad id 0 hits
        assert torch.all((row[pos + 1 :] == PAD) | (row[pos + 1 :] == EOS))


def test_generate_projects_image_keys_once_per_call() -> None:
    model = _generator()
    layers = model.decoder.bert.encoder.layer
    calls = _count_calls([layer.crossattention.self.key for layer in layers])
    prompt = torch.tensor([[BOS, 7], [BOS, 9]])
    image = torch.randn(2, 6, 24)
    model.generate(prompt, encoder_hidden_states=image, max_length=10, min_length=10, num_beams=3, use_cache=True,
                   eos_token_id=EOS, pad_token_id=PAD)
    assert calls == [1] * len(layers)
    calls[:] = [0] * len(layers)
    model.generate(prompt, encoder_hidden_states=image, max_length=10, min_length=10, num_beams=3, use_cache=False,
                   eos_token_id=EOS, pad_token_id=PAD)
    assert calls == [8] * len(layers)  # the recompute baseline projects them every step


def test_generate_with_left_padded_prompts_equals_without_cache() -> None:
    model = _generator(seed=2)
    prompt = torch.tensor([[PAD, PAD, BOS, 7], [BOS, 11, 5, 6]])
    mask = (prompt != PAD).long()
    image = torch.randn(2, 6, 24)
    for num_beams in (1, 3):
        cached = model.generate(prompt, attention_mask=mask, encoder_hidden_states=image, max_length=12,
                                num_beams=num_beams, eos_token_id=EOS, pad_token_id=PAD, use_cache=True)
        full = model.generate(prompt, attention_mask=mask, encoder_hidden_states=image, max_length=12,
                              num_beams=num_beams, eos_token_id=EOS, pad_token_id=PAD, use_cache=False)
        assert torch.equal(cached, full), (num_beams, cached, full)


def test_greedy_generation_reproduces_lavis_blip_caption(reference_dir: Path) -> None:
    """BlipCaption.generate(num_beams=1, max_length=12, min_length=5) under HF 4.26, token for token.

    (LAVIS's beam-search ids are not compared here: transformers 5 normalises finished beams by the generated
    length, 4.26 by the full length including the prompt, so the ranking of finished beams differs.)
    """
    ref = load_reference(reference_dir, "blip_caption")
    med = json.loads((reference_dir / "blip_med_config.json").read_text())
    config = TinyDecoderConfig(
        vocab_size=med["vocab_size"], hidden_size=med["hidden_size"], num_hidden_layers=med["num_hidden_layers"],
        num_attention_heads=med["num_attention_heads"], intermediate_size=med["intermediate_size"],
        max_position_embeddings=med["max_position_embeddings"], encoder_width=med["encoder_width"],
        pad_token_id=0, eos_token_id=3, bos_token_id=230,
    )
    model = TinyDecoderForGeneration(config).eval()
    model.decoder.load_state_dict(sub_state_dict(ref.weights, "text_decoder."), strict=True)
    image = ref.out("image_embeds")
    ids = model.generate(
        ref.out("generate_prompt_ids"), encoder_hidden_states=image,
        encoder_attention_mask=torch.ones(image.shape[:2], dtype=torch.long),
        max_length=12, min_length=5, num_beams=1, do_sample=False, eos_token_id=3, pad_token_id=0, use_cache=True,
    )
    assert torch.equal(ids, ref.out("greedy_ids")), (ids, ref.out("greedy_ids"))


# --------------------------------------------------------------------------- the wrapper as a PreTrainedModel


def test_wrapper_gradient_checkpointing_and_save_load(tmp_path: Path) -> None:
    model = _generator(seed=3)
    ids, image = torch.randint(4, 48, (2, 6)), torch.randn(2, 5, 24)

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        logits = model(ids, encoder_hidden_states=image).logits
        torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    model.train()
    plain = grads()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.decoder.bert.encoder.layer)
    checkpointed = grads()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)
    model.activation_checkpointing_disable()

    model.eval()
    model.save_pretrained(tmp_path)
    loaded = TinyDecoderForGeneration.from_pretrained(tmp_path).eval()
    head = loaded.decoder.cls.predictions
    assert head.decoder.weight is loaded.decoder.bert.embeddings.word_embeddings.weight
    assert head.bias is head.decoder.bias
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(ids, encoder_hidden_states=image).logits, model(ids, encoder_hidden_states=image).logits,
            rtol=0, atol=0,
        )
    loaded.set_attn_implementation("eager")
    assert loaded.decoder.bert.encoder.layer[0].crossattention.attn_implementation == "eager"
