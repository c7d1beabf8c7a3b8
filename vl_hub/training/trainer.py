"""The Accelerate training loop shared by every task (LAVIS ``runner_base`` and ``runner_iter`` in one).

The trainer knows nothing about families or tasks: the task builds batches (``collate_train``), maps a
batch to named losses (``training_step``) and evaluates (``evaluate``, see
:mod:`vl_hub.training.evaluation` for the data contract). Per iteration the trainer sets the LAVIS
learning rate for (epoch, iteration in epoch), runs the step under autocast and Accelerate's gradient
accumulation, and then, in this order: logs (every ``log_every`` steps), evaluates, saves a
checkpoint. ``accelerate launch`` scales it to several processes (DDP/FSDP via the accelerate config).

Outputs in ``output_dir``: ``log.jsonl`` (always), ``checkpoints/step_<n>`` (resumable, last K kept),
``checkpoints/best`` (best validation model), and at the end the model (``save_pretrained``), the
processor, ``training_args.yaml``, ``all_results.json``, ``training_curves.png`` and ``README.md``
(model card); ``push_to_hub`` uploads that folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vl_hub.training.arguments import ArgumentsError, DatasetArguments, TrainingArguments
from vl_hub.training.checkpointing import (
    BEST_DIR,
    TrainerState,
    checkpoints_dir,
    latest_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    remove_stale_temporaries,
    step_of,
    write_atomically,
)
from vl_hub.training.curves import CURVES_FILENAME, plot_curves
from vl_hub.training.data import RunDatasets, build_plan, train_dataloader
from vl_hub.training.model_card import render_model_card, write_model_card
from vl_hub.training.optim import build_optimizer
from vl_hub.training.run_log import LOG_FILENAME, RunLog
from vl_hub.training.schedulers import apply_lr, build_schedule
from vl_hub.training.weights import load_weights

logger = logging.getLogger(__name__)

#: file names written into output_dir.
ARGS_FILENAME = "training_args.yaml"
RESULTS_FILENAME = "all_results.json"
EVAL_RESULTS_FILENAME = "eval_results.json"


@dataclass(frozen=True)
class TrainingProgress:
    """Where training stands, set as ``task.training_progress`` before every ``training_step`` (LAVIS
    passes the same facts in ``samples["epoch"/"iters"/"num_iters_per_epoch"]``), e.g. for schedules a
    task runs itself (momentum-distillation ramps). Restored exactly on resume.

    Attributes:
        epoch: (inner) epoch, from 0; iteration_in_epoch: batch index inside it, from 0;
        iterations_per_epoch: batches per (inner) epoch and process; iteration: batches so far (this
        process); global_step: optimizer steps so far; num_epochs: epochs of the schedule.
    """

    epoch: int
    iteration_in_epoch: int
    iterations_per_epoch: int
    iteration: int
    global_step: int
    num_epochs: int


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns.

    Attributes:
        metrics: final metrics, ``"<eval|test>/<dataset label>/<metric>"`` -> value (best validation
            results when the best model was loaded at the end, then the test results).
        global_step / iterations: optimizer steps and batches per process trained.
        best_step / best_metric: step and value of the best ``primary_metric`` on validation.
        output_dir: where the model, card and logs are.
        hub_url: commit URL of the upload, when pushed.
    """

    metrics: dict[str, float]
    global_step: int
    iterations: int
    best_step: int | None
    best_metric: float | None
    output_dir: Path
    hub_url: str | None = None
    train_runtime_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_trackers(report_to: Sequence[str]) -> list[str]:
    """Tracker names for ``Accelerator(log_with=...)``; ``all`` means those installed.

    Raises:
        ArgumentsError: a named tracker is not installed.
    """
    import importlib.util

    available = [t for t in ("tensorboard", "wandb") if importlib.util.find_spec(t) is not None]
    if "all" in report_to:
        return available
    missing = [t for t in report_to if t not in available]
    if missing:
        raise ArgumentsError(
            "report_to",
            f"{', '.join(missing)} not installed (pip install {' '.join(missing)}) — or remove it; "
            "log.jsonl is always written",
        )
    return list(dict.fromkeys(report_to))


