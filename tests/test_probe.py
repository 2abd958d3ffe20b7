"""The probes against independent references: hand BPTT, finite differences, cell loops."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from vanishing.bptt import elman_bptt
from vanishing.cells import twin
from vanishing.models import build_model
from vanishing.probe import (
    Trace,
    hidden_gradients,
    input_gradients,
    layer_gradients,
    unrolled,
)

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- Elman: probe == hand BPTT == central finite differences ---------------------------------
def test_probe_equals_hand_bptt_and_finite_differences():
    model = build_model("rnn_tanh", 3, 6, 2, readout="all", seed=3).double()
    x = torch.randn(4, 12, 3, generator=_gen(), dtype=F64)

    def loss(out):
        return (out**2).sum()

    (grads,) = layer_gradients(model, x, loss)
    # hand BPTT: the readout y_t = W h_t + b sends d_t = 2 y_t W back to h_t
    cell = twin(model.core)
    with torch.no_grad():
        out = model(x)
    direct = 2 * out @ model.head.weight.detach()
    hand = elman_bptt(cell, x, direct)
    torch.testing.assert_close(grads.total, hand.hidden, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads.direct, direct, rtol=1e-10, atol=1e-12)
    # central differences: nudge h_t through a nonzero probe in the unrolled path
    eps = 1e-6
    for n, t, i in [(0, 0, 0), (3, 5, 2), (1, 11, 5)]:
        p = torch.zeros(4, 12, 6, dtype=F64)
        p[n, t, i] = eps
        with torch.no_grad():
            up = float(loss(model.forward_unrolled(x, [p])[0]))
            down = float(loss(model.forward_unrolled(x, [-p])[0]))
        assert (up - down) / (2 * eps) == pytest.approx(float(hand.hidden[n, t, i]), rel=1e-6)
    trace = hidden_gradients(model, x, loss)
    np.testing.assert_allclose(trace.norms, hand.hidden.norm(dim=-1).mean(0).numpy(),
                               rtol=1e-10)


# -- stock fused modules against a hand-unrolled nn.LSTMCell / nn.GRUCell loop ------------
class Net(nn.Module):
    """A user's model: a fused recurrent module between two linear maps."""

    def __init__(self, kind, layers, batch_first=True, bidirectional=False):
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
        self.inp = nn.Linear(3, 4)
        self.rnn = rnn(4, 5, layers, batch_first=batch_first, bidirectional=bidirectional)
        self.out = nn.Linear(5 * (1 + bidirectional), 2)
        self.hx = None  # an initial state the model passes to its recurrent module

    def forward(self, x):
        y, _ = self.rnn(self.inp(x), self.hx)
        return self.out(y)


