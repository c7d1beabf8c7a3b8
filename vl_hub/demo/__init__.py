"""The vl_hub Gradio demo: captioning, VQA, image-text matching with Grad-CAM, text localisation, multimodal search,
zero-shot classification and a dataset browser.

``vl-hub demo [--model ...]`` serves it; in Python::

    from vl_hub.demo import build_app, launch
    launch(build_app("path/to/checkpoint"), port=7860)

Modules: :mod:`~vl_hub.demo.app` (page assembly, launch), one ``tab_*`` module per tab, :mod:`~vl_hub.demo.models`
(loading), :mod:`~vl_hub.demo.default_model` (quickstart model or untrained fallback), :mod:`~vl_hub.demo.gradcam`,
:mod:`~vl_hub.demo.gallery_index`, :mod:`~vl_hub.demo.dataset_browser`, :mod:`~vl_hub.demo.inputs` (input checks and
error display). Gradio is imported only when the page is built (``pip install vl-hub[demo]``).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (imported on first use: gradio is an optional dependency)
_LAZY: dict[str, str] = {
    "build_app": "vl_hub.demo.app",
    "launch": "vl_hub.demo.app",
    "default_model_dir": "vl_hub.demo.default_model",
    "quickstart_dirs": "vl_hub.demo.default_model",
    "build_untrained_blip": "vl_hub.demo.default_model",
    "ModelBundle": "vl_hub.demo.models",
    "ModelManager": "vl_hub.demo.models",
    "load_model_bundle": "vl_hub.demo.models",
    "GalleryIndex": "vl_hub.demo.gallery_index",
    "DatasetBrowser": "vl_hub.demo.dataset_browser",
    "compute_gradcam": "vl_hub.demo.gradcam",
    "DemoInputError": "vl_hub.demo.inputs",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vl_hub.demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
