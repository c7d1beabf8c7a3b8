"""CLIP towers: LAVIS golden parity (ViT and ModifiedResNet), transformers cross-check, SDPA == eager,
batch invariance, gradients, input errors, positional interpolation."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tests.common.reference import Reference, load_reference, sub_state_dict
from vl_hub.layers.clip_text import ClipTextTransformer
from vl_hub.layers.clip_transformer import (
    ClipAttention,
    ClipResidualAttentionBlock,
    QuickGELU,
    set_attn_implementation,
)
from vl_hub.layers.clip_vision import ClipVisionTransformer, interpolate_grid_positional_embedding
from vl_hub.layers.resnet import AttentionPool2d, ModifiedResNet

FIXTURES = ("clip_vit", "clip_resnet")


def _text_state_dict(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if not k.startswith("visual.") and k != "logit_scale"}


def _build(ref: Reference) -> tuple[ClipTextTransformer, torch.nn.Module]:
    """Both towers from the fixture's JSON config, loaded strictly with only a prefix strip."""
    construction = ref.meta["construction"]
    embed_dim = construction["embed_dim"]
    tc = construction["text_cfg"]
    text = ClipTextTransformer(
        vocab_size=tc["vocab_size"],
        context_length=tc["context_length"],
        width=tc["width"],
        layers=tc["layers"],
        embed_dim=embed_dim,
        num_heads=tc["heads"],
        activation="quick_gelu" if construction["quick_gelu"] else "gelu",
    )
    vc = construction["vision_cfg"]
    if isinstance(vc["layers"], list):
        vision: torch.nn.Module = ModifiedResNet(
            layers=vc["layers"], output_dim=embed_dim, image_size=vc["image_size"], width=vc["width"]
        )
        assert vision.num_heads == vc["heads"]  # default width * 32 // 64
    else:
        vision = ClipVisionTransformer(
            image_size=vc["image_size"],
            patch_size=vc["patch_size"],
            width=vc["width"],
            layers=vc["layers"],
            embed_dim=embed_dim,
            activation="quick_gelu" if construction["quick_gelu"] else "gelu",
        )
        assert vision.transformer.num_heads == vc["heads"]  # default width // 64
    text.load_state_dict(_text_state_dict(ref.weights), strict=True)
    vision.load_state_dict(sub_state_dict(ref.weights, "visual."), strict=True)
    return text.eval(), vision.eval()


@pytest.fixture(scope="module", params=FIXTURES)
def clip_ref(request: pytest.FixtureRequest, reference_dir: Path) -> Reference:
    return load_reference(reference_dir, request.param)


@pytest.fixture()
def towers(clip_ref: Reference) -> tuple[ClipTextTransformer, torch.nn.Module]:
    return _build(clip_ref)


def test_lavis_parity(clip_ref: Reference, towers: tuple[ClipTextTransformer, torch.nn.Module]) -> None:
    text, vision = towers
    outputs = clip_ref.meta["outputs"]
    assert outputs["out.image_embeds"]["meaning"].endswith("NOT normalised)")
    assert outputs["out.image_embeds_proj"]["l2_normalized"] and outputs["out.text_embeds_proj"]["l2_normalized"]
    with torch.no_grad():
        image = vision(clip_ref.inp("image"))
        txt = text(clip_ref.inp("text_ids"))
    torch.testing.assert_close(image.embeds, clip_ref.out("image_embeds"), atol=1e-4, rtol=0)
    torch.testing.assert_close(txt.embeds, clip_ref.out("text_embeds"), atol=1e-4, rtol=0)

    image_n = F.normalize(image.embeds, dim=-1)
    text_n = F.normalize(txt.embeds, dim=-1)
    torch.testing.assert_close(image_n, clip_ref.out("image_embeds_proj"), atol=1e-4, rtol=0)
    torch.testing.assert_close(text_n, clip_ref.out("text_embeds_proj"), atol=1e-4, rtol=0)

    logit_scale = clip_ref.weights["logit_scale"]
    torch.testing.assert_close(logit_scale, clip_ref.out("logit_scale"))
    assert abs(logit_scale.item() - 2.3) < 1e-6  # read from the weights, not LAVIS's init ln(1/0.07)
    scale = logit_scale.exp()
    torch.testing.assert_close(scale, clip_ref.out("logit_scale_exp"), atol=1e-5, rtol=0)
    logits_per_image = scale * image_n @ text_n.t()
    torch.testing.assert_close(logits_per_image, clip_ref.out("logits_per_image"), atol=1e-4, rtol=0)
    torch.testing.assert_close(logits_per_image.t(), clip_ref.out("logits_per_text"), atol=1e-4, rtol=0)
    labels = torch.arange(logits_per_image.shape[0])
    loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.t(), labels)) / 2
    torch.testing.assert_close(loss, clip_ref.out("clip_loss"), atol=1e-4, rtol=0)


