"""Jacobian products against closed forms (linear RNNs, determinants) and autograd + SVD."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from vanishing.cells import ElmanCell, GRUCell, LSTMCell
from vanishing.jacobian import cell_jacobian_products, jacobian_products
from vanishing.models import build_model
from vanishing.unroll import make_probe, unroll

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _normal_matrix(moduli, seed=0):
    """A real normal matrix Q B Q^T: 2x2 rotation blocks scaled by ``moduli`` (H = 2 * len)."""
    blocks = []
    angles = torch.rand(len(moduli), generator=_gen(seed), dtype=F64) * math.pi
    for r, a in zip(moduli, angles, strict=True):
        c, s = math.cos(a), math.sin(a)
        blocks.append(r * torch.tensor([[c, -s], [s, c]], dtype=F64))
    q, _ = torch.linalg.qr(torch.randn(2 * len(moduli), 2 * len(moduli), generator=_gen(seed + 1),
                                       dtype=F64))
    return q @ torch.block_diag(*blocks) @ q.T


def _linear_cell(w):
    cell = ElmanCell(2, w.shape[0], "linear").double()
    with torch.no_grad():
        cell.weight_hh.copy_(w)
    return cell


@pytest.mark.parametrize("spectral", ["power", "svd"])
def test_linear_rnn_with_normal_weights_gives_rho_to_the_power_lag(spectral):
    moduli = [0.93, 0.7, 0.5]
    cell = _linear_cell(_normal_matrix(moduli))
    length = 80
    x = torch.randn(2, length, 2, generator=_gen(), dtype=F64)
    jac = cell_jacobian_products(cell, x, spectral=spectral, k=0)
    lag = np.arange(length)[::-1]  # index t has lag T-1-t
    expected_2 = lag * math.log(0.93)
    expected_f = 0.5 * np.log(sum(2 * m ** (2 * lag) for m in moduli))
    np.testing.assert_allclose(np.exp(jac.log_spectral - expected_2), 1, rtol=1e-6)
    np.testing.assert_allclose(np.exp(jac.log_frobenius - expected_f), 1, rtol=1e-6)


@pytest.mark.slow  # over a second: out of the quick subset, in the full suite
def test_stable_at_4000_steps_far_below_float64():
    cell = _linear_cell(_normal_matrix([0.7, 0.6]))
    length = 4000
    x = torch.randn(1, length, 2, generator=_gen(), dtype=F64)
    jac = cell_jacobian_products(cell, x, k=1)
    lag = np.arange(length)[::-1]
    # ln 0.7^3999 = -1426: e to that is 0 in float64, yet it is reported exactly
    np.testing.assert_allclose(jac.log_spectral, lag * math.log(0.7), rtol=1e-9, atol=1e-9)
    assert np.all(np.isfinite(jac.log_frobenius)) and jac.log_frobenius[0] < -1400
    assert jac.lyapunov[0] == pytest.approx(math.log(0.7), rel=1e-3)


@pytest.mark.parametrize("rho, trend", [(0.9, "decays"), (1.0, "holds"), (1.1, "grows")])
def test_random_weights_scaled_to_a_spectral_radius(rho, trend):
    h, length = 16, 400
    w = torch.randn(h, h, generator=_gen(3), dtype=F64)
    w *= rho / torch.linalg.eigvals(w).abs().max()
    x = torch.zeros(1, length, 2, dtype=F64)
    jac = cell_jacobian_products(_linear_cell(w), x, k=1)
    per_step = (jac.log_spectral[0] - jac.log_spectral[length // 2]) / (length // 2)
    assert per_step == pytest.approx(math.log(rho), abs=0.01)
    assert jac.lyapunov[0] == pytest.approx(math.log(rho), abs=0.01)
    end = jac.log_spectral[0]
    assert {"decays": end < -30, "holds": abs(end) < 5, "grows": end > 30}[trend]


def test_qr_exponents_sum_to_the_log_determinant():
    """sum_i ln sigma_i of a product = ln |det|, and det J_t = prod f'(a_t) det W_hh."""
    torch.manual_seed(0)
    cell = ElmanCell(3, 5, "tanh").double()
    x = torch.randn(2, 30, 3, generator=_gen(), dtype=F64)
    jac = cell_jacobian_products(cell, x, k=5)
    hs, _ = unroll(cell, x)
    fp = 1 - hs.detach() ** 2
    logdet = fp[:, 1:].log().sum((1, 2)) + 29 * torch.linalg.slogdet(cell.weight_hh.detach())[1]
    jac1 = cell_jacobian_products(cell, x[:1], k=5)  # one sample: no batch mean to undo
    assert jac1.log_singular.sum() == pytest.approx(float(logdet[0]), rel=1e-10)
    assert np.all(np.diff(jac.log_singular) <= 1e-9)  # largest first
    np.testing.assert_allclose(jac.lyapunov, jac.log_singular / 29)


