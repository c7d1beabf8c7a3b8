"""``BlipForPreTraining``: ITC (momentum encoders, queues, distillation) + ITM (hard negatives, 1e-4 weights) + LM,
the encoder/decoder parameter sharing of BLIP pre-training, the EMA and queue updates."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModelForPreTraining

from tests.common.model_tester import ModelTesterMixin, _tensors, assert_raises_clear
from tests.models.blip.reference_utils import tiny_blip_config
from vl_hub.losses import lm_loss
from vl_hub.models.blip import modeling_blip_pretrain
from vl_hub.models.blip.convert_blip_checkpoint import load_lavis_checkpoint
from vl_hub.models.blip.modeling_blip import BlipModel
from vl_hub.models.blip.modeling_blip_pretrain import (
    BlipForPreTraining,
    decoder_shares_parameter,
)

QUEUE = 8


def make_inputs(batch_size: int = 2, length: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """Normalised pixels and ``[CLS] w... [SEP] [PAD]*`` caption ids; row 1 is padded."""
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


def build(seed: int = 0, **overrides) -> BlipForPreTraining:
    torch.manual_seed(seed)
    return BlipForPreTraining(tiny_blip_config(queue_size=QUEUE, **overrides))


def perturb_online_(model: BlipForPreTraining, scale: float = 0.05) -> None:
    """Makes the online weights differ from the momentum copies (as after some training)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn_like(p))


@torch.no_grad()
def momentum_features(model: BlipForPreTraining, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    image = model.visual_encoder_m(inputs["pixel_values"])[:, 0]
    text = model.text_encoder_m(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], mode="text")
    return (
        F.normalize(model.vision_proj_m(image), dim=-1),
        F.normalize(model.text_proj_m(text.last_hidden_state[:, 0]), dim=-1),
    )


class TestBlipForPreTraining(ModelTesterMixin):
    model_class = BlipForPreTraining
    auto_class = AutoModelForPreTraining
    expected_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "sim_i2t": (2, 2 + QUEUE),
        "sim_t2i": (2, 2 + QUEUE),
        "itm_logits": (6, 2),
        "logits": (2, 7, 232),
        "image_feat": (2, 32),
        "text_feat": (2, 32),
    }

    def get_config(self):
        return tiny_blip_config(queue_size=QUEUE)

    def get_inputs(self, batch_size: int = 2):
        return make_inputs(batch_size)

    def forward(self, model, inputs):
        torch.manual_seed(0)  # the hard negatives are drawn with torch.multinomial
        return model(**inputs)

    def test_batch_invariance(self) -> None:
        """ITM needs two pairs to draw negatives, so batch 2 is compared with the first rows of batch 3."""
        model = self.build_model()
        with torch.no_grad():
            full = _tensors(self.forward(model, make_inputs(3, seed=5)))
            part = _tensors(self.forward(model, {k: v[:2] for k, v in make_inputs(3, seed=5).items()}))
        for key in ("image_feat", "text_feat", "logits"):
            torch.testing.assert_close(part[key], full[key][:2], atol=1e-5, rtol=0)
        torch.testing.assert_close(part["itm_logits"][:2], full["itm_logits"][:2], atol=1e-5, rtol=0)  # positives
        torch.testing.assert_close(part["sim_i2t"][:, 2:], full["sim_i2t"][:2, 3:], atol=1e-5, rtol=0)  # vs queue


