"""BLIP encoder heads: ``BlipModel`` (feature extractor) and ``BlipForImageTextRetrieval`` (ITM/ITC, training)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from transformers import AutoModel

from tests.common.model_tester import ModelTesterMixin, assert_raises_clear
from tests.models.blip.reference_utils import load_blip_reference, tiny_blip_config
from vl_hub.auto import AutoModelForImageTextRetrieval
from vl_hub.models.blip.modeling_blip import BlipForImageTextRetrieval, BlipModel

ATOL = 1e-4


# ---------------------------------------------------------------------------------------------- LAVIS parity
@pytest.fixture(scope="module")
def feature_reference(reference_dir: Path):
    model, ref = load_blip_reference(reference_dir, "blip_feature_extractor", BlipModel)
    with torch.no_grad():
        image = model.extract_features(ref.inp("image"), mode="image")
        text = model.extract_features(
            input_ids=ref.inp("text_input_ids"), attention_mask=ref.inp("text_attention_mask"), mode="text"
        )
        # [CLS] ids on purpose: the head puts [ENC] at position 0 itself (LAVIS got the [ENC] ids).
        multimodal = model.extract_features(
            ref.inp("image"), ref.inp("text_input_ids"), ref.inp("text_attention_mask"), mode="multimodal"
        )
    return ref, image, text, multimodal


@pytest.mark.parametrize(
    ("name", "mode", "field"),
    [
        ("image_embeds", "image", "image_embeds"),
        ("image_embeds_proj", "image", "image_embeds_proj"),
        ("text_embeds", "text", "text_embeds"),
        ("text_embeds_proj", "text", "text_embeds_proj"),
        ("multimodal_embeds", "multimodal", "multimodal_embeds"),
    ],
)
def test_feature_extractor_parity(feature_reference, name: str, mode: str, field: str) -> None:
    ref, image, text, multimodal = feature_reference
    out = {"image": image, "text": text, "multimodal": multimodal}[mode][field]
    torch.testing.assert_close(out, ref.out(name), atol=ATOL, rtol=0)


def test_feature_extractor_parity_itc_sim_cls(feature_reference) -> None:
    ref, image, text, _ = feature_reference
    sim = image.image_embeds_proj[:, 0] @ text.text_embeds_proj[:, 0].t()
    torch.testing.assert_close(sim, ref.out("itc_sim_cls"), atol=ATOL, rtol=0)
    # get_*_features are exactly those CLS rows
    torch.testing.assert_close(image.image_feat, image.image_embeds_proj[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(text.text_feat, text.text_embeds_proj[:, 0], atol=1e-6, rtol=0)


def test_multimodal_ids_are_enc_replaced(feature_reference) -> None:
    ref = feature_reference[0]
    expected = ref.inp("text_input_ids").clone()
    expected[:, 0] = ref.meta["tokenizer"]["enc_token_id"]
    assert torch.equal(expected, ref.inp("multimodal_input_ids"))


@pytest.fixture(scope="module")
def itm_reference(reference_dir: Path):
    return load_blip_reference(reference_dir, "blip_image_text_matching", BlipForImageTextRetrieval)


def test_image_text_matching_parity_itm_logits(itm_reference) -> None:
    model, ref = itm_reference
    with torch.no_grad():
        out = model(ref.inp("pair_image"), ref.inp("itm_input_ids"), ref.inp("itm_attention_mask"), match_head="itm")
    torch.testing.assert_close(out.itm_logits, ref.out("itm_logits"), atol=ATOL, rtol=0)


def test_image_text_matching_parity_itc_sim(itm_reference) -> None:
    model, ref = itm_reference
    with torch.no_grad():
        out = model(ref.inp("image"), ref.inp("itc_input_ids"), ref.inp("itc_attention_mask"), match_head="itc")
    torch.testing.assert_close(out.itc_sim, ref.out("itc_sim"), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------- tiny models
def make_inputs(batch_size: int = 2, length: int = 7, seed: int = 0, frames: int | None = None) -> dict[str, torch.Tensor]:
    """Random normalised pixels and ``[CLS] w... [SEP] [PAD]*`` ids; the second row is padded."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch_size, 3, 32, 32) if frames is None else (batch_size, frames, 3, 32, 32)
    pixel_values = torch.randn(shape, generator=g)
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
    return model_class(tiny_blip_config(**overrides)).eval()


