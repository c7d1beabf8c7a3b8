"""Image-text pre-training (LAVIS ``image_text_pretrain``): the head's pre-training losses on image-caption pairs.

BLIP (``BlipForPreTraining``): ITC with momentum encoders and queues, ITM on hard negatives, LM; CLIP (``ClipModel``):
the symmetric contrastive loss. Training rows are ``image_text`` rows with one caption drawn per row and step.

Evaluation: the mean of each loss part over the split in eval mode (no EMA step, no queue update), one pass with the
first caption of every row, in batches of ``batch_size`` (a last batch of one row joins the previous batch: in-batch
negatives need two). The randomness of ITM's negative sampling is seeded per batch (``eval_seed`` + the batch's first
row), so the numbers do not depend on the process count. Metrics: ``loss`` and its parts (``itc``, ``itm``, ``lm``),
each a row-weighted mean, and ``neg_loss = -loss`` (primary: higher is better).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    check_choice,
    check_int,
    evaluation_mode,
    model_device,
    require_processor,
    resolve_options,
)
from vl_hub.tasks.base import Task

__all__ = ["PretrainTask"]

_DEFAULTS: dict[str, Any] = {
    "caption_sampling": "random",  # "random" caption per row and step, or always the "first"
    "train_augment": True,  # the processor's training transform (LAVIS blip_image_train)
    "alpha_ramp_epochs": 2,  # distillation weight ramped up over this many epochs (LAVIS); 0/None: config.alpha
    "max_txt_len": None,  # truncation length in tokens; None: the processor's default
    "eval_seed": 0,  # seeds the evaluation's random ITM negatives per batch
}


@register_task
class PretrainTask(Task):
    """Pre-training losses for training and evaluation. Options: ``caption_sampling``, ``train_augment``,
    ``alpha_ramp_epochs``, ``max_txt_len``, ``eval_seed``."""

    name: ClassVar[str] = "pretrain"
    schemas: ClassVar[tuple[str, ...]] = ("image_text",)
    families: ClassVar[dict[str, str]] = {"albef": "AlbefForPreTraining", "blip": "BlipForPreTraining", "clip": "ClipModel"}
    primary_metric: ClassVar[str] = "neg_loss"

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self.options = resolve_options(self.name, options, _DEFAULTS)
        check_choice(self.name, "caption_sampling", self.options["caption_sampling"], ("random", "first"))
        check_int(self.name, "eval_seed", self.options["eval_seed"], 0)
        require_processor(self.name, processor)
        check_ramp_epochs(self.name, self.options["alpha_ramp_epochs"])

    def _captions(self, rows: Sequence[dict[str, Any]], first: bool) -> list[str]:
        counts = [len(row["captions"]) for row in rows]
        if min(counts) == 0:
            raise ValueError(f"row {counts.index(0)} of the batch has no caption; pre-training pairs need one")
        if first:
            return [row["captions"][0] for row in rows]
        draws = torch.randint(0, 2**62, (len(rows),)).tolist()  # torch's RNG: seeded per batch by the trainer
        return [row["captions"][d % n] for row, d, n in zip(rows, draws, counts, strict=True)]

    def _collate(self, rows: list[dict[str, Any]], train: bool) -> dict[str, torch.Tensor]:
        if len(rows) < 2:
            raise ValueError(f"pre-training batches need at least 2 pairs (in-batch negatives); got {len(rows)}")
        captions = self._captions(rows, first=not train or self.options["caption_sampling"] == "first")
        input_ids, attention_mask = tokenize(self.processor, captions, self.options["max_txt_len"])
        pixel_values = batch_pixels(self.processor, rows, "image", train=train and self.options["train_augment"])
        return {"pixel_values": pixel_values, "input_ids": input_ids, "attention_mask": attention_mask}

    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``pixel_values (B, 3, S, S)`` and one caption per row, ``input_ids``/``attention_mask (B, L)``."""
        return self._collate(rows, train=True)

    def collate_eval(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> the evaluation batch: the first caption of each row, evaluation transform."""
        return self._collate(rows, train=False)

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss", "itc", "itm", "lm"}`` (BLIP) or ``{"loss"}`` (CLIP)."""
        clamp = getattr(self.model, "clamp_logit_scale_", None)
        if callable(clamp):
            clamp()
        inputs = {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask")}
        alpha = ramped_alpha(self.model, self.training_progress, self.options["alpha_ramp_epochs"])
        return forward_losses(self.model, model, inputs, alpha=alpha, return_loss=True)

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """Mean losses over the split (see the module docstring)."""
        self.check_family(model)
        check_map_style(dataset, self.name)
        self.check_dataset(dataset)
        if len(dataset) < 2:
            raise ValueError(f"pre-training evaluation needs at least 2 rows (in-batch negatives); got {len(dataset)}")
        device = accelerator.device if accelerator is not None else model_device(model)
        devices = [device] if device.type == "cuda" else []

        def step(rows: list[dict[str, Any]], start: int) -> dict[str, torch.Tensor]:
            batch = to_device(self.collate_eval(rows), device)
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.options["eval_seed"] + start)
                parts = forward_losses(model, model, batch, return_loss=True)
            return {name: value.detach().float().reshape(1).expand(len(rows)) for name, value in parts.items()}

        with evaluation_mode(model):
            out = map_rows(dataset, step, batch_size, accelerator, progress, self.name, min_batch=2)
        metrics = {name: values.mean().item() for name, values in out.items()}
        metrics["neg_loss"] = -metrics["loss"]
        return metrics