# ---------------------------------------------------------------------------------------------- parameter sharing
def test_decoder_shares_everything_but_self_attention_with_the_encoder() -> None:
    model = build()
    shared, own = [], []
    for name, param in model.text_decoder.bert.named_parameters(remove_duplicate=False):
        (shared if param is model.text_encoder.get_parameter(name) else own).append(name)
        assert decoder_shares_parameter(name) == (param is model.text_encoder.get_parameter(name)), name
    assert own and all(".attention." in n for n in own)
    assert {n.split(".")[-3] for n in own} == {"self", "output"}  # attention.self.{q,k,v}, attention.output.*
    layer0 = {n.removeprefix("encoder.layer.0.") for n in shared if n.startswith("encoder.layer.0.")}
    assert layer0 == {
        f"{block}.{p}"
        for block in ("crossattention.self.query", "crossattention.self.key", "crossattention.self.value",
                      "crossattention.output.dense", "crossattention.output.LayerNorm", "intermediate.dense",
                      "output.dense", "output.LayerNorm")
        for p in ("weight", "bias")
    }
    assert {n for n in shared if n.startswith("embeddings.")} == {
        "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
        "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias",
    }
    # the declared tied keys (what save/load use) are exactly these pairs
    expected_ties = {f"text_decoder.bert.{n}": f"text_encoder.{n}" for n in shared}
    expected_ties["text_decoder.cls.predictions.decoder.weight"] = "text_encoder.embeddings.word_embeddings.weight"
    expected_ties["text_decoder.cls.predictions.decoder.bias"] = "text_decoder.cls.predictions.bias"
    assert model.all_tied_weights_keys == expected_ties
    lm = model.text_decoder.cls.predictions
    assert lm.decoder.weight is model.text_encoder.embeddings.word_embeddings.weight
    assert lm.decoder.bias is lm.bias
    # the momentum encoder is a separate copy
    assert model.text_encoder_m.embeddings.word_embeddings.weight is not model.text_encoder.embeddings.word_embeddings.weight


