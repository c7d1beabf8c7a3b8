"""ALBEF encoder heads: ``AlbefModel`` (feature extractor) and ``AlbefForImageTextRetrieval`` (ITM/ITC, the k-test
retrieval scorer, ITC + ITM training with momentum encoders and queues)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

from tests.common.model_tester import ModelTesterMixin, assert_raises_clear
from tests.models.albef.reference_utils import load_albef_reference, tiny_albef_config
from vl_hub.auto import AutoModelForImageTextRetrieval
from vl_hub.models.albef.modeling_albef import AlbefForImageTextRetrieval, AlbefModel
from vl_hub.retrieval_scoring import brute_force_scores, rerank_top_k

ATOL = 1e-4


# ---------------------------------------------------------------------------------------------- LAVIS parity
@pytest.fixture(scope="module")
def feature_reference(reference_dir: Path):
    model, ref = load_albef_reference(reference_dir, "albef_feature_extractor", AlbefModel)
    ids, mask = ref.inp("input_ids"), ref.inp("attention_mask")
    with torch.no_grad():
        image = model.extract_features(ref.inp("image"), mode="image")
        text = model.extract_features(input_ids=ids, attention_mask=mask, mode="text")
        multimodal = model.extract_features(ref.inp("image"), ids, mask, mode="multimodal")
        # the ITM / classification path: the ids through every layer (LAVIS forward_automask)
        all_layers = model.encode_multimodal(image.image_embeds, ids, mask)
    return ref, image, text, multimodal, all_layers


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("image_embeds", "image"),
        ("image_embeds_proj", "image"),
        ("text_embeds", "text"),
        ("text_embeds_proj", "text"),
        ("multimodal_embeds", "multimodal"),
    ],
)
def test_feature_extractor_parity(feature_reference, name: str, mode: str) -> None:
    ref, image, text, multimodal, _ = feature_reference
    out = {"image": image, "text": text, "multimodal": multimodal}[mode][name]
    torch.testing.assert_close(out, ref.out(name), atol=ATOL, rtol=0)


def test_feature_extractor_parity_itc_sim_cls(feature_reference) -> None:
    ref, image, text, _, _ = feature_reference
    torch.testing.assert_close(image.image_feat @ text.text_feat.t(), ref.out("itc_sim_cls"), atol=ATOL, rtol=0)
    # the ITC features are exactly the CLS rows of the per-token projections
    torch.testing.assert_close(image.image_feat, image.image_embeds_proj[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(text.text_feat, text.text_embeds_proj[:, 0], atol=1e-6, rtol=0)


def test_feature_extractor_text_layers_stop_at_fusion_layer(feature_reference) -> None:
    """text_embeds come from layers [0, 2); the fusion layers on them equal all 4 layers run on the ids."""
    ref, _, text, multimodal, all_layers = feature_reference
    assert text.text_embeds.shape == (2, 11, 64) and multimodal.multimodal_embeds.shape == (2, 11, 64)
    assert (text.text_embeds - multimodal.multimodal_embeds).abs().max() > 1e-2
    torch.testing.assert_close(all_layers, ref.out("multimodal_embeds"), atol=ATOL, rtol=0)


@pytest.fixture(scope="module")
def retrieval_reference(reference_dir: Path):
    model, ref = load_albef_reference(reference_dir, "albef_retrieval", AlbefForImageTextRetrieval)
    with torch.no_grad():
        image_embeds, image_feat = model.encode_images(ref.inp("image"))
        text_embeds, text_feat = model.encode_texts(ref.inp("input_ids"), ref.inp("attention_mask"))
    return model, ref, {"image_embeds": image_embeds, "image_feat": image_feat, "text_embeds": text_embeds,
                        "text_feat": text_feat}


@pytest.mark.parametrize("name", ["image_embeds", "image_feat", "text_embeds", "text_feat"])
def test_retrieval_parity_features(retrieval_reference, name: str) -> None:
    _, ref, features = retrieval_reference
    torch.testing.assert_close(features[name], ref.out(name), atol=ATOL, rtol=0)


def test_retrieval_parity_sims_i2t(retrieval_reference) -> None:
    model, ref, _ = retrieval_reference
    with torch.no_grad():
        sim = model(ref.inp("image"), ref.inp("input_ids"), ref.inp("attention_mask"), match_head="itc").itc_sim
    torch.testing.assert_close(sim, ref.out("sims_i2t"), atol=ATOL, rtol=0)


def test_retrieval_parity_itm_logits_all_pairs(retrieval_reference) -> None:
    model, ref, _ = retrieval_reference
    ids, mask, images = ref.inp("input_ids"), ref.inp("attention_mask"), ref.inp("image")
    n, m = images.shape[0], ids.shape[0]
    with torch.no_grad():
        logits = model(
            images.repeat_interleave(m, dim=0), ids.repeat(n, 1), mask.repeat(n, 1), match_head="itm"
        ).itm_logits
    torch.testing.assert_close(logits.view(n, m, 2), ref.out("itm_logits_all_pairs"), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["score_i2t", "score_t2i"])
def test_retrieval_parity_scores(retrieval_reference, name: str) -> None:
    """LAVIS compute_sim_matrix(k_test=2), through the batched scorer: from the ids through every layer (LAVIS's
    ITM path), and from the cached text-layer states (fusion layers only)."""
    model, ref, features = retrieval_reference
    ids, mask = ref.inp("input_ids"), ref.inp("attention_mask")
    k = ref.meta["inputs"]["k_test"]
    scores = model.score_pairs(
        features["image_embeds"], features["image_feat"], ids, mask, features["text_feat"], k_test=k,
        pairs_per_call=3,
    )
    torch.testing.assert_close(scores[name], ref.out(name), atol=ATOL, rtol=0)
    fused = model.retrieval_scores(ref.inp("image"), ids, mask, k_test=k, batch_size=2, pairs_per_call=2)
    torch.testing.assert_close(fused[name], ref.out(name), atol=ATOL, rtol=0)


def test_retrieval_checkpoint_loads_momentum_copies_and_queues(retrieval_reference) -> None:
    model, ref, _ = retrieval_reference
    state = model.state_dict()
    for key, value in ref.weights.items():
        if key.endswith("position_ids"):
            continue
        if key.split(".", 1)[0].endswith("_m") or key in ("image_queue", "text_queue", "idx_queue", "temp"):
            torch.testing.assert_close(state[key], value, atol=0, rtol=0, msg=key)
    assert model.queue_ptr.item() == 0  # LAVIS resets the pointer after loading
    assert sum(1 for k in ref.weights if k.split(".", 1)[0].endswith("_m")) > 100
    assert not any(p.requires_grad for _, _, p in model.named_momentum_parameter_pairs())


# ---------------------------------------------------------------------------------------------- tiny models
def make_inputs(batch_size: int = 2, length: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random normalised pixels and ``[CLS] w... [SEP] [PAD]*`` ids; the second row is padded."""
    g = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch_size, 3, 32, 32, generator=g)
    input_ids = torch.randint(5, 230, (batch_size, length), generator=g)
    input_ids[:, 0] = 2
    input_ids[:, -1] = 3
    attention_mask = torch.ones_like(input_ids)
    if batch_size > 1:
        input_ids[1, length - 3 :] = torch.tensor([3, 0, 0])
        attention_mask[1, length - 2 :] = 0
    return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}


