"""Hand BPTT against autograd, central finite differences and closed forms (float64)."""

import pytest
import torch

from vanishing.bptt import elman_bptt, elman_forward, lag_terms
from vanishing.cells import ElmanCell, LSTMCell
from vanishing.unroll import make_probe, unroll

N, T, H_IN, H = 3, 9, 2, 5


def _cell(nonlinearity="tanh", bias=True, seed=0):
    torch.manual_seed(seed)
    return ElmanCell(H_IN, H, nonlinearity, bias).double()


def _data(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, T, H_IN, generator=g, dtype=torch.float64)
    h0 = 0.5 * torch.randn(N, H, generator=g, dtype=torch.float64)
    c = torch.randn(T, H, generator=g, dtype=torch.float64)
    return x, h0, c


def _loss(hs, c):
    """L = sum_t c_t . h_t + 0.5 ||h_T||^2: a direct gradient at every step."""
    return (hs * c).sum() + 0.5 * (hs[:, -1] ** 2).sum()


def _direct(hs, c):
    """∂L/∂h_t of :func:`_loss`, by hand: c_t, plus h_T at the last step."""
    d = c.expand_as(hs).clone()
    d[:, -1] += hs[:, -1]
    return d


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "linear"])
@pytest.mark.parametrize("bias", [True, False])
def test_hand_bptt_matches_autograd(nonlinearity, bias):
    cell, (x, h0, c) = _cell(nonlinearity, bias), _data()
    hs, _ = elman_forward(cell, x, h0)
    grads = elman_bptt(cell, x, _direct(hs, c), h0)

    probe = make_probe(x, H)
    h0_leaf = h0.clone().requires_grad_(True)
    hs_auto, _ = unroll(cell, x, h0_leaf, probe=probe)
    torch.testing.assert_close(hs, hs_auto.detach())
    _loss(hs_auto, c).backward()
    torch.testing.assert_close(grads.hidden, probe.grad)
    torch.testing.assert_close(grads.h0, h0_leaf.grad)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        ref = getattr(cell, name)
        mine = getattr(grads, name)
        if ref is None:
            assert mine is None
        else:
            torch.testing.assert_close(mine, ref.grad)


def test_hand_bptt_matches_central_finite_differences():
    cell, (x, h0, c) = _cell(), _data()
    hs, _ = elman_forward(cell, x, h0)
    grads = elman_bptt(cell, x, _direct(hs, c), h0)
    eps = 1e-6

    def loss_with(probe):
        with torch.no_grad():
            return float(_loss(unroll(cell, x, h0, probe=probe)[0], c))

    for n, t, i in [(0, 0, 0), (1, 4, 3), (2, T - 1, 1), (0, T - 2, 4)]:
        p = torch.zeros(N, T, H, dtype=torch.float64)
        p[n, t, i] = eps  # the probe perturbs h_t by eps: (L(+) - L(-)) / 2 eps = dL/dh_t
        fd = (loss_with(p) - loss_with(-p)) / (2 * eps)
        assert fd == pytest.approx(float(grads.hidden[n, t, i]), rel=1e-6, abs=1e-9)
    for i, j in [(0, 0), (2, 3), (4, 1)]:
        w = cell.weight_hh
        with torch.no_grad():
            w[i, j] += eps
            up = float(_loss(unroll(cell, x, h0)[0], c))
            w[i, j] -= 2 * eps
            down = float(_loss(unroll(cell, x, h0)[0], c))
            w[i, j] += eps
        assert (up - down) / (2 * eps) == pytest.approx(float(grads.weight_hh[i, j]), rel=1e-6)


def test_gradient_is_a_product_of_jacobians():
    """Only the last step is read: g_t = (J_(t+1)^T ... J_T^T) d_T, built here with matrices."""
    cell, (x, h0, _) = _cell(), _data()
    hs, fp = elman_forward(cell, x, h0)
    direct = torch.zeros_like(hs)
    direct[:, -1] = 1.0
    grads = elman_bptt(cell, x, direct, h0)
    w = cell.weight_hh.detach()
    for n in range(N):
        g = direct[n, -1]
        for t in range(T - 1, 0, -1):
            jac = torch.diag(fp[n, t]) @ w  # J_t = dh_t/dh_(t-1)
            g = jac.T @ g
            torch.testing.assert_close(grads.hidden[n, t - 1], g)


def test_lag_terms_sum_to_the_gradient():
    cell, (x, h0, c) = _cell(), _data()
    hs, _ = elman_forward(cell, x, h0)
    lags = lag_terms(cell, x, _direct(hs, c), h0)
    unroll_hs, _ = unroll(cell, x, h0)
    _loss(unroll_hs, c).backward()
    assert lags.terms.shape == (T, H, H)
    torch.testing.assert_close(lags.terms.sum(0), cell.weight_hh.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lags.total, cell.weight_hh.grad)
    assert lags.share(0) == pytest.approx(1.0, abs=1e-12)
    assert float(lags.remainder.abs().max()) == 0.0
    short = lag_terms(cell, x, _direct(hs, c), h0, max_lag=2)
    assert short.max_lag == 2
    torch.testing.assert_close(short.terms, lags.terms[:3])
    torch.testing.assert_close(short.remainder, lags.terms[3:].sum(0))
    assert short.share(2) == pytest.approx(lags.share(2), abs=1e-12)
    torch.testing.assert_close(short.shares(), lags.shares()[:3])
    with pytest.raises(ValueError, match="max_lag"):
        short.share(3)
    assert lags.terms.shape[0] == T and lags.max_lag == T - 1


def test_lag_terms_closed_form_for_a_scalar_linear_rnn():
    """h_t = w h_(t-1) + u x_t, L = sum_t c_t h_t: lag k of dL/dw = sum_t c_t w^k h_(t-k-1)."""
    cell = ElmanCell(1, 1, "linear", bias=False).double()
    with torch.no_grad():
        cell.weight_hh.fill_(0.8)
        cell.weight_ih.fill_(1.0)
    x = torch.tensor([[[1.0], [-2.0], [0.5], [3.0], [1.5]]], dtype=torch.float64)
    h0 = torch.tensor([[0.3]], dtype=torch.float64)
    c = torch.tensor([0.2, -1.0, 0.7, 0.4, 1.1], dtype=torch.float64)
    hs, _ = elman_forward(cell, x, h0)
    h = [0.3] + hs[0, :, 0].tolist()  # h[0] = h_0, h[t] = h_t (1-based t)
    lags = lag_terms(cell, x, c.view(1, 5, 1), h0)
    for k in range(5):
        expected = sum(c[t - 1] * 0.8**k * h[t - k - 1] for t in range(k + 1, 6))
        assert float(lags.terms[k, 0, 0]) == pytest.approx(float(expected), rel=1e-12)


def test_bad_input():
    cell, (x, _, _) = _cell(), _data()
    with pytest.raises(TypeError, match="Elman"):
        elman_bptt(LSTMCell(H_IN, H).double(), x, torch.zeros(N, T, H))
    with pytest.raises(ValueError, match="direct"):
        elman_bptt(cell, x, torch.zeros(N, T, H + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="h0"):
        elman_bptt(cell, x, torch.zeros(N, T, H, dtype=torch.float64), torch.zeros(N, H + 1))
    lags = lag_terms(cell, x, torch.zeros(N, T, H, dtype=torch.float64))
    with pytest.raises(ValueError, match="zero"):
        lags.share(0)
