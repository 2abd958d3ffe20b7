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
        np.testing.assert_allclose(trace.norms, ref.norms, rtol=1e-4, atol=1e-12)
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
