"""Conversion: OpenAI / open_clip checkpoints (architecture read off the tensors for every catalogue model,
TorchScript archives, DDP prefixes), transformers CLIPModel folders both ways, the convert() output folder, the
catalogue, and offline loading by repo id from a local Hub cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoModelForZeroShotImageClassification, AutoProcessor, CLIPConfig, CLIPModel

from tests.models.clip.clip_test_utils import (
    VOCAB_SIZE,
    random_ids,
    random_pixels,
    tiny_config,
    tiny_processor,
    tiny_tokenizer,
    write_bpe_files,
)
from vl_hub.models.clip.catalogue import CLIP_CATALOGUE, lookup
from vl_hub.models.clip.convert_clip_checkpoint import (
    config_from_openai_state_dict,
    config_from_transformers,
    convert,
    convert_openai_state_dict,
    load_clip_checkpoint,
    read_clip_checkpoint,
    to_openai_state_dict,
    to_transformers_config,
    to_transformers_state_dict,
)
from vl_hub.models.clip.modeling_clip import ClipForZeroShotClassification, ClipModel
from vl_hub.models.clip.processing_clip import ClipProcessor


def _tiny_model(resnet: bool = False, seed: int = 0) -> ClipModel:
    torch.manual_seed(seed)
    model = ClipModel(tiny_config(resnet=resnet)).eval()
    with torch.no_grad():
        model.logit_scale.fill_(2.3)
    return model


def _outputs(model: nn.Module, resnet: bool = False) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(random_pixels(3, 64 if resnet else 32), random_ids(3))
    return {"image": out.image_embeds, "text": out.text_embeds, "logits": out.logits_per_image}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


# ---------------------------------------------------------------------------------------------- OpenAI layout
@pytest.mark.parametrize("model_type", ["ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336", "RN50"])
def test_openai_architecture_is_inferred_for_every_catalogue_model(model_type: str) -> None:
    config = lookup(model_type).config()
    with torch.device("meta"):
        model = ClipModel(config)
    state = to_openai_state_dict(model.state_dict())
    # what OpenAI's TorchScript state dict adds
    state.update({k: torch.tensor(0) for k in ("input_resolution", "context_length", "vocab_size")})
    inferred = config_from_openai_state_dict(state)
    for ours, theirs in ((config.vision_config, inferred.vision_config), (config.text_config, inferred.text_config)):
        for field in ("image_size", "patch_size", "width", "layers", "num_heads", "mlp_ratio", "vocab_size",
                      "context_length", "eos_token_id", "bos_token_id"):
            if hasattr(ours, field) and not (field == "patch_size" and ours.is_resnet):
                assert getattr(ours, field) == getattr(theirs, field), (model_type, field)
    assert inferred.embed_dim == config.embed_dim
    assert inferred.vision_config.is_resnet == (model_type == "RN50")
    assert set(convert_openai_state_dict(state)) == set(model.state_dict())


class _OpenAILayout(nn.Module):
    """A module whose state dict has OpenAI's names, traced like OpenAI's released ``*.pt`` archives."""

    def __init__(self, model: ClipModel) -> None:
        super().__init__()
        self.visual = model.visual
        self.token_embedding = model.text.token_embedding
        self.positional_embedding = model.text.positional_embedding
        self.transformer = model.text.transformer
        self.ln_final = model.text.ln_final
        self.text_projection = model.text.text_projection
        self.logit_scale = model.logit_scale
        self.register_buffer("input_resolution", torch.tensor(model.config.vision_config.image_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.logit_scale


def test_openai_torchscript_archive_converts_to_a_loadable_folder(tmp_path: Path) -> None:
    original = _tiny_model()
    archive = tmp_path / "ViT-tiny.pt"
    torch.jit.trace(_OpenAILayout(original), torch.ones(1)).save(str(archive))
    assert "input_resolution" in read_clip_checkpoint(archive)

    out = convert("openai", archive, tmp_path / "out", tokenizer=write_bpe_files(tmp_path / "bpe"),
                  config=tiny_config())
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= files
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == ["ClipModel"] and saved["model_type"] == "vlhub_clip"

    loaded = AutoModel.from_pretrained(out).eval()
    assert type(loaded) is ClipModel
    _assert_same(_outputs(original), _outputs(loaded), atol=0.0)
    processor = AutoProcessor.from_pretrained(out)
    assert type(processor) is ClipProcessor and processor.context_length == 16
    assert processor(text="a cat")["input_ids"].tolist() == tiny_tokenizer()("a cat", return_tensors="pt")["input_ids"].tolist()


def test_open_clip_checkpoint_with_state_dict_wrapper_and_module_prefix(tmp_path: Path) -> None:
    original = _tiny_model(resnet=True)
    wrapped = {"epoch": torch.tensor(3), "state_dict": {f"module.{k}": v for k, v in to_openai_state_dict(original.state_dict()).items()}}
    path = tmp_path / "epoch_3.pt"
    torch.save(wrapped, path)
    # text heads set explicitly: the tiny model does not follow OpenAI's width // 64 rule
    config = config_from_openai_state_dict(read_clip_checkpoint(path), text_overrides={"heads": 4}, vision_overrides={"heads": 4})
    loaded = load_clip_checkpoint("openai", path, config=config, head_class=ClipForZeroShotClassification)
    assert type(loaded) is ClipForZeroShotClassification
    _assert_same(_outputs(original, resnet=True), _outputs(loaded, resnet=True), atol=0.0)


def test_catalogue_model_type_picks_the_head_and_rejects_mismatching_weights(tmp_path: Path) -> None:
    state = to_openai_state_dict(_tiny_model().state_dict())
    with pytest.raises(ValueError, match="wrong model type / config"):
        convert("openai", state, tmp_path / "out", model_type="clip:ViT-B-32")


@pytest.mark.parametrize(
    ("state", "fragment"),
    [
        ({"foo.weight": torch.zeros(1)}, "not an OpenAI-layout CLIP state dict"),
        ({"text.transformer.x": torch.zeros(1)}, "CustomTextCLIP"),
        ([1, 2], "not a state dict of tensors"),
    ],
)
def test_non_clip_state_dicts_are_rejected(state, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        load_clip_checkpoint("openai", state)
    assert fragment in str(info.value)


def test_conversion_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source_kind='timm' is not supported"):
        load_clip_checkpoint("timm", {})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_clip_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_clip_checkpoint("transformers", tmp_path)
    sigclip = to_openai_state_dict(_tiny_model().state_dict()) | {"logit_bias": torch.zeros(())}
    with pytest.raises(ValueError, match="SigLIP"):
        load_clip_checkpoint("openai", sigclip)


# ---------------------------------------------------------------------------------------------- transformers
def _tiny_transformers_clip(eos_token_id: int) -> CLIPModel:
    torch.manual_seed(1)
    config = CLIPConfig(
        text_config={"vocab_size": VOCAB_SIZE, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 16, "eos_token_id": eos_token_id,
                     "bos_token_id": VOCAB_SIZE - 2, "pad_token_id": VOCAB_SIZE - 1},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        projection_dim=32,
        logit_scale_init_value=2.3,
    )
    model = CLIPModel(config).eval()
    with torch.no_grad():  # make every tensor matter (biases and norms are zeros/ones at init)
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.add_(0.1 * torch.randn_like(param))
    return model


@pytest.mark.parametrize("eos_token_id", [VOCAB_SIZE - 1, 2], ids=["eos-id", "legacy-eos-2"])
def test_transformers_checkpoint_gives_the_same_features_and_logits(tmp_path: Path, eos_token_id: int) -> None:
    hf = _tiny_transformers_clip(eos_token_id)
    hf.save_pretrained(tmp_path / "hf")
    tiny_tokenizer().save_pretrained(tmp_path / "hf")
    out = convert("transformers", tmp_path / "hf", tmp_path / "ours")
    ours = AutoModel.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)  # the folder's own tokenizer was carried over
    batch = processor(images=None, text=["a photo of a cat", "the big red car", "dog"])
    pixels = random_pixels(2)
    with torch.no_grad():
        ref = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=pixels)
        got = ours(pixels, batch["input_ids"], batch["attention_mask"])
        hf_image = hf.get_image_features(pixel_values=pixels).pooler_output
        hf_text = hf.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
    torch.testing.assert_close(got.image_embeds, hf_image, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.text_embeds, hf_text, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.image_feat, ref.image_embeds, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.text_feat, ref.text_embeds, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.logits_per_image, ref.logits_per_image, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.logits_per_text, ref.logits_per_text, atol=1e-4, rtol=0)


def test_vl_hub_weights_map_onto_transformers_and_back() -> None:
    ours = _tiny_model()
    hf = CLIPModel(to_transformers_config(ours.config)).eval()
    hf.load_state_dict(to_transformers_state_dict(ours.state_dict()), strict=True)
    ids, pixels = random_ids(3), random_pixels(2)
    with torch.no_grad():
        ref = hf(input_ids=ids, pixel_values=pixels)
        got = ours(pixels, ids)
    torch.testing.assert_close(got.logits_per_image, ref.logits_per_image, atol=1e-4, rtol=0)
    back = config_from_transformers(hf.config)
    assert back.vision_config.num_heads == 4 and back.text_config.context_length == 16 and back.embed_dim == 32
    with pytest.raises(ValueError, match="no ResNet CLIP"):
        to_transformers_config(tiny_config(resnet=True))


# ---------------------------------------------------------------------------------------------- catalogue
def test_catalogue_entries() -> None:
    assert len(CLIP_CATALOGUE) == 10
    assert {name for name, _ in CLIP_CATALOGUE} == {"clip", "clip_feature_extractor"}
    for (name, model_type), entry in CLIP_CATALOGUE.items():
        assert entry.head == ("ClipForZeroShotClassification" if name == "clip" else "ClipModel")
        assert re.fullmatch(r"https://openaipublic\.azureedge\.net/clip/models/[0-9a-f]{64}/[\w-]+\.pt", entry.source_url)
        assert entry.config().vision_config.image_size == entry.image_size
        assert entry.convert_command.startswith(f"vl-hub convert --from openai --model-type {name}:{model_type} ")
        assert 50 < entry.imagenet_zero_shot_top1 < 80
    assert len({e.repo_id for e in CLIP_CATALOGUE.values()}) == 10
    assert lookup("ViT-L-14-336").image_size == 336 and lookup("ViT-B-32").name == "clip"
    assert lookup("clip_feature_extractor:RN50").config().vision_config.layers == [3, 4, 6, 3]
    with pytest.raises(KeyError, match="valid: clip:ViT-B-32"):
        lookup("clip:ViT-H-14")


# ---------------------------------------------------------------------------------------------- hub cache
def test_offline_load_by_repo_id_from_a_local_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    model = _tiny_model()
    snapshot = tmp_path / "hub" / "models--vl-hub--clip-tiny" / "snapshots" / ("0" * 40)
    model.save_pretrained(snapshot)
    tiny_processor().save_pretrained(snapshot)
    (tmp_path / "hub" / "models--vl-hub--clip-tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--vl-hub--clip-tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)

    loaded = AutoModel.from_pretrained("vl-hub/clip-tiny").eval()
    zero_shot = AutoModelForZeroShotImageClassification.from_pretrained("vl-hub/clip-tiny").eval()
    processor = AutoProcessor.from_pretrained("vl-hub/clip-tiny")
    assert type(loaded) is ClipModel and type(zero_shot) is ClipForZeroShotClassification
    assert type(processor) is ClipProcessor
    _assert_same(_outputs(model), _outputs(loaded), atol=0.0)
    _assert_same(_outputs(model), _outputs(zero_shot), atol=0.0)
