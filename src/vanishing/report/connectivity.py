r"""Connectivity: how much of the answer's gradient reaches each word of a sentence.

After Madsen's "Visualizing memorization in RNNs" (Distill, 2019): for one sentence the
model reads, ||dL/de_t|| is the gradient of the loss at the answer with respect to the
embedding of word t (the output of the embedding module, :func:`vanishing.probe.
input_gradients` with ``at=embedding``). Its *share*, ||dL/de_t|| / sum_s ||dL/de_s||,
says which words the weight update can learn from; the sentence is drawn with each word
shaded by its share on a log colour scale (:class:`LogScale`), as HTML (the value on
hover), as rich text for a terminal, or as plain text with the shares in brackets.

Shapes: one sentence of T token ids, ``(T,)`` or ``(1, T)``; ``words`` the T strings.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from ..probe import input_gradients

__all__ = ["Connectivity", "LogScale", "RAMP", "SMALLEST", "connectivity", "task_connectivity",
           "log_scale", "to_html", "scale_html", "grid_html", "to_rich", "scale_rich", "to_plain",
           "share_text"]

#: The colour ramp of the log scale, from the smallest share (0) to 1 (Blues, light to dark).
RAMP = ("#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b")
#: Shares below this are drawn at the bottom of the scale (they are still reported).
SMALLEST = 1e-20
#: Positions on the scale above this get white text (the background is dark there).
_DARK = 0.55


@dataclass
class Connectivity:
    """The answer's gradient at each word of one sentence.

    Attributes:
        words: the T words, in reading order.
        norms: (T,) float64 ||dL/de_t||, the gradient at the embedding output of word t.
        label: what was measured, e.g. ``"lstm, after training"``.
    """

    words: list[str]
    norms: np.ndarray
    label: str = ""

    def __post_init__(self) -> None:
        self.norms = np.asarray(self.norms, dtype=np.float64)
        if self.norms.ndim != 1 or self.norms.size != len(self.words):
            raise ValueError(f"connectivity needs one norm per word: {len(self.words)} words, "
                             f"norms of shape {tuple(self.norms.shape)}")

    @property
    def shares(self) -> np.ndarray:
        """(T,) ||dL/de_t|| / sum_s ||dL/de_s||: each word's share of the gradient."""
        total = self.norms.sum()
        if not total > 0:
            raise ValueError(f"{self.label or 'connectivity'}: the gradient is zero at every "
                             f"word, so no word has a share of it")
        return self.norms / total

    def share(self, index: int) -> float:
        """The share of word ``index`` (e.g. the country word)."""
        return float(self.shares[index])


def connectivity(model: nn.Module, token_ids: Tensor, loss: Callable[[Tensor], Tensor] | None,
                 embedding: nn.Module, words: Sequence[str], *,
                 label: str = "") -> Connectivity:
    """||dL/de_t|| at the output of ``embedding`` for every word of one sentence.

    Args:
        model: any module taking (1, T) token ids (batch first).
        token_ids: the sentence, (T,) or (1, T) integer ids.
        loss: the loss of the model's output for this sentence (e.g. the task's loss
            against its answer); None: the probe's default loss (the last step's output
            on a fixed random direction).
        embedding: the submodule whose output e_t is differentiated (``model.embed``).
        words: the T words the ids stand for (what is shown).
        label: what is measured, shown beside the sentence.

    Runs in the model's dtype: pass a float64 copy to measure shares far below 1e-38.
    """
    if not isinstance(token_ids, Tensor) or token_ids.is_floating_point():
        raise TypeError(f"token_ids must be an integer tensor, got "
                        f"{getattr(token_ids, 'dtype', type(token_ids).__name__)}")
    ids = token_ids if token_ids.dim() == 2 else token_ids.reshape(1, -1)
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"token_ids must be one sentence, (T,) or (1, T), got shape "
                         f"{tuple(token_ids.shape)}")
    words = [str(w) for w in words]
    if len(words) != ids.shape[1]:
        raise ValueError(f"words must name each of the {ids.shape[1]} tokens, got "
                         f"{len(words)} words")
    trace = input_gradients(model, ids, loss, at=embedding, time_dim=1)
    return Connectivity(words, trace.norms, label)


def task_connectivity(model: nn.Module, task, x: Tensor, y: Tensor, *,
                      embedding: nn.Module | None = None, label: str = "") -> Connectivity:
    """The connectivity of the first sequence of a task's batch ``(x, y)`` with the task's
    loss, on a float64 copy of ``model`` (:func:`vanishing.train.probe_inputs`), so shares
    far below float32's range are measured; words from ``task.vocab`` (else the ids).

    ``embedding`` defaults to the model's ``embed`` (a :class:`vanishing.models.
    SequenceModel` on token input); it must be a submodule of ``model``.
    """
    from ..train import probe_inputs

    model64, x64, loss = probe_inputs(model, x[:1], task, y[:1])
    if embedding is None:
        embedding = getattr(model64, "embed", None)
        if not isinstance(embedding, nn.Module):
            raise ValueError(f"{type(model).__name__} has no embedding module 'embed'; pass "
                             f"embedding= (connectivity needs token input)")
    else:  # the same submodule of the float64 copy
        path = next((n for n, m in model.named_modules() if m is embedding), None)
        if path is None:
            raise ValueError("embedding must be a submodule of model")
        embedding = model64.get_submodule(path)
    vocab = getattr(task, "vocab", None)
    words = [vocab[int(i)] if vocab is not None else str(int(i)) for i in x[0]]
    return connectivity(model64, x64[0], loss, embedding, words, label=label)


