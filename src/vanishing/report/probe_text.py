r"""The text of a probe's diagnosis: the per-step table and the summary lines of
``vanishing probe``, as plain strings (no matplotlib, no terminal).

The table reads ||dL/dh_t|| and ||dL/dh_t|| / ||dL/dh_T|| against the distance back
T - t, and the Jacobian product ||dh_T/dh_t||_2, which is kept in log10 and written out
by :func:`pow10` even far below float64's range (3.2e-912). A norm that drops to an exact
0 from below :data:`UNDERFLOW_FROM` has underflowed float64 and reads ``underflow``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .tables import TextTable

if TYPE_CHECKING:
    from ..diagnose import Diagnosis, WeightCondition

__all__ = ["UNDERFLOW_FROM", "LAG_SHARES", "heading", "probe_table", "summary", "lags_shown",
           "underflowed", "pow10", "figure_sentence", "configuration"]

#: A norm that drops to an exact 0 from below this has underflowed float64; from above,
#: the 0 is taken as real (e.g. every relu unit off at that step).
UNDERFLOW_FROM = 1e-100
#: Lags k at which the share of the W_hh update from lags >= k is reported.
LAG_SHARES = (1, 5, 10, 20, 50, 100, 200)


def heading(what: str, task: str | None, length: int, batch: int, steps: int) -> str:
    """The first line: what was probed, on which input and loss, and how."""
    source = ("random N(0, 1) input, loss = sum of the last output" if task is None
              else f"task {task} (length {length}), its loss")
    return (f"probe: {what}; {source}; batch {batch}, T = {steps} steps; float64, "
            f"denormals flushed to zero, Jacobian norms in log space")


def configuration(what: str, task: str | None, length: int, batch: int, threshold: float,
                  max_lag: int) -> list[tuple[str, str]]:
    """What a probe ran, for its report."""
    return [("model", what),
            ("input", "random N(0, 1), loss = sum of the last output" if task is None
             else f"task {task}, its loss"),
            ("length", str(length)), ("batch", str(batch)), ("threshold", f"{threshold:g}"),
            ("max lag", str(max_lag)),
            ("precision", "float64, denormals flushed to zero, Jacobian norms in log space")]


def lags_shown(steps: int, rows: int, horizon: int) -> list[int]:
    """Lags T - t to show: all if ``rows`` <= 0 or T <= ``rows``; else 0..4, about
    ``rows - 7`` log-spaced ones, the horizon and the lag after it, and T - 1."""
    if rows <= 0 or steps <= rows:
        return list(range(steps))
    picked = set(range(min(5, steps)))
    picked |= {int(round(v)) for v in np.geomspace(5, steps - 1, max(rows - 7, 2))}
    picked |= {min(horizon, steps - 1), min(horizon + 1, steps - 1), steps - 1}
    return sorted(picked)


def probe_table(d: Diagnosis, rows: int) -> TextTable:
    """One row per lag of :func:`lags_shown` (``...`` where lags are left out): T - t, t,
    ||dL/dh_t||, its ratio to ||dL/dh_T|| and, if computed, ||dh_T/dh_t||_2."""
    norms = d.trace.norms
    steps = norms.size
    header = ["T - t", "t", "||dL/dh_t||", "/ ||dL/dh_T||"]
    log10_jac = None if d.jacobian is None else d.jacobian.log10_spectral()
    if log10_jac is not None:
        header.append("||dh_T/dh_t||_2")
    shown, underflow = lags_shown(steps, rows, d.horizon), underflowed(norms)
    cells = []
    for i, lag in enumerate(shown):
        if i and lag != shown[i - 1] + 1:
            cells.append(["..."] * len(header))
        t = steps - 1 - lag
        row = [str(lag), str(t), *(["underflow"] * 2 if underflow[t] else
                                   [f"{norms[t]:.4g}", f"{norms[t] / norms[-1]:.4g}"])]
        if log10_jac is not None:
            row.append(pow10(log10_jac[t]))
        cells.append(row)
    return TextTable(f"gradient through time, layer {d.trace.main_layer}", header, cells,
                     align=["right"] * len(header))


def summary(d: Diagnosis) -> list[str]:
    """The lines under the table: horizon, decay rate, Jacobian product, W_hh against
    Pascanu et al. 2013's condition, saturation, lag shares, diagnosis, notes, remedies."""
    steps = d.trace.norms.size
    underflow = underflowed(d.trace.norms)[::-1]  # by lag
    if d.horizon == steps - 1:
        reach = "reaches the first step"
    elif underflow[d.horizon + 1]:
        reach = "then underflows float64, so it may reach further"
    else:
        reach = "then falls below"
    lines = [f"horizon: {d.horizon} steps (||dL/dh_t|| stays above {d.threshold:g} x "
             f"||dL/dh_T|| for {d.horizon} steps back; {reach})"]
    if math.isfinite(d.decay_rate):
        lines.append(f"decay rate: {d.decay_rate:+.4g} per step in ln ||dL/dh_t||, a factor "
                     f"{math.exp(d.decay_rate):.4g} per step back")
    if d.jacobian is not None:
        j = d.jacobian
        lyap = ", ".join(f"{v:+.4f}" for v in j.lyapunov)
        lines.append(f"Jacobian product dh_T/dh_0 ({j.layer}): ||.||_2 = "
                     f"{pow10(j.log10_spectral()[0])}, ||.||_F = "
                     f"{pow10(j.log_frobenius[0] / math.log(10))}; leading Lyapunov exponents "
                     f"(ln growth per step): {lyap}")
    lines += [_weight_line(w) for w in d.weights]
    lines += [f"saturation {name}: {share:.1%} of tanh units at |h| >= 0.99"
              for name, share in d.saturation.items()]
    if d.lags is not None:
        shares = d.lags.shares()
        parts = ", ".join(f">= {k}: {float(shares[k]):.3g}" for k in LAG_SHARES
                          if k <= d.lags.max_lag)
        lines.append(f"share of the W_hh update from lags {parts}")
    lines.append(f"diagnosis: {d.verdict.kind}: {d.verdict.reason}")
    if underflow.any():
        lines.append(f"note: ||dL/dh_t|| underflows float64 from {int(underflow.argmax())} "
                     f"steps back (shown as underflow, left out of the decay rate); the "
                     f"Jacobian column, in log space, goes on")
    lines += [f"note: {n}" for n in d.notes]
    return lines + [f"try: {r}" for r in d.remedies]


