"""vl_hub: vision-language models, tasks and datasets on the Hugging Face stack.

Importing the package registers every model family with the transformers Auto classes, so that
``AutoModel.from_pretrained`` / ``AutoProcessor.from_pretrained`` load vl_hub checkpoints. The
public functions below are imported lazily to keep ``import vl_hub`` cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "load_dataset": "vl_hub.data.load",
    "list_datasets": "vl_hub.data.load",
    "dataset_info": "vl_hub.data.load",
    "list_families": "vl_hub._registration",
    "AutoVlHubModel": "vl_hub.auto",
    "AutoModelForImageTextRetrieval": "vl_hub.auto",
    "AutoModelForVideoTextRetrieval": "vl_hub.auto",
    "AutoModelForImagePairClassification": "vl_hub.auto",
    "AutoModelForImageTextClassification": "vl_hub.auto",
    "AutoModelForVideoQuestionAnswering": "vl_hub.auto",
    "load_model": "vl_hub.zoo",
    "load_model_and_processor": "vl_hub.zoo",
    "list_models": "vl_hub.zoo",
    "list_tasks": "vl_hub.tasks",
    "get_task": "vl_hub.tasks",
    "extract_features": "vl_hub.tasks.feature_extraction",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vl_hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


from vl_hub import _registration as _registration  # noqa: E402

_registration.register_all()
