"""The LRU cell (Orvieto et al. 2023) against hand complex arithmetic: its recurrence, its
block, its per-channel gradient |λ|^(T-t), and runs through models, probe, diagnose, CLI."""

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vanishing.cells import CELLS
from vanishing.cells.lru import LRUCell
from vanishing.cli import app
from vanishing.diagnose import diagnose, weight_conditions
from vanishing.jacobian import cell_jacobian_products
from vanishing.models import MODELS, SequenceModel, build_model
from vanishing.probe import hidden_gradients
from vanishing.train import TrainConfig, train
from vanishing.unroll import make_probe, unroll

F64 = torch.float64


def cell64(input_size, hidden_size, seed=0, **kwargs):
    cell = LRUCell(input_size, hidden_size, **kwargs)
    cell.reset_parameters(torch.Generator().manual_seed(seed))
    return cell.double()


def complex_params(cell):
    """Λ, exp(γ_log) ⊙ B and C as complex128 tensors, from the cell's raw parameters."""
    p = {k: v.detach().to(F64) for k, v in cell.named_parameters()}
    lam = torch.exp(torch.complex(-torch.exp(p["nu_log"]), torch.exp(p["theta_log"])))
    b = torch.complex(p["B_re"], p["B_im"]) * torch.exp(p["gamma_log"])[:, None]
    return lam, b, torch.complex(p["C_re"], p["C_im"]), p


def modulus(cell):
    """|λ| = exp(-exp(ν_log)), in the cell's own dtype."""
    return torch.exp(-torch.exp(cell.nu_log.detach()))


def hand_layer_norm(u, w, b):
    mean = u.mean(-1, keepdim=True)
    var = ((u - mean) ** 2).mean(-1, keepdim=True)
    return (u - mean) / torch.sqrt(var + 1e-5) * w + b


def hand_gelu(y):
    return 0.5 * y * (1 + torch.erf(y / math.sqrt(2)))


@pytest.mark.parametrize("input_size, hidden_size", [(6, 6), (3, 10)])
def test_recurrence_and_block_match_a_hand_complex_loop(input_size, hidden_size):
    cell = cell64(input_size, hidden_size, seed=3, r_min=0.5)
    u = torch.randn(4, 25, input_size, dtype=F64, generator=torch.Generator().manual_seed(1))
    hs, final = unroll(cell, u)
    lam, b, c, p = complex_params(cell)
    stacked = input_size == hidden_size
    v = hand_layer_norm(u, p["norm_weight"], p["norm_bias"]) if stacked else u
    x = torch.zeros(4, cell.state_dim, dtype=torch.complex128)
    xs = []
    for k in range(u.shape[1]):  # x_k = Λ ⊙ x_(k-1) + exp(γ_log) ⊙ B ũ_k
        x = lam * x + v[:, k].to(torch.complex128) @ b.T
        xs.append(x)
    xs = torch.stack(xs, 1)
    assert hs.shape == (4, 25, 2 * cell.state_dim) == (4, 25, *cell.state_sizes)
    torch.testing.assert_close(hs, torch.cat([xs.real, xs.imag], -1), atol=1e-10, rtol=0)
    torch.testing.assert_close(final, hs[:, -1], atol=0, rtol=0)
    y = (xs @ c.T).real  # Re(C x_k)
    want = u + hand_gelu(y + p["D"] * v) if stacked else hand_gelu(y + u @ p["D"].T)
    out = cell.emit(hs, u)
    assert out.shape == (4, 25, hidden_size)
    torch.testing.assert_close(out, want, atol=1e-10, rtol=0)


def test_each_channel_gradient_decays_as_its_modulus_to_the_power_of_the_lag():
    cell = cell64(2, 8, seed=5, r_min=0.6, r_max=0.99)
    lam, b, _, _ = complex_params(cell)
    n, steps = cell.state_dim, 12
    u = torch.randn(steps, 2, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))

    def run(s):  # [Re x_t; Im x_t] -> [Re x_T; Im x_T], by complex arithmetic
        x = torch.complex(s[:n], s[n:])
        for k in range(steps):
            x = lam * x + b @ u[k]
        return torch.cat([x.real, x.imag])

    jac = torch.autograd.functional.jacobian(run, torch.randn(2 * n, dtype=F64))
    modulus = lam.abs()
    for j in range(n):
        rows = jac[[j, n + j]]
        block = rows[:, [j, n + j]]
        torch.testing.assert_close(torch.linalg.svdvals(block),
                                   modulus[j].expand(2) ** steps, atol=1e-12, rtol=1e-10)
        assert float(rows.abs().sum() - block.abs().sum()) < 1e-14  # channels decoupled
    # the library's products, closed form and by autograd, give the same decay
    x = torch.randn(3, steps + 1, 2, dtype=F64)
    closed = cell_jacobian_products(cell, x, spectral="svd")
    auto = cell_jacobian_products(cell, x, spectral="svd", closed_form=False)
    lag = np.arange(steps, -1, -1)
    m = modulus.numpy()
    np.testing.assert_allclose(closed.log_spectral, lag * np.log(m.max()), atol=1e-9)
    np.testing.assert_allclose(closed.log_frobenius,
                               0.5 * np.log(2 * (m[None] ** (2 * lag[:, None])).sum(1)),
                               atol=1e-9)
    np.testing.assert_allclose(auto.log_frobenius, closed.log_frobenius, atol=1e-9)


