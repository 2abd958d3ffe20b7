"""Figures for a probe diagnosis (matplotlib, no global pyplot state).

Drawn on a fresh ``matplotlib.figure.Figure`` with the Agg canvas and written as a PNG,
so it is safe in threads and never opens a window.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..diagnose import Diagnosis
from .figures import save

__all__ = ["plot_diagnosis", "diagnosis_figure"]


def plot_diagnosis(diagnosis: Diagnosis, path: str | Path, *, title: str = "") -> Path:
    """:func:`diagnosis_figure` written at ``path`` (its folder must exist)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"plot: directory {str(path.parent)!r} does not exist")
    return save(diagnosis_figure(diagnosis, title=title), path)


def diagnosis_figure(diagnosis: Diagnosis, *, title: str = "") -> Figure:
    """Gradient through time, against the distance back T - t, in two or three panels.

    1. log10 ||dL/dh_t|| / ||dL/dh_T|| for every layer, the threshold and the horizon;
    2. log10 ||dh_T/dh_t||_2 of the Jacobian product (if computed);
    3. the share of dL/dW_hh from lags >= k (if the lag decomposition was computed).

    Logs are plotted, so values far below float64's range still show.
    """
    panels = 1 + (diagnosis.jacobian is not None) + (diagnosis.lags is not None)
    fig = Figure(figsize=(5.2 * panels, 4), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    for name, norms in diagnosis.trace.layers.items():
        rev = np.asarray(norms, dtype=np.float64)[::-1]
        ok = rev > 0
        lag = np.arange(rev.size)
        ax.plot(lag[ok], np.log10(rev[ok] / rev[0]), label=name, lw=1.5)
    ax.axhline(math.log10(diagnosis.threshold), color="0.4", ls=":", lw=1,
               label=f"threshold {diagnosis.threshold:g}")
    ax.axvline(diagnosis.horizon, color="#d62728", ls="--", lw=1,
               label=f"horizon {diagnosis.horizon}")
    ax.set(xlabel="distance back in time, T - t", ylabel="log10 ||dL/dh_t|| / ||dL/dh_T||",
           title="How far back the gradient reaches")
    ax.legend(fontsize=8)
    i = 1
    if diagnosis.jacobian is not None:
        jac = diagnosis.jacobian
        ax = axes[i]
        ax.plot(np.arange(jac.log_frobenius.size), jac.log10_spectral()[::-1], color="#1f77b4")
        ax.set(xlabel="distance back in time, T - t", ylabel="log10 ||dh_T/dh_t||_2",
               title=f"Jacobian product ({jac.layer})")
        i += 1
    if diagnosis.lags is not None:
        ax = axes[i]
        shares = diagnosis.lags.shares().numpy()
        ax.plot(np.arange(shares.size), shares, color="#2ca02c", marker="o", ms=2)
        ax.set_xlim(-0.5, min(shares.size - 1, max(10, 3 * diagnosis.horizon)) + 0.5)
        ax.set(xlabel="lag k", ylabel="share of the update from lags >= k",
               title="Where the W_hh update comes from")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig
