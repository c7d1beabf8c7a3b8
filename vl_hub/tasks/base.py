"""The task contract: a task maps a batch to named losses and runs its own evaluation.

The trainer only sees dicts of tensors: ``collate_train`` builds a batch from dataset rows,
``training_step`` returns ``{"loss": total, <name>: part, ...}`` (``loss`` first) and ``evaluate``
returns ``{metric: value}``. Tasks never branch on the family name either: heads of every family
expose the same methods for a task (see each task module), and ``families`` only declares which
head class serves the task in each family.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, ClassVar

import datasets
import torch

from vl_hub.data.schemas import SCHEMAS


def family_of(model: torch.nn.Module) -> str:
    """The vl_hub family of a model from its config's ``model_type`` (``vlhub_blip`` -> ``blip``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", "") or ""
    if not model_type.startswith("vlhub_"):
        raise TypeError(
            f"{type(model).__name__} (model_type={model_type!r}) is not a vl_hub model; load one with "
            "vl_hub.load_model(...) or AutoModel.from_pretrained(...) after `import vl_hub`"
        )
    return model_type[len("vlhub_") :]


def datasets_for_schema(schema: str) -> list[str]:
    """Names of the shipped datasets whose builders yield ``schema`` (their ``_TASKS`` constant)."""
    from vl_hub.data.load import _import_builder_module, list_datasets

    names = []
    for name in list_datasets():
        try:
            tasks = getattr(_import_builder_module(name), "_TASKS", ())
        except Exception:  # a broken builder must not hide the others from an error message
            continue
        if schema in tasks:
            names.append(name)
    return names


def _schema_matches(features: datasets.Features, schema: str) -> bool:
    factory = SCHEMAS[schema]
    if schema == "classification":
        label = features.get("label")
        if not isinstance(label, datasets.ClassLabel):
            return False
        return features == factory(label.names)
    return features == factory()


class Task(abc.ABC):
    """Base class of every task.

    Class attributes:
        name: registry name (``"captioning"``).
        schemas: dataset schemas (``vl_hub.data.schemas``) the task trains/evaluates on.
        families: family -> head class name serving this task in that family.
        primary_metric: the metric used to select the best checkpoint (higher is better).
    """

    name: ClassVar[str]
    schemas: ClassVar[tuple[str, ...]]
    families: ClassVar[dict[str, str]]
    primary_metric: ClassVar[str]

    #: Set by the trainer before every ``training_step`` (``vl_hub.training.trainer.TrainingProgress``:
    #: epoch, iteration in epoch, iterations per epoch, global iteration and step); schedules that
    #: ramp with training (LAVIS's distillation alpha) read it, so they survive a resume.
    training_progress: Any = None

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        self.check_family(model)
        self.model = model
        self.processor = processor
        self.options = options

    # ------------------------------------------------------------- validation
    @classmethod
    def check_family(cls, model: torch.nn.Module) -> str:
        """Raises when the model's family (or head) does not serve this task, listing those that do."""
        family = family_of(model)
        if family not in cls.families:
            raise ValueError(
                f"task {cls.name!r} is not supported by the {family!r} family; supported families: "
                f"{', '.join(f'{f} ({h})' for f, h in sorted(cls.families.items()))}"
            )
        expected = cls.families[family]
        if type(model).__name__ != expected:
            raise ValueError(
                f"task {cls.name!r} needs a {expected} for the {family!r} family, got {type(model).__name__}; "
                f"load it with {expected}.from_pretrained(...)"
            )
        return family

    @classmethod
    def check_dataset(cls, dataset: datasets.Dataset | datasets.IterableDataset, dataset_name: str | None = None) -> str:
        """Returns the matching schema name or raises listing the compatible datasets."""
        features = dataset.features
        for schema in cls.schemas:
            if features is not None and _schema_matches(features, schema):
                return schema
        compatible = sorted({n for s in cls.schemas for n in datasets_for_schema(s)})
        label = f"dataset {dataset_name!r}" if dataset_name else "the dataset"
        raise ValueError(
            f"{label} does not fit task {cls.name!r}: it needs the {' or '.join(cls.schemas)} schema "
            f"(vl_hub.data.schemas), got columns {sorted(features or {})}. Compatible datasets: "
            f"{', '.join(compatible) or '(none shipped)'}, or your own folder via "
            f"vl_hub.load_dataset('custom', data_dir=..., task={cls.schemas[0]!r})"
        )

    # ------------------------------------------------------------- contract
    @abc.abstractmethod
    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Dataset rows -> a training batch of tensors."""

    @abc.abstractmethod
    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A batch -> ``{"loss": total, <part>: value, ...}`` with ``loss`` first."""

    @abc.abstractmethod
    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: Iterable[dict[str, Any]],
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """Runs the evaluation loop over ``dataset`` and returns every metric of the task.

        The trainer calls it on the unwrapped model (eval mode, no grad) with the whole split on every
        process; the task shards the rows with ``vl_hub.training.evaluation.eval_dataloader`` and
        gathers with ``gather_for_metrics`` (which drops the padding of the last batch), and returns
        ``{metric: number}`` including ``primary_metric`` (higher is better). ``accelerator=None``
        runs single-process.
        """