def test_closed_form_jacobian_is_the_autograd_one():
    cell = cell64(3, 6, seed=2)
    xp_t = torch.randn(4, 2 * cell.state_dim, dtype=F64)
    state = torch.randn(4, 2 * cell.state_dim, dtype=F64)
    auto = torch.func.vmap(torch.func.jacrev(lambda a, s: cell.recur(a, (s,))[0], argnums=1))
    torch.testing.assert_close(cell.jacobian(xp_t, (state,)), auto(xp_t, state))
    torch.testing.assert_close(cell.recurrent_blocks()[0], cell.jacobian(xp_t, (state,))[0])


@pytest.mark.parametrize("r_min, r_max, max_phase", [(0.0, 0.999, 2 * math.pi),
                                                     (0.9, 0.999, math.pi / 10),
                                                     (0.4, 0.5, 1.0)])
def test_ring_init(r_min, r_max, max_phase):
    cell = cell64(4, 400, seed=1, r_min=r_min, r_max=r_max, max_phase=max_phase)
    lam, _, _, p = complex_params(cell)
    r = lam.abs()
    assert bool((r >= r_min).all()) and bool((r <= r_max).all()) and bool((r < 1).all())
    r2 = (r ** 2 - r_min ** 2) / (r_max ** 2 - r_min ** 2)  # uniform on the ring's area
    assert abs(float(r2.mean()) - 0.5) < 0.06
    theta = torch.exp(p["theta_log"])
    assert bool((theta > 0).all()) and bool((theta <= max_phase).all())
    torch.testing.assert_close(torch.exp(p["gamma_log"]), torch.sqrt(1 - r ** 2))
    assert abs(float(p["B_re"].std()) - (2 * 4) ** -0.5) < 0.02
    assert abs(float(p["C_im"].std()) - cell.state_dim ** -0.5) < 0.005


def test_every_modulus_is_below_one_after_init_and_after_training():
    # exp(-exp(ν_log)) < 1 for every real ν_log, since exp(ν_log) > 0 ...
    nu_log = torch.linspace(-30, 30, 10001, dtype=F64)
    assert bool((torch.exp(-torch.exp(nu_log)) < 1).all())
    # ... and constrain_ keeps it so in float32, which would round it to 1 below -16.6
    cell = LRUCell(2, 8)
    with torch.no_grad():
        cell.nu_log.fill_(-40.0)
    assert bool((modulus(cell) == 1).all())
    cell.constrain_()
    assert bool((modulus(cell) < 1).all())
    assert "lru" in MODELS and "lru" in CELLS
    config = TrainConfig(model="lru", task="adding", length=10, steps=30, hidden_size=8,
                         batch_size=16, eval_every=10, eval_size=32)
    fresh = build_model("lru", 2, 8, 1, seed=config.seed)
    result = train(config)
    assert result.status != "diverged" and result.steps == 30
    for model in (fresh, result.model):
        for cell in model.core.cells:
            assert cell.nu_log.dtype == torch.float32 and bool((modulus(cell) < 1).all())
    moved = result.model.core.cells[0].nu_log
    assert not torch.equal(moved, fresh.core.cells[0].nu_log)  # training did move ν_log