def test_text_outputs_are_consistent(clip_ref: Reference, towers: tuple[ClipTextTransformer, torch.nn.Module]) -> None:
    text, _ = towers
    ids = clip_ref.inp("text_ids")
    with torch.no_grad():
        out = text(ids, output_hidden_states=True)
    batch, length = ids.shape
    assert out.last_hidden_state.shape == (batch, length, text.width)
    assert len(out.hidden_states) == len(text.transformer.resblocks) + 1
    eot = (ids == clip_ref.meta["tokenizer"]["eot_token_id"]).int().argmax(-1)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state[torch.arange(batch), eot])
    torch.testing.assert_close(out.embeds, out.pooler_output @ text.text_projection)
    # pooling at the first eot id == pooling at argmax(ids) (eot is the largest id)
    text.eos_token_id = clip_ref.meta["tokenizer"]["eot_token_id"]
    with torch.no_grad():
        torch.testing.assert_close(text(ids).embeds, out.embeds)


def test_sdpa_equals_eager(clip_ref: Reference, towers: tuple[ClipTextTransformer, torch.nn.Module]) -> None:
    text, vision = towers
    ids, image = clip_ref.inp("text_ids"), clip_ref.inp("image")
    with torch.no_grad():
        sdpa = text(ids).last_hidden_state, vision(image).embeds
        for tower in (text, vision):
            tower.set_attn_implementation("eager")
        eager_text = text(ids, output_attentions=True)
        eager = eager_text.last_hidden_state, vision(image).embeds
    modules = [m for t in (text, vision) for m in t.modules() if hasattr(m, "attn_implementation")]
    assert modules and all(m.attn_implementation == "eager" for m in modules)
    for a, b in zip(sdpa, eager):
        assert (a - b).abs().max() <= 1e-5
    # the causal mask gives exactly zero probability to future tokens
    for probs in eager_text.attentions:
        assert torch.all(probs.triu(diagonal=1) == 0)
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))


def test_batch_invariance(clip_ref: Reference, towers: tuple[ClipTextTransformer, torch.nn.Module]) -> None:
    text, vision = towers
    ids, image = clip_ref.inp("text_ids"), clip_ref.inp("image")
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        full_text, full_image = text(ids).embeds, vision(image).embeds
        singles_text = torch.cat([text(ids[i : i + 1]).embeds for i in range(len(ids))])
        singles_image = torch.cat([vision(image[i : i + 1]).embeds for i in range(len(image))])
        permuted_text, permuted_image = text(ids[order]).embeds, vision(image[order]).embeds
    torch.testing.assert_close(singles_text, full_text, atol=1e-5, rtol=0)
    torch.testing.assert_close(singles_image, full_image, atol=1e-5, rtol=0)
    torch.testing.assert_close(permuted_text, full_text[order], atol=1e-5, rtol=0)
    torch.testing.assert_close(permuted_image, full_image[order], atol=1e-5, rtol=0)


