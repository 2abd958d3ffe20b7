"""`vanishing descend` invoked as a command: exit codes, the table, the verdict, --plot."""

import math
import re

import pytest
import typer
from typer.testing import CliRunner

from vanishing.cli.descend import descend

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    app.command()(descend)
    app.command("noop")(lambda: None)  # a second command keeps typer in subcommand mode
    return app


def run(app, *args):
    return runner.invoke(app, ["descend", *args])


def table_rows(output):
    """The numeric rows of the table: [step, *values]."""
    rows = []
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0].isdigit():
            rows.append([int(cells[0]), *map(float, cells[1:])])
    return rows


def test_parabola_table_matches_closed_form(app):
    result = run(app, "(w-3)**2", "--start", "-4", "--lr", "0.1", "--steps", "10")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "step" in line)
    assert header.split() == ["step", "w", "L(w)", "dL/dw", "update"]
    rows = table_rows(result.output)
    assert [r[0] for r in rows] == list(range(11))
    for k, w, loss, grad, *update in rows:
        e = 0.8**k * -7  # w_k - 3
        assert w == pytest.approx(3 + e, rel=1e-5)
        assert loss == pytest.approx(e**2, rel=1e-5)
        assert grad == pytest.approx(2 * e, rel=1e-5)
        assert update == ([] if k == 10 else [pytest.approx(-0.2 * e, rel=1e-5)])
    assert "status: max_steps, ran all 10 steps" in result.output
    assert "curvature there: a = L'' = 2; 1/a = 0.5, 2/a = 1" in result.output
    assert "monotone convergence (lr < 1/a)" in result.output


@pytest.mark.parametrize(
    ("lr", "verdict"),
    [
        ("0.1", "monotone convergence"),
        ("0.5", "converges in one step"),
        ("0.75", "oscillating convergence"),
        ("1", "oscillates forever without converging"),
        ("1.2", "divergence (lr > 2/a)"),
    ],
)
def test_verdicts(app, lr, verdict):
    result = run(app, "(w-3)**2", "--start", "-4", "--lr", lr)
    assert result.exit_code == 0, result.output
    assert verdict in result.output


def test_tol_and_momentum(app):
    result = run(app, "(w-3)**2", "--start", "-4", "--lr", "0.1", "--steps", "500", "--tol", "1e-6")
    assert result.exit_code == 0, result.output
    first = math.ceil(math.log(1e-6 / 14) / math.log(0.8))  # 14 * 0.8^k <= 1e-6
    assert f"status: converged after {first} steps (|grad| <= 1e-06)" in result.output
    result = run(app, "(w-3)**2", "--start", "-4", "--lr", "0.1", "--momentum", "0.5")
    assert result.exit_code == 0, result.output
    assert "lr < 2(1+0.5)/a = 1.5" in result.output


def test_divergence_to_inf_is_a_verdict_not_a_crash(app):
    result = run(app, "(w-3)**2", "--start", "-4", "--lr", "1.5", "--steps", "5000")
    assert result.exit_code == 0, result.output
    assert "status: diverged at step 20" in result.output
    # w_k = 3 - 7 (-2)^k; L = 49 * 4^k first exceeds 1e12 * L_0 at k = 20 (long before
    # it would overflow float64 at k = 510)
    w = 3 - 7 * (-2.0) ** 20
    assert f"reached: w = {w:.6g}, L = {49 * 4.0**20:.6g}, |dL/dw| = {abs(2 * (w - 3)):.6g}" \
        in result.output