@pytest.mark.parametrize("layers", [1, 2])
def test_sequence_model_probe_and_diagnose(layers):
    state = torch.random.get_rng_state()
    model = build_model("lru", 3, 8, 2, num_layers=layers, seed=4).double()
    assert torch.equal(torch.random.get_rng_state(), state)  # the seed's generator only
    cells = list(model.core.cells)
    assert [c.residual for c in cells] == [False, True][:layers]  # 3 -> 8, then 8 -> 8
    x = torch.randn(5, 20, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    assert model(x).shape == (5, 2)
    probes = [make_probe(x, c.state_sizes[0]) for c in cells]
    out, hs = model.forward_unrolled(x, probes)
    torch.testing.assert_close(out, model(x), atol=0, rtol=0)
    assert [h.shape for h in hs] == [(5, 20, 8)] * layers  # 2N = 8 real numbers
    (out ** 2).sum().backward()
    trace = hidden_gradients(model, x, lambda o: (o ** 2).sum())
    assert list(trace.layers) == [f"core.cells.{i}" for i in range(layers)]
    for name, p in zip(trace.layers, probes, strict=True):
        np.testing.assert_allclose(trace.layers[name], p.grad.norm(dim=-1).mean(0).numpy(),
                                   rtol=1e-10)
    result = diagnose(model, x)
    assert result.jacobian is not None and np.all(np.isfinite(result.jacobian.log_frobenius))
    for w, cell in zip(result.weights, cells, strict=True):
        a, b = cell.lam()
        r = torch.sqrt(a * a + b * b).detach()
        assert w.mode == "lru" and w.gamma is None and w.vanishing_guaranteed is None
        assert math.isclose(w.spectral_radius, float(r.max()), rel_tol=1e-9)
        assert math.isclose(w.sigma_max, float(r.max()), rel_tol=1e-9)
        assert math.isclose(w.sigma_min, float(r.min()), rel_tol=1e-9)
    assert len(weight_conditions(model)) == layers


runner = CliRunner()


def test_cli_probe_and_train_run_the_lru():
    probed = runner.invoke(app, ["probe", "--model", "lru", "--length", "50"],
                           env={"COLUMNS": "200"})
    assert probed.exit_code == 0, probed.output
    assert "horizon:" in probed.output and "diagnosis:" in probed.output
    trained = runner.invoke(app, ["train", "--model", "lru", "--task", "adding", "--length",
                                  "10", "--steps", "20", "--hidden-size", "8", "--eval-every",
                                  "10", "--quiet"])
    assert trained.exit_code == 0, trained.output
    refused = runner.invoke(app, ["probe", "--model", "lru", "--init", "orthogonal"])
    assert refused.exit_code == 2 and "supports init 'default' only" in refused.output


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(r_min=-0.1), ValueError, "r_min must be >= 0"),
    (dict(r_max=1.0), ValueError, r"r_max must be in \(0, 1\)"),
    (dict(r_max=1.5), ValueError, r"r_max must be in \(0, 1\)"),
    (dict(r_max=0.0), ValueError, r"r_max must be in \(0, 1\)"),
    (dict(r_min=0.9, r_max=0.9), ValueError, "r_min must be below r_max"),
    (dict(r_min=0.95, r_max=0.9), ValueError, "r_min must be below r_max"),
    (dict(max_phase=0.0), ValueError, r"max_phase must be in \(0, 2π\]"),
    (dict(max_phase=7.0), ValueError, r"max_phase must be in \(0, 2π\]"),
    (dict(r_max=float("nan")), ValueError, "r_max must be finite"),
    (dict(r_min="0"), TypeError, "r_min must be a number"),
    (dict(state_dim=0), ValueError, "state_dim must be a positive int"),
    (dict(hidden_size=0), ValueError, "hidden_size must be a positive int"),
])
def test_bad_constructor_arguments_one_clear_error_each(kwargs, err, match):
    args = dict(input_size=3, hidden_size=4) | kwargs
    with pytest.raises(err, match=match) as info:
        LRUCell(**args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("scheme", ["orthogonal", "identity", "chrono"])
def test_other_init_schemes_are_refused(scheme):
    with pytest.raises(ValueError, match="supports init 'default' only"):
        LRUCell(3, 4).initialize_(scheme)
    with pytest.raises(ValueError, match="supports init 'default' only"):
        SequenceModel("lru", 3, 4, 1, init=scheme, max_length=10)
    with pytest.raises(ValueError, match="takes no radius"):
        LRUCell(3, 4).initialize_("default", radius=0.9)


def test_state_dim_and_the_default_init_is_the_ring():
    cell = LRUCell(3, 5, state_dim=7)
    assert cell.state_sizes == (14,) and LRUCell(3, 5).state_sizes == (6,)
    x = torch.randn(2, 4, 3)
    hs, _ = unroll(cell, x)
    assert hs.shape == (2, 4, 14) and cell.emit(hs, x).shape == (2, 4, 5)
    a, b = build_model("lru", 3, 6, 1, seed=1), build_model("lru", 3, 6, 1, seed=1)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    ref = LRUCell(3, 6)
    ref.reset_parameters(torch.Generator().manual_seed(0))
    other = LRUCell(3, 6)
    other.initialize_("default", generator=torch.Generator().manual_seed(0))
    for p, q in zip(ref.parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q)
