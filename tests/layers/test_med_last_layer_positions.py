"""``MedModel(last_layer_positions=n)``: the last layer computes the first ``n`` positions only (ITM reads [CLS]), and
must equal the full forward's ``[:, :n]`` on every path (masks, cross-attention variants, fusion modes, gradients)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vl_hub.layers.med import MedModel, MedSettings
from vl_hub.layers.med_attention import group_by_state
from vl_hub.models.blip.modeling_blip_nlvr import nlvr_cross_attention_factory

BATCH, LENGTH, ENC_TOKENS, WIDTH = 6, 7, 5, 24


def tiny_med(seed: int = 0, factory: Any = None, **overrides: object) -> MedModel:
    settings: dict[str, object] = {
        "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 32, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "encoder_width": WIDTH,
    }
    settings.update(overrides)
    torch.manual_seed(seed)
    model = MedModel(MedSettings(**settings), factory).eval()  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # LayerNorm affine and biases away from their initial values: no path is negligible
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def inputs(seed: int = 0, batch: int = BATCH) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, LENGTH + 1, (batch,), generator=g)
    lengths[0] = LENGTH
    return {
        "input_ids": torch.randint(1, 50, (batch, LENGTH), generator=g),
        "attention_mask": (torch.arange(LENGTH) < lengths[:, None]).long(),
        "states": torch.randn(batch, ENC_TOKENS, WIDTH, generator=g),
        "enc_mask": (torch.arange(ENC_TOKENS) < torch.randint(1, ENC_TOKENS + 1, (batch, 1), generator=g)).long(),
    }


def assert_leading_positions_equal(model: MedModel, n: int = 1, atol: float = 1e-6, **kwargs: Any) -> None:
    with torch.no_grad():
        full = model(**kwargs).last_hidden_state
        cut = model(**kwargs, last_layer_positions=n).last_hidden_state
    assert cut.shape == (full.shape[0], n, full.shape[2])
    torch.testing.assert_close(cut, full[:, :n], atol=atol, rtol=0)


IMPLEMENTATIONS = pytest.mark.parametrize("implementation", ["sdpa", "eager"])


@IMPLEMENTATIONS
@pytest.mark.parametrize("n", [1, 3, LENGTH])
@pytest.mark.parametrize("padded", [False, True])
def test_self_attention_only(implementation: str, n: int, padded: bool) -> None:
    model = tiny_med(attn_implementation=implementation, add_cross_attention=False)
    x = inputs(1)
    assert_leading_positions_equal(model, n, input_ids=x["input_ids"],
                                   attention_mask=x["attention_mask"] if padded else None, mode="text")


@IMPLEMENTATIONS
@pytest.mark.parametrize("padded", [False, True])
def test_decoder_causal_mask(implementation: str, padded: bool) -> None:
    model = tiny_med(attn_implementation=implementation)
    x = inputs(2)
    for n in (1, 4):
        assert_leading_positions_equal(model, n, input_ids=x["input_ids"],
                                       attention_mask=x["attention_mask"] if padded else None,
                                       encoder_hidden_states=x["states"], is_decoder=True)


@IMPLEMENTATIONS
def test_three_dimensional_self_mask_rows_are_cut(implementation: str) -> None:
    model = tiny_med(attn_implementation=implementation)
    x = inputs(3)
    g = torch.Generator().manual_seed(3)
    mask = (torch.rand(BATCH, LENGTH, LENGTH, generator=g) > 0.4).long()
    mask[:, :, 0] = 1  # every row sees something
    assert_leading_positions_equal(model, 2, input_ids=x["input_ids"], attention_mask=mask,
                                   encoder_hidden_states=x["states"])


@IMPLEMENTATIONS
@pytest.mark.parametrize("encoder_mask", ["none", "per_row", "per_query"])
def test_cross_attention(implementation: str, encoder_mask: str) -> None:
    model = tiny_med(attn_implementation=implementation)
    x = inputs(4)
    enc_mask = {"none": None, "per_row": x["enc_mask"],
                "per_query": (torch.rand(BATCH, LENGTH, ENC_TOKENS, generator=torch.Generator().manual_seed(4)) > 0.3)
                .long().index_fill(2, torch.tensor([0]), 1)}[encoder_mask]
    for n in (1, 3):
        assert_leading_positions_equal(model, n, input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                                       encoder_hidden_states=x["states"], encoder_attention_mask=enc_mask)


@IMPLEMENTATIONS
@pytest.mark.parametrize(("index", "grouped"), [([2, 0, 1, 1, 0, 2], True), ([0, 0, 0, 0, 0, 1, 2, 3], False)])
@pytest.mark.parametrize("per_query_mask", [False, True])
def test_encoder_kv_index_grouped_and_gathered(
    implementation: str, index: list[int], grouped: bool, per_query_mask: bool
) -> None:
    index_t = torch.tensor(index)
    unique = int(index_t.max()) + 1
    assert bool(group_by_state(index_t, unique).group_size) is grouped
    model = tiny_med(attn_implementation=implementation)
    x = inputs(5, batch=len(index))
    enc_mask = x["enc_mask"]
    if per_query_mask:
        enc_mask = enc_mask[:, None, :].expand(-1, LENGTH, -1).clone()
        enc_mask[:, 1:, 1] = 0  # rows differ, so the sliced rows matter
    kwargs = {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"], "encoder_attention_mask": enc_mask}
    with torch.no_grad():
        full = model(**kwargs, encoder_hidden_states=x["states"][:unique][index_t]).last_hidden_state
        cut = model(**kwargs, encoder_hidden_states=x["states"][:unique], encoder_kv_index=index_t,
                    last_layer_positions=1).last_hidden_state
        with_key_values = model(**kwargs, encoder_hidden_states=x["states"][:unique], encoder_kv_index=index_t,
                                encoder_key_values=model.project_encoder_states(x["states"][:unique]),
                                last_layer_positions=1).last_hidden_state
    torch.testing.assert_close(cut, full[:, :1], atol=1e-6, rtol=0)
    torch.testing.assert_close(with_key_values, full[:, :1], atol=1e-6, rtol=0)


@IMPLEMENTATIONS
@pytest.mark.parametrize("mode", ["text", "fusion", "multimodal"])
def test_fusion_layer_modes(implementation: str, mode: str) -> None:
    """ALBEF-style: text layers [0, 2), fusion layers [2, 4) with cross-attention."""
    model = tiny_med(attn_implementation=implementation, num_hidden_layers=4, fusion_layer=2)
    x = inputs(6)
    text = {"input_ids": x["input_ids"]}
    if mode == "fusion":
        with torch.no_grad():
            text = {"encoder_embeds": model(input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                                            mode="text").last_hidden_state}
    assert_leading_positions_equal(model, 1, **text, attention_mask=x["attention_mask"], mode=mode,
                                   encoder_hidden_states=None if mode == "text" else x["states"],
                                   encoder_attention_mask=None if mode == "text" else x["enc_mask"])


def test_alternating_encoder_states_and_no_layer_run() -> None:
    """ALBEF NLVR: a list of states, layer l attends image (l - fusion_layer) % 2; fusion_layer = N runs no layer."""
    model = tiny_med(num_hidden_layers=4, fusion_layer=1)
    x, y = inputs(7), inputs(8)
    assert_leading_positions_equal(model, 1, input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                                   encoder_hidden_states=[x["states"], y["states"]],
                                   encoder_attention_mask=[x["enc_mask"], y["enc_mask"]])
    empty = tiny_med(num_hidden_layers=2, fusion_layer=2)
    embeds = torch.randn(BATCH, LENGTH, 32)
    assert_leading_positions_equal(empty, 2, encoder_embeds=embeds, mode="fusion")


@IMPLEMENTATIONS
def test_custom_twin_cross_attention(implementation: str) -> None:
    """BLIP NLVR's twin cross-attention module (a factory) gets the cut rows and list of cut masks too."""
    model = tiny_med(factory=nlvr_cross_attention_factory(1), attn_implementation=implementation)
    x, y = inputs(9), inputs(10)
    assert_leading_positions_equal(model, 1, input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                                   encoder_hidden_states=[x["states"], y["states"]],
                                   encoder_attention_mask=[x["enc_mask"], y["enc_mask"]])


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_equal_the_full_forward_sliced(checkpointing: bool) -> None:
    x = inputs(11)
    weights = torch.randn(1, 32, generator=torch.Generator().manual_seed(11))
    grads: list[dict[str, torch.Tensor]] = []
    state_grads = []
    for n in (None, 1):
        model = tiny_med(seed=3).train()  # dropout 0: deterministic
        model.set_gradient_checkpointing(checkpointing)
        states = x["states"].clone().requires_grad_()
        out = model(input_ids=x["input_ids"], attention_mask=x["attention_mask"], encoder_hidden_states=states,
                    encoder_attention_mask=x["enc_mask"], last_layer_positions=n).last_hidden_state
        (out[:, 0] * weights).sum().backward()
        grads.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
        state_grads.append(states.grad)
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-5, msg=name)
    torch.testing.assert_close(state_grads[1], state_grads[0], atol=1e-6, rtol=1e-5)
    last = "encoder.layer.2.intermediate.dense.weight"
    assert torch.any(grads[1][last] != 0)


def test_bad_values_raise_clear_errors() -> None:
    model = tiny_med()
    x = inputs(12)
    base = {"input_ids": x["input_ids"], "encoder_hidden_states": x["states"]}
    for bad in (0, -1, LENGTH + 1, True, 1.0):
        with pytest.raises(ValueError, match=r"last_layer_positions must be an int in \[1, text length=7\]"):
            model(**base, last_layer_positions=bad)
    clashes = [({"use_cache": True}, "use_cache/cache"), ({"output_attentions": True}, "output_attentions"),
               ({"output_hidden_states": True}, "output_hidden_states")]
    for extra, name in clashes:
        with pytest.raises(ValueError, match=f"last_layer_positions=1 cannot be combined with {name}"):
            model(**base, **extra, last_layer_positions=1)