def _reference(net, x, hx, loss):
    """Every h_t of every layer from a loop of torch cells with the fused weights.

    retain_grad() on h_t, the very tensor fed to step t + 1 and to the next layer, gives
    the TOTAL dL/dh_t: this is the independent reference.
    """
    rnn, kind = net.rnn, net.rnn.mode
    cls = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell}[kind]
    dirs = 2 if rnn.bidirectional else 1
    inp = net.inp(x if rnn.batch_first else x.transpose(0, 1))
    hs_all = {}
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + "_reverse" * d
            cell = cls(inp.shape[-1], rnn.hidden_size).double()
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(rnn, name + sfx))
            i = layer * dirs + d
            if kind == "LSTM":
                state = (hx[0][i], hx[1][i])
            else:
                state = hx[i]
            hs = []
            steps = range(inp.shape[1] - 1, -1, -1) if d else range(inp.shape[1])
            for t in steps:
                state = cell(inp[:, t], state)
                h = state[0] if kind == "LSTM" else state
                h.retain_grad()
                hs.append(h)
                if kind == "GRU":
                    state = h
            if d:
                hs = hs[::-1]
            hs_all[f"rnn.l{layer}" + "_reverse" * d] = hs
            outs.append(torch.stack(hs, 1))
        inp = torch.cat(outs, -1)
    y = net.out(inp if rnn.batch_first else inp.transpose(0, 1))
    loss(y).backward()
    return y, {k: torch.stack([h.grad for h in v], 1) for k, v in hs_all.items()}


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batch_first", [True, False])
def test_fused_probe_equals_cell_loop(kind, layers, batch_first):
    torch.manual_seed(layers + 10 * batch_first)
    net = Net(kind, layers, batch_first).double()
    n, length = 3, 10
    x = torch.randn(n, length, 3, dtype=F64)
    if not batch_first:
        x = x.transpose(0, 1)
    h0 = 0.3 * torch.randn(layers, n, 5, dtype=F64)
    hx = (h0, -h0) if kind == "lstm" else h0

    def loss(y):
        return (y**2).sum()

    y_ref, ref = _reference(net, x, hx, loss)
    net.hx = hx
    with torch.no_grad():
        torch.testing.assert_close(net(x), y_ref)
    grads = layer_gradients(net, x, lambda y: loss(y))
    assert [g.name for g in grads] == [f"rnn.l{i}" for i in range(layers)]
    for g in grads:
        torch.testing.assert_close(g.total, ref[g.name], rtol=1e-10, atol=1e-12)
    trace = hidden_gradients(net, x, loss)
    assert list(trace.layers) == [f"rnn.l{i}" for i in range(layers)]
    np.testing.assert_allclose(trace.norms, ref[f"rnn.l{layers - 1}"].norm(dim=-1).mean(0),
                               rtol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional_probe_equals_cell_loop(kind):
    torch.manual_seed(5)
    net = Net(kind, 2, bidirectional=True).double()
    x = torch.randn(2, 7, 3, dtype=F64)
    h0 = 0.3 * torch.randn(4, 2, 5, dtype=F64)
    hx = (h0, h0.flip(0)) if kind == "lstm" else h0

    def loss(y):
        return (y[:, 1:4] ** 2).sum()

    _, ref = _reference(net, x, hx, loss)
    net.hx = hx
    trace = hidden_gradients(net, x, loss)
    assert set(trace.layers) == {"rnn.l0", "rnn.l0_reverse", "rnn.l1", "rnn.l1_reverse"}
    for name, norms in trace.layers.items():
        np.testing.assert_allclose(norms, ref[name].norm(dim=-1).mean(0), rtol=1e-10,
                                   atol=1e-300)
    np.testing.assert_array_equal(trace.norms, trace.layers["rnn.l1"])


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_twin_returns_what_the_fused_module_returns(kind, bidirectional):
    torch.manual_seed(0)
    rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind](
        3, 4, 2, bidirectional=bidirectional)  # batch_first=False, the torch default
    dirs = 1 + bidirectional
    x = torch.randn(6, 2, 3)
    h0 = torch.randn(2 * dirs, 2, 4)
    for hx in [None, (h0, h0 + 1) if kind == "lstm" else h0]:
        fused = rnn(x, hx)
        with unrolled(rnn) as records:
            mine = rnn(x, hx)
        assert len(records) == 2 * dirs and records[0].name == f"{kind}.l0"
        torch.testing.assert_close(mine, fused, atol=1e-5, rtol=1e-5)
        # unbatched (2-D) input, as torch accepts it
        hx1 = None if hx is None else tuple(h[:, 0] for h in hx) if kind == "lstm" else hx[:, 0]
        with unrolled(rnn):
            mine = rnn(x[:, 0], hx1)
        torch.testing.assert_close(mine, rnn(x[:, 0], hx1), atol=1e-5, rtol=1e-5)
    assert "forward" not in rnn.__dict__


def test_bare_fused_module_and_tuple_output():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, batch_first=True)
    trace = hidden_gradients(lstm, torch.randn(2, 8, 3))  # default loss reads output[0]
    assert list(trace.layers) == ["lstm.l0"] and trace.norms.shape == (8,)


