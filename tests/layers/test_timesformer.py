"""ALPRO TimeSformer: LAVIS golden parity (retrieval and QA fixtures), an index-by-index reference of the
divided space-time algorithm on a non-square grid, SDPA == eager, batch invariance, frame-count and resolution
interpolation, gradient checkpointing, gradients on every parameter, input errors."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.common.reference import Reference, load_reference, sub_state_dict
from vl_hub.layers.timesformer import TimeSformer, interpolate_time_embed
from vl_hub.layers.vit import interpolate_pos_embed


@cache
def _load(reference_dir: Path, name: str) -> Reference:
    """Each fixture is read once per session (tests only read it)."""
    return load_reference(reference_dir, name)


FIXTURES = ("alpro_retrieval", "alpro_qa")
PREFIX = "visual_encoder.model."


def _reference_timesformer(reference_dir: Path, name: str = "alpro_retrieval", **overrides) -> TimeSformer:
    ref = _load(reference_dir, name)
    cfg = ref.meta["construction"]["visual_encoder"]
    assert cfg["attention_type"] == "divided_space_time"
    config = {
        "image_size": cfg["image_size"],
        "patch_size": cfg["patch_size"],
        "num_frames": cfg["n_frms"],
        "embed_dim": cfg["embed_dim"],
        "depth": cfg["depth"],
        "num_heads": cfg["num_heads"],
        "mlp_ratio": cfg["mlp_ratio"],
        "qkv_bias": cfg["qkv_bias"],
        "layer_norm_eps": cfg["layer_norm_eps"],
        "drop_path_rate": cfg["drop_path_rate"],
    }
    model = TimeSformer(**{**config, **overrides})
    model.load_state_dict(sub_state_dict(ref.weights, PREFIX), strict=True)
    return model.eval()


def _random_timesformer(seed: int = 0, **overrides) -> TimeSformer:
    """Tiny model with weights large enough that every path (temporal_fc included) matters."""
    torch.manual_seed(seed)
    config = {"image_size": (32, 48), "patch_size": 16, "num_frames": 3, "embed_dim": 32, "depth": 2, "num_heads": 4}
    model = TimeSformer(**{**config, **overrides, "drop_path_rate": overrides.get("drop_path_rate", 0.0)})
    with torch.no_grad():
        for name, param in model.named_parameters():
            fan_in = param[0].numel() if param.dim() > 1 and "embed" not in name and "token" not in name else 4
            param.copy_(torch.randn_like(param) / fan_in**0.5 + (1.0 if name.endswith("norm1.weight") else 0.0))
    return model.eval()


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_lavis_parity(reference_dir: Path, name: str, implementation: str) -> None:
    ref = _load(reference_dir, name)
    assert ref.meta["outputs"]["out.video_embeds"]["meaning"].startswith("visual_encoder.forward_features")
    model = _reference_timesformer(reference_dir, name, attn_implementation=implementation)
    with torch.no_grad():
        out = model(ref.inp("video"))
    expected = ref.out("video_embeds")
    assert out.shape == expected.shape and out.shape[1:] == (10, 64)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_parameter_names_are_lavis_names(reference_dir: Path) -> None:
    ref = _load(reference_dir, "alpro_retrieval")
    model = TimeSformer(image_size=48, patch_size=16, num_frames=4, embed_dim=64, depth=2, num_heads=4)
    assert set(model.state_dict()) == set(sub_state_dict(ref.weights, PREFIX))


def _attention(x: torch.Tensor, attn: torch.nn.Module, heads: int) -> torch.Tensor:
    """Plain softmax attention of one sequence ``(L, D)`` with the module's weights."""
    length, dim = x.shape
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).view(length, 3, heads, dim // heads).permute(1, 2, 0, 3)
    probs = torch.softmax(q @ k.transpose(-1, -2) * (dim // heads) ** -0.5, dim=-1)
    return (probs @ v).transpose(0, 1).reshape(length, dim) @ attn.proj.weight.T + attn.proj.bias


def _naive_forward(model: TimeSformer, video: torch.Tensor) -> torch.Tensor:
    """The divided space-time algorithm written token by token with the index 1 + (h*W + w)*T + t."""
    batch, _, frames, height, width = video.shape
    grid_h, grid_w = height // 16, width // 16
    spatial = grid_h * grid_w
    heads = model.blocks[0].attn.num_heads
    index = lambda s, t: 1 + s * frames + t  # noqa: E731
    outputs = []
    for b in range(batch):
        tokens = [model.cls_token[0, 0] + model.pos_embed[0, 0]] + [None] * (spatial * frames)
        for t in range(frames):
            patches = F.conv2d(
                video[b, :, t][None], model.patch_embed.proj.weight, model.patch_embed.proj.bias, stride=16
            )
            patches = patches[0].flatten(1).T  # (S, D), row-major
            for s in range(spatial):
                tokens[index(s, t)] = patches[s] + model.pos_embed[0, 1 + s] + model.time_embed[0, t]
        x = torch.stack(tokens)
        for block in model.blocks:
            new = x.clone()
            for s in range(spatial):  # temporal attention at each location
                rows = [index(s, t) for t in range(frames)]
                out = _attention(block.temporal_norm1(x[rows]), block.temporal_attn, heads)
                new[rows] = x[rows] + block.temporal_fc(out)
            after_temporal = new.clone()
            cls_outputs = []
            for t in range(frames):  # spatial attention in each frame, cls replicated
                rows = [index(s, t) for s in range(spatial)]
                seq = torch.cat([x[:1], after_temporal[rows]])
                out = _attention(block.norm1(seq), block.attn, heads)
                cls_outputs.append(out[0])
                new[rows] = after_temporal[rows] + out[1:]
            new[0] = x[0] + torch.stack(cls_outputs).mean(0)
            x = new + block.mlp(block.norm2(new))
        x = model.norm(x)
        pooled = [x[0]] + [x[[index(s, t) for t in range(frames)]].mean(0) for s in range(spatial)]
        outputs.append(torch.stack(pooled))
    return torch.stack(outputs)


def test_matches_token_by_token_reference_on_non_square_grid() -> None:
    model = _random_timesformer()
    video = torch.randn(2, 3, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(video)
        expected = _naive_forward(model, video)
    assert out.shape == (2, 1 + 2 * 3, 32)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_forward_tokens_order_and_pooling() -> None:
    model = _random_timesformer()
    video = torch.randn(1, 3, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens = model.forward_tokens(video)
        pooled = model(video)
    assert tokens.shape == (1, 1 + 6 * 3, 32)
    torch.testing.assert_close(pooled[:, 0], tokens[:, 0])
    torch.testing.assert_close(pooled[0, 1 + 4], tokens[0, 1 + 4 * 3 : 1 + 5 * 3].mean(0))  # location 4


def test_sdpa_equals_eager(reference_dir: Path) -> None:
    model = _reference_timesformer(reference_dir)
    video = torch.randn(2, 3, 4, 48, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        sdpa = model(video)
        model.set_attn_implementation("eager")
        assert all(b.attn.attn_implementation == b.temporal_attn.attn_implementation == "eager" for b in model.blocks)
        eager = model(video)
    assert (sdpa - eager).abs().max() <= 1e-5


def test_batch_invariance() -> None:
    model = _random_timesformer()
    video = torch.randn(2, 3, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        both = model(video)
        single = torch.cat([model(video[:1]), model(video[1:])])
    assert (both - single).abs().max() <= 1e-5


def test_interpolate_time_embed_is_nearest() -> None:
    time_embed = torch.arange(4.0).view(1, 4, 1).expand(1, 4, 3)
    assert interpolate_time_embed(time_embed, 4) is time_embed
    assert interpolate_time_embed(time_embed, 8)[0, :, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert interpolate_time_embed(time_embed, 2)[0, :, 0].tolist() == [0, 2]
    with pytest.raises(ValueError, match="num_frames"):
        interpolate_time_embed(time_embed, 0)


def test_other_frame_count_resizes_time_embed(reference_dir: Path) -> None:
    model = _reference_timesformer(reference_dir)
    video = torch.randn(2, 3, 8, 48, 48, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model(video)
    assert out.shape == (2, 10, 64)
    eight = TimeSformer(image_size=48, patch_size=16, num_frames=8, embed_dim=64, depth=2, num_heads=4).eval()
    state = dict(model.state_dict())
    state["time_embed"] = model.time_embed.detach().repeat_interleave(2, dim=1)
    eight.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(eight(video), out)


def test_other_resolution_resizes_pos_embed(reference_dir: Path) -> None:
    model = _reference_timesformer(reference_dir)
    video = torch.randn(1, 3, 4, 64, 80, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = model(video)
    assert out.shape == (1, 1 + 4 * 5, 64)
    bigger = TimeSformer(image_size=(64, 80), patch_size=16, num_frames=4, embed_dim=64, depth=2, num_heads=4).eval()
    state = dict(model.state_dict())
    state["pos_embed"] = interpolate_pos_embed(model.pos_embed.detach(), (4, 5), mode="nearest")
    bigger.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(bigger(video), out)


def test_gradient_checkpointing_gives_same_grads() -> None:
    model = _random_timesformer(drop_path_rate=0.3).train()
    video = torch.randn(2, 3, 3, 32, 48, generator=torch.Generator().manual_seed(6))

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(7)
        out = model(video)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = grads()
    model.set_gradient_checkpointing(True)
    assert all(block.gradient_checkpointing for block in model.blocks)
    checkpointed = grads()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_every_parameter_gets_a_gradient(reference_dir: Path) -> None:
    model = _reference_timesformer(reference_dir).train()
    out = model(torch.randn(2, 3, 4, 48, 48, generator=torch.Generator().manual_seed(8)))
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0 and param.grad.isfinite().all(), name


def test_fresh_init_starts_as_image_model_after_first_block() -> None:
    torch.manual_seed(0)
    model = TimeSformer(image_size=32, patch_size=16, num_frames=2, embed_dim=32, depth=3, num_heads=4)
    assert model.time_embed.abs().sum() == 0
    assert model.blocks[0].temporal_fc.weight.abs().sum() > 0
    assert all(b.temporal_fc.weight.abs().sum() == 0 and b.temporal_fc.bias.abs().sum() == 0 for b in model.blocks[1:])


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 3, 48, 48), r"unsqueeze\(2\)"),
        ((1, 4, 3, 48, 48), r"permute\(0, 2, 1, 3, 4\)"),
        ((1, 1, 4, 48, 48), r"1 channels"),
        ((1, 3, 4, 40, 48), r"40x48.*multiple of the patch size 16x16.*32x48"),
    ],
)
def test_bad_input_shapes_raise_clear_errors(shape: tuple[int, ...], match: str) -> None:
    model = TimeSformer(image_size=48, patch_size=16, num_frames=4, embed_dim=32, depth=1, num_heads=4)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))
