"""The model catalogue (``vl_hub.zoo``): listing, lookup errors, loading by repository id from a local Hub cache, the
offline error that says how to convert, catalogue discovery, and every family's model cards."""

from __future__ import annotations

import re
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import vl_hub
from vl_hub import zoo
from vl_hub.models.blip.catalogue import BLIP_CATALOGUE, lookup
from vl_hub.models.blip.convert_blip_checkpoint import (
    blip_head_class,
    convert_lavis_checkpoint,
)
from vl_hub.models.blip.modeling_blip_generation import BlipForConditionalGeneration

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "model_cards"

BLIP_ENTRIES = {
    ("blip_caption", "base_coco"): "BlipForConditionalGeneration",
    ("blip_caption", "large_coco"): "BlipForConditionalGeneration",
    ("blip_retrieval", "coco"): "BlipForImageTextRetrieval",
    ("blip_retrieval", "flickr"): "BlipForImageTextRetrieval",
    ("blip_vqa", "vqav2"): "BlipForQuestionAnswering",
    ("blip_vqa", "okvqa"): "BlipForQuestionAnswering",
    ("blip_vqa", "aokvqa"): "BlipForQuestionAnswering",
    ("blip_nlvr", "nlvr"): "BlipForNLVR",
    ("blip_feature_extractor", "base"): "BlipModel",
    ("blip_image_text_matching", "base"): "BlipForImageTextRetrieval",
    ("blip_image_text_matching", "large"): "BlipForImageTextRetrieval",
    ("blip_pretrain", "base"): "BlipForPreTraining",
}


# ---------------------------------------------------------------------------------------------- listing
def test_public_names_are_the_zoo_functions() -> None:
    assert vl_hub.list_models is zoo.list_models
    assert vl_hub.load_model is zoo.load_model
    assert vl_hub.load_model_and_processor is zoo.load_model_and_processor


def test_list_models_has_every_blip_entry_with_its_head_and_task() -> None:
    rows = {(r.name, r.model_type): r for r in vl_hub.list_models(family="blip")}
    assert {k: r.head for k, r in rows.items()} == BLIP_ENTRIES
    assert rows[("blip_caption", "base_coco")].task == "image captioning"
    assert rows[("blip_vqa", "okvqa")].task == "visual question answering"
    assert rows[("blip_caption", "base_coco")].repo_id == "vl-hub/blip-caption-base-coco"
    captioners = vl_hub.list_models(task="image captioning")
    assert {(r.name, r.model_type) for r in captioners} == {("blip_caption", "base_coco"), ("blip_caption", "large_coco")}


def test_catalogue_collects_every_family_module() -> None:
    """Every ``vl_hub/models/<family>/catalogue.py`` contributes (found, not listed by hand)."""
    with_catalogue = {p.parent.name for p in (REPO / "vl_hub" / "models").glob("*/catalogue.py")}
    assert "blip" in with_catalogue
    assert {r.family for r in vl_hub.list_models()} == with_catalogue


def test_catalogue_reads_plain_dict_entries_and_refuses_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("vl_hub.models.toy.catalogue")
    fake.TOY_CATALOGUE = {
        ("toy_caption", "tiny"): {
            "name": "toy_caption", "model_type": "tiny", "head": "ToyForConditionalGeneration", "repo_id": "org/toy",
        }
    }
    monkeypatch.setitem(sys.modules, "vl_hub.models.toy.catalogue", fake)
    modules = zoo._catalogue_modules()
    monkeypatch.setattr(zoo, "_catalogue_modules", lambda: [*modules, ("toy", "vl_hub.models.toy.catalogue")])
    try:
        entry = zoo.get_catalogue(refresh=True)[("toy_caption", "tiny")]
        assert (entry.family, entry.task, entry.spec) == ("toy", "image captioning", "toy_caption:tiny")
        fake.TOY_CATALOGUE = {("blip_caption", "base_coco"): {**fake.TOY_CATALOGUE[("toy_caption", "tiny")],
                                                               "name": "blip_caption", "model_type": "base_coco"}}
        with pytest.raises(ValueError, match="in both the blip and the toy catalogue"):
            zoo.get_catalogue(refresh=True)
    finally:
        monkeypatch.undo()
        zoo.get_catalogue(refresh=True)


