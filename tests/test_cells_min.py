"""minGRU and minLSTM (Feng et al. 2024): the scan against the loop, both against the
formulas written out here, the probe against the closed form, and the tool end to end."""

import pytest
import torch
from typer.testing import CliRunner

from vanishing.cells import CELLS
from vanishing.cells.mingru import log_scan
from vanishing.cli import app
from vanishing.diagnose import diagnose
from vanishing.models import SequenceModel
from vanishing.probe import hidden_gradients, record
from vanishing.train import TrainConfig, train
from vanishing.unroll import make_probe, unroll

F64 = torch.float64
MINS = ["mingru", "minlstm"]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _pair(name, n_in=3, h=5):
    loop = CELLS[name](n_in, h).double()
    scan = type(loop)(n_in, h, parallel=True).double()
    scan.load_state_dict(loop.state_dict())
    return loop, scan


def _by_hand(cell, x, h):
    """The recurrence written out with torch ops on the cell's weights: (N, T, H)."""
    w, b, size = cell.weight_ih, cell.bias_ih, cell.hidden_size
    rows = [w[g * size:(g + 1) * size] for g in range(cell.gates)]
    bias = [b[g * size:(g + 1) * size] for g in range(cell.gates)]
    out = []
    for x_t in x.unbind(1):
        pre = [x_t @ rows[g].T + bias[g] for g in range(cell.gates)]
        if cell.kind == "mingru":
            z = torch.sigmoid(pre[0])
            h = (1 - z) * h + z * pre[1]
        else:
            f, i = torch.sigmoid(pre[0]), torch.sigmoid(pre[1])
            h = f / (f + i) * h + i / (f + i) * pre[2]
        out.append(h)
    return torch.stack(out, 1)


def _keep(cell, x):
    """a_t = 1 - z_t (minGRU) or f'_t (minLSTM), written out: (N, T, H)."""
    h = cell.hidden_size
    pre = x @ cell.weight_ih.T + cell.bias_ih
    if cell.kind == "mingru":
        return 1 - torch.sigmoid(pre[..., :h])
    f, i = torch.sigmoid(pre[..., :h]), torch.sigmoid(pre[..., h:2 * h])
    return f / (f + i)


