r"""Gradient through time for any model: the total dL/dh_t and dL/dx_t at every step.

**Hidden states.** Inside :func:`unrolled`, every stock ``torch.nn.RNN`` / ``LSTM`` /
``GRU`` in a model runs as a weight-sharing loop of :mod:`vanishing.cells` twins with a
zero probe p added to every h_t (see :func:`vanishing.unroll.unroll`). One backward pass
then leaves, for every layer,

    dL/dp_t = dL/dh_t = sum over s >= t of (dh_s/dh_t)^T ∂L/∂h_s

the *total* gradient at step t, which ``retain_grad()`` on a fused module's output cannot
give (it sees only the direct part ∂L/∂h_s). ``||dL/dh_t||`` against the distance back in
time T - t shows how far back the gradient reaches: for a vanilla RNN it falls
geometrically (it *vanishes*), so the weight update carries almost nothing from early
steps. The model's own code is untouched: its ``forward`` calls the fused module as
usual and gets the same ``(output, h_n)`` or ``(output, (h_n, c_n))`` back.

**Inputs.** :func:`input_gradients` asks for dL/dx_t directly; it works for any module
reading (batch, time, features), transformers included, and leaves fused modules alone.

Shapes: N = batch, T = time, H = hidden size. Norms are computed in float64 from the
gradients' dtype; run the model in float64 (``copy.deepcopy(model).double()``) to see
gradients below float32's range.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from . import _checks
from .cells import Cell, twin
from .models import SequenceModel
from .unroll import make_probe, unroll

__all__ = [
    "Loss",
    "row_norms",
    "Trace",
    "LayerRecord",
    "LayerGradients",
    "unrolled",
    "layer_gradients",
    "hidden_gradients",
    "input_gradients",
    "default_loss",
]

Loss = Callable[[object], Tensor]


@dataclass
class Trace:
    """Per-step gradient norms of one probe, t = 0 (first step) .. T - 1 (last step).

    Attributes:
        norms: (T,) float64 batch-mean ||dL/dh_t|| of the last recurrent layer run
            (for :func:`input_gradients`: ||dL/dx_t||).
        layers: name (e.g. ``"core.l0"``) -> that layer's own (T,) norms, in time order
            (also for the ``_reverse`` direction of a bidirectional module).
        layer: the name of the layer ``norms`` belongs to.
    """

    norms: np.ndarray
    layers: dict[str, np.ndarray] = field(default_factory=dict)
    layer: str = ""

    @classmethod
    def from_gradients(cls, grads: list[LayerGradients]) -> Trace:
        """The trace of :func:`layer_gradients`' result; ``norms`` from the last forward layer.

        Raises ``ValueError`` if that layer's gradient is exactly zero at every step.
        """
        layers = {g.name: g.norms() for g in grads}
        main = [g.name for g in grads if not g.record.reverse][-1]
        if not np.any(layers[main] != 0):
            raise ValueError(f"dL/dh_t of {main} is exactly zero at every step: the loss does "
                             f"not depend on the hidden states (or every unit is dead)")
        return cls(norms=layers[main], layers=layers, layer=main)

    def relative(self) -> np.ndarray:
        """norms / norms[-1]: the gradient at each step relative to the last step."""
        if not self.norms[-1] > 0:
            raise ValueError(f"the last step's gradient norm is {self.norms[-1]}; it cannot "
                             f"serve as the reference for relative norms")
        return self.norms / self.norms[-1]

    def horizon(self, threshold: float = 1e-3) -> int:
        """Largest lag k with ||dL/dh_(T-k)|| / ||dL/dh_T|| above ``threshold``.

        ``len(norms) - 1`` means the gradient still reaches the first step.
        """
        threshold = _checks.positive_float("threshold", threshold)
        rel = self.relative()[::-1]  # rel[k] = lag k
        above = np.nonzero(rel > threshold)[0]
        return int(above.max()) if above.size else 0

    def decay_rate(self) -> float:
        """Least-squares slope of ln ||dL/dh_(T-k)|| against the lag k, per step.

        Negative: the gradient shrinks going back (-0.05 is a factor exp(-0.05) = 0.95
        per step); positive: it grows. Exact zeros (underflow) are left out of the fit;
        NaN with fewer than two nonzero steps.
        """
        rev = np.asarray(self.norms, dtype=np.float64)[::-1]
        lag = np.arange(rev.size)
        ok = np.isfinite(rev) & (rev > 0)
        if ok.sum() < 2:
            return float("nan")
        return float(np.polyfit(lag[ok], np.log(rev[ok]), 1)[0])


@dataclass
class LayerRecord:
    """One recurrent layer (one direction) as run inside :func:`unrolled`.

    Every tensor is in the order the layer *processed* time: reversed in real time
    when ``reverse`` is True.

    Attributes:
        name: ``"<module name>.l<layer>"``, plus ``"_reverse"`` for a backward direction.
        cell: the weight-sharing twin cell.
        inputs: (N, T, H_in) what the layer read.
        h0: the initial state it started from (None: zeros).
        probe: (N, T, H) the zero probe (None when run without probes).
        hidden: (N, T, H) every h_t, probe included.
        reverse: True for the backward direction of a bidirectional module.
    """

    name: str
    cell: Cell
    inputs: Tensor
    h0: Tensor | tuple[Tensor, Tensor] | None
    probe: Tensor | None
    hidden: Tensor
    reverse: bool = False


@dataclass
class LayerGradients:
    """A :class:`LayerRecord` with its gradients, both (N, T, H) in processing order.

    Attributes:
        total: dL/dh_t, everything that reaches h_t (the probe's gradient).
        direct: ∂L/∂h_t, only what the layer's output sends back directly (what
            ``retain_grad()`` on the output would give).
    """

    record: LayerRecord
    total: Tensor
    direct: Tensor

    @property
    def name(self) -> str:
        return self.record.name

    def norms(self) -> np.ndarray:
        """(T,) batch-mean ||dL/dh_t|| in float64, in real time order."""
        n = row_norms(self.total.detach()).mean(0)
        return (n.flip(0) if self.record.reverse else n).numpy()


def row_norms(t: Tensor) -> Tensor:
    """||t[..., :]||_2 over the last dimension, in float64, without squaring underflow.

    sqrt(sum x^2) loses vectors below ~1e-154 (their squares underflow float64, and
    denormals are flushed to zero while probing); scaling each vector by its largest
    |entry| first keeps every norm down to the smallest normal float64, ~2.2e-308.
    """
    t = t.double()
    scale = t.abs().amax(dim=-1, keepdim=True)
    safe = torch.where((scale > 0) & torch.isfinite(scale), scale, torch.ones_like(scale))
    scaled = (t / safe).norm(dim=-1) * safe.squeeze(-1)
    # an inf entry gives inf and a NaN gives NaN, as in the plain norm
    return torch.where(torch.isfinite(scale.squeeze(-1)), scaled, t.norm(dim=-1))


def _fused_modules(model: nn.Module) -> list[tuple[str, nn.RNNBase]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    found = [(name or type(m).__name__.lower(), m) for name, m in model.named_modules()
             if isinstance(m, nn.RNNBase)]
    if not found:
        raise ValueError(
            f"{type(model).__name__} contains no torch.nn.RNN, LSTM or GRU, so it has no "
            f"hidden states to probe; input_gradients(model, x) works for any model")
    return found


@contextlib.contextmanager
def unrolled(model: nn.Module, *, probe: bool = True) -> Iterator[list[LayerRecord]]:
    """Run every fused ``nn.RNN/LSTM/GRU`` in ``model`` as an unrolled twin in this block.

    Yields a list that each forward pass fills with one :class:`LayerRecord` per layer
    and direction. The twins share the modules' parameter tensors, honour
    ``batch_first``, a caller's ``h0`` / ``(h0, c0)``, ``num_layers``, ``bidirectional``,
    unbatched (2-D) input and inter-layer dropout (its masks are drawn afresh, so in
    training mode they differ from a fused run), and return the fused module's
    ``(output, h_n)`` / ``(output, (h_n, c_n))``. Each module's own ``forward`` is
    restored on exit, even on error.

    Raises:
        ValueError: the model has no fused recurrent module; a module runs twice in one
            pass; a ``PackedSequence`` or an LSTM with ``proj_size`` is given.
    """
    records: list[LayerRecord] = []
    saved = []
    try:
        for name, module in _fused_modules(model):
            saved.append((module, module.__dict__.get("forward")))
            module.forward = functools.partial(_twin_forward, module, name, records, probe)
        yield records
    finally:
        for module, old in saved:
            if old is None:
                del module.forward
            else:
                module.forward = old


def _twin_forward(module: nn.RNNBase, name: str, records: list[LayerRecord], probe: bool,
                  input: Tensor, hx=None):
    """The fused module's forward, computed by twin cells (see :func:`unrolled`)."""
    if isinstance(input, PackedSequence):
        raise TypeError(f"{name}: the probe cannot unroll a PackedSequence; pad the batch "
                        f"(torch.nn.utils.rnn.pad_packed_sequence) and pass a tensor")
    if any(r.name.startswith(name + ".l") for r in records):
        raise ValueError(f"{name} ran twice in one forward pass; the probe needs each "
                         f"recurrent module to read the whole sequence in one call")
    if not isinstance(input, Tensor) or input.dim() not in (2, 3):
        got = f"{input.dim()}-D" if isinstance(input, Tensor) else type(input).__name__
        raise ValueError(f"{name}: expected input to be 2-D or 3-D, got {got}")
    batched, lstm = input.dim() == 3, module.mode == "LSTM"
    x = input if batched else input.unsqueeze(0 if module.batch_first else 1)
    if not module.batch_first:
        x = x.transpose(0, 1)
    h0 = c0 = None
    if hx is not None:
        h0, c0 = hx if lstm else (hx, None)
        if not batched:
            h0, c0 = h0.unsqueeze(1), None if c0 is None else c0.unsqueeze(1)
    dirs = 2 if module.bidirectional else 1
    inp, h_n, c_n = x, [], []
    for layer in range(module.num_layers):
        outs = []
        for d in range(dirs):
            cell = twin(module, layer, reverse=bool(d))
            i = layer * dirs + d
            state = None if h0 is None else (h0[i], c0[i]) if lstm else h0[i]
            seq = inp.flip(1) if d else inp
            p = make_probe(seq, cell.hidden_size) if probe else None
            hs, final = unroll(cell, seq, state, probe=p)
            records.append(LayerRecord(f"{name}.l{layer}" + "_reverse" * d, cell, seq, state,
                                       p, hs, bool(d)))
            h_n.append(hs[:, -1])  # from hs, so a loss on h_n shows in the direct part
            if lstm:
                c_n.append(final[1])
            outs.append(hs.flip(1) if d else hs)
        inp = torch.cat(outs, -1) if dirs == 2 else outs[0]
        if layer < module.num_layers - 1 and module.dropout and module.training:
            inp = nn.functional.dropout(inp, module.dropout, training=True)
    out = inp if module.batch_first else inp.transpose(0, 1)
    h_n = torch.stack(h_n)
    c_n = torch.stack(c_n) if lstm else None
    if not batched:
        out, h_n = out.squeeze(0 if module.batch_first else 1), h_n.squeeze(1)
        c_n = None if c_n is None else c_n.squeeze(1)
    return out, ((h_n, c_n) if lstm else h_n)


