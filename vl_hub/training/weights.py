"""Load safetensors weights into an existing model (best-model reload, ``--checkpoint step_<n>``).

Handles ``save_pretrained`` folders (single file or sharded with an index) and ``accelerate``
checkpoints (``model.safetensors``, keys prefixed ``module.`` when saved from a DDP wrapper). Tied
parameters saved once (e.g. an LM head sharing the word embeddings) count as loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

SAFE_WEIGHTS = "model.safetensors"
SAFE_WEIGHTS_INDEX = "model.safetensors.index.json"


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if (path / SAFE_WEIGHTS).is_file():
        return [path / SAFE_WEIGHTS]
    index = path / SAFE_WEIGHTS_INDEX
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / s for s in shards]
    raise FileNotFoundError(f"no {SAFE_WEIGHTS} or {SAFE_WEIGHTS_INDEX} in {path}")


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Copies the weights at ``path`` (file or folder) into ``model``.

    Raises:
        ValueError: keys missing (other than tied duplicates) or unexpected, listed.
    """
    state: dict[str, torch.Tensor] = {}
    for file in _files(Path(path)):
        state.update(load_file(str(file)))
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        own = model.state_dict(keep_vars=True)
        by_storage: dict[int, set[str]] = {}
        for name, tensor in own.items():
            by_storage.setdefault(tensor.data_ptr(), set()).add(name)
        # a missing key is fine when a tensor sharing its storage (a tied weight) was loaded
        missing = [m for m in missing if not (by_storage.get(own[m].data_ptr(), set()) - {m}) & state.keys()]
    if missing or unexpected:
        raise ValueError(
            f"weights at {path} do not fit {type(model).__name__}: missing {sorted(missing)[:10]}"
            f"{'...' if len(missing) > 10 else ''}, unexpected {sorted(unexpected)[:10]}"
            f"{'...' if len(unexpected) > 10 else ''}"
        )
