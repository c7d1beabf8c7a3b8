"""The two-stage retrieval scorer (``vl_hub.retrieval_scoring``) and its BLIP wiring (``score_pairs``)."""

from __future__ import annotations

import pytest
import torch

from tests.common.model_tester import assert_raises_clear
from tests.models.blip.reference_utils import tiny_blip_config
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval
from vl_hub.retrieval_scoring import brute_force_scores, itc_similarity, rerank_top_k


def reference_scores(itm_all: torch.Tensor, sim: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LAVIS ``compute_sim_matrix`` written out per query, on precomputed all-pairs ITM logits (``k`` clamped to
    the number of candidates of each direction)."""
    n, m = sim.shape
    i2t = torch.full((n, m), -100.0)
    t2i = torch.full((m, n), -100.0)
    for i in range(n):
        top_sim, top_idx = sim[i].topk(min(k, m))
        i2t[i, top_idx] = itm_all[i, top_idx] + top_sim
    for j in range(m):
        top_sim, top_idx = sim[:, j].topk(min(k, n))
        t2i[j, top_idx] = itm_all[top_idx, j] + top_sim
    return i2t, t2i


class RecordingItm:
    """A deterministic fake ITM: logit(i, j) = sin(3i + 7j); records the pairs of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, image_index: torch.Tensor, text_index: torch.Tensor) -> torch.Tensor:
        self.calls.append((image_index.clone(), text_index.clone()))
        return torch.sin(3.0 * image_index + 7.0 * text_index)

    @staticmethod
    def all_pairs(n: int, m: int) -> torch.Tensor:
        i, j = torch.meshgrid(torch.arange(n), torch.arange(m), indexing="ij")
        return torch.sin(3.0 * i + 7.0 * j)


def test_hand_computed_example() -> None:
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]])
    out = rerank_top_k(sim, lambda i, t: (10 * i + t).float(), k_test=1)
    # image 0 -> text 0 (itm 0), image 1 -> text 1 (itm 11); text 0 -> image 0, text 1 -> image 1, text 2 -> image 0
    expected_i2t = torch.tensor([[0.9, -100, -100], [-100, 11.8, -100]])
    expected_t2i = torch.tensor([[0.9, -100], [-100, 11.8], [2.5, -100]])
    torch.testing.assert_close(out.score_i2t, expected_i2t)
    torch.testing.assert_close(out.score_t2i, expected_t2i)


@pytest.mark.parametrize(("n", "m", "k", "pairs_per_call"), [(6, 9, 3, 7), (9, 4, 4, 1), (5, 5, 2, 1000), (3, 8, 20, 5)])
@pytest.mark.parametrize("reuse_itm", [True, False])
def test_equals_per_query_reference_and_bounds_calls(n: int, m: int, k: int, pairs_per_call: int, reuse_itm: bool) -> None:
    g = torch.Generator().manual_seed(n * 100 + m)
    sim = torch.randn(n, m, generator=g)
    itm = RecordingItm()
    out = rerank_top_k(sim, itm, k_test=k, pairs_per_call=pairs_per_call, reuse_itm=reuse_itm)
    ki2t, kt2i = min(k, m), min(k, n)
    expected_i2t, expected_t2i = reference_scores(RecordingItm.all_pairs(n, m), sim, k)
    assert torch.equal(out.score_i2t, expected_i2t)
    assert torch.equal(out.score_t2i, expected_t2i)
    # every call holds whole queries and at most max(pairs_per_call, k) pairs
    for image_index, _ in itm.calls:
        assert image_index.numel() <= max(pairs_per_call, ki2t, kt2i)
    scored = {(int(i), int(t)) for ii, tt in itm.calls for i, t in zip(ii, tt)}
    total = sum(ii.numel() for ii, _ in itm.calls)
    union = int(((expected_i2t > -100) | (expected_t2i.t() > -100)).sum())
    if reuse_itm:
        assert total == union == len(scored)  # each distinct pair once
    else:
        assert total == n * ki2t + m * kt2i


