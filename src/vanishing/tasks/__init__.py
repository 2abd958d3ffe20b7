"""Long-term-dependency tasks, one module each, and a registry by name.

``get_task(name)`` builds one; ``task_names()`` lists them.
"""

from . import adding, copying, digits, language, latch, temporal_order  # noqa: F401  (register)
from .base import TASKS, ClassificationTask, Task, get_task, register, task_names

__all__ = ["TASKS", "ClassificationTask", "Task", "get_task", "register", "task_names"]