def test_padding_after_eot_and_shorter_inputs_do_not_change_text(
    clip_ref: Reference, towers: tuple[ClipTextTransformer, torch.nn.Module]
) -> None:
    text, _ = towers
    ids = clip_ref.inp("text_ids")
    eot = ids.argmax(-1)
    noisy = ids.clone()
    after = torch.arange(ids.shape[1])[None] > eot[:, None]
    noisy[after] = 5  # any id < eot after the end-of-text token: invisible under the causal mask
    shortest = int(eot.max()) + 1
    with torch.no_grad():
        reference = text(ids).embeds
        torch.testing.assert_close(text(noisy).embeds, reference, atol=1e-5, rtol=0)
        torch.testing.assert_close(text(ids[:, :shortest]).embeds, reference, atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter(
    clip_ref: Reference, towers: tuple[ClipTextTransformer, torch.nn.Module]
) -> None:
    text, vision = towers
    text.train()
    vision.train()
    out_text = text(clip_ref.inp("text_ids"))
    out_image = vision(clip_ref.inp("image"))
    loss = (out_text.embeds**2).sum() + (out_image.embeds**2).sum()
    loss.backward()
    for tower in (text, vision):
        for name, param in tower.named_parameters():
            assert param.grad is not None, name
            assert param.grad.abs().sum() > 0, name


def test_gradient_checkpointing_gives_same_gradients(reference_dir: Path) -> None:
    clip_ref = load_reference(reference_dir, "clip_vit")  # both transformer towers; the ResNet has no such blocks

    def grads(enable: bool) -> dict[str, torch.Tensor]:
        text, vision = _build(clip_ref)
        for tower in (text, vision):
            tower.train()
            for module in tower.modules():
                if isinstance(module, ClipResidualAttentionBlock):
                    module.gradient_checkpointing = enable
                    module._gradient_checkpointing_func = partial(checkpoint, use_reentrant=False)
        loss = text(clip_ref.inp("text_ids")).embeds.pow(2).sum() + vision(clip_ref.inp("image")).embeds.pow(2).sum()
        loss.backward()
        return {f"{i}.{n}": p.grad for i, t in enumerate((text, vision)) for n, p in t.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-5, rtol=1e-5, msg=name)


def test_matches_transformers_clip_on_the_same_weights(reference_dir: Path) -> None:
    """Independent cross-check of the ViT and text towers (and of the hidden-state conventions) against
    transformers' ``CLIPModel`` loaded with the fixture weights."""
    from transformers import CLIPConfig, CLIPModel

    ref = load_reference(reference_dir, "clip_vit")
    text, vision = _build(ref)
    tc, vc = ref.meta["construction"]["text_cfg"], ref.meta["construction"]["vision_cfg"]
    config = CLIPConfig(
        text_config=dict(
            vocab_size=tc["vocab_size"], hidden_size=tc["width"], intermediate_size=4 * tc["width"],
            num_hidden_layers=tc["layers"], num_attention_heads=tc["heads"], max_position_embeddings=tc["context_length"],
            hidden_act="quick_gelu", layer_norm_eps=1e-5, eos_token_id=ref.meta["tokenizer"]["eot_token_id"],
        ),
        vision_config=dict(
            hidden_size=vc["width"], intermediate_size=4 * vc["width"], num_hidden_layers=vc["layers"],
            num_attention_heads=vc["heads"], image_size=vc["image_size"], patch_size=vc["patch_size"],
            hidden_act="quick_gelu", layer_norm_eps=1e-5,
        ),
        projection_dim=ref.meta["construction"]["embed_dim"],
    )  # fmt: skip
    w = ref.weights
    hf: dict[str, torch.Tensor] = {}

    def block(src: str, dst: str) -> None:
        for name, weight, bias in zip(
            ("q_proj", "k_proj", "v_proj"), w[src + "attn.in_proj_weight"].chunk(3), w[src + "attn.in_proj_bias"].chunk(3)
        ):
            hf[f"{dst}self_attn.{name}.weight"], hf[f"{dst}self_attn.{name}.bias"] = weight, bias
        for ours, theirs in [
            ("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
            ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"),
        ]:  # fmt: skip
            for kind in ("weight", "bias"):
                hf[f"{dst}{theirs}.{kind}"] = w[f"{src}{ours}.{kind}"]

    hf["text_model.embeddings.token_embedding.weight"] = w["token_embedding.weight"]
    hf["text_model.embeddings.position_embedding.weight"] = w["positional_embedding"]
    hf["vision_model.embeddings.patch_embedding.weight"] = w["visual.conv1.weight"]
    hf["vision_model.embeddings.class_embedding"] = w["visual.class_embedding"]
    hf["vision_model.embeddings.position_embedding.weight"] = w["visual.positional_embedding"]
    for kind in ("weight", "bias"):
        hf[f"text_model.final_layer_norm.{kind}"] = w[f"ln_final.{kind}"]
        hf[f"vision_model.pre_layrnorm.{kind}"] = w[f"visual.ln_pre.{kind}"]
        hf[f"vision_model.post_layernorm.{kind}"] = w[f"visual.ln_post.{kind}"]
    for i in range(tc["layers"]):
        block(f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}.")
    for i in range(vc["layers"]):
        block(f"visual.transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}.")
    hf["text_projection.weight"] = w["text_projection"].t()
    hf["visual_projection.weight"] = w["visual.proj"].t()
    hf["logit_scale"] = w["logit_scale"]
    model = CLIPModel(config).eval()
    model.load_state_dict(hf, strict=True)

    ids, image = ref.inp("text_ids"), ref.inp("image")
    with torch.no_grad():
        theirs_text = model.text_model(input_ids=ids)
        theirs_image = model.vision_model(pixel_values=image)
        ours_text, ours_image = text(ids), vision(image)
    torch.testing.assert_close(ours_text.last_hidden_state, theirs_text.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_text.pooler_output, theirs_text.pooler_output, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_image.last_hidden_state, theirs_image.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_image.pooler_output, theirs_image.pooler_output, atol=1e-5, rtol=0)


def test_text_longer_than_context_is_refused() -> None:
    text = ClipTextTransformer(vocab_size=50, context_length=8, width=32, layers=1, embed_dim=16, num_heads=4)
    with pytest.raises(ValueError, match=r"9 tokens.*context_length=8.*truncat"):
        text(torch.ones(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(batch, len\)"):
        text(torch.ones(9, dtype=torch.long))


def test_vit_positional_interpolation() -> None:
    torch.manual_seed(0)
    vit = ClipVisionTransformer(image_size=32, patch_size=8, width=64, layers=1, embed_dim=16, num_heads=4).eval()
    assert vit.positional_embedding_for(32, 32) is vit.positional_embedding
    table = vit.positional_embedding_for(48, 64)
    assert table.shape == (1 + 6 * 8, 64)
    torch.testing.assert_close(table[0], vit.positional_embedding[0])  # class row untouched
    with torch.no_grad():
        out = vit(torch.randn(2, 3, 48, 64))
    assert out.embeds.shape == (2, 16)
    assert out.last_hidden_state.shape == (2, 1 + 6 * 8, 64)
    with pytest.raises(ValueError, match=r"36x32 is not a multiple of patch_size=8"):
        vit(torch.randn(1, 3, 36, 32))
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\)"):
        vit(torch.randn(3, 32, 32))


def test_grid_interpolation_values() -> None:
    # bicubic weights sum to one: a constant grid stays constant; a 2x2 -> 1x1 resize is the mean
    constant = torch.cat([torch.tensor([[7.0, -7.0]]), torch.full((9, 2), 3.0)])
    out = interpolate_grid_positional_embedding(constant, (3, 3), (5, 4))
    assert out.shape == (1 + 20, 2)
    torch.testing.assert_close(out[0], torch.tensor([7.0, -7.0]))
    torch.testing.assert_close(out[1:], torch.full((20, 2), 3.0))
    grid = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])  # prefix row then the 2x2 grid 1, 2 / 3, 4
    torch.testing.assert_close(interpolate_grid_positional_embedding(grid, (2, 2), (1, 1)), torch.tensor([[0.0], [2.5]]))


def test_resnet_other_resolution_and_errors() -> None:
    torch.manual_seed(0)
    resnet = ModifiedResNet(layers=(1, 1, 1, 1), output_dim=16, image_size=64, width=4).eval()
    assert resnet.num_heads == 2
    with torch.no_grad():
        out = resnet(torch.randn(2, 3, 96, 64), output_hidden_states=True, output_attentions=True)
    assert out.embeds.shape == (2, 16)
    assert out.last_hidden_state.shape == (2, 128, 3, 2)
    assert [h.shape[1] for h in out.hidden_states] == [4, 16, 32, 64, 128]
    assert out.attentions[0].shape == (2, 2, 1, 1 + 6)
    with pytest.raises(ValueError, match=r"16x64 is too small"):
        resnet(torch.randn(1, 3, 16, 64))
    with pytest.raises(ValueError, match=r"layers must be 4"):
        ModifiedResNet(layers=(1, 1), output_dim=16)


def test_attention_pool_matches_full_query_attention() -> None:
    """Only the mean token's query is computed; it must equal row 0 of torch's all-token multi-head
    attention with separate q/k/v weights (what the original calls)."""
    torch.manual_seed(0)
    pool = AttentionPool2d(spatial_dim=2, embed_dim=8, num_heads=2, output_dim=6).eval()
    fmap = torch.randn(3, 8, 2, 2)
    tokens = fmap.flatten(2).permute(2, 0, 1)  # (HW, B, C)
    tokens = torch.cat([tokens.mean(0, keepdim=True), tokens]) + pool.positional_embedding[:, None]
    with torch.no_grad():
        expected, _ = F.multi_head_attention_forward(
            tokens, tokens, tokens, 8, 2,
            in_proj_weight=None,
            in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
            training=False, need_weights=False, use_separate_proj_weight=True,
            q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        )  # fmt: skip
        got, _ = pool(fmap)
        pool.attn_implementation = "eager"
        got_eager, probs = pool(fmap, output_attentions=True)
    torch.testing.assert_close(got, expected[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(got_eager, expected[0], atol=1e-6, rtol=0)
    assert probs.shape == (3, 2, 1, 5)


def test_attention_and_activation_options() -> None:
    x = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(QuickGELU()(x), x * torch.sigmoid(1.702 * x))
    attn = ClipAttention(width=32, num_heads=4)
    assert attn.in_proj_weight.shape == (96, 32) and attn.out_proj.weight.shape == (32, 32)
    with pytest.raises(ValueError, match="flash"):
        ClipAttention(width=32, num_heads=4, attn_implementation="flash")
    with pytest.raises(ValueError, match=r"num_heads=5.*divide width=32"):
        ClipAttention(width=32, num_heads=5)
    with pytest.raises(ValueError, match=r"default width // 64"):
        ClipVisionTransformer(image_size=32, patch_size=8, width=32, layers=1, embed_dim=16)
    with pytest.raises(ValueError, match="quick_gelu"):
        ClipTextTransformer(vocab_size=10, context_length=4, width=32, layers=1, embed_dim=8, num_heads=4, activation="relu")
    tower = ClipTextTransformer(vocab_size=10, context_length=4, width=32, layers=1, embed_dim=8, num_heads=4)
    with pytest.raises(ValueError, match="flash"):
        set_attn_implementation(tower, "flash")