def figure_sentence(d: Diagnosis) -> str:
    """What to see in the figure of a diagnosis (:func:`~vanishing.report.probe_figure.
    diagnosis_figure`), with the numbers of :func:`summary`."""
    steps = d.trace.norms.size
    if d.horizon == steps - 1:
        first = (f"The gradient stays above {d.threshold:g} of the last step's all the way "
                 f"back to the first step ({steps - 1} steps)")
    else:
        first = (f"The gradient stays above {d.threshold:g} of the last step's for "
                 f"{d.horizon} of {steps - 1} steps back (the red dashed horizon)")
    if math.isfinite(d.decay_rate):
        first += f", shrinking by a factor {math.exp(d.decay_rate):.4g} a step"
    return f"{first}; diagnosis: {d.verdict.kind}."


def _weight_line(w: WeightCondition) -> str:
    line = f"W_hh {w.layer}: spectral radius {w.spectral_radius:.4g}, sigma_max {w.sigma_max:.4g}"
    if w.gamma is None:
        return line + " (largest over the gate blocks)"
    verdict = "yes" if w.vanishing_guaranteed else "no"
    return line + (f"; vanishing guaranteed (sigma_max < 1/gamma = {1 / w.gamma:g}, "
                   f"Pascanu et al. 2013): {verdict}")


def underflowed(norms: np.ndarray) -> np.ndarray:
    """(T,) True where ||dL/dh_t|| is an exact 0 reached from a tiny nonzero norm (a later
    step's, below :data:`UNDERFLOW_FROM`): float64 underflow, not a true zero."""
    out = np.zeros(norms.size, dtype=bool)
    later = 0.0  # the nearest nonzero norm at a later step
    for t in range(norms.size - 1, -1, -1):
        if norms[t] != 0:
            later = norms[t]
        else:
            out[t] = 0 < later < UNDERFLOW_FROM
    return out


def pow10(log10: float) -> str:
    """10^log10 written out with 4 significant digits, also far below float64's range
    (``pow10(-911.5)`` is ``3.162e-912``); plain ``%.4g`` while |exponent| <= 3."""
    if not math.isfinite(log10):
        return "0" if log10 < 0 else "inf"
    e = math.floor(log10)
    m = 10 ** (log10 - e)
    if m >= 9.9995:
        m, e = 1.0, e + 1
    return f"{m:.4g}e{e:+03d}" if abs(e) > 3 else f"{10 ** log10:.4g}"