def _autograd_jacobians(cell, x):
    """dh_T/dh_t for every t by autograd: one backward per unit of h_T, through a probe."""
    n, length, h = x.shape[0], x.shape[1], cell.hidden_size
    rows = []
    for i in range(h):
        probe = make_probe(x, h)
        hs, _ = unroll(cell, x, probe=probe)
        hs[:, -1, i].sum().backward()
        rows.append(probe.grad)  # (N, T, H): row i of dh_T/dh_t, per sample
    return torch.stack(rows, 2).reshape(n, length, h, h)


@pytest.mark.parametrize("cls", [ElmanCell, LSTMCell, GRUCell])
def test_norms_match_autograd_and_svd(cls):
    torch.manual_seed(1)
    cell = cls(3, 4).double()
    x = torch.randn(3, 25, 3, generator=_gen(), dtype=F64)
    full = _autograd_jacobians(cell, x)
    ref_f = torch.linalg.matrix_norm(full).log()
    ref_2 = torch.linalg.matrix_norm(full, ord=2).log()
    for spectral in ("power", "svd"):
        jac = cell_jacobian_products(cell, x, spectral=spectral, chunk=7)
        np.testing.assert_allclose(jac.per_sample_frobenius, ref_f.numpy(), rtol=1e-9)
        mean_2 = torch.logsumexp(ref_2, 0) - math.log(3)  # ln 1 = 0 at lag 0, to rounding
        np.testing.assert_allclose(jac.log_spectral, mean_2.numpy(), rtol=1e-8, atol=1e-12)


def test_initial_state_is_honoured():
    torch.manual_seed(2)
    cell = LSTMCell(3, 4).double()
    x = torch.randn(2, 6, 3, generator=_gen(), dtype=F64)
    h0 = (torch.randn(2, 4, dtype=F64), torch.randn(2, 4, dtype=F64))
    a = cell_jacobian_products(cell, x, h0, k=2)
    b = cell_jacobian_products(cell, x, k=2)
    assert not np.allclose(a.log_frobenius, b.log_frobenius)
    probe_cell_hs = []
    for i in range(4):
        probe = make_probe(x, 4)
        hs, _ = unroll(cell, x, h0, probe=probe)
        hs[:, -1, i].sum().backward()
        probe_cell_hs.append(probe.grad)
    full = torch.stack(probe_cell_hs, 2)
    np.testing.assert_allclose(a.per_sample_frobenius,
                               torch.linalg.matrix_norm(full).log().numpy(), rtol=1e-9)


def test_exactly_zero_products_are_minus_inf_and_nothing_else():
    cell = ElmanCell(2, 3, "relu").double()
    with torch.no_grad():
        cell.bias_hh.fill_(-100.0)  # every unit dead: f'(a) = 0, J_t = 0
    x = torch.randn(1, 5, 2, generator=_gen(), dtype=F64)
    jac = cell_jacobian_products(cell, x, k=1)
    assert jac.log_frobenius[-1] == pytest.approx(math.log(math.sqrt(3)))
    assert np.all(jac.log_frobenius[:-1] == -np.inf)
    assert np.all(jac.log_spectral[:-1] == -np.inf)


def test_model_level_products_pick_a_layer():
    model = build_model("gru", 3, 5, 2, num_layers=2, seed=0)
    x = torch.randn(2, 12, 3, generator=_gen())
    top = jacobian_products(model, x)
    assert top.layer == "core.l1" and top.log_frobenius.shape == (12,)
    bottom = jacobian_products(model, x, layer="core.l0", spectral="none", k=0)
    assert bottom.log_spectral is None and bottom.lyapunov.shape == (0,)
    with pytest.raises(ValueError, match="core.l0, core.l1"):
        jacobian_products(model, x, layer="core.l2")
    rnn = nn.GRU(3, 4, bidirectional=True, batch_first=True)
    rev = jacobian_products(rnn, x, layer="gru.l0_reverse")
    assert rev.log_frobenius[0] == pytest.approx(math.log(2.0))  # identity at real t = 0


def test_bad_arguments():
    cell = ElmanCell(2, 3)
    x = torch.randn(1, 4, 2)
    with pytest.raises(ValueError, match="spectral"):
        cell_jacobian_products(cell, x, spectral="exact")
    with pytest.raises(ValueError, match="state size 3"):
        cell_jacobian_products(cell, x, k=4)
    with pytest.raises(TypeError, match="Cell"):
        cell_jacobian_products(nn.RNN(2, 3), x)
    with pytest.raises(ValueError, match="contains no"):
        jacobian_products(nn.Linear(2, 2), x)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru"])
