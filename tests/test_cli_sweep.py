"""``vanishing sweep`` end to end (tiny budget), ``--report``, and its bad-input paths."""

import importlib
import os
import socket
import sqlite3
import time

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
SMALL = ["--models", "rnn_tanh,lstm", "--lengths", "3,5", "--seeds", "2", "--steps", "20",
         "--hidden-size", "8", "--batch-size", "16", "--eval-every", "10", "--quiet"]
TINY = [*SMALL, "--workers", "1"]  # in this process: spawning a pool costs more than it saves


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tables(output: str) -> list[str]:
    """The Markdown tables (and notes) of a sweep's or a report's output, up to the
    figures line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("**"))
    end = next(i for i, line in enumerate(lines) if line.startswith("figures: "))
    return lines[start:end]


def test_every_option_has_help():
    command = typer.main.get_command(app).commands["sweep"]
    for param in command.params:
        assert isinstance(param.help, str) and len(param.help.split()) >= 2, param.name
    result = runner.invoke(app, ["sweep", "--help"])
    assert result.exit_code == 0 and "--retry-failed" in result.output


@pytest.mark.slow  # over a second: out of the quick subset, in the full suite
def test_tiny_sweep_then_rerun_then_report(tmp_path):
    db, out = tmp_path / "r.sqlite", tmp_path / "figs"
    result = runner.invoke(app, ["sweep", *TINY, "--db", str(db), "--out", str(out),
                                 "--lrs", "1e-2,3e-3", "--markdown"])
    assert result.exit_code == 0, result.output
    assert "ran 16 trials (0 failed)" in result.output
    for word in ("rnn_tanh", "lstm", "T = 3", "T = 5", "0/2", "@", "gradient horizon"):
        assert word in result.output
    figures = ["sweep-adding-success.png", "sweep-adding-horizon.png"]
    assert all((out / name).stat().st_size > 10_000 for name in figures)
    again = runner.invoke(app, ["sweep", *TINY, "--db", str(db), "--out", str(out),
                                "--lrs", "1e-2,3e-3"])
    assert again.exit_code == 0 and "ran 0 trials" in again.output
    assert "16 were already in" in again.output
    for name in figures:  # only --report may draw them now
        (out / name).unlink()
    report = runner.invoke(app, ["sweep", "--report", str(db), "--out", str(out),
                                 "--markdown"])
    assert report.exit_code == 0, report.output
    assert "| model | T = 3 | T = 5 |" in report.output
    assert _tables(report.output) == _tables(result.output)
    assert all((out / name).stat().st_size > 10_000 for name in figures)


def test_report_of_a_task_this_code_does_not_know(tmp_path):
    from vanishing.sweep.store import open_store
    from vanishing.train import TrainConfig

    db, out = tmp_path / "future.sqlite", tmp_path / "figs"
    with open_store(db) as store:
        for seed in (0, 1):
            config = {**TrainConfig(task="adding", model="lstm", length=5, seed=seed)
                      .to_dict(), "task": "foo"}
            store.put({"key": f"future-{seed}", "config": config, "status": "done",
                       "solved": seed == 0, "steps": 200, "steps_to_solve": 100 if seed == 0
                       else None, "horizon": 3, "probe_length": 5, "final": {"loss": 0.1},
                       "finished_at": "x"})
    result = runner.invoke(app, ["sweep", "--report", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "foo: seeds solved" in result.output and "1/2 (100)" in result.output
    for name in ("sweep-foo-success.png", "sweep-foo-horizon.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # over a second: out of the quick subset, in the full suite
def test_workers_default_to_a_process_pool(tmp_path, monkeypatch):
    import vanishing.sweep as sweep_module

    calls = []

    def pool(todo, workers):  # stands in for the spawned pool: records its size
        calls.append(workers)
        return ((k, c, sweep_module.run_trial(c.to_dict())) for k, c in todo)

    monkeypatch.setattr(importlib.import_module("vanishing.sweep.run"), "pool_results", pool)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    args = ["sweep", *SMALL, "--models", "lstm", "--lengths", "3", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--db", str(tmp_path / "a.sqlite")])
    assert result.exit_code == 0, result.output
    assert "on 3 worker processes" in result.output and calls == [3]
    result = runner.invoke(app, [*args, "--db", str(tmp_path / "b.sqlite"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "on this process" in result.output and calls == [3]
    help_text = " ".join(runner.invoke(app, ["sweep", "--help"]).output.replace("│", " ")
                         .split())
    assert "1: run each trial in this process" in help_text


def test_unreachable_ray_address_fails_at_once_and_creates_no_store(tmp_path):
    db = tmp_path / "r.sqlite"
    address = f"127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    result = runner.invoke(app, ["sweep", *TINY, "--db", str(db), "--out", str(tmp_path),
                                 "--ray", address])
    assert time.monotonic() - start < 15
    assert result.exit_code == 2, result.output
    assert f"cannot reach Ray at '{address}'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


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
        (["--ray", "headnode"], "'auto', 'local' or a cluster address HOST:PORT"),
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
    from vanishing.sweep.store import open_store

    open_store(tmp_path / "empty.sqlite").close()
    result = runner.invoke(app, ["sweep", "--report", str(tmp_path / "empty.sqlite")])
    assert result.exit_code == 2 and "holds no trials yet" in result.output


def test_a_sweep_that_cannot_reach_ray_creates_no_store_and_leaves_an_old_one_as_it_was(
        tmp_path, monkeypatch):
    def no_cluster(address, workers):
        raise ConnectionError("could not find a running Ray cluster")

    monkeypatch.setattr(importlib.import_module("vanishing.sweep.run"), "connect_ray", no_cluster)
    args = ["sweep", *SMALL, "--models", "lstm", "--lengths", "3", "--out", str(tmp_path),
            "--ray", "auto"]
    db = tmp_path / "new.sqlite"
    result = runner.invoke(app, [*args, "--db", str(db)])
    assert result.exit_code == 2 and "could not find a running Ray cluster" in result.output
    assert not db.exists()  # Ray is reached before the store is created
    # a store that already held trials is kept, byte for byte
    kept = tmp_path / "kept.sqlite"
    first = runner.invoke(app, ["sweep", *SMALL, "--models", "lstm", "--lengths", "3",
                                "--out", str(tmp_path), "--workers", "1", "--db", str(kept)])
    assert first.exit_code == 0, first.output
    before = kept.read_bytes()
    result = runner.invoke(app, [*args, "--db", str(kept), "--seeds", "3"])
    assert result.exit_code == 2 and kept.read_bytes() == before


def _store_with(db, statuses):
    from vanishing.sweep.store import open_store
    from vanishing.train import TrainConfig

    with open_store(db) as store:
        for seed, status in enumerate(statuses):
            config = TrainConfig(task="adding", model="lstm", length=5, seed=seed).to_dict()
            store.put({"key": f"k{seed}", "config": config, "status": status,
                       "solved": None if status == "failed" else seed == 0, "steps": 200,
                       "steps_to_solve": 100 if seed == 0 else None, "horizon": 3,
                       "probe_length": 5, "final": {"loss": 0.1}, "wall_time": 1.5,
                       "message": "boom" if status == "failed" else None,
                       "finished_at": "x"})


def test_report_as_html_holds_the_tables_of_the_terminal(tmp_path, parse_html):
    db, out, html = tmp_path / "r.sqlite", tmp_path / "figs", tmp_path / "sweep.html"
    _store_with(db, ["done", "done", "failed"])
    result = runner.invoke(app, ["sweep", "--report", str(db), "--out", str(out), "--markdown",
                                 "--html", str(html)])
    assert result.exit_code == 0, result.output
    markup = html.read_text(encoding="utf-8")
    terminal = [[c.strip() for c in line.strip("|").split("|")] for line in _tables(
        result.output) if line.startswith("| ") and not line.startswith("| model")]
    assert [r for r in parse_html(markup).rows if r and r[0] != "model"] == terminal
    assert markup.count("data:image/png;base64,") == 2
    for text in ("seeds solved", "1/2 (100)", "final held-out loss, as a fraction of chance",
                 "failed: lstm T=5", "2 done, 1 failed",
                 "<dt>seed</dt><dd>0-2</dd>", "vanishing sweep --report"):
        assert text in markup, text


@pytest.mark.parametrize("statuses, message", [
    (["failed", "failed"], "holds no finished trials (2 failed"),
    ([], "holds no trials yet"),
])
def test_report_of_a_store_with_no_finished_trial_writes_nothing(statuses, message, tmp_path):
    db = tmp_path / "r.sqlite"
    _store_with(db, statuses)
    result = runner.invoke(app, ["sweep", "--report", str(db), "--out", str(tmp_path / "figs"),
                                 "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite"]


@pytest.mark.parametrize("args", [["--report", "r.sqlite"], ["--db", "new.sqlite", *TINY]])
def test_bad_html_is_refused_before_any_work(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _store_with(tmp_path / "r.sqlite", ["done"])
    for html, message in [("missing/r.html", "--html: folder"), ("r.txt", "must end in .html"),
                          ("/proc/r.html", "cannot be written")]:
        result = runner.invoke(app, ["sweep", *args, "--out", "figs", "--html", html])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite"]


def _store_with_one_record(path):
    import json

    from vanishing.sweep.store import canonical_json, config_key, open_store
    from vanishing.train import TrainConfig

    config = TrainConfig(task="adding", model="lstm", length=5)
    with open_store(path) as store:
        store.put({"key": config_key(config), "config": json.loads(canonical_json(config)),
                   "status": "done", "solved": True, "finished_at": "2024-01-01"})


def test_report_on_a_corrupt_record_is_one_line_and_leaves_the_store_alone(tmp_path):
    db = tmp_path / "r.sqlite"
    _store_with_one_record(db)
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE trials SET config = CAST(? AS TEXT)", (b"\xff\xfe\x00garbage",))
    con.close()
    before = db.read_bytes()
    result = runner.invoke(app, ["sweep", "--report", str(db), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "damaged trial record" in lines[0], result.output
    assert "garbage" not in result.output and "Traceback" not in result.output
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite"]


def test_a_store_that_cannot_be_written_is_refused_before_any_trial(tmp_path, monkeypatch):
    import vanishing.sweep.run as run_module

    db = tmp_path / "r.sqlite"
    _store_with_one_record(db)
    before = db.read_bytes()
    connect = sqlite3.connect

    def read_only(*args, **kwargs):  # what a read-only folder does (root may write anyway)
        con = connect(*args, **kwargs)
        con.execute("PRAGMA query_only = ON")
        return con

    def no_trials(*args, **kwargs):
        raise AssertionError("a trial ran")

    monkeypatch.setattr(sqlite3, "connect", read_only)
    monkeypatch.setattr(run_module, "local_results", no_trials)
    monkeypatch.setattr(run_module, "pool_results", no_trials)
    result = runner.invoke(app, ["sweep", *TINY, "--db", str(db), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "cannot be written" in result.output, result.output
    assert db.read_bytes() == before