def test_lm_loss_trains_the_shared_encoder_weights_but_not_its_self_attention() -> None:
    model = build().train()
    model(**make_inputs()).loss_lm.backward()
    layer = model.text_encoder.encoder.layer[0]
    for param in (layer.crossattention.self.query.weight, layer.intermediate.dense.weight,
                  model.text_encoder.embeddings.word_embeddings.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert layer.attention.self.query.weight.grad is None  # the decoder has its own causal self-attention
    assert model.text_decoder.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_checkpoint_stores_shared_tensors_once_and_reloads_tied(tmp_path: Path) -> None:
    model = build().eval()
    model.save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    decoder_keys = {k for k in saved if k.startswith("text_decoder.")}
    assert decoder_keys and all(".attention." in k or k.startswith("text_decoder.cls.") for k in decoder_keys)
    assert "text_decoder.cls.predictions.decoder.weight" not in saved
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert type(loaded) is BlipForPreTraining
    assert loaded.text_decoder.bert.encoder.layer[1].output.dense.weight is loaded.text_encoder.encoder.layer[1].output.dense.weight
    assert loaded.text_decoder.cls.predictions.decoder.weight is loaded.text_encoder.embeddings.word_embeddings.weight
    assert not any(p.requires_grad for n, p in loaded.named_parameters() if "_m." in n)  # still frozen after loading
    assert torch.equal(loaded.image_queue, model.image_queue) and torch.equal(loaded.queue_ptr, model.queue_ptr)


def test_from_an_encoder_checkpoint_momentum_copies_online_and_queues_start_fresh(tmp_path: Path) -> None:
    """A checkpoint without the training state (here a ``BlipModel`` one): momentum copies start equal to the online
    weights (LAVIS ``copy_params``) and frozen, the queues hold random unit columns, the pointer is 0."""
    torch.manual_seed(0)
    BlipModel(tiny_blip_config(queue_size=QUEUE)).save_pretrained(tmp_path)
    model = BlipForPreTraining.from_pretrained(tmp_path)
    for param, param_m in model.momentum_parameter_pairs():
        assert torch.equal(param, param_m) and not param_m.requires_grad
    torch.testing.assert_close(model.image_queue.norm(dim=0), torch.ones(QUEUE), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.text_queue.norm(dim=0), torch.ones(QUEUE), atol=1e-5, rtol=0)
    assert model.queue_ptr.tolist() == [0]
    assert model.text_decoder.bert.embeddings.word_embeddings.weight is model.text_encoder.embeddings.word_embeddings.weight


def test_lavis_named_state_dict_loads_through_the_conversion() -> None:
    """A LAVIS ``BlipPretrain`` state dict stores tied tensors under every name, plus position_ids buffers."""
    source = build(seed=3).eval()
    with torch.no_grad():
        source.image_queue.mul_(-1)
        source.queue_ptr.fill_(4)
    lavis = {k: v.clone() for k, v in source.state_dict().items()}
    lavis["text_encoder.embeddings.position_ids"] = torch.arange(64)[None]
    lavis["text_decoder.bert.embeddings.position_ids"] = torch.arange(64)[None]
    model = load_lavis_checkpoint(lavis, source.config, BlipForPreTraining)
    loaded, expected = model.state_dict(), source.state_dict()
    assert list(loaded) == list(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected if k != "queue_ptr")
    assert loaded["queue_ptr"].tolist() == [0]  # reset after loading, as LAVIS's from_config does
    assert model.text_decoder.bert.embeddings.word_embeddings.weight is model.text_encoder.embeddings.word_embeddings.weight
    assert not any(p.requires_grad for n, p in model.named_parameters() if "_m." in n)


# ---------------------------------------------------------------------------------------------- losses
def test_losses_are_the_three_lavis_objectives(monkeypatch) -> None:
    model = build().eval()
    inputs = make_inputs()
    calls = []
    real = modeling_blip_pretrain.sample_hard_negatives

    def spy(sim_i2t, sim_t2i, idx=None, epsilon=0.0, generator=None):
        calls.append((sim_i2t.detach().clone(), sim_t2i.detach().clone(), idx, epsilon))
        return real(sim_i2t, sim_t2i, idx, epsilon=epsilon, generator=generator)

    monkeypatch.setattr(modeling_blip_pretrain, "sample_hard_negatives", spy)
    with torch.no_grad():
        out = model(**inputs, alpha=0.4)
        image_feat_m, text_feat_m = momentum_features(model, inputs)
    torch.testing.assert_close(out.loss, out.loss_itc + out.loss_itm + out.loss_lm, atol=1e-6, rtol=0)

    # ITC: online features against [momentum keys of the batch; queue], distillation targets with alpha
    temp = model.temp.detach()
    sim_i2t = out.image_feat @ torch.cat([text_feat_m.t(), model.text_queue], 1) / temp
    sim_t2i = out.text_feat @ torch.cat([image_feat_m.t(), model.image_queue], 1) / temp
    torch.testing.assert_close(out.sim_i2t, sim_i2t, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.sim_t2i, sim_t2i, atol=1e-5, rtol=0)
    hard = torch.zeros_like(sim_i2t)
    hard.fill_diagonal_(1)

    def soft_ce(sim, sim_m):
        targets = 0.4 * F.softmax(sim_m, 1) + 0.6 * hard
        return -(F.log_softmax(sim, 1) * targets).sum(1).mean()

    sim_i2t_m = image_feat_m @ torch.cat([text_feat_m.t(), model.text_queue], 1) / temp
    sim_t2i_m = text_feat_m @ torch.cat([image_feat_m.t(), model.image_queue], 1) / temp
    expected_itc = (soft_ce(sim_i2t, sim_i2t_m) + soft_ce(sim_t2i, sim_t2i_m)) / 2
    torch.testing.assert_close(out.loss_itc, expected_itc, atol=1e-5, rtol=0)

    # ITM: BLIP pre-training's softmax + 1e-4 weights on the batch block of the ITC logits
    (s_i2t, s_t2i, idx, epsilon), = calls
    assert epsilon == 1e-4 and idx is None
    torch.testing.assert_close(s_i2t, sim_i2t[:, :2], atol=1e-5, rtol=0)
    torch.testing.assert_close(s_t2i, sim_t2i[:, :2], atol=1e-5, rtol=0)
    assert out.itm_labels.tolist() == [1, 1, 0, 0, 0, 0]
    torch.testing.assert_close(out.loss_itm, F.cross_entropy(out.itm_logits, out.itm_labels), atol=1e-6, rtol=0)

    # LM: [DEC] first, padding -> -100, label smoothing 0.1
    labels = inputs["input_ids"].clone()
    labels[:, 0] = 230
    labels[labels == 0] = -100
    assert torch.equal(out.decoder_labels, labels)
    torch.testing.assert_close(out.loss_lm, lm_loss(out.logits, labels, label_smoothing=0.1), atol=1e-6, rtol=0)


def test_itm_positives_use_enc_ids_and_match_a_direct_encoder_pass() -> None:
    model = build().eval()
    inputs = make_inputs()
    with torch.no_grad():
        torch.manual_seed(0)
        out = model(**inputs)
        ids = inputs["input_ids"].clone()
        ids[:, 0] = 231
        states = model.text_encoder(
            input_ids=ids, attention_mask=inputs["attention_mask"],
            encoder_hidden_states=model.visual_encoder(inputs["pixel_values"]),
        ).last_hidden_state
    torch.testing.assert_close(out.itm_logits[:2], model.itm_head(states[:, 0]), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- state updates
def test_training_step_updates_momentum_by_ema_and_advances_the_queues() -> None:
    model = build(momentum=0.9).train()
    perturb_online_(model)
    with torch.no_grad():
        model.temp.fill_(0.9)  # clamped to 0.5 by a training step
    pairs = list(model.momentum_parameter_pairs())
    before = [(p.detach().clone(), m.detach().clone()) for p, m in pairs]
    image_queue, text_queue = model.image_queue.clone(), model.text_queue.clone()
    inputs = make_inputs()

    model(**inputs)
    for (p, m), (p0, m0) in zip(pairs, before):
        torch.testing.assert_close(m, 0.9 * m0 + 0.1 * p0, atol=1e-6, rtol=0)
    assert len(pairs) == sum(1 for n, _ in model.named_parameters() if n.split(".")[0].endswith("_m"))
    assert model.temp.item() == 0.5
    assert model.queue_ptr.tolist() == [2]
    image_feat_m, text_feat_m = momentum_features(model, inputs)  # no dropout in the tiny config
    torch.testing.assert_close(model.image_queue[:, :2], image_feat_m.t(), atol=1e-6, rtol=0)
    torch.testing.assert_close(model.text_queue[:, :2], text_feat_m.t(), atol=1e-6, rtol=0)
    assert torch.equal(model.image_queue[:, 2:], image_queue[:, 2:])
    assert torch.equal(model.text_queue[:, 2:], text_queue[:, 2:])

    for expected_ptr in (4, 6, 0, 2):  # the pointer wraps around the queue
        model(**inputs)
        assert model.queue_ptr.tolist() == [expected_ptr]


def test_eval_forward_changes_no_state() -> None:
    model = build().eval()
    perturb_online_(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model(**make_inputs())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_training_lowers_the_loss() -> None:
    model = build().train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    inputs = make_inputs(4, seed=1)
    losses = []
    for step in range(8):
        torch.manual_seed(step)
        out = model(**inputs)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_bad_inputs_raise_clear_errors() -> None:
    model = build()
    inputs = make_inputs(2)
    assert_raises_clear(lambda: model(**make_inputs(1)), ValueError, "at least 2 pairs")
    assert_raises_clear(lambda: model(input_ids=inputs["input_ids"]), ValueError, "missing pixel_values")
    assert_raises_clear(lambda: model(**inputs, alpha=-0.1), ValueError, "alpha=-0.1")
    video = {**inputs, "pixel_values": torch.randn(2, 4, 3, 32, 32)}
    assert_raises_clear(lambda: model(**video), ValueError, "takes images (batch, 3, H, W)")
    three = make_inputs(3)
    model.train()
    assert_raises_clear(lambda: model(**three), ValueError, "queue size 8 is not a multiple of the (global) batch size 3")
    assert_raises_clear(lambda: BlipForPreTraining(tiny_blip_config(tie_word_embeddings=False)), ValueError,
                        "tie_word_embeddings=False")


def test_momentum_itc_refuses_image_ids_without_an_idx_queue() -> None:
    """Pre-training keeps no ``idx_queue``: the shared momentum ITC step says so instead of ignoring ``idx``."""
    from vl_hub.models._lavis_base import momentum_itc

    model = build().eval()
    inputs = make_inputs()
    feat = F.normalize(torch.randn(2, model.config.embed_dim), dim=-1)
    args = (model, inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"], feat, feat, 0.4)
    assert_raises_clear(
        lambda: momentum_itc(*args, idx=torch.tensor([0, 1])), ValueError, "BlipForPreTraining", "idx_queue", "idx=None"
    )
    itc, image_embeds_m = momentum_itc(*args)
    assert torch.isfinite(itc.loss) and image_embeds_m.shape[0] == 2
