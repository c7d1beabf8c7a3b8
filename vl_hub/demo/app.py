"""The demo page: :func:`build_app` assembles the tabs into a ``gr.Blocks``; :func:`launch` serves it.

Works as a Hugging Face Space: an ``app.py`` with ``from vl_hub.demo import build_app, launch; launch(build_app())``.
Nothing is fetched from the network: the theme uses system fonts, analytics are off, and models and data come from
local folders (or the local Hub cache).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# before gradio is imported: it reads this once (no usage pings to the network)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from vl_hub.demo import tab_caption, tab_datasets, tab_matching, tab_search, tab_vqa, tab_zero_shot
from vl_hub.demo.context import DemoContext, example_images
from vl_hub.demo.dataset_browser import DatasetBrowser
from vl_hub.demo.default_model import default_model_dir, vlhub_home
from vl_hub.demo.gallery_index import GalleryIndex
from vl_hub.demo.inputs import status_error
from vl_hub.demo.models import ModelBundle, ModelManager

logger = logging.getLogger(__name__)

__all__ = ["CSS", "DEFAULT_SYNTHETIC_OPTIONS", "build_app", "launch", "theme"]

#: sizes of the synthetic ``vl_hub_shapes`` splits the dataset browser generates (small: ready in seconds)
DEFAULT_SYNTHETIC_OPTIONS: dict[str, Any] = {"num_train": 64, "num_validation": 16, "num_test": 16, "image_size": 64}

CSS = """
.vl-status { min-height: 1.5em; }
.vl-status p { margin: 0.2em 0; }
.vl-pixelated img, .vl-pixelated canvas { image-rendering: pixelated; }
.vl-sample { font-size: 0.9em; line-height: 1.3; }
.vl-sample p { margin: 0.15em 0; }
.vl-sample ul { margin: 0.1em 0 0.1em 1.1em; padding: 0; }
.vl-slot { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px; }
#model-info p { margin: 0.25em 0; }
#model-info blockquote { background: #fff4e5; border-left: 4px solid #f97316; padding: 0.4em 0.8em; margin: 0.3em 0; }
.dark #model-info blockquote { background: #3b2a14; }
"""


def theme() -> gr.themes.Base:
    """The page's theme: Gradio's default look with system fonts (no web-font download)."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )


def _manager(models: Any, device: str, catalogue: bool) -> ModelManager:
    if isinstance(models, ModelManager):
        return models
    if models is None:
        models = [default_model_dir()]
    elif isinstance(models, (ModelBundle, str, os.PathLike)):
        models = [models]
    return ModelManager(list(models), device=device, catalogue=catalogue)


