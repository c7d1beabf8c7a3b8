"""Training through Accelerate: one loop for every task, typed arguments + YAML recipes, resumable
checkpoints, logs and curves, model card and Hub upload.

    from vl_hub.training import TrainingArguments, Trainer
    args = TrainingArguments.from_recipe("blip/captioning_coco", ["--max_epoch", "1"])
    result = Trainer.from_arguments(args).train()

or ``vl-hub train RECIPE [--key value ...]`` / ``accelerate launch -m vl_hub.cli train RECIPE``.
"""

from __future__ import annotations

import importlib
from typing import Any

from vl_hub.training.arguments import (
    DatasetArguments,
    ModelArguments,
    TrainingArguments,
    describe_keys,
)
from vl_hub.training.typed_config import ArgumentsError

_LAZY: dict[str, str] = {
    "Trainer": "vl_hub.training.trainer",
    "TrainResult": "vl_hub.training.trainer",
    "make_accelerator": "vl_hub.training.trainer",
    "train": "vl_hub.training.run",
    "evaluate": "vl_hub.training.run",
    "BatchPlan": "vl_hub.training.mixing",
    "LavisSchedule": "vl_hub.training.schedulers",
    "eval_dataloader": "vl_hub.training.evaluation",
    "gather_for_metrics": "vl_hub.training.evaluation",
    "push_folder": "vl_hub.training.hub",
}

__all__ = [
    "ArgumentsError",
    "BatchPlan",
    "DatasetArguments",
    "LavisSchedule",
    "ModelArguments",
    "TrainResult",
    "Trainer",
    "TrainingArguments",
    "describe_keys",
    "eval_dataloader",
    "evaluate",
    "gather_for_metrics",
    "make_accelerator",
    "push_folder",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vl_hub.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
