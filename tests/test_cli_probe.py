"""``vanishing probe`` through a local typer app: exit codes, the table and the verdict."""

import copy
import importlib
import re

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from vanishing.cli.probe import probe
from vanishing.models import build_model
from vanishing.probe import hidden_gradients
from vanishing.train import TrainConfig, save_checkpoint, train

app = typer.Typer()
app.command("probe")(probe)


@app.command("other")
def _other() -> None:
    """A second command, so that ``probe`` is a subcommand as in the real app."""


runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def run(*args: str):
    return runner.invoke(app, ["probe", *args], env=WIDE)


def test_tanh_rnn_report_prints_what_the_library_measures():
    result = run("--model", "rnn_tanh", "--length", "60", "--hidden-size", "16", "--rows", "8")
    assert result.exit_code == 0, result.output
    out = result.output
    for part in ["T - t", "||dL/dh_t||", "||dh_T/dh_t||_2", "decay rate:", "Lyapunov",
                 "spectral radius", "Pascanu", "saturation core.l0", "share of the W_hh update",
                 "diagnosis: vanishing", "try: use a gated cell"]:
        assert part in out, part
    # the horizon printed is the one measured on the same model and batch
    model = build_model("rnn_tanh", 8, 16, 1, seed=0)
    x = torch.randn(16, 60, 8, generator=torch.Generator().manual_seed(10_000))
    expected = hidden_gradients(copy.deepcopy(model).double(), x.double()).horizon()
    assert re.search(rf"^horizon: {expected} steps", out, re.M)
    assert "..." in out  # long sequences show sampled rows


def test_lstm_on_a_task_with_a_plot(tmp_path):
    path = tmp_path / "probe.png"
    result = run("--model", "lstm", "--task", "adding", "--length", "12", "--hidden-size", "8",
                 "--plot", str(path), "--rows", "0")
    assert result.exit_code == 0, result.output
    assert "task adding" in result.output and "(largest over the gate blocks)" in result.output
    assert "share of the W_hh update" not in result.output  # Elman only
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert len([ln for ln in result.output.splitlines() if re.match(r"^\s+\d+\s+\d+\s", ln)]) == 12


def test_exploding_with_a_large_radius():
    result = run("--length", "80", "--radius", "3", "--hidden-size", "16")
    assert result.exit_code == 0, result.output
    assert "diagnosis: exploding" in result.output and "try: clip" in result.output


def test_checkpoint(tmp_path):
    config = TrainConfig(task="adding", model="gru", length=10, hidden_size=8, steps=2,
                         batch_size=4, eval_every=1, eval_size=8, embedding_size=None)
    path = save_checkpoint(tmp_path / "run.pt", train(config))
    result = run("--checkpoint", str(path))
    assert result.exit_code == 0, result.output
    assert "trained on adding" in result.output and "T = 10 steps" in result.output
    bad = run("--checkpoint", str(path), "--model", "lstm")
    assert bad.exit_code == 2 and "cannot be combined with --checkpoint" in bad.output


