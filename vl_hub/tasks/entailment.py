"""Visual entailment (SNLI-VE): does the image entail, contradict or leave neutral a hypothesis? (LAVIS
``multimodal_classification`` with ``blip_classification``.)

Rows follow the ``entailment`` schema (``image``, ``hypothesis``, ``label`` entailment/neutral/contradiction).
Training: the head's cross-entropy, with momentum distillation when the head's config enables it (its weight is
ramped up over ``alpha_ramp_epochs`` epochs, LAVIS: one, read from the trainer's ``training_progress``).
Evaluation: ``accuracy`` (percent, primary) and ``accuracy_<class>`` for each class present in the split.
"""

from __future__ import annotations

from typing import Any, ClassVar

import datasets
import torch

from vl_hub.tasks import register_task
from vl_hub.tasks._head_calls import (
    check_ramp_epochs,
    forward_losses,
    ramped_alpha,
    tokenize,
)
from vl_hub.tasks._sharding import check_map_style, map_rows, to_device
from vl_hub.tasks._task_utils import (
    batch_pixels,
    evaluation_mode,
    model_device,
    require_processor,
    resolve_options,
)
from vl_hub.tasks.base import Task

__all__ = ["EntailmentTask", "per_class_accuracy"]

_DEFAULTS: dict[str, Any] = {
    "train_augment": True,  # the processor's training transform (LAVIS blip_image_train)
    "alpha_ramp_epochs": 1,  # distillation weight ramped up over this many epochs (LAVIS); 0/None: config.alpha
    "max_txt_len": None,  # truncation length in tokens; None: the processor's default
}


def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, names: list[str]) -> dict[str, float]:
    """``{"accuracy": percent, "accuracy_<name>": percent of that class's rows predicted right}``; classes without
    rows are left out.

    Args:
        predictions, labels: ``(N,)`` class indices.
        names: class names in label order.
    """
    if predictions.shape != labels.shape or labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(f"need (N,) predictions and labels with N >= 1; got {tuple(predictions.shape)}, {tuple(labels.shape)}")
    correct = (predictions == labels).float()
    out = {"accuracy": 100.0 * correct.mean().item()}
    hits = torch.zeros(len(names)).index_add_(0, labels.cpu(), correct.cpu())
    totals = torch.bincount(labels.cpu(), minlength=len(names)).float()
    for i, name in enumerate(names):
        if totals[i] > 0:
            out[f"accuracy_{name}"] = 100.0 * float(hits[i] / totals[i])
    return out


@register_task
class EntailmentTask(Task):
    """SNLI-VE fine-tuning and accuracy. Options: ``train_augment``, ``alpha_ramp_epochs``, ``max_txt_len``."""

    name: ClassVar[str] = "entailment"
    schemas: ClassVar[tuple[str, ...]] = ("entailment",)
    families: ClassVar[dict[str, str]] = {
        "albef": "AlbefForVisualEntailment", "blip": "BlipForImageTextClassification"
    }
    primary_metric: ClassVar[str] = "accuracy"

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self.options = resolve_options(self.name, options, _DEFAULTS)
        require_processor(self.name, processor)
        check_ramp_epochs(self.name, self.options["alpha_ramp_epochs"])

    def _collate(self, rows: list[dict[str, Any]], train: bool) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = tokenize(
            self.processor, [row["hypothesis"] for row in rows], self.options["max_txt_len"]
        )
        return {
            "pixel_values": batch_pixels(self.processor, rows, "image", train=train and self.options["train_augment"]),
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor([int(row["label"]) for row in rows], dtype=torch.long),
        }

    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``pixel_values (B, 3, S, S)``, hypothesis ``input_ids``/``attention_mask (B, L)``, ``labels (B,)``."""
        return self._collate(rows, train=True)

    def collate_eval(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> the batch of :meth:`collate_train` with the evaluation transform."""
        return self._collate(rows, train=False)

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": ...}``: cross-entropy, mixed with the distillation term when the head distils."""
        keys = ("pixel_values", "input_ids", "attention_mask", "labels")
        alpha = ramped_alpha(self.model, self.training_progress, self.options["alpha_ramp_epochs"])
        return forward_losses(self.model, model, {k: batch[k] for k in keys}, alpha=alpha)

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """``accuracy`` and ``accuracy_<class>`` (percent) over the split."""
        self.check_family(model)
        check_map_style(dataset, self.name)
        self.check_dataset(dataset)
        device = accelerator.device if accelerator is not None else model_device(model)

        def step(rows: list[dict[str, Any]], _start: int) -> dict[str, torch.Tensor]:
            batch = to_device(self.collate_eval(rows), device)
            labels = batch.pop("labels")
            return {"prediction": model(**batch).logits.argmax(dim=-1), "label": labels}

        with evaluation_mode(model):
            out = map_rows(dataset, step, batch_size, accelerator, progress, self.name)
        return per_class_accuracy(out["prediction"], out["label"], list(dataset.features["label"].names))
