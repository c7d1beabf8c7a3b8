"""Task class, model and processor of a run, from :class:`~vl_hub.training.TrainingArguments`.

The trainer never branches on the family: the task class declares which head serves it in each
family (``Task.families``), and the head class is looked up by that name among the registered vl_hub
heads (or imported from ``model.class_path``).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vl_hub.training.arguments import ArgumentsError, ModelArguments

logger = logging.getLogger(__name__)


def import_object(path: str, what: str = "object") -> Any:
    """``"package.module:Name"`` -> the object (``Name`` may be dotted).

    Raises:
        ArgumentsError: malformed path, module not importable, or no such attribute.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ArgumentsError("", f"{what} {path!r} is not an import path; expected 'package.module:Name'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ArgumentsError("", f"cannot import module {module_name!r} for {what} {path!r}: {err}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ArgumentsError("", f"module {module_name!r} has no {attr!r} ({what} {path!r})")
        obj = getattr(obj, part)
    return obj


def import_task_modules() -> None:
    """Imports every task module of ``vl_hub.tasks`` (one per task; each registers itself in ``TASKS``)."""
    import pkgutil

    import vl_hub.tasks as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{package.__name__}.{info.name}")


def resolve_task_class(name: str) -> type:
    """The task class named ``name`` in ``vl_hub.tasks.TASKS``, or imported from ``"module:Class"``.

    Raises:
        ArgumentsError: unknown name (lists the registered tasks) or not a ``Task`` subclass.
    """
    from vl_hub.tasks import TASKS
    from vl_hub.tasks.base import Task

    if ":" in name:
        cls = import_object(name, "task")
    else:
        if name not in TASKS:
            import_task_modules()
        try:
            cls = TASKS.get(name)
        except KeyError as err:
            raise ArgumentsError("task", f"{err.args[0]}; or give 'package.module:Class'") from None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ArgumentsError("task", f"{name!r} is {cls!r}, not a vl_hub.tasks.base.Task subclass")
    return cls


def _family_of_checkpoint(name_or_path: str) -> str:
    from transformers import AutoConfig

    import vl_hub  # noqa: F401  (registers the families with AutoConfig)

    config = AutoConfig.from_pretrained(name_or_path)
    model_type = getattr(config, "model_type", "") or ""
    if not model_type.startswith("vlhub_"):
        raise ArgumentsError(
            "model.name_or_path",
            f"{name_or_path} holds a {model_type!r} model, not a vl_hub one; convert it first "
            "(vl-hub convert --from transformers|lavis|openai ...)",
        )
    return model_type[len("vlhub_") :]


def resolve_head_class(margs: ModelArguments, task_cls: type) -> type:
    """The head class to build: ``class_path``, else ``task_cls.families[family]``.

    Raises:
        ArgumentsError: the family does not serve the task (lists those that do), or the head is not
            registered.
    """
    if margs.class_path:
        return import_object(margs.class_path, "model.class_path")
    family = margs.family or _family_of_checkpoint(str(margs.name_or_path))
    families = getattr(task_cls, "families", {})
    if family not in families:
        raise ArgumentsError(
            "model.family",
            f"task {task_cls.name!r} is not served by the {family!r} family; families serving it: "
            f"{', '.join(sorted(families)) or '(none)'}",
        )
    from vl_hub.auto import AutoVlHubModel

    try:
        return AutoVlHubModel.head_class(SimpleNamespace(architectures=[families[family]]))
    except ValueError as err:
        raise ArgumentsError("model", str(err)) from None


def build_model(margs: ModelArguments, task_cls: type) -> Any:
    """The model described by ``margs``: ``from_pretrained(name_or_path)`` with ``config`` overrides,
    or a fresh ``head(config_class(**config))`` when there is no checkpoint."""
    head = resolve_head_class(margs, task_cls)
    kwargs: dict[str, Any] = {}
    if margs.attn_implementation is not None:
        kwargs["attn_implementation"] = margs.attn_implementation
    if margs.name_or_path:
        config = head.config_class.from_pretrained(margs.name_or_path, **margs.config)
        return head.from_pretrained(margs.name_or_path, config=config, **kwargs)
    try:
        config = head.config_class(**margs.config)
    except (TypeError, ValueError) as err:
        raise ArgumentsError("model.config", f"invalid config for {head.config_class.__name__}: {err}") from None
    model = head(config)
    if margs.attn_implementation is not None and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(margs.attn_implementation)
    return model


def load_processor(margs: ModelArguments) -> Any | None:
    """``AutoProcessor.from_pretrained(processor or name_or_path)``; ``None`` when no folder names one.

    An explicit ``processor`` must load; an implicit one (the checkpoint folder) is optional.
    """
    from transformers import AutoProcessor

    import vl_hub  # noqa: F401

    if margs.processor:
        return AutoProcessor.from_pretrained(margs.processor)
    if margs.name_or_path is None:
        return None
    path = Path(margs.name_or_path)
    if path.is_dir() and not any(
        (path / f).is_file() for f in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
    ):
        return None
    try:
        return AutoProcessor.from_pretrained(margs.name_or_path)
    except (OSError, ValueError, KeyError) as err:
        logger.warning("no processor loaded from %s (%s); the task runs without one", margs.name_or_path, err)
        return None