def tiny_model(model_class, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return model_class(tiny_albef_config(**overrides)).eval()


class TestAlbefModel(ModelTesterMixin):
    model_class = AlbefModel
    auto_class = AutoModel
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "image_embeds": (2, 17, 64),
        "image_embeds_proj": (2, 17, 32),
        "text_embeds": (2, 7, 64),
        "text_embeds_proj": (2, 7, 32),
        "multimodal_embeds": (2, 7, 64),
        "image_feat": (2, 32),
        "text_feat": (2, 32),
    }

    def get_config(self):
        return tiny_albef_config()

    def get_inputs(self, batch_size: int = 2):
        return make_inputs(batch_size)

    def get_loss_inputs(self, batch_size: int = 2):
        return {**make_inputs(batch_size), "return_loss": True}

    def forward(self, model, inputs):
        out = model(**inputs)
        if inputs.get("return_loss"):
            # the ITC loss does not reach the fusion layers; add the multimodal states so every weight is checked
            out["loss"] = out.loss + out.multimodal_embeds.square().mean()
        return out


class TestAlbefForImageTextRetrieval(ModelTesterMixin):
    model_class = AlbefForImageTextRetrieval
    auto_class = AutoModelForImageTextRetrieval
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"itm_logits": (2, 2), "image_embeds": (2, 17, 64)}

    def get_config(self):
        return tiny_albef_config()

    def get_inputs(self, batch_size: int = 2):
        return make_inputs(batch_size)

    def get_loss_inputs(self, batch_size: int = 2):
        return {**make_inputs(batch_size), "idx": torch.arange(batch_size)}


