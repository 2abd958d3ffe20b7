"""expRNN (Lezcano-Casado & Martínez-Rubio 2019) against hand references: modReLU by its
formula, the probe by hand backpropagation through time with W_hh read from the module,
W_hh orthogonal after training, and the library's tools on it."""

import copy
import math

import pytest
import torch
from typer.testing import CliRunner

from vanishing.cells import CELLS
from vanishing.cells.exprnn import ExpRNNCell, modrelu
from vanishing.cli import app
from vanishing.diagnose import diagnose
from vanishing.init import initialize
from vanishing.models import SequenceModel
from vanishing.probe import hidden_gradients, record
from vanishing.train import TrainConfig, load_checkpoint, save_checkpoint, train

F64 = torch.float64


def test_modrelu_is_its_formula():
    z = torch.tensor([[-2.0, -0.3, 0.0, 0.2, 1.5], [0.7, -0.7, 3.0, -0.05, 0.05]], dtype=F64)
    b = torch.tensor([0.1, 0.5, -0.2, -0.5, -0.1], dtype=F64)
    out = modrelu(z, b)
    for i in range(2):
        for j in range(5):
            zz, bb = z[i, j].item(), b[j].item()
            sign = (zz > 0) - (zz < 0)
            assert out[i, j].item() == pytest.approx(sign * max(abs(zz) + bb, 0.0))


def _hand_loop(cell: ExpRNNCell, x: torch.Tensor, c: torch.Tensor):
    """h_t = modrelu(W_ih x_t + W_hh h_(t-1), b) and, for L = sum_n c · h_T, dL/dh_t by hand:
    g_(t-1) = W_hh^T (f'(a_t) ⊙ g_t), f'(a) = [|a| + b > 0]."""
    w_ih, w_hh, b = (t.detach() for t in (cell.weight_ih, cell.weight_hh, cell.bias_mod))
    n, steps, _ = x.shape
    h, hs, ds = torch.zeros(n, w_hh.shape[0], dtype=x.dtype), [], []
    for t in range(steps):
        a = x[:, t] @ w_ih.T + h @ w_hh.T
        h = torch.sign(a) * torch.relu(a.abs() + b)
        hs.append(h)
        ds.append((a.abs() + b > 0).to(x.dtype))
    g, grads = c.expand(n, -1).clone(), [None] * steps
    for t in range(steps - 1, -1, -1):
        grads[t] = g
        g = (ds[t] * g) @ w_hh
    return torch.stack(hs, 1), torch.stack(grads, 1)


