"""Recipe loader: shipped recipes validate, ``extends`` merges, bad recipes fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from vl_hub.recipes import RECIPES_DIR, RecipeError, list_recipes, load_recipe, recipe_path, validate_recipe
from vl_hub.training.typed_config import ArgumentsError


def test_shipped_recipes_are_listed_and_valid() -> None:
    names = list_recipes()
    assert "blip/captioning_coco" in names and "blip/retrieval_coco" in names
    assert not any(Path(n).name.startswith("_") for n in names)  # bases are not recipes
    assert "blip/_finetune" in list_recipes(include_bases=True)
    for name in names:
        args = validate_recipe(name)
        assert args.recipe == name
        assert args.datasets and args.eval_datasets


def test_captioning_recipe_matches_lavis_caption_coco_ft() -> None:
    args = validate_recipe("blip/captioning_coco")
    # lavis/projects/blip/train/caption_coco_ft.yaml run section
    assert (args.lr_sched, args.init_lr, args.min_lr, args.weight_decay) == ("linear_warmup_cosine_lr", 1e-5, 0.0, 0.05)
    assert (args.max_epoch, args.batch_size_train, args.batch_size_eval, args.num_workers, args.seed) == (
        5,
        32,
        64,
        4,
        42,
    )
    assert args.task_options == {"prompt": "a picture of ", "max_len": 20, "min_len": 5, "num_beams": 3}


def test_extends_merges_mappings_and_replaces_the_rest(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "task: t\nmodel: {name_or_path: m, config: {a: 1, b: 2}}\nmax_epoch: 3\ndatasets: [{name: x}]\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\noutput_dir: o\nmodel: {config: {b: 20}}\ndatasets: [{name: y}]\n"
    )
    data = load_recipe(tmp_path / "child.yaml")
    assert data["model"] == {"name_or_path": "m", "config": {"a": 1, "b": 20}}
    assert data["datasets"] == [{"name": "y"}] and data["max_epoch"] == 3
    assert data["recipe"] == str((tmp_path / "child.yaml").resolve())
    assert "extends" not in data


def test_extends_cycle_and_unknown_recipe(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(RecipeError, match="extends itself"):
        load_recipe(tmp_path / "a.yaml")
    with pytest.raises(RecipeError) as info:
        recipe_path("blip/captioning_cocoo")
    assert "shipped recipes: " in str(info.value) and "blip/captioning_coco" in str(info.value)


def test_recipe_must_be_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(tmp_path / "broken.yaml")


def test_recipe_with_unknown_key_lists_valid_keys(tmp_path: Path) -> None:
    bad = (RECIPES_DIR / "blip" / "captioning_coco.yaml").read_text() + "\nlearning_rate: 0.1\n"
    (tmp_path / "bad.yaml").write_text(bad.replace("extends: blip/_finetune", "extends: blip/_finetune"))
    with pytest.raises(ArgumentsError) as info:
        validate_recipe(tmp_path / "bad.yaml")
    assert info.value.key == "learning_rate" and "valid keys:" in str(info.value)