# ---------------------------------------------------------------------------------------------- entries
@pytest.mark.parametrize("key", sorted(BLIP_ENTRIES))
def test_blip_entry_builds_a_valid_config_and_names_a_head(key: tuple[str, str]) -> None:
    entry = BLIP_CATALOGUE[key]
    config = entry.config()
    assert blip_head_class(entry.head).__name__ == entry.head
    assert config.vision_config.image_size == entry.image_size
    assert config.text_config.vocab_size == 30524 and config.text_config.encoder_width == config.vision_config.hidden_size
    assert entry.source_url.startswith("https://storage.googleapis.com/sfr-vision-language-research/")
    assert entry.convert_command.startswith(f"vl-hub convert --from lavis --model-type {key[0]}:{key[1]} ")


def test_blip_architectures_follow_lavis() -> None:
    base, large = lookup("blip_caption:base_coco").config(), lookup("blip_caption:large_coco").config()
    assert (base.vision_config.hidden_size, base.vision_config.num_hidden_layers, base.vision_config.num_attention_heads) == (768, 12, 12)
    assert (large.vision_config.hidden_size, large.vision_config.num_hidden_layers, large.vision_config.num_attention_heads) == (1024, 24, 16)
    assert large.vision_config.drop_path_rate == 0.1 and large.vision_config.gradient_checkpointing_layers == 5
    assert base.vision_config.patch_size == large.vision_config.patch_size == 16
    assert base.vision_config.layer_norm_eps == 1e-6
    assert base.prompt == "a picture of " and base.prompt_input_ids == [30522, 1037, 3861, 1997] and base.max_txt_len == 40
    vqa = lookup("blip_vqa:vqav2").config()
    assert vqa.vision_config.image_size == 480 and vqa.vision_config.drop_path_rate == 0.1 and vqa.prompt == ""
    assert lookup("blip_retrieval:coco").config().k_test == 256 and lookup("blip_retrieval:flickr").config().k_test == 128
    assert lookup("blip_retrieval:coco").config().queue_size == 57600
    assert lookup("blip_feature_extractor:base").image_size == 224 and lookup("blip_nlvr:nlvr").config().num_labels == 2
    assert lookup("blip_caption:base_coco").source_url.endswith("/LAVIS/models/BLIP/blip_coco_caption_base.pth")
    assert lookup("blip_vqa:vqav2").source_url.endswith("/BLIP/models/model_base_vqa_capfilt_large.pth")


# ---------------------------------------------------------------------------------------------- lookup errors
def test_unknown_name_lists_the_valid_names() -> None:
    with pytest.raises(zoo.UnknownModelError) as info:
        vl_hub.load_model("blip_captioning", "base_coco")
    message = str(info.value)
    assert "unknown model 'blip_captioning'" in message and "blip_caption: base_coco, large_coco" in message
    assert isinstance(info.value, KeyError)


def test_unknown_type_lists_the_types_of_that_name() -> None:
    with pytest.raises(zoo.UnknownModelError, match=r"model types of 'blip_vqa': aokvqa, okvqa, vqav2"):
        zoo.get_entry("blip_vqa", "gqa")


def test_missing_type_is_explained() -> None:
    with pytest.raises(zoo.UnknownModelError, match=r"needs a model type.*large_coco"):
        zoo.get_entry("blip_caption")
    assert zoo.get_entry("blip_caption:large_coco").repo_id == "vl-hub/blip-caption-large-coco"


# ---------------------------------------------------------------------------------------------- loading
def _use_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    assert hub_constants.HF_HUB_OFFLINE  # tests/conftest.py sets it before huggingface_hub is imported


