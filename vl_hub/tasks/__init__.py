"""Tasks: each maps a batch to named losses and runs its own evaluation (see ``DESIGN.md``)."""

from __future__ import annotations

from vl_hub.registry import Registry

#: task name -> task class; a task module registers itself when it lands.
TASKS: Registry[type] = Registry("task")


def list_tasks() -> list[str]:
    """Names of the registered tasks."""
    return TASKS.names()
