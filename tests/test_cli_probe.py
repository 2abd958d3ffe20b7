"""``vanishing probe`` through a local typer app: exit codes, the table and the verdict."""

import copy
import re

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
    (["--length", "0"], "length"),
    (["--init", "zeros"], "unknown init scheme"),
])
def test_bad_usage_is_one_line_and_exit_code_2(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_help_on_every_option():
    result = run("--help")
    assert result.exit_code == 0
    for option in ["--model", "--length", "--checkpoint", "--task", "--init", "--radius",
                   "--plot", "--threshold", "--batch", "--seed", "--max-lag", "--rows"]:
        assert option in result.output
