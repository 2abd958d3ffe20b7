"""IndRNN (Li et al. 2018) against its closed form: dL/dh_t = u^(T-t) ⊙ Π relu' ⊙ dL/dh_T,
written out here from the hidden states; its init ranges, its constraint under training,
and the library's tools on it (model, probe, diagnosis, training, command line)."""

import math

import pytest
import torch
from typer.testing import CliRunner

from vanishing.cells import CELLS
from vanishing.cells.indrnn import IndRNNCell
from vanishing.cli import app
from vanishing.diagnose import diagnose
from vanishing.models import SequenceModel
from vanishing.probe import hidden_gradients, record
from vanishing.train import TrainConfig, train
from vanishing.unroll import make_probe, unroll

F64 = torch.float64


def _cell(t: int, h: int = 6, seed: int = 0) -> IndRNNCell:
    """A float64 cell with u of both signs and a bias that leaves some units dead."""
    g = torch.Generator().manual_seed(seed)
    cell = IndRNNCell(3, h, max_length=t).double()
    cell.initialize_("default", generator=g, u_range=(-2 ** (1 / t), 2 ** (1 / t)))
    with torch.no_grad():
        cell.weight_ih.copy_(torch.randn(h, 3, generator=g, dtype=F64))
        cell.bias_ih.copy_(torch.randn(h, generator=g, dtype=F64) * 0.5)
    return cell


