"""``MedModel(encoder_kv_index=...)``: cross-attention keys/values projected once per unique encoder state and
gathered per row must equal the per-row projection of ``encoder_hidden_states[encoder_kv_index]``."""

from __future__ import annotations

import pytest
import torch

from vl_hub.layers.med import MedModel, MedSettings
from vl_hub.layers.med_attention import group_by_state


def tiny_med(**overrides: object) -> MedModel:
    settings = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                    encoder_width=24)
    settings.update(overrides)
    torch.manual_seed(0)
    return MedModel(MedSettings(**settings)).eval()  # type: ignore[arg-type]


def inputs(batch: int, unique: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (batch, 7), generator=g)
    mask = (torch.arange(7) < torch.randint(3, 8, (batch, 1), generator=g)).long()
    states = torch.randn(unique, 5, 24, generator=g)
    index = torch.randint(0, unique, (batch,), generator=g)
    return ids, mask, states, index


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize(("batch", "unique", "seed"), [(9, 3, 0), (6, 1, 1), (5, 5, 2), (12, 4, 3)])
def test_indexed_equals_per_row_projection(implementation: str, batch: int, unique: int, seed: int) -> None:
    model = tiny_med(attn_implementation=implementation)
    ids, mask, states, index = inputs(batch, unique, seed)
    if seed == 2:
        index = torch.tensor([4, 0, 4, 2, 4])  # repeats and an unused state
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states[index]).last_hidden_state
        got = model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states,
                    encoder_kv_index=index).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_per_row_encoder_mask_and_attention_probabilities() -> None:
    model = tiny_med(attn_implementation="eager")
    ids, mask, states, index = inputs(8, 3, 4)
    enc_mask = (torch.arange(5) < torch.tensor([2, 5, 3, 4, 5, 1, 5, 3])[:, None]).long()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states[index],
                    encoder_attention_mask=enc_mask, output_attentions=True)
        got = model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states, encoder_kv_index=index,
                    encoder_attention_mask=enc_mask, output_attentions=True)
    torch.testing.assert_close(got.last_hidden_state, ref.last_hidden_state, atol=1e-5, rtol=0)
    for a, b in zip(got.cross_attentions, ref.cross_attentions, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_key_value_projections_see_unique_states_only() -> None:
    model = tiny_med()
    ids, mask, states, index = inputs(10, 3, 5)
    rows: list[int] = []
    hooks = [
        proj.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0]))
        for layer in model.encoder.layer
        for proj in (layer.crossattention.self.key, layer.crossattention.self.value)
    ]
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states, encoder_kv_index=index)
    assert rows == [3] * 4  # 2 layers x (key, value), 3 unique states each, never the 10 rows
    rows.clear()
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states[index])
    assert rows == [10] * 4
    for hook in hooks:
        hook.remove()


def test_gradients_match() -> None:
    model = tiny_med()
    ids, mask, states, index = inputs(6, 2, 6)
    states_a = states.clone().requires_grad_()
    states_b = states.clone().requires_grad_()
    model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states_a[index]).last_hidden_state.sum().backward()
    model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states_b,
          encoder_kv_index=index).last_hidden_state.sum().backward()
    torch.testing.assert_close(states_b.grad, states_a.grad, atol=1e-5, rtol=1e-4)


def test_cache_keeps_unique_projections_across_steps() -> None:
    model = tiny_med()
    ids, _, states, index = inputs(4, 2, 7)
    with torch.no_grad():
        ref = model(input_ids=ids[:, :4], encoder_hidden_states=states[index], use_cache=True, is_decoder=True)
        ref2 = model(input_ids=ids[:, 4:5], encoder_hidden_states=states[index], cache=ref.cache, is_decoder=True)
        got = model(input_ids=ids[:, :4], encoder_hidden_states=states, encoder_kv_index=index, use_cache=True,
                    is_decoder=True)
        assert got.cache.cross_attention_cache.layers[0].keys.shape[0] == 2  # unique states cached, not rows
        got2 = model(input_ids=ids[:, 4:5], encoder_hidden_states=states, encoder_kv_index=index, cache=got.cache,
                     is_decoder=True)
    torch.testing.assert_close(got2.last_hidden_state, ref2.last_hidden_state, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("index", "match"),
    [(torch.tensor([0, 1, 3]), r"values must be in \[0, 3\)"), (torch.tensor([0, 1]), "shape \\(batch=3,\\)"),
     (torch.tensor([0.0, 1.0, 2.0]), "integer tensor"), (torch.tensor([-1, 0, 1]), "got min -1")],
)
def test_bad_index_raises_clearly(index: torch.Tensor, match: str) -> None:
    model = tiny_med()
    ids, _, states, _ = inputs(3, 3, 8)
    with pytest.raises(ValueError, match=match):
        model(input_ids=ids, encoder_hidden_states=states, encoder_kv_index=index)
    with pytest.raises(ValueError, match="one \\(unique states"):
        model(input_ids=ids, encoder_hidden_states=[states, states], encoder_kv_index=torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize(
    ("index", "grouped"),
    [([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], False), ([2, 0, 1, 1, 0, 2, 2, 0, 1], True), ([3, 3, 3], True),
     ([0, 1, 2, 3, 4, 0, 1, 2, 3, 4], True), ([4, 1, 4, 1, 4], True)],
)
def test_grouped_and_gathered_paths(implementation: str, index: list[int], grouped: bool) -> None:
    """Balanced rows share one attention call per state (grouped; states without rows get no group); skewed ones
    fall back to a gather: same result, with a per-row encoder mask too."""
    index_t = torch.tensor(index)
    assert bool(group_by_state(index_t, 5).group_size) is grouped
    model = tiny_med(attn_implementation=implementation)
    ids, mask, states, _ = inputs(len(index), 5, 9)
    enc_mask = (torch.arange(5) < torch.randint(1, 6, (len(index), 1), generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states[index_t],
                         encoder_attention_mask=enc_mask.long()).last_hidden_state
        got = model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states, encoder_kv_index=index_t,
                    encoder_attention_mask=enc_mask.long()).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_group_by_state_slots_by_hand() -> None:
    grouping = group_by_state(torch.tensor([1, 0, 1, 2, 0]), 3)
    assert grouping.group_size == 2
    # state 0 rows 1, 4 -> slots 0, 1; state 1 rows 0, 2 -> slots 2, 3; state 2 row 3 -> slot 4
    assert grouping.dest.tolist() == [2, 0, 3, 4, 1]


def test_group_by_state_skips_states_without_rows() -> None:
    grouping = group_by_state(torch.tensor([3, 1, 3]), 5)
    assert grouping.group_size == 2 and grouping.states.tolist() == [1, 3]
    # state 1 (group 0) row 1 -> slot 0; state 3 (group 1) rows 0, 2 -> slots 2, 3
    assert grouping.dest.tolist() == [2, 0, 3]
    assert group_by_state(torch.tensor([0, 1, 1, 0]), 2).states is None


def test_precomputed_encoder_key_values_equal_projecting() -> None:
    model = tiny_med()
    ids, mask, states, _ = inputs(6, 4, 9)
    index = torch.tensor([3, 0, 3, 1, 0, 3])
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states, encoder_kv_index=index)
        key_values = model.project_encoder_states(states)
        got = model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states, encoder_kv_index=index,
                    encoder_key_values=key_values)
        torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=1e-6, rtol=0)
        with pytest.raises(ValueError, match="project the same states"):
            model(input_ids=ids, attention_mask=mask, encoder_hidden_states=states[:2],
                  encoder_kv_index=torch.zeros(6, dtype=torch.long), encoder_key_values=key_values)
