"""Gradient descent against closed forms and against the behaviour it predicts."""

import math

import numpy as np
import pytest
import torch

from vanishing.descent import (
    DescentPath,
    StepRegime,
    Trace,
    classify_step_size,
    curvature_at,
    descend,
    hessian_at,
    step_size_verdict,
)
from vanishing.descent.plot import locate_minimum, plot_descent

PARABOLA = "(w-3)**2"


def parabola(w):
    return (w - 3) ** 2


@pytest.mark.parametrize("f", [PARABOLA, parabola], ids=["string", "callable"])
@pytest.mark.parametrize("lr", [0.05, 0.1, 0.3, 0.45, 0.6, 0.8, 0.95, 1.05])
@pytest.mark.parametrize("w0", [-4.0, 10.0])
def test_parabola_matches_closed_form(f, lr, w0):
    """w_k = 3 + (1 - 2 lr)^k (w_0 - 3), so L, dL/dw and the update follow too."""
    path = descend(f, w0, lr=lr, steps=30)
    assert type(path) is DescentPath and Trace is DescentPath  # Trace: the older name
    n = path.steps
    k = np.arange(n + 1)
    e = (1 - 2 * lr) ** k * (w0 - 3)  # w_k - 3
    scale = 1e-12 * abs(w0 - 3) * max(1.0, abs(1 - 2 * lr) ** 30)  # rounding, accumulated
    if path.status == "converged":  # fast enough to land on 3.0 exactly in float64
        assert path.final[0] == 3.0
        assert abs(e[-1]) < 1e-15
    else:
        assert (path.status, n) == ("max_steps", 30)
    assert path.iterates.shape == (n + 1, 1)
    assert path.updates.shape == (n, 1)
    np.testing.assert_allclose(path.iterates[:, 0], 3 + e, rtol=1e-12, atol=scale)
    np.testing.assert_allclose(path.losses, e**2, rtol=1e-10, atol=scale * abs(w0 - 3))
    np.testing.assert_allclose(path.gradients[:, 0], 2 * e, rtol=1e-10, atol=scale)
    np.testing.assert_allclose(path.updates[:, 0], -lr * 2 * e[:-1], rtol=1e-10, atol=scale)
    assert path.variables == ("w",)


def _observed_regime(errors):
    """What the iterates did, from e_k = w_k - c alone (independent of the library)."""
    e = np.asarray(errors)
    if abs(e[1]) <= 1e-12 * abs(e[0]):
        return StepRegime.ONE_STEP
    e = e[e != 0]  # a fast run may land exactly on c, and then stop
    sizes, signs = np.abs(e), np.sign(e)
    alternating = np.all(signs[1:] == -signs[:-1])
    if np.all(signs == signs[0]) and np.all(np.diff(sizes) < 0):
        return StepRegime.MONOTONE
    if alternating and np.all(np.diff(sizes) < 0):
        return StepRegime.OSCILLATING
    if alternating and np.allclose(sizes, sizes[0], rtol=1e-12):
        return StepRegime.PERIOD_TWO
    if alternating and np.all(np.diff(sizes) > 0):
        return StepRegime.DIVERGENT
    raise AssertionError(f"unclassifiable iterates {e}")


@pytest.mark.parametrize("a", [0.5, 2.0, 8.0])
@pytest.mark.parametrize("k", range(1, 61))
def test_regimes_match_what_the_iterates_do(a, k):
    """On L = a/2 (w - c)^2 over lr*a = k/20 in (0, 3]: 1 and 2 are exact boundaries."""
    c, lr = 1.5, k / 20 / a

    def f(w):
        return a / 2 * (w - c) ** 2

    path = descend(f, c + 2, lr=lr, steps=20)
    observed = _observed_regime(path.iterates[:, 0] - c)
    assert classify_step_size(lr, a) == observed
    verdict = step_size_verdict(f, path)
    assert verdict.curvature == pytest.approx(a, rel=1e-12)
    assert verdict.regime == observed


@pytest.mark.parametrize(
    ("lr", "regime"),
    [(0.5, StepRegime.MONOTONE), (1.5, StepRegime.OSCILLATING), (2.5, StepRegime.DIVERGENT)],
)
def test_regime_of_a_non_quadratic_at_the_minimum_found(lr, regime):
    """cosh(w - 1) = (e^(w-1) + e^(1-w))/2 has its minimum at 1 with curvature cosh(0) = 1."""
    f = "exp(w-1)/2 + exp(1-w)/2"
    path = descend(f, 1.3, lr=lr, steps=200)
    verdict = step_size_verdict(f, path)
    assert verdict.regime == regime
    if regime is StepRegime.DIVERGENT:
        assert path.status == "diverged"
        return
    assert path.final[0] == pytest.approx(1.0, abs=1e-9)
    assert verdict.curvature == pytest.approx(1.0, rel=1e-9)
    e = path.iterates[:6, 0] - 1
    alternates = np.all(np.sign(e[1:]) == -np.sign(e[:-1]))
    assert alternates == (regime is StepRegime.OSCILLATING)


