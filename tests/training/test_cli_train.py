"""``vl-hub train`` / ``vl-hub evaluate``: user errors exit 2 with one clear message before anything
trains; a run and an evaluation through the command line; the other sub-commands still work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.toy import toy_recipe, write_recipe
from vl_hub.cli.main import main


@pytest.fixture
def recipe(tmp_path: Path, toy_dirs: tuple) -> Path:
    data_dir, cache = toy_dirs
    return write_recipe(
        tmp_path / "toy.yaml", toy_recipe(tmp_path, data_dir=data_dir, dataset_cache_dir=str(cache), max_epoch=1)
    )


def test_list_and_datasets_commands_still_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "tasks:" in out and "datasets:" in out
    assert main(["datasets", "list"]) == 0
    assert "coco_caption" in capsys.readouterr().out


def test_help_keys_and_recipe_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--help-keys"]) == 0
    out = capsys.readouterr().out
    assert "init_lr (float): Peak learning rate" in out and "datasets.<i>.ratio (float or null)" in out
    assert main(["train", "--list-recipes"]) == 0
    assert "blip/captioning_coco" in capsys.readouterr().out.split()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--max_epoch", "abc"], "vl-hub train: error: max_epoch: got 'abc' (str), expected int"),
        (
            ["--max_epochs", "2"],
            "vl-hub train: error: max_epochs: unknown key 'max_epochs'; valid keys: output_dir (str)",
        ),
        (
            ["--model.config.hidden_size", "16", "--mixed_precision", "fp8"],
            "mixed_precision: got 'fp8', expected one of 'no', 'fp16', 'bf16'",
        ),
        (["--datasets.0.data_dir", "/nowhere/toy"], "toy_data: expected /nowhere/toy but it does not exist"),
        (["--task", "nope"], "unknown task 'nope'"),
        (["--checkpoint", "x"], "--checkpoint is for `vl-hub evaluate`"),
    ],
)
def test_user_errors_exit_2_before_training(
    recipe: Path, overrides: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(recipe), *overrides]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") <= 12 and "Traceback" not in err
    assert not (recipe.parent / "out").exists()


def test_missing_data_error_prints_download_instructions(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(recipe), "--eval_datasets.0.data_dir", "/nowhere/toy"]) == 2
    assert "write_toy_data(folder)" in capsys.readouterr().err


def test_unknown_recipe_lists_shipped_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "no/such_recipe"]) == 2
    assert "shipped recipes: blip/captioning_coco" in capsys.readouterr().err
    assert main(["evaluate", "blip/captioning_coco"]) == 2
    assert "needs --checkpoint DIR" in capsys.readouterr().err


def test_dry_run_validates_without_training(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(recipe), "--dry-run", "--max_epoch", "3"]) == 0
    out = capsys.readouterr().out
    assert "max_epoch: 3" in out and "nothing was trained" in out
    assert not (recipe.parent / "out").exists()


def test_train_then_evaluate_from_the_command_line(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(recipe), "--seed", "3", "--run-name", "cli run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    out = recipe.parent / "out"
    assert printed["output_dir"] == str(out) and printed["global_step"] == 12
    assert "# cli run" in (out / "README.md").read_text()
    assert main(["evaluate", str(recipe), "--checkpoint", str(out), "--output_dir", str(recipe.parent / "eval")]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated == printed["metrics"]
    assert json.loads((recipe.parent / "eval" / "eval_results.json").read_text()) == evaluated