def test_itc_similarity_in_chunks() -> None:
    a = torch.nn.functional.normalize(torch.randn(7, 5), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(4, 5), dim=-1)
    torch.testing.assert_close(itc_similarity(a, b, chunk_size=3), a @ b.t())


def test_bad_arguments_raise() -> None:
    assert_raises_clear(lambda: rerank_top_k(torch.randn(3), lambda i, t: i.float(), 2), ValueError, "(N_images, N_texts)")
    assert_raises_clear(lambda: rerank_top_k(torch.randn(3, 3), lambda i, t: i.float(), 0), ValueError, "k_test")
    assert_raises_clear(
        lambda: rerank_top_k(torch.randn(3, 3), lambda i, t: torch.zeros(1), 2), ValueError, "one 'match' logit per pair"
    )
    assert_raises_clear(lambda: itc_similarity(torch.randn(3, 4), torch.randn(3, 5)), ValueError, "same E")


def test_blip_score_pairs_equals_brute_force_on_tiny_model() -> None:
    torch.manual_seed(0)
    model = BlipForImageTextRetrieval(tiny_blip_config()).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(5, 3, 32, 32, generator=g)
    ids = torch.randint(5, 230, (7, 9), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    mask = torch.ones_like(ids)
    ids[2, 5:] = torch.tensor([3, 0, 0, 0])
    mask[2, 6:] = 0
    with torch.no_grad():
        image_embeds, image_feat = model.encode_images(images)
        _, text_feat = model.encode_texts(ids, mask)
        # all 35 pairs in one ITM forward: image i repeated over every text j
        pair_images = image_embeds.repeat_interleave(7, dim=0)
        itm_all = model.itm_match_logits(pair_images, ids.repeat(5, 1), mask.repeat(5, 1)).view(5, 7)
        sim = image_feat @ text_feat.t()
        expected = brute_force_scores(itm_all, sim, k_test=3)
        out = model.score_pairs(image_embeds, image_feat, ids, mask, text_feat, k_test=3, pairs_per_call=7)
        direct = model.retrieval_scores(images, ids, mask, k_test=3, batch_size=2, pairs_per_call=4)
    ref_i2t, ref_t2i = reference_scores(itm_all, sim, 3)
    torch.testing.assert_close(expected.score_i2t, ref_i2t, atol=0, rtol=0)
    torch.testing.assert_close(expected.score_t2i, ref_t2i, atol=0, rtol=0)
    for got in (out, direct):
        assert torch.equal(got.score_i2t == -100, ref_i2t == -100)
        assert torch.equal(got.score_t2i == -100, ref_t2i == -100)
        torch.testing.assert_close(got.score_i2t, ref_i2t, atol=1e-5, rtol=0)
        torch.testing.assert_close(got.score_t2i, ref_t2i, atol=1e-5, rtol=0)
    assert int((out.score_i2t > -100).sum()) == 5 * 3 and int((out.score_t2i > -100).sum()) == 7 * 3


def test_calls_come_image_by_image_and_bounded() -> None:
    sim = torch.randn(40, 90, generator=torch.Generator().manual_seed(3))
    itm = RecordingItm()
    rerank_top_k(sim, itm, k_test=8, pairs_per_call=50)
    images = torch.cat([i for i, _ in itm.calls])
    assert all(i.numel() <= 50 for i, _ in itm.calls)
    assert torch.all(images[1:] >= images[:-1]), "pairs are not grouped by image"
    # a call touches few images: far fewer distinct images per call than a per-text-query grouping would
    assert max(int(i.unique().numel()) for i, _ in itm.calls) <= 4  # ~25 pairs per image, 50 per call


def test_tied_similarities_keep_exactly_k_candidates() -> None:
    g = torch.Generator().manual_seed(4)
    rows = torch.randn(6, 12, generator=g)
    sim = torch.cat([rows, rows[:3]])  # images 6..8 duplicate 0..2: every text column has ties
    itm = RecordingItm()
    k = 4
    out = rerank_top_k(sim, itm, k_test=k, pairs_per_call=5)
    itm_all = RecordingItm.all_pairs(*sim.shape)
    for j in range(sim.shape[1]):
        kept = (out.score_t2i[j] > -100).nonzero().flatten()
        assert kept.numel() == k
        dropped = torch.ones(sim.shape[0], dtype=torch.bool)
        dropped[kept] = False
        assert sim[kept, j].min() >= sim[dropped, j].max()  # a valid top-k, ties broken either way
        torch.testing.assert_close(out.score_t2i[j, kept], itm_all[kept, j] + sim[kept, j], atol=0, rtol=0)
    ref_i2t, _ = reference_scores(itm_all, sim, k)
    assert torch.equal(out.score_i2t, ref_i2t)


def test_length_bucketed_scorer_cuts_right_padding_only() -> None:
    from vl_hub.retrieval_scoring import length_bucketed_scorer

    lengths = torch.tensor([3, 9, 5, 2, 7, 9])
    mask = (torch.arange(9)[None, :] < lengths[:, None]).long()
    seen = []

    def pair_logits(unique: torch.Tensor, slot: torch.Tensor, text_index: torch.Tensor, length: int) -> torch.Tensor:
        seen.append((unique.clone(), length, lengths[text_index].max().item()))
        return unique[slot].float() * 10 + text_index.float()

    score = length_bucketed_scorer(pair_logits, mask, buckets=2)
    image_index, text_index = torch.tensor([0, 0, 1, 1, 1, 4]), torch.tensor([0, 1, 2, 3, 4, 5])
    assert torch.equal(score(image_index, text_index), image_index.float() * 10 + text_index.float())
    assert [length for _, length, _ in seen] == [5, 9] and all(length == longest for _, length, longest in seen)
    seen.clear()
    left = mask.flip(1)  # left padding: nothing is cut
    length_bucketed_scorer(pair_logits, left, buckets=2)(image_index, text_index)
    assert [length for _, length, _ in seen] == [None]
    seen.clear()
    length_bucketed_scorer(pair_logits, None)(image_index, text_index)  # no mask: nothing is cut
    assert [length for _, length, _ in seen] == [None]


def test_blip_score_pairs_with_varied_lengths_equals_brute_force() -> None:
    torch.manual_seed(0)
    model = BlipForImageTextRetrieval(tiny_blip_config()).eval()
    g = torch.Generator().manual_seed(5)
    images = torch.randn(6, 3, 32, 32, generator=g)
    lengths = torch.randint(3, 16, (11,), generator=g)
    mask = (torch.arange(16)[None, :] < lengths[:, None]).long()
    ids = torch.randint(5, 230, (11, 16), generator=g).masked_fill(mask == 0, 0)
    ids[:, 0] = 2
    ids[torch.arange(11), lengths - 1] = 3
    with torch.no_grad():
        image_embeds, image_feat = model.encode_images(images)
        _, text_feat = model.encode_texts(ids, mask)
        itm_all = model.itm_match_logits(image_embeds.repeat_interleave(11, 0), ids.repeat(6, 1), mask.repeat(6, 1))
        sim = image_feat @ text_feat.t()
        out = model.score_pairs(image_embeds, image_feat, ids, mask, text_feat, k_test=4, pairs_per_call=9)
    ref_i2t, ref_t2i = reference_scores(itm_all.view(6, 11), sim, 4)
    assert torch.equal(out.score_i2t == -100, ref_i2t == -100) and torch.equal(out.score_t2i == -100, ref_t2i == -100)
    torch.testing.assert_close(out.score_i2t, ref_i2t, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.score_t2i, ref_t2i, atol=1e-5, rtol=0)
