"""BLIP ITM scoring with the cross-attention keys/values of each unique image projected once per call."""

from __future__ import annotations

import pytest
import torch

from tests.models.blip.reference_utils import tiny_blip_config
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval
from vl_hub.retrieval_scoring import brute_force_scores, itc_similarity


@pytest.fixture(scope="module")
def model() -> BlipForImageTextRetrieval:
    torch.manual_seed(0)
    return BlipForImageTextRetrieval(tiny_blip_config()).eval()


def texts(m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, 11, (m,), generator=g)
    mask = (torch.arange(10) < lengths[:, None]).long()
    ids = torch.randint(5, 230, (m, 10), generator=g)
    ids[:, 0] = 2
    return ids.masked_fill(mask == 0, 0), mask


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_indexed_itm_logits_equal_per_pair(model: BlipForImageTextRetrieval, implementation: str, seed: int) -> None:
    model.text_encoder.set_attn_implementation(implementation)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(4, 17, 64, generator=g)
    ids, mask = texts(11, seed)
    index = torch.randint(0, 4, (11,), generator=g)
    index[:3] = index[3]  # always some repeated images
    with torch.no_grad():
        expected = model.itm_match_logits(images[index], ids, mask)
        got = model.itm_match_logits(images, ids, mask, image_index=index)
    model.text_encoder.set_attn_implementation("sdpa")
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_score_pairs_equals_brute_force_and_projects_unique_images_only(model: BlipForImageTextRetrieval) -> None:
    g = torch.Generator().manual_seed(3)
    n, m, k = 5, 12, 3
    image_embeds = torch.randn(n, 17, 64, generator=g)
    image_feat = torch.nn.functional.normalize(torch.randn(n, 32, generator=g), dim=-1)
    text_feat = torch.nn.functional.normalize(torch.randn(m, 32, generator=g), dim=-1)
    ids, mask = texts(m, 3)
    calls: list[int] = []
    projected: list[int] = []
    key = model.text_encoder.encoder.layer[0].crossattention.self.key
    hook = key.register_forward_hook(lambda mod, args, out: projected.append(args[0].shape[0]))
    original = model.itm_match_logits

    def counting(images: torch.Tensor, *args: object, image_index: torch.Tensor | None = None,
                 image_key_values: list | None = None) -> torch.Tensor:
        assert image_index is not None and image_key_values is not None
        calls.append(images.shape[0])
        return original(images, *args, image_index=image_index, image_key_values=image_key_values)

    model.itm_match_logits = counting  # type: ignore[method-assign]
    try:
        out = model.score_pairs(image_embeds, image_feat, ids, mask, text_feat, k_test=k, pairs_per_call=7)
    finally:
        del model.itm_match_logits
        hook.remove()
    # one projection of a call's distinct images, shared by the call's length groups (several forwards)
    assert len(calls) > len(projected) > 1
    assert sum(projected) < 2 * (n + m) * k  # fewer than one projection per pair
    with torch.no_grad():
        rows = torch.arange(n).repeat_interleave(m)
        itm_all = model.itm_match_logits(image_embeds[rows], ids.repeat(n, 1), mask.repeat(n, 1)).view(n, m)
    ref = brute_force_scores(itm_all, itc_similarity(image_feat, text_feat), k)
    torch.testing.assert_close(out.score_i2t, ref.score_i2t, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.score_t2i, ref.score_t2i, atol=1e-5, rtol=0)


def test_itm_logits_compute_the_last_layer_for_enc_only(model: BlipForImageTextRetrieval) -> None:
    """Only [ENC] is read: the last layer's feed-forward sees one position per pair, logits as the full states'."""
    g = torch.Generator().manual_seed(4)
    images = torch.randn(3, 17, 64, generator=g)
    ids, mask = texts(7, 4)
    index = torch.tensor([0, 2, 2, 1, 0, 2, 1])
    rows: list[int] = []
    last = model.text_encoder.encoder.layer[-1].intermediate
    hook = last.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            expected = model.itm_head(model.encode_multimodal(images[index], ids, mask)[:, 0])[:, 1]
            assert rows == [10]
            plain = model.itm_match_logits(images[index], ids, mask)
            indexed = model.itm_match_logits(images, ids, mask, image_index=index)
    finally:
        hook.remove()
    assert rows == [10, 1, 1]
    torch.testing.assert_close(plain, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(indexed, expected, atol=1e-5, rtol=0)
