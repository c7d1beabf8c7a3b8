"""``vl-hub train`` and ``vl-hub evaluate``.

    vl-hub train RECIPE_OR_YAML [--key value ...] [--dry-run]
    vl-hub evaluate RECIPE_OR_YAML --checkpoint DIR [--key value ...]
    vl-hub train --list-recipes | --help-keys

``RECIPE_OR_YAML`` is a shipped recipe name (``blip/captioning_coco``) or a YAML file; every
``--key value`` overrides a recipe key (dotted for nested ones: ``--model.name_or_path out/x``,
``--datasets.0.data_dir /data/coco``; a bare ``--resume`` means true). The same command runs on
several processes with ``accelerate launch -m vl_hub.cli train RECIPE ...``.

A user error (unknown key, wrong type, missing dataset files, unknown task) prints one message and
exits with status 2 before anything trains.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

#: exit status for errors caused by the command's input.
USER_ERROR = 2


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Adds ``train`` and ``evaluate`` to the ``vl-hub`` sub-parsers ``sub``."""
    for name, help_text in (
        ("train", "train a model from a recipe (Accelerate; resumable)"),
        ("evaluate", "evaluate a checkpoint on a recipe's validation/test datasets"),
    ):
        p = sub.add_parser(
            name,
            help=help_text,
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("recipe", nargs="?", help="shipped recipe name or YAML file")
        p.add_argument("--list-recipes", action="store_true", help="list the shipped recipes and exit")
        p.add_argument("--help-keys", action="store_true", help="list every recipe key with its type and exit")
        p.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value overrides of recipe keys")
        p.set_defaults(func=run_train if name == "train" else run_evaluate)


def _is_main_process() -> bool:
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) in ("0", "")


def _error(command: str, err: BaseException) -> int:
    message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if _is_main_process():
        print(f"vl-hub {command}: error: {message}", file=sys.stderr)
    return USER_ERROR


def _pop_flag(tokens: list[str], flag: str, takes_value: bool) -> Any:
    """Removes ``flag`` (and its value) from ``tokens``; returns the value, True, or None."""
    for i, token in enumerate(tokens):
        if token == flag or (takes_value and token.startswith(flag + "=")):
            if not takes_value:
                del tokens[i]
                return True
            if "=" in token:
                del tokens[i]
                return token.split("=", 1)[1]
            if i + 1 >= len(tokens):
                raise ValueError(f"{flag} needs a value")
            value = tokens[i + 1]
            del tokens[i : i + 2]
            return value
    return None


def _listing(args: argparse.Namespace) -> int | None:
    if args.list_recipes:
        from vl_hub.recipes import list_recipes

        print("\n".join(list_recipes()) or "(no recipes shipped)")
        return 0
    if args.help_keys:
        from vl_hub.training.arguments import describe_keys

        print(describe_keys())
        return 0
    return None


def _user_errors() -> tuple[type[BaseException], ...]:
    from vl_hub.recipes import RecipeError
    from vl_hub.training.typed_config import ArgumentsError

    return (ArgumentsError, RecipeError, FileNotFoundError, NotADirectoryError, KeyError, ValueError, TypeError)


def _setup(args: argparse.Namespace, command: str, build: Callable[[Any, list[str]], Any]) -> Any:
    from vl_hub.training.arguments import TrainingArguments

    tokens = list(args.overrides or [])
    if tokens and tokens[0] == "--":
        tokens = tokens[1:]
    extra = {
        "dry_run": _pop_flag(tokens, "--dry-run", takes_value=False),
        "checkpoint": _pop_flag(tokens, "--checkpoint", takes_value=True),
    }
    if not args.recipe:
        raise ValueError(f"give a recipe: vl-hub {command} RECIPE_OR_YAML [--key value ...] (see --list-recipes)")
    run_args = TrainingArguments.from_recipe(args.recipe, tokens)
    return build(run_args, extra)


def run_train(args: argparse.Namespace) -> int:
    """``vl-hub train``: validate the recipe and the datasets, then train; prints the final metrics."""
    listed = _listing(args)
    if listed is not None:
        return listed
    from vl_hub.training.trainer import Trainer
    from vl_hub.training.typed_config import ArgumentsError

    def build(run_args: Any, extra: dict[str, Any]) -> Any:
        if extra["checkpoint"] is not None:
            raise ValueError("--checkpoint is for `vl-hub evaluate`; to continue training use --resume")
        trainer = Trainer.from_arguments(run_args, training=True)
        return trainer, run_args, extra

    try:
        trainer, run_args, extra = _setup(args, "train", build)
    except _user_errors() as err:
        return _error("train", err)
    if extra["dry_run"]:
        if _is_main_process():
            print(run_args.to_yaml())
            print("dry run: recipe and datasets are valid; nothing was trained")
        trainer.accelerator.end_training()
        return 0
    try:
        result = trainer.train()
    except ArgumentsError as err:  # output_dir conflicts are found when training starts
        return _error("train", err)
    if trainer.accelerator.is_main_process:
        print(
            json.dumps(
                {"output_dir": str(result.output_dir), "global_step": result.global_step, "metrics": result.metrics},
                indent=2,
            )
        )
        if result.hub_url:
            print(f"pushed to {result.hub_url}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``vl-hub evaluate``: evaluate ``--checkpoint`` on the recipe's eval/test datasets; prints JSON."""
    listed = _listing(args)
    if listed is not None:
        return listed
    from vl_hub.training.trainer import Trainer

    def build(run_args: Any, extra: dict[str, Any]) -> Any:
        if extra["checkpoint"] is None:
            raise ValueError("vl-hub evaluate needs --checkpoint DIR (a trained output_dir or checkpoints/step_<n>)")
        return Trainer.from_arguments(run_args, training=False, checkpoint=extra["checkpoint"])

    from vl_hub.training.typed_config import ArgumentsError

    try:
        trainer = _setup(args, "evaluate", build)
    except _user_errors() as err:
        return _error("evaluate", err)
    try:
        results = trainer.evaluate_all()
    except ArgumentsError as err:
        return _error("evaluate", err)
    if trainer.accelerator.is_main_process:
        print(json.dumps(results, indent=2))
    return 0
