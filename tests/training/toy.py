"""Toy task + model for the trainer tests: an MLP classifying 8-d vectors into 3 classes.

Importable by name from a recipe (``task: tests.training.toy:ToyTask``,
``model: {class_path: tests.training.toy:ToyModel, config: {...}}``), so that ``accelerate launch``
subprocesses can train it. The data lives in ``data_dir/<split>.jsonl`` (see :func:`write_toy_data`)
and is read by the builder ``tests/training/toy_data/toy_data.py``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from huggingface_hub.dataclasses import strict
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from vl_hub.tasks.base import Task
from vl_hub.training.evaluation import eval_dataloader, gather_for_metrics

HERE = Path(__file__).resolve().parent
TOY_BUILDER = HERE / "toy_data" / "toy_data.py"
INPUT_SIZE = 8
NUM_CLASSES = 3


@strict
class ToyConfig(PreTrainedConfig):
    """Toy MLP shape: ``input_size`` -> ``hidden_size`` (2 blocks) -> ``num_classes``."""

    model_type = "vlhub_toy"

    input_size: int = INPUT_SIZE
    hidden_size: int = 16
    num_classes: int = NUM_CLASSES
    dropout: float = 0.1


@dataclass
class ToyOutput(ModelOutput):
    """``loss`` (scalar, with labels) and ``logits`` ``(B, num_classes)``."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class ToyBlock(nn.Module):
    """Linear + GELU + dropout + LayerNorm, checkpointable."""

    def __init__(self, size: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(size, size)
        self.drop = nn.Dropout(dropout)
        self.ln = nn.LayerNorm(size)
        self.gradient_checkpointing = False

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x + self.drop(F.gelu(self.fc(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, size)`` -> ``(B, size)``."""
        if self.gradient_checkpointing and self.training:
            return self._gradient_checkpointing_func(self._forward, x)
        return self._forward(x)


class ToyModel(PreTrainedModel):
    """The toy classifier (a vl_hub-looking ``PreTrainedModel``: model_type ``vlhub_toy``)."""

    config_class = ToyConfig
    supports_gradient_checkpointing = True

    def __init__(self, config: ToyConfig) -> None:
        super().__init__(config)
        self.embed = nn.Linear(config.input_size, config.hidden_size)
        self.blocks = nn.ModuleList([ToyBlock(config.hidden_size, config.dropout) for _ in range(2)])
        self.head = nn.Linear(config.hidden_size, config.num_classes)
        self.post_init()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> ToyOutput:
        """``x``: ``(B, input_size)``; ``labels``: ``(B,)`` -> logits ``(B, num_classes)`` (+ loss)."""
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        logits = self.head(h)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ToyOutput(loss=loss, logits=logits)


class ToyTask(Task):
    """Classification of toy vectors; ``accuracy`` picks the best checkpoint.

    Options: ``noise`` (std of Gaussian augmentation in ``collate_train``, drawn from the global torch
    RNG, so the trainer's per-batch seeding is exercised), ``sleep_per_step`` (seconds, to slow a run
    down for the kill-and-resume test).

    It counts its training steps (``steps_seen``, kept in checkpoints through ``state_dict``) and
    records the trainer's ``training_progress`` of every step (``progress_seen``).
    """

    name = "toy_classification"
    schemas = ("toy",)
    families: ClassVar[dict[str, str]] = {"toy": "ToyModel"}
    primary_metric = "accuracy"

    def __init__(self, model: nn.Module, processor: Any, noise: float = 0.05, sleep_per_step: float = 0.0) -> None:
        super().__init__(model, processor, noise=noise, sleep_per_step=sleep_per_step)
        self.noise = noise
        self.sleep_per_step = sleep_per_step
        self.steps_seen = 0
        self.progress_seen: list[Any] = []

    def state_dict(self) -> dict[str, int]:
        """The task's own state (saved with every checkpoint)."""
        return {"steps_seen": self.steps_seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restores :meth:`state_dict`."""
        self.steps_seen = int(state["steps_seen"])

    @classmethod
    def check_dataset(cls, dataset: Any, dataset_name: str | None = None) -> str:
        """Accepts datasets with ``x`` and ``label`` columns."""
        columns = set(dataset.features or {})
        if not {"x", "label", "index"} <= columns:
            raise ValueError(
                f"dataset {dataset_name!r} does not fit task 'toy_classification': columns {sorted(columns)}"
            )
        return "toy"

    def _tensors(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "x": torch.tensor(np.asarray([r["x"] for r in rows], dtype=np.float32)),
            "labels": torch.tensor([r["label"] for r in rows], dtype=torch.long),
            "index": torch.tensor([r["index"] for r in rows], dtype=torch.long),
        }

    def collate_train(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows -> ``x`` ``(B, 8)`` with random noise, ``labels`` ``(B,)``, ``index`` ``(B,)``."""
        batch = self._tensors(rows)
        batch["x"] = batch["x"] + self.noise * torch.randn_like(batch["x"])
        return batch

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy; also reports the mean logit norm as a named part."""
        if self.sleep_per_step:
            time.sleep(self.sleep_per_step)
        self.steps_seen += 1
        self.progress_seen.append(getattr(self, "training_progress", None))
        out = model(x=batch["x"], labels=batch["labels"])
        return {"loss": out.loss, "loss_ce": out.loss.detach(), "logit_norm": out.logits.detach().norm(dim=-1).mean()}

    def evaluate(
        self,
        model: nn.Module,
        dataset: Any,
        accelerator: Any | None = None,
        batch_size: int = 16,
        progress: bool = True,
    ) -> dict[str, float]:
        """Accuracy, mean loss, and how many (and which) rows were counted."""
        loader = eval_dataloader(dataset, self._tensors, batch_size, accelerator)
        preds, labels, losses, indices = [], [], [], []
        for batch in tqdm(loader, desc="eval", disable=not progress):
            logits = model(x=batch["x"]).logits
            loss = F.cross_entropy(logits.float(), batch["labels"], reduction="none")
            p, y, ls, ix = gather_for_metrics(accelerator, (logits.argmax(-1), batch["labels"], loss, batch["index"]))
            preds.append(p.cpu())
            labels.append(y.cpu())
            losses.append(ls.cpu())
            indices.append(ix.cpu())
        p, y, ls, ix = (torch.cat(t) for t in (preds, labels, losses, indices))
        return {
            "accuracy": (p == y).double().mean().item(),
            "loss": ls.double().mean().item(),
            "num_samples": float(len(ix)),
            "distinct_samples": float(len(torch.unique(ix))),
        }


def write_toy_data(folder: Path, n_train: int = 96, n_val: int = 37, n_test: int = 23, seed: int = 0) -> Path:
    """Writes ``train/validation/test.jsonl`` of a learnable 3-class problem; returns ``folder``."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(INPUT_SIZE, NUM_CLASSES))
    folder.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, n in (("train", n_train), ("validation", n_val), ("test", n_test)):
        x = rng.normal(size=(n, INPUT_SIZE)).astype(np.float32)
        labels = (x @ weights).argmax(-1)
        rows = [
            {"index": start + i, "x": [round(float(v), 5) for v in x[i]], "label": int(labels[i])} for i in range(n)
        ]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        start += n
    return folder


def toy_recipe(tmp: Path, data_dir: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """A complete recipe (as data) training the toy model into ``tmp/out``; ``overrides`` replace keys."""
    data_dir = data_dir if data_dir is not None else write_toy_data(tmp / "toy_data")
    recipe: dict[str, Any] = {
        "output_dir": str(tmp / "out"),
        "task": "tests.training.toy:ToyTask",
        "task_options": {"noise": 0.05},
        "model": {"class_path": "tests.training.toy:ToyModel", "config": {"hidden_size": 16, "dropout": 0.1}},
        "datasets": [{"name": str(TOY_BUILDER), "data_dir": str(data_dir), "split": "train"}],
        "eval_datasets": [
            {"name": str(TOY_BUILDER), "data_dir": str(data_dir), "split": "validation", "label": "toy/validation"}
        ],
        "dataset_cache_dir": str(tmp / "cache"),
        "max_epoch": 2,
        "batch_size_train": 8,
        "batch_size_eval": 4,
        "init_lr": 1e-2,
        "min_lr": 1e-4,
        "warmup_steps": 3,
        "warmup_lr": 1e-4,
        "weight_decay": 0.01,
        "log_every": 2,
        "save_strategy": "steps",
        "save_every": 4,
        "eval_strategy": "epoch",
        "progress": False,
        "seed": 7,
    }
    recipe.update(overrides)
    return recipe


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    """Writes ``recipe`` as YAML to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path
