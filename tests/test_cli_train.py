"""vanishing train: a run, its checkpoint read back by vanishing probe, and bad input."""

import pytest
import torch
from typer.testing import CliRunner

from vanishing.cli import app
from vanishing.train import load_checkpoint

runner = CliRunner()
TINY = ["--task", "language", "--length", "2", "--steps", "30", "--hidden-size", "8",
        "--eval-every", "10", "--quiet"]


def test_train_saves_a_checkpoint_that_probe_reads(tmp_path):
    path = tmp_path / "runs" / "lstm.pt"
    path.parent.mkdir()  # --save makes no folder (as --html, --plot); a missing one is refused
    result = runner.invoke(app, ["train", *TINY, "--save", str(path)])
    assert result.exit_code == 0, result.output
    assert "checkpoint:" in result.output and "accuracy" in result.output
    config, model = load_checkpoint(path)
    assert config.steps == 30 and config.hidden_size == 8 and config.model == "lstm"
    assert model.core.weight_hh_l0.shape == (32, 8)
    probed = runner.invoke(app, ["probe", "--checkpoint", str(path)])
    assert probed.exit_code == 0, probed.output
    assert "horizon:" in probed.output


def test_sgd_run_is_reproducible(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    for p in (a, b):
        runner.invoke(app, ["train", *TINY, "--optimizer", "sgd", "--lr", "0.1", "--clip", "0",
                            "--save", str(p)])
    sa = torch.load(a, weights_only=True)["state_dict"]
    sb = torch.load(b, weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "0"], "steps must be a positive int, got 0"),
        (["--model", "lstn"], "unknown model 'lstn'"),
        (["--task", "copy"], "unknown task 'copy'"),
        (["--clip", "-1"], "clip must be >= 0"),
        (["--lr", "nan"], "lr must be a finite number > 0"),
        (["--length", "-5"], "length must be >= 0, got -5"),
        (["--task", "copying", "--length", "0"], "copying: length must be >= 1"),
    ],
)
def test_bad_input(args, message):
    result = runner.invoke(app, ["train", *TINY, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_save_to_a_folder_is_refused_before_training(tmp_path):
    result = runner.invoke(app, ["train", *TINY, "--save", str(tmp_path)])
    assert result.exit_code == 2 and "is not a file" in result.output


def test_probe_refuses_a_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    result = runner.invoke(app, ["probe", "--checkpoint", str(bad)])
    assert result.exit_code == 2 and "not a readable vanishing checkpoint" in result.output
    assert bad.read_bytes() == b"\x00garbage"