def _closed_form(u: torch.Tensor, hs: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """dL/dh_t for L = sum_n c · h_T: c ⊙ Π_(s=t+1..T) u ⊙ [h_s > 0], (N, T, H)."""
    n, steps, h = hs.shape
    out = torch.empty(n, steps, h, dtype=hs.dtype)
    g = c.expand(n, h).clone()
    for t in range(steps - 1, -1, -1):
        out[:, t] = g
        g = g * u * (hs[:, t] > 0)  # back through step t: relu'(a_t) = [h_t > 0]
    return out


def test_probe_gives_the_closed_form_per_step_and_unit():
    t = 40
    cell = _cell(t)
    x = torch.randn(5, t, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    c = torch.randn(6, generator=torch.Generator().manual_seed(2), dtype=F64)
    probe = make_probe(x, 6)
    hs, _ = unroll(cell, x, probe=probe)
    (hs[:, -1] @ c).sum().backward()
    dead = (hs == 0).double().mean()
    assert 0.1 < dead < 0.9  # relu' really varies
    expected = _closed_form(cell.weight_hh.detach(), hs.detach(), c)
    torch.testing.assert_close(probe.grad, expected, rtol=1e-12, atol=1e-300)


def test_one_layer_model_recorded_and_hidden_gradients():
    t = 30
    model = SequenceModel("indrnn", 3, 6, 1, max_length=t, seed=3).double()
    cell = model.core.cells[0]
    with torch.no_grad():
        cell.bias_ih.copy_(torch.linspace(-0.3, 0.3, 6, dtype=F64))
        cell.weight_ih.mul_(300)
    x = torch.randn(4, t, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    with record(model) as rec:
        out = model(x)
        (grads,) = rec.gradients(out.sum())
    hs = unroll(cell, x)[0].detach()
    expected = _closed_form(cell.weight_hh.detach(), hs, model.head.weight.detach()[0])
    torch.testing.assert_close(grads.total, expected, rtol=1e-12, atol=1e-300)
    trace = hidden_gradients(model, x)
    torch.testing.assert_close(torch.from_numpy(trace.norms), expected.norm(dim=-1).mean(0))


def test_jacobian_and_recurrent_blocks_in_closed_form():
    cell = _cell(10)
    xp = torch.randn(4, 6, generator=torch.Generator().manual_seed(5), dtype=F64)
    h = torch.randn(4, 6, generator=torch.Generator().manual_seed(6), dtype=F64).relu()
    auto = torch.func.vmap(torch.func.jacrev(lambda a, s: cell.recur(a, (s,))[0], 1))(xp, h)
    torch.testing.assert_close(cell.jacobian(xp, (h,)), auto)
    u = cell.weight_hh.detach()
    torch.testing.assert_close(cell.recurrent_blocks().detach()[0], torch.diag(u))
    assert cell.kind == "indrnn" and cell.gates == 1 and cell.gamma == 1.0 and "indrnn" in CELLS


@pytest.mark.parametrize("t", [1, 20, 500])
def test_init_ranges(t):
    model = SequenceModel("indrnn", 50, 400, 1, num_layers=2, max_length=t, seed=0)
    lo, hi = 0.5 ** (1 / t), 2 ** (1 / t)
    lower_cell, top = model.core.cells  # the stack marks its lower layer, as the paper's
    assert not lower_cell.last_layer and top.last_layer
    u_low = lower_cell.weight_hh.detach()
    assert 0 <= u_low.min() < 0.05 * hi and u_low.max() <= hi  # U(0, 2^(1/T))
    for cell in model.core.cells:
        u = cell.weight_hh.detach()
        assert cell.max_length == t and u.max() <= hi
        if cell is top:
            assert lo <= u.min() and u.max() - u.min() > 0.9 * (hi - lo)
        assert cell.bias_ih.abs().max() == 0
        k = math.sqrt(6 / (65 * cell.input_size))  # kaiming_uniform_(a=8): U(-k, k)
        assert cell.weight_ih.abs().max() <= k and cell.weight_ih.abs().max() > 0.99 * k
    lower = IndRNNCell(2, 400, max_length=t, last_layer=False)
    assert 0 <= lower.weight_hh.min() < 0.05 * hi and lower.weight_hh.max() <= hi
    ident = SequenceModel("indrnn", 2, 8, 1, init="identity", max_length=t)
    assert torch.equal(ident.core.cells[0].weight_hh.detach(), torch.ones(8))
    again = SequenceModel("indrnn", 50, 400, 1, num_layers=2, max_length=t, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters(),
                                                  strict=True))


def test_constraint_is_kept_after_every_training_step(monkeypatch):
    cell = IndRNNCell(2, 4, max_length=10)
    with torch.no_grad():
        cell.weight_hh.copy_(torch.tensor([3.0, -3.0, 0.5, -1.0]))
    cell.constrain_()
    bound = 2 ** (1 / 10)
    assert cell.weight_hh.tolist() == pytest.approx([bound, -bound, 0.5, -1.0])
    calls = []
    keep = IndRNNCell.constrain_
    monkeypatch.setattr(IndRNNCell, "constrain_", lambda self: (calls.append(self), keep(self)))
    config = TrainConfig(task="adding", model="indrnn", length=10, hidden_size=8, steps=30,
                         num_layers=2, batch_size=8, lr=0.2, clip=None, eval_every=10,
                         eval_size=16)
    result = train(config)
    assert result.status != "diverged" and result.steps == 30
    assert len(calls) == 60 and set(map(id, calls)) == set(map(id, result.model.core.cells))
    for cell in result.model.core.cells:
        assert cell.weight_hh.abs().max() <= 2 ** (1 / cell.max_length)


def test_a_constraint_that_cannot_hold_is_an_error():
    with pytest.raises(ValueError, match="max_length.*int >= 1, got 0"):
        IndRNNCell(2, 4, max_length=0)
    cell = IndRNNCell(2, 4, max_length=10)
    with pytest.raises(ValueError, match="max_length"):
        cell.initialize_("default", max_length=-3)
    with pytest.raises(ValueError, match=r"u_range.*2\^\(1/T\) = 1.07177 \(T = 10\)"):
        cell.initialize_("default", u_range=(0.0, 1.5))
    with pytest.raises(ValueError, match="lo <= hi"):
        cell.initialize_("default", u_range=(1.0, 0.5))
    with pytest.raises(ValueError, match="init 'orthogonal' does not apply.*'default'.*"
                                         "'identity'"):
        SequenceModel("indrnn", 2, 4, 1, init="orthogonal")
    with pytest.raises(ValueError, match="radius= does not apply"):
        cell.initialize_("default", radius=0.9)
    with pytest.raises(ValueError, match="unknown init scheme 'ring'"):
        cell.initialize_("ring")


def test_stacked_model_train_probe_and_diagnose():
    config = TrainConfig(task="adding", model="indrnn", length=12, hidden_size=8,
                         num_layers=2, steps=20, batch_size=8, eval_every=10, eval_size=16)
    result = train(config)
    assert result.status in ("solved", "unsolved") and math.isfinite(result.test["mse"])
    model = result.model.double()
    x = torch.rand(4, 12, 2, generator=torch.Generator().manual_seed(7), dtype=F64)
    trace = hidden_gradients(model, x)
    assert set(trace.layers) == {"core.cells.0", "core.cells.1"}
    d = diagnose(model, x)
    assert d.jacobian is not None and d.jacobian.log_frobenius.shape == (12,)
    for w, cell in zip(d.weights, model.core.cells, strict=True):
        u = cell.weight_hh.detach().abs()
        assert w.mode == "indrnn" and w.gamma == 1.0
        assert w.spectral_radius == pytest.approx(u.max().item())
        assert w.sigma_min == pytest.approx(u.min().item())


def test_cli_train_and_probe():
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--model", "indrnn", "--task", "adding", "--length",
                                  "10", "--steps", "20", "--hidden-size", "8", "--eval-every",
                                  "10", "--quiet"])
    assert trained.exit_code == 0, trained.output
    probed = runner.invoke(app, ["probe", "--model", "indrnn", "--length", "50"])
    assert probed.exit_code == 0, probed.output
    assert "indrnn" in probed.output and "horizon:" in probed.output
