"""BLIP/ALBEF ViT: LAVIS golden parity, SDPA == eager, batch invariance, gradient checkpointing (standalone
and through a PreTrainedModel), gradients on every parameter, position-embedding interpolation, input errors,
and the shared Mlp/DropPath."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedConfig, PreTrainedModel

from tests.common.reference import Reference, load_reference, sub_state_dict
from vl_hub.layers.mlp import DropPath, Mlp
from vl_hub.layers.vit import VisionTransformer, interpolate_pos_embed


@cache
def _load(reference_dir: Path, name: str) -> Reference:
    """Each fixture is read once per session (tests only read it)."""
    return load_reference(reference_dir, name)


FIXTURES = ("blip_feature_extractor", "albef_feature_extractor")
TINY = {"image_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4}


def _reference_vit(reference_dir: Path, name: str = "blip_feature_extractor", **overrides) -> VisionTransformer:
    ref = _load(reference_dir, name)
    encoder = ref.meta["construction"]["image_encoder"]
    config = {
        "image_size": encoder["img_size"],
        "patch_size": encoder["patch_size"],
        "embed_dim": encoder["embed_dim"],
        "depth": encoder["depth"],
        "num_heads": encoder["num_heads"],
        "mlp_ratio": encoder["mlp_ratio"],
        "qkv_bias": encoder["qkv_bias"],
        "layer_norm_eps": encoder["layer_norm_eps"],
    }
    model = VisionTransformer(**{**config, **overrides})
    model.load_state_dict(sub_state_dict(ref.weights, "visual_encoder."), strict=True)
    return model.eval()


def _random_vit(seed: int = 0, **overrides) -> VisionTransformer:
    """A tiny ViT whose weights are large enough that every path matters (unlike the 0.02 init)."""
    torch.manual_seed(seed)
    model = VisionTransformer(**{**TINY, **overrides})
    with torch.no_grad():
        for name, param in model.named_parameters():
            fan_in = param[0].numel() if param.dim() > 1 and "embed" not in name and "token" not in name else 16
            param.copy_(torch.randn_like(param) / fan_in**0.5 + (1.0 if name.endswith("norm1.weight") else 0.0))
    return model.eval()


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_lavis_parity(reference_dir: Path, name: str, implementation: str) -> None:
    ref = _load(reference_dir, name)
    assert ref.meta["outputs"]["out.image_embeds"]["meaning"].startswith("visual_encoder.forward_features")
    model = _reference_vit(reference_dir, name, attn_implementation=implementation)
    with torch.no_grad():
        out = model(ref.inp("image"))
    expected = ref.out("image_embeds")
    assert out.shape == expected.shape == (2, 17, 64)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_parameter_names_are_lavis_names(reference_dir: Path) -> None:
    ref = _load(reference_dir, "blip_feature_extractor")
    ours = set(VisionTransformer(**TINY).state_dict())
    assert ours == set(sub_state_dict(ref.weights, "visual_encoder."))


@pytest.mark.parametrize("size", [32, 48])
def test_sdpa_equals_eager(reference_dir: Path, size: int) -> None:
    model = _reference_vit(reference_dir)
    pixels = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        sdpa = model(pixels)
        model.set_attn_implementation("eager")
        assert all(block.attn.attn_implementation == "eager" for block in model.blocks)
        eager = model(pixels)
    assert (sdpa - eager).abs().max() <= 1e-5


def test_set_attn_implementation_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="flash"):
        VisionTransformer(**TINY).set_attn_implementation("flash")


def test_batch_invariance() -> None:
    model = _random_vit()
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        both = model(pixels)
        single = torch.cat([model(pixels[:1]), model(pixels[1:])])
    assert (both - single).abs().max() <= 1e-5


def _grads(model: torch.nn.Module, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # drop-path masks: the recompute restores this RNG state
    out = model(pixels)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return {name: param.grad.clone() for name, param in model.named_parameters()}


def _count_fc1_calls(model: torch.nn.Module) -> list[int]:
    calls = [0]
    fc1 = model.blocks[0].mlp.fc1
    original = fc1.forward

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return original(x)

    fc1.forward = counted
    return calls


def test_gradient_checkpointing_standalone_gives_same_grads() -> None:
    model = _random_vit(drop_path_rate=0.3).train()
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    plain = _grads(model, pixels)
    model.set_gradient_checkpointing(True)
    calls = _count_fc1_calls(model)
    checkpointed = _grads(model, pixels)
    assert calls[0] == 2, "block 0 was not recomputed in backward: checkpointing is off"
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    model.set_gradient_checkpointing(True, last_n_layers=1)
    assert [block.gradient_checkpointing for block in model.blocks] == [False, True]
    model.set_gradient_checkpointing(False)
    assert not any(block.gradient_checkpointing for block in model.blocks)
    with pytest.raises(ValueError, match="last_n_layers"):
        model.set_gradient_checkpointing(True, last_n_layers=3)


class _WrapperConfig(PreTrainedConfig):
    model_type = "vlhub_test_vit_wrapper"


class _Wrapper(PreTrainedModel):
    config_class = _WrapperConfig
    supports_gradient_checkpointing = True
    main_input_name = "pixel_values"

    def __init__(self, config: _WrapperConfig) -> None:
        super().__init__(config)
        self.visual_encoder = _random_vit(drop_path_rate=0.3)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        pass

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual_encoder(pixel_values)


def test_gradient_checkpointing_through_pretrained_model() -> None:
    model = _Wrapper(_WrapperConfig()).train()
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    plain = _grads(model, pixels)
    with pytest.warns(FutureWarning):  # transformers 5 renamed it activation_checkpointing_enable
        model.gradient_checkpointing_enable()
    assert all(block.gradient_checkpointing for block in model.visual_encoder.blocks)
    calls = _count_fc1_calls(model.visual_encoder)
    checkpointed = _grads(model, pixels)
    assert calls[0] == 2
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_every_parameter_gets_a_gradient(reference_dir: Path) -> None:
    model = _reference_vit(reference_dir).train()
    out = model(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)))
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0 and param.grad.isfinite().all(), name


def test_interpolate_pos_embed_identity_and_shapes() -> None:
    pos = torch.randn(1, 1 + 16, 8)
    assert interpolate_pos_embed(pos, (4, 4)) is pos
    bigger = interpolate_pos_embed(pos, (6, 5))
    assert bigger.shape == (1, 1 + 30, 8)
    assert torch.equal(bigger[:, 0], pos[:, 0])
    constant = torch.cat([pos[:, :1], torch.full((1, 16, 8), 0.7)], dim=1)
    torch.testing.assert_close(interpolate_pos_embed(constant, (7, 7))[:, 1:], torch.full((1, 49, 8), 0.7))


def test_interpolate_pos_embed_is_row_major() -> None:
    # A 2x3 grid doubled by nearest neighbour: new cell (i, j) takes old cell (i // 2, j // 2).
    grid = torch.arange(6.0).view(1, 6, 1).expand(1, 6, 2)
    pos = torch.cat([torch.full((1, 1, 2), -1.0), grid], dim=1)
    out = interpolate_pos_embed(pos, (4, 6), old_grid_hw=(2, 3), mode="nearest")
    expected = torch.tensor([[(i // 2) * 3 + (j // 2) for j in range(6)] for i in range(4)], dtype=torch.float32)
    assert torch.equal(out[0, 1:, 0], expected.flatten())
    assert torch.equal(out[0, 0], pos[0, 0])


def test_interpolate_pos_embed_errors() -> None:
    with pytest.raises(ValueError, match="old_grid_hw"):
        interpolate_pos_embed(torch.randn(1, 1 + 6, 4), (3, 3))
    with pytest.raises(ValueError, match="6 cells"):
        interpolate_pos_embed(torch.randn(1, 1 + 8, 4), (3, 3), old_grid_hw=(2, 3))


def test_forward_interpolates_at_other_resolutions(reference_dir: Path) -> None:
    model = _reference_vit(reference_dir)
    pixels = torch.randn(2, 3, 48, 40, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = model(pixels)
    assert out.shape == (2, 1 + 6 * 5, 64)
    # Same as a model built for 48x40 whose pos_embed was converted once with the public function.
    resized = VisionTransformer(image_size=(48, 40), patch_size=8, embed_dim=64, depth=2, num_heads=4).eval()
    state = dict(model.state_dict())
    state["pos_embed"] = interpolate_pos_embed(model.pos_embed.detach(), (6, 5))
    resized.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(resized(pixels), out)
    assert model.position_embedding((4, 4)) is model.pos_embed


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 3, 30, 32), r"30x32.*multiple of the patch size 8x8.*24x32"),
        ((1, 4, 32, 32), r"4 channels"),
        ((1, 32, 32, 3), r"channels last"),
        ((3, 32, 32), r"\(batch, 3, height, width\)"),
        ((1, 3, 2, 32, 32), r"video"),
    ],
)
def test_bad_input_shapes_raise_clear_errors(shape: tuple[int, ...], match: str) -> None:
    model = VisionTransformer(**TINY)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="divisible by num_heads"):
        VisionTransformer(image_size=32, patch_size=8, embed_dim=30, depth=1, num_heads=4)
    with pytest.raises(ValueError, match="image_size"):
        VisionTransformer(image_size=30, patch_size=8, embed_dim=32, depth=1, num_heads=4)


def test_mlp_is_fc1_gelu_fc2() -> None:
    torch.manual_seed(0)
    mlp = Mlp(4, 8)
    x = torch.randn(3, 4)
    hidden = x @ mlp.fc1.weight.T + mlp.fc1.bias
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / 2**0.5))  # exact GELU
    torch.testing.assert_close(mlp(x), hidden @ mlp.fc2.weight.T + mlp.fc2.bias)


def test_drop_path_drops_whole_rows_and_rescales() -> None:
    layer = DropPath(0.5).train()
    torch.manual_seed(0)
    out = layer(torch.ones(64, 3, 5))
    per_row = out.flatten(1)
    assert set(per_row.unique().tolist()) <= {0.0, 2.0}
    assert torch.all(per_row.min(1).values == per_row.max(1).values)  # a row is dropped or kept whole
    assert 0 < (per_row[:, 0] == 0).sum() < 64
    x = torch.randn(4, 3)
    assert layer.eval()(x) is x
    with pytest.raises(ValueError, match="drop_prob"):
        DropPath(1.0)
