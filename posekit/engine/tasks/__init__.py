"""The one task table: every pose system the engine trains, tests, runs and exports, by name.

A config selects its task through its zoo entry (`ModelEntry.task`) or its official MODEL.NAME
(`OFFICIAL_TASKS`); `task_for(cfg)` returns it. The `Task` interface is in posekit.engine.tasks.base.
"""

from __future__ import annotations

from typing import Any

from posekit.engine.tasks.base import OFFICIAL_TASKS, Task
from posekit.errors import ConfigError

_TASKS: dict[str, Task] = {}
_BUILTIN = False  # the shipped tasks join the table on first use (importing them pulls in data, losses, models)


def _shipped() -> None:
    """Put the shipped tasks in the table: one line per pose system."""
    global _BUILTIN
    if _BUILTIN:
        return
    from posekit.engine.tasks.body3d import Body3DTask
    from posekit.engine.tasks.bottomup import BottomUpTask
    from posekit.engine.tasks.prtr import PRTRTask
    from posekit.engine.tasks.topdown import TopDownTask

    for task in (TopDownTask(), PRTRTask(), BottomUpTask(), Body3DTask()):
        _TASKS.setdefault(task.name, task)
    _BUILTIN = True


def register_task(task: Task) -> Task:
    """Make a task available to `task_for` under `task.name`."""
    if not task.name:
        raise ConfigError(f"task {type(task).__name__} has no name")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task `name`."""
    _shipped()
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known: {', '.join(sorted(_TASKS))}") from None


def task_name(cfg: Any) -> str:
    """The task a config belongs to: MODEL.ZOO's entry, else the official MODEL.NAME."""
    m = cfg.MODEL
    if m.ZOO:
        from posekit import models

        return getattr(models.entry(m.ZOO), "task", "topdown") or "topdown"
    return OFFICIAL_TASKS.get(m.NAME, "topdown")


def task_for(cfg: Any) -> Task:
    """The Task object of a config."""
    return get_task(task_name(cfg))
