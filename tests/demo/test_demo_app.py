"""The assembled page: its tabs, API endpoints, the default model, and the model picker's event."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from tests.demo.conftest import SYNTHETIC
from vl_hub.demo import build_app
from vl_hub.demo.gallery_index import GalleryIndex
from vl_hub.demo.models import ModelManager

TABS = [
    "Image captioning",
    "Visual question answering",
    "Image-text matching",
    "Text localisation",
    "Multimodal search",
    "Zero-shot classification",
    "Dataset browser",
]


def event(app: gr.Blocks, api_name: str):
    """The Python function behind the event named ``api_name``."""
    fns = app.fns.values() if isinstance(app.fns, dict) else app.fns
    for fn in fns:
        if fn.api_name == api_name:
            return fn.fn
    raise KeyError(f"no event {api_name!r}")


@pytest.fixture(scope="module")
def app(ctx, demo_root: Path, datasets_cache: Path, gallery: GalleryIndex) -> gr.Blocks:
    manager = ModelManager([ctx.bundle(n) for n in ctx.models.loaded_names()], catalogue=False)
    return build_app(manager, gallery=gallery, cache_dir=demo_root / "cache", datasets_cache_dir=datasets_cache,
                     synthetic_options=SYNTHETIC)


def test_page_has_every_tab_and_api_endpoint(app: gr.Blocks) -> None:
    config = app.get_config_file()
    labels = [c["props"].get("label") for c in config["components"] if c["type"] == "tabitem"]
    assert labels == TABS
    names = {fn.api_name for fn in (app.fns.values() if isinstance(app.fns, dict) else app.fns)}
    assert {"caption", "vqa", "itm", "localise", "search", "zero_shot", "open_dataset", "pick_model"} <= names
    assert len(app.vl_hub_context.examples) == 4


def test_model_picker_shows_the_model_and_refreshes_the_layer_choices(app: gr.Blocks) -> None:
    pick = event(app, "pick_model")
    summary, *layers = pick("tiny ALBEF")
    assert "**tiny ALBEF** — heads: `AlbefForImageTextRetrieval`" in summary
    assert len(layers) == 2 and all(u["choices"] == ["auto (middle layer)", "2"] for u in layers)
    summary, *_ = pick("untrained tiny BLIP")
    assert "Untrained model" in summary
    with pytest.warns(UserWarning, match="not found"):
        summary, *layers = pick("/no/such/model")
    assert summary.startswith("⚠ **Model") and layers[0]["choices"] == ["auto (middle layer)"]


def test_page_event_runs_a_handler_with_error_display(app: gr.Blocks, ctx) -> None:
    caption = event(app, "caption")
    text, status = caption(None, ctx.examples[0], "Beam search", 2, 20)
    assert text.startswith("1. ") and status.startswith("✓")
    with pytest.warns(UserWarning, match="No image"):
        text, status = caption(None, None, "Beam search", 2, 20)
    assert text == gr.update(value=None) and status.startswith("⚠ **No image")


def test_default_app_serves_the_untrained_blip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLHUB_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    app = build_app(catalogue=False, datasets_cache_dir=tmp_path / "datasets")
    ctx = app.vl_hub_context
    bundle = ctx.bundle(None)
    assert bundle.untrained and Path(bundle.source) == tmp_path / "home" / "demo" / "untrained_blip"
    assert ctx.cache_dir == tmp_path / "home" / "demo"
    info = next(c for c in app.get_config_file()["components"] if c["props"].get("elem_id") == "model-info")
    assert "Untrained model (random weights)" in info["props"]["value"]
