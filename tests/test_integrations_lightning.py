"""GradientMonitorCallback: a real Trainer.fit on the CPU logs the horizon and the lag norms
that hidden_gradients gives on the same weights and batch; a vanishing RNN raises the alarm
and, when asked, stops training."""

import copy
import csv

import numpy as np
import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch", reason="needs lightning: pip install "
                         "'vanishing[lightning]' (CI installs it)")

from vanishing.integrations.lightning import GradientMonitorCallback  # noqa: E402
from vanishing.monitor import GradientAlarm  # noqa: E402
from vanishing.probe import hidden_gradients  # noqa: E402

# Lightning's own advice for a tiny CPU run, and its use of a torch pytree name that
# torch 2.13 deprecates: not about this library
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*LeafSpec.* is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*number of training batches.*:UserWarning"),
]

T, N, F = 40, 16, 3


class Tiny(pl.LightningModule):
    """A one-layer recurrent regressor; keeps a copy of the weights and the batch at every
    step, for the reference."""

    def __init__(self, kind="lstm", scale=None):
        super().__init__()
        self.rnn = (nn.LSTM if kind == "lstm" else nn.RNN)(F, 12, batch_first=True)
        self.head = nn.Linear(12, 1)
        if scale is not None:
            with torch.no_grad():
                self.rnn.weight_hh_l0.mul_(scale)
        self.seen = {}

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen[self.global_step] = (copy.deepcopy(self.state_dict()), x.clone(), y.clone())
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _data(seed=0, batches=8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N * batches, T, F, generator=g)
    ds = torch.utils.data.TensorDataset(x, x[:, :1, 0] + 0.1 * x[:, -1, :1])
    return torch.utils.data.DataLoader(ds, batch_size=N)


def _fit(module, callback, tmp_path, steps):
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1,
                         logger=pl.loggers.CSVLogger(tmp_path), callbacks=[callback],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(module, _data())
    return trainer


def _logged(trainer):
    with open(f"{trainer.logger.log_dir}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for r in rows:
        for k, v in r.items():
            if k.startswith("vanishing/") and v != "":
                out.setdefault(int(r["step"]), {})[k] = float(v)
    return out


def test_logged_horizon_and_lags_equal_hidden_gradients_on_the_same_weights(tmp_path):
    torch.manual_seed(0)
    module = Tiny("lstm")
    callback = GradientMonitorCallback(every=3, warn=False)
    trainer = _fit(module, callback, tmp_path, steps=7)
    logged = _logged(trainer)
    assert sorted(logged) == [0, 3, 6]  # the first, then every 3rd optimizer step
    for step, got in logged.items():
        weights, x, y = module.seen[step]
        ref_model = Tiny("lstm")
        ref_model.load_state_dict(weights)
        ref = hidden_gradients(ref_model, x, lambda out, y=y: nn.functional.mse_loss(out, y))
        assert got["vanishing/rnn.l0/horizon"] == ref.horizon(1e-3)
        for k in (0, 1, 10, T - 1):
            np.testing.assert_allclose(got[f"vanishing/rnn.l0/grad_lag_{k}"],
                                       ref.norms[T - 1 - k], rtol=1e-4)
        assert "vanishing/rnn.l0/grad_lag_100" not in got  # only lags < T
        np.testing.assert_allclose(got["vanishing/rnn.l0/decay_rate"], ref.decay_rate(),
                                   rtol=1e-4)
    assert trainer.global_step == 7 and callback.monitor.steps == 7


def test_vanishing_rnn_warns_and_keeps_training_unless_asked_to_stop(tmp_path):
    torch.manual_seed(0)
    with pytest.warns(GradientAlarm, match="vanishing gradient") as caught:
        trainer = _fit(Tiny("rnn", scale=0.05), GradientMonitorCallback(every=2), tmp_path,
                       steps=6)
    assert trainer.global_step == 6
    (alarm,) = [str(w.message) for w in caught if w.category is GradientAlarm]
    assert "step 1:" in alarm and "rnn.l0" in alarm and "torch.nn" in alarm  # torch code
    assert _logged(trainer)[0]["vanishing/alarm_vanishing"] == 1.0

    torch.manual_seed(0)
    callback = GradientMonitorCallback(every=2, stop_on_alarm=True)
    with pytest.warns(GradientAlarm, match="vanishing gradient"):
        trainer = _fit(Tiny("rnn", scale=0.05), callback, tmp_path / "stop", steps=6)
    assert trainer.global_step == 1 and [a.kind for a in callback.monitor.alarms] == [
        "vanishing"]


def test_a_healthy_short_lstm_is_silent_and_stop_on_alarm_does_not_stop_it(tmp_path):
    torch.manual_seed(0)
    module = Tiny("lstm")
    with torch.no_grad():  # forget-gate bias 3: the gradient reaches back T = 40 steps
        module.rnn.bias_hh_l0[12:24].fill_(3.0)
    callback = GradientMonitorCallback(every=2, stop_on_alarm=True)
    trainer = _fit(module, callback, tmp_path, steps=4)
    assert trainer.global_step == 4 and callback.monitor.alarms == []
    assert sorted(callback.monitor.traces) == [1, 3]


def test_16_mixed_precision_logs_the_unscaled_gradient(tmp_path):
    """The recorded dL/dh_t come from the GradScaler's scaled loss (x 65536 here); the
    callback divides them back, as Lightning does for .grad."""
    from lightning.pytorch.plugins import MixedPrecision

    torch.manual_seed(0)
    module = Tiny("rnn")
    amp = MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu"))
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", plugins=[amp],
                         logger=pl.loggers.CSVLogger(tmp_path),
                         callbacks=[GradientMonitorCallback(warn=False)],
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, _data())
    got = _logged(trainer)[0]
    weights, x, y = module.seen[0]
    ref_model = Tiny("rnn")
    ref_model.load_state_dict(weights)
    ref = hidden_gradients(ref_model, x, lambda out: nn.functional.mse_loss(out, y))
    for k in (0, 1, 10):  # float16 against float32
        np.testing.assert_allclose(got[f"vanishing/rnn.l0/grad_lag_{k}"],
                                   ref.norms[T - 1 - k], rtol=2e-2)
