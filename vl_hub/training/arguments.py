"""``TrainingArguments``: every knob of a vl_hub training or evaluation run, typed and validated.

A run is described by a recipe YAML (``vl_hub/recipes/<family>/<task>_<dataset>.yaml`` or any file)
whose keys are the fields below, then ``--key value`` overrides on the command line (dotted keys for
nested values: ``--model.name_or_path out/ckpt``, ``--datasets.0.data_dir /data/coco``). Both go
through the same validation (:mod:`vl_hub.training.typed_config`): an unknown key lists the valid
keys, a wrong type names the key, the value and the expected type.

Names follow LAVIS's ``run`` section where one exists (``init_lr``, ``min_lr``, ``warmup_lr``,
``warmup_steps``, ``lr_sched``, ``lr_decay_rate``, ``max_epoch``, ``max_iters``,
``iters_per_inner_epoch``, ``batch_size_train``, ``batch_size_eval``, ``num_workers``, ``seed``), so a
LAVIS project file translates line by line.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vl_hub.training.typed_config import (
    ArgumentsError,
    build_dataclass,
    coerce_fields,
    parse_overrides,
    set_dotted,
    to_dict,
    valid_keys,
)

#: learning-rate schedules (LAVIS ``lr_sched``), see :mod:`vl_hub.training.schedulers`.
LR_SCHEDULES = ("linear_warmup_cosine_lr", "linear_warmup_step_lr", "constant_lr")
#: experiment trackers ``report_to`` may name (JSON lines are always written).
TRACKERS = ("tensorboard", "wandb", "all")


def _doc(text: str) -> dict[str, str]:
    """Field metadata holding the field's documentation (shown by ``vl-hub train --help-keys``)."""
    return {"help": text}


@dataclass
class ModelArguments:
    """Which model to train: a checkpoint, or a family config built from scratch.

    The head class is the one the task declares for the model's family (``Task.families``), unless
    ``class_path`` names one; the family comes from ``family`` or from the checkpoint's ``model_type``.
    """

    name_or_path: str | None = field(
        default=None,
        metadata=_doc(
            "Hub repo id or local folder of a vl_hub checkpoint (config.json + model.safetensors), loaded "
            "with the task's head class via from_pretrained."
        ),
    )
    family: str | None = field(
        default=None,
        metadata=_doc(
            "Model family (blip, albef, clip, alpro). Needed to build a model from scratch (no name_or_path)."
        ),
    )
    class_path: str | None = field(
        default=None,
        metadata=_doc(
            "Import path 'package.module:Class' of the head class; overrides the task's choice "
            "(for heads outside vl_hub)."
        ),
    )
    config: dict[str, Any] = field(
        default_factory=dict,
        metadata=_doc(
            "Config values: overrides on the checkpoint's config, or the whole config when building from scratch."
        ),
    )
    processor: str | None = field(
        default=None,
        metadata=_doc("Hub repo id or folder of the processor; defaults to name_or_path when that folder has one."),
    )
    attn_implementation: Literal["sdpa", "eager"] | None = field(
        default=None, metadata=_doc("Attention kernel of the shared layers; the checkpoint's (sdpa) when unset.")
    )

    def __post_init__(self) -> None:
        coerce_fields(self)
        if self.name_or_path is None and self.family is None and self.class_path is None:
            raise ArgumentsError(
                "", "give name_or_path (a checkpoint), or family/class_path + config to build a model from scratch"
            )