def test_default_models_at_4000_steps(name):
    """ln ||dh_T/dh_t|| stays finite and falls at a steady rate across the whole range."""
    model = build_model(name, 2, 16, 1, seed=0)
    x = torch.randn(2, 4000, 2, generator=_gen())
    jac = jacobian_products(model, x, k=2, chunk=250)
    log2 = jac.log_spectral[::-1]  # by lag
    assert np.all(np.isfinite(log2)) and log2[-1] < -600  # e^-600 = 1e-261
    first, second = (log2[2000] - log2[100]) / 1900, (log2[3999] - log2[2000]) / 1999
    assert first == pytest.approx(second, rel=0.1)
    assert jac.lyapunov[0] == pytest.approx(log2[-1] / 3999, rel=0.1)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_elman_closed_form_equals_autograd_path(nonlinearity):
    torch.manual_seed(4)
    cell = ElmanCell(3, 6, nonlinearity).double()
    x = torch.randn(3, 40, 3, dtype=F64)
    closed = cell_jacobian_products(cell, x, k=3)
    auto = cell_jacobian_products(cell, x, k=3, closed_form=False, chunk=7)
    np.testing.assert_allclose(closed.log_frobenius, auto.log_frobenius, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(closed.log_spectral, auto.log_spectral, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(closed.lyapunov, auto.lyapunov, rtol=1e-10, atol=1e-10)


def test_a_users_lstmcell_loop_gets_its_jacobian_products_from_the_recording():
    """diagnose() on a model that loops nn.LSTMCell itself: ||dh_T/dh_t||_F per step equals
    autograd's Jacobian of the loop run from step t (c_t held, as the probe does)."""
    from vanishing.diagnose import diagnose

    class Loop(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.cell, self.out = torch.nn.LSTMCell(3, 5), torch.nn.Linear(5, 1)

        def forward(self, x):
            h = c = x.new_zeros(x.shape[0], 5)
            for x_t in x.unbind(1):
                h, c = self.cell(x_t, (h, c))
            return self.out(h)

    model = Loop().double()
    x = torch.randn(2, 8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    d = diagnose(model, x, lambda out: out.sum())
    assert d.jacobian is not None and d.jacobian.layer == "cell"
    # the states h_t, c_t of the plain loop, then dh_T/dh_t by autograd for each t
    with torch.no_grad():
        h = c = x.new_zeros(2, 5)
        states = []
        for x_t in x.unbind(1):
            h, c = model.cell(x_t, (h, c))
            states.append((h, c))
    want = []
    for t in range(8):
        per_sample = []
        for n in range(2):
            def run(h_t, t=t, n=n):
                hh, cc = h_t, states[t][1][n]
                for x_s in x[n, t + 1:]:
                    hh, cc = model.cell(x_s, (hh, cc))
                return hh

            jac = torch.autograd.functional.jacobian(run, states[t][0][n])
            per_sample.append(float(torch.linalg.matrix_norm(jac)))
        want.append(np.log(np.mean(per_sample)))
    np.testing.assert_allclose(d.jacobian.log_frobenius, want, rtol=1e-9, atol=1e-12)


def test_the_power_iteration_finds_the_largest_direction_of_a_diagonal_product():
    """A diagonal recurrence keeps each channel apart: a start on the first basis vectors
    would report the largest of those channels only. Against exact SVD."""
    from vanishing.cells import make_cell

    cell = make_cell("rnn_linear", 2, 16).double()
    with torch.no_grad():
        cell.weight_hh.copy_(torch.diag(torch.linspace(0.5, 0.99, 16, dtype=torch.float64)))
    x = torch.randn(3, 40, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    power = cell_jacobian_products(cell, x, spectral="power")
    exact = cell_jacobian_products(cell, x, spectral="svd")
    np.testing.assert_allclose(power.log_spectral, exact.log_spectral, atol=1e-3)
    # the product of t factors is diag(w)^t: its 2-norm is 0.99^t
    np.testing.assert_allclose(exact.log_spectral, np.log(0.99) * np.arange(39, -1, -1),
                               atol=1e-9)


def test_lyapunov_exponents_of_a_diagonal_linear_rnn_are_the_log_moduli():
    from vanishing.cells import make_cell
    from vanishing.jacobian import lyapunov_exponents

    cell = make_cell("rnn_linear", 2, 5).double()
    moduli = torch.tensor([0.9, 0.6, 0.4, 0.2, 0.1], dtype=torch.float64)
    with torch.no_grad():
        cell.weight_hh.copy_(torch.diag(moduli))
    x = torch.randn(3, 30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lam = lyapunov_exponents(cell, x, k=3)
    torch.testing.assert_close(lam, moduli[:3].log(), rtol=1e-9, atol=1e-12)
    assert lam.requires_grad  # differentiable: a loss can floss it
    with pytest.raises(ValueError, match="k must be in"):
        lyapunov_exponents(cell, x, k=6)
