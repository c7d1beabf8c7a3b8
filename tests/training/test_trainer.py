"""The training loop on the toy task: outputs, LAVIS schedule in the log, determinism, accumulation,
iteration-based runner, dataset mixing, mixed precision and gradient checkpointing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.training.helpers import assert_same_weights, toy_args, weights
from vl_hub.training.run_log import read_log
from vl_hub.training.trainer import Trainer


def test_training_run_writes_model_logs_checkpoints_and_card(tmp_path: Path, toy_dirs: tuple) -> None:
    args = toy_args(tmp_path, toy_dirs)  # 96 rows / batch 8 = 12 iterations per epoch, 2 epochs
    result = Trainer.from_arguments(args).train()
    out = Path(args.output_dir)
    assert result.global_step == 24 and result.iterations == 24
    for name in (
        "config.json",
        "model.safetensors",
        "README.md",
        "training_curves.png",
        "log.jsonl",
        "training_args.yaml",
        "all_results.json",
    ):
        assert (out / name).is_file(), name
    with Image.open(out / "training_curves.png") as png:
        assert png.format == "PNG" and png.size[0] >= 800
    # save every 4 steps, keep the last 2; the best model separately
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best", "step_20", "step_24"]
    assert (out / "checkpoints" / "best" / "model.safetensors").is_file()

    records = read_log(out / "log.jsonl")
    train = [r for r in records if r["split"] == "train"]
    evals = [r for r in records if r["split"] == "eval"]
    assert [r["step"] for r in train] == list(range(2, 25, 2))
    assert [r["step"] for r in evals] == [12, 24]
    assert {"loss", "loss_ce", "logit_norm", "lr", "samples_per_second"} <= set(train[0])
    # LAVIS schedule: warmup 1e-4 -> 1e-2 over 3 iterations in epoch 0, then cosine per epoch (max_epoch 2)
    assert train[0]["lr"] == pytest.approx(1e-4 + (1e-2 - 1e-4) * 1 / 3)  # logged at iteration index 1
    assert train[1]["lr"] == pytest.approx(1e-2)
    assert train[-1]["lr"] == pytest.approx((1e-2 - 1e-4) * 0.5 * (1 + math.cos(math.pi / 2)) + 1e-4)
    assert train[-1]["loss"] < train[0]["loss"]
    for r in evals:  # evaluation counted every validation row exactly once
        assert r["eval/toy/validation/num_samples"] == 37 == r["eval/toy/validation/distinct_samples"]

    best = max(evals, key=lambda r: r["eval/toy/validation/accuracy"])
    assert result.best_metric == best["eval/toy/validation/accuracy"]
    summary = json.loads((out / "all_results.json").read_text())
    assert summary["metrics"]["eval/toy/validation/accuracy"] == result.best_metric
    assert summary["global_step"] == 24
    # the final model is the best one (load_best_at_end)
    assert_same_weights(weights(out), weights(out / "checkpoints" / "best"))


def test_same_seed_same_weights_whatever_the_worker_count(tmp_path: Path, toy_dirs: tuple) -> None:
    common = {"max_epoch": 1, "eval_strategy": "no", "save_strategy": "no"}
    a = toy_args(tmp_path / "a", toy_dirs, **common)
    b = toy_args(tmp_path / "b", toy_dirs, num_workers=2, **common)  # augmentation runs in worker processes
    c = toy_args(tmp_path / "c", toy_dirs, seed=8, **common)
    for args in (a, b, c):
        Trainer.from_arguments(args).train()
    assert_same_weights(weights(Path(a.output_dir)), weights(Path(b.output_dir)))
    assert not torch.equal(weights(Path(a.output_dir))["head.weight"], weights(Path(c.output_dir))["head.weight"])


def test_gradient_accumulation_steps_the_optimizer_every_n_iterations(
    tmp_path: Path, toy_dirs: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = torch.optim.AdamW.step

    def counting_step(self: torch.optim.Optimizer, *a: object, **k: object) -> object:
        calls.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting_step)
    args = toy_args(
        tmp_path,
        toy_dirs,
        max_epoch=1,
        gradient_accumulation_steps=3,
        log_every=1,
        eval_strategy="no",
        save_strategy="no",
    )
    result = Trainer.from_arguments(args).train()
    assert result.iterations == 12 and result.global_step == 4 and len(calls) == 4
    train = [r for r in read_log(Path(args.output_dir) / "log.jsonl") if r["split"] == "train"]
    assert [r["iteration"] for r in train] == [3, 6, 9, 12]


def test_iteration_based_runner_schedules_by_inner_epoch(tmp_path: Path, toy_dirs: tuple) -> None:
    args = toy_args(
        tmp_path, toy_dirs, max_epoch=1, max_iters=10, iters_per_inner_epoch=4, warmup_steps=0, warmup_lr=-1,
        log_every=1, eval_strategy="no", save_strategy="steps", save_every=5,
    )  # fmt: skip
    trainer = Trainer.from_arguments(args)
    result = trainer.train()
    assert result.iterations == 10
    progress = [(p.epoch, p.iteration_in_epoch, p.iteration) for p in trainer.task.progress_seen]
    assert progress == [(i // 4, i % 4, i) for i in range(10)]
    assert {(p.iterations_per_epoch, p.num_epochs) for p in trainer.task.progress_seen} == {(4, 2)}
    lrs = {r["iteration"]: r["lr"] for r in read_log(Path(args.output_dir) / "log.jsonl") if r["split"] == "train"}
    # LAVIS runner_iter: inner epoch = iteration // 4, cosine over max_iters // iters_per_inner_epoch = 2 epochs
    assert [lrs[i] for i in (1, 4)] == pytest.approx([1e-2, 1e-2])
    assert [lrs[i] for i in (5, 8)] == pytest.approx([(1e-2 - 1e-4) * 0.5 + 1e-4] * 2)
    assert [lrs[i] for i in (9, 10)] == pytest.approx([1e-4, 1e-4])
    assert sorted(p.name for p in (Path(args.output_dir) / "checkpoints").iterdir()) == ["step_10", "step_5"]


def test_several_datasets_concatenated_or_mixed_by_ratio(tmp_path: Path, toy_dirs: tuple) -> None:
    data_dir, _ = toy_dirs
    spec = {"name": str(Path(__file__).parent / "toy_data" / "toy_data.py"), "data_dir": str(data_dir)}
    two = [dict(spec, split="train"), dict(spec, split="test")]  # 96 + 23 rows
    concat = toy_args(tmp_path / "concat", toy_dirs, datasets=two, max_epoch=1, eval_strategy="no", save_strategy="no")
    assert Trainer.from_arguments(concat).train().iterations == (96 + 23) // 8
    mixed = [dict(spec, split="train", ratio=3), dict(spec, split="test", ratio=1)]
    args = toy_args(tmp_path / "mixed", toy_dirs, datasets=mixed, max_epoch=1, eval_strategy="no", save_strategy="no")
    # per epoch: sum over datasets of full batches = 96 // 8 + 23 // 8
    assert Trainer.from_arguments(args).train().iterations == 12 + 2


def test_bf16_autocast_and_gradient_checkpointing(tmp_path: Path, toy_dirs: tuple) -> None:
    args = toy_args(
        tmp_path, toy_dirs, max_epoch=1, mixed_precision="bf16", gradient_checkpointing=True, save_strategy="no"
    )
    trainer = Trainer.from_arguments(args)
    result = trainer.train()
    assert all(block.gradient_checkpointing for block in trainer.unwrapped_model.blocks)
    losses = [r["loss"] for r in read_log(Path(args.output_dir) / "log.jsonl") if r["split"] == "train"]
    assert all(math.isfinite(v) for v in losses) and result.metrics["eval/toy/validation/num_samples"] == 37


def test_eval_every_n_steps(tmp_path: Path, toy_dirs: tuple) -> None:
    args = toy_args(tmp_path, toy_dirs, eval_strategy="steps", eval_every=5, save_strategy="no", load_best_at_end=False)
    result = Trainer.from_arguments(args).train()
    evals = [r for r in read_log(Path(args.output_dir) / "log.jsonl") if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [5, 10, 15, 20, 24]  # + the final model
    assert result.metrics["eval/toy/validation/accuracy"] == evals[-1]["eval/toy/validation/accuracy"]