def test_sequence_model_names_tokens_and_no_grad_side_effects():
    model = build_model("lstm", 11, 6, 3, tokens=True, num_layers=2)
    x = torch.randint(0, 11, (4, 9), generator=_gen())
    with torch.no_grad():  # the probe needs autograd and turns it on itself
        trace = hidden_gradients(model, x)
    assert list(trace.layers) == ["core.l0", "core.l1"]
    assert trace.norms.dtype == np.float64 and trace.norms.shape == (9,)
    np.testing.assert_array_equal(trace.norms, trace.layers["core.l1"])
    assert all(p.grad is None for p in model.parameters())
    assert "forward" not in model.core.__dict__
    # the demo's use: a float64 copy and the task's loss
    y = torch.tensor([0, 1, 2, 0])
    double = copy.deepcopy(model).double()
    t64 = hidden_gradients(double, x, lambda out: nn.functional.cross_entropy(out, y))
    assert np.all(t64.norms > 0)


def test_forward_is_restored_after_an_error():
    net = Net("gru", 1)

    def bad_loss(y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        hidden_gradients(net, torch.randn(2, 5, 3), bad_loss)
    assert "forward" not in net.rnn.__dict__
    with pytest.raises(RuntimeError, match="inside"):
        with unrolled(net):
            raise RuntimeError("inside")
    assert "forward" not in net.rnn.__dict__


def test_a_forward_set_by_the_user_is_restored_too():
    rnn = nn.GRU(2, 3, batch_first=True)

    def custom(x, hx=None):
        return nn.GRU.forward(rnn, x, hx)

    rnn.forward = custom
    with unrolled(rnn):
        assert rnn.forward is not custom
    assert rnn.forward is custom


# -- dL/dx_t for any model -----------------------------------------------------------------
def _encoder(norm_first, final_norm, dtype=F64):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, batch_first=True,
                                       norm_first=norm_first)
    norm = nn.LayerNorm(4) if final_norm else None
    return nn.TransformerEncoder(layer, 1, norm=norm, enable_nested_tensor=False).to(dtype).eval()


# post-norm (ends in the layer's LayerNorm), pre-norm (ends in a residual sum), pre-norm
# with a final LayerNorm
ENCODERS = [(False, False), (True, False), (True, True)]


