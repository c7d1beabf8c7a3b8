"""Training recipes: YAML files of :class:`vl_hub.training.TrainingArguments` keys, shipped in the wheel.

A recipe lives at ``vl_hub/recipes/<family>/<task>_<dataset>.yaml`` and is named by that path without
the suffix (``blip/captioning_coco``). Format::

    # optional: start from other recipes (names or paths relative to this file), merged in order
    extends: blip/_base
    description: BLIP base fine-tuned for COCO captioning (LAVIS caption_coco_ft.yaml)
    task: captioning
    task_options: {num_beams: 3, max_len: 20, min_len: 5}
    model: {name_or_path: ..., processor: ...}
    datasets:
      - {name: coco_caption, data_dir: /data/coco, split: train}
    eval_datasets:
      - {name: coco_caption, data_dir: /data/coco, split: validation}
    output_dir: outputs/blip_captioning_coco
    lr_sched: linear_warmup_cosine_lr
    init_lr: 1e-5
    ...

Every key except ``extends`` is a ``TrainingArguments`` field (``vl-hub train --help-keys`` lists
them); the loader merges ``extends`` (mappings recursively, everything else replaced), records the
recipe name in ``recipe``, and :func:`validate_recipe` builds the typed arguments, so an unknown key
or a wrong type fails before anything runs. Names starting with ``_`` are bases, not listed as recipes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: folder of the shipped recipes.
RECIPES_DIR = Path(__file__).resolve().parent

#: recipe key that names base recipes (not a TrainingArguments field).
EXTENDS_KEY = "extends"


class RecipeError(ValueError):
    """A recipe cannot be found or read; the message says which and lists the shipped ones."""


def list_recipes(include_bases: bool = False) -> list[str]:
    """Names of the shipped recipes (``blip/captioning_coco``), sorted."""
    names = []
    for path in sorted(RECIPES_DIR.rglob("*.yaml")):
        name = path.relative_to(RECIPES_DIR).with_suffix("").as_posix()
        if include_bases or not Path(name).name.startswith("_"):
            names.append(name)
    return names


def recipe_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """The YAML file of a recipe: an existing path (absolute, relative to ``relative_to`` or to the
    working directory), or a shipped recipe name.

    Raises:
        RecipeError: neither exists; lists the shipped recipes.
    """
    text = str(name_or_path)
    candidates = [Path(text).expanduser()]
    if relative_to is not None:
        candidates.insert(0, relative_to / text)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    stem = text.removesuffix(".yaml")
    shipped = RECIPES_DIR / f"{stem}.yaml"
    if shipped.is_file():
        return shipped
    raise RecipeError(
        f"no recipe {text!r}: not a YAML file and not a shipped recipe; shipped recipes: "
        f"{', '.join(list_recipes()) or '(none)'}"
    )


def recipe_name(path: Path) -> str:
    """``blip/captioning_coco`` for a shipped recipe file, else the file path itself."""
    try:
        return path.resolve().relative_to(RECIPES_DIR).with_suffix("").as_posix()
    except ValueError:
        return str(path)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise RecipeError(f"recipe {path} must be a mapping of keys to values, got {type(data).__name__}")
    return dict(data)


def load_recipe(name_or_path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe as plain data, its ``extends`` merged in and ``recipe`` set to its name.

    The data is not validated here; :func:`validate_recipe` (or ``TrainingArguments.from_recipe``) does.
    """
    from vl_hub.training.typed_config import deep_merge

    path = recipe_path(name_or_path, relative_to=_seen[-1].parent if _seen else None)
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise RecipeError(f"recipe extends itself: {chain}")
    data = _read(path)
    bases = data.pop(EXTENDS_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise RecipeError(f"{path}: extends must be a recipe name or a list of them, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        base_data = load_recipe(base, (*_seen, path))
        base_data.pop("recipe", None)
        merged = deep_merge(merged, base_data)
    merged = deep_merge(merged, data)
    merged.setdefault("recipe", recipe_name(path))
    return merged


def validate_recipe(name_or_path: str | Path, overrides: Any = None) -> Any:
    """The validated :class:`~vl_hub.training.TrainingArguments` of a recipe (+ overrides)."""
    from vl_hub.training.arguments import TrainingArguments

    return TrainingArguments.from_recipe(name_or_path, overrides)


__all__ = ["RECIPES_DIR", "RecipeError", "list_recipes", "load_recipe", "recipe_path", "validate_recipe"]
