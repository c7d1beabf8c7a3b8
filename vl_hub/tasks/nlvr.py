"""NLVR2: is a sentence true of a pair of images? (LAVIS ``multimodal_classification`` with ``blip_nlvr``.)

Rows follow the ``nlvr`` schema (``image0``, ``image1``, ``sentence``, ``label`` False/True). Training batches use
the processor's training transform and LAVIS's NLVR flip: with probability ``flip_prob`` the two images are swapped,
and a sentence mentioning "left"/"right" has the two words exchanged with them (a sentence without them keeps its
text, its images swapped with the same probability). Evaluation: ``accuracy`` (percent, primary) over the split.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import datasets
import torch

from vl_hub.tasks import register_task
from vl_hub.tasks._head_calls import forward_losses, tokenize
from vl_hub.tasks._sharding import check_map_style, map_rows, to_device
from vl_hub.tasks._task_utils import (
    evaluation_mode,
    model_device,
    require_processor,
    resolve_options,
)
from vl_hub.tasks.base import Task

__all__ = ["NlvrTask", "swap_left_right"]

_DEFAULTS: dict[str, Any] = {
    "flip_prob": 0.5,  # probability of LAVIS's image swap (with left <-> right in the sentence) per training row
    "train_augment": True,  # the processor's training transform (LAVIS blip_image_train)
    "max_txt_len": None,  # truncation length in tokens; None: the processor's default
}

_LEFT_RIGHT = re.compile(r"\b(left|right)\b", flags=re.IGNORECASE)


def swap_left_right(sentence: str) -> str:
    """``sentence`` with the words "left" and "right" exchanged (whole words, case kept)."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        other = "right" if word.lower() == "left" else "left"
        return other.capitalize() if word[0].isupper() else other

    return _LEFT_RIGHT.sub(swap, sentence)


@register_task
class NlvrTask(Task):
    """NLVR2 fine-tuning and accuracy. Options: ``flip_prob``, ``train_augment``, ``max_txt_len``."""

    name: ClassVar[str] = "nlvr"
    schemas: ClassVar[tuple[str, ...]] = ("nlvr",)
    families: ClassVar[dict[str, str]] = {"albef": "AlbefForNLVR", "blip": "BlipForNLVR"}
    primary_metric: ClassVar[str] = "accuracy"

    def __init__(self, model: torch.nn.Module, processor: Any, **options: Any) -> None:
        super().__init__(model, processor, **options)
        self.options = resolve_options(self.name, options, _DEFAULTS)
        flip = self.options["flip_prob"]
        if isinstance(flip, bool) or not isinstance(flip, (int, float)) or not 0.0 <= flip <= 1.0:
            raise ValueError(f"task 'nlvr': option flip_prob must be a probability in [0, 1], got {flip!r}")
        require_processor(self.name, processor)

    def _collate(self, rows: list[dict[str, Any]], train: bool) -> dict[str, torch.Tensor]:
        first, second = [row["image0"] for row in rows], [row["image1"] for row in rows]
        sentences = [row["sentence"] for row in rows]
        if train and self.options["flip_prob"] > 0:
            # torch's RNG: the trainer seeds it per batch
            flips = (torch.rand(len(rows)) < self.options["flip_prob"]).tolist()
            for i, flip in enumerate(flips):
                if flip:
                    first[i], second[i] = second[i], first[i]
                    sentences[i] = swap_left_right(sentences[i])
        augment = train and self.options["train_augment"]
        input_ids, attention_mask = tokenize(self.processor, sentences, self.options["max_txt_len"])
        return {
            "pixel_values_0": self.processor(images=first, do_augment=augment)["pixel_values"],
            "pixel_values_1": self.processor(images=second, do_augment=augment)["pixel_values"],
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor([int(row["label"]) for row in rows], dtype=torch.long),
        }

    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``pixel_values_0``, ``pixel_values_1 (B, 3, S, S)``, ``input_ids``/``attention_mask (B, L)``,
        ``labels (B,)`` (1: true), with the NLVR flip and the training transform."""
        return self._collate(rows, train=True)

    def collate_eval(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> the batch of :meth:`collate_train` without flip or augmentation."""
        return self._collate(rows, train=False)

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": cross-entropy}`` of the head on the batch."""
        keys = ("pixel_values_0", "pixel_values_1", "input_ids", "attention_mask", "labels")
        return forward_losses(self.model, model, {k: batch[k] for k in keys})

    def evaluate(
        self,
        model: torch.nn.Module,
        dataset: datasets.Dataset,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """``{"accuracy": percent}`` over the split."""
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
        return {"accuracy": 100.0 * (out["prediction"] == out["label"]).float().mean().item()}
