"""Tasks: each maps a batch to named losses and runs its own evaluation (see ``vl_hub/tasks/base.py``).

Every module in this package (other than ``base`` and private ones) defines one task and registers
it in :data:`TASKS` with :func:`register_task`; :func:`get_task` / :func:`list_tasks` import them on
first use.
"""

from __future__ import annotations

import importlib
import pkgutil

from vl_hub.registry import Registry

#: task name -> task class
TASKS: Registry[type] = Registry("task")
_loaded = False


def register_task(cls: type) -> type:
    """Class decorator: registers a :class:`vl_hub.tasks.base.Task` subclass under ``cls.name``."""
    TASKS.register(cls.name, cls, exist_ok=True)
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def list_tasks() -> list[str]:
    """Names of the registered tasks."""
    _load_all()
    return TASKS.names()


def get_task(name: str) -> type:
    """The task class registered as ``name`` (an unknown name lists the valid ones)."""
    _load_all()
    return TASKS.get(name)
