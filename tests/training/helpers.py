"""Small helpers shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from tests.training.toy import toy_recipe
from vl_hub.training.arguments import TrainingArguments


def toy_args(tmp_path: Path, toy_dirs: tuple, **overrides: Any) -> TrainingArguments:
    """Validated arguments of the toy recipe writing into ``tmp_path/out``."""
    data_dir, cache = toy_dirs
    return TrainingArguments.from_dict(
        toy_recipe(tmp_path, data_dir=data_dir, dataset_cache_dir=str(cache), **overrides)
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``folder/model.safetensors``."""
    return load_file(str(Path(folder) / "model.safetensors"))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Same keys, bit-identical tensors."""
    assert sorted(a) == sorted(b)
    for key, tensor in a.items():
        assert torch.equal(tensor, b[key]), f"{key} differs (max abs diff {(tensor - b[key]).abs().max().item():.3g})"
