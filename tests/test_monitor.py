"""GradientMonitor: the right alarm on the right step, silence when healthy, no side effects."""

import numpy as np
import pytest
import torch
from torch import nn

from vanishing.models import build_model
from vanishing.monitor import Alarm, GradientAlarm, GradientMonitor
from vanishing.probe import hidden_gradients


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _one_step(model, x, monitor, y=None, poison=False):
    model.zero_grad()
    out = model(x)
    loss = out.pow(2).mean() if y is None else nn.functional.mse_loss(out, y)
    if poison:
        loss = loss + torch.log(torch.tensor(-1.0))  # NaN
    loss.backward()
    return monitor.step(loss, x=x, y=y)


def test_vanishing_for_a_tanh_rnn_with_small_weights():
    model = build_model("rnn_tanh", 2, 32, 1, radius=0.5, seed=0)
    monitor = GradientMonitor(model, every=10, warn=False)
    x = torch.randn(16, 200, 2, generator=_gen())
    (alarm,) = _one_step(model, x, monitor)
    assert alarm.kind == "vanishing" and alarm.step == 1 and alarm.value < 20
    assert "core.l0" in alarm.message
    assert any("gated cell" in r for r in alarm.remedies)
    assert any("orthogonal" in r for r in alarm.remedies)
    assert monitor.alarms == [alarm] and 1 in monitor.traces
    assert "step 1: vanishing gradient" in str(alarm)


def test_exploding_at_spectral_radius_3():
    model = build_model("rnn_tanh", 2, 32, 1, radius=3.0, seed=0)
    monitor = GradientMonitor(model, warn=False)
    (alarm,) = _one_step(model, torch.randn(16, 200, 2, generator=_gen()), monitor)
    assert alarm.kind == "exploding" and alarm.value > 1e3
    assert any("clip" in r for r in alarm.remedies)