@pytest.mark.parametrize("w", [-2.0, 0.0, 0.7, 3.0])
def test_curvature_matches_second_derivative_by_hand(w):
    sigmoid = 1 / (1 + math.exp(-w))
    assert curvature_at("log(1 + exp(w))", w) == pytest.approx(sigmoid * (1 - sigmoid))
    assert curvature_at("sin(w)", w) == pytest.approx(-math.sin(w), abs=1e-15)
    assert curvature_at(lambda w: torch.cosh(w), w) == pytest.approx(math.cosh(w))


def test_hessian_of_rosenbrock_by_hand():
    x, y = -1.2, 1.0
    expected = [[2 - 400 * (y - x**2) + 800 * x**2, -400 * x], [-400 * x, 200]]
    np.testing.assert_allclose(hessian_at("(1-x)**2 + 100*(y-x**2)**2", (x, y)), expected)
    # the largest eigenvalue is the curvature
    assert curvature_at("x**2 + 10*y**2", (0.3, 0.4)) == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("lr", "curvature", "regime"),
    [
        (0.1, 2.0, StepRegime.MONOTONE),
        (0.5, 2.0, StepRegime.ONE_STEP),
        (0.5 * (1 + 1e-12), 2.0, StepRegime.ONE_STEP),
        (0.7, 2.0, StepRegime.OSCILLATING),
        (1.0, 2.0, StepRegime.PERIOD_TWO),
        (1.2, 2.0, StepRegime.DIVERGENT),
        (1.0, 0.0, StepRegime.MONOTONE),
        (0.1, -1.0, StepRegime.NOT_A_MINIMUM),
    ],
)
def test_classify_step_size(lr, curvature, regime):
    assert classify_step_size(lr, curvature) == regime


def test_classify_step_size_rejects_bad_input():
    with pytest.raises(ValueError, match="expected lr > 0, got 0"):
        classify_step_size(0, 2.0)
    with pytest.raises(ValueError, match="expected a finite curvature, got nan"):
        classify_step_size(0.1, math.nan)


def _heavy_ball_reference(a, c, lr, beta, w0, steps):
    """e_{k+1} = (1 + beta - lr a) e_k - beta e_{k-1}, e_{-1} = e_0 (v_0 = 0)."""
    e_prev, e = w0 - c, w0 - c
    out = [e]
    for _ in range(steps):
        e_prev, e = e, (1 + beta - lr * a) * e - beta * e_prev
        out.append(e)
    return c + np.array(out)


