"""The ALPRO family (LAVIS ``alpro_models``): config, video processor + processor, heads, conversion, catalogue.

``register()`` adds the config, heads and processors to the transformers Auto classes under the model type
``vlhub_alpro``: ``AutoConfig``, ``AutoModel`` (:class:`~vl_hub.models.alpro.modeling_alpro.AlproModel`),
``AutoModelForVideoTextRetrieval``, ``AutoModelForVideoQuestionAnswering`` (``vl_hub.auto``), ``AutoProcessor`` and,
where transformers can offer it (torchvision installed), ``AutoVideoProcessor``.
"""

from __future__ import annotations

import importlib
import importlib.util

from transformers import AutoConfig

from vl_hub.models.alpro.configuration_alpro import AlproConfig, AlproTextConfig, AlproVisionConfig

MODEL_TYPE = "vlhub_alpro"

# Modules defining heads; each declares AUTO_CLASSES = {"AlproModel": ("AutoModel",), ...}.
_HEAD_MODULES = ("modeling_alpro",)


def _head_modules() -> list[object]:
    mods = []
    for name in _HEAD_MODULES:
        full = f"{__name__}.{name}"
        if importlib.util.find_spec(full) is not None:
            mods.append(importlib.import_module(full))
    return mods


def register() -> str:
    """Registers ALPRO with the Auto classes (idempotent); returns the model type."""
    from vl_hub.auto import get_auto_class, register_head

    AutoConfig.register(MODEL_TYPE, AlproConfig, exist_ok=True)
    for module in _head_modules():
        # AUTO_CLASSES: head class name -> names of the Auto classes (transformers' or vl_hub.auto's) that load it
        for cls_name, auto_names in getattr(module, "AUTO_CLASSES", {}).items():
            cls = getattr(module, cls_name)
            register_head(cls)
            for auto_name in auto_names:
                get_auto_class(auto_name).register(AlproConfig, cls, exist_ok=True)
    processing = f"{__name__}.processing_alpro"
    if importlib.util.find_spec(processing) is not None:
        importlib.import_module(processing).register_processing()
    return MODEL_TYPE


__all__ = ["MODEL_TYPE", "AlproConfig", "AlproTextConfig", "AlproVisionConfig", "register"]