def default_loss(model: nn.Module, x: Tensor, steps: int | None = None, *,
                 batch_first: bool = True, project: bool = False) -> Loss:
    """The default loss: the last time step's output, summed (``out[:, -1].sum()``) or projected.

    The output (or the first element of a tuple output, as from a bare ``nn.LSTM``) must
    be batch first with a time dimension, (N, T, ...), N = ``x.shape[0]`` and, if given,
    T = ``steps``; with ``batch_first=False`` it must be time first, (T, N, ...),
    N = ``x.shape[1]``, and the loss reads ``out[-1]``. A
    :class:`~vanishing.models.SequenceModel` with readout ``last`` returns (N, C), which
    already is its last step's output, and is read as it is. Any other shape is an error
    (pass ``loss=``), never a guess.

    With ``project=True`` the last step's output, flattened to (N, K), is projected on a
    fixed random direction instead of summed: ``(last @ w).sum()``, w = K standard
    normal numbers drawn in float64 from ``torch.Generator().manual_seed(0)`` (then cast
    to the output's dtype; the global random state is untouched). The plain sum is
    constant in the input when the model ends in a ``LayerNorm`` (its output sums to
    sum(beta) whatever it reads, with the initial gain of ones), so its gradient would be
    rounding noise; a random direction is not orthogonal to what the input can change.
    """
    last_readout = isinstance(model, SequenceModel) and model.readout_mode == "last"
    b = 0 if batch_first else 1  # the batch dimension of x and of the output
    layout = "batch-first output (batch={n}, time, ...)" if batch_first else \
        "time-first output (time, batch={n}, ...)"
    layout = layout.format(n=x.shape[b])

    def loss(output) -> Tensor:
        out = output[0] if isinstance(output, (tuple, list)) and output else output
        if not isinstance(out, Tensor):
            raise TypeError(f"the default loss needs a tensor output, got "
                            f"{type(out).__name__}; pass loss=...")
        if out.dim() == 2 and last_readout and batch_first:
            last = out
        elif out.dim() < 3 or out.shape[b] != x.shape[b]:
            raise ValueError(
                f"the default loss (a function of the last time step's output) needs a "
                f"{layout}, got shape {tuple(out.shape)}, which has no time dimension "
                f"there; pass loss=, e.g. loss=lambda out: out.sum()")
        elif steps is not None and out.shape[1 - b] != steps:
            other = "time first" if batch_first else "batch first"
            fix = "out[-1].sum()" if batch_first else "out[:, -1].sum()"
            raise ValueError(
                f"the default loss reads the last step of a {layout} with time={steps}, "
                f"got shape {tuple(out.shape)} ({other}?); pass loss=, e.g. "
                f"loss=lambda out: {fix}")
        else:
            last = out.select(1 - b, -1)
        if not project:
            return last.sum()
        flat = last.reshape(last.shape[0], -1)
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(flat.shape[1], generator=gen, dtype=torch.float64).to(flat)
        return (flat @ w).sum()

    return loss


