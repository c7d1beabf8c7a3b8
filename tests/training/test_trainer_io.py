"""Trainer input errors (missing data before training, mixed runs, bad task output), the model card,
Hub upload through a stubbed transport, and evaluating saved checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.helpers import toy_args
from tests.training.toy import ToyTask
from vl_hub.data.builder_utils import MissingDataError
from vl_hub.training import factory
from vl_hub.training.model_card import read_card_metadata
from vl_hub.training.run import evaluate
from vl_hub.training.trainer import Trainer
from vl_hub.training.typed_config import ArgumentsError


@pytest.mark.parametrize(
    ("dataset", "instructions"),
    [
        (
            {"name": str(Path(__file__).parent / "toy_data" / "toy_data.py"), "split": "validation"},
            "write_toy_data(folder)",
        ),
        ({"name": "coco_caption", "split": "validation"}, "caption_datasets.zip"),
    ],
)
def test_missing_dataset_files_fail_before_the_model_is_built(
    tmp_path: Path, toy_dirs: tuple, monkeypatch: pytest.MonkeyPatch, dataset: dict, instructions: str
) -> None:
    def no_model(*a: Any, **k: Any) -> None:
        raise AssertionError("the model must not be built before the datasets are validated")

    monkeypatch.setattr(factory, "build_model", no_model)
    missing = dict(dataset, data_dir=str(tmp_path / "not_downloaded"))
    args = toy_args(tmp_path, toy_dirs, test_datasets=[missing])
    with pytest.raises(MissingDataError) as info:
        Trainer.from_arguments(args)
    assert instructions in str(info.value) and str(tmp_path / "not_downloaded") in str(info.value)
    assert not Path(args.output_dir).exists()


def test_incompatible_dataset_is_refused(tmp_path: Path, toy_dirs: tuple) -> None:
    shapes = {
        "name": "vl_hub_shapes",
        "config": "image_text",
        "split": "validation",
        "options": {"num_train": 2, "num_validation": 2, "num_test": 2, "image_size": 32},
    }
    args = toy_args(tmp_path, toy_dirs, eval_datasets=[shapes])
    with pytest.raises(ValueError, match="dataset 'vl_hub_shapes/validation' does not fit task 'toy_classification'"):
        Trainer.from_arguments(args)


def test_unknown_task_and_family_are_explained(tmp_path: Path, toy_dirs: tuple) -> None:
    with pytest.raises(ArgumentsError, match="unknown task 'captioningg'.*or give 'package.module:Class'"):
        Trainer.from_arguments(toy_args(tmp_path, toy_dirs, task="captioningg"))
    with pytest.raises(ArgumentsError, match="not a vl_hub.tasks.base.Task subclass"):
        Trainer.from_arguments(toy_args(tmp_path, toy_dirs, task="tests.training.toy:write_toy_data"))
    with pytest.raises(ArgumentsError, match="not served by the 'blip' family; families serving it: toy"):
        Trainer.from_arguments(toy_args(tmp_path, toy_dirs, model={"family": "blip"}))


def test_a_second_run_refuses_the_same_output_dir(tmp_path: Path, toy_dirs: tuple) -> None:
    args = toy_args(tmp_path, toy_dirs, max_epoch=1, eval_strategy="no")
    Trainer.from_arguments(args).train()
    with pytest.raises(ArgumentsError, match="already holds a run .*--resume.*--overwrite_output_dir"):
        Trainer.from_arguments(args).train()
    (Path(args.output_dir) / "checkpoints" / "step_999").mkdir()
    Trainer.from_arguments(args.replace(overwrite_output_dir=True)).train()
    assert sorted(p.name for p in (Path(args.output_dir) / "checkpoints").iterdir()) == ["step_12", "step_8"]


class _BadTask(ToyTask):
    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Any:
        return model(x=batch["x"], labels=batch["labels"]).loss  # a bare tensor, not {"loss": ...}


def test_training_step_must_return_named_losses(tmp_path: Path, toy_dirs: tuple) -> None:
    args = toy_args(tmp_path, toy_dirs, max_epoch=1)
    trainer = Trainer.from_arguments(args)
    trainer.task = _BadTask(trainer.model, None)
    with pytest.raises(TypeError, match="must return a dict with 'loss' first .* got Tensor"):
        trainer.train()


def test_model_card_and_push_to_hub_through_a_stubbed_transport(
    tmp_path: Path, toy_dirs: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    calls: dict[str, Any] = {}
    remote = tmp_path / "remote"

    def create_repo(self: HfApi, repo_id: str, **kwargs: Any) -> str:
        calls["create_repo"] = dict(repo_id=repo_id, **kwargs)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self: HfApi, *, repo_id: str, folder_path: str, **kwargs: Any) -> str:
        calls["upload_folder"] = dict(repo_id=repo_id, folder_path=folder_path, **kwargs)
        files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
        kept = filter_repo_objects(
            files, allow_patterns=kwargs.get("allow_patterns"), ignore_patterns=kwargs.get("ignore_patterns")
        )
        for rel in kept:  # what the real client would upload, copied locally instead of sent
            (remote / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(folder_path) / rel, remote / rel)
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    args = toy_args(
        tmp_path, toy_dirs, max_epoch=1, push_to_hub="someone/toy-model", hub_private=True, description="A toy."
    )
    result = Trainer.from_arguments(args).train()

    assert result.hub_url == "https://huggingface.co/someone/toy-model/commit/abc"
    assert calls["create_repo"] == {
        "repo_id": "someone/toy-model",
        "repo_type": "model",
        "private": True,
        "exist_ok": True,
    }
    assert calls["upload_folder"]["folder_path"] == args.output_dir
    uploaded = sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file())
    assert {"README.md", "config.json", "model.safetensors", "training_curves.png", "log.jsonl"} <= set(uploaded)
    assert not any(p.startswith("checkpoints/") for p in uploaded)
    assert (Path(args.output_dir) / "checkpoints").is_dir()  # kept locally

    meta = read_card_metadata(remote / "README.md")
    assert meta["library_name"] == "vl_hub"
    assert meta["tags"] == ["vl_hub", "vision-language", "toy", "toy_classification"]
    assert meta["datasets"] == ["toy_data"]
    assert meta["metrics"] == ["accuracy", "loss", "num_samples", "distinct_samples"]
    results = meta["model-index"][0]["results"][0]
    assert results["dataset"] == {"type": "toy_data", "name": "toy_data", "split": "validation"}
    assert results["metrics"][0] == {
        "type": "accuracy",
        "name": "accuracy",
        "value": result.metrics["eval/toy/validation/accuracy"],
    }
    body = (remote / "README.md").read_text()
    assert "![training curves](training_curves.png)" in body
    assert "| family | toy |" in body and "| task | toy_classification |" in body and "A toy." in body
    assert f"| eval | toy/validation | accuracy | {result.metrics['eval/toy/validation/accuracy']:.4f} |" in body


def test_evaluate_saved_model_and_training_checkpoint(tmp_path: Path, toy_dirs: tuple) -> None:
    args = toy_args(
        tmp_path,
        toy_dirs,
        max_epoch=1,
        load_best_at_end=False,
        test_datasets=[
            {
                "name": str(Path(__file__).parent / "toy_data" / "toy_data.py"),
                "data_dir": str(toy_dirs[0]),
                "split": "test",
            }
        ],
    )
    result = Trainer.from_arguments(args).train()
    assert result.metrics["test/toy_data/test/num_samples"] == 23
    out = Path(args.output_dir)
    # the final folder (save_pretrained) and the last resumable checkpoint (accelerate state) hold the same weights
    from_model = evaluate(args.replace(output_dir=str(tmp_path / "eval_a")), checkpoint=out)
    from_state = evaluate(args.replace(output_dir=str(tmp_path / "eval_b")), checkpoint=out / "checkpoints" / "step_12")
    assert from_model == from_state
    assert from_model == {k: v for k, v in result.metrics.items()}
    assert (tmp_path / "eval_a" / "eval_results.json").is_file()
    with pytest.raises(ArgumentsError, match="neither a saved model"):
        evaluate(args, checkpoint=tmp_path)


def test_trackers_must_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from vl_hub.training.trainer import resolve_trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("tensorboard", "wandb") else real(name, *a))
    with pytest.raises(ArgumentsError, match=r"report_to: wandb not installed \(pip install wandb\)"):
        resolve_trackers(["wandb"])
    assert resolve_trackers(["all"]) == []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "tensorboard" else None)
    assert resolve_trackers(["all"]) == ["tensorboard"] == resolve_trackers(["tensorboard", "tensorboard"])
