"""The demo's text from a report built by hand: gradient ratios a power of ten per word back."""

import numpy as np
import pytest

from vanishing.demo import DemoReport, ModelReport, demo_config
from vanishing.probe import Trace
from vanishing.report.demo_text import banner, notes, reach_chart, results_table, sentences, times
from vanishing.tasks.language import COUNTRY_POSITION
from vanishing.train import TrainResult, build

GAP = 3


def model_report(name, decades_per_word, accuracy, best, status="unsolved"):
    config = demo_config(name, GAP, 10, 0)
    task, model = build(config)
    history = [{"step": 5, "train_loss": 1.0, "loss": 1.0, "accuracy": best},
               {"step": 10, "train_loss": 1.0, "loss": 1.0, "accuracy": accuracy}]
    result = TrainResult(config, model, task, status, 10, None, history=history,
                         test={"loss": 1.0, "accuracy": accuracy}, wall_time=12.3)
    steps = COUNTRY_POSITION + GAP + 6  # words up to the question's last word
    trace = Trace(norms=10.0 ** (-decades_per_word * np.arange(steps)[::-1]))
    return ModelReport(name, result, trace, trace)


def report():
    models = [model_report("rnn_tanh", 1.0, 0.1, 0.3), model_report("lstm", 0.1, 1.0, 1.0,
                                                                    "solved")]
    return DemoReport(GAP, 10, 0, 0.125, "i grew up in france ...", models)


def test_the_table_rows_are_the_measurements():
    demo = report()
    lag = demo.country_lag
    assert lag == len(demo.models[0].start.norms) - 1 - COUNTRY_POSITION
    table = results_table(demo)
    assert table.rows[0] == ["rnn_tanh", "0.100", "0.300", "0.125", "unsolved", "10", "12 s",
                             f"{10.0 ** -lag:.1e}", f"{10.0 ** -lag:.1e}"]
    assert table.rows[1][:5] == ["lstm", "1.000", "1.000", "0.125", "solved"]
    assert table.align[:2] == ["left", "right"] and table.align[4] == "left"
    assert table.caption.startswith(f"accuracy on {demo_config('lstm', GAP, 10, 0).eval_size} "
                                    f"test sentences")


def test_the_chart_writes_out_the_ratios_a_few_words_back():
    demo = report()
    chart = reach_chart(demo)
    lag = demo.country_lag
    assert chart.title == "How far back the gradient reaches"
    assert chart.rows[0].startswith("  rnn_tanh  |")
    assert lag == 8 and len(demo.models[0].start.norms) == 13  # lags 0..12
    assert chart.rows[0].endswith("|  1: 1e-01  5: 1e-05  10: 1e-10  8: 1e-08")
    assert chart.marker.endswith(f"^ country word, {lag} words back")
    assert chart.marker.index("^") == chart.rows[0].index("|") + 1 + lag


def test_the_sentences_say_how_much_less_signal_the_plain_rnn_gets():
    first, second = sentences(report())
    lag = report().country_lag
    assert f"was 1e-{lag:02d} of its size at the last word in the rnn_tanh" in first
    assert f"about {times(10.0 ** (0.9 * lag))} times less signal" in first
    assert second.startswith("So the rnn_tanh stayed near chance (10.0% against 12.5%, 30% at "
                             "best during training) while the lstm")


@pytest.mark.parametrize("ratio, words", [(300, "300"), (4e4, "40,000"), (1e9, "10^9")])
def test_times(ratio, words):
    assert times(ratio) == words


def test_banner_and_notes():
    assert banner(["gru"], 5, 100, 2) == (
        "Training gru on the language task: gap 5, up to 100 steps each, seed 2; every model: "
        "hidden 64, Adam lr 0.01, batch 64, clip 1. Denormals are flushed to zero.")
    assert "the lstm's forget-gate bias is 2" in banner(["lstm"], 5, 100, 2)
    demo = report()
    assert notes(demo) == []
    demo.models[0].start.norms[0] = np.nan
    assert notes(demo) == ["note: some gradient norms were not finite"]
