"""``vanishing sweep`` end to end (tiny budget), ``--report``, and its bad-input paths."""

import os
import sqlite3

import pytest
import typer
from typer.testing import CliRunner

from vanishing.cli.sweep import parse_lrs, sweep

app = typer.Typer(pretty_exceptions_enable=False)
app.command("sweep")(sweep)


@app.command("noop")
def _noop() -> None:
    """A second command, so that ``sweep`` is a subcommand as in the real app."""


runner = CliRunner()
TINY = ["--models", "rnn_tanh,lstm", "--lengths", "3,5", "--seeds", "2", "--steps", "20",
        "--hidden-size", "8", "--batch-size", "16", "--eval-every", "10", "--quiet"]


def test_every_option_has_help():
    command = typer.main.get_command(app).commands["sweep"]
    for param in command.params:
        assert param.help, param.name
    result = runner.invoke(app, ["sweep", "--help"])
    assert result.exit_code == 0 and "--retry-failed" in result.output


def test_tiny_sweep_then_rerun_then_report(tmp_path):
    db, out = tmp_path / "r.sqlite", tmp_path / "figs"
    result = runner.invoke(app, ["sweep", *TINY, "--db", str(db), "--out", str(out),
                                 "--lrs", "1e-2,3e-3"])
    assert result.exit_code == 0, result.output
    assert "ran 16 trials (0 failed)" in result.output
    for word in ("rnn_tanh", "lstm", "T = 3", "T = 5", "0/2", "@", "gradient horizon"):
        assert word in result.output
    figures = ["sweep-adding-success.png", "sweep-adding-horizon.png"]
    for name in figures:
        assert (out / name).stat().st_size > 10_000
        (out / name).unlink()
    again = runner.invoke(app, ["sweep", *TINY, "--db", str(db), "--out", str(out),
                                "--lrs", "1e-2,3e-3"])
    assert again.exit_code == 0 and "ran 0 trials" in again.output
    assert "16 were already in" in again.output
    report = runner.invoke(app, ["sweep", "--report", str(db), "--out", str(out),
                                 "--markdown"])
    assert report.exit_code == 0, report.output
    assert "| model | T = 3 | T = 5 |" in report.output
    assert all((out / name).exists() for name in figures)


def test_parse_lrs_shared_and_per_model():
    assert parse_lrs("1e-3,1e-2", ["a", "b"]) == {"a": [1e-3, 1e-2], "b": [1e-3, 1e-2]}
    assert parse_lrs("a:1e-3,a:3e-3,2e-2", ["a", "b"]) == {"a": [1e-3, 3e-3], "b": [2e-2]}


def _foreign(path):
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE notes (text TEXT)")
    con.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "rnn_tanh,transformer"], "unknown model 'transformer'"),
        (["--task", "addition"], "unknown task 'addition'"),
        (["--lengths", "10,abc"], "--lengths must be comma-separated positive integers, "
                                  "got 'abc'"),
        (["--lengths", "0"], "length must be a positive int, got 0"),
        (["--lengths", "-5,10"], "length must be a positive int, got -5"),
        (["--lengths", ","], "--lengths must be comma-separated positive integers"),
        (["--seeds", "0"], "seeds must be a positive int, got 0"),
        (["--workers", "0"], "workers must be a positive int, got 0"),
        (["--steps", "0"], "steps must be a positive int, got 0"),
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (["--lrs", "fast"], "--lrs items must be LR or MODEL:LR"),
        (["--lrs", "gru:1e-3"], "--lrs names model 'gru', which is not in --models"),
        (["--clip", "-1"], "--clip must be >= 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path):
    db = tmp_path / "r.sqlite"
    result = runner.invoke(app, ["sweep", *TINY, "--db", str(db), "--out", str(tmp_path),
                                 *args])  # the last value of an option wins
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not db.exists()


@pytest.mark.parametrize(
    "db, message",
    [
        ("missing/r.sqlite", "does not exist; create it first"),
        ("/proc/vanishing-results.sqlite", "cannot create a results store there"),
        (None, "give --db PATH to run a sweep"),
    ],
)
def test_db_paths_that_cannot_be_used(db, message, tmp_path):
    if db and db.startswith("/proc") and not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc (where nobody, root included, can create a file)")
    args = [] if db is None else ["--db", db if db.startswith("/") else str(tmp_path / db)]
    result = runner.invoke(app, ["sweep", *TINY, *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("mode", ["--db", "--report"])
def test_foreign_db_is_refused_and_never_modified(mode, tmp_path):
    db = tmp_path / "theirs.sqlite"
    _foreign(db)
    before = db.read_bytes()
    result = runner.invoke(app, ["sweep", *TINY, mode, str(db), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a vanishing results store" in result.output
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.sqlite"]


def test_report_of_missing_or_empty_store(tmp_path):
    result = runner.invoke(app, ["sweep", "--report", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 2 and "does not exist" in result.output
    from vanishing.store import open_store

    open_store(tmp_path / "empty.sqlite").close()
    result = runner.invoke(app, ["sweep", "--report", str(tmp_path / "empty.sqlite")])
    assert result.exit_code == 2 and "holds no trials yet" in result.output