def test_two_variables_start_forms_and_order(app):
    expr = "x**2 + 10*y**2"
    comma = run(app, expr, "--start", "1,-2", "--lr", "0.05", "--steps", "5")
    repeated = run(app, expr, "--start", "1", "--start", "-2", "--lr", "0.05", "--steps", "5")
    assert comma.exit_code == repeated.exit_code == 0, comma.output
    assert comma.output == repeated.output
    assert "L(x, y) = x**2 + 10*y**2" in comma.output
    # x_k = 0.9^k x_0; y_1 = -2 - 0.05 * 20 * -2 = 0 and stays there
    x5 = 0.9**5
    assert f"reached: x = {x5:.6g}, y = 0, L = {x5**2:.6g}, |grad| = {2 * x5:.6g}" in comma.output
    assert table_rows(comma.output)[1][1:3] == [pytest.approx(0.9), pytest.approx(-0.0)]
    swapped = run(app, expr, "--start", "1,-2", "--vars", "y,x", "--lr", "0.05", "--steps", "5")
    assert swapped.exit_code == 0, swapped.output
    assert "L(y, x)" in swapped.output
    # y = 1, x = -2: after one step y = 1 - 0.05*20 = 0, x = -2 + 0.05*4 = -1.8
    assert table_rows(swapped.output)[1][1:3] == [pytest.approx(0.0), pytest.approx(-1.8)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["(w-3)**2", "--start", "-4", "--lr", "0"], "expected lr > 0 (finite), got 0.0"),
        (["(w-3)**2", "--start", "-4", "--lr", "-1"], "expected lr > 0 (finite), got -1.0"),
        (["(w-3)**2", "--start", "-4", "--steps", "0"], "expected steps to be an integer >= 1"),
        (["(w-3)**2", "--start", "1,2"], "start: expected 1 coordinate(s)"),
        (["x*y", "--start", "1"], "start: expected 2 coordinate(s)"),
        (["(w-3)**2", "--start", "nan"], "start: expected finite numbers, got (nan)"),
        (["(w-3)**2", "--start", "abc"], "--start: expected numbers such as -4 or 1,-2"),
        (["x*y", "--start", "1,2", "--vars", "x,z"], "unknown variable 'z'"),
        (["(w-3)**2", "--start", "1", "--momentum", "1"], "expected 0 <= momentum < 1"),
        (["__import__('os').system('id')", "--start", "1"], "is not allowed"),
        (["9**9**9**9", "--start", "1"], "power towers"),
        (["x*y*z", "--start", "1,2,3", "--plot", "p.png"], "--plot draws functions of 1 or 2"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(app, args, message):
    result = run(app, *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert result.stdout == ""  # rejected before any work


@pytest.mark.parametrize(
    ("expr", "start"), [("(w-3)**2", "-4"), ("(1-x)**2 + 100*(y-x**2)**2", "-1,1")]
)
def test_plot_is_saved(app, tmp_path, expr, start):
    path = tmp_path / "descent.png"
    result = run(app, expr, "--start", start, "--lr", "0.001", "--steps", "50", "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    assert re.search(r"plot: saved to .*descent\.png", result.output)


def test_help_documents_every_option(app):
    result = runner.invoke(app, ["descend", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--start", "--lr", "--steps", "--momentum", "--tol", "--vars", "--plot"):
        assert option in result.output
    assert "Run gradient descent on a formula" in result.output


def test_plot_to_a_folder_an_empty_path_or_no_format_is_refused_before_any_work(app, tmp_path):
    """The tool says only what it wrote: a folder used to end as FOLDER.png, '' as '.png'."""
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    for target, message in [(str(tmp_path), "(a folder)"), ("", "needs a file name"),
                            (str(tmp_path / "figure"), "must end in .png, .pdf or .svg")]:
        result = run(app, "(w-3)**2", "--start", "-4", "--plot", target)
        assert result.exit_code == 2, result.output
        assert message in result.stderr and result.stdout == ""
    assert list(tmp_path.iterdir()) == []
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before


@pytest.mark.slow  # over a second: out of the quick subset, in the full suite
def test_a_long_run_shows_progress_on_a_terminal(app, monkeypatch):
    import sys

    module = sys.modules["vanishing.cli.descend"]

    calls = []
    real = module.run_descent

    def watched(*args, **kwargs):
        calls.append(kwargs.get("progress") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "show_progress", lambda quiet: True)
    monkeypatch.setattr(module, "run_descent", watched)
    result = run(app, "abs(w)", "--start", "1", "--lr", "1.5", "--steps", "10000", "--rows", "4")
    assert result.exit_code == 0 and "max_steps, ran all 10000 steps" in result.output
    short = run(app, "abs(w)", "--start", "1", "--lr", "1.5", "--steps", "50")
    assert short.exit_code == 0 and calls == [True, False]
