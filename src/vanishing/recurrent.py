"""The one walker: which modules of a model are recurrent steps, and their weights.

The probe (:func:`vanishing.probe.record`), the diagnosis (weights, remedies), the
monitor (the batch layout) and :func:`vanishing.init.initialize` all ask this module,
so a model is seen the same way everywhere. Four kinds of step are found:

=============  ================================================================
``fused``      a stock ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (it runs as
               weight-sharing cells while recorded: see :mod:`vanishing.probe`)
``torch_cell`` a stock ``torch.nn.RNNCell`` / ``LSTMCell`` / ``GRUCell``: each call
               is one step
``cell``       one of this library's :class:`~vanishing.cells.Cell` s: each
               ``recur`` (what :func:`~vanishing.unroll.unroll` and
               ``Cell.forward`` call) is one step
``step``       any module the user names (``steps=[model.cell]``), with a
               selector saying which part of its output is the hidden state
=============  ================================================================

Modules inside a named step are part of that step, not steps of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import Tensor, nn

from .cells import Cell, twin

__all__ = ["Step", "RecurrentLayer", "Selector", "find_steps", "recurrent_layers",
           "batch_first", "select_hidden"]

#: which part of a step's output is the hidden state: None (the output if it is a
#: tensor, else its first element, and h of an (h, c) pair), an index, a key, or a
#: callable ``output -> Tensor``
Selector = int | str | Callable[[object], Tensor] | None


@dataclass(frozen=True)
class Step:
    """One recurrent module of a model. ``name`` is its path in the model."""

    name: str
    module: nn.Module
    kind: str
    hidden: Selector = None
    path: str = ""


@dataclass(frozen=True)
class RecurrentLayer:
    """One layer (and direction) of recurrent weights, as a cell sharing them.

    Attributes:
        name: ``"rnn.l0"``, ``"rnn.l0_reverse"`` for a fused module's layers, the module
            path for a cell.
        cell: a :class:`~vanishing.cells.Cell` that reads the very tensors of the model.
        module: the module that owns them; ``path`` its path in the model.
        suffix: the layer suffix of the parameter names (``"_l0"``, ``""`` for a cell).
    """

    name: str
    cell: Cell
    module: nn.Module
    path: str
    suffix: str = ""

    def parameter(self, what: str) -> str:
        """The parameter as a user's code spells it: ``model.rnn.weight_hh_l0``."""
        return "model" + (f".{self.path}" if self.path else "") + f".{what}{self.suffix}"


def _name(path: str, module: nn.Module) -> str:
    return path or type(module).__name__.lower()


def _named_steps(model: nn.Module, steps: Iterable) -> list[tuple[nn.Module, Selector]]:
    if isinstance(steps, nn.Module):
        steps = [steps]
    out = []
    for entry in steps:
        module, selector = entry if isinstance(entry, tuple) else (entry, None)
        if not isinstance(module, nn.Module):
            raise TypeError(f"steps= takes submodules of the model (or (module, hidden) "
                            f"pairs), got {type(module).__name__}")
        if not (selector is None or isinstance(selector, (int, str)) or callable(selector)):
            raise TypeError(f"the hidden-state selector of a step must be None, an index, a "
                            f"key or a callable, got {type(selector).__name__}")
        out.append((module, selector))
    return out


def find_steps(model: nn.Module, steps: Iterable = ()) -> list[Step]:
    """Every recurrent step of ``model``, in ``named_modules`` order (see the module doc).

    Raises:
        TypeError: ``model`` is not a module, or a ``steps`` entry is malformed.
        ValueError: a ``steps`` entry is not a submodule of ``model``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = _named_steps(model, steps)
    paths = {id(m): p for p, m in model.named_modules(remove_duplicate=False)}
    for module, _ in named:
        if id(module) not in paths:
            raise ValueError(f"steps=: {type(module).__name__} is not a submodule of "
                             f"{type(model).__name__}; name a module the model calls")
    chosen = {id(m): s for m, s in named}
    found: list[Step] = []
    inside: list[str] = []  # paths of named steps: what lies below them is theirs
    for path, module in model.named_modules():
        if any(path.startswith(p + ".") for p in inside):
            continue
        if id(module) in chosen:
            found.append(Step(_name(path, module), module, "step", chosen[id(module)], path))
            inside.append(path)
        elif isinstance(module, nn.RNNBase):
            found.append(Step(_name(path, module), module, "fused", path=path))
        elif isinstance(module, nn.RNNCellBase):
            found.append(Step(_name(path, module), module, "torch_cell", path=path))
        elif isinstance(module, Cell):
            found.append(Step(_name(path, module), module, "cell", path=path))
            inside.append(path)
    return found


def recurrent_layers(model: nn.Module, steps: Iterable = ()) -> list[RecurrentLayer]:
    """Every layer of recurrent weights in ``model`` as a weight-sharing cell.

    A user-named step has no weights this library can read (its recurrence is the
    user's own), so it is left out.
    """
    layers = []
    for step in find_steps(model, steps):
        m, path = step.module, step.path
        if step.kind == "fused":
            for layer in range(m.num_layers):
                for reverse in (False, True)[: 1 + m.bidirectional]:
                    sfx = f"_l{layer}" + "_reverse" * reverse
                    layers.append(RecurrentLayer(f"{step.name}.l{layer}" + "_reverse" * reverse,
                                                 twin(m, layer, reverse), m, path, sfx))
        elif step.kind == "torch_cell":
            layers.append(RecurrentLayer(step.name, twin(m), m, path))
        elif step.kind == "cell":
            layers.append(RecurrentLayer(step.name, m, m, path))
    return layers


def batch_first(model: nn.Module) -> bool | None:
    """The layout of the model's sequences, as its modules declare it: True (batch first),
    False (time first) or None (no module says: cells, user steps, plain layers).

    Read from ``batch_first`` of fused recurrent modules and of attention / transformer
    modules. Raises ``ValueError`` if they disagree.
    """
    kinds = (nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer,
             nn.TransformerDecoderLayer)
    flags = {}
    for path, m in model.named_modules():
        if isinstance(m, kinds) and isinstance(getattr(m, "batch_first", None), bool):
            flags[_name(path, m)] = m.batch_first
    if len(set(flags.values())) > 1:
        listed = ", ".join(f"{n}: batch_first={f}" for n, f in flags.items())
        raise ValueError(f"the model's modules disagree on batch_first ({listed}), so the "
                         f"layout of its input is unknown")
    return next(iter(flags.values())) if flags else None


def select_hidden(output: object, selector: Selector, where: str) -> Tensor:
    """The hidden state in a step's ``output`` (see :data:`Selector`)."""
    if selector is None:
        h = output
        while isinstance(h, (tuple, list)) and h:
            h = h[0]
    elif callable(selector):
        h = selector(output)
    else:
        try:
            h = output[selector]  # type: ignore[index]
        except (IndexError, KeyError, TypeError):
            raise ValueError(f"{where}: the hidden-state selector {selector!r} does not "
                             f"index its output ({type(output).__name__})") from None
    if not isinstance(h, Tensor) or not h.is_floating_point():
        got = f"a {h.dtype} tensor" if isinstance(h, Tensor) else type(h).__name__
        raise TypeError(f"{where}: the hidden state must be a floating-point tensor, got "
                        f"{got}; say which part of the output it is with steps=[(module, "
                        f"index or key or callable)]")
    return h
