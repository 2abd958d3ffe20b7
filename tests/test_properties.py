"""Property-based checks of the public API (hypothesis, fixed seed, bounded examples).

The property, for every entry point: given any input a user can send, it returns finite
numbers of the documented shape, or raises a ``ValueError`` / ``TypeError`` of its own;
never another exception and never a NaN without an error.

Bounded: ``derandomize=True`` (the same examples on every run, in CI too) and
:data:`EXAMPLES` (100) examples per test, 6 tests: 600 cases, about 5 s on 2 CPU cores.
Floats are drawn without subnormals (other tests flush denormals to zero, which
hypothesis refuses to draw them under).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vanishing.cells.base import make_cell
from vanishing.descent import descend
from vanishing.models import build_model
from vanishing.probe import hidden_gradients, input_gradients
from vanishing.tasks import get_task, task_names
from vanishing.unroll import unroll

EXAMPLES = 100
BOUNDED = settings(derandomize=True, max_examples=EXAMPLES, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])
ALLOWED = (ValueError, TypeError)
#: library models whose cores are fused torch modules or cells run by unroll
NAMES = ["rnn_tanh", "rnn_relu", "irnn", "lstm", "gru", "lru", "mingru", "minlstm"]

sizes = st.one_of(st.integers(-2, 5), st.just(True), st.just(2.0), st.none())
dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16,
                          torch.int64])
special = st.sampled_from([None, math.nan, math.inf, -math.inf])


def _input(batch: int, time: int, features: int, dtype, bad, where: int) -> torch.Tensor:
    x = torch.randn(batch, time, features, generator=torch.Generator().manual_seed(where))
    if bad is not None and x.numel():
        x.view(-1)[where % x.numel()] = bad
    return x.to(dtype)


def _finite(array, shape) -> None:
    array = np.asarray(array)
    assert array.shape == shape, (array.shape, shape)
    assert np.isfinite(array).all(), array


@BOUNDED
@given(name=st.sampled_from(NAMES + ["", "nope"]), input_size=sizes, hidden=sizes,
       output=sizes, batch=st.integers(0, 3), time=st.integers(0, 4))
def test_build_model_and_forward(name, input_size, hidden, output, batch, time):
    try:
        model = build_model(name, input_size, hidden, output)
    except ALLOWED:
        return
    x = torch.randn(batch, time, input_size)
    try:
        out = model(x)
    except ALLOWED:
        return
    _finite(out.detach(), (batch, output))


@BOUNDED
@given(name=st.sampled_from(["rnn_tanh", "rnn_relu", "gru", "lstm"]),
       batch=st.integers(0, 3), time=st.integers(0, 4), features=st.integers(1, 4),
       dtype=dtypes, bad=special, where=st.integers(0, 50))
def test_unroll(name, batch, time, features, dtype, bad, where):
    cell = make_cell(name, 3, 4)
    x = _input(batch, time, features, dtype, bad, where)
    try:
        hs, _ = unroll(cell, x)
    except ALLOWED:
        return
    _finite(hs.detach().float(), (batch, time, 4))


@BOUNDED
@given(name=st.sampled_from(NAMES), batch=st.integers(0, 3), time=st.integers(0, 5),
       features=st.integers(1, 4), dtype=dtypes, bad=special, where=st.integers(0, 50),
       nan_weight=st.booleans())
def test_hidden_and_input_gradients(name, batch, time, features, dtype, bad, where,
                                    nan_weight):
    torch.manual_seed(where)
    model = build_model(name, 3, 4, 2).double()
    if nan_weight:
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = math.nan
    x = _input(batch, time, features, dtype, bad, where)
    for measure in (hidden_gradients, input_gradients):
        try:
            trace = measure(model, x)
        except ALLOWED:
            continue
        _finite(trace.norms, (time,))


@BOUNDED
@given(name=st.sampled_from(task_names()), length=st.integers(-3, 40),
       batch=st.integers(-1, 4))
def test_task_sample_metrics_and_chance(name, length, batch):
    task = get_task(name)
    try:
        x, y = task.sample(length, batch, torch.Generator().manual_seed(0))
    except ALLOWED:
        with pytest.raises(ALLOWED):
            task.check(length, batch, torch.Generator())
        return
    assert x.shape[0] == y.shape[0] == batch
    chance = task.chance_loss(length)
    assert math.isfinite(chance) and chance >= 0
    out = (torch.zeros(*y.shape, task.output_size) if not y.is_floating_point()
           else torch.zeros(y.shape))
    metrics = task.metrics(out, y)
    assert all(math.isfinite(v) for v in metrics.values()) and "loss" in metrics


@BOUNDED
@given(name=st.sampled_from(task_names()), shape=st.lists(st.integers(0, 10), max_size=4),
       classes=st.integers(1, 12))
def test_task_metrics_on_any_shape(name, shape, classes):
    task = get_task(name)
    x, y = task.sample(task.min_length, 3, torch.Generator().manual_seed(0))
    for method in (task.metrics, task.loss):
        try:
            value = method(torch.zeros(*shape, classes), y)
        except ALLOWED:
            continue
        values = value.values() if isinstance(value, dict) else [float(value)]
        assert all(math.isfinite(v) for v in values)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
                    st.integers(-5, 5))


@BOUNDED
@given(formula=st.sampled_from(["w**2", "(w-3)**2", "abs(w)", "exp(w)", "log(w)", "-exp(w)",
                                "w**4 - w**2", "x**2 + 10*y**2", "sqrt(w)", "1/w", "w",
                                "", "w +", "__import__('os')"]),
       start=st.lists(numbers, min_size=0, max_size=3), lr=numbers,
       steps=st.integers(-2, 60), momentum=st.floats(-1, 1.5, allow_subnormal=False))
def test_descend(formula, start, lr, steps, momentum):
    try:
        path = descend(formula, start, lr=lr, steps=steps, momentum=momentum)
    except ALLOWED:
        return
    assert path.status in ("converged", "max_steps", "diverged")
    assert 0 <= path.steps <= steps
    n, dim = path.steps, len(path.variables)
    assert path.iterates.shape == (n + 1, dim) and path.losses.shape == (n + 1,)
    keep = slice(None, -1) if path.status == "diverged" else slice(None)
    assert np.isfinite(path.iterates[keep]).all() and np.isfinite(path.losses[keep]).all()
