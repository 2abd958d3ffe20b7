"""``vanishing tasks`` (list) and ``vanishing tasks show``, through a local typer app."""

import math

import pytest
import torch
import typer
from typer.testing import CliRunner

from vanishing.cli.tasks import criterion, default_length, parse_options, tasks_app
from vanishing.tasks import get_task, task_names

app = typer.Typer()
app.add_typer(tasks_app, name="tasks")


@app.callback()
def _root() -> None:
    """A stand-in for the real root app."""


runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def run(*args: str):
    return runner.invoke(app, ["tasks", *args], env=WIDE)


def table_cells(output: str) -> dict[str, list[str]]:
    """task name -> its row's cells, each joined across the lines it wraps onto."""
    rows: dict[str, list[str]] = {}
    name = None
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            name = cells[0]
            rows[name] = cells
        else:  # a continuation line of the row above
            rows[name] = [f"{a} {b}".strip() for a, b in zip(rows[name], cells, strict=True)]
    return rows


@pytest.mark.parametrize("args", [[], ["list"]])
def test_list_shows_every_task_with_its_measured_baseline(args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    cells = table_cells(result.output)
    assert sorted(cells) == task_names()
    for name in task_names():
        task = get_task(name)
        n = default_length(task)
        *_, chance, solved_when = cells[name]
        assert chance == f"{task.chance_loss(n):.4f} @ {n}"
        assert solved_when == criterion(task) == task.criterion  # the task's own words
        assert f"{name}: {task.source}" in result.output
    assert cells["adding"][-1] == "mse < 0.01"  # as the adding paper states it
    assert cells["adding-h97"][-1] == "mse < 0.01 and accuracy (|err| < 0.04) >= 0.99"
    # independent values: the formulas, computed here
    assert "0.1667 @ 50" in result.output  # adding: 1/6
    assert f"{10 * math.log(8) / 120:.4f} @ 100" in result.output  # copying at T = 100
    assert f"{math.log(4):.4f} @ 100" in result.output  # temporal order


def test_list_at_a_stated_length_marks_tasks_that_refuse_it():
    result = run("--length", "30")
    assert result.exit_code == 0, result.output
    assert f"{10 * math.log(8) / 50:.4f} @ 30" in result.output
    assert "note: digits: length must be 64" in result.output
    assert table_cells(result.output)["digits"][3] == "-"


def test_show_prints_the_decoded_sample_the_library_draws():
    result = run("show", "copying", "--length", "3", "--seed", "5")
    assert result.exit_code == 0, result.output
    task = get_task("copying")
    x, y = task.sample(3, 1, torch.Generator().manual_seed(5))
    assert task.decode(x, y) in result.output
    assert "x (1, 23)" in result.output and f"{10 * math.log(8) / 23:.4f}" in result.output


def test_show_passes_task_options():
    result = run("show", "digits", "--length", "64", "-o", "split=test")
    assert result.exit_code == 0, result.output
    task = get_task("digits", split="test")
    x, y = task.sample(64, 1, torch.Generator().manual_seed(0))
    assert task.decode(x, y) in result.output
    result = run("show", "language", "-L", "12", "-o", "distractors=True", "-o", "pairs=3")
    assert result.exit_code == 0, result.output
    assert "once visited" in result.output


@pytest.mark.parametrize("args, message", [
    (["show", "addin"], "unknown task 'addin'; expected one of adding, adding-h97"),
    (["show", "adding", "--length", "1"], "adding: length must be >= 2 for this task's "
                                          "layout, got 1"),
    (["show", "digits", "--length", "10"], "digits: length must be 64"),
    (["show", "adding", "--length", "-1"], "length must be >= 0, got -1"),
    (["show", "latch", "--seed", "-2"], "seed must be >= 0, got -2"),
    (["show", "digits", "-o", "split"], "task option must look like KEY=VALUE, got 'split'"),
    (["show", "digits", "-o", "split=val"], "split must be one of train, test, got 'val'"),
    (["show", "latch", "-o", "colour=1"], "task 'latch'"),
    (["--length", "-5"], "length must be >= 0, got -5"),
    (["show", "language", "-o", "distractors=maybe"], "distractors must be true or false"),
    (["show", "adding", "--length", "100000000"], "at most 10,000, got 100,000,000"),
    (["guess", "--length", "0"], "--length must be a positive int, got 0"),
    (["guess", "--seeds", "0"], "--seeds must be a positive int, got 0"),
    (["guess", "--length", "1000000"], "at most 10,000"),
    (["guess", "--scale", "-1"], "scale must be a finite number > 0"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_every_option_has_help():
    group = typer.main.get_command(app).commands["tasks"]
    commands = {"tasks": group, **group.commands}
    assert set(commands) == {"tasks", "list", "show", "guess"}
    for name, command in commands.items():
        assert isinstance(command.help, str) and command.help.strip() != "", name
        for param in command.params:
            assert isinstance(param.help, str) and param.help.strip() != "", \
                f"{name} {param.name} has no help"
    shown = run("show", "--help").output
    assert "Seed of the generator" in shown and "KEY=VALUE" in shown


def test_parse_options():
    assert parse_options(["split=test", "pairs=4", "distractors=True", "x = 1.5"]) == {
        "split": "test", "pairs": 4, "distractors": True, "x": 1.5}
    assert parse_options(["a=true", "b=No", "c=OFF", "d=1"]) == {
        "a": True, "b": False, "c": False, "d": 1}


def test_guess_reports_what_random_guessing_measures():
    from vanishing.tasks.latch import random_guessing

    result = run("guess", "--length", "30", "--seeds", "3", "--trials", "2000")
    assert result.exit_code == 0, result.output
    found = [random_guessing(30, trials=2000, generator=torch.Generator().manual_seed(s))
             for s in range(3)]
    assert all(r.solved for r in found)  # latch at L = 30 falls to a few hundred guesses
    counts = sorted(r.trials_used for r in found)
    row = next(line for line in result.output.splitlines() if line.strip().startswith("│     30"))
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells == ["30", "3/3", ", ".join(str(r.trials_used) for r in found), str(counts[1])]
    assert "solved = accuracy >= 0.99 on a search set" in " ".join(result.output.split())
    assert parse_options(None) == {}
