"""The demo command end to end (tiny budget) and its bad-input paths."""

import os

import pytest
from typer.testing import CliRunner

from vanishing.cli import app

runner = CliRunner()


def test_help_lists_commands_and_every_command_has_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = [c.name for c in app.registered_commands] + [
        g.name for g in app.registered_groups
    ]
    assert "demo" in commands
    for name in commands:
        assert name in result.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, name
        assert "--help" in sub.output


def test_tiny_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "figs"
    result = runner.invoke(app, ["demo", "--gap", "2", "--steps", "20", "--models",
                                 "rnn_tanh,lstm", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    for word in ("rnn_tanh", "lstm", "accuracy", "country word", "figures:"):
        assert word in result.output
    for name in ("gradient-decay.png", "accuracy.png"):
        assert (out / name).stat().st_size > 10_000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gap", "-1"], "gap must be >= 0, got -1"),
        (["--steps", "0"], "steps must be a positive int, got 0"),
        (["--models", "rnn_tanh,transformer"], "unknown model 'transformer'"),
        (["--models", ","], "models must be a non-empty list"),
        (["--seed", "-3"], "seed must be >= 0"),
        (["--threads", "0"], "threads must be a positive int, got 0"),
        (["--models", "lstm,lstm"], "each model once"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path):
    out = tmp_path / "not-yet"
    result = runner.invoke(app, ["demo", "--out", str(out), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # no banner before it
    assert not out.exists()  # nothing created for a run that never starts


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_unwritable_out():
    # nobody, root included, can create a folder inside /proc
    result = runner.invoke(app, ["demo", "--out", "/proc/vanishing-out", "--steps", "5"])
    assert result.exit_code == 2 and "not a writable folder" in result.output


def test_out_that_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    result = runner.invoke(app, ["demo", "--out", str(f), "--steps", "5"])
    assert result.exit_code == 2
    assert "not a writable folder" in result.output
    assert f.read_text() == "keep me"


def test_sentences_name_a_diverged_run_instead_of_printing_nan():
    import numpy as np

    from vanishing.demo import DemoReport, ModelReport, demo_config
    from vanishing.probe import Trace
    from vanishing.report.demo_text import sentences
    from vanishing.train import TrainResult, build

    def report(name, status, test):
        config = demo_config(name, 3, 10, 0)
        task, model = build(config)
        result = TrainResult(config, model, task, status, 10, None, test=test)
        trace = Trace(norms=np.geomspace(1e-6, 1.0, 10))
        return ModelReport(name, result, trace, trace)

    demo = DemoReport(3, 10, 0, 0.125, "", [report("rnn_tanh", "diverged", {}),
                                           report("lstm", "solved", {"accuracy": 0.5})])
    text = " ".join(sentences(demo))
    assert "nan" not in text.lower()
    assert "rnn_tanh reached diverged" not in text and "diverged" in text and "50.0%" in text
