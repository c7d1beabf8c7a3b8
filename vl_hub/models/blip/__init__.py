"""The BLIP family (LAVIS ``blip_models``): config, processor and every head.

``register()`` adds the config, heads and processors to the transformers Auto classes under the
model type ``vlhub_blip`` (transformers owns ``blip``).
"""

from __future__ import annotations

import importlib
import importlib.util

from transformers import AutoConfig

from vl_hub.models.blip.configuration_blip import BlipConfig, BlipTextConfig, BlipVisionConfig

MODEL_TYPE = "vlhub_blip"

# Modules defining heads; each declares AUTO_CLASSES = {"BlipModel": ("AutoModel",), ...}.
_HEAD_MODULES = (
    "modeling_blip",
    "modeling_blip_generation",
    "modeling_blip_vqa",
    "modeling_blip_nlvr",
    "modeling_blip_pretrain",
)


def _head_modules() -> list[object]:
    mods = []
    for name in _HEAD_MODULES:
        full = f"{__name__}.{name}"
        if importlib.util.find_spec(full) is not None:
            mods.append(importlib.import_module(full))
    return mods


def register() -> str:
    """Registers BLIP with the Auto classes (idempotent); returns the model type."""
    from vl_hub.auto import get_auto_class, register_head

    AutoConfig.register(MODEL_TYPE, BlipConfig, exist_ok=True)
    for module in _head_modules():
        # AUTO_CLASSES: head class name -> names of the Auto classes (transformers' or vl_hub.auto's) that load it
        for cls_name, auto_names in getattr(module, "AUTO_CLASSES", {}).items():
            cls = getattr(module, cls_name)
            register_head(cls)
            for auto_name in auto_names:
                get_auto_class(auto_name).register(BlipConfig, cls, exist_ok=True)
    processing = f"{__name__}.processing_blip"
    if importlib.util.find_spec(processing) is not None:
        importlib.import_module(processing).register_processing()
    return MODEL_TYPE


__all__ = ["BlipConfig", "BlipTextConfig", "BlipVisionConfig", "MODEL_TYPE", "register"]
