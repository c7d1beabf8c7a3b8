"""Atomic checkpoint folders: temporaries are never checkpoints, pruning keeps the newest K."""

from __future__ import annotations

from pathlib import Path

import pytest

from vl_hub.training.checkpointing import (
    TrainerState,
    latest_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    remove_stale_temporaries,
    step_of,
    write_atomically,
)


def _write_files(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(b"w" * 10)
    (folder / "optimizer.bin").write_bytes(b"o" * 10)


def test_only_complete_step_folders_count(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    for name in ("step_2", "step_10", "step_7", ".tmp-step_12", "step_x", "best", "step_3.old"):
        (root / name).mkdir(parents=True)
    (root / "step_99").write_text("a file, not a folder")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_2", "step_7", "step_10"]
    assert latest_checkpoint(tmp_path) == root / "step_10"
    assert step_of(".tmp-step_12") is None and step_of("step_12") == 12
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".tmp-step_12"]
    assert not (root / ".tmp-step_12").exists()
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_write_atomically_publishes_complete_folders_only(tmp_path: Path) -> None:
    final = tmp_path / "checkpoints" / "step_4"
    write_atomically(final, _write_files)
    assert sorted(p.name for p in final.iterdir()) == ["model.safetensors", "optimizer.bin"]

    def crash(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("killed while saving")

    with pytest.raises(RuntimeError):
        write_atomically(tmp_path / "checkpoints" / "step_8", crash)
    assert not (tmp_path / "checkpoints" / "step_8").exists()
    assert (tmp_path / "checkpoints" / ".tmp-step_8").is_dir()  # the half-written folder keeps its temporary name
    assert latest_checkpoint(tmp_path) == final  # ... and is never taken as a checkpoint
    # rewriting an existing folder replaces it whole
    write_atomically(final, lambda f: (f / "only.txt").write_text("new"))
    assert [p.name for p in final.iterdir()] == ["only.txt"]


def test_prune_keeps_newest(tmp_path: Path) -> None:
    for step in (1, 5, 3, 8):
        (tmp_path / "checkpoints" / f"step_{step}").mkdir(parents=True)
    (tmp_path / "checkpoints" / "best").mkdir()
    removed = prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in removed] == ["step_1", "step_3"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_5", "step_8"]
    assert (tmp_path / "checkpoints" / "best").is_dir()
    assert prune_checkpoints(tmp_path, keep=None) == []


def test_trainer_state_round_trip() -> None:
    state = TrainerState(iteration=12, global_step=6, best_metric=0.5, best_step=4, plan={"seed": 1})
    other = TrainerState()
    other.load_state_dict(state.state_dict())
    assert other == state
