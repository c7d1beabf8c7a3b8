"""Helpers to read the LAVIS golden fixtures (``<name>.weights/io.safetensors`` + ``<name>.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file


@dataclass
class Reference:
    """One fixture: LAVIS-named ``weights``, ``io`` tensors (``in.*``/``out.*``) and the JSON ``meta``."""

    name: str
    weights: dict[str, torch.Tensor]
    io: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def inp(self, key: str) -> torch.Tensor:
        return self.io[f"in.{key}"]

    def out(self, key: str) -> torch.Tensor:
        return self.io[f"out.{key}"]


def load_reference(reference_dir: Path, name: str) -> Reference:
    """Loads fixture ``name`` from ``reference_dir``."""
    return Reference(
        name=name,
        weights=load_file(str(reference_dir / f"{name}.weights.safetensors")),
        io=load_file(str(reference_dir / f"{name}.io.safetensors")),
        meta=json.loads((reference_dir / f"{name}.json").read_text()),
    )


def sub_state_dict(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix`` (e.g. ``"visual_encoder."``) with the prefix stripped."""
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