def _scalar(loss: Loss, output) -> Tensor:
    value = loss(output)
    if not isinstance(value, Tensor) or value.numel() != 1:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"loss must return a scalar tensor, got {got}")
    if not value.requires_grad:
        raise ValueError("the loss does not depend on the model's computation (it has no "
                         "gradient); pass a loss computed from the model's output")
    return value.reshape(())


def layer_gradients(model: nn.Module, x: Tensor, loss: Loss | None = None
                    ) -> list[LayerGradients]:
    """Run ``model(x)`` unrolled and backpropagate once: every layer's total and direct
    dL/dh_t, with what each layer read (see :class:`LayerRecord`).

    Raises ``ValueError`` if the loss does not reach some layer's hidden states.
    """
    with torch.enable_grad():
        with unrolled(model) as records:
            output = model(x)
        if not records:
            raise ValueError(f"{type(model).__name__}.forward ran none of its recurrent "
                             f"modules on this input")
        default = loss is None
        if default:  # time first only if every recurrent module says so
            time_first = {m.batch_first for m in model.modules()
                          if isinstance(m, nn.RNNBase)} == {False}
            loss = default_loss(model, x, steps=records[-1].hidden.shape[1],
                                batch_first=not time_first)
        value = _scalar(loss, output)
        wanted = [r.probe for r in records] + [r.hidden for r in records]
        grads = torch.autograd.grad(value, wanted, allow_unused=True, retain_graph=default)
        if default and grads[-1] is not None and bool((grads[-1] != 0).any()):
            _refuse_rounding_noise(value, output, records[-1].hidden, grads[-1])
    k = len(records)
    result = []
    for r, total, direct in zip(records, grads[:k], grads[k:], strict=True):
        if total is None:
            raise ValueError(f"the loss does not depend on the hidden states of {r.name}; "
                             f"nothing to probe there")
        result.append(LayerGradients(r, total, torch.zeros_like(total) if direct is None
                                     else direct))
    return result