class TestBlipModel(ModelTesterMixin):
    model_class = BlipModel
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
        return tiny_blip_config()

    def get_inputs(self, batch_size: int = 2):
        return make_inputs(batch_size)

    def get_loss_inputs(self, batch_size: int = 2):
        return {**make_inputs(batch_size), "return_loss": True}

    def forward(self, model, inputs):
        out = model(**inputs)
        if inputs.get("return_loss"):
            # the ITC loss does not reach the cross-attention; add the multimodal states so every weight is checked
            out["loss"] = out.loss + out.multimodal_embeds.square().mean()
        return out


class TestBlipForImageTextRetrieval(ModelTesterMixin):
    model_class = BlipForImageTextRetrieval
    auto_class = AutoModelForImageTextRetrieval
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"itm_logits": (2, 2), "image_embeds": (2, 17, 64)}

    def get_config(self):
        return tiny_blip_config()

    def get_inputs(self, batch_size: int = 2):
        return make_inputs(batch_size)

    def get_loss_inputs(self, batch_size: int = 2):
        return {**make_inputs(batch_size), "idx": torch.arange(batch_size)}


def test_image_and_text_features_are_normalised_cls_projections() -> None:
    model = tiny_model(BlipModel)
    inputs = make_inputs()
    with torch.no_grad():
        out = model(**inputs)
        image_feat = model.get_image_features(inputs["pixel_values"])
        text_feat = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(image_feat, out.image_embeds_proj[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(text_feat, out.text_embeds_proj[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(image_feat.norm(dim=-1), torch.ones(2), atol=1e-6, rtol=0)
    # padding is masked: extra padding changes nothing in the real tokens' features
    padded = {k: torch.cat([v, torch.zeros_like(v[:, :3])], dim=1) for k, v in inputs.items() if k != "pixel_values"}
    with torch.no_grad():
        torch.testing.assert_close(model.get_text_features(**padded), text_feat, atol=1e-5, rtol=0)


def test_itm_and_itc_heads_agree_with_building_blocks() -> None:
    model = tiny_model(BlipForImageTextRetrieval)
    inputs = make_inputs()
    with torch.no_grad():
        itm = model(**inputs, match_head="itm").itm_logits
        itc = model(**inputs, match_head="itc").itc_sim
        # [ENC] ids give the same ITM logits: the replacement is idempotent
        enc = {**inputs, "input_ids": inputs["input_ids"].clone()}
        enc["input_ids"][:, 0] = 231
        itm_enc = model(**enc, match_head="itm").itm_logits
        image_feat = model.get_image_features(inputs["pixel_values"])
        text_feat = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    assert itm.shape == (2, 2)
    torch.testing.assert_close(itm_enc, itm, atol=0, rtol=0)
    torch.testing.assert_close(itc, image_feat @ text_feat.t(), atol=1e-6, rtol=0)
    # ITC of 2 images against 3 texts: no batch-size coupling
    with torch.no_grad():
        three = make_inputs(3, seed=1)
        assert model(inputs["pixel_values"], three["input_ids"], three["attention_mask"], match_head="itc").itc_sim.shape == (2, 3)


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
    """Fresh model (momentum == online), eval mode: the ITC targets are alpha * softmax(sim) + (1 - alpha) * the
    same-idx positives over batch + queue, and loss_itm is the CE of the returned ITM logits."""
    model = tiny_model(BlipForImageTextRetrieval)
    batch = _batch()
    batch["idx"] = torch.tensor([10, 10, 11, 12])  # two captions of one image
    model.idx_queue[0, :4] = torch.tensor([11, 7, 7, 7])  # a queued key of image 11
    alpha = 0.3
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(**batch, alpha=alpha)
    assert out.sim_i2t.shape == (4, 4 + 8)
    idx_all = torch.cat([batch["idx"], model.idx_queue[0]])
    pos = (batch["idx"][:, None] == idx_all[None]).float()
    hard = pos / pos.sum(1, keepdim=True)

    def ce(sim):
        targets = alpha * sim.softmax(1) + (1 - alpha) * hard
        return -(sim.log_softmax(1) * targets).sum(1).mean()

    expected_itc = (ce(out.sim_i2t) + ce(out.sim_t2i)) / 2
    torch.testing.assert_close(out.loss_itc, expected_itc, atol=1e-5, rtol=0)
    assert torch.equal(out.itm_labels, torch.tensor([1] * 4 + [0] * 8))
    expected_itm = torch.nn.functional.cross_entropy(out.itm_logits, out.itm_labels)
    torch.testing.assert_close(out.loss_itm, expected_itm, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.loss, out.loss_itc + out.loss_itm, atol=0, rtol=0)
    # the positive pairs' ITM logits are those of the inference head
    with torch.no_grad():
        itm = model(**{k: v for k, v in batch.items() if k != "idx"}).itm_logits
    torch.testing.assert_close(out.itm_logits[:4], itm, atol=1e-5, rtol=0)


def test_retrieval_loss_decreases_with_optimizer_steps() -> None:
    model = tiny_model(BlipForImageTextRetrieval)
    batch = _batch()
    queues = {k: getattr(model, k).clone() for k in _QUEUES}
    before = _eval_loss(model, batch, queues)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(8):
        out = model(**batch, alpha=0.4)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    after = _eval_loss(model, batch, queues)
    assert after < 0.8 * before, (before, after)


def test_momentum_update_follows_ema_and_queue_advances() -> None:
    model = tiny_model(BlipForImageTextRetrieval, momentum=0.9)
    with torch.no_grad():  # make online and momentum weights differ
        for _, param, _ in model.named_momentum_parameter_pairs():
            param.add_(0.01 * torch.randn_like(param))
    online = {n: p.detach().clone() for n, p, _ in model.named_momentum_parameter_pairs()}
    momentum = {n: p_m.detach().clone() for n, _, p_m in model.named_momentum_parameter_pairs()}
    assert any(not torch.equal(online[n], momentum[n]) for n in online)
    batch = _batch()
    model.train()
    out = model(**batch)
    for name, _, param_m in model.named_momentum_parameter_pairs():
        torch.testing.assert_close(param_m, 0.9 * momentum[name] + 0.1 * online[name], atol=1e-6, rtol=0)
        assert not param_m.requires_grad
    assert out.loss.requires_grad
    # queue: the momentum features of the batch at columns [0, 4), ids alongside, pointer at 4
    assert model.queue_ptr.item() == 4
    from vl_hub.models._lavis_base import encode_vision

    with torch.no_grad():
        model.eval()  # the momentum text encoder has no dropout in this config anyway
        _, image_feat_m = encode_vision(model.visual_encoder_m, model.vision_proj_m, batch["pixel_values"])
    torch.testing.assert_close(model.image_queue[:, :4], image_feat_m.t(), atol=1e-6, rtol=0)
    assert torch.equal(model.idx_queue[0, :4], batch["idx"])
    model.train()
    model(**batch)
    assert model.queue_ptr.item() == 0  # 8 = 2 batches: wrapped around


def test_eval_mode_loss_leaves_momentum_and_queues_untouched() -> None:
    model = tiny_model(BlipForImageTextRetrieval)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model(**_batch())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_retrieval_trains_with_transformers_trainer(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    model = tiny_model(BlipForImageTextRetrieval)
    batch = _batch()
    rows = [{k: v[i] for k, v in batch.items()} for i in range(4)]
    queues = {k: getattr(model, k).clone() for k in _QUEUES}
    before = _eval_loss(model, batch, queues)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=8,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        dataloader_drop_last=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 8 and all(torch.isfinite(torch.tensor(losses)))
    after = _eval_loss(model, batch, queues)
    assert after < 0.8 * before, (before, after)
    assert not any(p.requires_grad for _, _, p in model.named_momentum_parameter_pairs())


# ---------------------------------------------------------------------------------------------- video
def test_video_tokens_are_the_frames_concatenated() -> None:
    model = tiny_model(BlipModel)
    video = make_inputs(2, frames=3)
    with torch.no_grad():
        out = model(**video)
        frames = [model(pixel_values=video["pixel_values"][:, t]) for t in range(3)]
    assert out.image_embeds.shape == (2, 3 * 17, 64)
    torch.testing.assert_close(out.image_embeds, torch.cat([f.image_embeds for f in frames], dim=1), atol=1e-6, rtol=0)
    mean_cls = torch.stack([model.vision_proj(f.image_embeds[:, 0]) for f in frames], dim=1).mean(1)
    torch.testing.assert_close(out.image_feat, torch.nn.functional.normalize(mean_cls, dim=-1), atol=1e-6, rtol=0)
    assert out.multimodal_embeds.shape == (2, 7, 64)


def test_video_retrieval_uses_concatenated_frames() -> None:
    model = tiny_model(BlipForImageTextRetrieval)
    video = make_inputs(2, frames=2)
    with torch.no_grad():
        itm = model(**video).itm_logits
        embeds = torch.cat([model.encode_images(video["pixel_values"][:, t])[0] for t in range(2)], dim=1)
        expected = model.itm_head(model.encode_multimodal(embeds, video["input_ids"], video["attention_mask"])[:, 0])
        scores = model.retrieval_scores(video["pixel_values"], video["input_ids"], video["attention_mask"], k_test=2)
    torch.testing.assert_close(itm, expected, atol=1e-5, rtol=0)
    assert scores.score_i2t.shape == (2, 2)


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors() -> None:
    model = tiny_model(BlipModel)
    retrieval = tiny_model(BlipForImageTextRetrieval)
    two, three = make_inputs(2), make_inputs(3)
    long_ids = torch.full((2, 65), 5)
    assert_raises_clear(lambda: model(two["pixel_values"], three["input_ids"]), ValueError, "batch sizes differ", "2 images", "3 texts")
    assert_raises_clear(lambda: retrieval(two["pixel_values"], three["input_ids"]), ValueError, "batch sizes differ")
    assert_raises_clear(lambda: model(input_ids=long_ids), ValueError, "65 tokens", "64 positions", "truncat")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 3, 30, 30)), ValueError, "30x30", "patch size 8")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 4, 32, 32)), ValueError, "4 channels", "RGB")
    assert_raises_clear(lambda: model(pixel_values=torch.randn(2, 32, 32, 3)), ValueError, "channels")
    assert_raises_clear(lambda: model(), ValueError, "pixel_values", "input_ids", "neither")
    assert_raises_clear(lambda: retrieval(pixel_values=two["pixel_values"]), ValueError, "missing input_ids")
    assert_raises_clear(lambda: retrieval(input_ids=two["input_ids"]), ValueError, "missing pixel_values")
    assert_raises_clear(lambda: model.extract_features(input_ids=two["input_ids"], mode="image"), ValueError, "mode='image' needs pixel_values")
    assert_raises_clear(lambda: model.extract_features(input_ids=two["input_ids"]), ValueError, "missing pixel_values")
    assert_raises_clear(lambda: model.extract_features(**two, mode="fusion"), ValueError, "'fusion'", "'multimodal'")
    assert_raises_clear(lambda: retrieval(**two, match_head="cos"), ValueError, "match_head='cos'", "'itc'")
    assert_raises_clear(lambda: model(input_ids=torch.full((1, 4), 300)), ValueError, "outside the vocabulary", "232")
    assert_raises_clear(lambda: model(pixel_values=two["pixel_values"].long()), ValueError, "dtype")
    assert_raises_clear(lambda: model(pixel_values=two["pixel_values"], return_loss=True), ValueError, "return_loss=True needs both")
    assert_raises_clear(lambda: retrieval(**two, idx=torch.arange(3)), ValueError, "one image id per pair")
    assert_raises_clear(lambda: retrieval(**two, idx=torch.tensor([5, 5])), ValueError, "no negative")