def test_offline_without_weights_says_how_to_convert(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _use_cache(monkeypatch, tmp_path / "empty-hub")
    with pytest.raises(zoo.ModelNotAvailableError) as info:
        vl_hub.load_model("blip_caption", "base_coco")
    message = str(info.value)
    assert "'vl-hub/blip-caption-base-coco'" in message and "HF_HUB_OFFLINE=1" in message
    assert "vl-hub convert --from lavis --model-type blip_caption:base_coco" in message
    assert "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP/blip_coco_caption_base.pth" in message
    assert isinstance(info.value, OSError)
    with pytest.raises(zoo.ModelNotAvailableError, match="vl-hub/blip-vqa-okvqa"):
        vl_hub.load_model_and_processor("blip_vqa", "okvqa")


@pytest.fixture(scope="module")
def tiny_caption_folder(reference_dir: Path, fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """LAVIS's blip_caption fixture converted with the catalogue entry (tiny architecture)."""
    from tests.common.reference import load_reference
    from tests.models.blip.reference_utils import blip_config_from_reference

    ref = load_reference(reference_dir, "blip_caption")
    out = tmp_path_factory.mktemp("zoo") / "converted"
    convert_lavis_checkpoint(
        ref.weights, out, "blip_caption:base_coco", config=blip_config_from_reference(ref.meta),
        tokenizer=fixtures_dir / "bert_vocab.txt",
    )
    return ref, out


def test_load_by_repo_id_from_the_local_hub_cache(
    tiny_caption_folder: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref, folder = tiny_caption_folder
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--vl-hub--blip-caption-base-coco"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    _use_cache(monkeypatch, cache)

    model, processor = vl_hub.load_model_and_processor("blip_caption", "base_coco")
    assert type(model) is BlipForConditionalGeneration and not model.training
    assert processor.prompt == "a picture of "
    gen = ref.meta["generation"]
    with torch.no_grad():
        ids = model.generate(ref.inp("image"), num_beams=1, max_length=gen["max_length"], min_length=gen["min_length"])
    assert torch.equal(ids, ref.out("greedy_ids"))
    assert type(vl_hub.load_model("blip_caption:base_coco")) is BlipForConditionalGeneration


def test_load_from_a_converted_folder(tiny_caption_folder: tuple[Any, Path]) -> None:
    ref, folder = tiny_caption_folder
    model = vl_hub.load_model("blip_caption", "base_coco", repo_id=folder)
    with torch.no_grad():
        logits = model(ref.inp("image"), ref.inp("decoder_input_ids"), ref.inp("decoder_attention_mask")).logits
    torch.testing.assert_close(logits, ref.out("decoder_logits"), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------- model cards
def _header(text: str) -> dict[str, Any]:
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.DOTALL)
    assert match, "a card starts with a YAML header between --- lines"
    return yaml.safe_load(match.group(1))


_CATALOGUE_KEYS = sorted(zoo.get_catalogue())

# the license of each family's original release, as its cards declare it
_FAMILY_LICENSES = {"blip": "bsd-3-clause", "albef": "bsd-3-clause", "alpro": "bsd-3-clause", "clip": "mit"}
# families whose committed cards use their own sections (``card_document``), not ``model_cards/TEMPLATE.md``'s
_OWN_SECTIONS = ("Architecture", "Source and conversion", "Results", "How to use", "Intended use", "Limitations")
_OWN_LAYOUT = {"alpro", "clip"}
# the Hub has no pipeline tag for text-video retrieval; these committed cards carry none
_NO_PIPELINE_TAG = {("alpro_retrieval", "didemo"), ("alpro_retrieval", "msrvtt")}


@pytest.mark.parametrize("key", _CATALOGUE_KEYS, ids=":".join)
def test_every_entry_has_its_card(key: tuple[str, str]) -> None:
    """The committed card of every catalogue entry is exactly what ``render_model_card`` writes."""
    entry = zoo.get_entry(*key)
    path = zoo.card_path(entry, CARDS)
    command = f"python -m vl_hub.zoo cards --family {entry.family}"
    assert path.is_file(), f"{path} is missing: run `{command}`"
    text = path.read_text(encoding="utf-8")
    assert text == zoo.render_model_card(*key), f"{path} is stale: run `{command}`"
    assert entry.source_url in text and entry.repo_id in text
    if path.stem == f"{key[0]}_{key[1]}":  # a shared card (CLIP's two names) shows its first entry's command
        assert entry.convert_command in text
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert headings == list(_OWN_SECTIONS if entry.family in _OWN_LAYOUT else zoo.CARD_SECTIONS)


@pytest.mark.parametrize("key", _CATALOGUE_KEYS, ids=":".join)
def test_card_header_names_library_license_family_and_pipeline(key: tuple[str, str]) -> None:
    entry = zoo.get_entry(*key)
    header = _header(zoo.render_model_card(*key))
    assert header["library_name"] == "vl_hub" and header["license"] == _FAMILY_LICENSES[entry.family]
    assert entry.family in header["tags"] and "vl_hub" in header["tags"]
    assert ("pipeline_tag" not in header) if key in _NO_PIPELINE_TAG else header["pipeline_tag"]


def test_every_family_has_card_checks() -> None:
    """A new family's cards join the checks above (add its license to ``_FAMILY_LICENSES``)."""
    assert {e.family for e in zoo.get_catalogue().values()} == set(_FAMILY_LICENSES)


def test_clip_names_share_one_card_per_model() -> None:
    """``clip`` and ``clip_feature_extractor`` are the same OpenAI weights: one card documents both."""
    for model_type in ("RN50", "ViT-B-16", "ViT-B-32", "ViT-L-14", "ViT-L-14-336"):
        zero_shot, features = zoo.get_entry("clip", model_type), zoo.get_entry("clip_feature_extractor", model_type)
        assert zoo.card_path(zero_shot) == zoo.card_path(features) == Path("model_cards") / f"clip_{model_type}.md"
        card = zoo.render_model_card("clip_feature_extractor", model_type)
        assert card == zoo.render_model_card("clip", model_type) and features.repo_id in card


@pytest.mark.parametrize("family", sorted(_FAMILY_LICENSES))
def test_write_model_cards_rewrites_the_committed_cards(family: str, tmp_path: Path) -> None:
    written = zoo.write_model_cards(tmp_path, family=family)
    assert len(written) == len(set(written))
    for path in written:
        assert path.read_text(encoding="utf-8") == (CARDS / path.name).read_text(encoding="utf-8")
    with pytest.raises(zoo.UnknownModelError, match="families: albef, alpro, blip, clip"):
        zoo.write_model_cards(tmp_path, family="blip2")


@pytest.mark.slow
def test_alpro_card_parameter_counts_are_the_heads() -> None:
    """The parameter counts ALPRO's cards state are those of the built heads (builds four full-size models)."""
    from vl_hub.models.alpro.catalogue import ALPRO_CATALOGUE, card_parameters

    for entry in ALPRO_CATALOGUE.values():
        model = entry.head_class()(entry.config())
        counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
        counts.update({name: p.numel() for name, p in model.named_parameters(recurse=False)})
        assert counts == card_parameters(entry), entry.spec


def test_family_text_stays_in_its_family() -> None:
    """BLIP's MED tokens and ALBEF's fusion layers appear on their own family's cards only."""
    albef = zoo.render_model_card("albef_vqa", "vqav2")
    assert "[DEC]" not in albef and "MED" not in albef and "BLIP" not in albef
    assert "layers 6-11 add cross-attention" in albef and "li2021albef" in albef and "li-etal-2023-lavis" in albef
    blip = zoo.render_model_card("blip_vqa", "vqav2")
    assert "ALBEF" not in blip and "(+ `[DEC]`, `[ENC]`)" in blip and "li2022blip" in blip


def test_template_has_the_card_sections_and_a_parsable_header() -> None:
    text = (CARDS / "TEMPLATE.md").read_text(encoding="utf-8")
    assert re.findall(r"^## (.+)$", text, flags=re.MULTILINE) == list(zoo.CARD_SECTIONS)
    header = _header(text)
    assert {"library_name", "tags", "license", "datasets", "pipeline_tag", "base_model"} <= set(header)


def test_cards_cite_the_reported_results() -> None:
    caption = zoo.render_model_card("blip_caption", "base_coco")
    assert "| COCO Karpathy test | 39.9 | 133.5 | 23.7 |" in caption and "LAVIS model zoo benchmark" in caption
    vqa = zoo.render_model_card("blip_vqa", "vqav2")
    assert "| VQA v2 | 78.23 | 78.29 |" in vqa
    itm = zoo.render_model_card("blip_image_text_matching", "large")
    assert "no ViT-L retrieval row" in itm
    assert "base_model: vl-hub/blip-pretrain-base" in zoo.render_model_card("blip_retrieval", "coco")
    assert "base_model" not in zoo.render_model_card("blip_pretrain", "base")
