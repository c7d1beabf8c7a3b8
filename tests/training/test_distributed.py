"""Two CPU processes through ``accelerate launch -m vl_hub.cli train``: the run trains on sharded data
and its evaluation metrics equal a one-process evaluation of the same checkpoint and data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.toy import TOY_BUILDER, toy_recipe, write_recipe
from vl_hub.training.arguments import TrainingArguments
from vl_hub.training.run import evaluate
from vl_hub.training.run_log import read_log

REPO_ROOT = Path(__file__).resolve().parents[2]


def _accelerate() -> list[str]:
    exe = shutil.which("accelerate")
    return [exe] if exe else [sys.executable, "-m", "accelerate.commands.accelerate_cli"]


def test_two_processes_train_and_evaluate_like_one(tmp_path: Path, toy_dirs: tuple) -> None:
    data_dir, cache = toy_dirs
    test_spec = {"name": str(TOY_BUILDER), "data_dir": str(data_dir), "split": "test"}
    data = toy_recipe(tmp_path, data_dir=data_dir, dataset_cache_dir=str(cache), test_datasets=[test_spec])
    recipe = write_recipe(tmp_path / "toy.yaml", data)
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    cmd = [*_accelerate(), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "vl_hub.cli", "train", str(recipe)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    printed = json.loads(proc.stdout[proc.stdout.index("{") :])  # printed once, by the main process
    out = tmp_path / "out"
    # 96 rows / (batch 8 x 2 processes) = 6 steps per epoch, 2 epochs: the data was sharded, not repeated
    assert printed["global_step"] == 12
    metrics = printed["metrics"]
    assert metrics["eval/toy/validation/num_samples"] == 37 == metrics["eval/toy/validation/distinct_samples"]
    assert metrics["test/toy_data/test/num_samples"] == 23 == metrics["test/toy_data/test/distinct_samples"]
    assert json.loads((out / "all_results.json").read_text())["metrics"] == metrics
    assert [r["step"] for r in read_log(out / "log.jsonl") if r["split"] == "eval"] == [6, 12]

    # one process, same saved model, same data
    args = TrainingArguments.from_dict(data).replace(output_dir=str(tmp_path / "eval_one_process"))
    single = evaluate(args, checkpoint=out)
    assert single.keys() == metrics.keys()
    for key, value in metrics.items():
        assert single[key] == pytest.approx(value, abs=1e-6), key