def test_silent_for_a_healthy_lstm_on_a_short_task():
    """Remember the first of 10 numbers: an LSTM learns it, and nothing vanishes."""
    model = build_model("lstm", 1, 16, 1, seed=0)
    monitor = GradientMonitor(model, every=10, loss_fn=nn.functional.mse_loss, warn=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = _gen()
    losses = []
    for _ in range(60):
        x = torch.randn(32, 10, 1, generator=g)
        y = x[:, :1, 0]
        _one_step(model, x, monitor, y)
        with torch.no_grad():
            losses.append(float(nn.functional.mse_loss(model(x), y)))
        opt.step()
    assert monitor.alarms == []
    assert sorted(monitor.traces) == [1, 11, 21, 31, 41, 51]
    assert all(t.horizon() == 9 for t in monitor.traces.values())
    assert losses[-1] < 0.5 * losses[0]


def test_nan_on_the_step_it_appears():
    model = build_model("gru", 2, 8, 1, seed=0)
    monitor = GradientMonitor(model, every=3, warn=False)
    g = _gen()
    raised = {}
    for step in range(1, 13):
        x = torch.randn(4, 12, 2, generator=g)
        alarms = _one_step(model, x, monitor, poison=step in (7, 8))
        raised.update({a.step: a.kind for a in alarms})
    assert raised == {7: "nan"}  # once, not again while it lasts, no probe meanwhile
    (alarm,) = monitor.alarms
    assert alarm.step == 7 and "loss is nan" in alarm.message
    assert any("learning rate" in r for r in alarm.remedies)


def test_nan_in_the_gradient_only():
    model = build_model("lstm", 2, 8, 1, seed=0)
    monitor = GradientMonitor(model, every=100, warn=False)
    x = torch.randn(4, 6, 2, generator=_gen())
    _one_step(model, x, monitor)
    b = model.head.bias
    loss = model(x).sum() + 0 * torch.sqrt(b - b.detach()).sum()  # finite loss, NaN gradient
    model.zero_grad()
    loss.backward()
    (alarm,) = monitor.step(loss)
    assert alarm.kind == "nan" and "gradient norm is nan" in alarm.message


def test_the_probe_leaves_the_training_run_alone():
    model = build_model("lstm", 2, 8, 1, seed=0)
    model.core.dropout = 0.0
    model.train()
    x = torch.randn(4, 9, 2, generator=_gen())
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.random.get_rng_state()
    monitor = GradientMonitor(model, every=1, warn=False)
    assert monitor.step(x=x) == []
    assert model.training and torch.equal(torch.random.get_rng_state(), rng)
    for a, p in zip(grads, model.parameters(), strict=True):
        assert torch.equal(a, p.grad)
    assert "forward" not in model.core.__dict__


def test_warnings_and_bad_arguments():
    model = build_model("rnn_tanh", 2, 8, 1, radius=0.3)
    monitor = GradientMonitor(model, x=torch.randn(2, 50, 2, generator=_gen()))
    with pytest.warns(GradientAlarm, match="vanishing"):
        (alarm,) = monitor.step()
    assert isinstance(alarm, Alarm)
    with pytest.raises(ValueError, match="needs a batch"):
        GradientMonitor(model, warn=False).step(torch.tensor(1.0))
    with pytest.raises(ValueError, match="every"):
        GradientMonitor(model, every=0)
    with pytest.raises(ValueError, match="no recurrent step to probe"):
        GradientMonitor(nn.Linear(2, 2))


def test_a_lasting_problem_is_raised_once_and_again_after_recovery():
    model = build_model("rnn_tanh", 2, 16, 1, radius=0.5, seed=0)
    monitor = GradientMonitor(model, every=2, warn=False)
    short, long = torch.randn(4, 5, 2, generator=_gen()), torch.randn(4, 80, 2, generator=_gen())
    kinds = []
    for x in [long, long, long, short, long]:  # probes at steps 1, 3, 5, 7, 9
        for _ in range(2):
            kinds += [(a.step, a.kind) for a in _one_step(model, x, monitor)]
    assert kinds == [(1, "vanishing"), (9, "vanishing")]
    assert [v.kind for v in monitor.verdicts.values()] == ["vanishing"] * 3 + ["healthy",
                                                                               "vanishing"]


# -- time-first models: the probe takes sequences, not time steps --------------------------
class TimeFirst(nn.Module):
    """A user's model on a stock module with torch's default batch_first=False."""

    def __init__(self, kind, batch_first=False, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        rnn = {"rnn": nn.RNN, "lstm": nn.LSTM}[kind]
        self.rnn = rnn(3, 8, batch_first=batch_first)
        self.head = nn.Linear(8, 1)
        if kind == "rnn":  # small recurrent weights: a tanh RNN whose gradient vanishes
            with torch.no_grad():
                self.rnn.weight_hh_l0.mul_(0.5)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def _batch_first_twin(model):
    twin = TimeFirst(type(model.rnn).__name__.lower(), batch_first=True)
    twin.load_state_dict(model.state_dict())
    return twin


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_a_time_first_model_is_probed_over_its_whole_sequence(kind):
    model = TimeFirst(kind)
    x = torch.randn(100, 4, 3, generator=_gen())  # (T, N, F)
    # reference: the same weights run batch first on the same two sequences
    ref = hidden_gradients(_batch_first_twin(model), x[:, :2].transpose(0, 1))
    for loss_fn in [lambda out: out[-1].sum(), None]:  # the user's own, then the default
        monitor = GradientMonitor(model, every=1, probe_batch=2, loss_fn=loss_fn, warn=False)
        alarms = monitor.step(x=x)
        trace = monitor.traces[1]
        assert trace.norms.shape == (100,)
        # the default projects the last output on a fixed direction: one output unit here,
        # so the curve is the sum's up to a constant factor
        got, want = (trace.norms, ref.norms) if loss_fn else (trace.relative(), ref.relative())
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-12)
        if kind == "rnn":
            assert [a.kind for a in alarms] == ["vanishing"] and alarms[0].value < 30


def test_time_first_targets_per_step_and_per_sequence():
    model = TimeFirst("rnn")
    x = torch.randn(50, 4, 3, generator=_gen())
    per_step, per_seq = torch.randn(50, 4, 1, generator=_gen(1)), torch.randn(4, generator=_gen(2))
    twin = _batch_first_twin(model)
    cases = [  # (y, y_batch_dim, loss_fn, reference loss on batch-first output and y)
        (per_step, None, nn.functional.mse_loss,
         lambda out: nn.functional.mse_loss(out, per_step[:, :3].transpose(0, 1))),
        (per_seq, 0, lambda out, y: nn.functional.mse_loss(out[-1, :, 0], y),
         lambda out: nn.functional.mse_loss(out[:, -1, 0], per_seq[:3])),
    ]
    for y, y_dim, fn, ref_loss in cases:
        monitor = GradientMonitor(model, probe_batch=3, loss_fn=fn, y_batch_dim=y_dim,
                                  warn=False)
        monitor.step(x=x, y=y)
        ref = hidden_gradients(twin, x[:, :3].transpose(0, 1), ref_loss)
        np.testing.assert_allclose(monitor.traces[1].norms, ref.norms, rtol=1e-4, atol=1e-12)


def test_the_batch_dimension_is_checked():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.GRU(3, 4, batch_first=True), nn.GRU(4, 4)

        def forward(self, x):
            return self.b(self.a(x)[0].transpose(0, 1))[0]

    with pytest.raises(ValueError, match=r"disagree on batch_first .*pass batch_dim="):
        GradientMonitor(Mixed())
    x = torch.randn(6, 2, 3, generator=_gen())
    assert GradientMonitor(Mixed(), batch_dim=0, loss_fn=lambda out: out[-1].sum(),
                           warn=False).step(x=x) == []
    with pytest.raises(ValueError, match="batch_dim must be 0"):
        GradientMonitor(TimeFirst("rnn"), batch_dim=2)
    monitor = GradientMonitor(TimeFirst("rnn"), every=1, loss_fn=nn.functional.mse_loss,
                               warn=False)
    with pytest.raises(ValueError, match=r"y of shape \(4,\) .* pass y_batch_dim="):
        monitor.step(x=torch.randn(10, 4, 3), y=torch.randn(4))
    with pytest.raises(ValueError, match=r"should hold 4 sequences .* has 5 there"):
        monitor.step(x=torch.randn(10, 4, 3), y=torch.randn(10, 5, 1))


class _Transposing(nn.Module):
    """Takes (N, T, F) and transposes for a time-first nn.RNN: batch_first says nothing."""

    def __init__(self):
        super().__init__()
        self.rnn, self.head = nn.RNN(4, 16), nn.Linear(16, 1)

    def forward(self, x):
        return self.head(self.rnn(x.transpose(0, 1))[0][-1])


def test_a_model_that_transposes_x_is_refused_until_batch_dim_is_given():
    model = _Transposing()
    x = torch.randn(32, 200, 4, generator=_gen())
    monitor = GradientMonitor(model, warn=False, loss_fn=lambda out: out.sum())
    with pytest.raises(ValueError, match="probably transposes x. Pass batch_dim="):
        monitor.step(None, x=x)
    monitor = GradientMonitor(model, warn=False, loss_fn=lambda out: out.sum(), batch_dim=0)
    monitor.step(None, x=x)
    assert monitor.traces[1].norms.shape == (200,)  # every step, not 8 of them


def test_nan_weights_raise_the_nan_alarm_not_a_linear_algebra_error():
    from vanishing.diagnose import weight_conditions

    model = _Transposing()
    x = torch.randn(8, 20, 4, generator=_gen())
    with torch.no_grad():
        model.rnn.weight_hh_l0[0, 0] = float("nan")
    (w,) = weight_conditions(model)
    assert np.isnan(w.spectral_radius) and np.isnan(w.sigma_max) and not w.orthogonal
    monitor = GradientMonitor(model, warn=False, batch_dim=0, loss_fn=lambda out: out.sum())
    loss = model(x).sum()
    loss.backward()
    (alarm,) = monitor.step(loss, x=x)
    assert alarm.kind == "nan" and "learning rate" in " ".join(alarm.remedies)


# -- the monitor on models as people write them (issue: probe the recurrent computation) --
from _public_models import RNNModel, Sequence  # noqa: E402


def test_nan_alarm_on_a_cell_loop_model_on_the_step_nan_appears():
    torch.manual_seed(0)
    model = Sequence(hidden=6).double()  # two nn.LSTMCell in a loop, no fused module
    monitor = GradientMonitor(model, every=2, loss_fn=nn.functional.mse_loss, warn=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    kinds = {}
    for step in range(1, 7):
        x = torch.randn(3, 9, generator=_gen(step), dtype=torch.float64)
        out = model(x)
        loss = (out - x).pow(2).mean()
        if step == 4:
            loss = loss * float("nan")
        opt.zero_grad()
        loss.backward()
        kinds.update({a.step: a.kind for a in monitor.step(loss, x=x, y=x)})
        if step != 4:
            opt.step()
    assert kinds.get(4) == "nan" and [a.step for a in monitor.alarms if a.kind == "nan"] == [4]
    assert set(monitor.traces) == {1, 3, 5}  # probed through the cells, whole batch
    assert list(monitor.traces[1].layers) == ["lstm1", "lstm2"]
    assert monitor.traces[1].main_layer == "lstm2" and monitor.traces[1].norms.shape == (9,)


class TimeFirstNormed(nn.Module):
    """A time-first LSTM whose output goes through a LayerNorm (sum of outputs = constant)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.lstm = nn.LSTM(3, 6)
        self.norm = nn.LayerNorm(6)

    def forward(self, x):
        return self.norm(self.lstm(x)[0])


def test_vanishing_behind_a_layernorm_is_decided_on_a_real_gradient():
    model = TimeFirstNormed().double()
    x = torch.randn(60, 4, 3, generator=_gen(), dtype=torch.float64)  # (T, N, F)
    # the sum of the last LayerNorm output is constant: its gradient is rounding noise,
    # which hidden_gradients refuses rather than report
    with pytest.raises(ValueError, match="rounding"):
        hidden_gradients(model, x)
    monitor = GradientMonitor(model, every=1, probe_batch=2, warn=False)
    (alarm,) = monitor.step(x=x)
    assert alarm.kind == "vanishing"
    # reference: nn.LSTMCell with the same weights, a zero tensor on each h_t, and the last
    # step's LayerNorm output projected on K standard normals drawn from seed 0 in float64
    cell = nn.LSTMCell(3, 6).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(model.lstm, name + "_l0"))
    xs = x[:, :2]
    h = c = torch.zeros(2, 6, dtype=torch.float64)
    zeros = []
    for x_t in xs.unbind(0):
        h, c = cell(x_t, (h, c))
        zeros.append(torch.zeros_like(h, requires_grad=True))
        h = h + zeros[-1]
    w = torch.randn(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = (model.norm(h) @ w).sum()
    grads = torch.autograd.grad(loss, zeros)
    want = np.array([float(g.norm(dim=1).mean()) for g in grads])
    np.testing.assert_allclose(monitor.traces[1].norms, want, rtol=1e-9)
    assert want[-1] > 1e-3  # a real gradient at the last step, far above float64 rounding
    assert "model.lstm.weight_hh_l0" in " ".join(alarm.remedies)


def test_a_language_model_with_a_hidden_state_and_flat_targets():
    torch.manual_seed(0)
    ntoken, steps, batch = 20, 12, 6
    model = RNNModel("LSTM", ntoken, 8, 8, 2, dropout=0.0, tie_weights=True)
    criterion = nn.CrossEntropyLoss()
    data = torch.randint(0, ntoken, (steps, batch), generator=_gen())
    targets = torch.randint(0, ntoken, (steps * batch,), generator=_gen(1))  # (T*N,)
    hidden = model.init_hidden(batch)
    monitor = GradientMonitor(
        model, every=1, probe_batch=2, warn=False,
        loss_fn=lambda out, y: criterion(out.view(-1, ntoken), y),
        forward=lambda m, x: m(x, model.init_hidden(x.shape[1]))[0])
    output, hidden = model(data, hidden)
    loss = criterion(output.view(-1, ntoken), targets)
    loss.backward()
    monitor.step(loss, x=data, y=targets)
    # reference: the first two sequences alone, their targets taken from the (T, N) grid
    y2 = targets.view(steps, batch)[:, :2].reshape(-1)
    from vanishing.probe import record

    with record(model) as rec:
        out2, _ = model(data[:, :2], model.init_hidden(2))
        ref = rec.trace(criterion(out2.view(-1, ntoken), y2))
    got = monitor.traces[1]
    assert got.main_layer == "rnn.l1" and got.norms.shape == (steps,)
    np.testing.assert_allclose(got.layers["rnn.l0"], ref.layers["rnn.l0"], rtol=1e-6)
    np.testing.assert_allclose(got.norms, ref.norms, rtol=1e-6)


def test_remedies_name_torch_code_for_the_users_own_modules():
    class User(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.encoder = nn.LSTM(2, 8, batch_first=True)
            self.out = nn.Linear(8, 1)

        def forward(self, x):
            return self.out(self.encoder(x)[0][:, -1])

    monitor = GradientMonitor(User(), loss_fn=lambda out: out.sum(), warn=False)
    (alarm,) = monitor.step(x=torch.randn(4, 120, 2, generator=_gen()))
    assert alarm.kind == "vanishing"
    text = " ".join(alarm.remedies)
    assert "for block in model.encoder.weight_hh_l0.data.chunk(4): " \
           "torch.nn.init.orthogonal_(block)" in text
    assert "model.encoder.bias_ih_l0[8:16].fill_(2.0)" in text
    # this library's own model gets its options, not torch code
    lib = build_model("rnn_tanh", 2, 8, 1, radius=0.5)
    (own,) = GradientMonitor(lib, warn=False).step(x=torch.randn(4, 120, 2, generator=_gen()))
    assert "init='orthogonal'" in " ".join(own.remedies)
    assert "torch.nn.init" not in " ".join(own.remedies)


def test_riding_on_the_real_step_reads_the_users_own_backward():
    """monitor.record() around the training forward: the probe is that very backward
    pass (whole batch, the user's loss); checked against a hand nn.LSTMCell loop, and the
    training run is the one it would be without the monitor."""
    def build():
        torch.manual_seed(3)
        return nn.LSTM(2, 5, batch_first=True).double(), nn.Linear(5, 1).double()

    lstm, head = build()
    model = nn.Sequential()  # a container the monitor can walk
    model.lstm, model.head = lstm, head
    plain_lstm, plain_head = build()
    monitor = GradientMonitor(model, every=2, warn=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plain_opt = torch.optim.SGD([*plain_lstm.parameters(), *plain_head.parameters()], lr=0.1)
    g = _gen(4)
    for step in range(1, 5):
        x = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
        y = torch.randn(3, 1, generator=g, dtype=torch.float64)
        with monitor.record() as rec:
            loss = nn.functional.mse_loss(head(lstm(x)[0][:, -1]), y)
        assert (rec is not None) == (step % 2 == 1)  # records on probe steps only
        if rec is not None:  # the reference, before the weights move
            cell = nn.LSTMCell(2, 5).double()
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(lstm, name + "_l0"))
            h = c = torch.zeros(3, 5, dtype=torch.float64)
            zeros = []
            for x_t in x.unbind(1):
                h, c = cell(x_t, (h, c))
                zeros.append(torch.zeros_like(h, requires_grad=True))
                h = h + zeros[-1]
            ref = torch.autograd.grad(nn.functional.mse_loss(head(h), y), zeros)
            want = np.array([float(r.norm(dim=1).mean()) for r in ref])
        opt.zero_grad()
        loss.backward()
        monitor.step(loss)
        opt.step()
        plain_opt.zero_grad()
        nn.functional.mse_loss(plain_head(plain_lstm(x)[0][:, -1]), y).backward()
        plain_opt.step()
        if step % 2 == 1:
            np.testing.assert_allclose(monitor.traces[step].norms, want, rtol=1e-9)
    assert sorted(monitor.traces) == [1, 3]
    for a, b in zip(model.parameters(), [*plain_lstm.parameters(), *plain_head.parameters()],
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
