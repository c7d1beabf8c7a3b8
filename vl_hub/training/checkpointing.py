"""Resumable checkpoints: ``accelerator.save_state`` into ``<output_dir>/checkpoints/step_<n>``, atomically.

Every process writes into the same temporary folder ``checkpoints/.tmp-step_<n>`` (model, optimizer,
scaler, per-process RNG states, the trainer state); when all are done the main process renames it to
``step_<n>`` with ``os.replace``. A folder named ``step_<n>`` is therefore always complete, and only
names matching ``step_<digits>`` are ever taken as checkpoints: a run killed while saving leaves a
``.tmp-*`` folder that is ignored (and removed by the next run). The best model of a run is a
``save_pretrained`` folder ``checkpoints/best``, written the same way.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: sub-folder of output_dir holding the checkpoints.
CHECKPOINTS_DIR = "checkpoints"
#: folder name of the best model (a save_pretrained folder).
BEST_DIR = "best"
#: prefix of folders being written; never a checkpoint.
TMP_PREFIX = ".tmp-"
_STEP_RE = re.compile(r"^step_(\d+)$")


@dataclass
class TrainerState:
    """Counters and bookkeeping saved with every checkpoint (``accelerator.register_for_checkpointing``).

    Attributes:
        iteration: training batches consumed per process.
        global_step: optimizer steps taken.
        best_metric / best_step: best ``primary_metric`` on the first validation dataset and its step.
        last_eval_step: step of the most recent evaluation (avoids evaluating twice at one step).
        best_results / last_results: every validation metric at the best and at the latest evaluation
            (the final report after a resume needs them).
        plan: fingerprint of the batch plan (sizes, batch size, processes, seed, ratios).
    """

    iteration: int = 0
    global_step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    last_eval_step: int | None = None
    best_results: dict[str, float] = field(default_factory=dict)
    last_results: dict[str, float] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """Plain data for ``torch.save``."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the counters written by :meth:`state_dict`."""
        for key, value in state.items():
            if hasattr(self, key):
                setattr(self, key, value)


def checkpoints_dir(output_dir: str | Path) -> Path:
    """``<output_dir>/checkpoints``."""
    return Path(output_dir) / CHECKPOINTS_DIR


def step_of(path: str | Path) -> int | None:
    """The step of a ``step_<n>`` folder name, ``None`` for anything else (temporary folders included)."""
    match = _STEP_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = [(step_of(p), p) for p in root.iterdir() if p.is_dir() and step_of(p) is not None]
    return [p for _, p in sorted(found, key=lambda sp: sp[0])]  # type: ignore[arg-type,return-value]


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or ``None``."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def remove_stale_temporaries(output_dir: str | Path) -> list[Path]:
    """Deletes ``.tmp-*`` folders left by a run killed while saving; returns them."""
    root = checkpoints_dir(output_dir)
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def write_atomically(
    final: Path,
    write: Callable[[Path], None],
    is_main_process: bool = True,
    barrier: Callable[[], None] = lambda: None,
) -> Path:
    """Writes a folder through ``write(tmp)`` and renames it to ``final`` in one step.

    With several processes every one calls this; ``write`` runs on all of them (each writes its own
    files into the shared temporary folder), and only the main process creates, renames and cleans.
    An existing ``final`` is replaced.
    """
    tmp = final.parent / f"{TMP_PREFIX}{final.name}"
    if is_main_process:
        final.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    barrier()
    write(tmp)
    barrier()
    if is_main_process:
        _fsync_tree(tmp)
        if final.exists():
            trash = final.parent / f"{TMP_PREFIX}old-{final.name}"
            if trash.exists():
                shutil.rmtree(trash)
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    barrier()
    return final


def _fsync_tree(folder: Path) -> None:
    """Flushes the files of ``folder`` to disk so the rename never publishes unwritten data."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def prune_checkpoints(output_dir: str | Path, keep: int | None) -> list[Path]:
    """Deletes all but the newest ``keep`` checkpoints (none when ``keep`` is ``None``); returns them."""
    if keep is None:
        return []
    found = list_checkpoints(output_dir)
    doomed = found[: max(0, len(found) - keep)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed
