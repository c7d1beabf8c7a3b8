"""The ALBEF family (LAVIS ``albef_models``): config, processor, every head, conversion and catalogue.

``register()`` adds the config, heads and processors to the transformers Auto classes under the model type
``vlhub_albef``: ``AutoConfig``, ``AutoModel`` (:class:`AlbefModel`), ``AutoModelForImageTextRetrieval``,
``AutoModelForVisualQuestionAnswering``, ``AutoModelForImagePairClassification`` (NLVR2),
``AutoModelForImageTextClassification`` (visual entailment), ``AutoModelForPreTraining``, ``AutoImageProcessor``
and ``AutoProcessor``.
"""

from __future__ import annotations

import importlib
import importlib.util

from transformers import AutoConfig

from vl_hub.models.albef.configuration_albef import (
    AlbefConfig,
    AlbefTextConfig,
    AlbefVisionConfig,
)

MODEL_TYPE = "vlhub_albef"

# Modules defining heads; each declares AUTO_CLASSES = {"AlbefModel": ("AutoModel",), ...}.
_HEAD_MODULES = ("modeling_albef", "modeling_albef_generation", "modeling_albef_nlvr", "modeling_albef_pretrain")


def _head_modules() -> list[object]:
    mods = []
    for name in _HEAD_MODULES:
        full = f"{__name__}.{name}"
        if importlib.util.find_spec(full) is not None:
            mods.append(importlib.import_module(full))
    return mods


def register() -> str:
    """Registers ALBEF with the Auto classes (idempotent); returns the model type."""
    from vl_hub.auto import get_auto_class, register_head

    AutoConfig.register(MODEL_TYPE, AlbefConfig, exist_ok=True)
    for module in _head_modules():
        # AUTO_CLASSES: head class name -> names of the Auto classes (transformers' or vl_hub.auto's) that load it
        for cls_name, auto_names in getattr(module, "AUTO_CLASSES", {}).items():
            cls = getattr(module, cls_name)
            register_head(cls)
            for auto_name in auto_names:
                get_auto_class(auto_name).register(AlbefConfig, cls, exist_ok=True)
    processing = f"{__name__}.processing_albef"
    if importlib.util.find_spec(processing) is not None:
        importlib.import_module(processing).register_processing()
    return MODEL_TYPE


__all__ = ["MODEL_TYPE", "AlbefConfig", "AlbefTextConfig", "AlbefVisionConfig", "register"]