def build_app(
    models: ModelManager | ModelBundle | str | os.PathLike[str] | Sequence[ModelBundle | str | os.PathLike[str]]
    | None = None,
    *,
    gallery: GalleryIndex | str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    datasets_cache_dir: str | os.PathLike[str] | None = None,
    synthetic_options: dict[str, Any] | None = None,
    device: str = "cpu",
    catalogue: bool = True,
    title: str = "vl_hub demo",
) -> gr.Blocks:
    """The demo as a ``gr.Blocks`` (call :func:`launch` on it, or mount it in a FastAPI app).

    Args:
        models: what to serve: bundles, or sources for :func:`vl_hub.demo.models.load_model_bundle` (folders,
            ``name:model_type`` catalogue entries, Hub ids); the first is selected. Default:
            :func:`~vl_hub.demo.default_model.default_model_dir` (the quickstart model, else an untrained tiny BLIP).
        gallery: the search gallery: an index, or a folder of images. Default: the synthetic ``vl_hub_shapes`` test
            split (generated and indexed on the first search).
        cache_dir: the demo's cache (gallery features, example images); default ``$VLHUB_HOME/demo``.
        datasets_cache_dir: where ``datasets`` prepares splits (its default cache otherwise).
        synthetic_options: ``vl_hub_shapes`` sizes for the browser (default :data:`DEFAULT_SYNTHETIC_OPTIONS`).
        device: where loaded models run.
        catalogue: list the model catalogue's entries in the model picker.
        title: page title.
    """
    manager = _manager(models, device, catalogue)
    cache = Path(cache_dir) if cache_dir is not None else vlhub_home() / "demo"
    cache.mkdir(parents=True, exist_ok=True)

    if isinstance(gallery, GalleryIndex):
        index = gallery

        def gallery_factory() -> GalleryIndex:
            return index
    elif gallery is not None:
        folder = Path(gallery)

        def gallery_factory() -> GalleryIndex:
            return GalleryIndex.from_folder(folder, cache_dir=cache)
    else:
        def gallery_factory() -> GalleryIndex:
            return GalleryIndex.synthetic(cache_dir=cache, datasets_cache_dir=datasets_cache_dir)

    options = dict(DEFAULT_SYNTHETIC_OPTIONS if synthetic_options is None else synthetic_options)
    ctx = DemoContext(
        models=manager,
        browser=DatasetBrowser(cache_dir=datasets_cache_dir, synthetic_options=options),
        cache_dir=cache,
        gallery_factory=gallery_factory,
        examples=example_images(cache / "examples"),
    )

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(
            f"# {title}\n"
            "Captioning, question answering, image-text matching with Grad-CAM, text localisation, multimodal search, "
            "zero-shot classification and a dataset browser, on vl_hub's BLIP, ALBEF and CLIP models."
        )
        with gr.Row():
            picker = gr.Dropdown(
                manager.choices(), value=manager.default, label="Model", allow_custom_value=True, scale=3,
                info="A loaded model, a catalogue entry (name:model_type), a checkpoint folder or a Hub id",
                elem_id="model-picker",
            )
        info = gr.Markdown(manager.get(manager.default).summary_markdown(), elem_id="model-info")
        layer_pickers: list[gr.Dropdown] = []
        with gr.Tabs():
            with gr.Tab("Image captioning", id="caption"):
                tab_caption.build(ctx, picker)
            with gr.Tab("Visual question answering", id="vqa"):
                tab_vqa.build(ctx, picker)
            with gr.Tab("Image-text matching", id="itm"):
                layer_pickers.append(tab_matching.build_matching(ctx, picker))
            with gr.Tab("Text localisation", id="localisation"):
                layer_pickers.append(tab_matching.build_localisation(ctx, picker))
            with gr.Tab("Multimodal search", id="search"):
                tab_search.build(ctx, picker)
            with gr.Tab("Zero-shot classification", id="zero_shot"):
                tab_zero_shot.build(ctx, picker)
            with gr.Tab("Dataset browser", id="datasets"):
                tab_datasets.build(ctx)

        def pick_model(name: str) -> tuple[Any, ...]:
            try:
                summary = ctx.bundle(name).summary_markdown()
            except Exception as err:  # any load failure is shown under the picker; the previous model stays usable
                logger.warning("model %r could not be loaded: %s", name, err)
                summary = status_error(str(err) or type(err).__name__)
                gr.Warning(str(err).splitlines()[0] if str(err) else type(err).__name__)
            choices = tab_matching.layer_choices(ctx, name)
            return (summary, *[gr.update(choices=choices, value=tab_matching.AUTO_LAYER) for _ in layer_pickers])

        picker.change(pick_model, inputs=[picker], outputs=[info, *layer_pickers], api_name="pick_model")
    app.vl_hub_context = ctx  # type: ignore[attr-defined]  # tests and benchmarks reach the handlers' state here
    return app


def launch(
    app: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
    quiet: bool = False,
    **kwargs: Any,
) -> gr.Blocks:
    """Serves ``app`` on ``host:port`` with the demo's theme and CSS (Gradio 6 takes them at launch).

    Args:
        host: interface to bind (``0.0.0.0`` to serve other machines).
        port: TCP port (default: Gradio's, 7860 or the next free one).
        block: keep serving until interrupted (``False`` returns once the server is up, for tests and notebooks).
        quiet: no start-up banner.
        kwargs: more ``gr.Blocks.launch`` arguments.
    """
    kwargs.setdefault("show_error", True)
    kwargs.setdefault("theme", theme())
    kwargs.setdefault("css", CSS)
    kwargs.setdefault("footer_links", ["api", "settings"])
    app.queue(default_concurrency_limit=2)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet, **kwargs)
    return app