def make_accelerator(args: TrainingArguments) -> Any:
    """The ``Accelerator`` of a run: mixed precision, gradient accumulation, trackers."""
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration

    trackers = resolve_trackers(args.report_to)
    return Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=args.gradient_accumulation_steps, sync_with_dataloader=False, adjust_scheduler=False
        ),
        log_with=trackers or None,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=str(Path(args.output_dir) / "runs")
        ),
        step_scheduler_with_optimizer=False,
    )


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Restores the Python, NumPy, torch (and CUDA) RNG states afterwards, so evaluation never shifts
    the random stream of training (a resumed run replays identical dropout)."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _flat_config(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat_config(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = "" if value is None else value
        else:
            out[name] = json.dumps(value, default=str)
    return out


class Trainer:
    """Trains and evaluates one model on one task with Accelerate.

    Args:
        args: the run arguments.
        task: a ``vl_hub.tasks.base.Task`` instance (built on the unwrapped ``model``).
        model: the model (a ``PreTrainedModel``); prepared by the trainer.
        datasets: the loaded datasets (:func:`vl_hub.training.data.load_run_datasets`).
        processor: saved next to the model when given.
        accelerator: an ``Accelerator``; :func:`make_accelerator` when ``None``.

    Use :meth:`from_arguments` to build everything from a recipe.
    """

    def __init__(
        self,
        args: TrainingArguments,
        task: Any,
        model: torch.nn.Module,
        datasets: RunDatasets,
        processor: Any | None = None,
        accelerator: Any | None = None,
    ) -> None:
        self.args = args
        self.task = task
        self.model = model
        self.data = datasets
        self.processor = processor
        self.accelerator = accelerator if accelerator is not None else make_accelerator(args)
        self.output_dir = Path(args.output_dir)
        self.state = TrainerState()
        self.run_log = RunLog(self.output_dir / LOG_FILENAME, enabled=self.accelerator.is_main_process)
        self.optimizer: Any = None
        self._prepared = False
        self._eval_prepared = False
        self._running: dict[str, torch.Tensor] = {}
        self._running_count = 0
        self._log_clock = time.perf_counter()
        self._log_iteration = 0
        self._last_saved_step: int | None = None
        self._pending_save = False
        self._trackers_started = False

    # ================================================================== construction
    @classmethod
    def from_arguments(
        cls, args: TrainingArguments, training: bool = True, checkpoint: str | Path | None = None
    ) -> Trainer:
        """Builds task, datasets (checked first), model and processor from ``args``.

        Args:
            args: the run arguments.
            training: load the training datasets too (``False`` for ``vl-hub evaluate``).
            checkpoint: evaluate/continue from this folder: a ``save_pretrained`` folder (config.json)
                or an ``accelerate`` checkpoint ``step_<n>`` (weights loaded into the recipe's model).

        Raises:
            ArgumentsError: invalid arguments (unknown task, family not serving it, ...).
            FileNotFoundError: a dataset's files are missing (with its download instructions).
        """
        from accelerate.utils import set_seed

        from vl_hub.training.data import load_run_datasets
        from vl_hub.training.factory import build_model, load_processor, resolve_task_class

        if training:
            args.check_for_training()
        task_cls = resolve_task_class(args.task)
        accelerator = make_accelerator(args)
        data = load_run_datasets(args, task_cls, training=training, main_process_first=accelerator.main_process_first)
        margs = args.model
        state_weights: Path | None = None
        if checkpoint is not None:
            checkpoint = Path(checkpoint)
            if (checkpoint / "config.json").is_file():
                has_processor = any(
                    (checkpoint / f).is_file()
                    for f in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
                )
                margs = margs.__class__(
                    **{
                        **margs.__dict__,
                        "name_or_path": str(checkpoint),
                        "processor": str(checkpoint) if has_processor else margs.processor,
                        "config": {},
                    }
                )
            elif (checkpoint / "model.safetensors").is_file():
                state_weights = checkpoint / "model.safetensors"
            else:
                raise ArgumentsError(
                    "checkpoint",
                    f"{checkpoint} is neither a saved model (config.json + model.safetensors) nor a training "
                    "checkpoint (checkpoints/step_<n>)",
                )
        set_seed(args.seed)
        model = build_model(margs, task_cls)
        if state_weights is not None:
            load_weights(model, state_weights)
        processor = load_processor(margs)
        task = task_cls(model, processor, **args.task_options)
        return cls(args, task, model, data, processor=processor, accelerator=accelerator)

    # ================================================================== helpers
    @property
    def unwrapped_model(self) -> torch.nn.Module:
        """The model without Accelerate's wrappers (DDP, ...)."""
        return self.accelerator.unwrap_model(self.model)

    def _barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def _prepare_for_training(self) -> None:
        if self._prepared:
            return
        args = self.args
        if args.gradient_checkpointing:
            model = self.model
            # transformers 5 renamed gradient_checkpointing_enable (deprecated) to activation_checkpointing_enable
            enable = getattr(model, "activation_checkpointing_enable", None) or getattr(
                model, "gradient_checkpointing_enable", None
            )
            if not callable(enable) or getattr(model, "supports_gradient_checkpointing", True) is False:
                raise ArgumentsError(
                    "gradient_checkpointing", f"{type(model).__name__} does not support gradient checkpointing"
                )
            enable()
        optimizer = build_optimizer(self.model, args)
        self.model, self.optimizer = self.accelerator.prepare(self.model, optimizer)
        self.accelerator.register_for_checkpointing(self.state)
        if callable(getattr(self.task, "state_dict", None)) and callable(getattr(self.task, "load_state_dict", None)):
            # a task with state of its own (counters, queues kept outside the model) resumes with it
            self.accelerator.register_for_checkpointing(self.task)
        self._prepared = True

    def _prepare_for_evaluation(self) -> None:
        if self._prepared or self._eval_prepared:
            return
        self.model = self.accelerator.prepare_model(self.model, evaluation_mode=True)
        self._eval_prepared = True

    def _prepare_output_dir(self) -> Path | None:
        """Refuses to mix runs in one folder; returns the checkpoint to resume from (if any)."""
        args = self.args
        acc = self.accelerator
        existing = list_checkpoints(self.output_dir)
        resume_from: Path | None = None
        if args.resume_from:
            resume_from = Path(args.resume_from)
            if not resume_from.is_dir():
                raise ArgumentsError("resume_from", f"{resume_from} is not a checkpoint folder")
        elif args.resume:
            resume_from = latest_checkpoint(self.output_dir)
            if resume_from is None and acc.is_main_process:
                logger.info("resume: no checkpoint in %s, starting from scratch", checkpoints_dir(self.output_dir))
        previous_run = bool(existing) or (self.output_dir / LOG_FILENAME).is_file()
        if resume_from is None and previous_run and not args.overwrite_output_dir:
            found = ", ".join(p.name for p in existing) or LOG_FILENAME
            raise ArgumentsError(
                "output_dir",
                f"{self.output_dir} already holds a run ({found}); pass --resume to continue it, "
                "--overwrite_output_dir to start over, or choose another output_dir",
            )
        self._barrier()
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.output_dir)
            if resume_from is None and previous_run:
                shutil.rmtree(checkpoints_dir(self.output_dir), ignore_errors=True)
                (self.output_dir / LOG_FILENAME).unlink(missing_ok=True)
        self._barrier()
        return resume_from

    def _start_trackers(self) -> None:
        if self._trackers_started or not self.accelerator.log_with:
            return
        name = self.args.run_name or self.output_dir.name
        self.accelerator.init_trackers(name, config=_flat_config(self.args.to_dict()))
        self._trackers_started = True

    def _log(self, record: dict[str, Any], prefix: str | None = None) -> None:
        self.run_log.append(record)
        scalars = {
            (f"{prefix}/{k}" if prefix else k): v
            for k, v in record.items()
            if k not in ("step", "split") and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if self.accelerator.log_with:
            self.accelerator.log(scalars, step=record.get("step"))

    # ================================================================== checkpoints
    def _save_pretrained(self, folder: Path) -> None:
        """``save_pretrained`` of the model (+ processor) into ``folder``; every process calls it."""
        acc = self.accelerator
        state_dict = acc.get_state_dict(self.model)
        self.unwrapped_model.save_pretrained(
            folder, state_dict=state_dict, is_main_process=acc.is_main_process, save_function=acc.save
        )
        if acc.is_main_process and self.processor is not None and hasattr(self.processor, "save_pretrained"):
            self.processor.save_pretrained(folder)

    def save_checkpoint(self) -> Path:
        """Writes a resumable checkpoint ``checkpoints/step_<global_step>`` atomically, prunes old ones."""
        acc = self.accelerator
        final = checkpoints_dir(self.output_dir) / f"step_{self.state.global_step}"

        def write(tmp: Path) -> None:
            acc.save_state(str(tmp))
            if acc.is_main_process:
                (tmp / "trainer_state.json").write_text(json.dumps(self.state.state_dict(), indent=2))
                (tmp / ARGS_FILENAME).write_text(self.args.to_yaml(), encoding="utf-8")

        write_atomically(final, write, acc.is_main_process, self._barrier)
        if acc.is_main_process:
            prune_checkpoints(self.output_dir, self.args.save_total_limit)
        self._barrier()
        self._last_saved_step = self.state.global_step
        self._pending_save = False
        return final

    def _save_best(self) -> Path:
        final = checkpoints_dir(self.output_dir) / BEST_DIR
        return write_atomically(final, self._save_pretrained, self.accelerator.is_main_process, self._barrier)

    def resume(self, checkpoint: str | Path) -> None:
        """Restores model, optimizer, scaler, RNG states and counters from ``checkpoint``.

        Raises:
            ValueError: the checkpoint was written with other data, batch size, seed or ratios (the
                data order could not continue).
        """
        checkpoint = Path(checkpoint)
        current = dict(self.state.plan)
        self.accelerator.load_state(str(checkpoint))
        saved = dict(self.state.plan)
        if saved and current:
            keys = ("lengths", "batch_size", "seed", "ratios")
            diff = {k: (saved.get(k), current.get(k)) for k in keys if saved.get(k) != current.get(k)}
            if diff:
                raise ValueError(
                    f"cannot resume from {checkpoint}: the run changed "
                    + "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
                    + ". Resume with the same datasets, batch_size_train, seed and ratios, or start a new output_dir"
                )
            if saved.get("num_processes") != current.get("num_processes"):
                logger.warning(
                    "resuming with %s processes instead of %s: training continues, but the batch order differs "
                    "from the original run",
                    current.get("num_processes"),
                    saved.get("num_processes"),
                )
        self.state.plan = current
        self._last_saved_step = self.state.global_step
        self.run_log.truncate_after(self.state.global_step)
        if self.accelerator.is_main_process:
            logger.info(
                "resumed from %s at step %d (iteration %d)", checkpoint, self.state.global_step, self.state.iteration
            )

    # ================================================================== evaluation
    def _check_metrics(self, metrics: Any, spec: DatasetArguments) -> dict[str, float]:
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f"{type(self.task).__name__}.evaluate returned {type(metrics).__name__}, expected a dict "
                "{metric name: number}"
            )
        out: dict[str, float] = {}
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise TypeError(
                        f"metric {key!r} of {spec.display_name} is a tensor of shape {tuple(value.shape)}, expected a number"
                    )
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"metric {key!r} of {spec.display_name} is {value!r}, expected a number")
            out[str(key)] = float(value)
        return out

    def evaluate(self, which: str = "eval") -> dict[str, float]:
        """Runs ``task.evaluate`` on the validation (``"eval"``) or test (``"test"``) datasets.

        Returns ``{"<which>/<dataset label>/<metric>": value}``, identical on every process (the main
        process's metrics are broadcast).
        """
        from accelerate.utils import broadcast_object_list

        if which not in ("eval", "test"):
            raise ValueError(f"which must be 'eval' or 'test', got {which!r}")
        if not self._prepared:
            self._prepare_for_evaluation()
        acc = self.accelerator
        datasets_ = self.data.eval if which == "eval" else self.data.test
        specs = self.data.eval_specs if which == "eval" else self.data.test_specs
        model = self.unwrapped_model
        was_training = model.training
        model.eval()
        results: dict[str, float] = {}
        try:
            with isolated_rng():
                for spec, dataset in zip(specs, datasets_, strict=True):
                    with torch.no_grad(), acc.autocast():
                        metrics = self.task.evaluate(
                            model,
                            dataset,
                            accelerator=acc,
                            batch_size=self.args.batch_size_eval,
                            progress=self.args.progress and acc.is_main_process,
                        )
                    checked = self._check_metrics(metrics, spec) if acc.is_main_process else {}
                    box = [checked]
                    if acc.num_processes > 1:
                        broadcast_object_list(box, from_process=0)
                    primary = getattr(self.task, "primary_metric", None)
                    if which == "eval" and spec is specs[0] and primary is not None and primary not in box[0]:
                        raise KeyError(
                            f"{type(self.task).__name__}.evaluate returned {sorted(box[0])}, which lacks its "
                            f"primary_metric {primary!r}"
                        )
                    results.update({f"{which}/{spec.display_name}/{k}": v for k, v in box[0].items()})
        finally:
            model.train(was_training)
        return results

    def _evaluate_and_track(self, epoch: float) -> dict[str, float]:
        results = self.evaluate("eval")
        self.state.last_eval_step = self.state.global_step
        if not results:
            return results
        self.state.last_results = dict(results)
        key = f"eval/{self.data.eval_specs[0].display_name}/{self.task.primary_metric}"
        value = results[key]
        improved = self.state.best_metric is None or value > self.state.best_metric
        if improved and math.isfinite(value):
            self.state.best_metric = value
            self.state.best_step = self.state.global_step
            self.state.best_results = dict(results)
            self._save_best()
        record = {"step": self.state.global_step, "iteration": self.state.iteration, "epoch": epoch, "split": "eval"}
        record.update(results)
        record["best_step"] = self.state.best_step
        self._log(record)
        return results

    # ================================================================== training
    def _check_losses(self, out: Any) -> Mapping[str, torch.Tensor]:
        if not isinstance(out, Mapping) or "loss" not in out:
            raise TypeError(
                f"{type(self.task).__name__}.training_step must return a dict with 'loss' first "
                f"({{'loss': total, <part>: value}}), got {type(out).__name__}"
                + (f" with keys {list(out)}" if isinstance(out, Mapping) else "")
            )
        loss = out["loss"]
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise TypeError(
                f"{type(self.task).__name__}.training_step's 'loss' must be a scalar tensor that requires grad, got "
                f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else f' of shape {tuple(loss.shape)}, requires_grad={loss.requires_grad}'}"
            )
        return out

    def _accumulate_losses(self, out: Mapping[str, Any]) -> None:
        for key, value in out.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.detach().float().reshape(())
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = torch.tensor(float(value), device=self.accelerator.device)
            else:
                continue
            running = self._running.get(key)
            self._running[key] = value if running is None else running + value
        self._running_count += 1

    def _log_train(self, epoch: float, lr: float, progress: Any) -> None:
        if not self._running_count:
            return
        acc = self.accelerator
        keys = list(self._running)
        means = torch.stack([self._running[k] for k in keys]) / self._running_count
        means = acc.reduce(means, reduction="mean") if acc.num_processes > 1 else means
        values = dict(zip(keys, means.tolist(), strict=True))
        now = time.perf_counter()
        iterations = self.state.iteration - self._log_iteration
        samples = iterations * self.args.batch_size_train * acc.num_processes
        record = {
            "step": self.state.global_step,
            "iteration": self.state.iteration,
            "epoch": round(epoch, 4),
            "split": "train",
        }
        record.update(values)
        record["lr"] = lr
        record["samples_per_second"] = samples / max(now - self._log_clock, 1e-9)
        self._running, self._running_count = {}, 0
        self._log_clock, self._log_iteration = now, self.state.iteration
        if not math.isfinite(values.get("loss", 0.0)):
            raise FloatingPointError(
                f"training loss is {values['loss']} at step {self.state.global_step} (lr {lr:g}); lower init_lr, "
                "set max_grad_norm, or use bf16 instead of fp16"
            )
        self._log(record, prefix="train")
        if progress is not None:
            progress.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.2e}", refresh=False)

    def _iterations(self, plan: Any) -> tuple[int, int]:
        """(iterations per (inner) epoch, total iterations)."""
        if self.args.iteration_based:
            assert self.args.iters_per_inner_epoch is not None and self.args.max_iters is not None
            return self.args.iters_per_inner_epoch, self.args.max_iters
        return plan.iterations_per_epoch, plan.iterations_per_epoch * self.args.max_epoch

    def train(self) -> TrainResult:
        """Trains (resuming if asked), evaluates, saves the model with its card, pushes if asked."""
        from accelerate.utils import send_to_device
        from tqdm.auto import tqdm

        args = self.args
        args.check_for_training()
        acc = self.accelerator
        started = time.perf_counter()
        resume_from = self._prepare_output_dir()
        plan = build_plan(self.data.train, self.data.train_specs, args, acc.num_processes)
        per_epoch, total = self._iterations(plan)
        self._prepare_for_training()
        self.state.plan = plan.fingerprint()
        if resume_from is not None:
            self.resume(resume_from)
        if total % args.gradient_accumulation_steps and acc.is_main_process:
            logger.warning(
                "%d iterations is not a multiple of gradient_accumulation_steps=%d: the last %d iterations "
                "add no optimizer step",
                total,
                args.gradient_accumulation_steps,
                total % args.gradient_accumulation_steps,
            )
        schedule = build_schedule(args)
        self._start_trackers()
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / ARGS_FILENAME).write_text(args.to_yaml(), encoding="utf-8")
        progress = tqdm(
            total=total,
            initial=self.state.iteration,
            desc="train",
            disable=not (args.progress and acc.is_main_process),
            dynamic_ncols=True,
        )
        self._log_clock, self._log_iteration = time.perf_counter(), self.state.iteration
        first_step = True
        lr = schedule.lr(self.state.iteration // per_epoch, self.state.iteration % per_epoch)
        self.model.train()
        while self.state.iteration < total:
            epoch = self.state.iteration // per_epoch
            stop = min((epoch + 1) * per_epoch, total)
            loader = train_dataloader(
                self.data.train,
                plan,
                self.task.collate_train,
                self.state.iteration,
                stop,
                acc.process_index,
                num_workers=args.num_workers,
                pin_memory=acc.device.type == "cuda",
            )
            for batch in loader:
                in_epoch = self.state.iteration - epoch * per_epoch
                lr = schedule.lr(epoch, in_epoch)
                self.task.training_progress = TrainingProgress(
                    epoch, in_epoch, per_epoch, self.state.iteration, self.state.global_step, args.num_epochs
                )
                apply_lr(self.optimizer, lr)
                batch = send_to_device(batch, acc.device, non_blocking=acc.device.type == "cuda")
                with acc.accumulate(self.model):
                    with acc.autocast():
                        out = self.task.training_step(self.model, batch)
                    if first_step:
                        self._check_losses(out)
                        first_step = False
                    acc.backward(out["loss"])
                    if acc.sync_gradients and args.max_grad_norm is not None:
                        acc.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                self._accumulate_losses(out)
                del out
                self.state.iteration += 1
                progress.update(1)
                self._after_iteration(per_epoch, total, lr, progress)
        progress.close()
        self._log_train(self.state.iteration / per_epoch, lr, None)
        if args.eval_strategy != "no" and self.data.eval and self.state.last_eval_step != self.state.global_step:
            self._evaluate_and_track(self.state.iteration / per_epoch)  # the final model is always evaluated
        return self._finish(started)

    def _after_iteration(self, per_epoch: int, total: int, lr: float, progress: Any) -> None:
        args = self.args
        state = self.state
        sync = self.accelerator.sync_gradients
        if sync:
            state.global_step += 1
        epoch_end = state.iteration % per_epoch == 0 or state.iteration == total
        completed_epochs = -(-state.iteration // per_epoch)
        epoch = state.iteration / per_epoch
        if sync and state.global_step % args.log_every == 0:
            self._log_train(epoch, lr, progress)
        eval_due = (sync and args.eval_strategy == "steps" and state.global_step % args.eval_every == 0) or (
            epoch_end and args.eval_strategy == "epoch" and completed_epochs % args.eval_every == 0
        )
        if eval_due and self.data.eval and state.last_eval_step != state.global_step:
            self._evaluate_and_track(epoch)
        save_due = (sync and args.save_strategy == "steps" and state.global_step % args.save_every == 0) or (
            epoch_end and args.save_strategy == "epoch" and completed_epochs % args.save_every == 0
        )
        if save_due or self._pending_save:
            if not sync:
                self._pending_save = True  # gradients are mid-accumulation: save after the next optimizer step
            elif self._last_saved_step != state.global_step:
                self.save_checkpoint()

    def _finish(self, started: float) -> TrainResult:
        args = self.args
        acc = self.accelerator
        self._barrier()
        best_dir = checkpoints_dir(self.output_dir) / BEST_DIR
        if args.load_best_at_end and self.state.best_step is not None and best_dir.is_dir():
            load_weights(self.unwrapped_model, best_dir)
            final = dict(self.state.best_results)
        else:
            final = dict(self.state.last_results)
        if self.data.test:
            test = self.evaluate("test")
            final.update(test)
            self._log({"step": self.state.global_step, "iteration": self.state.iteration, "split": "test", **test})
        runtime = time.perf_counter() - started
        result = TrainResult(
            metrics=final,
            global_step=self.state.global_step,
            iterations=self.state.iteration,
            best_step=self.state.best_step,
            best_metric=self.state.best_metric,
            output_dir=self.output_dir,
            train_runtime_s=runtime,
        )
        self.save_model(result)
        if args.push_to_hub and acc.is_main_process:
            from vl_hub.training.hub import push_folder

            result.hub_url = push_folder(
                self.output_dir,
                args.push_to_hub,
                private=args.hub_private,
                commit_message=f"vl_hub: {self.task.name} ({args.recipe or 'custom recipe'}), step {self.state.global_step}",
            )
        self._barrier()
        acc.end_training()
        return result

    def save_model(self, result: TrainResult | None = None) -> Path:
        """Writes the final folder: model, processor, resolved recipe, results, curves PNG and card."""
        from vl_hub.tasks.base import family_of

        acc = self.accelerator
        self._save_pretrained(self.output_dir)
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / ARGS_FILENAME).write_text(self.args.to_yaml(), encoding="utf-8")
            metrics = result.metrics if result is not None else {}
            summary: dict[str, Any] = {"metrics": metrics}
            if result is not None:
                summary.update(
                    global_step=result.global_step,
                    iterations=result.iterations,
                    best_step=result.best_step,
                    best_metric=result.best_metric,
                    train_runtime_s=round(result.train_runtime_s, 3),
                )
            (self.output_dir / RESULTS_FILENAME).write_text(json.dumps(summary, indent=2), encoding="utf-8")
            records = self.run_log.records()
            curves = None
            if records:
                plot_curves(
                    records, self.output_dir / CURVES_FILENAME, title=self.args.run_name or self.output_dir.name
                )
                curves = CURVES_FILENAME
            model = self.unwrapped_model
            extra = {}
            if result is not None:
                extra = {
                    "optimizer steps": result.global_step,
                    "best step": result.best_step if result.best_step is not None else "-",
                }
            card = render_model_card(
                self.args,
                family=family_of(model),
                head_class=type(model).__name__,
                task_name=getattr(self.task, "name", type(self.task).__name__),
                metrics=metrics,
                curves_file=curves,
                has_processor=self.processor is not None,
                extra=extra,
            )
            write_model_card(self.output_dir, card)
        self._barrier()
        return self.output_dir

    # ================================================================== evaluation-only runs
    def evaluate_all(self) -> dict[str, float]:
        """Evaluates every validation and test dataset (``vl-hub evaluate``); writes ``eval_results.json``."""
        if not (self.data.eval or self.data.test):
            raise ArgumentsError("eval_datasets", "nothing to evaluate: give eval_datasets or test_datasets")
        results = {**self.evaluate("eval"), **self.evaluate("test")}
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / EVAL_RESULTS_FILENAME).write_text(json.dumps(results, indent=2), encoding="utf-8")
        self._barrier()
        self.accelerator.end_training()
        return results


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a complete resumable checkpoint folder (``step_<n>``)."""
    return Path(path).is_dir() and step_of(path) is not None