@dataclass
class DatasetArguments:
    """One dataset of a run, loaded with ``vl_hub.load_dataset(name, data_dir=..., split=..., ...)``."""

    name: str = field(
        metadata=_doc(
            "A dataset of `vl-hub datasets list`, 'custom' (your folder; set options.task), or a path to a "
            "builder .py file."
        )
    )
    data_dir: str | None = field(default=None, metadata=_doc("Folder holding the dataset's official files, unchanged."))
    split: str = field(default="train", metadata=_doc("Split to use (train, validation, test, ...)."))
    config: str | None = field(default=None, metadata=_doc("Builder config name (see `vl-hub datasets info NAME`)."))
    ratio: float | None = field(
        default=None,
        metadata=_doc(
            "Sampling weight when training on several datasets (LAVIS train_dataset_ratios): each batch comes "
            "from one dataset drawn with probability ratio/sum. Leave unset on all datasets to concatenate them."
        ),
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata=_doc("Builder config options (skip_invalid, task for 'custom', ...).")
    )
    max_samples: int | None = field(default=None, metadata=_doc("Use only the first max_samples rows (quick runs)."))
    label: str | None = field(
        default=None, metadata=_doc("Name of this dataset in logs and the model card; '<name>/<split>' when unset.")
    )

    def __post_init__(self) -> None:
        coerce_fields(self)
        if self.ratio is not None and self.ratio <= 0:
            raise ArgumentsError("ratio", f"must be > 0, got {self.ratio}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ArgumentsError("max_samples", f"must be >= 1, got {self.max_samples}")

    @property
    def display_name(self) -> str:
        """``label`` or ``"<name>/<split>"`` (the builder's stem when ``name`` is a path)."""
        if self.label:
            return self.label
        return f"{Path(self.name).stem if self.name.endswith('.py') else self.name}/{self.split}"


@dataclass
class TrainingArguments:
    """Everything a ``vl-hub train`` / ``vl-hub evaluate`` run needs (see the module docstring).

    Counting: an *iteration* is one batch of ``batch_size_train`` rows per process (LAVIS's ``iters``);
    an optimizer *step* happens every ``gradient_accumulation_steps`` iterations. ``log_every``,
    ``eval_every`` (strategy ``steps``) and ``save_every`` (strategy ``steps``) count optimizer steps;
    checkpoint folders are named ``step_<optimizer step>``.
    """

    # ----------------------------------------------------------------- what
    output_dir: str = field(metadata=_doc("Folder for checkpoints, logs, the final model and its card."))
    task: str = field(
        metadata=_doc("Task name in vl_hub.tasks.TASKS (captioning, retrieval, ...) or 'package.module:Class'.")
    )
    model: ModelArguments = field(metadata=_doc("The model to train or evaluate (a mapping, see ModelArguments)."))
    datasets: list[DatasetArguments] = field(
        default_factory=list,
        metadata=_doc(
            "Training datasets (each a mapping: name, data_dir, split, config, ratio, options, max_samples, label)."
        ),
    )
    eval_datasets: list[DatasetArguments] = field(
        default_factory=list,
        metadata=_doc(
            "Validation datasets evaluated during training; the first one's task.primary_metric picks the best model."
        ),
    )
    test_datasets: list[DatasetArguments] = field(
        default_factory=list,
        metadata=_doc("Datasets evaluated once at the end, on the best model (LAVIS test_splits)."),
    )
    task_options: dict[str, Any] = field(
        default_factory=dict, metadata=_doc("Keyword options of the task (e.g. num_beams, max_len, k_test).")
    )
    recipe: str | None = field(
        default=None, metadata=_doc("Recipe this run came from (set by the recipe loader; shown in the card).")
    )
    description: str = field(default="", metadata=_doc("Free text for the model card."))
    run_name: str | None = field(
        default=None, metadata=_doc("Name of the run for trackers and the card; output_dir's name when unset.")
    )
    dataset_cache_dir: str | None = field(
        default=None, metadata=_doc("Where prepared datasets are cached (datasets' default when unset).")
    )

    # ----------------------------------------------------------------- runner
    max_epoch: int = field(default=1, metadata=_doc("Epochs to train (epoch-based runner, LAVIS runner_base)."))
    max_iters: int | None = field(
        default=None,
        metadata=_doc(
            "Iterations to train (iteration-based runner, LAVIS runner_iter); needs iters_per_inner_epoch. "
            "The learning-rate schedule then counts inner epochs of iters_per_inner_epoch iterations."
        ),
    )
    iters_per_inner_epoch: int | None = field(
        default=None, metadata=_doc("Iterations per inner epoch of the iteration-based runner.")
    )
    batch_size_train: int = field(default=8, metadata=_doc("Training batch size per process."))
    batch_size_eval: int = field(default=16, metadata=_doc("Evaluation batch size per process."))
    num_workers: int = field(default=0, metadata=_doc("DataLoader worker processes for training batches."))
    seed: int = field(default=42, metadata=_doc("Seed of model init, data order, per-batch augmentation and dropout."))

    # ----------------------------------------------------------------- optimisation
    lr_sched: Literal["linear_warmup_cosine_lr", "linear_warmup_step_lr", "constant_lr"] = field(
        default="linear_warmup_cosine_lr", metadata=_doc("Learning-rate schedule (LAVIS lr_sched).")
    )
    init_lr: float = field(default=1e-4, metadata=_doc("Peak learning rate (after warmup)."))
    min_lr: float = field(default=0.0, metadata=_doc("Floor of the cosine and step schedules."))
    warmup_lr: float = field(
        default=-1.0, metadata=_doc("Learning rate at the start of warmup; -1 means init_lr (LAVIS warmup_lr).")
    )
    warmup_steps: int = field(default=0, metadata=_doc("Warmup length in iterations, within the first (inner) epoch."))
    lr_decay_rate: float | None = field(default=None, metadata=_doc("Per-epoch decay factor of linear_warmup_step_lr."))
    weight_decay: float = field(
        default=0.05,
        metadata=_doc(
            "AdamW weight decay; not applied to biases, 1-d weights (norms) and names with 'ln'/'bn' (as LAVIS)."
        ),
    )
    beta1: float = field(default=0.9, metadata=_doc("AdamW beta1."))
    beta2: float = field(default=0.999, metadata=_doc("AdamW beta2 (LAVIS beta2)."))
    adam_epsilon: float = field(default=1e-8, metadata=_doc("AdamW epsilon."))
    max_grad_norm: float | None = field(
        default=None, metadata=_doc("Clip the gradient norm to this value (no clipping when unset, as LAVIS).")
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata=_doc("Iterations whose gradients are summed before one optimizer step (LAVIS accum_grad_iters)."),
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = field(
        default="no", metadata=_doc("Autocast precision through Accelerate (fp16 uses a gradient scaler).")
    )
    gradient_checkpointing: bool = field(
        default=False, metadata=_doc("Recompute activations in backward to save memory.")
    )

    # ----------------------------------------------------------------- evaluation / checkpoints
    eval_strategy: Literal["no", "epoch", "steps"] = field(
        default="epoch",
        metadata=_doc(
            "When to evaluate eval_datasets: every eval_every epochs, every eval_every optimizer steps, or never."
        ),
    )
    eval_every: int = field(default=1, metadata=_doc("Evaluation interval in the unit of eval_strategy."))
    save_strategy: Literal["no", "epoch", "steps"] = field(
        default="epoch", metadata=_doc("When to write a resumable checkpoint (checkpoints/step_<n>).")
    )
    save_every: int = field(default=1, metadata=_doc("Checkpoint interval in the unit of save_strategy."))
    save_total_limit: int | None = field(
        default=2, metadata=_doc("Keep only the newest K resumable checkpoints (all when unset).")
    )
    load_best_at_end: bool = field(
        default=True,
        metadata=_doc(
            "Before the final save and the test evaluation, load the weights that scored best on eval_datasets."
        ),
    )
    resume: bool = field(
        default=False,
        metadata=_doc(
            "Continue from the newest checkpoint in output_dir/checkpoints (same data order, optimizer, "
            "schedule, RNG); start fresh when there is none."
        ),
    )
    resume_from: str | None = field(default=None, metadata=_doc("Continue from this checkpoint folder."))
    overwrite_output_dir: bool = field(
        default=False, metadata=_doc("Delete previous checkpoints and logs in output_dir instead of refusing to start.")
    )

    # ----------------------------------------------------------------- reporting
    log_every: int = field(default=50, metadata=_doc("Log training losses every N optimizer steps."))
    report_to: list[str] = field(
        default_factory=list, metadata=_doc("Trackers besides log.jsonl: tensorboard, wandb, or all (those installed).")
    )
    progress: bool = field(default=True, metadata=_doc("Show tqdm progress bars (main process only)."))
    push_to_hub: str | None = field(
        default=None, metadata=_doc("Upload the final folder to this Hub repo id (user/name).")
    )
    hub_private: bool = field(default=False, metadata=_doc("Create the Hub repo as private."))

    def __post_init__(self) -> None:
        coerce_fields(self)
        positive = {
            "max_epoch": self.max_epoch,
            "batch_size_train": self.batch_size_train,
            "batch_size_eval": self.batch_size_eval,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "eval_every": self.eval_every,
            "save_every": self.save_every,
            "log_every": self.log_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise ArgumentsError(name, f"must be >= 1, got {value}")
        for name in ("num_workers", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ArgumentsError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.init_lr <= 0:
            raise ArgumentsError("init_lr", f"must be > 0, got {self.init_lr}")
        if self.min_lr < 0:
            raise ArgumentsError("min_lr", f"must be >= 0, got {self.min_lr}")
        if self.weight_decay < 0:
            raise ArgumentsError("weight_decay", f"must be >= 0, got {self.weight_decay}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ArgumentsError(name, f"must be in [0, 1), got {getattr(self, name)}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ArgumentsError("max_grad_norm", f"must be > 0, got {self.max_grad_norm}")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ArgumentsError(
                "save_total_limit", f"must be >= 1 (or unset to keep all), got {self.save_total_limit}"
            )
        if (self.max_iters is None) != (self.iters_per_inner_epoch is None):
            raise ArgumentsError(
                "max_iters" if self.max_iters is None else "iters_per_inner_epoch",
                "the iteration-based runner needs both max_iters and iters_per_inner_epoch "
                f"(got max_iters={self.max_iters}, iters_per_inner_epoch={self.iters_per_inner_epoch})",
            )
        if self.max_iters is not None and self.iters_per_inner_epoch is not None:
            if self.max_iters < 1 or self.iters_per_inner_epoch < 1:
                raise ArgumentsError("max_iters", "max_iters and iters_per_inner_epoch must be >= 1")
            if self.iters_per_inner_epoch > self.max_iters:
                raise ArgumentsError(
                    "iters_per_inner_epoch",
                    f"{self.iters_per_inner_epoch} is more than max_iters={self.max_iters}",
                )
        if self.lr_sched == "linear_warmup_step_lr" and self.lr_decay_rate is None:
            raise ArgumentsError("lr_decay_rate", "linear_warmup_step_lr needs lr_decay_rate (e.g. 0.9)")
        unknown = [t for t in self.report_to if t not in TRACKERS]
        if unknown:
            raise ArgumentsError("report_to", f"unknown tracker(s) {unknown}; allowed: {', '.join(TRACKERS)}")
        ratios = [d.ratio for d in self.datasets]
        if any(r is None for r in ratios) and any(r is not None for r in ratios):
            raise ArgumentsError(
                "datasets",
                "set ratio on every training dataset (sampled by ratio) or on none (concatenated); got "
                + ", ".join(f"{d.display_name}: {d.ratio}" for d in self.datasets),
            )
        if self.push_to_hub is not None and self.push_to_hub.count("/") != 1:
            raise ArgumentsError("push_to_hub", f"expected a repo id 'user/name', got {self.push_to_hub!r}")

    # ----------------------------------------------------------------- derived
    @property
    def iteration_based(self) -> bool:
        """True for the iteration-based runner (``max_iters`` set)."""
        return self.max_iters is not None

    @property
    def num_epochs(self) -> int:
        """Epochs of the schedule: ``max_epoch``, or ``max_iters // iters_per_inner_epoch`` (LAVIS)."""
        if self.max_iters is not None and self.iters_per_inner_epoch is not None:
            return self.max_iters // self.iters_per_inner_epoch
        return self.max_epoch

    def check_for_training(self) -> None:
        """Raises when something training needs (and evaluation does not) is missing."""
        if not self.datasets:
            raise ArgumentsError(
                "datasets", "no training dataset; add at least one {name: ..., data_dir: ..., split: train}"
            )

    # ----------------------------------------------------------------- I/O
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingArguments:
        """Builds and validates arguments from plain data (a parsed recipe)."""
        return build_dataclass(cls, data)

    @classmethod
    def from_recipe(
        cls, recipe: str | Path | Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None = None
    ) -> TrainingArguments:
        """A recipe (name of a shipped one, YAML path, or mapping) with ``overrides`` applied.

        ``overrides`` is either CLI tokens (``["--max_epoch", "3"]``) or a mapping of dotted keys.
        """
        from vl_hub.recipes import load_recipe

        # a deep copy: overrides must not reach into the caller's nested mappings and lists
        data = load_recipe(recipe) if not isinstance(recipe, Mapping) else copy.deepcopy(dict(recipe))
        if overrides:
            items = parse_overrides(list(overrides)) if not isinstance(overrides, Mapping) else dict(overrides)
            for key, value in items.items():
                set_dotted(data, key, value)
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, loadable again by :meth:`from_dict`."""
        return to_dict(self)

    def to_yaml(self) -> str:
        """The resolved recipe as YAML (saved as ``training_args.yaml`` next to the model)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def replace(self, **changes: Any) -> TrainingArguments:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


def describe_keys() -> str:
    """One line per valid key with its type and help (for ``vl-hub train --help-keys``)."""
    import typing

    from vl_hub.training.typed_config import type_name

    lines = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            lines.append(f"{prefix}{f.name} ({type_name(hint)}): {f.metadata.get('help', '')}")
            if dataclasses.is_dataclass(hint):
                walk(hint, f"{prefix}{f.name}.")
            args = typing.get_args(hint)
            if args and dataclasses.is_dataclass(args[0]) and typing.get_origin(hint) is list:
                walk(args[0], f"{prefix}{f.name}.<i>.")

    walk(TrainingArguments, "")
    return "\n".join(lines)


__all__ = [
    "LR_SCHEDULES",
    "ArgumentsError",
    "DatasetArguments",
    "ModelArguments",
    "TrainingArguments",
    "describe_keys",
    "valid_keys",
]
