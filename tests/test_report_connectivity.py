"""Connectivity (||dL/de_t|| at the embedding output, per word) against a hand-run forward
and torch.autograd.grad; its scale and its three renderings; the trained demo's LSTM
against its tanh RNN at the country word (slow)."""

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from vanishing.demo import demo_config
from vanishing.report.connectivity import (
    RAMP,
    Connectivity,
    LogScale,
    connectivity,
    log_scale,
    scale_html,
    task_connectivity,
    to_html,
    to_plain,
    to_rich,
)
from vanishing.tasks.language import COUNTRY_POSITION, PAIRS, LanguageTask
from vanishing.train import build


def _sentence(gap=6, seed=1):
    task = LanguageTask()
    x, y = task.sample(gap, 3, torch.Generator().manual_seed(seed))
    return task, x, y


def _by_hand(model, ids, answer):
    """||dL/de_t|| written out: embed the ids ourselves, run the core and the head, and ask
    autograd for the gradient at the embedding."""
    e = F.embedding(ids[None], model.embed.weight).detach().requires_grad_(True)
    hs, _ = model.core(e)
    loss = F.cross_entropy(model.head(hs[:, -1]), answer[None])
    (g,) = torch.autograd.grad(loss, e)
    return g[0].norm(dim=-1).numpy()


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru"])
def test_norms_match_autograd_at_the_embedding_of_a_hand_run_forward(name):
    task, x, y = _sentence()
    _, model = build(demo_config(name, 6, 10, 0))
    model = model.double()
    words = [task.vocab[int(i)] for i in x[0]]
    view = connectivity(model, x[0], lambda out: task.loss(out, y[:1]), model.embed, words,
                        label=name)
    expected = _by_hand(model, x[0], y[0])
    np.testing.assert_allclose(view.norms, expected, rtol=1e-10, atol=0)
    assert view.words == words and view.label == name
    assert view.shares.sum() == pytest.approx(1.0)
    assert view.share(COUNTRY_POSITION) == pytest.approx(expected[COUNTRY_POSITION]
                                                         / expected.sum())


def test_task_connectivity_runs_a_float64_copy_and_names_the_words():
    task, x, y = _sentence()
    _, model = build(demo_config("rnn_tanh", 6, 10, 0))
    view = task_connectivity(model, task, x, y, label="rnn_tanh")
    assert next(model.parameters()).dtype == torch.float32  # the model itself is untouched
    expected = _by_hand(model.double(), x[0], y[0])
    np.testing.assert_allclose(view.norms, expected, rtol=1e-10)
    assert view.words[COUNTRY_POSITION] in {country for country, _ in PAIRS}
    assert view.words[-4:] == ["and", "now", "i", "speak"]


def test_task_connectivity_takes_an_embedding_of_the_model_only():
    task, x, y = _sentence()
    _, model = build(demo_config("lstm", 6, 10, 0))
    same = task_connectivity(model, task, x, y, embedding=model.embed)
    np.testing.assert_array_equal(same.norms, task_connectivity(model, task, x, y).norms)
    with pytest.raises(ValueError, match="submodule of model"):
        task_connectivity(model, task, x, y, embedding=torch.nn.Embedding(3, 2))


def test_bad_input_is_named():
    task, x, y = _sentence()
    _, model = build(demo_config("lstm", 6, 10, 0))
    words = [task.vocab[int(i)] for i in x[0]]

    def loss(out):
        return task.loss(out, y[:1])

    with pytest.raises(ValueError, match="name each of the 16 tokens, got 3"):
        connectivity(model, x[0], loss, model.embed, words[:3])
    with pytest.raises(ValueError, match="one sentence"):
        connectivity(model, x, loss, model.embed, words)
    with pytest.raises(TypeError, match="integer tensor"):
        connectivity(model, x[0].float(), loss, model.embed, words)
    with pytest.raises(ValueError, match="one norm per word"):
        Connectivity(["a", "b"], np.ones(3))
    with pytest.raises(ValueError, match="zero at every word"):
        _ = Connectivity(["a", "b"], np.zeros(2)).shares


def test_log_scale_spans_every_view_from_a_decade_below_the_smallest_share():
    a = Connectivity(["x", "y"], np.array([3e-9, 1.0]))
    b = Connectivity(["x", "y"], np.array([0.5, 0.5]))
    scale = log_scale([a, b])
    assert scale == LogScale(1e-9, 1.0)
    assert scale.position(1.0) == 1.0 and scale.position(1e-9) == pytest.approx(0.0)
    assert scale.position(1e-12) == 0.0 and scale.position(0.0) == 0.0
    assert scale.color(1.0) == RAMP[-1] and scale.color(1e-9) == RAMP[0]
    assert scale.ink(1.0) == "#ffffff" and scale.ink(1e-9) == "#111111"
    ticks = scale.ticks()
    assert ticks[-1] == 1.0 and len(ticks) <= 7
    assert all(math.log10(t) == round(math.log10(t)) for t in ticks)


def test_html_carries_each_share_on_hover_and_escapes_words():
    view = Connectivity(["<b>", "france", "speak"], np.array([1.0, 2.0, 7.0]), label="m & n")
    scale = log_scale([view])
    markup = to_html(view, scale)
    assert "<b>" not in markup and "&lt;b&gt;" in markup and 'aria-label="m &amp; n"' in markup
    assert 'data-share="2.0e-01"' in markup and 'title="france: 2.0e-01 of the gradient' in markup
    assert markup.count('class="w"') == 3 and f"background:{scale.color(0.7)}" in markup
    assert "1e-2" in scale_html(scale) or "1e-1" in scale_html(scale)


def test_terminal_renderings_colour_or_brackets():
    view = Connectivity(["i", "france"], np.array([1.0, 3.0]))
    assert to_plain(view) == "i[2e-01] france[8e-01]"
    scale = log_scale([view])
    text = to_rich(view, scale)
    assert text.plain == "i france"
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor").print(text)
    r, g, b = (int(scale.color(0.75)[i:i + 2], 16) for i in (1, 3, 5))
    assert f"48;2;{r};{g};{b}" in out.getvalue()  # the word's background, in true colour


@pytest.mark.slow
def test_trained_demo_lstm_share_at_the_country_word_is_100x_the_tanh_rnns():
    from vanishing.demo import run_demo

    report = run_demo(models=["rnn_tanh", "lstm"])
    by = {m.name: m for m in report.models}
    tanh = by["rnn_tanh"].end_words.share(COUNTRY_POSITION)
    lstm = by["lstm"].end_words.share(COUNTRY_POSITION)
    print(f"trained share at the country word: lstm {lstm:.2e}, rnn_tanh {tanh:.2e}, "
          f"ratio {lstm / tanh:.1e}")
    assert lstm >= 100 * tanh