def test_probe_equals_a_hand_loop():
    model = SequenceModel("exprnn", 3, 6, 1, seed=2).double()
    cell = model.core.cells[0]
    x = torch.randn(4, 25, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    hs, expected = _hand_loop(cell, x, model.head.weight.detach()[0])
    torch.testing.assert_close(model.forward_unrolled(x)[1][0], hs)
    with record(model) as rec:
        out = model(x)
        (grads,) = rec.gradients(out.sum())
    torch.testing.assert_close(grads.total, expected, rtol=1e-10, atol=1e-14)
    trace = hidden_gradients(model, x)
    torch.testing.assert_close(torch.from_numpy(trace.norms), expected.norm(dim=-1).mean(0))
    assert "recur" not in cell.__dict__  # the recording gave recur back


@pytest.mark.parametrize("nonlinearity", ["modrelu", "tanh"])
def test_jacobian_blocks_and_detached(nonlinearity):
    cell = ExpRNNCell(3, 5, nonlinearity=nonlinearity).double()
    xp = torch.randn(4, 5, generator=torch.Generator().manual_seed(5), dtype=F64)
    h = torch.randn(4, 5, generator=torch.Generator().manual_seed(6), dtype=F64)
    auto = torch.func.vmap(torch.func.jacrev(lambda a, s: cell.recur(a, (s,))[0], 1))(xp, h)
    torch.testing.assert_close(cell.jacobian(xp, (h,)), auto)
    w = cell.weight_hh.detach()
    torch.testing.assert_close(cell.recurrent_blocks().detach()[0], w)
    torch.testing.assert_close(w @ w.T, torch.eye(5, dtype=F64))
    clone = cell.detached(torch.float32)
    assert type(clone) is ExpRNNCell and not clone.weight_hh.requires_grad
    assert clone.weight_hh.dtype == torch.float32 and set(clone.weights()) >= {"weight_hh"}
    torch.testing.assert_close(clone.weight_hh, w.float())
    assert (cell.bias_ih is None) == (nonlinearity == "modrelu")
    assert cell.kind == "exprnn" and cell.gamma == 1.0 and "exprnn" in CELLS


def test_orthogonal_after_100_optimiser_steps_and_a_checkpoint(tmp_path):
    config = TrainConfig(task="adding", model="exprnn", length=10, hidden_size=8, steps=100,
                         batch_size=8, lr=1e-2, eval_every=50, eval_size=16, early_stop=False)
    result = train(config)
    assert result.steps == 100 and math.isfinite(result.test["mse"])
    start = SequenceModel("exprnn", 2, 8, 1, seed=0).core.cells[0].weight_hh.detach()
    for cell in result.model.core.cells:
        w = cell.weight_hh.detach().double()
        assert (w @ w.T - torch.eye(8, dtype=F64)).abs().max() < 1e-6
    assert (result.model.core.cells[0].weight_hh.detach() - start).abs().max() > 1e-2  # moved
    save_checkpoint(tmp_path / "exprnn.pt", result)
    _, loaded = load_checkpoint(tmp_path / "exprnn.pt")
    torch.testing.assert_close(loaded.core.cells[0].weight_hh, result.model.core.cells[0].weight_hh)


def test_initialise_through_the_parametrization():
    model = SequenceModel("exprnn", 3, 6, 1, num_layers=2, init="identity")
    for cell in model.core.cells:
        assert torch.equal(cell.weight_hh.detach(), torch.eye(6))
    initialize(model, "orthogonal", generator=torch.Generator().manual_seed(1))
    w = model.core.cells[0].weight_hh.detach()
    assert (w - torch.eye(6)).abs().max() > 0.1
    torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-6, rtol=0)
    std = ExpRNNCell(400, 4).weight_ih.std().item()
    assert abs(std - math.sqrt(2 / 400)) < 0.01  # He et al.: N(0, 2 / H_in)
    assert ExpRNNCell(2, 300).bias_mod.abs().max() <= 0.01
    with pytest.raises(ValueError, match="spectral radius 1.*init 'chrono' does not apply"):
        SequenceModel("exprnn", 3, 6, 1, init="chrono", max_length=10)
    with pytest.raises(ValueError, match="radius=0.9 does not apply"):
        SequenceModel("exprnn", 3, 6, 1, radius=0.9)
    with pytest.raises(ValueError, match="unknown nonlinearity 'relu'"):
        ExpRNNCell(2, 3, nonlinearity="relu")


def test_probe_diagnose_and_deepcopy():
    model = SequenceModel("exprnn", 2, 8, 1, num_layers=2, seed=1)
    twin = copy.deepcopy(model).double()
    x = torch.rand(4, 30, 2, generator=torch.Generator().manual_seed(7), dtype=F64)
    trace = hidden_gradients(twin, x)
    assert set(trace.layers) == {"core.cells.0", "core.cells.1"}
    d = diagnose(twin, x)
    assert d.jacobian is not None and d.jacobian.log_frobenius.shape == (30,)
    assert [w.mode for w in d.weights] == ["exprnn", "exprnn"]
    assert all(w.orthogonal and w.sigma_max == pytest.approx(1.0) for w in d.weights)


def test_cli_train_and_probe():
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--model", "exprnn", "--task", "adding", "--length",
                                  "10", "--steps", "20", "--hidden-size", "8", "--eval-every",
                                  "10", "--quiet"])
    assert trained.exit_code == 0, trained.output
    probed = runner.invoke(app, ["probe", "--model", "exprnn", "--length", "50"])
    assert probed.exit_code == 0, probed.output
    assert "exprnn" in probed.output and "horizon:" in probed.output