@pytest.mark.parametrize(("lr", "beta"), [(0.1, 0.9), (0.3, 0.5), (0.9, 0.3), (1.2, 0.5)])
def test_heavy_ball_matches_its_recurrence(lr, beta):
    path = descend(PARABOLA, -4.0, lr=lr, steps=50, momentum=beta)
    expected = _heavy_ball_reference(2.0, 3.0, lr, beta, -4.0, 50)
    np.testing.assert_allclose(path.iterates[:, 0], expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(path.updates[:, 0], np.diff(expected), rtol=1e-9, atol=1e-10)


def test_heavy_ball_in_two_dimensions_is_two_recurrences():
    path = descend("x**2 + 10*y**2", (1.0, -2.0), lr=0.04, steps=40, momentum=0.8)
    assert path.variables == ("x", "y")
    x = _heavy_ball_reference(2.0, 0.0, 0.04, 0.8, 1.0, 40)
    y = _heavy_ball_reference(20.0, 0.0, 0.04, 0.8, -2.0, 40)
    np.testing.assert_allclose(path.iterates, np.column_stack([x, y]), rtol=1e-10, atol=1e-12)


@pytest.mark.slow  # over a second: out of the quick subset, in the full suite
def test_rosenbrock_with_small_lr_approaches_its_minimum():
    def rosenbrock(x, y):
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    path = descend(rosenbrock, (0.0, 0.0), lr=1e-3, steps=5000)
    assert path.variables == ("x", "y")
    assert np.all(np.diff(path.losses) <= 0)  # lr below 2/L: the loss never goes up
    distance = np.linalg.norm(path.iterates - [1.0, 1.0], axis=1)
    assert distance[-1] < 0.1 < distance[0]
    # with heavy-ball momentum it gets there
    fast = descend(rosenbrock, (-1.5, 2.0), lr=1e-3, steps=3000, momentum=0.9)
    np.testing.assert_allclose(fast.final, [1.0, 1.0], atol=1e-4)


def test_tol_stops_at_the_first_small_gradient():
    """|dL/dw| = 2 * 0.8^k * 7 on the parabola with lr = 0.1 from -4."""
    path = descend(PARABOLA, -4.0, lr=0.1, steps=1000, tol=1e-6)
    first = math.ceil(math.log(1e-6 / 14) / math.log(0.8))
    assert path.status == "converged"
    assert path.steps == first
    assert abs(path.gradients[-1, 0]) <= 1e-6 < abs(path.gradients[-2, 0])


def test_exact_minimum_converges_in_one_step():
    path = descend(PARABOLA, -4.0, lr=0.5, steps=30)
    assert path.status == "converged"
    assert path.steps == 1
    assert path.final[0] == 3.0


def test_period_two_never_converges():
    path = descend(PARABOLA, -4.0, lr=1.0, steps=30)
    assert path.status == "max_steps"
    np.testing.assert_array_equal(path.iterates[::2, 0], -4.0)
    np.testing.assert_array_equal(path.iterates[1::2, 0], 10.0)


@pytest.mark.parametrize(
    ("f", "start", "lr"),
    [(PARABOLA, -4.0, 1.5), ("-exp(w)", 0.0, 1.0), ("log(w)", 1.0, 0.5), ("w**4", 3.0, 0.5)],
)
def test_overflow_ends_as_diverged_without_an_exception(f, start, lr):
    path = descend(f, start, lr=lr, steps=5000)
    assert path.status == "diverged"
    assert path.steps < 5000
    last = np.concatenate([path.iterates[-1], [path.losses[-1]], path.gradients[-1]])
    # overflow, or (before it) a loss grown past the stated bound
    bound = 1e12 * max(abs(path.losses[0]), 1.0)
    assert not np.all(np.isfinite(last)) or path.losses[-1] > bound
    assert np.all(np.isfinite(path.iterates[:-1]))
    assert np.all(np.isfinite(path.losses[:-1]))


def test_divergent_iterates_still_follow_the_closed_form():
    path = descend(PARABOLA, -4.0, lr=1.5, steps=5000)
    k = np.arange(20)
    np.testing.assert_allclose(path.iterates[:20, 0], 3 + (-2.0) ** k * -7, rtol=1e-12)


def test_callable_names_its_variables():
    path = descend(lambda a, b: a**2 + b**2, [1.0, 1.0], lr=0.1, steps=3)
    assert path.variables == ("a", "b")
    path = descend(lambda *w: sum(x**2 for x in w), [1.0, 1.0, 1.0], lr=0.1, steps=3)
    assert path.variables == ("w1", "w2", "w3")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "expected lr > 0 \\(finite\\), got 0.0"),
        ({"lr": -0.1}, "expected lr > 0 \\(finite\\), got -0.1"),
        ({"lr": math.nan}, "expected lr > 0 \\(finite\\), got nan"),
        ({"steps": 0}, "expected steps to be an integer >= 1, got 0"),
        ({"steps": -3}, "expected steps to be an integer >= 1, got -3"),
        ({"steps": 2.5}, "expected steps to be an integer >= 1, got 2.5"),
        ({"momentum": 1.0}, "expected 0 <= momentum < 1, got 1.0"),
        ({"momentum": -0.5}, "expected 0 <= momentum < 1, got -0.5"),
        ({"tol": -1.0}, "expected tol >= 0 \\(finite\\) or None, got -1.0"),
        ({"start": [1.0, 2.0]}, "start: expected 1 coordinate\\(s\\).*\\(w\\), got 2"),
        ({"start": []}, "start: expected a number or a non-empty list"),
        ({"start": math.nan}, "start: expected finite numbers, got \\(nan\\)"),
        ({"start": [math.inf]}, "start: expected finite numbers, got \\(inf\\)"),
    ],
)
def test_bad_input_names_expected_and_received(kwargs, match):
    settings = {"start": -4.0, "lr": 0.1, "steps": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        descend(PARABOLA, **settings)


def test_bad_functions_are_value_errors():
    with pytest.raises(ValueError, match="start: expected 2 coordinate\\(s\\).*got 1"):
        descend("(1-x)**2 + 100*(y-x**2)**2", 1.0, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="hessian_at: point: expected 2 coordinate"):
        hessian_at("x*y", 1.0)
    with pytest.raises(ValueError, match="start: expected 2.*\\(x, y\\), got 3"):
        descend(lambda x, y: x + y, [1.0, 2.0, 3.0], lr=0.1, steps=1)
    with pytest.raises(ValueError, match="the loss is nan at the start \\(-1\\)"):
        descend("log(w)", -1.0, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="expected f to return a scalar tensor, got \\(2,\\)"):
        descend(lambda w: torch.stack([w, w]), 1.0, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="not allowed"):
        descend("__import__('os')", 1.0, lr=0.1, steps=1)


# plots_descent draws what descend returns; its PNG output is checked in test_cli_descend.
@pytest.mark.parametrize(
    ("f", "start", "lr"),
    [(PARABOLA, -4.0, 1.5), ("log(w)", 1.0, 0.5), ("x**2 + 10*y**2", (1.0, -2.0), 0.11)],
)
def test_plot_of_a_diverged_run_draws_the_finite_prefix(f, start, lr):
    path = descend(f, start, lr=lr, steps=5000)
    assert path.status == "diverged"
    fig = plot_descent(f, path)
    fig.canvas.draw()  # would overflow inside matplotlib if inf or 1e300 reached the axes
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    (drawn,) = [line for line in ax.get_lines() if line.get_label() == "iterates"]
    shown = len(drawn.get_xdata())  # iterates w_0 .. w_(shown - 1)
    assert 1 < shown < len(path.iterates)
    assert "start" in labels and f"step {shown - 1} (of {path.steps})" in labels
    assert np.all(np.isfinite(drawn.get_xydata()))
    assert all(np.isfinite(ax.get_xlim())) and all(np.isfinite(ax.get_ylim()))


def test_plot_of_a_diverged_parabola_stops_at_the_growth_limit():
    """L(w_k) = 49 * 4^k from w_0 = -4 at lr 1.5: within 1e12 * 49 up to k = 19."""
    path = descend(PARABOLA, -4.0, lr=1.5, steps=5000)
    (ax,) = plot_descent(PARABOLA, path).axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"step 19 (of {path.steps})" in labels


def test_plot_refuses_what_is_not_a_descent_path():
    with pytest.raises(TypeError, match="expected the DescentPath that descend returned, got "
                                        "ndarray"):
        plot_descent(PARABOLA, np.zeros((3, 1)))


def test_plot_refuses_three_variables():
    path = descend("x**2 + y**2 + z**2", (1.0, 1.0, 1.0), lr=0.1, steps=2)
    with pytest.raises(ValueError, match="expected a function of 1 or 2 variables, got 3"):
        plot_descent("x**2 + y**2 + z**2", path)


# The minimum the plot marks, against minima known in closed form.
@pytest.mark.parametrize(
    ("f", "spans", "expected"),
    [
        (PARABOLA, [(-4.0, 2.0)], (3.0,)),
        ("(w+1.25)**2 + 7", [(0.5, 4.0)], (-1.25,)),  # left of the path: the view widens
        ("abs(w - 0.3)", [(-4.0, 2.0)], (0.3,)),  # a kink, no derivative at the minimum
        ("(w**2 - 1)**2 + (w - 1)**2", [(-3.0, 3.0)], (1.0,)),  # global, not the dip near -1
        ("(1-x)**2 + 100*(y-x**2)**2", [(-1.0, -0.4), (0.2, 1.0)], (1.0, 1.0)),
        ("(x-0.5)**2 + 3*(y+2)**2 + x*y", [(-1.0, 1.0), (-3.0, 0.0)], (18 / 11, -25 / 11)),
    ],
)
def test_plot_marks_the_true_minimum(f, spans, expected):
    from vanishing.descent.expr import parse_expression

    found = locate_minimum(parse_expression(f), spans)
    assert found == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("f", ["w**3", "exp(-w)", "-(w**2)"])
def test_no_minimum_is_marked_where_f_keeps_falling(f):
    from vanishing.descent.expr import parse_expression

    assert locate_minimum(parse_expression(f), [(-2.0, 2.0)]) is None


def test_plot_legend_names_start_end_and_minimum():
    path = descend(PARABOLA, -4.0, lr=0.1, steps=5)  # stops well short of w = 3
    fig = plot_descent(PARABOLA, path)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "start" in labels and "end" in labels and "minimum (3)" in labels
    assert ax.get_xlim()[1] > 3.0  # the view reaches the minimum the path never got to


def test_a_loss_grown_past_the_bound_is_diverged_not_max_steps():
    from vanishing.descent.core import DIVERGENCE_FACTOR

    path = descend("w**2", [1.0], lr=1.5, steps=200)  # |w| doubles every step
    assert path.status == "diverged" and path.steps < 200
    assert path.losses[-1] > DIVERGENCE_FACTOR and np.isfinite(path.losses).all()
    assert path.losses[-2] <= DIVERGENCE_FACTOR
    # growth below the bound is left alone
    assert descend("w**2", [1.0], lr=1.5, steps=10).status == "max_steps"


def test_progress_is_reported_every_thousand_steps():
    calls = []
    path = descend("abs(w)", [1.0], lr=1.5, steps=2500,
                   progress=lambda done, total: calls.append((done, total)))
    assert path.status == "max_steps" and path.steps == 2500
    assert calls == [(1000, 2500), (2000, 2500)]
