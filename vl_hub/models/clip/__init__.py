"""The CLIP family (OpenAI CLIP as in LAVIS ``clip_models``): config, processor, heads, conversion, catalogue.

``register()`` adds the config, heads and processors to the transformers Auto classes under the model type
``vlhub_clip`` (transformers owns ``clip``): ``AutoConfig``, ``AutoModel`` (:class:`ClipModel`),
``AutoModelForZeroShotImageClassification`` (:class:`ClipForZeroShotClassification`), ``AutoImageProcessor``,
``AutoTokenizer`` (transformers' ``CLIPTokenizer``) and ``AutoProcessor`` (:class:`ClipProcessor`).
"""

from __future__ import annotations

import importlib

from transformers import AutoConfig

from vl_hub.models.clip.configuration_clip import ClipConfig, ClipTextConfig, ClipVisionConfig

MODEL_TYPE = "vlhub_clip"

# Modules defining heads; each declares AUTO_CLASSES = {"ClipModel": ("AutoModel",), ...}.
_HEAD_MODULES = ("modeling_clip",)


def register() -> str:
    """Registers CLIP with the Auto classes (idempotent); returns the model type."""
    from vl_hub.auto import get_auto_class, register_head

    AutoConfig.register(MODEL_TYPE, ClipConfig, exist_ok=True)
    for name in _HEAD_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for cls_name, auto_names in module.AUTO_CLASSES.items():
            cls = getattr(module, cls_name)
            register_head(cls)
            for auto_name in auto_names:
                get_auto_class(auto_name).register(ClipConfig, cls, exist_ok=True)
    importlib.import_module(f"{__name__}.processing_clip").register_processing()
    return MODEL_TYPE


__all__ = ["MODEL_TYPE", "ClipConfig", "ClipTextConfig", "ClipVisionConfig", "register"]