# ---------------------------------------------------------------------------------------------- hub
def test_loads_by_repo_id_from_local_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    model = tiny_model(BlipForImageTextRetrieval)
    src = tmp_path / "src"
    model.save_pretrained(src)
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--org--tiny-blip" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in src.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (cache / "models--org--tiny-blip" / "refs").mkdir()
    (cache / "models--org--tiny-blip" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    assert hub_constants.HF_HUB_OFFLINE  # set by tests/conftest.py before huggingface_hub was imported

    inputs = make_inputs()
    loaded = AutoModelForImageTextRetrieval.from_pretrained("org/tiny-blip").eval()
    features = AutoModel.from_pretrained("org/tiny-blip").eval()  # the encoder part, as BlipModel
    assert type(loaded) is BlipForImageTextRetrieval and type(features) is BlipModel
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).itm_logits, model(**inputs).itm_logits, atol=0, rtol=0)
        torch.testing.assert_close(
            features.get_image_features(inputs["pixel_values"]), model.get_image_features(inputs["pixel_values"]),
            atol=0, rtol=0,
        )


def test_retrieval_from_an_encoder_checkpoint_starts_like_lavis(tmp_path: Path) -> None:
    """A BlipModel checkpoint has no momentum copies or queues: they start as copies / fresh LAVIS queues."""
    encoder = tiny_model(BlipModel)
    encoder.save_pretrained(tmp_path)
    model = BlipForImageTextRetrieval.from_pretrained(tmp_path)
    for name, param, param_m in model.named_momentum_parameter_pairs():
        assert torch.equal(param, param_m) and not param_m.requires_grad, name
    torch.testing.assert_close(model.visual_encoder.pos_embed, encoder.visual_encoder.pos_embed, atol=0, rtol=0)
    torch.testing.assert_close(model.image_queue.norm(dim=0), torch.ones(8))
    assert torch.equal(model.idx_queue, torch.full((1, 8), -100)) and model.queue_ptr.item() == 0
    inputs = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            model.get_text_features(inputs["input_ids"]), encoder.get_text_features(inputs["input_ids"]), atol=0, rtol=0
        )