@pytest.mark.parametrize("args, message", [
    (["--model", "transformer"], "unknown model 'transformer'"),
    (["--task", "nope"], "unknown task 'nope'"),
    (["--checkpoint", "/nonexistent/run.pt"], "does not exist"),
    (["--plot", "/nonexistent/dir/p.png"], "--plot: directory"),
    (["--length", "0"], "time >= 1, got shape (16, 0, 8)"),
    (["--length", "1"], "a gradient through time needs at least two steps"),
    (["--threshold", "5"], "--threshold must be in (0, 1)"),
    (["--init", "zeros"], "unknown init scheme"),
])
def test_bad_usage_is_one_line_and_exit_code_2(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_help_on_every_option():
    result = run("--help")
    assert result.exit_code == 0
    for option in ["--model", "--length", "--checkpoint", "--task", "--init", "--radius",
                   "--plot", "--threshold", "--batch", "--seed", "--max-lag", "--rows"]:
        assert option in result.output


def _rows(output: str) -> dict[int, list[str]]:
    """Table rows by lag T - t: the cells after the lag and t."""
    rows = [ln.split() for ln in output.splitlines() if re.match(r"^\s+\d+\s+\d+\s", ln)]
    return {int(cells[0]): cells[2:] for cells in rows}


def test_an_underflowed_gradient_is_not_shown_as_an_exact_zero():
    # at radius 0.3 the entries of dL/dh_t underflow float64 about 490 steps back
    result = run("--length", "520", "--radius", "0.3", "--hidden-size", "8", "--batch", "2",
                 "--rows", "0", "--threshold", "1e-300")
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert all(cells[0] != "0" and cells[1] != "0" for cells in rows.values())
    norm, ratio, jacobian = rows[519]
    assert norm == ratio == "underflow" and re.fullmatch(r"\d\.\d+e-\d{3}", jacobian)
    assert float(rows[0][0]) > 0  # the last steps still show numbers
    out = result.output
    # the horizon ends where the ratio falls below 1e-300 or, if it never does, where the
    # gradient underflows; either way the line says which
    assert re.search(r"^horizon: \d+ steps .*(then underflows float64, so it may reach "
                     r"further|then falls below)\)$", out, re.M)
    assert re.search(r"^note: \|\|dL/dh_t\|\| underflows float64 from \d+ steps back", out, re.M)
    assert "1e-300 is reported as itself" not in run("--help").output


def test_a_true_zero_stays_zero_and_a_short_horizon_still_falls_below():
    from vanishing.report.probe_text import underflowed

    norms = np.array([0.0, 0.0, 1e-3, 1.0, 0.0, 1e-160, 0.5])
    assert underflowed(norms).tolist() == [False, False, False, False, True, False, False]
    result = run("--length", "520", "--radius", "0.3", "--hidden-size", "8", "--batch", "2")
    assert result.exit_code == 0, result.output
    assert re.search(r"^horizon: \d+ steps .*; then falls below\)$", result.output, re.M)


@pytest.mark.parametrize("args, message", [
    (["--threshold", "0"], "--threshold must be in (0, 1)"),
    (["--threshold", "-0.5"], "--threshold must be in (0, 1)"),
    (["--threshold", "1"], "--threshold must be in (0, 1)"),
    (["--threshold", "nan"], "--threshold must be in (0, 1)"),
    (["--threshold", "1e-320"], "--threshold must be in (0, 1)"),
    (["--plot", "x.txt"], "--plot must end in .png, .pdf or .svg"),
    (["--plot", "fig"], "--plot must end in .png, .pdf or .svg"),
    (["--task", "adding", "--input-size", "4"], "--input-size cannot be combined with --task"),
])
def test_bad_usage_is_rejected_before_any_work(args, message, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the probe ran before the usage was checked")

    monkeypatch.setattr(importlib.import_module("vanishing.cli.probe"), "diagnose", no_work)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_checkpoint_refuses_every_option_that_builds_a_model(tmp_path):
    config = TrainConfig(task="adding", model="gru", length=10, hidden_size=8, steps=1,
                         batch_size=4, eval_every=1, eval_size=8, embedding_size=None)
    path = save_checkpoint(tmp_path / "run.pt", train(config))
    for flag, value in [("--model", "lstm"), ("--task", "latch"), ("--init", "orthogonal"),
                        ("--radius", "0.9"), ("--hidden-size", "64"), ("--input-size", "8"),
                        ("--layers", "1")]:  # even at the value of the default
        result = run("--checkpoint", str(path), flag, value)
        assert result.exit_code == 2, (flag, result.output)
        assert f"{flag} cannot be combined with --checkpoint" in result.output
        assert len(result.output.strip().splitlines()) == 1
    ok = run("--checkpoint", str(path), "--length", "12", "--batch", "2", "--seed", "3")
    assert ok.exit_code == 0 and "T = 12 steps" in ok.output


@pytest.mark.parametrize("suffix", ["pdf", "SVG"])
def test_plot_in_other_formats(tmp_path, suffix):
    path = tmp_path / f"probe.{suffix}"
    result = run("--length", "6", "--hidden-size", "4", "--batch", "2", "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert path.stat().st_size > 0


def test_html_report_holds_the_terminals_table(tmp_path, parse_html):
    html = tmp_path / "probe.html"
    result = run("--model", "rnn_tanh", "--length", "30", "--hidden-size", "8", "--rows", "8",
                 "--html", str(html))
    assert result.exit_code == 0, result.output
    markup = html.read_text(encoding="utf-8")
    rows = {int(r[0]): r[2:] for r in parse_html(markup).rows if r and r[0].isdigit()}
    assert rows == _rows(result.output) and len(rows) >= 8
    assert markup.count("data:image/png;base64,") == 1 and 'class="w"' not in markup
    assert "diagnosis: " in markup and f"report: {html}" in " ".join(result.output.split())


def test_html_report_of_token_input_shows_which_tokens_the_gradient_reaches(tmp_path):
    html = tmp_path / "probe.html"
    result = run("--model", "lstm", "--task", "language", "--length", "3", "--hidden-size",
                 "8", "--html", str(html))
    assert result.exit_code == 0, result.output
    markup = html.read_text(encoding="utf-8")
    assert markup.count('class="w"') == 13 and "Which inputs the gradient reaches" in markup
    assert ">speak</span>" in markup


@pytest.mark.parametrize("html, message", [
    ("missing/p.html", "--html: folder"),
    ("/proc/p.html", "cannot be written"),
    ("p.png", "--html must end in .html"),
])
def test_bad_html_is_refused_before_any_work(html, message, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the probe ran before --html was checked")

    monkeypatch.setattr(importlib.import_module("vanishing.cli.probe"), "diagnose", no_work)
    monkeypatch.chdir(tmp_path)
    result = run("--html", html)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_that_does_not_fit_is_one_line(tmp_path):
    config = TrainConfig(task="language", model="gru", length=3, hidden_size=8,
                         embedding_size=4, steps=1, batch_size=8, eval_size=16)
    path = save_checkpoint(tmp_path / "run.pt", train(config))
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden_size"] = 16
    torch.save(payload, path)
    torch.save(train(config).model.state_dict(), tmp_path / "mine.pt")
    for name, message in [("run.pt", "does not fit its config"),
                          ("mine.pt", "bare state dict")]:
        result = run("--checkpoint", str(tmp_path / name))
        assert result.exit_code == 2 and result.exception is None or \
            isinstance(result.exception, SystemExit), result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