def _refuse_rounding_noise(value: Tensor, output, hidden: Tensor, direct: Tensor) -> None:
    """Raise if the default loss is constant in the last layer's states up to rounding.

    The sum of softmax probabilities is 1 and the sum of a LayerNorm output is fixed,
    whatever the states: their gradient is rounding noise, which would be reported as a
    gradient curve. ``direct`` (dL/dh through the readout only) is compared with what a
    random loss of the same outputs would send back (see :func:`_gradient_ratio`); that
    second backward pass runs through the readout alone, not back through time.
    """
    noise = _rounding_noise(value, output, hidden, direct)
    if noise is not None:
        raise ValueError(
            f"the default loss (the sum of the last step's output) does not depend on the "
            f"hidden states: its gradient is zero up to {noise}, as for softmax "
            f"probabilities or a LayerNorm output; pass loss=, e.g. the task's loss against "
            f"targets")


def hidden_gradients(model: nn.Module, x: Tensor, loss: Loss | None = None) -> Trace:
    """The total dL/dh_t at every step of every recurrent layer, in one backward pass.

    Args:
        model: any ``nn.Module`` containing stock ``torch.nn.RNN`` / ``LSTM`` / ``GRU``
            modules (a :class:`~vanishing.models.SequenceModel` included). They run as
            unrolled twins sharing the same parameters (see :func:`unrolled`), so this
            is the model as trained; no ``.grad`` field is touched.
        x: whatever ``model`` takes, e.g. (N, T, H_in) floats or (N, T) token ids.
        loss: callable of the model's output returning a scalar; default: the sum of
            the last time step's output (see :func:`default_loss`): ``out[:, -1]``, or
            ``out[-1]`` when every recurrent module is time first (``batch_first=False``,
            torch's own default), with x then (T, N, H_in).

    Returns:
        A :class:`Trace`: ``norms`` of the last layer run, ``layers`` by name
        (``"core.l0"``, ``"core.l1"``, ...).

    Raises:
        ValueError: no recurrent module; the loss does not reach the hidden states; the
            gradient is exactly zero at every step.
    """
    return Trace.from_gradients(layer_gradients(model, x, loss))