@dataclass(frozen=True)
class LogScale:
    """Shares from ``lo`` to ``hi`` on a log10 colour scale (:data:`RAMP`)."""

    lo: float
    hi: float = 1.0

    def position(self, value: float) -> float:
        """log10(value) between log10(lo) (0) and log10(hi) (1), clipped."""
        if not value > 0:
            return 0.0
        a, b = math.log10(self.lo), math.log10(self.hi)
        return min(max((math.log10(value) - a) / (b - a), 0.0), 1.0)

    def color(self, value: float) -> str:
        """``#rrggbb`` of ``value`` on the ramp."""
        return _ramp(self.position(value))

    def ink(self, value: float) -> str:
        """The text colour that reads on :meth:`color`: white on dark, near black on light."""
        return "#ffffff" if self.position(value) > _DARK else "#111111"

    def ticks(self) -> list[float]:
        """Powers of ten from lo to hi, at most 7 of them (every k-th decade)."""
        a, b = round(math.log10(self.lo)), round(math.log10(self.hi))
        step = max(1, math.ceil((b - a) / 6))
        return [10.0 ** e for e in range(b, a - 1, -step)][::-1]


def log_scale(views: Sequence[Connectivity]) -> LogScale:
    """One scale for every view: from the decade below the smallest nonzero share (not below
    :data:`SMALLEST`) to 1, so the same colour means the same share everywhere."""
    positive = [s for v in views for s in v.shares if s > 0]
    low = max(min(positive, default=1e-3), SMALLEST)
    return LogScale(10.0 ** math.floor(math.log10(low) - 1e-9), 1.0)


def _ramp(p: float) -> str:
    stops = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in RAMP]
    x = p * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    rgb = (round(a + (b - a) * f) for a, b in zip(stops[i], stops[i + 1], strict=True))
    return "#" + "".join(f"{v:02x}" for v in rgb)


def share_text(value: float) -> str:
    """A share as the reports write it: ``4.1e-01``."""
    return f"{value:.1e}"


# -- HTML ----------------------------------------------------------------------------------
def to_html(view: Connectivity, scale: LogScale) -> str:
    """The sentence as ``<span>`` s shaded by share, each with its value in ``title`` and
    ``data-share`` (the report's inline script shows it on hover and on focus), and in full
    precision in ``data-value``."""
    spans = []
    for word, share, norm in zip(view.words, view.shares, view.norms, strict=True):
        tip = f"{word}: {share_text(share)} of the gradient (||dL/de_t|| = {norm:.2e})"
        spans.append(f'<span class="w" tabindex="0" style="background:{scale.color(share)};'
                     f'color:{scale.ink(share)}" title="{html.escape(tip)}" '
                     f'data-share="{share_text(share)}" data-value="{float(share)!r}">'
                     f'{html.escape(word)}</span>')
    label = html.escape(view.label)
    return (f'<p class="sentence" aria-label="{label}">{" ".join(spans)}</p>'
            f'<output class="readout">hover a word for its share</output>')


def grid_html(columns: Sequence[str], rows: Sequence[tuple[str, Sequence[Connectivity]]],
              scale: LogScale) -> str:
    """Views side by side: one column per ``columns`` name (e.g. a model), one row per
    ``(label, views)`` (e.g. at initialisation, after training), on one shared scale."""
    head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in columns)
    body = "".join(
        f'<tr><th scope="row">{html.escape(label)}</th>' +
        "".join(f'<td><div class="panel">{to_html(v, scale)}</div></td>' for v in views) +
        "</tr>" for label, views in rows)
    return (f'<div class="table-wrap"><table class="conn"><colgroup><col style="width:8em">'
            f"</colgroup><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"</div>")


def scale_html(scale: LogScale) -> str:
    """The colour bar with its decades labelled: what a shade means."""
    stops = ", ".join(f"{c} {100 * i / (len(RAMP) - 1):.0f}%" for i, c in enumerate(RAMP))
    ticks = "".join(f'<span style="left:{100 * scale.position(t):.1f}%">{_decade(t)}</span>'
                    for t in scale.ticks())
    return (f'<div class="scale"><div class="bar" style="background:linear-gradient(to right, '
            f'{stops})"></div><div class="ticks">{ticks}</div>'
            f'<div class="scale-label">share of ||dL/de_t|| (log scale)</div></div>')


def _decade(value: float) -> str:
    return "1" if value == 1 else f"1e{round(math.log10(value))}"


# -- terminal --------------------------------------------------------------------------------
def to_rich(view: Connectivity, scale: LogScale):
    """The sentence as ``rich.text.Text``, each word on its shade."""
    from rich.text import Text

    out = Text()
    for i, (word, share) in enumerate(zip(view.words, view.shares, strict=True)):
        if i:
            out.append(" ")
        out.append(word, style=f"{scale.ink(share)} on {scale.color(share)}")
    return out


def scale_rich(scale: LogScale):
    """The colour bar as rich text: ``1e-12 ████████ 1``."""
    from rich.text import Text

    out = Text(_decade(scale.lo) + " ")
    for k in range(24):
        value = 10 ** (math.log10(scale.lo) + k / 23 * math.log10(scale.hi / scale.lo))
        out.append("█", style=scale.color(value))
    out.append(" " + _decade(scale.hi))
    return out


def to_plain(view: Connectivity) -> str:
    """The sentence with each word's share in brackets: ``france[4e-01]``."""
    return " ".join(f"{w}[{s:.0e}]" for w, s in zip(view.words, view.shares, strict=True))
