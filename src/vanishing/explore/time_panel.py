r"""The "through time" panel: the gradient dL/dh_t reaching back through T steps of a
freshly initialised model, as ``vanishing probe`` measures it on random input.

:func:`through_time` builds the model a :class:`vanishing.train.TrainConfig` describes
(:func:`vanishing.train.build_model_for`: any cell of :data:`vanishing.models.MODELS`,
hidden size H, length T, initialisation, spectral radius, forget-gate bias, seed), draws
a probe batch x ~ N(0, 1) of shape (:data:`PROBE_BATCH`, T, :data:`INPUT_SIZE`) from the
seed's generator, sets the probe up in float64 (:func:`vanishing.train.probe_inputs`,
the default loss: the sum of the last step's output) and calls
:func:`vanishing.diagnose.diagnose` (no Jacobian products, no lag split: those are the
slow parts, and the panel shows neither). The page draws

    relative[k] = ||dL/dh_(T-1-k)|| / ||dL/dh_(T-1)||,   k = 0 .. T-1 (the lag)

on a log scale, beside the horizon (the largest lag above :data:`THRESHOLD`), the decay
rate (slope of ln ||dL/dh|| against the lag) and Pascanu et al. 2013's condition for each
layer: sigma_max(W_hh) < 1/gamma guarantees vanishing (Elman cells; gamma bounds |f'|).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..cells import make_cell
from ..diagnose import diagnose
from ..init import SCHEMES
from ..models import MODELS
from ..train import PROBE_SEED_OFFSET, TrainConfig, build_model_for, probe_generator, probe_inputs
from .params import Body, choice, integer, json_number, known, optional_number

__all__ = ["DEFAULTS", "LIMITS", "PRESET", "PROBE_BATCH", "INPUT_SIZE", "PROBE_SEED_OFFSET",
           "THRESHOLD", "forget_gate_models", "through_time", "probe_batch"]

#: ``init`` meaning "the model's own preset" (``irnn``: identity, the rest: default).
PRESET = "preset"
DEFAULTS = {"cell": "rnn_tanh", "hidden": 64, "length": 200, "init": PRESET, "radius": None,
            "forget_bias": None, "seed": 0}
#: Bounds: T = 1000 and H = 256 (the largest case) answer within the server's time cap.
LIMITS = {"hidden": 256, "length": 1000, "radius": 10.0, "forget_bias": 20.0,
          "seed": 1_000_000}
#: Sequences in the probe batch, and features per step (``vanishing probe``'s defaults).
PROBE_BATCH = 16
INPUT_SIZE = 8
#: The horizon's threshold (``vanishing probe``'s default).
THRESHOLD = 1e-3


def forget_gate_models() -> list[str]:
    """The models whose cell has a forget gate (the forget-gate bias applies to them)."""
    return [name for name, preset in MODELS.items()
            if make_cell(preset.core, 1, 1).forget_gate is not None]


def probe_batch(length: int, seed: int) -> torch.Tensor:
    """x ~ N(0, 1), (PROBE_BATCH, length, INPUT_SIZE), from the seed's generator."""
    return torch.randn(PROBE_BATCH, length, INPUT_SIZE, generator=probe_generator(seed))


def through_time(body: Body) -> dict:
    """The gradient through time for the request ``body`` (fields: :data:`DEFAULTS`)."""
    began = time.perf_counter()
    known(body, DEFAULTS)
    cell = choice(body, "cell", list(MODELS), DEFAULTS["cell"])
    hidden = integer(body, "hidden", 1, LIMITS["hidden"], DEFAULTS["hidden"])
    length = integer(body, "length", 2, LIMITS["length"], DEFAULTS["length"])
    init = choice(body, "init", [PRESET, *SCHEMES], DEFAULTS["init"])
    radius = optional_number(body, "radius", 0.0, LIMITS["radius"], open_lo=True)
    bound = LIMITS["forget_bias"]
    forget_bias = optional_number(body, "forget_bias", -bound, bound)
    seed = integer(body, "seed", 0, LIMITS["seed"], DEFAULTS["seed"])
    config = TrainConfig(model=cell, length=length, hidden_size=hidden, seed=seed,
                         init=None if init == PRESET else init, radius=radius,
                         forget_bias=forget_bias)
    net = build_model_for(config, INPUT_SIZE, 1)
    result = diagnose(*probe_inputs(net, probe_batch(length, seed)), threshold=THRESHOLD,
                      jacobian=False, lags=False)
    relative = result.trace.relative()[::-1]
    return {
        "cell": cell, "hidden": hidden, "length": length, "init": init, "radius": radius,
        "forget_bias": forget_bias, "seed": seed, "threshold": THRESHOLD,
        "relative": [float(v) if v > 0 else None for v in relative],  # by lag; 0: underflow
        "horizon": result.horizon, "decay_rate": json_number(result.decay_rate),
        "factor": json_number(math.exp(result.decay_rate)) if np.isfinite(result.decay_rate)
        else None,
        "verdict": result.verdict.kind, "reason": result.verdict.reason,
        "weights": [_weights(w) for w in result.weights],
        "notes": list(result.notes),
        "command": _command(cell, length, hidden, init, radius, forget_bias, seed),
        "ms": 1e3 * (time.perf_counter() - began),
    }


def _weights(w) -> dict:
    """One layer's W_hh against Pascanu's condition sigma_max < 1/gamma."""
    return {"layer": w.layer, "mode": w.mode, "spectral_radius": json_number(w.spectral_radius),
            "sigma_max": json_number(w.sigma_max), "gamma": w.gamma,
            "bound": None if not w.gamma else 1.0 / w.gamma,
            "vanishing_guaranteed": w.vanishing_guaranteed, "forget_bias": w.forget_bias}


def _command(cell: str, length: int, hidden: int, init: str, radius: float | None,
             forget_bias: float | None, seed: int) -> str | None:
    """The ``vanishing probe`` line that measures the same (None: it has no
    --forget-bias)."""
    if forget_bias is not None:
        return None
    line = f"vanishing probe --model {cell} --length {length} --hidden-size {hidden}"
    line += "" if init == PRESET else f" --init {init}"
    line += "" if radius is None else f" --radius {radius!r}"
    return line + f" --batch {PROBE_BATCH} --seed {seed}"


