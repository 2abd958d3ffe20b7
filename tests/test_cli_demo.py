"""The demo command end to end (tiny budget) and its bad-input paths."""

import importlib
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


def test_demo_saves_its_models_where_explore_reads_them(tmp_path):
    """`vanishing demo` writes <out>/models/<model>.pt: the very weights a run of
    demo_config trains (trained again here), read back by load_checkpoint and by the
    explore page's model store."""
    import torch

    from vanishing.demo import demo_config
    from vanishing.explore.words_panel import ModelStore
    from vanishing.train import load_checkpoint, train

    out = tmp_path / "out"
    result = runner.invoke(app, ["demo", "--gap", "20", "--steps", "10", "--models",
                                 "rnn_tanh,lstm", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"models: {out / 'models' / 'rnn_tanh.pt'}, {out / 'models' / 'lstm.pt'}" in \
        " ".join(result.output.split())
    store = ModelStore(out / "models")
    assert store.available() == ["rnn_tanh", "lstm"]
    for name in ("rnn_tanh", "lstm"):
        config, model = load_checkpoint(out / "models" / f"{name}.pt")
        assert config == demo_config(name, 20, 10, 0)
        again = train(demo_config(name, 20, 10, 0)).model.state_dict()
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, again[key], rtol=0, atol=0)
        assert store.get(name)[0] == config


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


def _cells(output: str) -> list[list[str]]:
    """The body rows of the results table as the terminal drew it."""
    return [[c.strip() for c in line.strip("│").split("│")]
            for line in output.splitlines() if line.startswith("│")]


def test_tiny_demo_writes_its_report_next_to_its_figures(tmp_path, parse_html):
    out = tmp_path / "figs"
    result = runner.invoke(app, ["demo", "--gap", "2", "--steps", "20", "--models",
                                 "rnn_tanh,lstm", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    report = out / "report.html"
    markup = report.read_text(encoding="utf-8")
    assert f"report: {report} ({report.stat().st_size / 1000:.0f} kB)" in result.output
    assert 100_000 < report.stat().st_size < 400_000
    # the same numbers as the terminal, from the same table
    html_rows = [r for r in parse_html(markup).rows if r and r[0] in ("rnn_tanh", "lstm")]
    assert html_rows[:2] == _cells(result.output)
    assert markup.count("data:image/png;base64,") == 2 and markup.count('class="w"') == 4 * 12
    assert "vanishing demo --gap 2 --steps 20 --models rnn_tanh,lstm --out" in markup
    # without colour (not a terminal) the shares are printed in brackets
    said = " ".join(result.output.split())
    assert "the share in brackets" in said and "speak[" in said


def test_html_elsewhere(tmp_path):
    out, html = tmp_path / "figs", tmp_path / "mine.html"
    result = runner.invoke(app, ["demo", "--gap", "1", "--steps", "5", "--models", "lstm",
                                 "--out", str(out), "--html", str(html), "--quiet"])
    assert result.exit_code == 0, result.output
    assert html.read_text().startswith("<!DOCTYPE html>") and not (out / "report.html").exists()


@pytest.mark.parametrize("html, message", [
    ("missing/report.html", "--html: folder"),
    ("/proc/report.html", "--html '/proc/report.html' cannot be written"),
    (".", "--html must end in .html"),
    ("report.txt", "--html must end in .html"),
    ("folder.html", "is a folder"),
])
def test_bad_html_is_one_line_exit_2_and_nothing_written(html, message, tmp_path,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.html").mkdir()
    result = runner.invoke(app, ["demo", "--html", html, "--out", "figs"])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.html"]


def _view():
    import numpy as np

    from vanishing.report.connectivity import Connectivity, log_scale
    from vanishing.report.demo_text import ConnectivityView

    words = Connectivity(["i", "france", "speak"], np.array([1e-9, 1e-3, 1.0]), "m")
    return ConnectivityView("Which words", "legend", ["m"], [("at initialisation", [words])],
                            log_scale([words]), "What to see.")


def test_connectivity_in_colour_on_a_terminal(monkeypatch):
    import io

    from rich.console import Console

    cli_demo = importlib.import_module("vanishing.cli.demo")

    monkeypatch.delenv("NO_COLOR", raising=False)
    buf = io.StringIO()
    monkeypatch.setattr(cli_demo, "console", Console(file=buf, force_terminal=True,
                                                     color_system="truecolor", width=100))
    cli_demo._print_connectivity(_view())
    text = buf.getvalue()
    assert "\x1b[" in text and "48;2;" in text and "france" in text and "[1e-03]" not in text
    assert "█" in text  # the colour scale


def test_connectivity_without_colour_prints_the_shares(monkeypatch):
    import io

    from rich.console import Console

    cli_demo = importlib.import_module("vanishing.cli.demo")

    monkeypatch.setenv("NO_COLOR", "1")
    buf = io.StringIO()
    monkeypatch.setattr(cli_demo, "console", Console(file=buf, force_terminal=True, width=100))
    cli_demo._print_connectivity(_view())
    text = buf.getvalue()
    assert "48;2;" not in text and "france[1e-03]" in text and "the share in brackets" in text
