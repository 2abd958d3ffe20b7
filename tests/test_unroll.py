"""unroll: shapes, bad input, and the probe's dL/dh_t against independent references."""

import math

import pytest
import torch

from vanishing.cells import ElmanCell, make_cell
from vanishing.unroll import make_probe, unroll


def _reference_tanh_loss(cell, x, target, t_pert, delta):
    """The tanh RNN written out in the test, with `delta` added to h_t at step t_pert."""
    w_ih, w_hh, b = cell.weight_ih, cell.weight_hh, cell.bias_ih + cell.bias_hh
    h = torch.zeros(x.shape[0], w_hh.shape[0], dtype=x.dtype)
    loss = 0.0
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ w_ih.T + h @ w_hh.T + b)
        if t == t_pert:
            h = h + delta
        loss = loss + ((h - target[:, t]) ** 2).sum() * (t + 1) / x.shape[1]
    return loss


def test_probe_equals_central_finite_differences():
    torch.manual_seed(0)
    cell = ElmanCell(2, 3, "tanh").double()
    x = torch.randn(2, 6, 2, dtype=torch.float64)
    target = torch.randn(2, 6, 3, dtype=torch.float64)
    probe = make_probe(x, 3)
    hs, _ = unroll(cell, x, probe=probe)
    weights = torch.arange(1, 7, dtype=torch.float64).view(1, 6, 1) / 6
    (((hs - target) ** 2) * weights).sum().backward()

    eps = 1e-6
    fd = torch.zeros_like(probe)
    with torch.no_grad():
        for t in range(6):
            for b in range(2):
                for j in range(3):
                    d = torch.zeros(2, 3, dtype=torch.float64)
                    d[b, j] = eps
                    up = _reference_tanh_loss(cell, x, target, t, d)
                    down = _reference_tanh_loss(cell, x, target, t, -d)
                    fd[b, t, j] = (up - down) / (2 * eps)
    torch.testing.assert_close(probe.grad, fd, atol=1e-7, rtol=1e-6)
    # the total gradient differs from the direct part at every step but the last
    assert not torch.allclose(probe.grad[:, 0], 2 * (hs[:, 0] - target[:, 0]) / 6)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_probe_finite_differences_for_gated_cells(name):
    torch.manual_seed(3)
    cell = make_cell(name, 2, 3).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    w = torch.randn(2, 3, dtype=torch.float64)
    probe = make_probe(x, 3)
    hs, _ = unroll(cell, x, probe=probe)
    (hs[:, -1] * w).sum().backward()
    eps = 1e-6
    with torch.no_grad():
        for t in (0, 2, 4):
            d = torch.zeros_like(probe)
            d[1, t, 2] = eps
            up = (unroll(cell, x, probe=d)[0][:, -1] * w).sum()
            down = (unroll(cell, x, probe=-d)[0][:, -1] * w).sum()
            assert math.isclose(probe.grad[1, t, 2].item(), (up - down).item() / (2 * eps),
                                rel_tol=1e-6, abs_tol=1e-9)


def test_probe_on_linear_rnn_equals_closed_form():
    """Linear Elman RNN, L = w . h_T: dL/dh_t = (W_hh^T)^(T-t) w."""
    torch.manual_seed(2)
    cell = ElmanCell(3, 4, "linear").double()
    length = 12
    x = torch.randn(5, length, 3, dtype=torch.float64)
    w = torch.randn(4, dtype=torch.float64)
    probe = make_probe(x, 4)
    hs, _ = unroll(cell, x, probe=probe)
    (hs[:, -1] @ w).sum().backward()
    w_hh_t = cell.weight_hh.detach().T
    for t in range(length):
        expected = torch.linalg.matrix_power(w_hh_t, length - 1 - t) @ w
        torch.testing.assert_close(probe.grad[:, t], expected.expand(5, 4), rtol=1e-10, atol=1e-12)


def test_shapes_and_initial_state():
    cell = make_cell("lstm", 3, 4)
    x = torch.randn(2, 5, 3)
    hs, (h, c) = unroll(cell, x)
    assert hs.shape == (2, 5, 4) and h.shape == (2, 4) and c.shape == (2, 4)
    torch.testing.assert_close(hs[:, -1], h)
    h0 = (torch.randn(2, 4), torch.randn(2, 4))
    # continuing from the final state equals one longer run
    hs2, _ = unroll(cell, x, (h, c))
    full, _ = unroll(cell, torch.cat([x, x], dim=1))
    torch.testing.assert_close(hs2, full[:, 5:])
    assert not torch.allclose(unroll(cell, x, h0)[0], hs)


@pytest.mark.parametrize(
    "x, err, match",
    [
        (torch.randn(5, 3), ValueError, "must be 3-D .batch, time, features., got 2-D"),
        (torch.randn(2, 5, 4), ValueError, "must have 3 features in its last dimension"),
        (torch.zeros(2, 0, 3), ValueError, "time >= 1"),
        (torch.ones(2, 5, 3, dtype=torch.long), TypeError, "floating-point"),
        ([[1.0, 2.0, 3.0]], TypeError, "must be a torch.Tensor"),
    ],
)
def test_bad_input(x, err, match):
    with pytest.raises(err, match=match):
        unroll(make_cell("gru", 3, 4), x)


def test_nan_input_is_refused():
    x = torch.randn(2, 5, 3)
    x[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        unroll(make_cell("rnn_tanh", 3, 4), x)


def test_bad_probe_and_state():
    cell = make_cell("lstm", 3, 4)
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match=r"probe must have shape .* \(2, 5, 4\), got \(2, 5, 3\)"):
        unroll(cell, x, probe=torch.zeros(2, 5, 3, requires_grad=True))
    with pytest.raises(TypeError, match="must be .h, c."):
        unroll(cell, x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="state tensors must have shape"):
        unroll(cell, x, (torch.zeros(3, 4), torch.zeros(3, 4)))
    with pytest.raises(TypeError, match="cell must be"):
        unroll(torch.nn.LSTM(3, 4), x)