@pytest.mark.parametrize("name", MINS)
@pytest.mark.parametrize("length", [1, 7, 50])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("with_probe", [False, True])
def test_scan_equals_loop(name, length, with_state, with_probe):
    loop, scan = _pair(name)
    x = torch.randn(4, length, 3, dtype=F64, generator=_gen())
    h0 = torch.randn(4, 5, dtype=F64, generator=_gen(1)) if with_state else None
    weight = torch.randn(4, length, 5, dtype=F64, generator=_gen(2))
    got = []
    for cell in (loop, scan):
        probe = make_probe(x, 5) if with_probe else None
        state = None if h0 is None else h0.clone().requires_grad_(True)
        hs, h_last = unroll(cell, x, state, probe=probe)
        ((hs * weight).sum() + h_last.square().sum()).backward()
        grads = [p.grad for p in cell.parameters()] + ([probe.grad] if with_probe else [])
        grads += [] if state is None else [state.grad]
        got.append([hs, h_last, *grads])
    for a, b in zip(*got, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(got[0][0], _by_hand(loop, x, h0 if with_state else 0.0))


def test_scan_is_sign_safe():
    """b of either sign, exact zeros and a zero h_0 (log 0): values and finite gradients."""
    log_a = torch.randn(3, 40, 4, dtype=F64, generator=_gen()).clamp(max=-0.01)
    b = torch.randn(3, 40, 4, dtype=F64, generator=_gen(1))
    b[:, ::3] = 0.0
    b[0] = -b[0].abs()  # one sequence entirely non-positive
    log_a.requires_grad_(True), b.requires_grad_(True)
    h, want = torch.zeros(3, 4, dtype=F64), []
    for t in range(40):
        h = log_a[:, t].exp() * h + b[:, t]
        want.append(h)
    want = torch.stack(want, 1)
    got = log_scan(log_a, b, torch.zeros(3, 4, dtype=F64))
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    g_want = torch.autograd.grad(want.sum(), [log_a, b])
    g_got = torch.autograd.grad(got.sum(), [log_a, b])
    for a, c in zip(g_want, g_got, strict=True):
        assert torch.isfinite(c).all()
        torch.testing.assert_close(c, a, atol=1e-10, rtol=1e-10)
    small = (log_a[:2, :6, :2].detach().requires_grad_(True),
             b[:2, :6, :2].detach().requires_grad_(True),
             torch.randn(2, 2, dtype=F64, generator=_gen(3), requires_grad=True))
    assert torch.autograd.gradcheck(log_scan, small)
    assert torch.autograd.gradgradcheck(log_scan, small)


@pytest.mark.parametrize("name", MINS)
def test_probe_gives_the_closed_form_product(name):
    """dL/dh_t = prod_(s>t) a_s * dL/dh_T, a = 1 - z (minGRU) or f' (minLSTM)."""
    model = SequenceModel(name, 3, 6, 2, seed=1).double()
    cell = model.core.cells[0]
    cell.parallel = True  # recorded, the loop runs all the same
    x = torch.randn(5, 12, 3, dtype=F64, generator=_gen())
    with record(model) as rec:
        loss = model(x).sum()
        total = rec.gradients(loss)[0].total
    g_last = model.head.weight.detach().sum(0)  # dL/dh_T of out.sum()
    a = _keep(cell, x).detach()
    suffix = torch.cat([a[:, 1:].flip(1).cumprod(1).flip(1), torch.ones_like(a[:, :1])], 1)
    want = suffix * g_last
    torch.testing.assert_close(total, want, atol=1e-12, rtol=1e-10)
    trace = hidden_gradients(model, x, lambda out: out.sum())
    torch.testing.assert_close(torch.from_numpy(trace.norms), want.norm(dim=-1).mean(0))


@pytest.mark.parametrize("name", MINS)
def test_jacobian_weights_and_init(name):
    cell = CELLS[name](3, 4).double()
    xp, h = cell.project(torch.randn(2, 3, dtype=F64)), torch.randn(2, 4, dtype=F64)
    auto = torch.stack([torch.autograd.functional.jacobian(
        lambda v, k=k: cell.recur(xp[k:k + 1], (v[None],))[0][0], h[k]) for k in range(2)])
    torch.testing.assert_close(cell.jacobian(xp, (h,)), auto)
    assert cell.recurrent_blocks() is None and cell.gamma is None
    assert sorted(n for n, _ in cell.named_parameters()) == ["bias_ih", "weight_ih"]
    with pytest.raises(ValueError, match="no recurrent matrix W_hh"):
        cell.initialize_("orthogonal")
    cell.initialize_("chrono", max_length=20, generator=_gen())
    a = _keep(cell, torch.zeros(1, 1, 3, dtype=F64)).detach()
    assert bool((a >= 0.5 - 1e-12).all() and (a <= 1 - 1 / 20 + 1e-12).all())
    if cell.forget_gate is not None:
        cell.initialize_("default", forget_bias=2.0)
        assert bool((cell.bias_ih[:4] == 2.0).all())


@pytest.mark.parametrize("name", MINS)
def test_train_and_diagnose(name):
    result = train(TrainConfig(model=name, task="adding", length=10, steps=20, hidden_size=8,
                               batch_size=16, eval_every=10, eval_size=32))
    assert result.status in ("solved", "unsolved") and result.steps == 20
    x = torch.randn(4, 15, 2, generator=_gen())
    d = diagnose(result.model, x)
    assert d.weights == [] and d.jacobian is not None
    assert d.trace.norms.shape == (15,)


def test_cli():
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--model", "mingru", "--task", "adding", "--length",
                                  "10", "--steps", "20", "--hidden-size", "8", "--eval-every",
                                  "10", "--quiet"])
    assert trained.exit_code == 0, trained.output
    probed = runner.invoke(app, ["probe", "--model", "minlstm", "--length", "50"])
    assert probed.exit_code == 0, probed.output
    assert "horizon:" in probed.output
