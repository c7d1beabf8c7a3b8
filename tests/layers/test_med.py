"""The multimodal text transformer (vl_hub.layers.med): LAVIS parity, checkpoint names, masks, modes, gradients.

Parity tests load the LAVIS-named weights of the golden fixtures onto the modules with a prefix strip only.
The NLVR tests also prove that the cross-attention factory hook is enough to build BLIP's twin cross-attention and
ALBEF's shared/alternating cross-attention outside ``med.py`` (their image states come from a test-only ViT).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.common.reference import Reference, load_reference, sub_state_dict
from vl_hub.layers.med import (
    MedAttentionProjections,
    MedCrossAttention,
    MedLMHeadModel,
    MedModel,
    MedSettings,
    build_cross_attention_mask,
    build_self_attention_mask,
    default_cross_attention_factory,
)

ATOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """Tiny tensors: intra-op threads only add synchronisation (tens of ms per op on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _settings(reference_dir: Path, config_file: str, **overrides: object) -> MedSettings:
    return MedSettings.from_med_config(json.loads((reference_dir / config_file).read_text()), **overrides)


@pytest.fixture(scope="module")
def refs(reference_dir: Path) -> dict[str, Reference]:
    names = ["blip_feature_extractor", "blip_caption", "albef_feature_extractor", "alpro_retrieval", "alpro_qa",
             "blip_nlvr", "albef_nlvr"]
    return {name: load_reference(reference_dir, name) for name in names}


def _ones(states: torch.Tensor) -> torch.Tensor:
    return torch.ones(states.shape[:2], dtype=torch.long)


def _tiny(**overrides: object) -> MedSettings:
    base: dict[str, object] = dict(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=24, encoder_width=24, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    base.update(overrides)
    return MedSettings(**base)  # type: ignore[arg-type]


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Perturbs every parameter (LayerNorm affine and biases included) so that no path is negligible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    return module


# --------------------------------------------------------------------------- settings


def test_settings_validation_names_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"hidden_size=30 is not divisible by num_attention_heads=4"):
        _tiny(hidden_size=30)
    with pytest.raises(ValueError, match=r"fusion_layer=3 must be None or in \[0, num_hidden_layers=2\]"):
        _tiny(fusion_layer=3)
    with pytest.raises(ValueError, match="attn_implementation='flash'"):
        _tiny(attn_implementation="flash")
    with pytest.raises(ValueError, match="pad_token_id=50"):
        _tiny(pad_token_id=50)
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        MedSettings.from_med_config({"hidden_act": "relu"})
    with pytest.raises(ValueError, match=r"unknown MED config keys \['fusion_layers'\]"):
        MedSettings.from_med_config({"fusion_layers": 2})
    assert _tiny().encoder_width == 24 and _tiny(encoder_width=None).encoder_width == 32


def test_layer_ranges_and_cross_attention_placement() -> None:
    blip = _tiny(num_hidden_layers=4)
    assert [blip.has_cross_attention(i) for i in range(4)] == [True] * 4
    assert blip.layer_range("text") == range(0, 4) and blip.layer_range("multimodal") == range(0, 4)
    with pytest.raises(ValueError, match="mode='fusion' needs fusion_layer"):
        blip.layer_range("fusion")
    albef = _tiny(num_hidden_layers=4, fusion_layer=2)
    assert [albef.has_cross_attention(i) for i in range(4)] == [False, False, True, True]
    assert albef.layer_range("text") == range(0, 2) and albef.layer_range("fusion") == range(2, 4)
    alpro = _tiny(num_hidden_layers=4, fusion_layer=2, add_cross_attention=False)
    assert not any(alpro.has_cross_attention(i) for i in range(4))
    assert not any(_tiny(fusion_layer=2).has_cross_attention(i) for i in range(2))
    model = MedModel(albef)
    assert [layer.crossattention is not None for layer in model.encoder.layer] == [False, False, True, True]


# --------------------------------------------------------------------------- checkpoint names


@pytest.mark.parametrize(
    ("fixture", "prefix", "config", "head"),
    [
        ("blip_feature_extractor", "text_encoder.", "blip_med_config.json", False),
        ("blip_caption", "text_decoder.", "blip_med_config.json", True),
        ("albef_feature_extractor", "text_encoder.", "albef_med_config.json", True),
        ("alpro_retrieval", "text_encoder.", "alpro_bert_config.json", False),
    ],
)
def test_lavis_parameter_names_load_strictly(
    refs: dict[str, Reference], reference_dir: Path, fixture: str, prefix: str, config: str, head: bool
) -> None:
    weights = sub_state_dict(refs[fixture].weights, prefix)
    settings = _settings(reference_dir, config)
    model = MedLMHeadModel(settings) if head else MedModel(settings)
    expected = {k for k in weights if not k.endswith("position_ids")}
    assert set(model.state_dict()) == expected
    model.load_state_dict(weights, strict=True)  # with the position_ids buffer of the checkpoint
    model.load_state_dict({k: weights[k] for k in expected}, strict=True)  # and without it
    for key in expected:
        assert torch.equal(model.state_dict()[key], weights[key]), key


def test_lm_head_is_tied() -> None:
    model = MedLMHeadModel(_tiny())
    predictions = model.cls.predictions
    assert predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert predictions.bias is predictions.decoder.bias
    hidden = torch.randn(1, 3, 32)
    manual = predictions.transform.LayerNorm(F.gelu(predictions.transform.dense(hidden)))
    manual = manual @ model.bert.embeddings.word_embeddings.weight.T + predictions.bias
    torch.testing.assert_close(model.cls(hidden), manual, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- LAVIS parity


def test_blip_feature_extractor_text_and_multimodal(refs: dict[str, Reference], reference_dir: Path) -> None:
    ref = refs["blip_feature_extractor"]
    model = MedModel(_settings(reference_dir, "blip_med_config.json")).eval()
    model.load_state_dict(sub_state_dict(ref.weights, "text_encoder."))
    image = ref.out("image_embeds")
    with torch.no_grad():
        text = model(ref.inp("text_input_ids"), ref.inp("text_attention_mask"), mode="text").last_hidden_state
        multimodal = model(
            ref.inp("multimodal_input_ids"), ref.inp("text_attention_mask"),
            encoder_hidden_states=image, encoder_attention_mask=_ones(image), mode="multimodal",
        ).last_hidden_state
    torch.testing.assert_close(text, ref.out("text_embeds"), rtol=0, atol=ATOL)
    torch.testing.assert_close(multimodal, ref.out("multimodal_embeds"), rtol=0, atol=ATOL)


def test_blip_caption_decoder_logits(refs: dict[str, Reference], reference_dir: Path) -> None:
    ref = refs["blip_caption"]
    decoder = MedLMHeadModel(_settings(reference_dir, "blip_med_config.json")).eval()
    decoder.load_state_dict(sub_state_dict(ref.weights, "text_decoder."))
    image = ref.out("image_embeds")
    with torch.no_grad():
        logits = decoder(
            ref.inp("decoder_input_ids"), ref.inp("decoder_attention_mask"),
            encoder_hidden_states=image, encoder_attention_mask=_ones(image),
        ).logits
    torch.testing.assert_close(logits, ref.out("decoder_logits"), rtol=0, atol=ATOL)


def test_albef_feature_extractor_text_and_fusion(refs: dict[str, Reference], reference_dir: Path) -> None:
    ref = refs["albef_feature_extractor"]
    text_encoder = MedLMHeadModel(_settings(reference_dir, "albef_med_config.json"), is_decoder=False).eval()
    text_encoder.load_state_dict(sub_state_dict(ref.weights, "text_encoder."))
    image, mask = ref.out("image_embeds"), ref.inp("attention_mask")
    with torch.no_grad():
        text = text_encoder.bert(ref.inp("input_ids"), mask, mode="text").last_hidden_state
        fused = text_encoder.bert(
            encoder_embeds=text, attention_mask=mask, encoder_hidden_states=image,
            encoder_attention_mask=_ones(image), mode="fusion",
        ).last_hidden_state
    torch.testing.assert_close(text, ref.out("text_embeds"), rtol=0, atol=ATOL)
    torch.testing.assert_close(fused, ref.out("multimodal_embeds"), rtol=0, atol=ATOL)


def test_alpro_text_with_token_types_and_fusion(refs: dict[str, Reference], reference_dir: Path) -> None:
    settings = _settings(reference_dir, "alpro_bert_config.json")
    retrieval, qa = refs["alpro_retrieval"], refs["alpro_qa"]
    model = MedModel(settings).eval()
    model.load_state_dict(sub_state_dict(retrieval.weights, "text_encoder."))
    ids, mask, types = retrieval.inp("input_ids"), retrieval.inp("attention_mask"), retrieval.inp("token_type_ids")
    with torch.no_grad():
        text = model(ids, mask, token_type_ids=types, mode="text").last_hidden_state
        default_types = model(ids, mask, mode="text").last_hidden_state
        other_types = model(ids, mask, token_type_ids=torch.ones_like(types), mode="text").last_hidden_state
    torch.testing.assert_close(text, retrieval.out("text_embeds"), rtol=0, atol=ATOL)
    assert torch.equal(default_types, text)  # no ids = type 0, what ALPRO passes
    assert (other_types - text).abs().max() > 1e-2  # the token-type table is really used

    model.load_state_dict(sub_state_dict(qa.weights, "text_encoder."))
    video, mask = qa.out("video_embeds"), qa.inp("attention_mask")
    with torch.no_grad():
        text = model(qa.inp("input_ids"), mask, mode="text").last_hidden_state
        fused = model(
            encoder_embeds=torch.cat([text, video], 1), attention_mask=torch.cat([mask, _ones(video)], 1),
            mode="fusion",
        ).last_hidden_state
    torch.testing.assert_close(text, qa.out("text_embeds"), rtol=0, atol=ATOL)
    torch.testing.assert_close(fused, qa.out("fusion_last_hidden_state"), rtol=0, atol=ATOL)


# --------------------------------------------------------------------------- cross-attention factory (NLVR)


def _test_vit_features(weights: dict[str, torch.Tensor], images: torch.Tensor, heads: int) -> torch.Tensor:
    """TEST HELPER (not library code): LAVIS/timm pre-LN ViT ``forward_features`` from ``visual_encoder.*``."""
    w = sub_state_dict(weights, "visual_encoder.")
    patch = w["patch_embed.proj.weight"]
    x = F.conv2d(images, patch, w["patch_embed.proj.bias"], stride=patch.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([w["cls_token"].expand(x.shape[0], -1, -1), x], 1) + w["pos_embed"]
    width = x.shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))
    for i in range(depth):
        p = {k[len(f"blocks.{i}.") :]: v for k, v in w.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(x, (width,), p["norm1.weight"], p["norm1.bias"], 1e-6)
        q, k, v = F.linear(h, p["attn.qkv.weight"], p["attn.qkv.bias"]).chunk(3, dim=-1)
        q, k, v = (t.view(x.shape[0], -1, heads, width // heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape)
        x = x + F.linear(a, p["attn.proj.weight"], p["attn.proj.bias"])
        h = F.layer_norm(x, (width,), p["norm2.weight"], p["norm2.bias"], 1e-6)
        h = F.gelu(F.linear(h, p["mlp.fc1.weight"], p["mlp.fc1.bias"]))
        x = x + F.linear(h, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return F.layer_norm(x, (width,), w["norm.weight"], w["norm.bias"], 1e-6)


def test_test_vit_helper_reproduces_lavis(refs: dict[str, Reference]) -> None:
    ref = refs["blip_feature_extractor"]
    features = _test_vit_features(ref.weights, ref.inp("image"), heads=4)
    torch.testing.assert_close(features, ref.out("image_embeds"), rtol=0, atol=ATOL)


class _TwinOutput(nn.Module):
    """BLIP NLVR twin output: average of ``dense0/dense1`` (or ``merge_layer`` of both), then residual LayerNorm."""

    def __init__(self, settings: MedSettings, merge: bool) -> None:
        super().__init__()
        h = settings.hidden_size
        self.dense0, self.dense1 = nn.Linear(h, h), nn.Linear(h, h)
        self.merge_layer = nn.Linear(2 * h, h) if merge else None
        self.LayerNorm = nn.LayerNorm(h, eps=settings.layer_norm_eps)

    def forward(self, context0: torch.Tensor, context1: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        a, b = self.dense0(context0), self.dense1(context1)
        mixed = (a + b) / 2 if self.merge_layer is None else self.merge_layer(torch.cat([a, b], -1))
        return self.LayerNorm(mixed + residual)


class _TwinCrossAttention(nn.Module):
    """What the BLIP family builds through the factory hook (here a test double): one attention per image."""

    def __init__(self, settings: MedSettings, layer_idx: int) -> None:
        super().__init__()
        args = (settings.hidden_size, settings.num_attention_heads, settings.encoder_width)
        self.self0, self.self1 = MedAttentionProjections(*args), MedAttentionProjections(*args)
        self.output = _TwinOutput(settings, merge=layer_idx >= 6)
        self.calls = 0

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: list[torch.Tensor],
        encoder_attention_mask: list[torch.Tensor | None] | None,
        cache: object = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, None]:
        self.calls += 1
        masks = encoder_attention_mask or [None, None]
        contexts = []
        for attention, states, mask in zip((self.self0, self.self1), encoder_hidden_states, masks):
            key, value = attention.project_key_value(states)
            contexts.append(attention.attend(attention.project_query(hidden_states), key, value, mask)[0])
        return self.output(*contexts, hidden_states), None


def test_factory_builds_blip_nlvr_twin_cross_attention(refs: dict[str, Reference], reference_dir: Path) -> None:
    ref = refs["blip_nlvr"]
    settings = _settings(reference_dir, "blip_nlvr_med_config.json")
    model = MedModel(settings, cross_attention_factory=lambda s, i: _TwinCrossAttention(s, i)).eval()
    model.load_state_dict(sub_state_dict(ref.weights, "text_encoder."), strict=True)
    images = _test_vit_features(ref.weights, torch.cat([ref.inp("image0"), ref.inp("image1")]), heads=4)
    image0, image1 = images.chunk(2)
    with torch.no_grad():
        out = model(
            ref.inp("input_ids"), ref.inp("attention_mask"), encoder_hidden_states=[image0, image1],
            encoder_attention_mask=[_ones(image0), _ones(image1)],
        ).last_hidden_state
    torch.testing.assert_close(out, ref.out("encoder_last_hidden_state"), rtol=0, atol=ATOL)
    assert all(layer.crossattention.calls == 1 for layer in model.encoder.layer)


def _albef_nlvr_factory():  # noqa: ANN202
    """ALBEF NLVR: the key/value of fusion layers (6, 7), (8, 9), ... are shared (built through the hook)."""
    built: dict[int, MedCrossAttention] = {}

    def factory(settings: MedSettings, layer_idx: int) -> MedCrossAttention:
        module = default_cross_attention_factory(settings, layer_idx)
        if (layer_idx - settings.fusion_layer) % 2 == 1:  # type: ignore[operator]
            module.self.key, module.self.value = built[layer_idx - 1].self.key, built[layer_idx - 1].self.value
        built[layer_idx] = module
        return module

    return factory


def test_albef_nlvr_alternating_images_and_shared_key_value(refs: dict[str, Reference], reference_dir: Path) -> None:
    ref = refs["albef_nlvr"]
    settings = _settings(reference_dir, "albef_nlvr_med_config.json", num_hidden_layers=18)
    model = MedModel(settings, cross_attention_factory=_albef_nlvr_factory()).eval()
    model.load_state_dict(sub_state_dict(ref.weights, "text_encoder."), strict=True)
    layers = model.encoder.layer
    assert layers[6].crossattention.self.key.weight is layers[7].crossattention.self.key.weight
    assert layers[7].crossattention.self.query.weight is not layers[6].crossattention.self.query.weight
    images = _test_vit_features(ref.weights, torch.cat([ref.inp("image0"), ref.inp("image1")]), heads=4)
    image0, image1 = images.chunk(2)
    with torch.no_grad():
        out = model(
            ref.inp("input_ids"), ref.inp("attention_mask"), encoder_hidden_states=[image0, image1],
            encoder_attention_mask=[_ones(image0), _ones(image1)], mode="multimodal",
        ).last_hidden_state
        swapped = model(
            ref.inp("input_ids"), ref.inp("attention_mask"), encoder_hidden_states=[image1, image0],
            encoder_attention_mask=[_ones(image1), _ones(image0)], mode="multimodal",
        ).last_hidden_state
    torch.testing.assert_close(out, ref.out("encoder_last_hidden_state"), rtol=0, atol=ATOL)
    assert (swapped - out).abs().max() > 1e-3  # the image order matters: layer l attends image (l - 6) % 2


# --------------------------------------------------------------------------- masks


def test_masks_give_exactly_zero_probability() -> None:
    torch.manual_seed(0)
    model = _randomize(MedLMHeadModel(_tiny())).eval()
    ids = torch.randint(5, 50, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    image = torch.randn(2, 5, 24) * 3
    image_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    with torch.no_grad():
        out = model(ids, mask, encoder_hidden_states=image, encoder_attention_mask=image_mask, output_attentions=True)
    for self_probs, cross_probs in zip(out.attentions, out.cross_attentions):
        assert torch.all(self_probs.triu(1) == 0)  # causal
        assert torch.all(self_probs[1, :, :, 4:] == 0)  # padding
        assert torch.all(cross_probs[1, :, :, 2:] == 0)
        assert torch.all(cross_probs[1, :, :, :2] > 0)
        torch.testing.assert_close(cross_probs.sum(-1), torch.ones(2, 4, 6))


def test_mask_builders_match_lavis_values() -> None:
    keep = torch.tensor([[1, 1, 0]])
    assert build_self_attention_mask(keep, 1, 3, 0, False, torch.float32, keep.device).flatten().tolist() == [
        0.0, 0.0, -10000.0
    ]
    cross = build_cross_attention_mask(keep, torch.float32)
    assert cross.shape == (1, 1, 1, 3) and cross[0, 0, 0, 2] == torch.finfo(torch.float32).min
    causal = build_self_attention_mask(torch.ones(1, 5), 1, 2, 3, True, torch.float32, keep.device)
    assert (causal[0, 0] == 0).tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert build_self_attention_mask(None, 2, 1, 4, True, torch.float32, keep.device) is None
    assert build_self_attention_mask(None, 2, 3, 0, False, torch.float32, keep.device) is None


def test_three_dimensional_masks_equal_expanded_two_dimensional_ones() -> None:
    torch.manual_seed(1)
    model = _randomize(MedModel(_tiny())).eval()
    ids = torch.randint(5, 50, (2, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    image = torch.randn(2, 4, 24)
    image_mask = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1]])
    with torch.no_grad():
        two = model(ids, mask, encoder_hidden_states=image, encoder_attention_mask=image_mask).last_hidden_state
        three = model(
            ids, mask[:, None, :].expand(2, 5, 5), encoder_hidden_states=image,
            encoder_attention_mask=image_mask[:, None, :].expand(2, 5, 4),
        ).last_hidden_state
        causal = torch.ones(5, 5).tril()[None] * mask[:, None, :]
        decoder_two = model(ids, mask, encoder_hidden_states=image, is_decoder=True).last_hidden_state
        decoder_three = model(ids, causal, encoder_hidden_states=image, is_decoder=True).last_hidden_state
    torch.testing.assert_close(two, three, rtol=0, atol=1e-6)
    torch.testing.assert_close(decoder_two, decoder_three, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- implementations, batches, gradients


@pytest.mark.parametrize("mode", ["text", "multimodal", "fusion"])
def test_sdpa_equals_eager(mode: str) -> None:
    torch.manual_seed(2)
    model = _randomize(MedLMHeadModel(_tiny(num_hidden_layers=3, fusion_layer=1, add_type_embeddings=True))).eval()
    ids = torch.randint(5, 50, (2, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    inputs = dict(attention_mask=mask, encoder_hidden_states=torch.randn(2, 5, 24), mode=mode)
    if mode == "fusion":
        inputs["encoder_embeds"] = torch.randn(2, 7, 32)
    else:
        inputs["input_ids"] = ids
    with torch.no_grad():
        sdpa = model(**inputs).logits
        model.set_attn_implementation("eager")
        assert all(
            m.attn_implementation == "eager" for m in model.modules() if isinstance(m, MedAttentionProjections)
        )
        eager = model(**inputs).logits
        eager_decoder = model(**inputs, is_decoder=True).logits
        model.set_attn_implementation("sdpa")
        sdpa_decoder = model(**inputs, is_decoder=True).logits
    torch.testing.assert_close(sdpa, eager, rtol=0, atol=1e-5)
    torch.testing.assert_close(sdpa_decoder, eager_decoder, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="flash"):
        model.set_attn_implementation("flash")


def test_batch_invariance() -> None:
    torch.manual_seed(3)
    model = _randomize(MedLMHeadModel(_tiny())).eval()
    ids = torch.randint(5, 50, (3, 6))
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 5 + [0]])
    image = torch.randn(3, 4, 24)
    with torch.no_grad():
        full = model(ids, mask, encoder_hidden_states=image).logits
        rows = [model(ids[i : i + 1], mask[i : i + 1], encoder_hidden_states=image[i : i + 1]).logits for i in range(3)]
    torch.testing.assert_close(full, torch.cat(rows), rtol=0, atol=1e-5)


def _loss(model: MedLMHeadModel, ids: torch.Tensor, image: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
    out = model(ids, torch.ones_like(ids), token_type_ids=types, encoder_hidden_states=image, mode="multimodal")
    return F.cross_entropy(out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(4)
    model = _randomize(MedLMHeadModel(_tiny(add_type_embeddings=True))).train()
    ids = torch.randint(1, 50, (2, 6))
    image = torch.randn(2, 4, 24, requires_grad=True)
    _loss(model, ids, image, torch.tensor([[0, 0, 0, 1, 1, 1]] * 2)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, missing
    assert image.grad is not None and torch.any(image.grad != 0)


def test_gradient_checkpointing_gives_equal_gradients() -> None:
    torch.manual_seed(5)
    model = _randomize(MedLMHeadModel(_tiny(add_type_embeddings=True))).train()  # dropout 0: deterministic
    ids = torch.randint(1, 50, (2, 6))
    image = torch.randn(2, 4, 24)
    types = torch.zeros_like(ids)
    _loss(model, ids, image, types).backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_gradient_checkpointing(True)
    calls = []
    for layer in model.bert.encoder.layer:
        layer._gradient_checkpointing_func = (lambda f: lambda fn, *a: (calls.append(1), f(fn, *a))[1])(
            layer._gradient_checkpointing_func
        )
    _loss(model, ids, image, types).backward()
    assert len(calls) == 2  # both layers really went through the checkpoint function
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], rtol=1e-5, atol=1e-6, msg=name)


def test_cross_attention_probabilities_keep_their_gradient() -> None:
    """Grad-CAM: the probabilities of a chosen layer are returned inside the autograd graph."""
    torch.manual_seed(6)
    model = _randomize(MedModel(_tiny())).eval()
    ids = torch.randint(5, 50, (1, 5))
    out = model(ids, encoder_hidden_states=torch.randn(1, 4, 24), output_attentions=True, output_hidden_states=True)
    probs = out.cross_attentions[1]
    assert probs.shape == (1, 4, 5, 4) and probs.requires_grad
    (grad,) = torch.autograd.grad(out.last_hidden_state[:, 0].sum(), probs)
    assert grad.shape == probs.shape and torch.any(grad != 0)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2


# --------------------------------------------------------------------------- embeddings and bad input


def test_positions_are_offset_by_the_cached_length() -> None:
    torch.manual_seed(7)
    embeddings = _randomize(MedModel(_tiny())).embeddings.eval()
    ids = torch.randint(5, 50, (1, 3))
    with torch.no_grad():
        shifted = embeddings(ids, past_length=4)
        explicit = embeddings(ids, position_ids=torch.arange(4, 7)[None])
        manual = embeddings.LayerNorm(embeddings.word_embeddings(ids) + embeddings.position_embeddings.weight[4:7])
    torch.testing.assert_close(shifted, explicit, rtol=0, atol=0)
    torch.testing.assert_close(shifted, manual, rtol=0, atol=0)


def test_bad_inputs_raise_clear_errors() -> None:
    model = MedModel(_tiny(fusion_layer=1))
    ids = torch.randint(5, 50, (2, 4))
    image = torch.randn(2, 3, 24)
    with pytest.raises(ValueError, match="encoder_hidden_states .* must be given"):
        model(ids, mode="multimodal")
    with pytest.raises(ValueError, match=r"batch=2"):
        model(ids, encoder_hidden_states=image[:1])
    with pytest.raises(ValueError, match="exactly one of input_ids, inputs_embeds or encoder_embeds"):
        model(ids, encoder_embeds=torch.randn(2, 4, 32), mode="fusion", encoder_hidden_states=image)
    with pytest.raises(ValueError, match="mode='vision'"):
        model(ids, mode="vision")
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch, cached \+ new tokens\) = \(2, 4\)"):
        model(ids, torch.ones(2, 5), mode="text")
    with pytest.raises(ValueError, match="add_type_embeddings=False"):
        model(ids, token_type_ids=torch.zeros_like(ids), mode="text")
    with pytest.raises(ValueError, match="exceed max_position_embeddings=24"):
        model(torch.randint(5, 50, (1, 25)), mode="text")
    with pytest.raises(ValueError, match="encoder_width"):
        model(ids, encoder_hidden_states=torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match="list of 2 masks"):
        model(ids, encoder_hidden_states=[image, image], encoder_attention_mask=torch.ones(2, 3))
    assert math.isfinite(model(ids, encoder_hidden_states=[image, image]).last_hidden_state.sum().item())