def test_features_are_normalised_and_padding_invariant() -> None:
    model = tiny_model(AlbefModel)
    inputs = make_inputs()
    with torch.no_grad():
        out = model(**inputs)
        image_feat = model.get_image_features(inputs["pixel_values"])
        text_feat = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        padded = {k: torch.cat([v, torch.zeros_like(v[:, :3])], dim=1) for k, v in inputs.items() if k != "pixel_values"}
        padded_feat = model.get_text_features(**padded)
    torch.testing.assert_close(image_feat, out.image_embeds_proj[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(text_feat, out.text_embeds_proj[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(image_feat.norm(dim=-1), torch.ones(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(padded_feat, text_feat, atol=1e-5, rtol=0)


def test_itm_runs_every_layer_and_equals_fusion_on_text_states() -> None:
    model = tiny_model(AlbefForImageTextRetrieval)
    inputs = make_inputs()
    with torch.no_grad():
        itm = model(**inputs).itm_logits
        image_embeds, _ = model.encode_images(inputs["pixel_values"])
        text_embeds, _ = model.encode_texts(inputs["input_ids"], inputs["attention_mask"])
        fused = model.itm_head(model.fuse(text_embeds, inputs["attention_mask"], image_embeds)[:, 0])
        from_ids = model.itm_match_logits(image_embeds, inputs["input_ids"], inputs["attention_mask"])
        from_states = model.itm_match_logits(image_embeds, attention_mask=inputs["attention_mask"],
                                             text_embeds=text_embeds)
    torch.testing.assert_close(fused, itm, atol=1e-5, rtol=0)
    torch.testing.assert_close(from_ids, itm[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(from_states, itm[:, 1], atol=1e-5, rtol=0)


def test_itm_match_logits_compute_the_last_layer_for_cls_only() -> None:
    """Only [CLS] is read: the last fusion layer's feed-forward sees one position per pair on both text paths."""
    model = tiny_model(AlbefForImageTextRetrieval)
    inputs = make_inputs(batch_size=3, seed=5)
    rows: list[int] = []
    last = model.text_encoder.encoder.layer[-1].intermediate
    hook = last.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            image_embeds, _ = model.encode_images(inputs["pixel_values"])
            text_embeds, _ = model.encode_texts(inputs["input_ids"], inputs["attention_mask"])
            states = model.encode_multimodal(image_embeds, inputs["input_ids"], inputs["attention_mask"])
            expected = model.itm_head(states[:, 0])[:, 1]
            from_ids = model.itm_match_logits(image_embeds, inputs["input_ids"], inputs["attention_mask"])
            from_states = model.itm_match_logits(image_embeds, attention_mask=inputs["attention_mask"],
                                                 text_embeds=text_embeds)
    finally:
        hook.remove()
    assert rows == [7, 1, 1]
    torch.testing.assert_close(from_ids, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(from_states, expected, atol=1e-6, rtol=0)


def _per_query_reference(model, pixel_values, input_ids, attention_mask, k):
    """LAVIS compute_sim_matrix's loops: one ITM forward of k pairs per query."""
    with torch.no_grad():
        image_embeds, image_feat = model.encode_images(pixel_values)
        _, text_feat = model.encode_texts(input_ids, attention_mask)
        sim = image_feat @ text_feat.t()
        i2t = torch.full_like(sim, -100.0)
        t2i = torch.full_like(sim.t(), -100.0)
        for i in range(sim.shape[0]):
            top_sim, top = sim[i].topk(k)
            logits = model.itm_match_logits(image_embeds[i].repeat(k, 1, 1), input_ids[top], attention_mask[top])
            i2t[i, top] = logits + top_sim
        for j in range(sim.shape[1]):
            top_sim, top = sim[:, j].topk(k)
            logits = model.itm_match_logits(image_embeds[top], input_ids[j].repeat(k, 1), attention_mask[j].repeat(k, 1))
            t2i[j, top] = logits + top_sim
    return i2t, t2i


def test_retrieval_scorer_equals_the_original_loops_and_brute_force() -> None:
    model = tiny_model(AlbefForImageTextRetrieval)
    images = make_inputs(5, seed=1)["pixel_values"]
    texts = make_inputs(7, seed=2)
    ids, mask = texts["input_ids"], texts["attention_mask"]
    k = 3
    scores = model.retrieval_scores(images, ids, mask, k_test=k, batch_size=2, pairs_per_call=4)
    i2t, t2i = _per_query_reference(model, images, ids, mask, k)
    torch.testing.assert_close(scores.score_i2t, i2t, atol=1e-5, rtol=0)
    torch.testing.assert_close(scores.score_t2i, t2i, atol=1e-5, rtol=0)
    with torch.no_grad():
        image_embeds, _ = model.encode_images(images)
        itm_all = torch.stack([
            model.itm_match_logits(image_embeds[i].repeat(7, 1, 1), ids, mask) for i in range(5)
        ])
    brute = brute_force_scores(itm_all, scores.sim, k)
    torch.testing.assert_close(scores.score_i2t, brute.score_i2t, atol=1e-5, rtol=0)
    torch.testing.assert_close(scores.score_t2i, brute.score_t2i, atol=1e-5, rtol=0)
    assert ((scores.score_i2t > -100).sum(dim=1) == k).all() and ((scores.score_t2i > -100).sum(dim=1) == k).all()


def test_scorer_shards_queries() -> None:
    """Contiguous blocks of queries (distributed evaluation) give the rows of the full matrices."""
    model = tiny_model(AlbefForImageTextRetrieval)
    images = make_inputs(4, seed=3)["pixel_values"]
    texts = make_inputs(6, seed=4)
    with torch.no_grad():
        image_embeds, image_feat = model.encode_images(images)
        text_embeds, text_feat = model.encode_texts(texts["input_ids"], texts["attention_mask"])
    args = (image_embeds, image_feat, texts["input_ids"], texts["attention_mask"], text_feat)
    full = model.score_pairs(*args, k_test=2, text_embeds=text_embeds)
    shard = {"image_queries": slice(1, 3), "text_queries": slice(2, 5)}
    if "image_queries" not in inspect.signature(rerank_top_k).parameters:  # the scorer without query sharding
        assert_raises_clear(lambda: model.score_pairs(*args, k_test=2, **shard), NotImplementedError, "slice")
        return
    part = model.score_pairs(*args, k_test=2, text_embeds=text_embeds, **shard)
    torch.testing.assert_close(part.score_i2t, full.score_i2t[1:3], atol=1e-6, rtol=0)
    torch.testing.assert_close(part.score_t2i, full.score_t2i[2:5], atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------- training
def _batch(batch_size: int = 4, seed: int = 3) -> dict[str, torch.Tensor]:
    return {**make_inputs(batch_size, seed=seed), "idx": torch.arange(batch_size) + 10}


_QUEUES = ("image_queue", "text_queue", "idx_queue", "queue_ptr")


def _eval_loss(model, batch, queues: dict[str, torch.Tensor], seed: int = 0) -> float:
    """Loss in eval mode (no momentum update, no enqueue) with a fixed hard-negative draw, no distillation and the
    queues of ``queues``: training fills the queues with this very batch, which changes the ITC task itself."""
    was_training = model.training
    current = {k: getattr(model, k).clone() for k in _QUEUES}
    for k, v in queues.items():
        getattr(model, k).copy_(v)
    model.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        loss = model(**batch, alpha=0.0).loss.item()
    for k, v in current.items():
        getattr(model, k).copy_(v)
    model.train(was_training)
    return loss


def test_retrieval_loss_matches_hand_computation() -> None:
    """Fresh model (momentum == online), eval mode, distillation on: the ITC targets are alpha * softmax(momentum
    sims) + (1 - alpha) * the same-idx positives over batch + queue; loss_itm is the CE of the ITM logits, whose
    positive rows are the inference head's."""
    model = tiny_model(AlbefForImageTextRetrieval, use_distill=True)
    batch = _batch()
    batch["idx"] = torch.tensor([10, 10, 11, 12])  # two captions of one image
    model.idx_queue[0, :4] = torch.tensor([11, 7, 7, 7])  # a queued key of image 11
    alpha = 0.3
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(**batch, alpha=alpha)
        image_feat = model.get_image_features(batch["pixel_values"])
        text_feat = model.get_text_features(batch["input_ids"], batch["attention_mask"])
    assert out.sim_i2t.shape == (4, 4 + 8)
    keys_t = torch.cat([text_feat, model.text_queue.t()])
    keys_i = torch.cat([image_feat, model.image_queue.t()])
    torch.testing.assert_close(out.sim_i2t, image_feat @ keys_t.t() / model.temp, atol=1e-5, rtol=0)
    idx_all = torch.cat([batch["idx"], model.idx_queue[0]])
    pos = (batch["idx"][:, None] == idx_all[None]).float()
    hard = pos / pos.sum(1, keepdim=True)

    def ce(sim):
        targets = alpha * sim.softmax(1) + (1 - alpha) * hard  # momentum == online here
        return -(sim.log_softmax(1) * targets).sum(1).mean()

    torch.testing.assert_close(out.loss_itc, (ce(out.sim_i2t) + ce(out.sim_t2i)) / 2, atol=1e-5, rtol=0)
    torch.testing.assert_close(keys_i @ text_feat.t() / model.temp, out.sim_t2i.t(), atol=1e-5, rtol=0)
    assert torch.equal(out.itm_labels, torch.tensor([1] * 4 + [0] * 8))
    torch.testing.assert_close(out.loss_itm, F.cross_entropy(out.itm_logits, out.itm_labels), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.loss, out.loss_itc + out.loss_itm, atol=0, rtol=0)
    with torch.no_grad():
        itm = model(**{k: v for k, v in batch.items() if k != "idx"}).itm_logits
    torch.testing.assert_close(out.itm_logits[:4], itm, atol=1e-5, rtol=0)


def test_without_distillation_alpha_is_ignored() -> None:
    model = tiny_model(AlbefForImageTextRetrieval, use_distill=False)
    batch = _batch()
    losses = []
    for alpha in (0.0, 0.9):
        torch.manual_seed(0)
        with torch.no_grad():
            losses.append(model(**batch, alpha=alpha).loss_itc)
    torch.testing.assert_close(losses[0], losses[1], atol=0, rtol=0)


def test_retrieval_loss_decreases_with_optimizer_steps() -> None:
    """With distillation on (the ALBEF setting); test_without_distillation_alpha_is_ignored covers the other path."""
    model = tiny_model(AlbefForImageTextRetrieval, use_distill=True)
    batch = _batch()
    queues = {k: getattr(model, k).clone() for k in _QUEUES}
    before = _eval_loss(model, batch, queues)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(8):
        out = model(**batch, alpha=0.4)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    after = _eval_loss(model, batch, queues)
    # the ITM part starts near its floor (1 positive : 2 negatives); the ITC part carries the decrease
    assert after < 0.85 * before, (before, after)


def test_momentum_update_follows_ema_and_queue_advances() -> None:
    model = tiny_model(AlbefForImageTextRetrieval, momentum=0.9)
    with torch.no_grad():  # make online and momentum weights differ
        for _, param, _ in model.named_momentum_parameter_pairs():
            param.add_(0.01 * torch.randn_like(param))
    online = {n: p.detach().clone() for n, p, _ in model.named_momentum_parameter_pairs()}
    momentum = {n: p_m.detach().clone() for n, _, p_m in model.named_momentum_parameter_pairs()}
    batch = _batch()
    model.train()
    out = model(**batch)
    for name, _, param_m in model.named_momentum_parameter_pairs():
        torch.testing.assert_close(param_m, 0.9 * momentum[name] + 0.1 * online[name], atol=1e-6, rtol=0)
        assert not param_m.requires_grad
    assert out.loss.requires_grad
    assert model.queue_ptr.item() == 4
    with torch.no_grad():
        feat_m = F.normalize(model.vision_proj_m(model.visual_encoder_m(batch["pixel_values"])[:, 0]), dim=-1)
    torch.testing.assert_close(model.image_queue[:, :4], feat_m.t(), atol=1e-6, rtol=0)
    assert torch.equal(model.idx_queue[0, :4], batch["idx"])
    model(**batch)
    assert model.queue_ptr.item() == 0  # 8 = 2 batches: wrapped around


def test_eval_mode_loss_leaves_the_model_untouched() -> None:
    model = tiny_model(AlbefForImageTextRetrieval, use_distill=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model(**_batch())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_retrieval_trains_with_transformers_trainer(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    model = tiny_model(AlbefForImageTextRetrieval)
    batch = _batch()
    rows = [{k: v[i] for k, v in batch.items()} for i in range(4)]
    queues = {k: getattr(model, k).clone() for k in _QUEUES}
    before = _eval_loss(model, batch, queues)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=10, learning_rate=2e-3, report_to=[],
        use_cpu=True, save_strategy="no", logging_steps=1, dataloader_drop_last=True, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    after = _eval_loss(model, batch, queues)
    assert after < 0.9 * before, (before, after)
    assert not any(p.requires_grad for _, _, p in model.named_momentum_parameter_pairs())


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors() -> None:
    model = tiny_model(AlbefModel)
    retrieval = tiny_model(AlbefForImageTextRetrieval)
    two, three = make_inputs(2), make_inputs(3)
    long_ids = torch.full((2, 65), 5)
    assert_raises_clear(lambda: model(two["pixel_values"], three["input_ids"]), ValueError, "batch sizes differ", "2 images", "3 texts")
    assert_raises_clear(lambda: retrieval(two["pixel_values"], three["input_ids"]), ValueError, "batch sizes differ")
    assert_raises_clear(lambda: model(input_ids=long_ids), ValueError, "65 tokens", "64 positions", "truncat")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 3, 30, 30)), ValueError, "30x30", "patch size 8")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 4, 32, 32)), ValueError, "4 channels", "RGB")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 32, 32, 3)), ValueError, "channels")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 3, 3, 32, 32)), ValueError, "no video path")
    assert_raises_clear(lambda: model(), ValueError, "pixel_values", "input_ids", "neither")
    assert_raises_clear(lambda: retrieval(pixel_values=two["pixel_values"]), ValueError, "missing input_ids")
    assert_raises_clear(lambda: retrieval(input_ids=two["input_ids"]), ValueError, "missing pixel_values")
    assert_raises_clear(lambda: model.extract_features(input_ids=two["input_ids"], mode="image"), ValueError, "mode='image' needs pixel_values")
    assert_raises_clear(lambda: model.extract_features(input_ids=two["input_ids"]), ValueError, "missing pixel_values")
    assert_raises_clear(lambda: model.extract_features(**two, mode="fusion"), ValueError, "'fusion'", "'multimodal'")
    assert_raises_clear(lambda: retrieval(**two, match_head="cos"), ValueError, "match_head='cos'", "'itc'")
    assert_raises_clear(lambda: model(input_ids=torch.full((1, 4), 300)), ValueError, "outside the vocabulary", "230")
    assert_raises_clear(lambda: model(pixel_values=two["pixel_values"].long()), ValueError, "dtype")
    assert_raises_clear(lambda: model(pixel_values=two["pixel_values"], return_loss=True), ValueError, "return_loss=True needs both")
    assert_raises_clear(lambda: retrieval(**two, idx=torch.arange(3)), ValueError, "one image id per pair")
    assert_raises_clear(lambda: retrieval(**two, idx=torch.tensor([5, 5])), ValueError, "no negative")
    assert_raises_clear(lambda: retrieval(**two, idx=torch.arange(2), alpha=1.5), ValueError, "alpha=1.5")
    assert_raises_clear(lambda: retrieval.retrieval_scores(two["pixel_values"], two["input_ids"], k_test=0), ValueError, "k_test")


