"""Write the gradient through time to TensorBoard, Lightning's loggers and Weights & Biases.

::

    from vanishing.integrations import TensorBoardWriter      # pip install "vanishing[tensorboard]"
    from vanishing.integrations import GradientMonitorCallback  # pip install "vanishing[lightning]"
    from vanishing.integrations import WandbWriter            # pip install "vanishing[wandb]"

Lazy: importing this package (or any module in it) needs none of those packages; the
integration is loaded on first use, and one whose package is missing raises
``ImportError`` naming the extra to install, when it is created.

Every integration logs the same numbers, computed once by :func:`trace_scalars` from a
:class:`~vanishing.probe.Trace`, under tags grouped per recurrent layer::

    vanishing/<layer>/horizon       largest lag k with ||dL/dh_(T-k)|| / ||dL/dh_T|| > threshold
    vanishing/<layer>/decay_rate    slope of ln ||dL/dh_(T-k)|| against k, per step
    vanishing/<layer>/grad_lag_<k>  ||dL/dh_(T-k)|| at lags 0, 1, 10, 100 and T - 1 (k < T)
    vanishing/alarm_<kind>          1 on the step a vanishing / exploding / nan alarm is raised
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Iterator

import numpy as np

__all__ = ["LAGS", "TensorBoardWriter", "GradientMonitorCallback", "WandbWriter",
           "require", "trace_scalars", "unseen"]

#: the lags (steps back from the last step) logged by default, besides T - 1
LAGS = (0, 1, 10, 100)

_LAZY = {"TensorBoardWriter": "tensorboard", "GradientMonitorCallback": "lightning",
         "WandbWriter": "wandb"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def require(module: str, extra: str):
    """Import ``module``, or raise ``ImportError`` saying ``pip install "vanishing[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"vanishing.integrations.{extra} needs the {extra} package: "
                          f"pip install \"vanishing[{extra}]\"") from exc


def trace_scalars(trace, threshold: float = 1e-3, lags: Iterable[int] = LAGS,
                  prefix: str = "vanishing") -> dict[str, float]:
    """The scalars of one probe, per layer of ``trace.layers`` (see the module doc).

    A layer whose last step's gradient is zero has no horizon (it is left out); lags
    at or beyond its length T are left out, and lag T - 1 is always included.
    """
    from vanishing.probe import Trace

    layers = trace.layers or {trace.main_layer or "main": trace.norms}
    out: dict[str, float] = {}
    for name, norms in layers.items():
        layer = Trace(norms=np.asarray(norms, dtype=np.float64), main_layer=name)
        tag, size = f"{prefix}/{name}", layer.norms.size
        if layer.norms[-1] > 0 and math.isfinite(layer.norms[-1]):
            out[f"{tag}/horizon"] = float(layer.horizon(threshold))
        out[f"{tag}/decay_rate"] = layer.decay_rate()
        for k in sorted({*lags, size - 1}):
            if 0 <= k < size:
                out[f"{tag}/grad_lag_{k}"] = float(layer.norms[size - 1 - k])
    return out


def unseen(monitor, seen: dict) -> Iterator[tuple[int, object, list]]:
    """(step, trace or None, alarms) for each monitor step not yet handed out with ``seen``.

    ``seen`` is the caller's state (an empty dict at first), so each probe and each alarm
    is handed out once, at the step the monitor measured it. The cost is in proportion to
    the steps since the last call, not to the run.
    """
    last, done = seen.get("step", 0), seen.get("alarms", 0)
    alarms = monitor.alarms[done:]
    seen["step"], seen["alarms"] = monitor.steps, len(monitor.alarms)
    for step in range(last + 1, monitor.steps + 1):
        trace = monitor.traces.get(step)
        raised = [a for a in alarms if a.step == step]
        if trace is not None or raised:
            yield step, trace, raised
