"""TrainingArguments: YAML/CLI overlay, type conversion and the errors for bad keys and values."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest

from vl_hub.training.arguments import DatasetArguments, ModelArguments, TrainingArguments, describe_keys
from vl_hub.training.typed_config import ArgumentsError, parse_overrides, set_dotted


def _minimal(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "output_dir": "out",
        "task": "captioning",
        "model": {"name_or_path": "ckpt"},
        "datasets": [{"name": "coco_caption", "data_dir": "/data/coco"}],
    }
    data.update(extra)
    return data


def test_values_are_converted_like_lavis_writes_them() -> None:
    # YAML 1.1 reads 1e-5 and 1e6 as strings; LAVIS configs are full of them
    args = TrainingArguments.from_dict(
        _minimal(init_lr="1e-5", min_lr=0, max_iters="1e6", iters_per_inner_epoch=1e4, report_to="tensorboard")
    )
    assert args.init_lr == 1e-5 and isinstance(args.init_lr, float)
    assert args.min_lr == 0.0 and isinstance(args.min_lr, float)
    assert args.max_iters == 1_000_000 and isinstance(args.max_iters, int)
    assert args.iters_per_inner_epoch == 10_000 and isinstance(args.iters_per_inner_epoch, int)
    assert args.report_to == ["tensorboard"]
    assert isinstance(args.model, ModelArguments) and isinstance(args.datasets[0], DatasetArguments)
    assert args.datasets[0].split == "train" and args.datasets[0].display_name == "coco_caption/train"
    assert args.iteration_based and args.num_epochs == 100


def test_unknown_key_lists_valid_keys_with_types() -> None:
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_dict(_minimal(learning_rate=1e-4))
    message = str(info.value)
    assert "learning_rate" in message
    assert "valid keys:" in message
    assert "init_lr (float)" in message and "max_epoch (int)" in message
    assert "mixed_precision (one of 'no', 'fp16', 'bf16')" in message


def test_unknown_nested_key_lists_the_nested_keys() -> None:
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_dict(_minimal(model={"name_or_path": "x", "revision": "main"}))
    assert info.value.key == "model.revision"
    assert "model.name_or_path (str or null)" in str(info.value)
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_dict(_minimal(datasets=[{"name": "a"}, {"name": "b", "splitt": "val"}]))
    assert info.value.key == "datasets.1.splitt"
    assert "datasets.1.split (str)" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "key", "value_text", "expected"),
    [
        ({"max_epoch": "three"}, "max_epoch", "'three'", "expected int"),
        ({"batch_size_train": 2.5}, "batch_size_train", "2.5", "expected int"),
        ({"max_epoch": True}, "max_epoch", "True", "expected int"),
        ({"init_lr": "fast"}, "init_lr", "'fast'", "expected float"),
        ({"resume": "yes"}, "resume", "'yes'", "expected bool"),
        ({"mixed_precision": "fp32"}, "mixed_precision", "'fp32'", "expected one of 'no', 'fp16', 'bf16'"),
        ({"datasets": "coco"}, "datasets", "'coco'", "expected list of mapping"),
        ({"task_options": [1, 2]}, "task_options", "[1, 2]", "expected mapping of str to any value"),
        ({"model": {"name_or_path": 3}}, "model.name_or_path", "3", "expected str or null"),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(extra: dict, key: str, value_text: str, expected: str) -> None:
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_dict(_minimal(**extra))
    assert info.value.key == key
    assert value_text in str(info.value) and expected in str(info.value)


def test_nested_list_entry_of_wrong_type_names_its_index() -> None:
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_dict(_minimal(datasets=[{"name": "a"}, {"name": "b", "ratio": "lots"}]))
    assert info.value.key == "datasets.1.ratio"
    assert "'lots'" in str(info.value) and "float or null" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "key", "fragment"),
    [
        ({"max_iters": 100}, "iters_per_inner_epoch", "needs both max_iters and iters_per_inner_epoch"),
        ({"max_iters": 10, "iters_per_inner_epoch": 20}, "iters_per_inner_epoch", "more than max_iters"),
        ({"lr_sched": "linear_warmup_step_lr"}, "lr_decay_rate", "needs lr_decay_rate"),
        ({"batch_size_train": 0}, "batch_size_train", "must be >= 1"),
        ({"report_to": ["mlflow"]}, "report_to", "allowed: tensorboard, wandb, all"),
        ({"push_to_hub": "no-slash"}, "push_to_hub", "user/name"),
        (
            {"datasets": [{"name": "a", "ratio": 1}, {"name": "b"}]},
            "datasets",
            "set ratio on every training dataset",
        ),
        ({"model": {}}, "model", "give name_or_path"),
        ({"datasets": [{"data_dir": "x"}]}, "datasets.0.name", "required key missing"),
    ],
)
def test_inconsistent_values_are_refused(extra: dict, key: str, fragment: str) -> None:
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_dict(_minimal(**extra))
    assert info.value.key == key
    assert fragment in str(info.value)


def test_missing_required_key() -> None:
    data = _minimal()
    del data["task"]
    with pytest.raises(ArgumentsError, match=r"^task: required key missing \(str\)"):
        TrainingArguments.from_dict(data)


def test_cli_overrides_parse_dotted_keys_flags_and_yaml_values() -> None:
    tokens = [
        "--max_epoch", "3",
        "--init-lr=2e-5",
        "--model.name_or_path", "out/ckpt",
        "--datasets.0.data_dir", "/data/coco",
        "--task_options.prompt", "a picture of ",
        "--report_to", "[tensorboard]",
        "--resume",
        "--push-to-hub", "me/model",
    ]  # fmt: skip
    parsed = parse_overrides(tokens)
    assert parsed == {
        "max_epoch": 3,
        "init_lr": "2e-5",
        "model.name_or_path": "out/ckpt",
        "datasets.0.data_dir": "/data/coco",
        "task_options.prompt": "a picture of ",
        "report_to": ["tensorboard"],
        "resume": True,
        "push_to_hub": "me/model",
    }
    args = TrainingArguments.from_recipe(_minimal(), tokens)
    assert args.max_epoch == 3 and args.init_lr == 2e-5 and args.resume is True
    assert args.model.name_or_path == "out/ckpt" and args.datasets[0].data_dir == "/data/coco"
    assert args.task_options == {"prompt": "a picture of "}
    assert args.push_to_hub == "me/model"


def test_cli_overrides_get_the_same_validation() -> None:
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_recipe(_minimal(), ["--max_epochs", "3"])
    assert info.value.key == "max_epochs" and "valid keys:" in str(info.value)
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_recipe(_minimal(), ["--max_epoch", "3.5"])
    assert info.value.key == "max_epoch" and "3.5" in str(info.value)
    with pytest.raises(ArgumentsError) as info:
        TrainingArguments.from_recipe(_minimal(), ["--datasets.2.split", "val"])
    assert "index 2 is out of range: datasets has 1 entries" in str(info.value)
    with pytest.raises(ArgumentsError, match="expected --key value"):
        parse_overrides(["max_epoch", "3"])


def test_set_dotted_creates_nested_mappings() -> None:
    data: dict[str, Any] = {"datasets": [{"name": "a"}]}
    set_dotted(data, "model.config.hidden_size", 32)
    set_dotted(data, "datasets.0.options.skip_invalid", True)
    assert data == {
        "datasets": [{"name": "a", "options": {"skip_invalid": True}}],
        "model": {"config": {"hidden_size": 32}},
    }


def test_yaml_round_trip_and_python_construction_validate_alike() -> None:
    args = TrainingArguments.from_dict(
        _minimal(init_lr="3e-4", eval_datasets=[{"name": "coco_caption", "split": "validation"}])
    )
    again = TrainingArguments.from_recipe(__import__("yaml").safe_load(args.to_yaml()))
    assert again == args
    with pytest.raises(ArgumentsError, match="max_epoch: got 'x'"):
        TrainingArguments(output_dir="o", task="t", model=ModelArguments(name_or_path="m"), max_epoch="x")  # type: ignore[arg-type]
    with pytest.raises(ArgumentsError, match="weight_decay: must be >= 0"):
        args.replace(weight_decay=-1.0)


def test_every_field_is_documented_and_listed() -> None:
    text = describe_keys()
    for cls, prefix in ((TrainingArguments, ""), (ModelArguments, "model."), (DatasetArguments, "datasets.<i>.")):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
            assert f"{prefix}{f.name} (" in text, f"{prefix}{f.name} not listed"
            assert hints[f.name] is not None


def test_recipe_file_with_bad_value_fails_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("output_dir: o\ntask: t\nmodel: {name_or_path: m}\nmax_epoch: many\n")
    with pytest.raises(ArgumentsError, match="max_epoch: got 'many' .str., expected int"):
        TrainingArguments.from_recipe(str(path))


def test_overrides_leave_the_callers_recipe_alone() -> None:
    recipe = _minimal()
    TrainingArguments.from_recipe(recipe, ["--datasets.0.split", "validation", "--model.config.a", "1"])
    assert recipe == _minimal()
