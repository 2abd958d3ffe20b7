r"""Summaries of a probe and a verdict: vanishing, exploding, NaN or healthy, with remedies.

* **Horizon and decay rate** (:class:`~vanishing.probe.Trace`): how many steps back
  ||dL/dh_t|| stays above a fraction of ||dL/dh_T||, and the fitted slope of
  ln ||dL/dh_t|| per step.
* **Weights** (:func:`weight_conditions`): spectral radius rho and largest singular value
  sigma_max of each W_hh. Pascanu, Mikolov & Bengio (2013) show that for the Elman RNN,
  with |f'| <= gamma (gamma = 1 for tanh and relu, 1/4 for the sigmoid),
  ``sigma_max < 1 / gamma`` is *sufficient* for the gradient to vanish: every factor
  ||diag(f') W_hh|| <= gamma sigma_max < 1. (sigma_max > 1/gamma is only *necessary* for
  it to explode.)
* **Saturation** (:func:`saturation`): the share of tanh units with |h| >= 0.99, where
  f'(a) = 1 - h^2 <= 0.02 blocks the gradient whatever the weights.
* **Lag decomposition** (:func:`lag_decomposition`): dL/dW_hh split by how far back each
  term reaches (see :func:`vanishing.bptt.lag_terms`), for any Elman layer of a model.
* :func:`classify` turns a trace into a :class:`Verdict`; :func:`diagnose` runs it all.
* :func:`remedies` reads the weights before advising: no "initialise orthogonal" for a
  W_hh that already is, no "raise the forget bias" for an LSTM whose bias is already
  high, no "rescale to radius < 1" for a radius already below 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from . import _checks
from .bptt import LagDecomposition, lag_terms
from .cells import ElmanCell
from .jacobian import JacobianTrace, jacobian_products, step_jacobian_products
from .models import SequenceModel
from .probe import LayerGradients, OutputLoss, Trace, layer_gradients
from .recurrent import RecurrentLayer, recurrent_layers

__all__ = [
    "REMEDIES",
    "WeightCondition",
    "Verdict",
    "Diagnosis",
    "weight_conditions",
    "saturation",
    "lag_decomposition",
    "classify",
    "remedies",
    "diagnose",
]

#: Plain-language remedies per problem; ``remedies()`` picks those that fit the model.
REMEDIES = {
    "gated": "use a gated cell (LSTM or GRU): its additive state carries the gradient back",
    "orthogonal": "initialise W_hh orthogonal (all singular values 1; init='orthogonal'), or "
                  "as the identity for a relu RNN (IRNN, model 'irnn')",
    "forget_bias": "raise the LSTM forget-gate bias (forget_bias=2: f = sigmoid(2) = 0.88 "
                   "at init keeps 0.88^k of the cell state's gradient k steps back, against "
                   "0.73^k at the usual 1)",
    "clip": "clip the gradient norm (torch.nn.utils.clip_grad_norm_(params, 1.0))",
    "lower_lr": "lower the learning rate",
    "truncate": "backpropagate through fewer steps (truncated BPTT: detach the state every "
                "k steps)",
    "radius": "rescale W_hh to a spectral radius below 1 (init radius=0.9)",
    "saturation": "bring the tanh units out of saturation (|h| near 1 passes almost no "
                  "gradient): scale the inputs or W_ih down, or use a smaller init",
    "shortcut": "give the gradient a shorter path back in time (attention over past states "
                "or skip connections across steps): the weights already follow the usual "
                "advice",
    "check_data": "check the inputs and the loss for NaN/inf (log of 0, division by 0) and "
                  "restart from the last good checkpoint",
}
#: The wording of :data:`REMEDIES` for a user's own model, where this library's options
#: (``init='orthogonal'``, model ``irnn``) do not apply.
USER_TEXT = {
    "orthogonal": "initialise W_hh orthogonal (all singular values 1), or as the identity for "
                  "a relu RNN (IRNN, Le et al. 2015)",
    "radius": "rescale W_hh to a spectral radius below 1",
}
#: The same remedies as torch code for a user's own modules; ``{w}`` is W_hh as the user
#: spells it (``model.rnn.weight_hh_l0``), ``{b_ih}``/``{b_hh}`` its biases, ``{rows}``
#: the forget gate's rows, ``{g}`` the number of gate blocks.
CODE = {
    "orthogonal": "for block in {w}.data.chunk({g}): torch.nn.init.orthogonal_(block)",
    "orthogonal_1": "torch.nn.init.orthogonal_({w})",
    "forget_bias": "with torch.no_grad(): {b_ih}[{rows}].fill_(2.0); {b_hh}[{rows}].zero_()",
    "clip": "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # after "
            "loss.backward()",
    "truncate": "hidden = hidden.detach()  # every k steps, where the state is passed on",
    "radius": "with torch.no_grad(): {w}.mul_(0.9 / torch.linalg.eigvals({w}.data)"
              ".abs().max())",
}


@dataclass(frozen=True)
class WeightCondition:
    """W_hh of one layer against Pascanu et al. 2013's sufficient condition for vanishing.

    Attributes:
        layer: e.g. ``"core.l0"``.  mode: ``rnn_tanh``, ``rnn_relu``, ``lstm`` or ``gru``.
        spectral_radius, sigma_max: of W_hh (for LSTM / GRU the largest over the
            (H, H) gate blocks).
        gamma: bound on |f'| (Elman only, else None).
        vanishing_guaranteed: ``sigma_max < 1 / gamma`` (Elman only, else None).
        sigma_min: smallest singular value over the blocks (1 = sigma_max: orthogonal).
        forget_bias: mean forget-gate bias b_if + b_hf over units (LSTM only, else None).
        code: how the user's code spells this layer's tensors (``{"w": "model.rnn.
            weight_hh_l0", ...}``), for remedies written as torch code.
    """

    layer: str
    mode: str
    spectral_radius: float
    sigma_max: float
    gamma: float | None
    vanishing_guaranteed: bool | None
    sigma_min: float = float("nan")
    forget_bias: float | None = None
    code: dict = field(default_factory=dict, compare=False, repr=False)
    orthogonal_init: bool = True
    advice: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def orthogonal(self) -> bool:
        """All singular values of every (H, H) block within 5% of 1."""
        return abs(self.sigma_max - 1) <= 0.05 and abs(self.sigma_min - 1) <= 0.05


@dataclass(frozen=True)
class Verdict:
    """``kind`` is ``vanishing``, ``exploding``, ``nan`` or ``healthy``; ``reason`` says why."""

    kind: str
    reason: str
    value: float = float("nan")


@dataclass
class Diagnosis:
    """Everything :func:`diagnose` measured (see the module doc); ``horizon`` and
    ``decay_rate`` are read from the trace at ``threshold``."""

    trace: Trace
    threshold: float
    verdict: Verdict
    remedies: list[str]
    weights: list[WeightCondition]
    saturation: dict[str, float]
    jacobian: JacobianTrace | None = None
    lags: LagDecomposition | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def horizon(self) -> int:
        return self.trace.horizon(self.threshold)

    @property
    def decay_rate(self) -> float:
        return self.trace.decay_rate()


def _forget_bias(layer: RecurrentLayer) -> float | None:
    """Mean of b_if + b_hf over units (the cell's forget-gate rows); None if no such gate,
    0 if no bias."""
    cell = layer.cell
    if cell.forget_gate is None:
        return None
    h, rows = cell.hidden_size, cell.forget_gate
    ps = cell.weights()
    return sum(float(ps[k].detach()[rows * h: (rows + 1) * h].double().mean())
               for k in ("bias_ih", "bias_hh") if k in ps)


def _code_names(layer: RecurrentLayer) -> dict:
    cell = layer.cell
    names = {"w": layer.parameter("weight_hh"), "b_ih": layer.parameter("bias_ih"),
             "b_hh": layer.parameter("bias_hh"), "g": cell.gates}
    if cell.forget_gate is not None:
        h = cell.hidden_size
        names["rows"] = f"{cell.forget_gate * h}:{(cell.forget_gate + 1) * h}"
    return names


def weight_conditions(model: nn.Module) -> list[WeightCondition]:
    """rho and sigma_max of every recurrent layer's W_hh, in float64 (see module doc).

    The matrices are the cell's (H, H) recurrent blocks (:meth:`Cell.recurrent_blocks`:
    the gate blocks of W_hh, composed with W_hr for an LSTM with a projection). Layers
    come from :func:`vanishing.recurrent.recurrent_layers` (fused modules, stock and
    library cells). A W_hh holding NaN or inf gets NaN for every measured field.
    """
    out = []
    layers = recurrent_layers(model)
    for layer in layers:
        cell = layer.cell
        mode, gamma, forget = cell.kind, cell.gamma, _forget_bias(layer)
        blocks = cell.recurrent_blocks()
        if blocks is None:  # no recurrent matrix (minGRU: the gates read x_t only)
            continue
        blocks = blocks.detach().double()
        code = _code_names(layer)
        if not bool(torch.isfinite(blocks).all()):  # nothing to decompose: say so, as NaN
            nan = float("nan")
            out.append(WeightCondition(layer.name, mode, nan, nan, gamma, None, nan, forget,
                                       code, cell.orthogonal_init, dict(cell.advice)))
            continue
        rho = float(torch.linalg.eigvals(blocks).abs().max())
        svals = torch.linalg.svdvals(blocks)
        sigma = float(svals.max())
        out.append(WeightCondition(layer.name, mode, rho, sigma, gamma,
                                   None if gamma is None else sigma < 1 / gamma,
                                   float(svals.min()), forget, code, cell.orthogonal_init,
                                   dict(cell.advice)))
    if not layers:
        raise ValueError(f"{type(model).__name__} contains no recurrent weights this library "
                         f"can read (torch.nn.RNN/LSTM/GRU, nn.RNNCell/LSTMCell/GRUCell or a "
                         f"vanishing Cell)")
    return out


def saturation(hidden: Tensor, threshold: float = 0.99) -> float:
    """Share of the entries of tanh states ``hidden`` (any shape) with |h| >= threshold."""
    return float((hidden.detach().abs() >= threshold).double().mean())


def lag_decomposition(
    model: nn.Module,
    x: Tensor,
    loss: OutputLoss | None = None,
    *,
    layer: str | None = None,
    max_lag: int | None = None,
) -> LagDecomposition:
    """dL/dW_hh of one Elman layer of ``model``, split by lag (:func:`~vanishing.bptt.lag_terms`).

    The direct ∂L/∂h_t and what the layer read come from one unrolled pass
    (:func:`vanishing.probe.layer_gradients`); the split itself is hand BPTT.

    Args:
        model, x, loss: as :func:`vanishing.probe.hidden_gradients`.
        layer: layer name (default: the last forward Elman layer run).
        max_lag: resolve lags 0..max_lag (default all; cost O(T * max_lag * N * H^2)).
    """
    grads = [g for g in layer_gradients(model, x, loss)
             if g.record is not None and isinstance(g.record.cell, ElmanCell)]
    if not grads:
        raise ValueError("the lag decomposition is written for the Elman RNN (torch.nn.RNN, "
                         f"one call per forward); {type(model).__name__} runs no such layer")
    names = [g.name for g in grads]
    if layer is None:
        layer = [g.name for g in grads if not g.reverse][-1]
    g = grads[names.index(_checks.one_of("Elman layer", layer, names))]
    r = g.record
    return lag_terms(r.cell, r.inputs.detach(), g.direct, r.h0, max_lag=max_lag)


def classify(
    trace: Trace,
    *,
    threshold: float = 1e-3,
    min_horizon: int | None = None,
    max_growth: float = 1e3,
) -> Verdict:
    """Vanishing, exploding, NaN or healthy, from per-step gradient norms.

    * ``nan``: some ||dL/dh_t|| is NaN or inf.
    * ``exploding``: going back, ||dL/dh_t|| grows above ``max_growth`` x ||dL/dh_T||.
    * ``vanishing``: the horizon (:meth:`Trace.horizon` at ``threshold``) is shorter than
      ``min_horizon`` steps (default: the whole sequence, T - 1).
    * ``healthy`` otherwise.
    """
    if isinstance(max_growth, bool) or not isinstance(max_growth, (int, float)) or \
            not 1 <= max_growth < math.inf:  # below 1 the last step itself "explodes"
        raise ValueError(f"max_growth must be a finite number >= 1 (a factor over the last "
                         f"step's ||dL/dh_T||), got {max_growth!r}")
    norms = np.asarray(trace.norms, dtype=np.float64)
    if not np.all(np.isfinite(norms)):
        bad = int(np.nonzero(~np.isfinite(norms))[0][-1])
        return Verdict("nan", f"||dL/dh_t|| is not finite at step t = {bad}")
    rel = trace.relative()
    lag = int(np.argmax(rel[::-1]))
    growth = float(rel[::-1][lag])
    if growth > max_growth:
        return Verdict("exploding", f"||dL/dh_t|| grows to {growth:.3g}x the last step's "
                       f"{lag} steps back (bound {max_growth:g}x)", growth)
    length = norms.size
    need = length - 1 if min_horizon is None else min(_checks.nonneg_int(
        "min_horizon", min_horizon), length - 1)
    horizon = trace.horizon(threshold)
    if horizon < need:
        return Verdict("vanishing", f"||dL/dh_t|| falls below {threshold:g}x the last step's "
                       f"{horizon + 1} steps back; the gradient needs to reach {need} steps "
                       f"back", float(horizon))
    return Verdict("healthy", f"the gradient reaches {horizon} steps back above {threshold:g}x "
                   f"the last step's and grows at most {growth:.3g}x", float(horizon))


def remedies(kind: str, weights: list[WeightCondition], *, saturated: bool = False,
             code: bool = False) -> list[str]:
    """The :data:`REMEDIES` that fit a problem ``kind`` and the model's weights, best first.

    Args:
        kind: a :class:`Verdict` kind (``vanishing``, ``exploding``, ``nan``, ``healthy``).
        weights: :func:`weight_conditions` of the model; advice it already follows
            (orthogonal W_hh, LSTM forget bias >= 1.5, spectral radius < 1) is left out.
        saturated: most tanh units are saturated (see :func:`saturation`).
        code: also write each remedy as torch code for the user's own modules
            (:data:`CODE`, e.g. ``torch.nn.init.orthogonal_`` on ``model.rnn.weight_hh_l0``),
            for a model that is not this library's :class:`~vanishing.models.SequenceModel`.
    """
    if not isinstance(weights, list | tuple) or not all(
            isinstance(w, WeightCondition) for w in weights):
        raise TypeError("remedies expects the list returned by weight_conditions(model)")
    elman = [w for w in weights if w.mode.startswith("rnn")]
    own = list(dict.fromkeys(w.advice[kind] for w in weights if kind in w.advice))
    keys: list[str] = []
    if kind == "vanishing":
        keys += ["saturation"] if saturated else []
        keys += ["gated"] if elman else []
        keys += ["orthogonal"] if any(not w.orthogonal and w.orthogonal_init
                                      for w in weights) else []
        keys += ["forget_bias"] if any(
            w.forget_bias is not None and w.forget_bias < 1.5 for w in weights) else []
        keys += ["shortcut"] if not keys and not own else []
    elif kind == "exploding":
        keys = ["clip", "lower_lr", "truncate"] + (
            ["radius"] if any(w.spectral_radius >= 1 for w in elman) else [])
    elif kind == "nan":
        keys = ["lower_lr", "clip", "check_data"]
    if not code:
        return [REMEDIES[k] for k in keys] + own
    which = {"orthogonal": [w for w in weights if not w.orthogonal and w.orthogonal_init],
             "forget_bias": [w for w in weights if w.forget_bias is not None
                             and w.forget_bias < 1.5],
             "radius": [w for w in elman if w.spectral_radius >= 1]}
    out = []
    for k in keys:
        text = USER_TEXT.get(k, REMEDIES[k])
        if k in ("clip", "truncate"):
            text += f"; in torch: {CODE[k]}"
        elif k in which and all(w.code for w in which[k]):
            lines = "; ".join(CODE[k + "_1" if k + "_1" in CODE and w.code["g"] == 1 else k]
                              .format(**w.code) for w in which[k])
            text += f"; in torch: {lines}"
        out.append(text)
    return out + own


def diagnose(
    model: nn.Module,
    x: Tensor,
    loss: OutputLoss | None = None,
    *,
    threshold: float = 1e-3,
    min_horizon: int | None = None,
    max_growth: float = 1e3,
    jacobian: bool = True,
    lags: bool = True,
    max_lag: int | None = None,
) -> Diagnosis:
    """Probe ``model`` on ``x`` and summarise: horizon, decay, weights, Jacobians, lags.

    Args:
        model, x, loss: as :func:`vanishing.probe.hidden_gradients`.
        threshold, min_horizon, max_growth: as :func:`classify`.
        jacobian: also compute ||dh_T/dh_t|| and Lyapunov exponents of the last layer.
        lags: also split dL/dW_hh by lag (Elman layers only).
        max_lag: for the lag decomposition.
    """
    threshold = _checks.fraction("threshold", threshold)
    grads = layer_gradients(model, x, loss)
    trace = Trace.from_gradients(grads)
    if trace.norms.size < 2:
        raise ValueError(f"a gradient through time needs at least two steps; {trace.main_layer} "
                         f"ran {trace.norms.size}")
    main = next(g for g in grads if g.name == trace.main_layer)
    verdict = classify(trace, threshold=threshold, min_horizon=min_horizon,
                       max_growth=max_growth)
    weights = weight_conditions(model)
    truncated = getattr(model, "truncate", None) if isinstance(model, SequenceModel) else None
    if truncated is not None and truncated >= trace.norms.size:
        truncated = None  # a window as long as the sequence cuts nothing (SequenceModel.forward)
    sat = {g.name: saturation(g.record.hidden) for g in grads if _tanh(g)}
    saturated = any(share > 0.5 for share in sat.values())
    code = not isinstance(model, SequenceModel)
    result = Diagnosis(trace, threshold, verdict,
                       remedies(verdict.kind, weights, saturated=saturated, code=code), weights,
                       sat)
    r, steps = main.record, main.step_inputs()
    if jacobian and r is not None:
        result.jacobian = jacobian_products(model, x, layer=main.name, k=min(
            4, sum(r.cell.state_sizes)))
    elif jacobian and steps is not None:
        cell, xp, before = steps
        result.jacobian = step_jacobian_products(cell, xp, before,
                                                 k=min(4, sum(cell.state_sizes)))
        result.jacobian.layer = main.name
    elif jacobian and not truncated:
        result.notes.append(f"{main.name}: no Jacobian product (a user-named step, or a fused "
                            f"module called more than once)")
    if truncated:
        result.notes.append(f"truncated BPTT, window k = {truncated}: the state is detached "
                            f"every {truncated} steps, so the training gradient is exactly 0 "
                            f"at lags past the window the last step sits in (the horizon is "
                            f"the cut, not a decay); no Jacobian product across the cuts")
    if lags and r is not None and isinstance(r.cell, ElmanCell):
        result.lags = lag_terms(r.cell, r.inputs.detach(), main.direct, r.h0, max_lag=max_lag)
    for name, share in sat.items():
        if share > 0.5:
            result.notes.append(f"{name}: {share:.0%} of tanh units are saturated (|h| >= "
                                f"0.99, f' <= 0.02): the gradient is blocked whatever W_hh is")
    if any(w.vanishing_guaranteed for w in weights):
        result.notes.append("sigma_max(W_hh) < 1/gamma: vanishing is guaranteed (Pascanu et "
                            "al. 2013)")
    if math.isnan(result.decay_rate):
        result.notes.append("too few nonzero steps to fit a decay rate")
    return result


def _tanh(g: LayerGradients) -> bool:
    r = g.record
    return r is not None and isinstance(r.cell, ElmanCell) and r.cell.nonlinearity == "tanh"