def input_gradients(model: nn.Module, x: Tensor, loss: Loss | None = None) -> Trace:
    """||dL/dx_t|| for every step t, for any module reading (N, T, features) input.

    Fused modules run as they are (the gradient with respect to the input is free).

    Args:
        model: any ``nn.Module`` taking x (a transformer, a fused LSTM, ...).
        x: (N, T, F) float input.
        loss: callable of the model's output returning a scalar; default: the last time
            step's output projected on a fixed random direction
            (``default_loss(model, x, project=True)``), not summed: the sum of a final
            ``LayerNorm``'s output does not depend on x.

    Returns:
        A :class:`Trace` whose ``norms`` are the batch-mean ||dL/dx_t|| (float64) and
        ``layers == {"input": norms}``.

    Raises:
        ValueError: the loss does not depend on x: dL/dx is exactly zero, or zero up to
            rounding (see below).

    A loss that is constant in x gives, in floating point, a gradient of rounding noise
    rather than zero. With v = dL/d(output) and J = d(output)/dx, dL/dx = J^T v; it is
    compared with J^T u for a random u (seeded, on the entries where v is nonzero, scaled
    to ||v||): the gradient a generic loss of the same outputs would have. A ratio
    ||J^T v|| / ||J^T u|| below sqrt(eps) of the gradient's dtype (3.5e-4 in float32,
    1.5e-8 in float64) means v is orthogonal to every change x can make to the output:
    an error, never a curve of noise. The check costs a second backward pass; it runs
    when the output is a tensor or a tuple / list / dict of tensors.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _checks.sequence("x", x)
    loss = default_loss(model, x, project=True) if loss is None else loss
    leaf = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        output = model(leaf)
        value = _scalar(loss, output)
        (g,) = torch.autograd.grad(value, [leaf], allow_unused=True, retain_graph=True)
        if g is None or not bool((g != 0).any()):
            raise ValueError("the loss does not depend on the input x (dL/dx is exactly zero "
                             "at every step)")
        noise = _rounding_noise(value, output, leaf, g)
    if noise is not None:
        raise ValueError(
            f"the loss does not depend on the input x: dL/dx is zero up to {noise}, as for "
            f"the sum of a LayerNorm output; pass a loss that x can change, e.g. the error "
            f"against targets, or loss=None for a random projection of the last step's "
            f"output")
    norms = row_norms(g).mean(0).numpy()
    return Trace(norms=norms, layers={"input": norms}, layer="input")


def _tensors(output) -> list[Tensor]:
    """The tensors in a model's output (a tensor, or nested tuples / lists / dicts)."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for o in output for t in _tensors(o)]
    return []


def _rounding_noise(value: Tensor, output, leaf: Tensor, g: Tensor) -> str | None:
    """``None`` if ``g`` = dL/d``leaf`` is a real gradient; else why it is rounding noise
    (its ratio to a random loss's, :func:`_gradient_ratio`, below sqrt(eps) of its dtype)."""
    ratio = _gradient_ratio(value, output, leaf, g)
    tol = torch.finfo(g.dtype).eps ** 0.5
    if ratio >= tol:
        return None
    return (f"{str(g.dtype).removeprefix('torch.')} rounding ({ratio:.1e} times the gradient "
            f"of a random loss of the same outputs, below {tol:.1e})")


def _gradient_ratio(value: Tensor, output, leaf: Tensor, g: Tensor) -> float:
    """||J^T v|| / ||J^T u||: dL/dx against a random loss's on the same outputs (inf: no
    tensor output to compare with)."""
    outs = [t for t in _tensors(output) if t.requires_grad]
    vs = torch.autograd.grad(value, outs, allow_unused=True, retain_graph=True)
    used = [(t, v) for t, v in zip(outs, vs, strict=True) if v is not None]
    if not used:
        return float("inf")
    gen = torch.Generator().manual_seed(0)
    us = [torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v) * (v != 0)
          for _, v in used]
    (gu,) = torch.autograd.grad([t for t, _ in used], [leaf], us, allow_unused=True)
    if gu is None or not bool((gu != 0).any()):
        return float("inf")
    # both per unit of output gradient: ||J^T v|| / ||v|| against ||J^T u|| / ||u||
    return (_norm([g]) / _norm([v for _, v in used])) / (_norm([gu]) / _norm(us))


def _norm(tensors: list[Tensor]) -> float:
    return float(torch.stack([t.detach().double().norm() for t in tensors]).norm())