@pytest.mark.parametrize(("norm_first", "final_norm"), ENCODERS)
def test_input_gradients_of_a_transformer_match_finite_differences(norm_first, final_norm):
    model = _encoder(norm_first, final_norm)
    x = torch.randn(2, 6, 4, dtype=F64, generator=_gen())
    # the documented default: the last step's output on 4 standard normal numbers drawn
    # in float64 from a generator seeded with 0
    w = torch.randn(4, generator=_gen(0), dtype=F64)

    def loss(out):
        return (out[:, -1] @ w).sum()

    trace = input_gradients(model, x)
    eps = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            e = torch.zeros_like(x)
            e[idx] = eps
            fd[idx] = (loss(model(x + e)) - loss(model(x - e))) / (2 * eps)
    np.testing.assert_allclose(trace.norms, fd.norm(dim=-1).mean(0).numpy(), rtol=1e-6)
    assert list(trace.layers) == ["input"]
    # float32: the same curve, and the global random state is left alone
    rng = torch.random.get_rng_state()
    trace32 = input_gradients(_encoder(norm_first, final_norm, torch.float32), x.float())
    assert torch.equal(torch.random.get_rng_state(), rng)
    np.testing.assert_allclose(trace32.norms, trace.norms, rtol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_loss_constant_in_x_up_to_rounding_is_an_error(dtype):
    """A LayerNorm output sums to sum(beta) whatever x is: dL/dx is 0, not rounding noise."""
    x = torch.randn(2, 6, 4, dtype=dtype, generator=_gen())
    messages = []
    for norm_first, final_norm in [(False, False), (True, True)]:
        model = _encoder(norm_first, final_norm, dtype)
        for loss in [lambda out: out[:, -1].sum(), lambda out: out.sum()]:
            with pytest.raises(ValueError, match="does not depend on the input x") as err:
                input_gradients(model, x, loss)
            messages.append(str(err.value))
    # some of these come out exactly zero, the others as noise: both are refused
    assert any(f"zero up to {str(dtype)[6:]} rounding" in m and "LayerNorm" in m
               for m in messages)
    # a real dependence well above rounding is not mistaken for noise
    model = _encoder(False, False, dtype)
    weak = input_gradients(model, x, lambda out: out[:, -1].sum() + 1e-2 * out[0, -1, 0])
    assert np.all(weak.norms > 0)


def test_input_gradients_leave_fused_modules_alone():
    net = Net("lstm", 2)
    trace = input_gradients(net, torch.randn(3, 7, 3))
    assert trace.norms.shape == (7,) and np.all(trace.norms > 0)
    assert "forward" not in net.rnn.__dict__


# -- summaries on a Trace --------------------------------------------------------------------
def test_trace_horizon_and_decay_rate_on_a_geometric_curve():
    lag = np.arange(30)
    trace = Trace(norms=(2.0 * 0.5**lag)[::-1].copy())
    assert trace.relative()[-1] == 1.0
    assert trace.horizon(1e-3) == 9  # 0.5^9 = 1.95e-3 > 1e-3 > 0.5^10
    assert trace.horizon(0.9) == 0
    assert trace.decay_rate() == pytest.approx(np.log(0.5))
    flat = Trace(norms=np.ones(5))
    assert flat.horizon() == 4 and flat.decay_rate() == pytest.approx(0.0, abs=1e-12)
    with_zeros = Trace(norms=np.array([0.0, 0.0, 0.25, 0.5, 1.0]))
    assert with_zeros.decay_rate() == pytest.approx(np.log(0.5))
    with pytest.raises(ValueError, match="reference"):
        Trace(norms=np.array([1.0, 0.0])).horizon()
    with pytest.raises(ValueError, match="threshold"):
        trace.horizon(0)


# -- bad input: a clear error, never a silent curve of zeros -----------------------------
class Pooled(nn.Module):
    """Output without a time dimension: (N, C)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0].mean(1)


class Twice(Pooled):
    def forward(self, x):
        return self.rnn(self.rnn(x[..., :3])[0][..., :3])[0]


def test_bad_input_gives_clear_errors():
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match="no time dimension"):
        hidden_gradients(Pooled(), x)
    with pytest.raises(ValueError, match="no time dimension"):
        input_gradients(Pooled(), x)
    assert hidden_gradients(Pooled(), x, lambda out: out.sum()).norms.shape == (5,)
    seq_first = Net("gru", 1, batch_first=False)  # (T=5, N=2, F): the default reads out[-1]
    explicit = hidden_gradients(seq_first, x.transpose(0, 1), lambda out: out[-1].sum())
    assert explicit.norms.size == 5
    np.testing.assert_array_equal(hidden_gradients(seq_first, x.transpose(0, 1)).norms,
                                  explicit.norms)
    with pytest.raises(ValueError, match=r"no recurrent step .*steps=\[model"):
        hidden_gradients(nn.Linear(3, 3), x)
    with pytest.raises(ValueError, match="does not depend"):
        hidden_gradients(Net("lstm", 1), x, lambda out: torch.ones((), requires_grad=True))
    with pytest.raises(ValueError, match="does not depend"):
        hidden_gradients(Net("lstm", 1), x, lambda out: 0 * out.sum())
    with pytest.raises(ValueError, match="does not depend"):
        hidden_gradients(Net("lstm", 1), x, lambda out: torch.tensor(1.0))
    with pytest.raises(ValueError, match="scalar"):
        hidden_gradients(Net("lstm", 1), x, lambda out: out)
    with pytest.raises(ValueError, match="does not depend on the input"):
        input_gradients(Net("gru", 1), x, lambda out: Net("gru", 1).out.weight.sum() * 0 +
                        out.sum() * 0)
    with pytest.raises(TypeError, match="floating"):
        input_gradients(build_model("lstm", 11, 4, 2, tokens=True),
                        torch.randint(0, 11, (2, 5, 1)))


def test_what_was_refused_before_is_probed_now():
    """A module run twice, packed input and proj_size were refused; now each is probed."""
    x = torch.randn(2, 5, 3)
    twice = Twice()
    trace = hidden_gradients(twice, x)  # both calls of one module join one time axis
    assert list(trace.layers) == ["rnn.l0"] and trace.norms.shape == (10,)
    assert "forward" not in twice.rnn.__dict__
    packed = nn.utils.rnn.pack_padded_sequence(x, [5, 3], batch_first=True)
    rnn = Pooled().rnn
    fused_out, fused_h = rnn(packed)
    with unrolled(rnn):
        out, h_n = rnn(packed)
    torch.testing.assert_close(out.data, fused_out.data)
    torch.testing.assert_close(h_n, fused_h)
    assert torch.equal(out.batch_sizes, fused_out.batch_sizes)
    proj = nn.LSTM(3, 4, proj_size=2, batch_first=True)
    assert hidden_gradients(proj, x).norms.shape == (5,)


# -- summaries, lag decomposition and the diagnosis ---------------------------------------
@pytest.mark.parametrize("layer", ["core.l0", "core.l1"])
def test_lag_decomposition_sums_back_to_autograd(layer):
    from vanishing.diagnose import lag_decomposition

    model = build_model("rnn_tanh", 3, 6, 2, readout="all", num_layers=2, seed=4).double()
    x = torch.randn(5, 15, 3, generator=_gen(), dtype=F64)
    y = torch.randn(5, 15, 2, generator=_gen(1), dtype=F64)

    def loss(out):
        return ((out - y) ** 2).mean()

    loss(model(x)).backward()  # the fused path, plain autograd
    w_grad = getattr(model.core, "weight_hh_" + layer.split(".")[1]).grad
    lags = lag_decomposition(model, x, loss, layer=layer)
    assert lags.terms.shape == (15, 6, 6)
    torch.testing.assert_close(lags.terms.sum(0), w_grad, rtol=1e-10, atol=1e-14)
    assert lags.share(0) == pytest.approx(1.0)
    short = lag_decomposition(model, x, loss, layer=layer, max_lag=3)
    torch.testing.assert_close(short.terms.sum(0) + short.remainder, w_grad, rtol=1e-10,
                               atol=1e-14)


def test_lag_decomposition_of_a_bidirectional_user_rnn():
    from vanishing.diagnose import lag_decomposition

    torch.manual_seed(0)
    net = Net("rnn", 1, bidirectional=True).double()
    x = torch.randn(2, 9, 3, dtype=F64)
    net(x)[:, -1].sum().backward()
    for name, w in [("rnn.l0", net.rnn.weight_hh_l0), ("rnn.l0_reverse",
                                                      net.rnn.weight_hh_l0_reverse)]:
        lags = lag_decomposition(net, x, layer=name)
        torch.testing.assert_close(lags.total, w.grad, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="Elman"):
        lag_decomposition(Net("gru", 1), x.float())


def test_a_vanishing_update_is_made_of_short_range_terms():
    from vanishing.diagnose import lag_decomposition

    model = build_model("rnn_tanh", 4, 32, 1, radius=0.5, seed=0).double()
    x = torch.randn(8, 60, 4, generator=_gen(), dtype=F64)
    lags = lag_decomposition(model, x)
    assert lags.share(10) < 1e-4 < lags.share(1)


def test_weight_conditions_against_known_matrices():
    from vanishing.diagnose import weight_conditions

    rnn = nn.RNN(2, 2, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.tensor([[0.0, 2.0], [0.0, 0.0]]))  # rho 0, sigma 2
    (cond,) = weight_conditions(rnn)
    assert cond.layer == "rnn.l0" and cond.mode == "rnn_tanh"
    assert cond.spectral_radius == pytest.approx(0.0, abs=1e-12)
    assert cond.sigma_max == pytest.approx(2.0) and cond.vanishing_guaranteed is False
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(0.9 * torch.eye(2))
    assert weight_conditions(rnn)[0].vanishing_guaranteed is True
    lstm = weight_conditions(build_model("lstm", 2, 3, 1, num_layers=2))
    assert [c.layer for c in lstm] == ["core.l0", "core.l1"]
    assert lstm[0].gamma is None and lstm[0].vanishing_guaranteed is None
    with pytest.raises(ValueError, match="contains no"):
        weight_conditions(nn.Linear(2, 2))


def test_classify_synthetic_curves():
    from vanishing.diagnose import classify

    lag = np.arange(50)
    decaying = Trace(norms=(0.5**lag)[::-1].copy())
    v = classify(decaying)
    assert v.kind == "vanishing" and v.value == 9
    assert classify(decaying, min_horizon=9).kind == "healthy"
    growing = Trace(norms=(1.2**lag)[::-1].copy())
    assert classify(growing).kind == "exploding"
    assert classify(growing, max_growth=1e9).kind == "healthy"
    assert classify(Trace(norms=np.array([np.nan, 1.0]))).kind == "nan"


def test_diagnose_tanh_rnn_vs_lstm():
    from vanishing.diagnose import diagnose

    x = torch.randn(8, 100, 4, generator=_gen())
    rnn = diagnose(build_model("rnn_tanh", 4, 32, 1, seed=0).double(), x.double())
    assert rnn.verdict.kind == "vanishing" and rnn.horizon < 30 and rnn.decay_rate < -0.1
    assert rnn.jacobian is not None and rnn.jacobian.lyapunov[0] < 0
    assert rnn.lags is not None and rnn.lags.share(30) < 1e-6
    assert set(rnn.saturation) == {"core.l0"}
    assert any("gated cell" in r for r in rnn.remedies)
    exploding = diagnose(build_model("rnn_tanh", 4, 32, 1, radius=3.0).double(), x.double(),
                         jacobian=False, lags=False)
    assert exploding.verdict.kind == "exploding" and any("clip" in r for r in
                                                          exploding.remedies)
    lstm = diagnose(build_model("lstm", 4, 32, 1, seed=0), x[:, :20], lags=True)
    assert lstm.verdict.kind == "healthy" and lstm.lags is None and lstm.remedies == []


def _advice(remedy_list):
    """Which REMEDIES entries a list holds, by key."""
    from vanishing.diagnose import REMEDIES

    return {k for k, text in REMEDIES.items() if text in remedy_list}


def test_weight_conditions_read_forget_bias_and_singular_values_from_the_tensors():
    from vanishing.diagnose import weight_conditions

    model = build_model("lstm", 3, 8, 1, forget_bias=2.0, init="orthogonal", seed=1)
    (w,) = weight_conditions(model)
    lstm = model.core
    expected = float((lstm.bias_ih_l0[8:16] + lstm.bias_hh_l0[8:16]).detach().mean())
    assert w.forget_bias == pytest.approx(expected) and w.forget_bias == pytest.approx(2.0)
    blocks = lstm.weight_hh_l0.detach().double().reshape(4, 8, 8)
    gram = blocks @ blocks.transpose(1, 2)  # orthogonal blocks: W W^T = I
    assert torch.allclose(gram, torch.eye(8, dtype=torch.float64).expand(4, 8, 8), atol=1e-5)
    assert w.orthogonal and w.sigma_min == pytest.approx(1.0, abs=1e-5)
    (default,) = weight_conditions(build_model("rnn_tanh", 3, 8, 1, seed=1))
    assert not default.orthogonal and default.forget_bias is None


def test_remedies_leave_out_advice_the_weights_already_follow():
    from vanishing.diagnose import remedies, weight_conditions

    def advice(kind, name, **kwargs):
        return _advice(remedies(kind, weight_conditions(build_model(name, 3, 8, 1, seed=0,
                                                                    **kwargs))))

    assert advice("vanishing", "rnn_tanh") == {"gated", "orthogonal"}
    assert advice("vanishing", "rnn_tanh", init="orthogonal") == {"gated"}
    assert advice("vanishing", "lstm") == {"orthogonal", "forget_bias"}  # preset bias 1
    assert advice("vanishing", "lstm", init="orthogonal", forget_bias=2.0) == {"shortcut"}
    assert advice("exploding", "rnn_tanh", radius=3.0) == {"clip", "lower_lr", "truncate",
                                                           "radius"}
    assert advice("exploding", "rnn_tanh", radius=0.5) == {"clip", "lower_lr", "truncate"}
    assert advice("healthy", "gru") == set()
    saturated = remedies("vanishing", weight_conditions(build_model("rnn_tanh", 3, 8, 1)),
                         saturated=True)
    assert _advice(saturated[:1]) == {"saturation"}
    with pytest.raises(TypeError, match="weight_conditions"):
        remedies("vanishing", {"rnn_tanh"})


def test_diagnose_of_an_orthogonal_rnn_does_not_advise_orthogonal_init():
    from vanishing.diagnose import diagnose

    x = torch.randn(8, 300, 4, generator=_gen())
    model = build_model("rnn_tanh", 4, 32, 1, init="orthogonal", seed=0).double()
    d = diagnose(model, x.double(), jacobian=False, lags=False)
    assert d.verdict.kind == "vanishing"  # over 300 steps even an orthogonal tanh RNN fades
    assert _advice(d.remedies) == {"gated"}


class _Seq(nn.Module):
    """A stock fused module returning its (N, T, H) states."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


def test_tiny_gradients_are_measured_down_to_float64s_smallest_normal():
    # relu RNN with W_hh = 0.1 I and positive states: relu' = 1, so dL/dh_(T-k) = 0.1^k 1
    # exactly, and ||dL/dh_(T-k)|| = 2 * 0.1^k for H = 4 (closed form). Squaring inside a
    # plain norm would lose every lag beyond ~154 (1e-308 is reached at 0.1^154 squared).
    rnn = nn.RNN(1, 4, nonlinearity="relu", batch_first=True).double()
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(0.1 * torch.eye(4, dtype=torch.float64))
        rnn.weight_ih_l0.fill_(1.0)
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
    length = 301
    trace = hidden_gradients(_Seq(rnn), torch.ones(2, length, 1, dtype=torch.float64))
    lags = np.arange(0, 301, 25)
    expected = 2 * 0.1 ** lags.astype(np.float64)
    np.testing.assert_allclose(trace.norms[length - 1 - lags], expected, rtol=1e-9)


def test_row_norms_scale_instead_of_squaring():
    from vanishing.probe import row_norms

    v = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    for scale in (1.0, 1e-200, 1e-300, 1e200):
        np.testing.assert_allclose(row_norms(v * scale).numpy(), np.array([5, 0, 1]) * scale,
                                   rtol=1e-15)
    odd = torch.tensor([[float("inf"), 1.0], [float("nan"), 1.0], [-float("inf"), 0.0]])
    got = row_norms(odd).numpy()
    assert got[0] == np.inf and np.isnan(got[1]) and got[2] == np.inf


@pytest.mark.parametrize(("kind", "layers"), [("LSTM", 1), ("GRU", 2), ("RNN", 1)])
def test_time_first_modules_get_the_last_step_loss_by_default(kind, layers):
    # torch's own default layout, (T, N, F): the default loss reads out[-1], so the
    # result equals the batch-first twin's with the same weights on the transposed input
    time_first = getattr(nn, kind)(3, 8, layers).double()
    batch_first = getattr(nn, kind)(3, 8, layers, batch_first=True).double()
    batch_first.load_state_dict(time_first.state_dict())
    x = torch.randn(30, 4, 3, generator=_gen(), dtype=torch.float64)
    a = hidden_gradients(_Seq(time_first), x)
    b = hidden_gradients(_Seq(batch_first), x.transpose(0, 1))
    assert a.norms.shape == (30,)
    np.testing.assert_allclose(a.norms, b.norms, rtol=1e-12)
    assert set(a.layers) == set(b.layers)


class _Ending(nn.Module):
    """An LSTM whose per-step output ends in softmax or LayerNorm: sums that are constant."""

    def __init__(self, end):
        super().__init__()
        self.rnn, self.head = nn.LSTM(3, 8, batch_first=True), nn.Linear(8, 5)
        self.end = end

    def forward(self, x):
        y = self.head(self.rnn(x)[0])
        return torch.softmax(y, -1) if self.end == "softmax" else nn.functional.layer_norm(
            y, (5,))


@pytest.mark.parametrize("end", ["softmax", "layernorm"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_default_loss_constant_in_the_states_is_an_error_not_a_noise_curve(end, dtype):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = _Ending(end).to(dtype)
    x = torch.randn(4, 20, 3, generator=_gen()).to(dtype)
    # the rounding may leave noise (the new check) or cancel exactly (the exact-zero one)
    with pytest.raises(ValueError, match="does not depend on the hidden states"):
        hidden_gradients(model, x)
    # a loss that the states can change works, and matches an independent loop
    trace = hidden_gradients(model, x, lambda out: out[:, -1, 0].sum())
    assert trace.norms.shape == (20,) and trace.norms[-1] > 0


def test_default_loss_check_leaves_healthy_models_alone():
    model = build_model("lstm", 3, 8, 2, seed=0)  # readout "last": (N, C) logits
    x = torch.randn(4, 20, 3, generator=_gen())
    assert hidden_gradients(model, x).norms.shape == (20,)


def test_silent_wrong_numbers_are_errors_now():
    """NaN weights, a loss given as a name, a wrong dtype, a NaN forget bias: one line each
    (each returned a number or raised torch's own error before)."""
    model = build_model("lstm", 3, 4, 1)
    x = torch.randn(2, 5, 3, generator=_gen())
    with pytest.raises(TypeError, match="loss must be a callable"):
        hidden_gradients(model, x, loss="mse")
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        with pytest.raises(TypeError, match=f"x is {str(dtype)[6:]} but LSTMCell's weights "
                                            f"are float32"):
            hidden_gradients(model, x.to(dtype))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="forget_bias must be a finite number"):
            build_model("lstm", 3, 4, 1, forget_bias=bad)
    with torch.no_grad():
        model.core.weight_hh_l0[0, 0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        hidden_gradients(model, x)
    healthy = build_model("lstm", 3, 4, 1)  # NaN in the readout only: named, not misread
    with torch.no_grad():
        healthy.head.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"parameter head\.weight holds 4 NaN/inf value"):
        hidden_gradients(healthy, torch.randn(2, 5, 3))


def test_a_finished_recording_keeps_no_tensor_alive():
    """The gradient hooks hold only the gradients' dict: a hook that held the recording
    made a cycle through autograd that the garbage collector could not free (every
    recording kept its whole graph, about 47 MB at T = 200, H = 128)."""
    import gc
    import weakref

    from vanishing.probe import record

    rnn = nn.GRU(3, 4, batch_first=True)
    with record(rnn) as rec:
        out = rnn(torch.randn(2, 5, 3, generator=_gen()))[0]
        loss = out.sum()
    assert rec.trace(loss).norms.shape == (5,)
    watched = [weakref.ref(t) for t in rec._tape.watched]
    assert watched
    del rec, out, loss
    gc.collect()
    assert [r() for r in watched] == [None] * len(watched)
