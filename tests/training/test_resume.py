"""Resume: a run killed with SIGKILL mid-epoch and resumed ends with the weights of an uninterrupted
run; checkpoints are never half-written; resuming with other data settings is refused."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.training.helpers import assert_same_weights, toy_args, weights
from tests.training.toy import write_recipe
from vl_hub.training.checkpointing import latest_checkpoint, list_checkpoints
from vl_hub.training.run_log import read_log
from vl_hub.training.trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parents[2]
#: files every complete accelerate checkpoint of the toy run holds.
CHECKPOINT_FILES = {
    "model.safetensors",
    "optimizer.bin",
    "random_states_0.pkl",
    "custom_checkpoint_0.pkl",
    "trainer_state.json",
}


def _train_losses(output_dir: Path) -> list[tuple[int, float, float]]:
    return [(r["step"], r["loss"], r["lr"]) for r in read_log(output_dir / "log.jsonl") if r["split"] == "train"]


def test_resume_mid_epoch_with_accumulation_matches_uninterrupted_run(tmp_path: Path, toy_dirs: tuple) -> None:
    common = {
        "max_epoch": 2,
        "batch_size_train": 4,
        "gradient_accumulation_steps": 2,
        "save_every": 2,
        "save_total_limit": None,
    }
    ref = toy_args(tmp_path / "ref", toy_dirs, **common)  # 24 iterations / 12 steps per epoch
    Trainer.from_arguments(ref).train()
    ref_out = Path(ref.output_dir)

    resumed = toy_args(tmp_path / "resumed", toy_dirs, resume=True, **common)
    out = Path(resumed.output_dir)
    shutil.copytree(ref_out / "checkpoints" / "step_6", out / "checkpoints" / "step_6")  # iteration 12 of epoch 0
    trainer = Trainer.from_arguments(resumed)
    result = trainer.train()
    assert result.global_step == 24 and result.iterations == 48
    assert trainer.task.steps_seen == 48  # the task's own state came back with the checkpoint
    first = trainer.task.progress_seen[0]
    assert (first.epoch, first.iteration_in_epoch, first.iteration, first.global_step) == (0, 12, 12, 6)
    assert_same_weights(weights(out), weights(ref_out))
    assert _train_losses(out)[-9:] == _train_losses(ref_out)[-9:]  # every step after the checkpoint replayed exactly


def test_resume_with_other_data_settings_is_refused(tmp_path: Path, toy_dirs: tuple) -> None:
    first = toy_args(tmp_path, toy_dirs, max_epoch=1, eval_strategy="no")
    Trainer.from_arguments(first).train()
    changed = first.replace(resume=True, seed=first.seed + 1)
    with pytest.raises(ValueError, match=r"cannot resume from .*step_12: the run changed seed: checkpoint 7, now 8"):
        Trainer.from_arguments(changed).train()


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path: Path, toy_dirs: tuple) -> None:
    # the same run three ways: uninterrupted; killed (SIGKILL) right after a checkpoint; resumed
    options = {"save_every": 2, "save_total_limit": 3, "task_options": {"noise": 0.05, "sleep_per_step": 0.12}}
    ref = toy_args(tmp_path / "ref", toy_dirs, **options)
    ref_result = Trainer.from_arguments(ref).train()

    run = toy_args(tmp_path / "run", toy_dirs, **options)
    out = Path(run.output_dir)
    recipe = write_recipe(tmp_path / "recipe.yaml", run.to_dict())
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vl_hub.cli", "train", str(recipe)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = list_checkpoints(out)
            # kill once step_6 exists, preferably while the next checkpoint is being written
            if done and int(done[-1].name.split("_")[1]) >= 6:
                saving = any(p.name.startswith(".tmp-") for p in (out / "checkpoints").iterdir())
                if saving or int(done[-1].name.split("_")[1]) >= 8:
                    break
            time.sleep(0.005)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "all_results.json").exists()  # killed mid-training (epoch 0 ends at step 12)

    # every folder that carries a checkpoint name is complete; a half-written one keeps its .tmp- name
    complete = list_checkpoints(out)
    assert complete, "no checkpoint was written"
    for folder in complete:
        assert CHECKPOINT_FILES <= {p.name for p in folder.iterdir()}, folder
    assert latest_checkpoint(out) == complete[-1]
    assert int(complete[-1].name.split("_")[1]) < 12

    resumed = Trainer.from_arguments(run.replace(resume=True)).train()
    assert resumed.global_step == 24
    assert not any(p.name.startswith(".tmp-") for p in (out / "checkpoints").iterdir())
    assert_same_weights(weights(out), weights(Path(ref.output_dir)))
    assert _train_losses(out) == _train_losses(Path(ref.output_dir))
    assert resumed.metrics == ref_result.metrics and resumed.best_step == ref_result.best_step


def test_resuming_a_finished_run_reports_its_results(tmp_path: Path, toy_dirs: tuple) -> None:
    args = toy_args(tmp_path, toy_dirs)  # evaluates at steps 12 and 24, last checkpoint step_24
    first = Trainer.from_arguments(args).train()
    again = Trainer.from_arguments(args.replace(resume=True)).train()  # nothing left to train
    assert again.iterations == first.iterations and again.global_step == first.global_step
    assert again.metrics == first.metrics and again.best_step == first.best_step
    assert_same_weights(weights(Path(args.output_dir)), weights(Path(args.output_dir) / "checkpoints" / "best"))
