"""The text of the demo: the set-up line, the results table, the chart of how far back the
gradient reaches, and the two sentences that say what the measurements show, as plain
strings built from a :class:`vanishing.demo.DemoReport` (no matplotlib, no terminal)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..demo import LEARNING_RATE, LSTM_FORGET_BIAS, PROBE_BATCH, DemoReport, decay_bar
from ..tasks.language import COUNTRY_POSITION
from .connectivity import Connectivity, LogScale, log_scale
from .tables import TextTable

__all__ = ["ReachChart", "banner", "results_table", "reach_chart", "sentences", "notes",
           "times", "REACH_LAGS", "figure_sentences", "ConnectivityView", "connectivity_view",
           "configuration"]

#: Distances back (in words) whose gradient ratio the chart writes out, with the country's.
REACH_LAGS = (1, 5, 10)


def banner(models: Sequence[str], gap: int, steps: int, seed: int) -> str:
    """What is about to be trained, and with which settings (every model the same)."""
    bias = f"; the lstm's forget-gate bias is {LSTM_FORGET_BIAS:g}" if "lstm" in models else ""
    return (f"Training {', '.join(models)} on the language task: gap {gap}, up to {steps} "
            f"steps each, seed {seed}; every model: hidden 64, Adam lr {LEARNING_RATE:g}, "
            f"batch 64, clip 1{bias}. Denormals are flushed to zero.")


def results_table(report: DemoReport) -> TextTable:
    """One row per model: test accuracy, best held-out accuracy, chance, status, steps,
    time, and ||dL/dh_t|| at the country word / at the last word, at init and trained."""
    rows = []
    for m in report.models:
        r = m.result
        secs = f"{r.wall_time:.1f} s" if r.wall_time < 10 else f"{r.wall_time:.0f} s"
        rows.append([m.name, f"{m.accuracy:.3f}", f"{m.best_accuracy:.3f}",
                     f"{report.chance:.3f}", r.status, str(r.steps), secs,
                     f"{m.country_ratio(m.start):.1e}", f"{m.country_ratio(m.end):.1e}"])
    header = ["model", "accuracy", "best", "chance", "status", "steps", "time",
              "grad ratio (init)", "grad ratio (trained)"]
    return TextTable(
        f"France -> French across a gap of {report.gap} words (seed {report.seed})", header,
        rows, caption=f"accuracy on {report.models[0].result.config.eval_size} test sentences "
                      "(not those that decided early stopping); best = highest held-out "
                      "accuracy during training; grad ratio = ||dL/dh_t|| at the country word "
                      "/ at the last word",
        align=["left" if h in ("model", "status") else "right" for h in header])


@dataclass
class ReachChart:
    """How far back the gradient reaches at the start of training, one bar per model.

    Attributes:
        title, legend: the heading and what a bar means.
        rows: ``name  |bar|  1: 5e-01  5: 3e-02 ...`` per model (see
            :func:`vanishing.demo.decay_bar`).
        marker: the line under the bars that points at the country word.
    """

    title: str
    legend: str
    rows: list[str]
    marker: str


def reach_chart(report: DemoReport) -> ReachChart:
    lag = report.country_lag
    width = max(len(m.name) for m in report.models)
    rows = []
    for m in report.models:
        rel = m.start.relative()[::-1]
        picks = "  ".join(f"{k}: {rel[k]:.0e}" for k in (*REACH_LAGS, lag) if k < rel.size)
        rows.append(f"  {m.name:<{width}}  |{decay_bar(m.start.norms)}|  {picks}")
    return ReachChart(
        "How far back the gradient reaches",
        "(start of training): one column per word, the last word on the left; bar height = "
        "log10 ||dL/dh_t|| / ||dL/dh_T|| from 1e-12 to 1.", rows,
        f"  {'':<{width}}   {' ' * lag}^ country word, {lag} words back")


def sentences(report: DemoReport) -> list[str]:
    """Two plain sentences that say what the measurements show (built from them)."""
    plain, gated = _pair(report)
    if plain is None or gated is None or plain.country_ratio(plain.start) == 0:
        m = report.models[0]
        return [f"The gradient at the country word was {m.country_ratio(m.start):.1e} of the "
                f"gradient at the last word for {m.name} at the start of training.",
                "Run with a plain RNN and a gated cell (the default) to compare them."]
    rp, rg = plain.country_ratio(plain.start), gated.country_ratio(gated.start)
    ap, ag = plain.accuracy, gated.accuracy
    first = (f"At the start of training, the gradient that reaches back from the answer to the "
             f"country word was {rp:.0e} of its size at the last word in the {plain.name} and "
             f"{rg:.0e} in the {gated.name}: the {plain.name}'s weight updates carry about "
             f"{times(rg / rp)} times less signal about the country.")
    if ap < 2 * report.chance and ag >= 0.9:
        best = plain.best_accuracy
        peak = f", {best:.0%} at best during training" if best >= ap + 0.05 else ""
        second = (f"So the {plain.name} stayed near chance ({ap:.1%} against "
                  f"{report.chance:.1%}{peak}) while the {gated.name}, whose gated cell state "
                  f"carries the gradient across the gap, reached {ag:.1%}.")
    else:
        second = (f"In this run the {plain.name} {plain.outcome()} and the {gated.name} "
                  f"{gated.outcome()} (chance {report.chance:.1%}); try a longer --gap to see "
                  "the plain RNN fail, or the default settings.")
    return [first, second]


def _pair(report: DemoReport):
    """The plain RNN and the gated model to compare (either may be None)."""
    by = {m.name: m for m in report.models}
    plain = next((by[n] for n in ("rnn_tanh", "rnn_relu", "irnn") if n in by), None)
    gated = next((by[n] for n in ("lstm", "gru") if n in by), None)
    return plain, gated


def _listed(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def figure_sentences(report: DemoReport) -> dict[str, str]:
    """One sentence per figure of the demo (by file stem), saying what to see in it."""
    lag = report.country_lag
    ratios = [f"{m.country_ratio(m.start):.0e} in the {m.name}" for m in report.models]
    decay = (f"At the start of training, the gradient reaching back {lag} words to the "
             f"country word, relative to its size at the last word, is {_listed(ratios)}.")
    done = []
    for m in report.models:
        r = m.result
        if r.status == "diverged":
            done.append(f"the {m.name} diverged")
        elif r.steps_to_solve is not None:
            done.append(f"the {m.name} solved the task by step {r.steps_to_solve}")
        else:
            done.append(f"the {m.name} peaked at {m.best_accuracy:.0%} in {r.steps} steps")
    curves = (f"During training {_listed(done)} (held-out accuracy; chance "
              f"{report.chance:.1%}, dotted).")
    return {"gradient-decay": decay, "accuracy": curves}


@dataclass
class ConnectivityView:
    """The demo's sentence shaded by each word's share of the answer's gradient, per model
    at initialisation and after training, on one shared log scale.

    Attributes:
        title, legend: the heading and what a shade means.
        columns: model names.  rows: ``(label, one Connectivity per model)``.
        scale: the shared :class:`~vanishing.report.connectivity.LogScale`.
        sentence: what to see, with the measured shares at the country word.
    """

    title: str
    legend: str
    columns: list[str]
    rows: list[tuple[str, list[Connectivity]]]
    scale: LogScale
    sentence: str


def connectivity_view(report: DemoReport) -> ConnectivityView | None:
    """The connectivity of :attr:`DemoReport.sample` (None if it was not measured)."""
    ms = [m for m in report.models if m.start_words is not None and m.end_words is not None]
    if len(ms) != len(report.models) or not ms:
        return None
    rows = [("at initialisation", [m.start_words for m in ms]),
            ("after training", [m.end_words for m in ms])]
    shares = [f"{m.end_words.share(COUNTRY_POSITION):.1e} in the {m.name}" for m in ms]
    word = ms[0].end_words.words[COUNTRY_POSITION]
    sentence = (f"After training, the share of the answer's gradient that reaches the country "
                f"word ({word!r}) is {_listed(shares)}.")
    plain, gated = _pair(report)
    if plain is not None and gated is not None:
        sp = plain.end_words.share(COUNTRY_POSITION)
        sg = gated.end_words.share(COUNTRY_POSITION)
        if sp > 0 and sg >= 2 * sp:
            sentence += (f" The {plain.name}'s weight update learns about {times(sg / sp)} "
                         f"times less from that word than the {gated.name}'s.")
    return ConnectivityView(
        "Which words the answer's gradient reaches",
        "each word shaded by its share of ||dL/de_t||, the gradient of the loss at the answer "
        "with respect to that word's embedding (log colour scale, one sentence, float64)",
        [m.name for m in ms], rows, log_scale([v for _, vs in rows for v in vs]), sentence)


def configuration(report: DemoReport) -> list[tuple[str, str]]:
    """What the demo ran, for the report: the models, then each training setting, shown
    once when every model had it and per model where they differ."""
    configs = [asdict(m.result.config) for m in report.models]
    out = [("models", ", ".join(m.name for m in report.models))]
    for key in configs[0]:
        if key in ("model", "seed"):
            continue
        values = ["-" if v is None else str(v) for v in (c[key] for c in configs)]
        if all(v in ("-", "{}") for v in values):
            continue  # an option no model used
        text = (values[0] if all(v == values[0] for v in values) else
                ", ".join(f"{m.name} {v}" for m, v in zip(report.models, values, strict=True)))
        out.append((key.replace("_", " "), text))
    probe = report.models[0].start
    out.append(("probe", f"{PROBE_BATCH} held-out sentences of {len(probe.norms)} words, "
                         "float64, denormals flushed to zero"))
    return out


def notes(report: DemoReport) -> list[str]:
    """Warnings about the measurements themselves (gradient norms that are not finite)."""
    finite = all(np.isfinite(m.start.norms).all() for m in report.models)
    return [] if finite else ["note: some gradient norms were not finite"]


def times(r: float) -> str:
    """A ratio in words a reader can take in: '300', '40,000' or '10^9'."""
    return f"{r:,.0f}" if r < 1e5 else f"10^{np.log10(r):.0f}"