# ---------------------------------------------------------------------------------------------- hub
def _hub_snapshot(tmp_path: Path, model, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    src = tmp_path / "src"
    model.save_pretrained(src)
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in src.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    assert hub_constants.HF_HUB_OFFLINE  # set by tests/conftest.py before huggingface_hub was imported


def test_loads_by_repo_id_from_local_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(AlbefForImageTextRetrieval)
    _hub_snapshot(tmp_path, model, "org/tiny-albef", monkeypatch)
    inputs = make_inputs()
    loaded = AutoModelForImageTextRetrieval.from_pretrained("org/tiny-albef").eval()
    features = AutoModel.from_pretrained("org/tiny-albef").eval()  # the encoder part, as AlbefModel
    assert type(loaded) is AlbefForImageTextRetrieval and type(features) is AlbefModel
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).itm_logits, model(**inputs).itm_logits, atol=0, rtol=0)
        torch.testing.assert_close(
            features.get_image_features(inputs["pixel_values"]), model.get_image_features(inputs["pixel_values"]),
            atol=0, rtol=0,
        )
    assert torch.equal(loaded.image_queue, model.image_queue)
    assert not any(p.requires_grad for _, _, p in loaded.named_momentum_parameter_pairs())


def test_retrieval_from_an_encoder_checkpoint_starts_like_lavis(tmp_path: Path) -> None:
    """An AlbefModel checkpoint has no ITM head, momentum copies or queues: copies start equal to the online
    weights, the queues fresh (unit columns, ids -100, pointer 0)."""
    encoder = tiny_model(AlbefModel)
    encoder.save_pretrained(tmp_path)
    model = AlbefForImageTextRetrieval.from_pretrained(tmp_path)
    for name, param, param_m in model.named_momentum_parameter_pairs():
        assert torch.equal(param, param_m) and not param_m.requires_grad, name
    torch.testing.assert_close(model.image_queue.norm(dim=0), torch.ones(8))
    assert torch.equal(model.idx_queue, torch.full((1, 8), -100)) and model.queue_ptr.item() == 0
    inputs = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_text_features(inputs["input_ids"]), encoder.get_text_features(inputs["input_ids"]), atol=0, rtol=0
        )
