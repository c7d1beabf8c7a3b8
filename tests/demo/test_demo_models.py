"""Model resolution and loading of the demo: the default model, bundles, capabilities, the picker, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vl_hub.demo import default_model
from vl_hub.demo.default_model import BUNDLE_MARKER, default_model_dir, quickstart_dirs, synthetic_vocabulary
from vl_hub.demo.inputs import DemoInputError
from vl_hub.demo.models import CAPABILITIES, ModelBundle, ModelManager, capabilities_of, load_model_bundle


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$VLHUB_HOME`` and the working directory in a fresh folder."""
    monkeypatch.setenv("VLHUB_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_quickstart_dirs_are_home_then_working_directory(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert quickstart_dirs() == [home / "home" / "quickstart", home / "work" / "vlhub_quickstart"]
    monkeypatch.delenv("VLHUB_HOME")  # vl-hub quickstart then writes to ./vlhub_quickstart only
    assert quickstart_dirs() == [home / "work" / "vlhub_quickstart"]


def test_default_model_dir_prefers_quickstart_folders_in_order(home: Path) -> None:
    assert default_model_dir(build=False) is None
    local = home / "work" / "vlhub_quickstart" / "caption"
    local.mkdir(parents=True)
    (local / "config.json").write_text("{}")
    assert default_model_dir(build=False) == home / "work" / "vlhub_quickstart"
    homed = home / "home" / "quickstart"
    homed.mkdir(parents=True)
    (homed / "config.json").write_text("{}")
    assert default_model_dir() == homed  # $VLHUB_HOME first


def test_default_model_dir_builds_the_untrained_blip_once(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = default_model.build_untrained_blip
    monkeypatch.setattr(default_model, "build_untrained_blip", lambda folder: calls.append(folder) or real(folder))
    target = default_model_dir()
    assert target == home / "home" / "demo" / "untrained_blip"
    assert json.loads((target / BUNDLE_MARKER).read_text())["untrained"] is True
    assert sorted(p.name for p in target.iterdir() if p.is_dir()) == ["caption", "retrieval", "vqa"]
    assert default_model_dir() == target
    assert len(calls) == 1  # the second call reuses the folder


def test_synthetic_vocabulary_tokenises_every_synthetic_text_without_unknowns(blip_bundle: ModelBundle) -> None:
    from vl_hub.data import synthetic

    vocab = synthetic_vocabulary()
    assert {"circle", "purple", "moving", "?", "picture"} <= set(vocab)
    assert not any(word.isdigit() and len(word) > 1 for word in vocab)  # no example ids
    tokenizer = blip_bundle.head_for("caption").processor.tokenizer
    _, scenes = synthetic.scenes_for("vqa", 3, "validation", 12, 64)
    texts = [c for s in scenes for c in synthetic.image_captions(s)]
    rng = synthetic.split_rng(3, "validation", "vqa")
    texts += [q for s in scenes for q, _ in synthetic.image_questions(s, rng, 4)]
    ids = tokenizer(texts)["input_ids"]
    assert all(tokenizer.unk_token_id not in row for row in ids)


def test_untrained_bundle_has_every_capability_and_says_untrained(blip_bundle: ModelBundle) -> None:
    assert blip_bundle.untrained
    assert blip_bundle.capabilities == list(CAPABILITIES)
    assert blip_bundle.head_for("caption").head == "BlipForConditionalGeneration"
    assert blip_bundle.head_for("vqa").head == "BlipForQuestionAnswering"
    assert blip_bundle.head_for("itm").head == "BlipForImageTextRetrieval"
    assert blip_bundle.head_for("features").head == "BlipForImageTextRetrieval"
    summary = blip_bundle.summary_markdown()
    assert "Untrained model" in summary and "vl-hub quickstart" in summary


def test_a_quickstart_layout_loads_its_model_folders_only(tmp_path: Path, blip_dir: Path) -> None:
    """``vl-hub quickstart`` writes retrieval/, captioning/, processor/ (no config.json) and dataset_cache/."""
    import shutil

    root = tmp_path / "vlhub_quickstart"
    shutil.copytree(blip_dir / "retrieval", root / "retrieval")
    shutil.copytree(blip_dir / "caption", root / "captioning")
    (root / "processor").mkdir()
    shutil.copy(blip_dir / "caption" / "tokenizer.json", root / "processor")
    (root / "dataset_cache" / "vl_hub_shapes").mkdir(parents=True)
    bundle = load_model_bundle(root)
    assert [h.head for h in bundle.heads] == ["BlipForConditionalGeneration", "BlipForImageTextRetrieval"]
    assert bundle.name == "vlhub_quickstart" and not bundle.untrained
    assert bundle.capabilities == ["caption", "itm", "features"]
    with pytest.raises(DemoInputError, match="cannot do visual question answering"):
        bundle.head_for("vqa")


def test_capabilities_by_head_name() -> None:
    assert capabilities_of("AlbefForImageTextRetrieval") == ("itm", "features")
    assert capabilities_of("AlbefForQuestionAnswering") == ("vqa",)
    assert capabilities_of("ClipForZeroShotClassification") == ("features",)
    assert capabilities_of("ClipModel") == ("features",)
    assert capabilities_of("BlipForNLVR") == ()


def test_missing_capability_names_the_heads_and_what_to_load(clip_bundle: ModelBundle) -> None:
    with pytest.raises(DemoInputError, match=r"cannot do image captioning: its heads are ClipForZeroShot"):
        clip_bundle.head_for("caption")
    with pytest.raises(DemoInputError, match="image-text retrieval head"):
        clip_bundle.head_for("itm")
    with pytest.raises(KeyError, match="unknown capability"):
        clip_bundle.head_for("dance")


def test_fingerprint_follows_the_weights(blip_bundle: ModelBundle, clip_bundle: ModelBundle) -> None:
    folder_head = blip_bundle.head_for("itm")
    assert folder_head.fingerprint() == load_model_bundle(folder_head.source).heads[0].fingerprint()
    memory_head = clip_bundle.heads[0]
    before = memory_head.fingerprint()
    import torch

    from vl_hub.demo.models import LoadedHead

    copy = LoadedHead(memory_head.model, memory_head.processor)
    assert copy.fingerprint() == before
    with torch.no_grad():
        memory_head.model.logit_scale.add_(1.0)
    try:
        assert LoadedHead(memory_head.model, memory_head.processor).fingerprint() != before
    finally:
        with torch.no_grad():
            memory_head.model.logit_scale.sub_(1.0)


def test_load_model_bundle_errors_are_readable(tmp_path: Path) -> None:
    with pytest.raises(DemoInputError, match="not found"):
        load_model_bundle(tmp_path / "nowhere")
    with pytest.raises(DemoInputError, match="holds no checkpoint"):
        load_model_bundle(tmp_path)
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(DemoInputError, match="is a file"):
        load_model_bundle(tmp_path / "weights.bin")
    with pytest.raises(DemoInputError, match="No model given"):
        load_model_bundle("  ")


def test_catalogue_entries_unknown_or_not_converted_say_so() -> None:
    from vl_hub.zoo import ModelNotAvailableError, UnknownModelError

    with pytest.raises(UnknownModelError, match="unknown model"):
        load_model_bundle("blip_caption:no_such_type")
    with pytest.raises(ModelNotAvailableError, match="vl-hub convert"):
        load_model_bundle("blip_caption:base_coco")  # offline, nothing converted in the cache


def test_manager_lists_loaded_then_catalogue_and_loads_folders_on_demand(blip_dir: Path, clip_bundle) -> None:
    manager = ModelManager([clip_bundle], catalogue=True)
    assert manager.default == "tiny CLIP"
    choices = manager.choices()
    assert choices[0] == "tiny CLIP" and "blip_caption:base_coco" in choices
    bundle = manager.get(str(blip_dir))
    assert bundle.name == str(blip_dir) and bundle.has("caption")
    assert manager.get(str(blip_dir)) is bundle  # loaded once
    assert manager.get("") is clip_bundle
    with pytest.raises(DemoInputError):
        manager.get(str(blip_dir / "missing"))
    assert manager.loaded_names() == ["tiny CLIP", str(blip_dir)]


def test_manager_keeps_two_bundles_with_one_name(clip_bundle: ModelBundle) -> None:
    twin = ModelBundle(name="tiny CLIP", heads=list(clip_bundle.heads))
    manager = ModelManager([clip_bundle, twin], catalogue=False)
    assert manager.loaded_names() == ["tiny CLIP", "tiny CLIP (2)"]


def test_cli_parses_demo_options_and_reports_a_missing_model(tmp_path: Path, capsys) -> None:
    from vl_hub.cli.main import build_parser, main

    args = build_parser().parse_args(
        ["demo", "--model", "a", "--model", "b:c", "--host", "0.0.0.0", "--port", "7999", "--no-catalogue"]
    )
    assert (args.models, args.host, args.port, args.no_catalogue) == (["a", "b:c"], "0.0.0.0", 7999, True)
    status = main(["demo", "--model", str(tmp_path / "nowhere"), "--cache-dir", str(tmp_path / "cache")])
    assert status == 2
    assert "not found" in capsys.readouterr().err
