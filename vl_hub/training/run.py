"""One-call entry points: ``train(recipe, overrides)`` and ``evaluate(recipe, checkpoint, overrides)``.

They are what ``vl-hub train`` / ``vl-hub evaluate`` run, on one process or under ``accelerate launch``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vl_hub.training.arguments import TrainingArguments


def _arguments(
    recipe: str | Path | Mapping[str, Any] | TrainingArguments, overrides: Sequence[str] | Mapping[str, Any] | None
) -> TrainingArguments:
    if isinstance(recipe, TrainingArguments):
        if overrides:
            return TrainingArguments.from_recipe(recipe.to_dict(), overrides)
        return recipe
    return TrainingArguments.from_recipe(recipe, overrides)


def train(
    recipe: str | Path | Mapping[str, Any] | TrainingArguments,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> Any:
    """Trains from a recipe (name, YAML path, mapping or arguments) with ``overrides``; returns the
    :class:`~vl_hub.training.trainer.TrainResult`."""
    from vl_hub.training.trainer import Trainer

    args = _arguments(recipe, overrides)
    return Trainer.from_arguments(args, training=True).train()


def evaluate(
    recipe: str | Path | Mapping[str, Any] | TrainingArguments,
    checkpoint: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Evaluates ``checkpoint`` (or the recipe's model) on the recipe's validation and test datasets;
    returns ``{"<eval|test>/<dataset>/<metric>": value}`` and writes ``eval_results.json`` into
    ``output_dir``."""
    from vl_hub.training.trainer import Trainer

    args = _arguments(recipe, overrides)
    return Trainer.from_arguments(args, training=False, checkpoint=checkpoint).evaluate_all()
