"""What every long-term-dependency task provides, and the registry of tasks by name.

A task is pure: ``sample(length, batch, generator) -> (x, y)`` draws only from the local
``torch.Generator`` it is given (never the global seed), so the same generator state
gives the same batch. ``length`` is the task's own measure of distance in time (for
``language`` it is the gap between the country and the question) and ``sequence_length``
turns it into the number of steps the model reads.

Each task states its chance-level loss (the loss of the best predictor that ignores the
input's content), its ``solved`` criterion, and the paper it follows.
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from .. import _checks

__all__ = ["Task", "ClassificationTask", "TASKS", "HELDOUT_PARTS", "register", "get_task",
           "task_names"]

HELDOUT_PARTS = ("validation", "test")


#: The longest length any task takes (see :attr:`Task.max_length`).
MAX_LENGTH = 100_000


class Task(abc.ABC):
    """Base class. Subclasses set the class attributes and implement the abstract methods.

    Attributes:
        name: registry name.  source: the paper the task follows.
        tokens: True if ``x`` is (N, L) integer ids, False if (N, L, input_size) floats.
        input_size: features per step, or the vocabulary size for token input.
        output_size: outputs of the readout (classes, or regression targets).
        readout: ``last`` (one answer at the end) or ``all`` (an answer at every step).
        min_length: the smallest ``length`` the task's layout allows.
        max_length: the largest ``length`` taken (:data:`MAX_LENGTH`): every step of a
            batch is held in memory, and a length past it would exhaust any machine's.
        metric: the headline metric reported in tables (e.g. ``accuracy``).
        default_length: a typical length.

    :attr:`criterion` is the ``solved`` rule in words. Subclasses build it from the same
    class attributes their ``solved`` compares with (``solved_accuracy``, ``solved_mse``),
    so the words cannot drift from the check.
    """

    name: str = ""
    source: str = ""
    tokens: bool = False
    input_size: int = 1
    output_size: int = 1
    readout: str = "last"
    min_length: int = 1
    max_length: int = MAX_LENGTH
    metric: str = "loss"
    default_length: int = 20

    def __init_subclass__(cls, **kwargs):
        """Every subclass's ``loss`` and ``metrics`` run :meth:`check_output` first and its
        ``chance_loss`` checks the length first: one validator for every task."""
        super().__init_subclass__(**kwargs)
        for name, check in (("loss", "check_output"), ("metrics", "check_output"),
                            ("chance_loss", "_check_length")):
            if name in cls.__dict__ and not getattr(cls.__dict__[name], "_checked", False):
                setattr(cls, name, _checked(cls.__dict__[name], check))

    @property
    def criterion(self) -> str:
        """The ``solved`` rule in words, e.g. ``accuracy >= 0.99`` (empty: not stated)."""
        return ""

    def check(self, length: int, batch: int, generator: torch.Generator) -> None:
        """Validate the arguments of :meth:`sample` (one-line errors)."""
        self._check_length(length)
        _checks.positive_int("batch", batch)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")

    def check_output(self, output: Tensor, y: Tensor) -> None:
        """The one check of what :meth:`loss` and :meth:`metrics` are given: a float
        ``output`` of shape ``(*y.shape, output_size)`` for class labels (integer ``y``,
        (N,) for readout ``last``, (N, T) for ``all``, each in 0 .. output_size - 1), or
        of ``y``'s own shape for real targets; else a one-line error naming the shape."""
        for what, value in (("output", output), ("y", y)):
            if not isinstance(value, Tensor):
                raise TypeError(f"{self.name}: {what} must be a torch.Tensor, "
                                f"got {type(value).__name__}")
        if not output.is_floating_point():
            raise TypeError(f"{self.name}: output must be a floating-point tensor, "
                            f"got {output.dtype}")
        if y.is_floating_point():
            if output.shape != y.shape:
                raise ValueError(f"{self.name}: output must have the target's shape "
                                 f"{tuple(y.shape)}, got {tuple(output.shape)}")
            return
        labels = "(N,)" if self.readout == "last" else "(N, T)"
        if y.dim() != (1 if self.readout == "last" else 2):
            raise ValueError(f"{self.name}: y must be class labels of shape {labels} (readout "
                             f"{self.readout!r}), got shape {tuple(y.shape)}")
        expected = (*y.shape, self.output_size)
        if output.shape != expected:
            raise ValueError(f"{self.name}: output must have shape {expected} ({labels} x "
                             f"{self.output_size} classes, readout {self.readout!r}), "
                             f"got {tuple(output.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.output_size):
            raise ValueError(f"{self.name}: class labels must be in 0..{self.output_size - 1}, "
                             f"got {int(y.min())}..{int(y.max())}")

    def _check_length(self, length: int) -> None:
        _checks.nonneg_int("length", length)
        if length < self.min_length:
            raise ValueError(
                f"{self.name}: length must be >= {self.min_length} for this task's layout, "
                f"got {length}"
            )
        if length > self.max_length:
            raise ValueError(
                f"{self.name}: length must be at most {self.max_length:,} (every step is "
                f"held in memory), got {length:,}"
            )

    def sequence_length(self, length: int) -> int:
        """Number of time steps the model reads for a given ``length``."""
        return length

    @abc.abstractmethod
    def sample(self, length: int, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw a batch ``(x, y)`` using only ``generator``."""

    def heldout(self, length: int, size: int, generator: torch.Generator,
                part: str = "validation") -> tuple[Tensor, Tensor]:
        """A held-out set: ``part="validation"`` (what early stopping looks at) or ``"test"``
        (what is reported; nothing else looks at it).

        Generated tasks draw ``size`` fresh sequences from ``generator`` for either part
        (the trainer passes a different generator for each, both apart from its training
        stream). Tasks on a fixed dataset override this to return fixed parts of it that
        the model never trains on (``digits``: 144 validation and 360 test images).
        """
        _checks.one_of("held-out part", part, HELDOUT_PARTS)
        return self.sample(length, size, generator)

    @abc.abstractmethod
    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        """Scalar training loss of the model's ``output`` against ``y``."""

    @abc.abstractmethod
    def metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        """Evaluation metrics (always including ``loss``)."""

    @abc.abstractmethod
    def chance_loss(self, length: int) -> float:
        """Loss of the best memoryless predictor, by formula."""

    @abc.abstractmethod
    def solved(self, metrics: dict[str, float]) -> bool:
        """The task's success criterion on held-out metrics."""

    @abc.abstractmethod
    def decode(self, x: Tensor, y: Tensor, index: int = 0) -> str:
        """Sample ``index`` of a batch as readable text."""

    def describe(self) -> str:
        """One line: what the task is and when it counts as solved."""
        return (self.__doc__ or self.name).strip().splitlines()[0]


def _checked(method: Callable, check: str) -> Callable:
    """``method`` with ``self.<check>(*args)`` run before it."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        getattr(self, check)(*args, **kwargs)
        return method(self, *args, **kwargs)

    wrapper._checked = True  # type: ignore[attr-defined]
    return wrapper


class ClassificationTask(Task):
    """One class per sequence, read at the last step; cross-entropy loss, accuracy metric.

    Solved when held-out accuracy >= ``solved_accuracy``.
    """

    metric = "accuracy"
    solved_accuracy: float = 0.99

    def loss(self, output: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(output, y)

    def metrics(self, output: Tensor, y: Tensor) -> dict[str, float]:
        return {
            "loss": F.cross_entropy(output, y).detach().item(),
            "accuracy": (output.argmax(-1) == y).float().mean().item(),
        }

    def solved(self, metrics: dict[str, float]) -> bool:
        return metrics.get("accuracy", 0.0) >= self.solved_accuracy

    @property
    def criterion(self) -> str:
        return f"accuracy >= {self.solved_accuracy:g}"


TASKS: dict[str, Callable[..., Task]] = {}


def register(name: str) -> Callable:
    """Class decorator: make a task available by ``name``."""

    def wrap(cls):
        cls.name = name
        TASKS[name] = cls
        return cls

    return wrap


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str, **options) -> Task:
    """Build a task by name; ``options`` go to its constructor (e.g. ``distractors=True``)."""
    cls = TASKS[_checks.one_of("task", name, task_names())]
    known = [p.name for p in inspect.signature(cls).parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = f"one of {', '.join(known)}" if known else "none (it takes no options)"
        raise TypeError(f"task {name!r}: unknown option(s) {', '.join(unknown)}; "
                         f"expected {takes}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise TypeError(f"task {name!r}: {exc}") from None
