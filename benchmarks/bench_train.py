"""Training throughput benchmark: samples/s and peak memory of the vl_hub trainer on a recipe.

Runs ``--iters`` training iterations (iteration-based runner, no evaluation, no checkpoints) of a
recipe and prints, per variant:

* steady-state training samples/s (from the run log, first logged window dropped as warm-up) and
  wall time per iteration;
* peak host memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and, on CUDA, peak GPU memory
  (``torch.cuda.max_memory_allocated``).

Each variant runs in a fresh subprocess so peaks don't leak between them. Without a recipe it uses
the toy task of the test-suite (``tests/training/toy.py``: an MLP on synthetic vectors, widened with
``--toy-hidden``), so it works on a bare checkout; with one (``blip/captioning_coco`` or a YAML file)
pass the data folders with ``--set``:

    python benchmarks/bench_train.py                                   # toy, CPU
    python benchmarks/bench_train.py --variant mixed_precision=bf16 --variant gradient_checkpointing=true
    python benchmarks/bench_train.py blip/captioning_coco --set datasets.0.data_dir=/data/coco \\
        --set model.name_or_path=models/blip_caption_base --iters 50

Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _pairs(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


def _toy_recipe(work: Path, hidden: int, rows: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.training.toy import toy_recipe, write_toy_data

    data = write_toy_data(work / "toy_data", n_train=rows, n_val=8, n_test=8)
    recipe = toy_recipe(work, data_dir=data)
    recipe["model"]["config"]["hidden_size"] = hidden
    recipe["task_options"] = {"noise": 0.05}
    recipe["batch_size_train"] = 64
    return recipe


def run_one(recipe: str | None, overrides: dict[str, Any], iters: int, hidden: int, rows: int) -> dict[str, Any]:
    """Trains ``iters`` iterations in this process; returns the measurements."""
    import torch

    from vl_hub.training.arguments import TrainingArguments
    from vl_hub.training.run_log import read_log
    from vl_hub.training.trainer import Trainer

    work = Path(tempfile.mkdtemp(prefix="vlhub_bench_train_"))
    data: Any = _toy_recipe(work, hidden, rows) if recipe is None else recipe
    forced = {
        "output_dir": str(work / "out"),
        "max_iters": iters,
        "iters_per_inner_epoch": iters,
        "eval_strategy": "no",
        "save_strategy": "no",
        "eval_datasets": [],
        "test_datasets": [],
        "push_to_hub": None,
        "report_to": [],
        "progress": False,
        "log_every": max(1, iters // 10),
    }
    args = TrainingArguments.from_recipe(data, {**forced, **overrides})
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer.from_arguments(args)
    start = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - start
    records = [r for r in read_log(Path(args.output_dir) / "log.jsonl") if r["split"] == "train"]
    steady = [r["samples_per_second"] for r in records[1:]] or [r["samples_per_second"] for r in records]
    out = {
        "samples_per_second": sum(steady) / len(steady),
        "seconds_per_iteration": wall / max(1, result.iterations),
        "iterations": result.iterations,
        "batch_size": args.batch_size_train,
        "processes": trainer.accelerator.num_processes,
        "device": str(trainer.accelerator.device),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": records[-1]["loss"] if records else float("nan"),
    }
    if torch.cuda.is_available():
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", help="recipe name or YAML (default: the toy task)")
    parser.add_argument("--iters", type=int, default=200, help="training iterations per variant")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument(
        "--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]", help="a configuration to compare"
    )
    parser.add_argument("--toy-hidden", type=int, default=256, help="hidden size of the toy MLP")
    parser.add_argument("--toy-rows", type=int, default=8192, help="training rows of the toy data")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    opts = parser.parse_args()

    base = _pairs(opts.sets)
    if opts.single is not None:
        overrides = {**base, **json.loads(opts.single)}
        print("RESULT " + json.dumps(run_one(opts.recipe, overrides, opts.iters, opts.toy_hidden, opts.toy_rows)))
        return

    variants = [{}] + [_pairs(v.split(",")) for v in opts.variant]
    rows = []
    for variant in variants:
        cmd = [sys.executable, __file__, *( [opts.recipe] if opts.recipe else []), "--iters", str(opts.iters),
               "--toy-hidden", str(opts.toy_hidden), "--toy-rows", str(opts.toy_rows), "--single", json.dumps(variant)]  # fmt: skip
        for item in opts.sets:
            cmd += ["--set", item]
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"variant {variant} failed")
        rows.append((variant, json.loads(lines[-1][len("RESULT ") :])))

    name = opts.recipe or f"toy MLP (hidden {opts.toy_hidden})"
    first = rows[0][1]
    print(
        f"recipe: {name}; {opts.iters} iterations, batch {first['batch_size']} x {first['processes']} process(es) on {first['device']}"
    )
    header = f"{'variant':<40} {'samples/s':>10} {'s/iter':>8} {'peak RSS MiB':>13} {'peak GPU MiB':>13} {'loss':>8}"
    print(header)
    print("-" * len(header))
    for variant, r in rows:
        label = ",".join(f"{k}={v}" for k, v in variant.items()) or "baseline"
        gpu = f"{r['peak_gpu_mib']:.0f}" if "peak_gpu_mib" in r else "-"
        print(
            f"{label:<40} {r['samples_per_second']:>10.1f} {r['seconds_per_iteration']:>8.4f} "
            f"{r['peak_rss_mib']:>13.0f} {gpu:>13} {r['final_loss']:>8.4f}"
        )


if __name__ == "__main__":
    main()
